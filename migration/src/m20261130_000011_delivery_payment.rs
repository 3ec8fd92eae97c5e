//! Delivery and payment of imported orders, as Prom describes them: display data for the
//! operator, all nullable because orders created in RO App (and older imports) have none.
//! `delivery_cost` is money the buyer pays on top of the goods, never part of `total`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// NUMERIC(18,2), like every other amount.
const MONEY: (u32, u32) = (18, 2);

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE, so each column is its own statement.
        let columns = [
            string_null(Orders::DeliveryMethod),
            string_null(Orders::DeliveryProvider),
            string_null(Orders::DeliveryType),
            text_null(Orders::DeliveryAddress),
            string_null(Orders::DeliveryRecipientFirstName),
            string_null(Orders::DeliveryRecipientLastName),
            string_null(Orders::DeliveryRecipientPhone),
            string_null(Orders::DeliveryDeclarationNumber),
            decimal_len_null(Orders::DeliveryCost, MONEY.0, MONEY.1),
            string_null(Orders::PaymentMethod),
            string_null(Orders::PaymentStatus),
        ];
        for mut column in columns {
            m.alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Orders::DeliveryMethod,
            Orders::DeliveryProvider,
            Orders::DeliveryType,
            Orders::DeliveryAddress,
            Orders::DeliveryRecipientFirstName,
            Orders::DeliveryRecipientLastName,
            Orders::DeliveryRecipientPhone,
            Orders::DeliveryDeclarationNumber,
            Orders::DeliveryCost,
            Orders::PaymentMethod,
            Orders::PaymentStatus,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    DeliveryMethod,
    DeliveryProvider,
    DeliveryType,
    DeliveryAddress,
    DeliveryRecipientFirstName,
    DeliveryRecipientLastName,
    DeliveryRecipientPhone,
    DeliveryDeclarationNumber,
    DeliveryCost,
    PaymentMethod,
    PaymentStatus,
}
