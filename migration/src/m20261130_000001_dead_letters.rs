//! Dead letters recorded in the database, one row per message that gave up, with the
//! account it belongs to: tenants list and requeue their own with a plain account-scoped
//! query, and nobody has to read the broker's dead-letter queues to see them.
//!
//! `(lane, message_id)` is unique so that recording is idempotent: a dead letter the
//! drainer recorded but could not acknowledge comes back and changes nothing. The payload
//! is kept byte for byte (a blob) because requeueing publishes it again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeadLetters::Table)
                .col(big_pk_auto(DeadLetters::Id))
                .col(string_len(DeadLetters::Lane, 16))
                .col(string_len(DeadLetters::MessageId, 128))
                // Null when the payload names no shop of any account: only the
                // installation's operator (`promsync dlq`) sees those.
                .col(big_integer_null(DeadLetters::AccountId))
                .col(big_integer_null(DeadLetters::ShopId))
                .col(big_integer_null(DeadLetters::OrderId))
                .col(integer(DeadLetters::Attempts))
                .col(text_null(DeadLetters::LastError))
                .col(timestamp_with_time_zone(DeadLetters::DeadAt))
                .col(blob(DeadLetters::Payload))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_dead_letters_message")
                .table(DeadLetters::Table)
                .col(DeadLetters::Lane)
                .col(DeadLetters::MessageId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_dead_letters_account")
                .table(DeadLetters::Table)
                .col(DeadLetters::AccountId)
                .col(DeadLetters::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DeadLetters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    Lane,
    MessageId,
    AccountId,
    ShopId,
    OrderId,
    Attempts,
    LastError,
    DeadAt,
    Payload,
}
