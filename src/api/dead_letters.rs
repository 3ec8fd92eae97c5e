//! `GET /api/dead-letters` and `POST /api/dead-letters/requeue`: the caller's account's
//! dead letters, for employees who manage integrations. Both are plain queries of the
//! `dead_letters` table scoped by account (`service::dead_letters`): listing never touches
//! the broker, and a requeue only ever takes rows of the caller's account.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{auth::Caller, ErrorBody};
use crate::{
    broker::dead_letters::DeadLetterView, error::ApiError, http::AppState,
    service::dead_letters as service,
};

const DEFAULT_LIMIT: u64 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// At most this many, newest first (default 100, 1–1000).
    pub limit: Option<u64>,
    /// Only dead letters with a smaller id: pass the last id of a page for the next one.
    pub before_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetterView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueBody {
    /// Dead-letter ids (at most 1000); ids that are not the caller's account's are ignored.
    pub ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    /// How many of the caller's dead letters went back to their queue.
    pub requeued: u64,
}

/// The account's dead letters (messages that gave up after their attempts, or at once on
/// a permanent failure), newest first.
#[utoipa::path(
    get, path = "/api/dead-letters", tag = "sync log", operation_id = "listDeadLetters",
    params(DeadLettersQuery),
    responses(
        (status = 200, body = DeadLetters),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    query: web::Query<DeadLettersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let letters = service::list(&state.services.db, &caller, query.before_id, limit).await?;
    Ok(HttpResponse::Ok().json(DeadLetters {
        dead_letters: letters,
    }))
}

/// Sends the account's dead letters among `ids` back to their queues with a fresh attempt
/// count; answers how many.
#[utoipa::path(
    post, path = "/api/dead-letters/requeue", tag = "sync log",
    operation_id = "requeueDeadLetters",
    request_body = RequeueBody,
    responses(
        (status = 200, body = Requeued),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn requeue(
    caller: Caller,
    body: web::Json<RequeueBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let requeued = service::requeue(&state.services, &caller, &body.ids).await?;
    Ok(HttpResponse::Ok().json(Requeued { requeued }))
}
