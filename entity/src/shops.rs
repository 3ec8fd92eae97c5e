//! A connected Prom shop: API credentials, webhook secrets, import settings, poll state.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{ClientMatching, Language, MatchProductsBy};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "shops")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub prom_url: String,
    pub prom_token: String,
    pub webhook_secret: String,
    pub previous_webhook_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    pub language: Language,
    pub match_products_by: MatchProductsBy,
    pub client_matching: ClientMatching,
    pub enabled: bool,
    pub poll_enabled: bool,
    pub poll_interval_s: i32,
    pub poll_watermark: Option<DateTimeUtc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub token_rejected_at: Option<DateTimeUtc>,
    pub order_url_template: Option<String>,
    pub created_at: DateTimeUtc,
    /// Why the last fetch of the shop's Prom statuses failed (cleared by a good one).
    #[sea_orm(column_type = "Text", nullable)]
    pub prom_statuses_error: Option<String>,
    pub prom_statuses_error_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
    #[sea_orm(has_many = "super::status_mappings::Entity")]
    StatusMappings,
    #[sea_orm(has_many = "super::orders::Entity")]
    Orders,
    #[sea_orm(has_many = "super::prom_status_options::Entity")]
    PromStatusOptions,
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::status_mappings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StatusMappings.def()
    }
}

impl Related<super::orders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Orders.def()
    }
}

impl Related<super::prom_status_options::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PromStatusOptions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
