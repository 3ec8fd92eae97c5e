//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the response types' `ToSchema` derives, so it cannot
//! drift from the code. A route added in `api::routes` must be listed here too (a test
//! checks that every route is documented).

use actix_web::HttpResponse;
use utoipa::{
    openapi::{
        request_body::RequestBody,
        schema::{Schema, SchemaType, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, Ref, RefOr, Required, ResponseBuilder,
    },
    Modify, OpenApi,
};

use super::{dead_letters, employees, lookups, metrics, orders, shops, sync_log, ErrorBody};

/// The webhook ingress, documented here so the document covers every route (the handler
/// lives in `ingress`, which reads the raw body itself).
#[utoipa::path(
    post, path = "/webhooks/prom/{shop_id}", operation_id = "receivePromWebhook", tag = "webhooks",
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
        (status = 503, description = "Not enqueued: the broker (or the database holding the shop's keys) is down or did not answer within `PROMSYNC_PUBLISH_TIMEOUT_MS`; retry after `Retry-After`", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn webhook() {}

/// `Option<T>` as a request body means the body may be left out (`api::optional_json`),
/// not that it may be JSON `null`: the body is `T`, and not required.
fn body_may_be_left_out(body: &mut RequestBody) {
    let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    for content in body.content.values_mut() {
        let inner = match &content.schema {
            Some(RefOr::T(Schema::OneOf(one_of)))
                if one_of.items.len() == 2 && one_of.items.iter().any(is_null) =>
            {
                one_of.items.iter().find(|s| !is_null(s)).cloned()
            }
            _ => None,
        };
        if let Some(inner) = inner {
            content.schema = Some(inner);
            body.required = Some(Required::False);
        }
    }
}

/// The bearer scheme, and what every operation has in common: a 401 wherever a token is
/// needed, and optional request bodies said the way they work.
struct Conventions;

impl Modify for Conventions {
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
        // Every operation that takes a token answers 401 without a valid one.
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if let Some(body) = operation.request_body.as_mut() {
                    body_may_be_left_out(body);
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    operation
                        .responses
                        .responses
                        .entry("401".to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description("Missing or invalid token")
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .into()
                        });
                }
            }
        }
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
        orders::set_waybill,
        orders::refresh,
        sync_log::order_log,
        sync_log::account_log,
        dead_letters::list,
        dead_letters::requeue,
        shops::list,
        shops::create,
        shops::get,
        shops::patch,
        shops::rotate_secret,
        shops::get_mapping,
        shops::put_mapping,
        shops::get_prom_statuses,
        shops::refresh_prom_statuses,
        lookups::statuses,
        lookups::products,
        lookups::clients,
        lookups::categories,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", operation_id = "getOpenApiDocument", tag = "probes",
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_str(&document_json()).unwrap()
    }

    const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

    /// `(method, path)` of every documented operation.
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    found.push((method.to_owned(), path.clone(), operation));
                }
            }
        }
        found
    }

    /// `(method, path)` of every route `api::routes` and `api::metrics_routes` serve,
    /// read from their source: a route added there and not here fails the test below.
    fn served_routes() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let start = source.find("pub fn metrics_routes").unwrap();
        let end = source.find("pub fn optional_json").unwrap();
        let source = &source[start..end];
        let scope = source.find("web::scope(\"/api\")").unwrap();
        let mut routes = BTreeSet::new();
        for (offset, _) in source.match_indices(".route(") {
            let rest = &source[offset + ".route(".len()..];
            let path = rest.split('"').nth(1).unwrap();
            let method = rest.split("web::").nth(1).unwrap();
            let method = &method[..method.find("()").unwrap()];
            let prefix = if offset > scope { "/api" } else { "" };
            routes.insert((method.to_owned(), format!("{prefix}{path}")));
        }
        routes
    }

    #[test]
    fn operation_ids_are_unique_and_descriptive() {
        let doc = doc();
        let mut seen = HashSet::new();
        for (method, path, operation) in operations(&doc) {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
            // A verb and what it acts on, in lowerCamelCase: `listOrders`, not `list`.
            assert!(
                id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric())
                    && id.chars().any(|c| c.is_ascii_uppercase()),
                "{method} {path}: operationId {id} is not descriptive lowerCamelCase"
            );
        }
        assert!(seen.contains("listOrders") && seen.contains("createShop"));
    }

    #[test]
    fn every_route_served_is_documented_and_no_other() {
        let doc = doc();
        let served = served_routes();
        assert!(served.len() > 20, "the route parser found {served:?}");
        assert!(served.contains(&("get".into(), "/api/orders/{id}".into())));
        assert!(served.contains(&("post".into(), "/api/shops/{id}/rotate-secret".into())));
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
        // The webhook ingress is served by `ingress`, outside `api::routes`.
        let phantom: Vec<_> = documented
            .difference(&served)
            .filter(|(_, path)| !path.starts_with("/webhooks/"))
            .collect();
        assert!(phantom.is_empty(), "documented but not served: {phantom:?}");
    }

    #[test]
    fn every_reference_resolves_and_optional_bodies_are_not_null() {
        let doc = doc();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {target}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} does not resolve"
            );
        }
        for (path, method, schema) in [
            ("/api/orders", "post", "NewOrder"),
            ("/api/shops/{id}/rotate-secret", "post", "RotateSecret"),
        ] {
            let body = &doc["paths"][path][method]["requestBody"];
            assert_eq!(body["required"], false, "{method} {path}: {body}");
            assert_eq!(
                body["content"]["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{schema}")
            );
        }
    }

    #[test]
    fn every_operation_with_a_token_documents_401() {
        let doc = doc();
        for (method, path, operation) in operations(&doc) {
            if operation.get("security").is_some() {
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path} does not document 401"
                );
            }
        }
    }

    /// The values of a string enum `schema` (through `$ref`, `oneOf` with null, arrays).
    fn enum_values(doc: &Value, schema: &Value) -> Vec<String> {
        if let Some(target) = schema["$ref"].as_str() {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            return enum_values(doc, &doc["components"]["schemas"][name]);
        }
        if let Some(values) = schema["enum"].as_array() {
            return values
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
        }
        if schema["items"].is_object() {
            return enum_values(doc, &schema["items"]);
        }
        if let Some(options) = schema["oneOf"].as_array() {
            return options
                .iter()
                .filter(|o| o["type"] != "null")
                .flat_map(|o| enum_values(doc, o))
                .collect();
        }
        Vec::new()
    }

    #[test]
    fn an_order_has_nullable_delivery_and_payment_objects() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];

        let order = &schemas["OrderView"]["properties"];
        let delivery = &schemas["DeliveryView"]["properties"];

        for field in ["delivery", "payment"] {
            let text = order[field].to_string();
            assert!(text.contains("null"), "{field} is not nullable: {text}");
        }
        for field in [
            "method",
            "provider",
            "type",
            "address",
            "recipient",
            "declaration_number",
            "cost",
        ] {
            assert!(
                delivery[field].is_object(),
                "DeliveryView.{field}: {delivery}"
            );
        }
        assert!(schemas["PaymentView"]["properties"]["status"].is_object());
    }

    #[test]
    fn fields_of_a_fixed_set_of_values_are_enums() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let field = |schema: &str, field: &str| {
            let values = enum_values(&doc, &schemas[schema]["properties"][field]);
            assert!(!values.is_empty(), "{schema}.{field} is not an enum");
            values
        };
        assert_eq!(field("OrderView", "source"), ["roapp", "prom"]);
        assert_eq!(
            field("StatusView", "kind"),
            ["new", "in_progress", "done", "canceled"]
        );
        assert_eq!(
            field("SyncLogEntry", "source"),
            ["webhook", "poll", "refresh", "replay", "outbound"]
        );
        let outcomes = field("SyncLogEntry", "outcome");
        assert!(outcomes.contains(&"skipped_written_off".to_owned()));
        assert!(!outcomes.contains(&"processing".to_owned()), "never shown");
        assert_eq!(field("SyncLogEntry", "direction"), ["inbound", "outbound"]);
        assert_eq!(field("DeadLetterView", "lane"), ["inbound", "outbound"]);
        for schema in ["ShopView", "NewShopBody", "ShopPatch"] {
            assert_eq!(field(schema, "language"), ["uk", "ru"]);
            assert_eq!(
                field(schema, "match_products_by"),
                ["name", "sku", "prom_id"]
            );
            assert_eq!(
                field(schema, "client_matching"),
                ["always_new", "phone_or_email"]
            );
        }
        let permissions = [
            "goods_without_write_off",
            "manage_integrations",
            "manage_employees",
        ];
        assert_eq!(field("EmployeeView", "permissions"), permissions);
        assert_eq!(field("NewEmployee", "permissions"), permissions);
        assert_eq!(
            field("StatusChanged", "outbound"),
            ["queued", "deferred_until_write_off", "not_mapped", "none"]
        );
        assert_eq!(
            field("WaybillBody", "carrier"),
            ["nova_poshta", "ukrposhta", "meest"]
        );
        assert_eq!(
            field("RefreshResult", "result"),
            ["queued", "too_soon", "not_imported"]
        );
        assert_eq!(
            field("ErrorDetail", "code").len(),
            super::super::ERROR_CODES.len()
        );
        let mapping = &schemas["StatusMapping"]["properties"];
        assert_eq!(
            enum_values(&doc, &mapping["inbound"]["propertyNames"]),
            ["pending", "received", "delivered", "canceled", "paid"]
        );
        assert_eq!(
            enum_values(&doc, &mapping["outbound"]["additionalProperties"]),
            ["received", "delivered", "canceled"]
        );
        // Query parameters too.
        let param = |path: &str, name: &str| {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let param = params.iter().find(|p| p["name"] == name).unwrap();
            enum_values(&doc, &param["schema"])
        };
        assert_eq!(
            param("/api/orders", "source"),
            ["roapp", "integrations", "all"]
        );
        assert!(param("/api/sync-log", "outcome").contains(&"rejected".to_owned()));
    }

    /// Every code an `ApiError` answers is one the document lists.
    #[actix_web::test]
    async fn the_error_codes_listed_are_the_ones_answered() {
        use crate::error::ApiError;
        let errors = [
            ApiError::BadRequest(String::new()),
            ApiError::Unauthorized,
            ApiError::Forbidden(String::new()),
            ApiError::NotFound,
            ApiError::Missing(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::UnsupportedMediaType,
            ApiError::TooManyRequests {
                message: String::new(),
                retry_after_s: 1,
                results: None,
            },
            ApiError::BrokerUnavailable { retry_after_s: 1 },
            ApiError::BadGateway(String::new()),
            ApiError::Internal(anyhow::anyhow!("test")),
        ];
        let mut answered = BTreeSet::new();
        for error in &errors {
            // A new variant fails to compile here until it is listed above.
            match error {
                ApiError::BadRequest(_)
                | ApiError::Unauthorized
                | ApiError::Forbidden(_)
                | ApiError::NotFound
                | ApiError::Missing(_)
                | ApiError::Conflict(_)
                | ApiError::PayloadTooLarge { .. }
                | ApiError::UnsupportedMediaType
                | ApiError::TooManyRequests { .. }
                | ApiError::BrokerUnavailable { .. }
                | ApiError::BadGateway(_)
                | ApiError::Internal(_) => {}
            }
            let response = actix_web::ResponseError::error_response(error);
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            answered.insert(body["error"]["code"].as_str().unwrap().to_owned());
        }
        let listed: BTreeSet<String> = super::super::ERROR_CODES
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        assert_eq!(answered, listed);
    }
}
