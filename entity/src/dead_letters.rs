//! Dead letters of both lanes, each with the account it belongs to (null: no account's).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `inbound` or `outbound`.
    pub lane: String,
    pub message_id: String,
    pub account_id: Option<i64>,
    pub shop_id: Option<i64>,
    /// The Prom order id on the inbound lane, the RO App order id on the outbound lane.
    pub order_id: Option<i64>,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub dead_at: DateTimeUtc,
    #[sea_orm(column_type = "Blob")]
    pub payload: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
