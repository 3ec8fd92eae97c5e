//! Prom's own name of an imported order's status (`status_name`, e.g. "Підтверджено" for
//! `custom-137639`), so the operator sees what the seller named a custom status rather
//! than its code. Nullable: orders created in RO App, and Prom orders that carry no name,
//! have none.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Orders::Table)
                .add_column(text_null(Orders::RemoteStatusTitle))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Orders::Table)
                .drop_column(Orders::RemoteStatusTitle)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    RemoteStatusTitle,
}
