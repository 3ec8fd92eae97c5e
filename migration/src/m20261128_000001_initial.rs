//! The whole schema of ARCHITECTURE.md, 'Data model': accounts and their people, shops and
//! their status mappings, the RO App books (clients, categories, products, orders, items)
//! and the integration's own ledgers (inbound inbox/sync log, outbox, outbound sync log).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Money keeps two decimals, as RO App shows it; quantities keep three (Prom sends floats
/// such as 2.5 for weighed goods).
const MONEY: (u32, u32) = (18, 2);
const QTY: (u32, u32) = (18, 3);

fn ts(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone(col)
}
fn ts_null(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone_null(col)
}
fn fk(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(on_delete)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(big_pk_auto(Accounts::Id))
                .col(string(Accounts::Name))
                .col(string_len(Accounts::Currency, 3))
                .col(ts(Accounts::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Employees::Table)
                .col(big_pk_auto(Employees::Id))
                .col(big_integer(Employees::AccountId))
                .col(string(Employees::Name))
                .col(string_uniq(Employees::TokenHash))
                .col(string(Employees::Permissions))
                .col(ts(Employees::CreatedAt))
                .foreign_key(&mut fk(
                    Employees::Table,
                    Employees::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OrderStatuses::Table)
                .col(big_pk_auto(OrderStatuses::Id))
                .col(big_integer(OrderStatuses::AccountId))
                .col(string(OrderStatuses::Name))
                .col(string_len(OrderStatuses::Kind, 16))
                .col(integer(OrderStatuses::Position))
                .foreign_key(&mut fk(
                    OrderStatuses::Table,
                    OrderStatuses::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Shops::Table)
                .col(big_pk_auto(Shops::Id))
                .col(big_integer(Shops::AccountId))
                .col(string(Shops::Name))
                .col(string(Shops::PromUrl))
                .col(string(Shops::PromToken))
                .col(string(Shops::WebhookSecret))
                .col(string_null(Shops::PreviousWebhookSecret))
                .col(ts_null(Shops::PreviousSecretExpiresAt))
                .col(string_len(Shops::Language, 2))
                .col(string_len(Shops::MatchProductsBy, 16))
                .col(string_len(Shops::ClientMatching, 16))
                .col(boolean(Shops::Enabled))
                .col(boolean(Shops::PollEnabled))
                .col(integer(Shops::PollIntervalS))
                .col(ts_null(Shops::PollWatermark))
                .col(string_null(Shops::LeaseOwner))
                .col(ts_null(Shops::LeaseUntil))
                .col(ts_null(Shops::TokenRejectedAt))
                .col(string_null(Shops::OrderUrlTemplate))
                .col(ts(Shops::CreatedAt))
                .foreign_key(&mut fk(
                    Shops::Table,
                    Shops::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(StatusMappings::Table)
                .col(big_pk_auto(StatusMappings::Id))
                .col(big_integer(StatusMappings::ShopId))
                .col(string_len(StatusMappings::Direction, 8))
                .col(string_len(StatusMappings::PromStatus, 64))
                .col(big_integer(StatusMappings::StatusId))
                .foreign_key(&mut fk(
                    StatusMappings::Table,
                    StatusMappings::ShopId,
                    Shops::Table,
                    Shops::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    StatusMappings::Table,
                    StatusMappings::StatusId,
                    OrderStatuses::Table,
                    OrderStatuses::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_status_mappings")
                .table(StatusMappings::Table)
                .col(StatusMappings::ShopId)
                .col(StatusMappings::Direction)
                .col(StatusMappings::PromStatus)
                .col(StatusMappings::StatusId)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Clients::Table)
                .col(big_pk_auto(Clients::Id))
                .col(big_integer(Clients::AccountId))
                .col(string_null(Clients::FirstName))
                .col(string_null(Clients::LastName))
                .col(string_null(Clients::Phone))
                .col(string_null(Clients::PhoneNormalized))
                .col(string_null(Clients::Email))
                .col(ts(Clients::CreatedAt))
                .foreign_key(&mut fk(
                    Clients::Table,
                    Clients::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("ix_clients_phone", Clients::PhoneNormalized),
            ("ix_clients_email", Clients::Email),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Clients::Table)
                    .col(Clients::AccountId)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(Categories::Table)
                .col(big_pk_auto(Categories::Id))
                .col(big_integer(Categories::AccountId))
                .col(string(Categories::Name))
                .foreign_key(&mut fk(
                    Categories::Table,
                    Categories::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_categories_name")
                .table(Categories::Table)
                .col(Categories::AccountId)
                .col(Categories::Name)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Products::Table)
                .col(big_pk_auto(Products::Id))
                .col(big_integer(Products::AccountId))
                .col(string(Products::Name))
                .col(string_null(Products::Sku))
                .col(big_integer_null(Products::PromId))
                .col(text_null(Products::Description))
                .col(string_len(Products::Unit, 16))
                .col(big_integer_null(Products::CategoryId))
                .col(ts(Products::CreatedAt))
                .foreign_key(&mut fk(
                    Products::Table,
                    Products::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    Products::Table,
                    Products::CategoryId,
                    Categories::Table,
                    Categories::Id,
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        // Product matching looks a product up by exactly one of these per shop setting.
        for (name, col) in [
            ("ix_products_name", Products::Name),
            ("ix_products_sku", Products::Sku),
            ("ix_products_prom_id", Products::PromId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(Products::Table)
                    .col(Products::AccountId)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(Orders::Table)
                .col(big_pk_auto(Orders::Id))
                .col(big_integer(Orders::AccountId))
                .col(string(Orders::Number))
                .col(big_integer_null(Orders::ShopId))
                .col(string_null(Orders::ExternalId))
                .col(big_integer(Orders::StatusId))
                .col(string_null(Orders::RemoteStatus))
                .col(ts_null(Orders::RemoteCreatedAt))
                .col(ts_null(Orders::RemoteModifiedAt))
                .col(ts_null(Orders::LastSyncedAt))
                .col(ts_null(Orders::LastRefreshAt))
                .col(big_integer_null(Orders::ClientId))
                .col(decimal_len(Orders::Total, MONEY.0, MONEY.1))
                .col(string_len(Orders::Currency, 3))
                .col(ts_null(Orders::WrittenOffAt))
                .col(ts(Orders::CreatedAt))
                .col(ts(Orders::UpdatedAt))
                .foreign_key(&mut fk(
                    Orders::Table,
                    Orders::AccountId,
                    Accounts::Table,
                    Accounts::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    Orders::Table,
                    Orders::ShopId,
                    Shops::Table,
                    Shops::Id,
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    Orders::Table,
                    Orders::StatusId,
                    OrderStatuses::Table,
                    OrderStatuses::Id,
                    ForeignKeyAction::Restrict,
                ))
                .foreign_key(&mut fk(
                    Orders::Table,
                    Orders::ClientId,
                    Clients::Table,
                    Clients::Id,
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        // 'Exactly once per Prom order' (ARCHITECTURE.md): one order per (shop, Prom order
        // id), whatever the importers race.
        m.create_index(
            Index::create()
                .name("ux_orders_shop_external")
                .table(Orders::Table)
                .col(Orders::ShopId)
                .col(Orders::ExternalId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orders_account_created")
                .table(Orders::Table)
                .col(Orders::AccountId)
                .col(Orders::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OrderItems::Table)
                .col(big_pk_auto(OrderItems::Id))
                .col(big_integer(OrderItems::OrderId))
                .col(big_integer(OrderItems::ProductId))
                .col(integer(OrderItems::Position))
                .col(string(OrderItems::Name))
                .col(string_null(OrderItems::Sku))
                .col(decimal_len(OrderItems::Quantity, QTY.0, QTY.1))
                .col(decimal_len(OrderItems::Price, MONEY.0, MONEY.1))
                .col(boolean(OrderItems::WrittenOff))
                .foreign_key(&mut fk(
                    OrderItems::Table,
                    OrderItems::OrderId,
                    Orders::Table,
                    Orders::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    OrderItems::Table,
                    OrderItems::ProductId,
                    Products::Table,
                    Products::Id,
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_order_items_order")
                .table(OrderItems::Table)
                .col(OrderItems::OrderId)
                .to_owned(),
        )
        .await?;

        // The inbox (primary key = event id, written in the import transaction) doubles as
        // the inbound sync log.
        m.create_table(
            Table::create()
                .table(InboundEvents::Table)
                .col(string_len(InboundEvents::Id, 64).primary_key())
                .col(big_integer(InboundEvents::ShopId))
                .col(big_integer_null(InboundEvents::OrderId))
                .col(string_null(InboundEvents::ExternalOrderId))
                .col(string_len(InboundEvents::Source, 16))
                .col(string_len(InboundEvents::Outcome, 32))
                .col(text_null(InboundEvents::Detail))
                .col(ts(InboundEvents::ReceivedAt))
                .col(ts(InboundEvents::ProcessedAt))
                .foreign_key(&mut fk(
                    InboundEvents::Table,
                    InboundEvents::ShopId,
                    Shops::Table,
                    Shops::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    InboundEvents::Table,
                    InboundEvents::OrderId,
                    Orders::Table,
                    Orders::Id,
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("ix_inbound_events_order", InboundEvents::OrderId),
            ("ix_inbound_events_outcome", InboundEvents::Outcome),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(InboundEvents::Table)
                    .col(col)
                    .col(InboundEvents::ProcessedAt)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .col(big_pk_auto(Outbox::Id))
                .col(big_integer(Outbox::AccountId))
                .col(big_integer(Outbox::ShopId))
                .col(big_integer(Outbox::OrderId))
                .col(string_len(Outbox::Kind, 32))
                .col(text(Outbox::Payload))
                .col(ts(Outbox::CreatedAt))
                .col(ts_null(Outbox::PublishedAt))
                .foreign_key(&mut fk(
                    Outbox::Table,
                    Outbox::OrderId,
                    Orders::Table,
                    Orders::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_unpublished")
                .table(Outbox::Table)
                .col(Outbox::PublishedAt)
                .col(Outbox::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OutboundSyncLog::Table)
                .col(big_pk_auto(OutboundSyncLog::Id))
                .col(big_integer(OutboundSyncLog::ShopId))
                .col(big_integer(OutboundSyncLog::OrderId))
                .col(string_null(OutboundSyncLog::EventId))
                .col(string_null(OutboundSyncLog::PromStatus))
                .col(string_len(OutboundSyncLog::Outcome, 32))
                .col(text_null(OutboundSyncLog::Detail))
                .col(ts(OutboundSyncLog::At))
                .foreign_key(&mut fk(
                    OutboundSyncLog::Table,
                    OutboundSyncLog::OrderId,
                    Orders::Table,
                    Orders::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbound_sync_log_order")
                .table(OutboundSyncLog::Table)
                .col(OutboundSyncLog::OrderId)
                .col(OutboundSyncLog::At)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            OutboundSyncLog::Table.into_iden(),
            Outbox::Table.into_iden(),
            InboundEvents::Table.into_iden(),
            OrderItems::Table.into_iden(),
            Orders::Table.into_iden(),
            Products::Table.into_iden(),
            Categories::Table.into_iden(),
            Clients::Table.into_iden(),
            StatusMappings::Table.into_iden(),
            Shops::Table.into_iden(),
            OrderStatuses::Table.into_iden(),
            Employees::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Name,
    Currency,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Employees {
    Table,
    Id,
    AccountId,
    Name,
    TokenHash,
    Permissions,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OrderStatuses {
    Table,
    Id,
    AccountId,
    Name,
    Kind,
    Position,
}

#[derive(DeriveIden)]
enum Shops {
    Table,
    Id,
    AccountId,
    Name,
    PromUrl,
    PromToken,
    WebhookSecret,
    PreviousWebhookSecret,
    PreviousSecretExpiresAt,
    Language,
    MatchProductsBy,
    ClientMatching,
    Enabled,
    PollEnabled,
    PollIntervalS,
    PollWatermark,
    LeaseOwner,
    LeaseUntil,
    TokenRejectedAt,
    OrderUrlTemplate,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StatusMappings {
    Table,
    Id,
    ShopId,
    Direction,
    PromStatus,
    StatusId,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    AccountId,
    FirstName,
    LastName,
    Phone,
    PhoneNormalized,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    AccountId,
    Name,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    AccountId,
    Name,
    Sku,
    PromId,
    Description,
    Unit,
    CategoryId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    AccountId,
    Number,
    ShopId,
    ExternalId,
    StatusId,
    RemoteStatus,
    RemoteCreatedAt,
    RemoteModifiedAt,
    LastSyncedAt,
    LastRefreshAt,
    ClientId,
    Total,
    Currency,
    WrittenOffAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    ProductId,
    Position,
    Name,
    Sku,
    Quantity,
    Price,
    WrittenOff,
}

#[derive(DeriveIden)]
enum InboundEvents {
    Table,
    Id,
    ShopId,
    OrderId,
    ExternalOrderId,
    Source,
    Outcome,
    Detail,
    ReceivedAt,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    AccountId,
    ShopId,
    OrderId,
    Kind,
    Payload,
    CreatedAt,
    PublishedAt,
}

#[derive(DeriveIden)]
enum OutboundSyncLog {
    Table,
    Id,
    ShopId,
    OrderId,
    EventId,
    PromStatus,
    Outcome,
    Detail,
    At,
}
