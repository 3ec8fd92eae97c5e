//! Outbound claims: which publisher is sending an order's status to Prom, so the call to
//! Prom runs with no transaction open. A row says "a `set_status` of `prom_status` may
//! have reached Prom and its outcome is not recorded yet"; while `claimed_until` is ahead
//! another publisher waits for it, and once it is behind (the sender died or gave up)
//! the order is free again but Prom may show `prom_status`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OutboundClaims::Table)
                .col(big_integer(OutboundClaims::OrderId).primary_key())
                .col(string_len(OutboundClaims::ClaimId, 64))
                .col(string_len(OutboundClaims::PromStatus, 64))
                .col(timestamp_with_time_zone(OutboundClaims::ClaimedUntil))
                .foreign_key(
                    ForeignKey::create()
                        .from(OutboundClaims::Table, OutboundClaims::OrderId)
                        .to(Orders::Table, Orders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(OutboundClaims::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OutboundClaims {
    Table,
    OrderId,
    ClaimId,
    PromStatus,
    ClaimedUntil,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}
