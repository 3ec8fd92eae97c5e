//! One order status a shop has on Prom, as Prom last listed it: its code (`received`,
//! `custom-137639`), the title Prom shows, and whether it is Prom's own or the seller's.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::PromStatusKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "prom_status_options")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub shop_id: i64,
    pub code: String,
    pub title: String,
    pub kind: PromStatusKind,
    pub fetched_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::shops::Entity",
        from = "Column::ShopId",
        to = "super::shops::Column::Id"
    )]
    Shop,
}

impl Related<super::shops::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shop.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
