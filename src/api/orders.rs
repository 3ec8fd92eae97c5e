//! The orders endpoints of the JSON API (ARCHITECTURE.md, 'Business rules' from 'Status
//! changes reach Prom' on): each takes the request apart, calls `service::orders` and
//! shapes the answer. The rules live in the service; the view types are its.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{auth::Caller, ErrorBody};
pub use crate::service::orders::{
    ClientView, ItemView, ListQuery, NewClient, NewItem, NewOrder, OrderList, OrderSource,
    OrderView, Outbound, RefreshOutcome, RefreshResult, ShopRef, SourceFilter, StatusChanged,
    StatusView, WaybillSet,
};
use crate::{
    domain::{waybill::Waybill, Carrier},
    error::ApiError,
    http::AppState,
    service::orders::{self as service, REFRESH_INTERVAL_S},
};

/// The account's orders, newest first.
#[utoipa::path(
    get, path = "/api/orders", operation_id = "listOrders", tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`shop_id` is not a shop of the account", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<OrderList>, ApiError> {
    let list = service::list_orders(&state.services.db, &caller, query.into_inner()).await?;
    Ok(web::Json(list))
}

/// One order of the account.
#[utoipa::path(
    get, path = "/api/orders/{id}", operation_id = "getOrder", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<OrderView>, ApiError> {
    let order = service::get_order(&state.services.db, &caller, *id).await?;
    Ok(web::Json(order))
}

/// Creates an order in RO App (no shop). Its number is `R-<n>`, `n` counting the
/// account's RO App orders from 1; the account row is locked while numbering, so two
/// concurrent creations never share a number.
#[utoipa::path(
    post, path = "/api/orders", operation_id = "createOrder", tag = "orders",
    request_body(content = Option<NewOrder>, description = "May be left out: an empty order of the first `new` status"),
    responses(
        (status = 201, body = OrderView),
        (status = 400, body = ErrorBody),
        (status = 404, description = "a product or status is not the account's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewOrder = super::optional_json(&body)?;
    let order = service::create_order(&state.services, &caller, body).await?;
    Ok(HttpResponse::Created().json(order))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status_id: i64,
    /// Only with a status the shop sends to Prom as `canceled`: one of Prom's reasons
    /// (`not_available`, `price_changed`, `buyers_request`, `not_enough_fields`,
    /// `duplicate`, `invalid_phone_number`, `less_than_minimal_price`, `another`); left
    /// out, promsync sends `another` with its configured text.
    #[schema(example = "buyers_request")]
    pub cancellation_reason: Option<String>,
    /// Required with `another`, `price_changed` and `not_enough_fields`; one line, at most
    /// 500 characters.
    pub cancellation_text: Option<String>,
}

/// Changes an order's status; for an imported order the mapped Prom status is queued in the
/// same transaction (or deferred: ARCHITECTURE.md, 'Delivered waits for the write-off').
#[utoipa::path(
    post, path = "/api/orders/{id}/status", operation_id = "changeOrderStatus", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    request_body = StatusChange,
    responses(
        (status = 200, body = StatusChanged),
        (status = 400, description = "a cancellation reason or text Prom would refuse, or one with a status not sent as `canceled`", body = ErrorBody),
        (status = 403, description = "imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_status(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<StatusChange>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusChanged>, ApiError> {
    let body = body.into_inner();
    let cancellation = service::CancellationRequest {
        reason: body.cancellation_reason,
        text: body.cancellation_text,
    };
    let changed =
        service::set_status(&state.services, &caller, *id, body.status_id, cancellation).await?;
    Ok(web::Json(changed))
}

/// Writes off the order's goods. If its status maps to Prom `delivered`, that update is
/// queued now ('Delivered waits for the write-off'). Writing off twice changes nothing the
/// second time.
#[utoipa::path(
    post, path = "/api/orders/{id}/write-off", operation_id = "writeOffOrder", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, body = StatusChanged),
        (status = 403, description = "imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn write_off(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusChanged>, ApiError> {
    let changed = service::write_off_goods(&state.services, &caller, *id).await?;
    Ok(web::Json(changed))
}

/// A waybill (ТТН): Nova Poshta numbers are exactly 14 digits, the others' 8–20 Latin
/// letters or digits.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the request's schema; the body is parsed by `Waybill::try_from`
pub struct WaybillBody {
    #[schema(example = "20450000000001")]
    pub number: String,
    pub carrier: Carrier,
}

/// Sets the order's waybill. It is stored at once (`delivery.declaration_number`) and, for
/// an imported order, sent to Prom through the outbox: the latest waybill wins, and one
/// Prom has taken is not sent again (ARCHITECTURE.md, 'Waybills reach Prom').
#[utoipa::path(
    post, path = "/api/orders/{id}/waybill", operation_id = "setOrderWaybill", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    request_body = WaybillBody,
    responses(
        (status = 202, body = WaybillSet),
        (status = 400, description = "malformed JSON, unknown carrier, or a number that does not fit the carrier; the message names the field", body = ErrorBody),
        (status = 403, description = "imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_waybill(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<serde_json::Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let waybill = Waybill::try_from(&*body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let set = service::set_waybill(&state.services, &caller, *id, waybill).await?;
    Ok(HttpResponse::Accepted().json(set))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub order_ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResults {
    pub results: Vec<RefreshResult>,
}

/// Re-fetches orders from Prom ('Refresh at most every 10 minutes'). Each order passes at
/// most once per 10 minutes, decided by a conditional UPDATE of `last_refresh_at`: only the
/// request whose UPDATE changed the row publishes, whatever replicas race. A publish that
/// fails puts the stamp back and answers 503, so a broker outage does not burn the 10
/// minutes.
#[utoipa::path(
    post, path = "/api/orders/refresh", operation_id = "refreshOrders", tag = "orders",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = RefreshResults),
        (status = 400, body = ErrorBody),
        (status = 403, description = "an imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, description = "an id is not an order of the account", body = ErrorBody),
        (status = 429, description = "none could be queued; `Retry-After` and `results` say when", body = ErrorBody),
        (status = 503, description = "the broker is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn refresh(
    caller: Caller,
    body: web::Json<RefreshRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let results = service::refresh_orders(&state.services, &caller, &body.order_ids).await?;
    match all_too_soon(&results) {
        Some(refusal) => Err(refusal),
        None => Ok(HttpResponse::Ok().json(RefreshResults { results })),
    }
}

/// The 429 of a bulk refresh none of whose orders could be queued, with the soonest
/// `Retry-After` and every order's result beside it.
pub fn all_too_soon(results: &[RefreshResult]) -> Option<ApiError> {
    let queued = results.iter().any(|r| r.result == RefreshOutcome::Queued);
    let soonest = results.iter().filter_map(|r| r.retry_after_s).min();
    match (queued, soonest) {
        (false, Some(retry_after_s)) => Some(ApiError::TooManyRequests {
            message: format!(
                "each order can be refreshed once per {} minutes; retry in {retry_after_s} s",
                REFRESH_INTERVAL_S / 60
            ),
            retry_after_s,
            results: serde_json::to_value(results).ok(),
        }),
        _ => None,
    }
}
