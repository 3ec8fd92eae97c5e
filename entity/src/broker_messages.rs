//! Embedded broker: one row per queued message of a lane (deleted when acknowledged).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Lane;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "broker_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub lane: Lane,
    pub message_id: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub attempts: i32,
    pub available_at_ms: i64,
    pub locked_until_ms: Option<i64>,
    pub dead: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
