//! `GET /api/dead-letters` and `POST /api/dead-letters/requeue`: the caller's account's
//! dead letters, for employees who manage integrations. Both are plain queries of the
//! `dead_letters` table scoped by account (`crate::dead_letters`): listing never touches
//! the broker, and a requeue only ever takes rows of the caller's account.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{auth::Caller, ErrorBody};
use crate::{
    dead_letters::{self, DeadLetterView, REQUEUE_MAX_IDS},
    domain::Permission,
    error::ApiError,
    startup::AppState,
};

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

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
    caller.require(Permission::ManageIntegrations, "listing dead letters")?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let letters =
        dead_letters::list_for_account(&state.db, caller.account_id, query.before_id, limit)
            .await?;
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
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn requeue(
    caller: Caller,
    body: web::Json<RequeueBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageIntegrations, "requeueing dead letters")?;
    if body.ids.len() > REQUEUE_MAX_IDS {
        return Err(ApiError::BadRequest(format!(
            "`ids` may name at most {REQUEUE_MAX_IDS} dead letters"
        )));
    }
    let requeued = dead_letters::requeue_for_account(
        &state.db,
        state.broker.as_ref(),
        caller.account_id,
        &body.ids,
    )
    .await?;
    tracing::info!(
        requested = body.ids.len(),
        requeued,
        "dead letters requeued"
    );
    Ok(HttpResponse::Ok().json(Requeued { requeued }))
}
