//! Database migrations for promsync, portable between PostgreSQL and SQLite.
//!
//! Migrations are append-only: once one has landed it is never edited; schema changes
//! arrive as a new migration listed after it.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261128_000002_embedded_broker;
mod m20261129_000010_ui_sessions;
mod m20261130_000001_dead_letters;
mod m20261130_000002_employees;
mod m20261130_000004_outbound_claims;
mod m20261130_000007_enum_checks;
mod m20261130_000010_remote_status_title;
mod m20261130_000011_delivery_payment;
mod m20261130_000012_waybill;
mod m20261130_000013_prom_status_options;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261128_000002_embedded_broker::Migration),
            Box::new(m20261129_000010_ui_sessions::Migration),
            Box::new(m20261130_000001_dead_letters::Migration),
            Box::new(m20261130_000002_employees::Migration),
            Box::new(m20261130_000004_outbound_claims::Migration),
            Box::new(m20261130_000007_enum_checks::Migration),
            Box::new(m20261130_000010_remote_status_title::Migration),
            Box::new(m20261130_000011_delivery_payment::Migration),
            Box::new(m20261130_000012_waybill::Migration),
            Box::new(m20261130_000013_prom_status_options::Migration),
        ]
    }
}
