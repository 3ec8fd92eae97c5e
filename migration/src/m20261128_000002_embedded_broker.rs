//! Tables of the embedded broker backend: durable work queues (one row per message, per
//! lane) and the inbound log kept for replay. Times are epoch milliseconds so that
//! comparisons mean the same on PostgreSQL and SQLite.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(BrokerMessages::Table)
                .col(big_pk_auto(BrokerMessages::Id))
                .col(string_len(BrokerMessages::Lane, 16))
                .col(string_len(BrokerMessages::MessageId, 128))
                .col(text(BrokerMessages::Payload))
                .col(integer(BrokerMessages::Attempts))
                .col(big_integer(BrokerMessages::AvailableAtMs))
                .col(big_integer_null(BrokerMessages::LockedUntilMs))
                .col(boolean(BrokerMessages::Dead))
                .col(text_null(BrokerMessages::LastError))
                .col(big_integer(BrokerMessages::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_broker_messages_ready")
                .table(BrokerMessages::Table)
                .col(BrokerMessages::Lane)
                .col(BrokerMessages::Dead)
                .col(BrokerMessages::AvailableAtMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BrokerLog::Table)
                .col(big_pk_auto(BrokerLog::Id))
                .col(string_len(BrokerLog::MessageId, 128))
                .col(text(BrokerLog::Payload))
                .col(big_integer(BrokerLog::CreatedAtMs))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_broker_log_created")
                .table(BrokerLog::Table)
                .col(BrokerLog::CreatedAtMs)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(BrokerLog::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(BrokerMessages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BrokerMessages {
    Table,
    Id,
    Lane,
    MessageId,
    Payload,
    Attempts,
    AvailableAtMs,
    LockedUntilMs,
    Dead,
    LastError,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum BrokerLog {
    Table,
    Id,
    MessageId,
    Payload,
    CreatedAtMs,
}
