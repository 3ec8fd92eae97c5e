//! A shop's order statuses as Prom lists them (`GET /order_status_options/list`): Prom's
//! standard statuses and the seller's own (`custom-<id>`), each with the title Prom shows,
//! so the mapping editor offers titles and refuses a custom status the shop does not have.
//! The shop row remembers why the last fetch failed, for the shop's health. An order
//! remembers the cancellation reason and text an employee gave with a status change to a
//! canceled status, since what goes to Prom is decided from the order's state.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(PromStatusOptions::Table)
                .col(big_pk_auto(PromStatusOptions::Id))
                .col(big_integer(PromStatusOptions::ShopId))
                .col(string_len(PromStatusOptions::Code, 64))
                .col(string(PromStatusOptions::Title))
                // Named like the other closed sets' constraints
                // (m20261130_000007_enum_checks); SQLite keeps it too, as the table is new.
                .col(string_len(PromStatusOptions::Kind, 8).check(Check::named(
                    "ck_prom_status_options_kind",
                    Expr::col(PromStatusOptions::Kind).is_in(["standard", "custom"]),
                )))
                .col(timestamp_with_time_zone(PromStatusOptions::FetchedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(PromStatusOptions::Table, PromStatusOptions::ShopId)
                        .to(Shops::Table, Shops::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_prom_status_options")
                .table(PromStatusOptions::Table)
                .col(PromStatusOptions::ShopId)
                .col(PromStatusOptions::Code)
                .unique()
                .to_owned(),
        )
        .await?;
        add_columns(
            m,
            Shops::Table,
            [
                text_null(Shops::PromStatusesError),
                timestamp_with_time_zone_null(Shops::PromStatusesErrorAt),
            ],
        )
        .await?;
        add_columns(
            m,
            Orders::Table,
            [
                string_len_null(Orders::CancellationReason, 32),
                text_null(Orders::CancellationText),
            ],
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            m,
            Orders::Table,
            [Orders::CancellationReason, Orders::CancellationText],
        )
        .await?;
        drop_columns(
            m,
            Shops::Table,
            [Shops::PromStatusesError, Shops::PromStatusesErrorAt],
        )
        .await?;
        m.drop_table(Table::drop().table(PromStatusOptions::Table).to_owned())
            .await
    }
}

/// SQLite adds or drops one column per ALTER TABLE, so each column is its own statement.
async fn add_columns<const N: usize>(
    m: &SchemaManager<'_>,
    table: impl Iden + Copy + 'static,
    columns: [ColumnDef; N],
) -> Result<(), DbErr> {
    for mut column in columns {
        m.alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

async fn drop_columns<const N: usize>(
    m: &SchemaManager<'_>,
    table: impl Iden + Copy + 'static,
    columns: [impl Iden + 'static; N],
) -> Result<(), DbErr> {
    for column in columns {
        m.alter_table(Table::alter().table(table).drop_column(column).to_owned())
            .await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum PromStatusOptions {
    Table,
    Id,
    ShopId,
    Code,
    Title,
    Kind,
    FetchedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Shops {
    Table,
    Id,
    PromStatusesError,
    PromStatusesErrorAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    CancellationReason,
    CancellationText,
}
