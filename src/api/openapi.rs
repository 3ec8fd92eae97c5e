//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the response types' `ToSchema` derives, so it cannot
//! drift from the code. A route added in `api::routes` must be listed here too (a test
//! checks that every route is documented).

use actix_web::HttpResponse;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{employees, lookups, metrics, orders, shops, sync_log, ErrorBody};

/// The webhook ingress, documented here so the document covers every route (the handler
/// lives in `ingress`, which reads the raw body itself).
#[utoipa::path(
    post, path = "/webhooks/prom/{shop_id}", tag = "webhooks",
    params(
        ("shop_id" = i64, Path, description = "Shop id"),
        ("webhook-id" = String, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = i64, Header, description = "Unix seconds"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, space-separated"),
    ),
    request_body(content = serde_json::Value, description = "`{\"order\": {…}}` or `{\"order_id\": …}`"),
    responses(
        (status = 202, description = "Enqueued after the broker confirmed: `{\"event_id\"}`"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn webhook() {}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An employee API token"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "promsync",
        description = "Order exchange between Prom.ua and RO App: the RO App API, the webhook \
                       ingress and the probes. Errors answer `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        super::healthz,
        super::readyz,
        metrics::metrics,
        document,
        webhook,
        employees::list,
        employees::create,
        employees::delete,
        orders::list,
        orders::create,
        orders::get,
        orders::change_status,
        orders::write_off,
        orders::refresh,
        sync_log::order_log,
        sync_log::account_log,
        shops::list,
        shops::create,
        shops::get,
        shops::patch,
        shops::rotate_secret,
        shops::get_mapping,
        shops::put_mapping,
        lookups::statuses,
        lookups::products,
        lookups::clients,
        lookups::categories,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "probes",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The document as pretty-printed JSON, for tools that check it without a running server
/// (`cargo run --example openapi`).
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}
