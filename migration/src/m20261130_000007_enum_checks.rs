//! Closed sets in the database: every text column that holds one of a fixed set of values
//! (status kinds, shop settings, sync-log sources and outcomes, mapping directions, outbox
//! kinds, lanes) gets a CHECK constraint on PostgreSQL listing exactly the values the
//! entity enums spell. A row written past the application (psql, a script, a buggy
//! release) with any other value is refused where it is written, instead of failing
//! every later read of that row.
//!
//! The lists are copied here rather than taken from the entity crate on purpose: a
//! migration is a snapshot, and a value added to an enum later arrives with a migration
//! of its own that widens the constraint.
//!
//! SQLite is left as it is. It cannot add a constraint to an existing table, only rebuild
//! it (copy, drop, rename), and shops and order statuses are the targets of foreign keys
//! with `ON DELETE CASCADE`: dropping the original would delete the rows referencing it
//! unless foreign keys were switched off first, and `PRAGMA foreign_keys` holds for one
//! connection only (and is ignored inside a transaction), while a migration runs its
//! statements on a pool. Risking those rows is not worth it: SQLite serves the
//! single-process embedded deployment, where every write goes through the entities, so
//! the entity enums are the guard there. A value outside a set cannot be written through
//! them, and a row holding one fails to load with a type error rather than being misread.
//!
//! Adding a constraint checks the rows already there; a value outside its set makes this
//! migration fail, naming the constraint, so that such a row is looked at rather than
//! carried on.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const OUTCOMES: &[&str] = &[
    "processing",
    "applied",
    "duplicate",
    "stale",
    "skipped_written_off",
    "skipped",
    "rejected",
    "sent",
    "deferred",
    "failed",
];
const LANES: &[&str] = &["inbound", "outbound"];

/// `(table, column, allowed values)`; the constraint is named `ck_<table>_<column>`.
const CHECKS: &[(&str, &str, &[&str])] = &[
    (
        "order_statuses",
        "kind",
        &["new", "in_progress", "done", "canceled"],
    ),
    ("shops", "language", &["uk", "ru"]),
    ("shops", "match_products_by", &["name", "sku", "prom_id"]),
    (
        "shops",
        "client_matching",
        &["always_new", "phone_or_email"],
    ),
    ("status_mappings", "direction", LANES),
    (
        "inbound_events",
        "source",
        &["webhook", "poll", "refresh", "replay"],
    ),
    ("inbound_events", "outcome", OUTCOMES),
    ("outbound_sync_log", "outcome", OUTCOMES),
    ("outbox", "kind", &["order_status"]),
    ("dead_letters", "lane", LANES),
    ("broker_messages", "lane", LANES),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        for (table, column, values) in CHECKS {
            let allowed = values
                .iter()
                .map(|v| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(", ");
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT ck_{table}_{column} \
                 CHECK ({column} IN ({allowed}))"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = m.get_connection();
        for (table, column, _) in CHECKS {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT ck_{table}_{column}"
            ))
            .await?;
        }
        Ok(())
    }
}
