//! Who is acting: an employee of one account with its permissions, however they
//! authenticated (the JSON API's bearer token, the operator pages' session). Every service
//! call is made for a [`Caller`] and scoped to its account.

use std::collections::HashSet;

use entity::employees;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use super::ServiceError;
use crate::{domain::Permission, secrets};

/// The authenticated employee. Every query a service makes is scoped by `account_id`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub employee_id: i64,
    pub account_id: i64,
    pub permissions: HashSet<Permission>,
}

impl Caller {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Refuses `action` with a message that names the missing permission.
    pub fn require(&self, permission: Permission, action: &str) -> Result<(), ServiceError> {
        if self.has(permission) {
            return Ok(());
        }
        let label = match permission {
            Permission::GoodsWithoutWriteOff => "can add goods without write-off",
            Permission::ManageIntegrations => "can manage integrations",
            Permission::ManageEmployees => "can manage employees",
        };
        Err(ServiceError::Forbidden(format!(
            "{action} needs the permission `{permission}` ({label})"
        )))
    }
}

/// The employee an API token belongs to (an empty token belongs to nobody). The one
/// lookup behind both doors: the JSON API's bearer token and the UI's sign-in.
pub async fn employee_by_token(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Option<employees::Model>, DbErr> {
    if token.is_empty() {
        return Ok(None);
    }
    employees::Entity::find()
        .filter(employees::Column::TokenHash.eq(secrets::hash_api_token(token)))
        .one(db)
        .await
}

impl From<&employees::Model> for Caller {
    fn from(employee: &employees::Model) -> Self {
        Caller {
            employee_id: employee.id,
            account_id: employee.account_id,
            permissions: employee.permissions.iter().collect(),
        }
    }
}
