//! `GET /metrics` (Prometheus text format) and the middleware that counts and times webhook
//! answers by result, so the ingress itself stays free of bookkeeping: every answer of
//! `/webhooks/…` is counted by its HTTP status, named like the error codes.

use std::time::Instant;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web, HttpResponse,
};

use crate::{http::AppState, metrics::StoreGauges, roles::RoleState, service};

/// Every metric of this process, with the store's gauges measured first (at most every
/// few seconds, bounded in time: see `metrics::StoreGauges`).
#[utoipa::path(
    get, path = "/metrics", operation_id = "getMetrics", tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>, gauges: web::Data<StoreGauges>) -> HttpResponse {
    gauges
        .refresh(service::backlog::measure(&state.services))
        .await;
    let roles = state.roles.snapshot();
    // A process without a supervisor (an `Application` started alone) is its HTTP role,
    // which is up since it is answering.
    let http_up = roles.is_empty().then_some(("http", true));
    gauges.set_roles(
        roles
            .iter()
            .map(|(role, role_state)| (*role, *role_state == RoleState::Running))
            .chain(http_up),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(Some(gauges.get_ref())))
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
    let started = Instant::now();
    let response = next.call(req).await?;
    if is_webhook {
        let (accepted, reason) = webhook_reason(response.status().as_u16());
        crate::metrics::notification(accepted, reason);
        crate::metrics::webhook_answered(accepted, started.elapsed());
    }
    Ok(response)
}
