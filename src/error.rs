//! The HTTP error type and its mapping to responses, in one place (the application
//! layer's `ServiceError` included). Every error answers
//! `{"error": {"code", "message"}}`; a 500 never shows internals (they are logged once,
//! here, with the request's span). Extractor failures (bad JSON, query or path) are routed
//! here too (`json_error`, `query_error`), so no answer escapes the uniform body, and
//! `catch_panics` turns a handler that panics (a bug) into the same generic 500 instead of
//! a dropped connection.

use std::panic::AssertUnwindSafe;

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::{JsonPayloadError, QueryPayloadError},
    http::StatusCode,
    middleware::Next,
    HttpRequest, HttpResponse, ResponseError,
};
use futures::FutureExt;
use serde_json::json;

use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A 404 that names what was missing (an id referenced in a request body).
    #[error("{0}")]
    Missing(String),
    /// The request is understood but would break a rule of the stored data (409).
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// `results`, when given, is added beside `error` (a bulk refresh says per order why).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_s: u64,
        results: Option<serde_json::Value>,
    },
    #[error("the message broker is unavailable; retry later")]
    BrokerUnavailable { retry_after_s: u64 },
    /// Prom, which the request needed, failed or refused (502).
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound | ApiError::Missing(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::BrokerUnavailable { .. } => "broker_unavailable",
            ApiError::BadGateway(_) => "bad_gateway",
            ApiError::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_s, .. }
            | ApiError::BrokerUnavailable { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BrokerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        let mut body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        if let ApiError::TooManyRequests {
            results: Some(results),
            ..
        } = self
        {
            body["results"] = results.clone();
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(body)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(e.into())
    }
}

/// The application layer's refusals as HTTP answers: the one place they are mapped, for
/// the JSON API and the operator pages alike.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Missing(message) => ApiError::Missing(message),
            ServiceError::Unauthenticated => ApiError::Unauthorized,
            ServiceError::Forbidden(message) => ApiError::Forbidden(message),
            ServiceError::Invalid(message) => ApiError::BadRequest(message),
            ServiceError::Conflict(message) => ApiError::Conflict(message),
            ServiceError::Busy {
                message,
                retry_after_s,
            } => ApiError::TooManyRequests {
                message,
                retry_after_s,
                results: None,
            },
            ServiceError::BrokerUnavailable { retry_after_s } => {
                ApiError::BrokerUnavailable { retry_after_s }
            }
            ServiceError::Prom(message) => ApiError::BadGateway(message),
            ServiceError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// `web::JsonConfig` error handler: a body that is not the expected JSON.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        other => ApiError::BadRequest(format!("invalid JSON body: {other}")),
    }
    .into()
}

/// `web::QueryConfig` error handler: a query string that does not fit the parameters.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Middleware: a handler that panics answers the generic 500 body instead of a dropped
/// connection, after which a client cannot tell a bug from a network fault and retries
/// into the same panic. The failure is logged once, where errors are turned into answers,
/// without the panic's payload (it may quote input).
pub async fn catch_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Calling the service may itself run handler code before the first await.
    let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| next.call(req))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match answer {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        // The request is gone with the unwound handler; an error is answered by the
        // server from its `error_response`, the same uniform body.
        Err(_) => Err(ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{body::to_bytes, middleware, test, web, App};

    use super::*;

    #[actix_web::test]
    async fn a_panicking_handler_answers_the_generic_500_and_the_server_keeps_serving() {
        let app = test::init_service(
            App::new()
                .wrap(middleware::from_fn(catch_panics))
                .route(
                    "/boom",
                    web::get().to(|| async {
                        let secret = "password=hunter2";
                        if !secret.is_empty() {
                            panic!("bug near {secret}");
                        }
                        HttpResponse::Ok().finish()
                    }),
                )
                .route("/fine", web::get().to(HttpResponse::Ok)),
        )
        .await;

        // The server answers a service's error with its `error_response`, as here.
        let boom = test::try_call_service(&app, test::TestRequest::get().uri("/boom").to_request())
            .await
            .expect_err("the panic becomes an error")
            .error_response();
        assert_eq!(boom.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(boom.into_body()).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(r#""code":"internal""#), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let fine =
            test::call_service(&app, test::TestRequest::get().uri("/fine").to_request()).await;
        assert_eq!(fine.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn an_internal_error_does_not_leak_its_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 at db"));
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(resp.into_body()).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(r#""code":"internal""#), "{text}");
    }

    #[actix_web::test]
    async fn a_refused_bulk_request_carries_its_results_beside_the_error() {
        let resp = ApiError::TooManyRequests {
            message: "too soon".into(),
            retry_after_s: 42,
            results: Some(json!([{"order_id": 1, "result": "too_soon"}])),
        }
        .error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "42");
        let body = to_bytes(resp.into_body()).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "too_many_requests");
        assert_eq!(value["results"][0]["result"], "too_soon");
    }

    #[actix_web::test]
    async fn every_service_refusal_answers_its_status_with_its_message() {
        let cases = [
            (ServiceError::NotFound, StatusCode::NOT_FOUND),
            (
                ServiceError::Missing("status 7 not found".into()),
                StatusCode::NOT_FOUND,
            ),
            (ServiceError::Unauthenticated, StatusCode::UNAUTHORIZED),
            (
                ServiceError::Forbidden("needs".into()),
                StatusCode::FORBIDDEN,
            ),
            (
                ServiceError::Invalid("`page` must".into()),
                StatusCode::BAD_REQUEST,
            ),
            (ServiceError::Conflict("last".into()), StatusCode::CONFLICT),
            (
                ServiceError::Busy {
                    message: "retry".into(),
                    retry_after_s: 1,
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                ServiceError::BrokerUnavailable { retry_after_s: 5 },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                ServiceError::Prom("Prom server error (HTTP 503)".into()),
                StatusCode::BAD_GATEWAY,
            ),
            (
                ServiceError::Internal(anyhow::anyhow!("db down")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (refusal, status) in cases {
            let said = refusal.to_string();
            let answer = ApiError::from(refusal);
            assert_eq!(answer.status_code(), status, "{said}");
            if !matches!(
                status,
                StatusCode::UNAUTHORIZED
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::INTERNAL_SERVER_ERROR
            ) {
                assert_eq!(answer.to_string(), said, "the message passes unchanged");
            }
        }
    }

    #[actix_web::test]
    async fn an_unavailable_broker_says_when_to_retry() {
        let resp = ApiError::BrokerUnavailable { retry_after_s: 5 }.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "5");
    }
}
