//! What went wrong talking to Prom, and what Prom's answer means when it is not the
//! success a call expects.
//!
//! [`PromError`] sorts every failure into what is worth retrying later (rate limits,
//! Prom's own failures, the network: [`PromError::is_transient`]) and what fails the same
//! way again. Its texts reach tenants (the sync log, dead letters), so they name the HTTP
//! status, the content type and what was expected, and carry nothing of an answer's body
//! but Prom's own JSON error message, cut short.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::{domain::excerpt, prom::origin::refusal_in};

/// Longest message of Prom's (`{"error": "…"}`, `message`, `warning_message`) copied into
/// a [`PromError`] or an answer; these end up on the sync log, which tenants read.
const MAX_ERROR_TEXT: usize = 200;
/// Longest excerpt of an unexpected answer written to the debug log (never elsewhere).
const MAX_LOGGED_EXCERPT: usize = 120;
/// Longest content type named in an error.
const MAX_CONTENT_TYPE: usize = 64;

/// What went wrong talking to Prom.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    #[error("Prom rejected the API token (HTTP {0}): check or renew the shop's token")]
    Unauthorized(u16),
    #[error("not found on Prom (HTTP 404)")]
    NotFound,
    #[error("Prom rate limit hit (HTTP 429){}", retry_hint(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("Prom server error (HTTP {0})")]
    Server(u16),
    #[error("Prom API error: {0}")]
    Api(String),
    #[error("cannot reach Prom: {0}")]
    Transport(String),
    #[error("unexpected answer from Prom: {0}")]
    Malformed(String),
    /// Prom answered a redirect; promsync never follows one (the target could be anywhere,
    /// and the token would go along). Permanent: the shop's Prom URL needs fixing.
    #[error("Prom answered HTTP {0}, a redirect, which promsync does not follow: check the shop's Prom URL")]
    Redirect(u16),
    /// The shop's Prom URL leads somewhere promsync may not call (see
    /// [`OriginPolicy`](crate::prom::origin::OriginPolicy)); nothing was sent.
    #[error("Prom URL not allowed: {0}")]
    Forbidden(String),
    /// The request could not be built (bad shop URL, token or language not valid in a
    /// header, incomplete cancellation); nothing was sent.
    #[error("invalid Prom request: {0}")]
    Invalid(String),
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

impl PromError {
    /// Worth retrying later with the same input: rate limits, Prom's own failures and the
    /// network. Everything else fails the same way again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PromError::RateLimited { .. } | PromError::Server(_) | PromError::Transport(_)
        )
    }

    /// The delay Prom asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PromError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// What is known of Prom's answer before its body is read.
pub(super) struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// The media type (`text/plain`), or `no content type`.
    content_type: String,
    /// What the call expects, for the error when the answer is something else.
    expected: &'static str,
}

impl Answer {
    /// What the status line and headers of Prom's answer say, before its body is read.
    pub(super) fn of(response: &reqwest::Response, expected: &'static str) -> Self {
        Self {
            status: response.status(),
            retry_after: parse_retry_after(response.headers()),
            content_type: content_type(response.headers()),
            expected,
        }
    }

    /// Maps the complete answer to the typed result. The body is read, never quoted:
    /// only Prom's own JSON error message is carried into an error.
    pub(super) fn interpret<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, PromError> {
        let code = self.status.as_u16();
        match code {
            401 | 403 => return Err(PromError::Unauthorized(code)),
            404 => return Err(PromError::NotFound),
            429 => {
                return Err(PromError::RateLimited {
                    retry_after: self.retry_after,
                })
            }
            500..=599 => return Err(PromError::Server(code)),
            300..=399 => return Err(PromError::Redirect(code)),
            200..=299 => {}
            _ => {
                let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
                return Err(PromError::Api(match parsed.as_ref().and_then(error_text) {
                    Some(text) => text,
                    None => {
                        self.log_excerpt(body, parsed.is_some());
                        self.describe("a JSON error message")
                    }
                }));
            }
        }

        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) => {
                self.log_excerpt(body, false);
                return Err(PromError::Malformed(self.describe("JSON")));
            }
        };
        // Prom answers logical errors with 200 too, on every endpoint; an answer that
        // also happens to fit `T` (every field defaulted, such as an empty order list or
        // `processed_ids`) must not pass for a success.
        if let Some(text) = refusal_in_success(&value) {
            return Err(PromError::Api(text));
        }
        let prom_message = error_text(&value);
        serde_json::from_value::<T>(value).map_err(|e| {
            if let Some(text) = prom_message {
                return PromError::Api(text);
            }
            // Where it went wrong, not the value found there (it may be a buyer's data).
            tracing::debug!(
                status = code,
                content_type = %self.content_type,
                expected = self.expected,
                category = ?e.classify(),
                line = e.line(),
                column = e.column(),
                "Prom's answer does not have the expected shape"
            );
            PromError::Malformed(self.describe(self.expected))
        })
    }

    /// An answer longer than the call reads (`limit` bytes): a success is refused as
    /// malformed, anything else means what its status says.
    pub(super) fn too_large<T: DeserializeOwned>(&self, limit: usize) -> Result<T, PromError> {
        if !self.status.is_success() {
            return self.interpret(&[]);
        }
        Err(PromError::Malformed(self.describe(&format!(
            "{} of at most {limit} bytes",
            self.expected
        ))))
    }

    /// `Prom answered 200 with text/plain; expected JSON`.
    fn describe(&self, expected: &str) -> String {
        format!(
            "Prom answered {} with {}; expected {expected}",
            self.status.as_u16(),
            self.content_type
        )
    }

    /// A short excerpt of an answer that is not what Prom sends, for whoever debugs the
    /// server (debug level only); a JSON document is not excerpted, as it may be an order.
    fn log_excerpt(&self, body: &[u8], is_json: bool) {
        if is_json || !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let text = String::from_utf8_lossy(body);
        let excerpt = excerpt(text.trim(), MAX_LOGGED_EXCERPT);
        tracing::debug!(
            status = self.status.as_u16(),
            content_type = %self.content_type,
            %excerpt,
            "unexpected answer from Prom"
        );
    }
}

/// The media type of an answer (`text/html`, parameters dropped), cut to a sane length
/// and to the characters a media type has, as it is shown to tenants.
fn content_type(headers: &HeaderMap) -> String {
    let essence: String = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(*c))
        .take(MAX_CONTENT_TYPE)
        .collect();
    if essence.is_empty() {
        "no content type".to_owned()
    } else {
        essence.to_ascii_lowercase()
    }
}

/// Prom's message when a 2xx answer is a refusal: `{"error": "<non-empty>"}`, or
/// `{"status": "error", ...}` with its `message` (else its `error`).
fn refusal_in_success(v: &serde_json::Value) -> Option<String> {
    let text = |field: &str| {
        v.get(field)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(prom_message)
    };
    if v.get("status").and_then(serde_json::Value::as_str) == Some("error") {
        return Some(
            text("message")
                .or_else(|| error_text(v))
                .unwrap_or_else(|| "unspecified error".to_owned()),
        );
    }
    text("error")
}

/// A message Prom meant for us, as it may be shown to tenants: control characters (line
/// breaks included) become spaces and it is cut to [`MAX_ERROR_TEXT`] characters.
pub(super) fn prom_message(text: &str) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    excerpt(&flat, MAX_ERROR_TEXT)
}

/// Prom's error text from `{"error": "..."}`, `{"message": "..."}` or `{"error": {...}}`.
fn error_text(v: &serde_json::Value) -> Option<String> {
    let text = match v.get("error").or_else(|| v.get("message"))? {
        serde_json::Value::Null => return None,
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(prom_message(&text))
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

pub(super) fn request_error(e: &reqwest::Error) -> PromError {
    // The resolver refused every address of the shop's host.
    if let Some(refused) = refusal_in(e) {
        return PromError::Forbidden(refused.to_string());
    }
    if e.is_builder() {
        return PromError::Invalid(error_chain(e));
    }
    if e.is_decode() {
        return PromError::Malformed(error_chain(e));
    }
    let prefix = if e.is_timeout() { "timed out: " } else { "" };
    PromError::Transport(format!("{prefix}{}", error_chain(e)))
}

/// reqwest's top-level message ("error sending request") hides the cause ("connection
/// refused"); the whole chain is what an operator needs.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::prom::client::test_support::{client, creds};

    #[test]
    fn transient_classification() {
        assert!(PromError::RateLimited { retry_after: None }.is_transient());
        assert!(PromError::Server(502).is_transient());
        assert!(PromError::Transport("x".into()).is_transient());
        for e in [
            PromError::Unauthorized(401),
            PromError::NotFound,
            PromError::Api("x".into()),
            PromError::Malformed("x".into()),
            PromError::Invalid("x".into()),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
        let e = PromError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            e.to_string(),
            "Prom rate limit hit (HTTP 429), retry after 30s"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    }

    async fn order_error(template: ResponseTemplate) -> PromError {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(template)
            .mount(&server)
            .await;
        client(&server)
            .get_order(&creds(&server), 1)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn rate_limited_with_retry_after() {
        let e = order_error(ResponseTemplate::new(429).insert_header("Retry-After", "17")).await;
        assert_eq!(
            e,
            PromError::RateLimited {
                retry_after: Some(Duration::from_secs(17))
            }
        );
        assert!(e.is_transient());

        let e = order_error(ResponseTemplate::new(429)).await;
        assert_eq!(e, PromError::RateLimited { retry_after: None });
    }

    #[tokio::test]
    async fn retry_after_as_http_date() {
        let at = Utc::now() + chrono::Duration::seconds(120);
        let e = order_error(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", at.to_rfc2822().replace("+0000", "GMT")),
        )
        .await;
        let secs = e.retry_after().unwrap().as_secs();
        assert!((100..=120).contains(&secs), "{secs}");
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        for code in [500, 502, 503] {
            let e =
                order_error(ResponseTemplate::new(code).set_body_string("<html>oops</html>")).await;
            assert_eq!(e, PromError::Server(code));
            assert!(e.is_transient());
        }
    }

    #[tokio::test]
    async fn prom_s_html_404_page_is_not_found() {
        let page = "<!DOCTYPE html><html><body><h1>404</h1></body></html>";
        let e = order_error(ResponseTemplate::new(404).set_body_raw(page, "text/html")).await;
        assert_eq!(e, PromError::NotFound);
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn unauthorized_is_permanent() {
        for code in [401, 403] {
            let e = order_error(
                ResponseTemplate::new(code).set_body_json(json!({"error": "Invalid token"})),
            )
            .await;
            assert_eq!(e, PromError::Unauthorized(code));
            assert!(!e.is_transient());
        }
    }

    #[tokio::test]
    async fn api_errors_carry_prom_message() {
        let e = order_error(
            ResponseTemplate::new(400).set_body_json(json!({"error": "Invalid order id"})),
        )
        .await;
        assert_eq!(e, PromError::Api("Invalid order id".into()));

        // Without Prom's JSON message, the error names the answer, never its body.
        let e = order_error(ResponseTemplate::new(422).set_body_string("nope")).await;
        assert_eq!(
            e,
            PromError::Api(
                "Prom answered 422 with text/plain; expected a JSON error message".into()
            )
        );

        let e = order_error(
            ResponseTemplate::new(200).set_body_json(json!({"error": "Access denied"})),
        )
        .await;
        assert_eq!(e, PromError::Api("Access denied".into()));

        let e = order_error(
            ResponseTemplate::new(200).set_body_json(json!({"status": "error", "message": "Boom"})),
        )
        .await;
        assert_eq!(e, PromError::Api("Boom".into()));
    }

    #[tokio::test]
    async fn malformed_answers_name_status_content_type_and_expectation_never_the_body() {
        let e = order_error(ResponseTemplate::new(200).set_body_string("{not json")).await;
        assert_eq!(
            e,
            PromError::Malformed("Prom answered 200 with text/plain; expected JSON".into())
        );
        assert!(!e.is_transient());

        let metrics = "# HELP secret_metric_total s3cr3t\nsecret_metric_total 42\n";
        let e = order_error(
            ResponseTemplate::new(200)
                .set_body_raw(metrics, "text/plain; version=0.0.4; charset=utf-8"),
        )
        .await;
        assert_eq!(
            e.to_string(),
            "unexpected answer from Prom: Prom answered 200 with text/plain; expected JSON"
        );

        let e = order_error(
            ResponseTemplate::new(200).set_body_json(json!({"order": {"id": "s3cr3t"}})),
        )
        .await;
        assert_eq!(
            e,
            PromError::Malformed(
                "Prom answered 200 with application/json; expected JSON with an order".into()
            )
        );

        let e = order_error(
            ResponseTemplate::new(200)
                .set_body_raw("<html>s3cr3t</html>", "text/html\r\nX-Injected: <script>"),
        )
        .await;
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
