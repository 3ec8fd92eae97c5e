//! One arrow of a shop's status mapping: Prom status to RO App status (inbound) or back (outbound).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Direction;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "status_mappings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub shop_id: i64,
    pub direction: Direction,
    pub prom_status: String,
    pub status_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
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
    OrderStatus,
}

impl Related<super::shops::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shop.def()
    }
}

impl Related<super::order_statuses::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrderStatus.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
