//! The shops endpoints of the JSON API (ARCHITECTURE.md, 'HTTP contract'), for employees
//! with `manage_integrations`: each takes the request apart, calls `service::shops` and
//! shapes the answer. The Prom token and the webhook secrets are write-only: no shop
//! answer carries them, and `rotate-secret` shows a new secret exactly once.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{auth::Caller, ErrorBody};
pub use crate::service::shops::{
    CreatedShop, NewShopBody, PromStatuses, RotatedSecret, ShopPatch, ShopView, StatusMapping,
};
use crate::{error::ApiError, http::AppState, service::shops as service};

#[derive(Debug, Serialize, ToSchema)]
pub struct ShopList {
    pub shops: Vec<ShopView>,
}

#[utoipa::path(
    get, path = "/api/shops", operation_id = "listShops", tag = "shops",
    responses((status = 200, body = ShopList), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopList>, ApiError> {
    let shops = service::list_shops(&state.services.db, &caller).await?;
    Ok(web::Json(ShopList { shops }))
}

/// Connects a Prom shop with the default status mapping; answers its webhook secret once.
#[utoipa::path(
    post, path = "/api/shops", operation_id = "createShop", tag = "shops",
    request_body = NewShopBody,
    responses(
        (status = 201, body = CreatedShop),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Caller,
    body: web::Json<NewShopBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let created = service::create_shop(&state.services, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    get, path = "/api/shops/{id}", operation_id = "getShop", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = ShopView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopView>, ApiError> {
    let shop = service::get_shop(&state.services.db, &caller, *id).await?;
    Ok(web::Json(shop))
}

/// Changes any of a shop's settings; fields left out keep their value.
#[utoipa::path(
    patch, path = "/api/shops/{id}", operation_id = "updateShop", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body = ShopPatch,
    responses(
        (status = 200, body = ShopView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<ShopPatch>,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopView>, ApiError> {
    let shop = service::patch_shop(&state.services, &caller, *id, body.into_inner()).await?;
    Ok(web::Json(shop))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret stays valid, in seconds (default 86400, at most 7 days).
    pub grace_period_s: Option<i64>,
}

/// Replaces the shop's webhook secret; the previous one stays valid for the grace period
/// so senders can switch without losing notifications.
#[utoipa::path(
    post, path = "/api/shops/{id}/rotate-secret", operation_id = "rotateShopSecret", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body(content = Option<RotateSecret>),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<RotatedSecret>, ApiError> {
    let body: RotateSecret = super::optional_json(&body)?;
    let rotated =
        service::rotate_shop_secret(&state.services, &caller, *id, body.grace_period_s).await?;
    Ok(web::Json(rotated))
}

#[utoipa::path(
    get, path = "/api/shops/{id}/status-mapping", operation_id = "getShopStatusMapping", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = StatusMapping),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_mapping(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusMapping>, ApiError> {
    let mapping = service::status_mapping(&state.services.db, &caller, *id).await?;
    Ok(web::Json(mapping))
}

/// Replaces the whole mapping, after checking every Prom status against Prom's standard
/// set and the shop's own statuses on Prom (as last fetched), and every RO App status
/// against the account's.
#[utoipa::path(
    put, path = "/api/shops/{id}/status-mapping", operation_id = "replaceShopStatusMapping", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body = StatusMapping,
    responses(
        (status = 200, body = StatusMapping),
        (status = 400, description = "an unknown Prom status (a custom one the shop does not have on Prom included) or a malformed id", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "the shop, or a status not of the account", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_mapping(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<StatusMapping>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusMapping>, ApiError> {
    let mapping =
        service::replace_status_mapping(&state.services, &caller, *id, body.into_inner()).await?;
    Ok(web::Json(mapping))
}

/// The shop's order statuses on Prom as last fetched (when the shop was connected, its
/// Prom URL or token changed, or on a refresh), with the last fetch's failure if any.
#[utoipa::path(
    get, path = "/api/shops/{id}/prom-statuses", operation_id = "getShopPromStatuses", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = PromStatuses),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_prom_statuses(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<PromStatuses>, ApiError> {
    let statuses = service::prom_statuses(&state.services.db, &caller, *id).await?;
    Ok(web::Json(statuses))
}

/// Fetches the shop's order statuses from Prom now (`GET /order_status_options/list`) and
/// keeps them; a Prom failure answers 502 naming it and is kept as the last fetch error.
#[utoipa::path(
    post, path = "/api/shops/{id}/prom-statuses/refresh", operation_id = "refreshShopPromStatuses", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = PromStatuses),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "Prom failed or refused; the message says why", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn refresh_prom_statuses(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<PromStatuses>, ApiError> {
    let statuses = service::refresh_prom_statuses(&state.services, &caller, *id).await?;
    Ok(web::Json(statuses))
}
