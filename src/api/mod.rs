//! RO App side of the HTTP surface. For now the probes: `GET /healthz` (the process is
//! alive) and `GET /readyz` (the database and the broker answer).

use actix_web::{web, HttpResponse};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.execute_unprepared("SELECT 1").await.is_ok();
    let broker = state.broker.check().await.is_ok();
    let body = json!({
        "database": if database { "ok" } else { "unavailable" },
        "broker": if broker { "ok" } else { "unavailable" },
    });
    if database && broker {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
