//! Who is calling: `Authorization: Bearer <employee token>` resolved to an employee of one
//! account (the token is looked up by its SHA-256 hash; the token itself is never stored
//! or logged), and permission checks. Handing out and revoking tokens is `api::employees`.
//!
//! Token lookups are deliberately not cached: every request reads the `employees` row, so
//! a deleted employee's token answers 401 on the very next request, on every replica.

use std::collections::HashSet;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use entity::employees;
use futures::future::LocalBoxFuture;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::{domain::Permission, error::ApiError, secrets, startup::AppState};

/// The authenticated employee. Every query a handler makes is scoped by `account_id`.
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

    /// 403 with a message that names the missing permission.
    pub fn require(&self, permission: Permission, action: &str) -> Result<(), ApiError> {
        if self.has(permission) {
            return Ok(());
        }
        let label = match permission {
            Permission::GoodsWithoutWriteOff => "can add goods without write-off",
            Permission::ManageIntegrations => "can manage integrations",
            Permission::ManageEmployees => "can manage employees",
        };
        Err(ApiError::Forbidden(format!(
            "{action} needs the permission `{permission}` ({label})"
        )))
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let state = state.ok_or_else(|| anyhow::anyhow!("AppState is not registered"))?;
            let employee = employee_by_token(&state.db, &token)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            Ok(Caller::from(&employee))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_a_well_formed_bearer_header_yields_a_token() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer ps_abc"))
            .to_http_request();
        assert_eq!(bearer(&req).as_deref(), Some("ps_abc"));
        for bad in ["Basic ps_abc", "Bearer ", "ps_abc"] {
            let req = TestRequest::default()
                .insert_header(("Authorization", bad))
                .to_http_request();
            assert_eq!(bearer(&req), None, "{bad}");
        }
    }
}
