//! Database connection and migrations, shared by every role.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use entity::shops;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// A pool of `database_max_connections`, of which `database_min_connections` are opened
/// before this returns and kept open: a role starts work (and `/readyz` says ok) with
/// connections at hand, instead of its first requests each paying for a new one.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.database.url.clone());
    options
        .max_connections(settings.database.max_connections.get())
        .min_connections(settings.database.min_connections)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // Statement logging would put buyers' data into the logs.
        .sqlx_logging(false);
    if settings.database.is_sqlite() {
        // SQLite has one writer at a time; one connection makes every role take turns
        // instead of failing with "database is locked", and WAL lets readers of other
        // processes (the CLI) look in meanwhile.
        options
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
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
    if settings.database.is_sqlite() {
        migrate(&db).await?;
    }
    Ok(db)
}

/// A lock named by `name`, held until the transaction ends: a PostgreSQL advisory lock
/// keyed by a hash of the name. Elsewhere (SQLite) writers are serialized by the database
/// itself, so nothing needs taking.
pub async fn advisory_xact_lock(txn: &DatabaseTransaction, name: &str) -> Result<(), DbErr> {
    advisory_xact_locks(txn, [name]).await
}

/// Several named locks (see [`advisory_xact_lock`]) taken in one round trip, in ascending
/// key order. Every transaction that takes all its locks this way, before anything else,
/// takes them in the same global order, so no two of them can deadlock on each other.
pub async fn advisory_xact_locks<I, S>(txn: &DatabaseTransaction, names: I) -> Result<(), DbErr>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut keys: Vec<i64> = names.into_iter().map(|n| lock_key(n.as_ref())).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    // The keys are integers we formatted ourselves: nothing to escape. `unnest` yields
    // them in array order, and the aggregate makes PostgreSQL evaluate every lock call.
    let list = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    txn.execute_unprepared(&format!(
        "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(ARRAY[{list}]::bigint[]) AS k"
    ))
    .await?;
    Ok(())
}

fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Records whether Prom refuses the shop's token. Every role that meets a 401/403 sets
/// it (the poller then pauses the shop, `GET /api/shops/{id}` shows it); a call Prom
/// accepts again clears it.
pub async fn flag_token_rejected<C: ConnectionTrait>(
    conn: &C,
    shop_id: i64,
    rejected: bool,
) -> Result<(), DbErr> {
    shops::Entity::update_many()
        .col_expr(
            shops::Column::TokenRejectedAt,
            Expr::value(rejected.then(Utc::now)),
        )
        .filter(shops::Column::Id.eq(shop_id))
        .exec(conn)
        .await?;
    Ok(())
}
