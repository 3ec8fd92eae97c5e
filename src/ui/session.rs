//! Who is using the UI: an employee signs in once with their API token and gets a session
//! cookie (random, HttpOnly, SameSite=Strict, path `/ui`; only its SHA-256 is stored, in
//! `ui_sessions`). Every form carries a CSRF token derived from the session cookie, so a
//! page that cannot read the cookie cannot forge one; the sign-in form, which has no
//! session yet, uses a double-submit cookie instead.
//!
//! Permissions come from the same `Caller` the JSON API uses.

use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    dev::Payload,
    http::{header, StatusCode},
    web, FromRequest, HttpRequest, HttpResponse, ResponseError,
};
use chrono::Duration;
use entity::{employees, ui_sessions};
use futures::future::LocalBoxFuture;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use subtle::ConstantTimeEq;

use super::i18n::Lang;
use crate::{
    error::ApiError,
    http::AppState,
    secrets,
    service::caller::{employee_by_token, Caller},
};

pub const SESSION_COOKIE: &str = "promsync_session";
pub const LOGIN_CSRF_COOKIE: &str = "promsync_login";
/// A session ends this long after sign-in.
const SESSION_TTL_H: i64 = 12;
/// Largest accepted form body.
pub const FORM_LIMIT: usize = 64 * 1024;

/// A signed-in employee, with the CSRF token their forms must carry.
pub struct Operator {
    pub caller: Caller,
    pub name: String,
    pub csrf: String,
    pub lang: Lang,
}

/// The CSRF token of a session: a hash of the session cookie, so it needs no storage
/// and is worthless without the cookie.
fn csrf_of(session: &str) -> String {
    secrets::hash_api_token(&format!("csrf:{session}"))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Cookies are `Secure` when the browser reached us over HTTPS (directly or through a
/// proxy that says so), and plain on `http://127.0.0.1` for local use and tests.
fn cookie<'c>(req: &HttpRequest, name: &'c str, value: String, max_age_s: i64) -> Cookie<'c> {
    Cookie::build(name, value)
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(CookieDuration::seconds(max_age_s))
        .finish()
}

/// Why a UI request did not get through: sign in first, or a refused form.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("sign in first")]
    SignIn,
    #[error("the CSRF token does not match the session")]
    Csrf(Lang),
    #[error("the form is not url-encoded")]
    NotAForm,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::SignIn => StatusCode::SEE_OTHER,
            Refusal::Csrf(_) => StatusCode::FORBIDDEN,
            Refusal::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Refusal::SignIn => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/ui/login"))
                .finish(),
            Refusal::Csrf(lang) => {
                super::page::bare_error(*lang, StatusCode::FORBIDDEN, lang.texts().error_csrf)
            }
            Refusal::NotAForm => super::page::bare_error(
                Lang::Uk,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/x-www-form-urlencoded",
            ),
            Refusal::Api(e) => e.error_response(),
        }
    }
}

impl FromRequest for Operator {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let lang = Lang::of(req);
        Box::pin(async move {
            let session = session.ok_or(Refusal::SignIn)?;
            let state = state.ok_or_else(|| {
                Refusal::Api(anyhow::anyhow!("AppState is not registered").into())
            })?;
            let now = state.services.clock.now();
            let Some(row) = ui_sessions::Entity::find_by_id(secrets::hash_api_token(&session))
                .filter(ui_sessions::Column::ExpiresAt.gt(now))
                .one(&state.services.db)
                .await
                .map_err(ApiError::from)?
            else {
                return Err(Refusal::SignIn);
            };
            let employee = employees::Entity::find_by_id(row.employee_id)
                .one(&state.services.db)
                .await
                .map_err(ApiError::from)?
                .ok_or(Refusal::SignIn)?;
            Ok(Operator {
                caller: Caller::from(&employee),
                name: employee.name,
                csrf: csrf_of(&session),
                lang,
            })
        })
    }
}

/// A url-encoded form body, as name/value pairs (a name may repeat: checkboxes).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

fn form_body(req: &HttpRequest, body: &[u8]) -> Result<Fields, Refusal> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(Refusal::NotAForm);
    }
    Ok(Fields::parse(body))
}

/// A form posted by a signed-in employee whose CSRF token matched: the only way a UI
/// handler gets a request body, so no form can skip the check.
pub struct Posted {
    pub op: Operator,
    pub fields: Fields,
}

impl FromRequest for Posted {
    type Error = Refusal;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let op = Operator::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let op = op.await?;
            let body = body
                .await
                .map_err(|_| Refusal::Api(ApiError::PayloadTooLarge { limit: FORM_LIMIT }))?;
            let fields = form_body(&req, &body)?;
            if !fields.get("csrf").is_some_and(|t| same(t, &op.csrf)) {
                tracing::warn!(
                    employee_id = op.caller.employee_id,
                    "UI form refused: CSRF token mismatch"
                );
                return Err(Refusal::Csrf(op.lang));
            }
            Ok(Posted { op, fields })
        })
    }
}

/// `GET /ui/login`: the sign-in form, with a fresh double-submit token.
pub async fn login_form(req: HttpRequest) -> HttpResponse {
    login_page(&req, None, StatusCode::OK)
}

fn login_page(req: &HttpRequest, error: Option<&str>, status: StatusCode) -> HttpResponse {
    let lang = Lang::of(req);
    let token = secrets::new_api_token();
    let body = super::page::login(lang, &token, error);
    HttpResponse::build(status)
        .cookie(cookie(req, LOGIN_CSRF_COOKIE, token, 3600))
        .content_type(mime::TEXT_HTML_UTF_8)
        .body(body.into_string())
}

/// `POST /ui/login`: checks the double-submit token, then the employee token; on success
/// starts a session and goes to the orders.
#[tracing::instrument(skip_all, fields(employee_id = tracing::field::Empty))]
pub async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let lang = Lang::of(&req);
    let texts = lang.texts();
    let fields = form_body(&req, &body)?;
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    let posted = fields.get("csrf").unwrap_or_default();
    if !expected.is_some_and(|e| same(&e, posted)) {
        return Ok(login_page(
            &req,
            Some(texts.login_expired_form),
            StatusCode::FORBIDDEN,
        ));
    }
    let token = fields.get("token").unwrap_or_default().trim();
    let employee = employee_by_token(&state.services.db, token)
        .await
        .map_err(ApiError::from)?;
    let Some(employee) = employee else {
        tracing::info!("UI sign-in refused: unknown token");
        return Ok(login_page(
            &req,
            Some(texts.login_bad_token),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let now = state.services.clock.now();
    // Expired sessions are swept at sign-in: the table stays small without a timer.
    ui_sessions::Entity::delete_many()
        .filter(ui_sessions::Column::ExpiresAt.lte(now))
        .exec(&state.services.db)
        .await
        .map_err(ApiError::from)?;
    let session = secrets::new_api_token();
    ui_sessions::ActiveModel {
        id: Set(secrets::hash_api_token(&session)),
        employee_id: Set(employee.id),
        created_at: Set(now),
        expires_at: Set(now + Duration::hours(SESSION_TTL_H)),
    }
    .insert(&state.services.db)
    .await
    .map_err(ApiError::from)?;
    tracing::Span::current().record("employee_id", employee.id);
    tracing::info!("UI session started");
    let mut expired_login = cookie(&req, LOGIN_CSRF_COOKIE, String::new(), 0);
    expired_login.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/orders"))
        .cookie(cookie(&req, SESSION_COOKIE, session, SESSION_TTL_H * 3600))
        .cookie(expired_login)
        .finish())
}

/// `POST /ui/logout`: ends the session everywhere (the row is deleted).
#[tracing::instrument(skip_all, fields(employee_id = posted.op.caller.employee_id))]
pub async fn logout(
    req: HttpRequest,
    posted: Posted,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    if let Some(session) = req.cookie(SESSION_COOKIE) {
        ui_sessions::Entity::delete_by_id(secrets::hash_api_token(session.value()))
            .exec(&state.services.db)
            .await
            .map_err(ApiError::from)?;
    }
    let mut removal = cookie(&req, SESSION_COOKIE, String::new(), 0);
    removal.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/login"))
        .cookie(removal)
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_depends_on_the_session_and_compares_exactly() {
        let (a, b) = (csrf_of("s1"), csrf_of("s2"));
        assert_ne!(a, b);
        assert!(same(&a, &csrf_of("s1")));
        assert!(!same(&a, &b));
        assert!(!same(&a, ""));
    }

    #[test]
    fn repeated_form_fields_are_all_kept() {
        let fields = Fields::parse(b"csrf=x&order_id=1&order_id=2&name=a%20b");
        assert_eq!(fields.all("order_id").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(fields.get("name"), Some("a b"));
        assert_eq!(fields.get("missing"), None);
    }
}
