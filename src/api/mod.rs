//! RO App side of the HTTP surface (ARCHITECTURE.md, 'HTTP contract'): the probes
//! (`/healthz`, `/readyz`), `/metrics`, and the JSON API under `/api`, authenticated by
//! employee bearer tokens and scoped to the caller's account. Modules: `auth` (who is
//! calling), `employees`, `orders`, `shops` (with status mappings), `lookups`, `sync_log`,
//! `dead_letters`, `metrics`, `openapi`. Each endpoint takes its request apart, calls the
//! application layer (`service`) and shapes the answer; the rules are the service's.

pub mod auth;
pub mod dead_letters;
pub mod employees;
pub mod lookups;
pub mod metrics;
pub mod openapi;
pub mod orders;
pub mod shops;
pub mod sync_log;

use actix_web::{web, HttpResponse};
use sea_orm::ConnectionTrait;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::{
    error::{self, ApiError},
    http::AppState,
    roles::RoleState,
};

/// Largest accepted API request body.
const BODY_LIMIT: usize = 256 * 1024;

/// The uniform error body (built by `error::ApiError`; described here for OpenAPI).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// Only on the 429 of a bulk refresh: every order's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<orders::RefreshResult>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(schema_with = error_code_schema)]
    pub code: String,
    pub message: String,
}

/// Every `code` an error answers (`error::ApiError`; a test keeps them in step).
pub const ERROR_CODES: [&str; 11] = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "too_many_requests",
    "broker_unavailable",
    "bad_gateway",
    "internal",
];

fn error_code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ERROR_CODES))
        .description(Some("Machine-readable; `message` says it for people"))
        .build()
}

/// `/metrics` alone, for the main listener or a listener of its own
/// (`PROMSYNC_METRICS_LISTEN`): the totals of every tenant are for the installation's
/// monitoring, not for the internet.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics::metrics));
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .service(
            web::scope("/api")
                .app_data(
                    web::JsonConfig::default()
                        .limit(BODY_LIMIT)
                        .error_handler(error::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                // An id that is not a number names nothing: 404, like an unknown id.
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()),
                )
                .app_data(web::PayloadConfig::new(BODY_LIMIT))
                .route("/openapi.json", web::get().to(openapi::document))
                .route("/employees", web::get().to(employees::list))
                .route("/employees", web::post().to(employees::create))
                .route("/employees/{id}", web::delete().to(employees::delete))
                .route("/orders", web::get().to(orders::list))
                .route("/orders", web::post().to(orders::create))
                .route("/orders/refresh", web::post().to(orders::refresh))
                .route("/orders/{id}", web::get().to(orders::get))
                .route("/orders/{id}/status", web::post().to(orders::change_status))
                .route("/orders/{id}/write-off", web::post().to(orders::write_off))
                .route("/orders/{id}/waybill", web::post().to(orders::set_waybill))
                .route("/orders/{id}/sync-log", web::get().to(sync_log::order_log))
                .route("/sync-log", web::get().to(sync_log::account_log))
                .route("/dead-letters", web::get().to(dead_letters::list))
                .route(
                    "/dead-letters/requeue",
                    web::post().to(dead_letters::requeue),
                )
                .route("/shops", web::get().to(shops::list))
                .route("/shops", web::post().to(shops::create))
                .route("/shops/{id}", web::get().to(shops::get))
                .route("/shops/{id}", web::patch().to(shops::patch))
                .route(
                    "/shops/{id}/rotate-secret",
                    web::post().to(shops::rotate_secret),
                )
                .route(
                    "/shops/{id}/status-mapping",
                    web::get().to(shops::get_mapping),
                )
                .route(
                    "/shops/{id}/status-mapping",
                    web::put().to(shops::put_mapping),
                )
                .route(
                    "/shops/{id}/prom-statuses",
                    web::get().to(shops::get_prom_statuses),
                )
                .route(
                    "/shops/{id}/prom-statuses/refresh",
                    web::post().to(shops::refresh_prom_statuses),
                )
                .route("/statuses", web::get().to(lookups::statuses))
                .route("/products", web::get().to(lookups::products))
                .route("/clients", web::get().to(lookups::clients))
                .route("/categories", web::get().to(lookups::categories))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::NotFound)
                })),
        );
}

/// A JSON body that may be left out entirely (then `T::default()`); a body that is sent
/// must parse, so a typo is a 400 rather than silently ignored.
pub fn optional_json<T: DeserializeOwned + Default>(body: &web::Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "probes", responses((status = 200, description = "`{\"status\": \"ok\"}`")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database and the broker answer, and every role of this process is running.
#[utoipa::path(
    get, path = "/readyz", operation_id = "getReadiness", tag = "probes",
    responses(
        (status = 200, description = "`{\"database\": \"ok\", \"broker\": \"ok\", \"roles\": {\"importer\": \"ok\", …}}`"),
        (status = 503, description = "the database or the broker is unavailable, or a role is not running (`failed`, `panicked`, `ended_early`, `stopped`)"),
    )
)]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state
        .services
        .db
        .execute_unprepared("SELECT 1")
        .await
        .is_ok();
    let broker = state.services.broker.check().await.is_ok();
    let roles = state.roles.snapshot();
    // A role that failed takes the process down soon; until then it must get no traffic.
    let roles_running = roles.values().all(|role| *role == RoleState::Running);
    let roles: serde_json::Map<String, serde_json::Value> = roles
        .into_iter()
        .map(|(name, role)| (name.to_owned(), role.as_str().into()))
        .collect();
    let body = json!({
        "database": if database { "ok" } else { "unavailable" },
        "broker": if broker { "ok" } else { "unavailable" },
        "roles": roles,
    });
    if database && broker && roles_running {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
