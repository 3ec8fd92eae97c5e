//! Each test's database, and the template it is copied from.
//!
//! Migrating a fresh database for every test was most of a test's start-up. Instead the
//! first test of a run that needs one makes a template (PostgreSQL: a template database;
//! SQLite: a file), migrates it once, and every test database is a copy. The template is
//! named after a hash of the migration list: migrations are append-only (never edited
//! once landed), so the list names the schema, and a template made by an earlier run
//! with the same list is reused as it is.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, QueryResult, Statement,
};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{
    app::TestApp,
    services::{admin_database_url, Backend},
    wait::eventually,
};

/// A test's own database, dropped by `remove` (which `TestApp`'s drop runs).
pub enum TestDatabase {
    Postgres { name: String, url: String },
    Sqlite { file: PathBuf },
}

impl TestDatabase {
    /// A new database holding the current schema, copied from the template.
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::RabbitMq => create_postgres().await,
            Backend::Embedded => {
                let file = std::env::temp_dir().join(format!(
                    "promsync-test-{}.db",
                    uuid::Uuid::new_v4().simple()
                ));
                std::fs::copy(sqlite_template().await, &file).expect("copying the template");
                Self::Sqlite { file }
            }
        }
    }

    /// What `PROMSYNC_DATABASE_URL` is for the test's processes.
    pub fn url(&self) -> String {
        match self {
            Self::Postgres { url, .. } => url.clone(),
            Self::Sqlite { file } => sqlite_url(file),
        }
    }

    /// Drops the database (closing whatever still holds it open) or deletes the file.
    pub async fn remove(&self) {
        match self {
            Self::Postgres { name, .. } => {
                let admin = connect_admin().await;
                if let Err(e) = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                {
                    eprintln!("test cleanup: dropping database {name}: {e}");
                }
                let _ = admin.close().await;
            }
            Self::Sqlite { file } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                }
            }
        }
    }
}

/// The first row of `sql`'s answer, if any.
async fn first_row(db: &DatabaseConnection, sql: &str) -> Option<QueryResult> {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// `promsync_tmpl_` and a hash of the migrations' names.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for migration in Migrator::migrations() {
        hash.update(migration.name().as_bytes());
        hash.update(b"\n");
    }
    let hex: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("promsync_tmpl_{hex}")
}

/// One connection to PostgreSQL's admin database: the advisory lock below lives in a
/// session, so every statement must use the same one.
async fn connect_admin() -> DatabaseConnection {
    let url = admin_database_url();
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for integration tests ({url}): {e}"))
}

/// `url` with its database name replaced by `name`.
fn postgres_url(name: &str) -> String {
    let admin_url = admin_database_url();
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .expect("database URL with a path");
    format!("{base}/{name}")
}

/// Runs `sql` (a statement that needs nobody connected to a database), retrying while
/// PostgreSQL still counts a session there: a just-closed connection's backend, or
/// autovacuum, goes away within moments.
async fn execute_when_unused(admin: &DatabaseConnection, sql: &str) -> Result<(), DbErr> {
    let mut attempts = 0;
    loop {
        match admin.execute_unprepared(sql).await {
            Err(e) if e.to_string().contains("is being accessed by other users") => {
                attempts += 1;
                if attempts >= 100 {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

async fn create_postgres() -> TestDatabase {
    let template = postgres_template().await;
    let name = format!("promsync_t_{}", uuid::Uuid::new_v4().simple());
    let admin = connect_admin().await;
    execute_when_unused(
        &admin,
        &format!("CREATE DATABASE {name} TEMPLATE {template}"),
    )
    .await
    .expect("creating the test database from the template");
    let _ = admin.close().await;
    TestDatabase::Postgres {
        url: postgres_url(&name),
        name,
    }
}

/// The template's name, once it exists (made by this process or an earlier one).
async fn postgres_template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE.get_or_init(make_postgres_template).await
}

/// Makes the template unless it exists, under an advisory lock so that concurrent test
/// processes make it once. It is migrated under another name and renamed when complete,
/// so a template that exists is whole; a half-made one from a killed run is dropped.
async fn make_postgres_template() -> String {
    let name = template_name();
    let building = format!("{name}_building");
    let admin = connect_admin().await;
    // Any fixed key will do: it only has to be the same for every test process.
    let lock = "SELECT pg_advisory_lock(7232871130)";
    admin.execute_unprepared(lock).await.expect("template lock");
    let exists = first_row(
        &admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )
    .await
    .and_then(|row| row.try_get_by_index::<i64>(0).ok())
    .is_some_and(|n| n > 0);
    if !exists {
        for sql in [
            format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
            format!("CREATE DATABASE {building}"),
        ] {
            admin.execute_unprepared(&sql).await.expect(&sql);
        }
        let db = Database::connect(postgres_url(&building))
            .await
            .expect("connecting to the template");
        promsync::db::migrate(&db)
            .await
            .expect("migrating the template");
        db.close().await.expect("closing the template");
        // No connections on the template: a copy needs nobody connected to its source.
        for sql in [
            format!("ALTER DATABASE {building} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
            format!("ALTER DATABASE {building} RENAME TO {name}"),
        ] {
            execute_when_unused(&admin, &sql).await.expect(&sql);
        }
    }
    let _ = admin.close().await;
    name
}

/// The SQLite template file, made once per machine and migration list (see above).
async fn sqlite_template() -> &'static Path {
    static TEMPLATE: OnceCell<PathBuf> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let file = std::env::temp_dir().join(format!("{}.db", template_name()));
            if file.exists() {
                return file;
            }
            // Made under a name of its own and renamed into place, which is atomic: a
            // template file that exists is whole, whichever process made it.
            let building = file.with_extension(format!("{}.db", uuid::Uuid::new_v4().simple()));
            let mut options = ConnectOptions::new(sqlite_url(&building));
            options.max_connections(1).sqlx_logging(false);
            let db = Database::connect(options)
                .await
                .expect("creating the template file");
            promsync::db::migrate(&db)
                .await
                .expect("migrating the template");
            // Out of WAL mode, so that the one file holds everything a copy needs.
            db.execute_unprepared("PRAGMA journal_mode = DELETE")
                .await
                .expect("leaving WAL mode");
            db.close().await.expect("closing the template");
            std::fs::rename(&building, &file).expect("putting the template in place");
            file
        })
        .await
}

impl TestApp {
    /// The first column of the first row of `sql`, a count (or any integer).
    pub async fn count(&self, sql: &str) -> i64 {
        first_row(&self.db, sql)
            .await
            .expect("a row")
            .try_get_by_index::<i64>(0)
            .expect("a count")
    }

    /// The first column of the first row of `sql` as text, if there is a row.
    pub async fn text(&self, sql: &str) -> Option<String> {
        first_row(&self.db, sql)
            .await?
            .try_get_by_index::<Option<String>>(0)
            .expect("a text")
    }

    /// Waits until the inbox holds `n` events (each accepted notification settles as one).
    /// The deadline grows with `n`: thousands of events on a loaded 2-core machine take
    /// longer than a handful, and a deadline is a hang detector, not a speed test.
    pub async fn wait_for_events(&self, n: i64) {
        let per_event = Duration::from_millis(20).saturating_mul(u32::try_from(n).unwrap_or(0));
        eventually(
            &format!("{n} processed events"),
            Duration::from_secs(30) + per_event,
            || async {
                (self.count("SELECT count(*) FROM inbound_events").await >= n).then_some(())
            },
        )
        .await;
    }

    /// The outcome and detail of every inbox event, oldest first.
    pub async fn outcomes(&self) -> Vec<(promsync::domain::Outcome, Option<String>)> {
        use entity::inbound_events;
        use sea_orm::{EntityTrait, QueryOrder};
        inbound_events::Entity::find()
            .order_by_asc(inbound_events::Column::ProcessedAt)
            .all(&self.db)
            .await
            .expect("events")
            .into_iter()
            .map(|e| (e.outcome, e.detail))
            .collect()
    }
}
