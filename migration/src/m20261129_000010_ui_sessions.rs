//! Browser sessions of the operator UI (`/ui`): one row per login, keyed by the SHA-256 of
//! the session cookie (the cookie value itself is never stored), so a replica can check
//! any session and a logout or an expiry ends it everywhere.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(UiSessions::Table)
                .col(string_len(UiSessions::Id, 64).primary_key())
                .col(big_integer(UiSessions::EmployeeId))
                .col(timestamp_with_time_zone(UiSessions::CreatedAt))
                .col(timestamp_with_time_zone(UiSessions::ExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(UiSessions::Table, UiSessions::EmployeeId)
                        .to(Employees::Table, Employees::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_ui_sessions_expires_at")
                .table(UiSessions::Table)
                .col(UiSessions::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(UiSessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum UiSessions {
    Table,
    Id,
    EmployeeId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Employees {
    Table,
    Id,
}
