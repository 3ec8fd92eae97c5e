//! Who is calling: `Authorization: Bearer <employee token>` resolved to the employee of one
//! account it belongs to, as a `service::Caller` (the token is looked up by its SHA-256
//! hash; the token itself is never stored or logged). Handing out and revoking tokens is
//! `service::employees`.
//!
//! Token lookups are deliberately not cached: every request reads the `employees` row, so
//! a deleted employee's token answers 401 on the very next request, on every replica.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;

pub use crate::service::caller::{employee_by_token, Caller};
use crate::{error::ApiError, http::AppState};

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
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
            let employee = employee_by_token(&state.services.db, &token)
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
