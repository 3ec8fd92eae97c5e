//! The importer's inbox (primary key = event id) and the inbound sync log.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "inbound_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub shop_id: i64,
    pub order_id: Option<i64>,
    pub external_order_id: Option<String>,
    pub source: String,
    pub outcome: String,
    #[sea_orm(column_type = "Text")]
    pub detail: Option<String>,
    pub received_at: DateTimeUtc,
    pub processed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
