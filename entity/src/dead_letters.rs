//! Dead letters of both lanes, each with the account it belongs to (null: no account's).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Lane;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub lane: Lane,
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

/// Declared for loading only: the table has no foreign keys, so nothing in the database
/// ties a dead letter to a live account or shop.
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

impl ActiveModelBehavior for ActiveModel {}
