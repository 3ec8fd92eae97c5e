//! The sync log endpoints of the JSON API: the account's log and one order's, read through
//! `service::sync_log`.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::{auth::Caller, ErrorBody};
pub use crate::service::sync_log::{SyncLogEntry, SyncLogQuery};
use crate::{error::ApiError, http::AppState, service::sync_log as service};

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLog {
    pub entries: Vec<SyncLogEntry>,
}

/// The account's sync log, optionally one outcome only.
#[utoipa::path(
    get, path = "/api/sync-log", operation_id = "getSyncLog", tag = "sync log",
    params(SyncLogQuery),
    responses((status = 200, body = SyncLog), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_log(
    caller: Caller,
    query: web::Query<SyncLogQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<SyncLog>, ApiError> {
    let entries = service::query_log(&state.services.db, &caller, None, &query).await?;
    Ok(web::Json(SyncLog { entries }))
}

/// One order's sync log.
#[utoipa::path(
    get, path = "/api/orders/{id}/sync-log", operation_id = "getOrderSyncLog", tag = "sync log",
    params(("id" = i64, Path, description = "Order id"), SyncLogQuery),
    responses(
        (status = 200, body = SyncLog),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = *id))]
pub async fn order_log(
    caller: Caller,
    id: web::Path<i64>,
    query: web::Query<SyncLogQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<SyncLog>, ApiError> {
    let entries = service::query_log(&state.services.db, &caller, Some(*id), &query).await?;
    Ok(web::Json(SyncLog { entries }))
}
