//! Orders, created in RO App or imported from a Prom shop (then with shop and external id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Carrier;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub number: String,
    pub shop_id: Option<i64>,
    pub external_id: Option<String>,
    pub status_id: i64,
    pub remote_status: Option<String>,
    /// Prom's own name of `remote_status` (`status_name`), when Prom sent one.
    pub remote_status_title: Option<String>,
    pub remote_created_at: Option<DateTimeUtc>,
    pub remote_modified_at: Option<DateTimeUtc>,
    pub last_synced_at: Option<DateTimeUtc>,
    pub last_refresh_at: Option<DateTimeUtc>,
    pub client_id: Option<i64>,
    #[sea_orm(column_type = "Decimal(Some((18, 2)))")]
    pub total: Decimal,
    pub currency: String,
    pub written_off_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Delivery and payment as Prom describes them; all `None` for orders created in RO App.
    pub delivery_method: Option<String>,
    pub delivery_provider: Option<String>,
    pub delivery_type: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub delivery_address: Option<String>,
    pub delivery_recipient_first_name: Option<String>,
    pub delivery_recipient_last_name: Option<String>,
    pub delivery_recipient_phone: Option<String>,
    pub delivery_declaration_number: Option<String>,
    /// Paid by the buyer on top of the goods: never part of `total`.
    #[sea_orm(column_type = "Decimal(Some((18, 2)))", nullable)]
    pub delivery_cost: Option<Decimal>,
    pub payment_method: Option<String>,
    pub payment_status: Option<String>,
    /// The waybill an employee set in RO App (also shown as `delivery_declaration_number`).
    pub waybill_number: Option<String>,
    pub waybill_carrier: Option<Carrier>,
    /// The waybill Prom last took from promsync; `None` while Prom has none of ours, or
    /// after a call whose outcome is unknown.
    pub waybill_sent_number: Option<String>,
    pub waybill_sent_carrier: Option<Carrier>,
    /// The publisher sending the waybill now, and until when it may.
    pub waybill_claim_id: Option<String>,
    pub waybill_claimed_until: Option<DateTimeUtc>,
    /// The reason (one of Prom's) an employee gave with a status change sent to Prom as
    /// `canceled`, and its text; null: promsync's default reason and text.
    pub cancellation_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub cancellation_text: Option<String>,
}

impl Model {
    /// The waybill set in RO App that Prom has not taken yet, if any
    /// (ARCHITECTURE.md, 'Waybills reach Prom').
    pub fn pending_waybill(&self) -> Option<(&str, Carrier)> {
        let number = self.waybill_number.as_deref()?;
        let carrier = self.waybill_carrier?;
        let taken = self.waybill_sent_number.as_deref() == Some(number)
            && self.waybill_sent_carrier == Some(carrier);
        (!taken).then_some((number, carrier))
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
    #[sea_orm(
        belongs_to = "super::shops::Entity",
        from = "Column::ShopId",
        to = "super::shops::Column::Id"
    )]
    Shop,
    #[sea_orm(
        belongs_to = "super::order_statuses::Entity",
        from = "Column::StatusId",
        to = "super::order_statuses::Column::Id"
    )]
    Status,
    #[sea_orm(
        belongs_to = "super::clients::Entity",
        from = "Column::ClientId",
        to = "super::clients::Column::Id"
    )]
    Client,
    #[sea_orm(has_many = "super::order_items::Entity")]
    Items,
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::shops::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shop.def()
    }
}

impl Related<super::order_statuses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Status.def()
    }
}

impl Related<super::clients::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Client.def()
    }
}

impl Related<super::order_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Items.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
