//! Database connection and migrations, shared by every role.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, Statement,
};
use sha2::{Digest, Sha256};

use crate::config::Settings;

pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .max_connections(settings.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // Statement logging would put buyers' data into the logs.
        .sqlx_logging(false);
    if settings.is_sqlite() {
        // SQLite has one writer at a time; one connection makes every role take turns
        // instead of failing with "database is locked", and WAL lets readers of other
        // processes (the CLI) look in meanwhile.
        options.max_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
        });
    }
    Database::connect(options)
        .await
        .context("connecting to the database (PROMSYNC_DATABASE_URL)")
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None)
        .await
        .context("applying database migrations")
}

/// Connects, and on SQLite (the embedded setup, which has nobody to run
/// `promsync migrate` for it) brings the schema up to date first.
pub async fn connect_ready(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = connect(settings).await?;
    if settings.is_sqlite() {
        migrate(&db).await?;
    }
    Ok(db)
}

/// A lock named by `name`, held until the transaction ends: a PostgreSQL advisory lock
/// keyed by a hash of the name. Elsewhere (SQLite) writers are serialized by the database
/// itself, so nothing needs taking.
pub async fn advisory_xact_lock(txn: &DatabaseTransaction, name: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let digest = Sha256::digest(name.as_bytes());
    let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [key.into()],
    ))
    .await?;
    Ok(())
}
