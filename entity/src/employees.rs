//! People of an account; only a hash of their API token is kept.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::Permissions;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "employees")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub permissions: Permissions,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
    #[sea_orm(has_many = "super::ui_sessions::Entity")]
    UiSessions,
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl Related<super::ui_sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UiSessions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
