//! Orders, created in RO App or imported from a Prom shop (then with shop and external id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
