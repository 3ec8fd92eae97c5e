//! `GET /metrics` (Prometheus text format) and the middleware that counts webhook answers
//! by result, so the ingress itself stays free of bookkeeping: every answer of
//! `/webhooks/…` is counted by its HTTP status, named like the error codes.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web, HttpResponse,
};
use chrono::{DateTime, Utc};
use entity::outbox;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::http::AppState;

/// Refreshes the gauges read from the database; a failure leaves their last values (the
/// counters still answer, and `/readyz` reports the database).
async fn measure_outbox(state: &AppState) -> Result<(), sea_orm::DbErr> {
    let waiting = outbox::Entity::find().filter(outbox::Column::PublishedAt.is_null());
    let pending = waiting.clone().count(&state.services.db).await?;
    let oldest = waiting
        .select_only()
        .column(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .into_tuple::<DateTime<Utc>>()
        .one(&state.services.db)
        .await?;
    let lag = oldest.map_or(0, |at| (Utc::now() - at).num_seconds());
    crate::metrics::outbox_backlog(pending as i64, lag);
    Ok(())
}

/// The counters of every role in this process.
#[utoipa::path(
    get, path = "/metrics", operation_id = "getMetrics", tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = measure_outbox(&state).await {
        tracing::warn!(error = %e, "outbox backlog not measured");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}

/// The metric label of a webhook answer.
fn webhook_reason(status: u16) -> (bool, &'static str) {
    match status {
        202 => (true, "accepted"),
        400 => (false, "bad_request"),
        401 => (false, "unauthorized"),
        413 => (false, "payload_too_large"),
        415 => (false, "unsupported_media_type"),
        503 => (false, "broker_unavailable"),
        500 => (false, "internal"),
        _ => (false, "other"),
    }
}

pub async fn count_webhook_answers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_webhook = req.path().starts_with("/webhooks/");
    let response = next.call(req).await?;
    if is_webhook {
        let (accepted, reason) = webhook_reason(response.status().as_u16());
        crate::metrics::notification(accepted, reason);
    }
    Ok(response)
}
