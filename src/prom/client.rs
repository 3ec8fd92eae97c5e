//! HTTP client for the Prom.ua seller API (`{origin}/api/v1/...`).
//!
//! One [`PromClient`] (a pooled `reqwest::Client`) serves every shop; each call takes the
//! shop's [`PromCredentials`], so the poller, importer and publisher share connections.
//! Every failure is mapped to a [`PromError`] whose [`PromError::is_transient`] tells the
//! caller whether to retry later (429, 5xx, network) or record and dead-letter (bad token,
//! bad payload). Every call first takes its token's turn from the client's [`Throttle`]
//! (default 2 requests/s per token, shared by all roles of the process), and a 429 pauses
//! that token for Prom's `Retry-After`. The token is sent as a sensitive header and never
//! logged.
//!
//! Every call goes only where the [`OriginPolicy`] allows (checked before sending, and by
//! the client's DNS resolver at connection time), redirects are never followed, and an
//! answer's body never reaches an error text, which tenants see on the sync log and dead
//! letters: errors name the HTTP status, the content type and what was expected. Only
//! Prom's own JSON error message is kept.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{redirect, Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use super::order::{OrderEnvelope, OrderList, ProductEnvelope, PromOrder, PromProduct, PromStatus};
use super::origin::{refusal_in, OriginError, OriginPolicy, PromOrigin};
use super::throttle::{Throttle, TokenKey};
use crate::{
    domain::excerpt,
    keyring::{Keyring, StoredSecret},
};

/// Calls per second per token when nothing else is configured (`prom_rate_per_s`).
pub const DEFAULT_RATE_PER_S: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");
/// How long a token pauses after a 429 that did not say how long to wait.
const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);

/// Longest error message of Prom's (`{"error": "…"}`) copied into a [`PromError`]; these
/// end up on the sync log.
const MAX_ERROR_TEXT: usize = 300;
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
    /// [`OriginPolicy`]); nothing was sent.
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

/// One shop's access to Prom.
#[derive(Debug, Clone)]
pub struct PromCredentials {
    /// The origin, such as `https://my.prom.ua` or `http://127.0.0.1:1234`; `/api/v1/...`
    /// is appended (a trailing `/api/v1` already present is not doubled).
    pub base_url: Url,
    /// The token as stored (possibly encrypted); only the client opens it, for the
    /// request it sends, so the plain token lives no longer than that request.
    pub token: StoredSecret,
    /// `uk` or `ru`: the language of names in Prom's answers.
    pub language: String,
}

/// Query of `GET /orders/list`. Dates go out as UTC `YYYY-MM-DDTHH:MM:SS`, as Prom wants;
/// sub-seconds are dropped, which only widens a `*_from` window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderListQuery {
    pub status: Option<PromStatus>,
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub last_modified_from: Option<DateTime<Utc>>,
    pub last_modified_to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    /// Cursor: orders come by descending id; inclusiveness is undocumented, so callers
    /// dedupe the boundary order.
    pub last_id: Option<i64>,
}

impl OrderListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let date = |d: &DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut q = Vec::new();
        if let Some(s) = &self.status {
            q.push(("status", s.to_string()));
        }
        for (key, value) in [
            ("date_from", &self.date_from),
            ("date_to", &self.date_to),
            ("last_modified_from", &self.last_modified_from),
            ("last_modified_to", &self.last_modified_to),
        ] {
            if let Some(d) = value {
                q.push((key, date(d)));
            }
        }
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(last_id) = self.last_id {
            q.push(("last_id", last_id.to_string()));
        }
        q
    }
}

/// Prom's cancellation reasons for `canceled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancellationReason {
    NotAvailable,
    PriceChanged,
    BuyersRequest,
    NotEnoughFields,
    Duplicate,
    InvalidPhoneNumber,
    LessThanMinimalPrice,
    Another,
}

impl CancellationReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            CancellationReason::NotAvailable => "not_available",
            CancellationReason::PriceChanged => "price_changed",
            CancellationReason::BuyersRequest => "buyers_request",
            CancellationReason::NotEnoughFields => "not_enough_fields",
            CancellationReason::Duplicate => "duplicate",
            CancellationReason::InvalidPhoneNumber => "invalid_phone_number",
            CancellationReason::LessThanMinimalPrice => "less_than_minimal_price",
            CancellationReason::Another => "another",
        }
    }

    /// Prom refuses these without a `cancellation_text`.
    pub const fn requires_text(self) -> bool {
        matches!(
            self,
            CancellationReason::PriceChanged
                | CancellationReason::NotEnoughFields
                | CancellationReason::Another
        )
    }
}

/// Body of `POST /orders/set_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetStatusRequest {
    pub ids: Vec<i64>,
    pub status: PromStatus,
    /// Used only with [`PromStatus::Canceled`], where Prom requires a reason.
    pub cancellation: Option<(CancellationReason, Option<String>)>,
}

impl SetStatusRequest {
    /// The JSON Prom expects: custom statuses go by `custom_status_id`, the others by
    /// `status`, and a cancellation carries its reason (and text where Prom requires it).
    pub fn to_body(&self) -> Result<serde_json::Value, PromError> {
        use serde_json::{json, Value};
        if self.ids.is_empty() {
            return Err(PromError::Invalid("set_status without order ids".into()));
        }
        let mut body = match self.status {
            PromStatus::Custom(id) => json!({ "custom_status_id": id, "ids": self.ids }),
            PromStatus::Draft => {
                return Err(PromError::Invalid(
                    "Prom orders cannot be set to draft".into(),
                ))
            }
            ref status => json!({ "status": status.as_str(), "ids": self.ids }),
        };
        if self.status == PromStatus::Canceled {
            let (reason, text) = self.cancellation.as_ref().ok_or_else(|| {
                PromError::Invalid("canceling a Prom order needs a cancellation reason".into())
            })?;
            body["cancellation_reason"] = Value::from(reason.as_str());
            match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) => body["cancellation_text"] = Value::from(t),
                None if reason.requires_text() => {
                    return Err(PromError::Invalid(format!(
                        "cancellation reason {} needs a cancellation text",
                        reason.as_str()
                    )))
                }
                None => {}
            }
        }
        Ok(body)
    }
}

/// Prom's answer to `set_status`: only the ids listed were changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct SetStatusResponse {
    #[serde(default)]
    pub processed_ids: Vec<i64>,
}

impl SetStatusResponse {
    pub fn processed(&self, order_id: i64) -> bool {
        self.processed_ids.contains(&order_id)
    }
}

/// A cheap-to-clone handle on a pooled HTTP client for the Prom API. Clones share the
/// connection pool and the per-token throttle, so build one per process.
#[derive(Debug, Clone)]
pub struct PromClient {
    http: reqwest::Client,
    throttle: Arc<Throttle>,
    /// Opens the shops' stored tokens (none configured: tokens are plaintext).
    keyring: Arc<Keyring>,
    /// Where calls may go; the HTTP client's resolver enforces the same policy.
    policy: Arc<OriginPolicy>,
}

impl PromClient {
    /// A client whose every request (connect included) is bounded by `timeout`, calling
    /// only where `policy` allows: its resolver drops non-public addresses (except for the
    /// hosts of allowed origins), it never follows a redirect and never goes through a
    /// proxy from the environment (which would resolve names where the resolver cannot
    /// see). Fails only if the TLS backend cannot start.
    pub fn try_new(timeout: Duration, policy: OriginPolicy) -> Result<Self, PromError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("promsync/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(policy.resolver()))
            .redirect(redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| PromError::Invalid(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Self {
            http,
            throttle: Arc::new(Throttle::new(DEFAULT_RATE_PER_S)),
            keyring: Arc::default(),
            policy: Arc::new(policy),
        })
    }

    /// The same client with its own throttle of `rate_per_s` calls per second per token.
    pub fn with_rate(self, rate_per_s: NonZeroU32) -> Self {
        Self {
            throttle: Arc::new(Throttle::new(rate_per_s)),
            ..self
        }
    }

    /// The same client opening stored tokens with `keyring`.
    pub fn with_keyring(self, keyring: Arc<Keyring>) -> Self {
        Self { keyring, ..self }
    }

    /// `GET /orders/{id}`.
    pub async fn get_order(
        &self,
        creds: &PromCredentials,
        id: i64,
    ) -> Result<PromOrder, PromError> {
        let url = api_url(&creds.base_url, &["orders", &id.to_string()])?;
        let env: OrderEnvelope = self
            .call(creds, Method::GET, url, None::<&()>, "JSON with an order")
            .await?;
        Ok(env.order)
    }

    /// `GET /products/{id}`; `None` when Prom no longer has the product.
    pub async fn get_product(
        &self,
        creds: &PromCredentials,
        id: i64,
    ) -> Result<Option<PromProduct>, PromError> {
        let url = api_url(&creds.base_url, &["products", &id.to_string()])?;
        match self
            .call::<ProductEnvelope, ()>(creds, Method::GET, url, None, "JSON with a product")
            .await
        {
            Ok(env) => Ok(Some(env.product)),
            Err(PromError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /orders/list` — one page.
    pub async fn list_orders(
        &self,
        creds: &PromCredentials,
        query: &OrderListQuery,
    ) -> Result<Vec<PromOrder>, PromError> {
        let mut url = api_url(&creds.base_url, &["orders", "list"])?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        let list: OrderList = self
            .call(
                creds,
                Method::GET,
                url,
                None::<&()>,
                "JSON with a list of orders",
            )
            .await?;
        Ok(list.orders)
    }

    /// `GET /orders/list` — one page, each order kept as the JSON document Prom sent, so a
    /// poller can forward fields promsync does not model (payment and delivery data).
    pub async fn list_order_documents(
        &self,
        creds: &PromCredentials,
        query: &OrderListQuery,
    ) -> Result<Vec<serde_json::Value>, PromError> {
        #[derive(serde::Deserialize)]
        struct Documents {
            #[serde(default)]
            orders: Option<Vec<serde_json::Value>>,
        }
        let mut url = api_url(&creds.base_url, &["orders", "list"])?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        let list: Documents = self
            .call(
                creds,
                Method::GET,
                url,
                None::<&()>,
                "JSON with a list of orders",
            )
            .await?;
        Ok(list.orders.unwrap_or_default())
    }

    /// `POST /orders/set_status`. HTTP 200 is not success by itself: check
    /// [`SetStatusResponse::processed`] for each id.
    pub async fn set_status(
        &self,
        creds: &PromCredentials,
        request: &SetStatusRequest,
    ) -> Result<SetStatusResponse, PromError> {
        let body = request.to_body()?;
        let url = api_url(&creds.base_url, &["orders", "set_status"])?;
        self.call(
            creds,
            Method::POST,
            url,
            Some(&body),
            "JSON with processed_ids",
        )
        .await
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        creds: &PromCredentials,
        method: Method,
        url: Url,
        body: Option<&B>,
        expected: &'static str,
    ) -> Result<T, PromError> {
        // IP literals never reach the client's resolver: the origin is checked here, and
        // a name's addresses by the resolver when it connects. User info would be sent as
        // credentials of its own.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PromError::Forbidden(OriginError::UserInfo.to_string()));
        }
        PromOrigin::of_url(&url)
            .map_err(|e| PromError::Forbidden(e.to_string()))
            .and_then(|origin| {
                self.policy
                    .check(&origin)
                    .map_err(|e| PromError::Forbidden(e.to_string()))
            })?;
        // A token that cannot be opened (its key is not configured) fails like any
        // request that cannot be built: permanently, with the reason, nothing sent.
        let token = self
            .keyring
            .open(&creds.token)
            .map_err(|e| PromError::Invalid(e.to_string()))?;
        let key = TokenKey::of(&token);
        if let Err(left) = self.throttle.acquire(key).await {
            // Prom told us to slow down for longer than is worth waiting here: do not
            // send, let the caller retry later.
            tracing::debug!(%method, path = url.path(), wait_ms = left.as_millis() as u64, "Prom token paused after 429");
            return Err(PromError::RateLimited {
                retry_after: Some(left),
            });
        }
        let started = std::time::Instant::now();
        // `bearer_auth` marks the header sensitive, so reqwest/hyper never print it.
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header("X-LANGUAGE", creds.language.as_str())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        let result = match req.send().await {
            Ok(resp) => {
                let answer = Answer {
                    status: resp.status(),
                    retry_after: parse_retry_after(resp.headers()),
                    content_type: content_type(resp.headers()),
                    expected,
                };
                match resp.bytes().await {
                    Ok(bytes) => answer.interpret(&bytes),
                    Err(e) => Err(request_error(&e)),
                }
            }
            Err(e) => Err(request_error(&e)),
        };
        if let Err(PromError::RateLimited { retry_after }) = &result {
            self.throttle
                .pause(key, retry_after.unwrap_or(DEFAULT_429_PAUSE));
        }
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::debug!(%method, path = url.path(), elapsed_ms, "prom call ok"),
            Err(e) => {
                tracing::debug!(%method, path = url.path(), elapsed_ms, error = %e, "prom call failed")
            }
        }
        result
    }
}

/// `{origin}/api/v1/{segments...}`. Segments are percent-encoded by `url`, so an id can
/// never change the path.
pub fn api_url(base: &Url, segments: &[&str]) -> Result<Url, PromError> {
    if !matches!(base.scheme(), "http" | "https") {
        return Err(PromError::Invalid(format!(
            "Prom URL must be http(s), got {}",
            base.scheme()
        )));
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let mut prefix: Vec<String> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if prefix.ends_with(&["api".to_owned(), "v1".to_owned()]) {
        prefix.truncate(prefix.len() - 2);
    }
    url.path_segments_mut()
        .map_err(|()| PromError::Invalid(format!("Prom URL cannot have a path: {base}")))?
        .clear()
        .extend(&prefix)
        .extend(["api", "v1"])
        .extend(segments);
    Ok(url)
}

/// What is known of Prom's answer before its body is read.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// The media type (`text/plain`), or `no content type`.
    content_type: String,
    /// What the call expects, for the error when the answer is something else.
    expected: &'static str,
}

impl Answer {
    /// Maps the complete answer to the typed result. The body is read, never quoted:
    /// only Prom's own JSON error message is carried into an error.
    fn interpret<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, PromError> {
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
        // Write calls may answer 200 with {"status":"error","message":...}.
        if value.get("status").and_then(|s| s.as_str()) == Some("error") {
            return Err(PromError::Api(
                error_text(&value).unwrap_or_else(|| "unspecified error".to_owned()),
            ));
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

/// Prom's error text from `{"error": "..."}`, `{"message": "..."}` or `{"error": {...}}`.
fn error_text(v: &serde_json::Value) -> Option<String> {
    let text = match v.get("error").or_else(|| v.get("message"))? {
        serde_json::Value::Null => return None,
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(excerpt(&text, MAX_ERROR_TEXT))
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

fn request_error(e: &reqwest::Error) -> PromError {
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
fn error_chain(e: &dyn std::error::Error) -> String {
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
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PENDING_COD: &str =
        include_str!("../../tests/fixtures/prom/order-pending-cash-on-delivery.json");

    fn creds(server: &MockServer) -> PromCredentials {
        PromCredentials {
            base_url: Url::parse(&server.uri()).unwrap(),
            token: StoredSecret::plain("secret-token-123"),
            language: "uk".to_owned(),
        }
    }

    /// A client allowed to call `server` (a local stand-in, so not public).
    fn client(server: &MockServer) -> PromClient {
        client_for(&server.uri(), Duration::from_secs(5))
    }

    fn client_for(origin: &str, timeout: Duration) -> PromClient {
        let policy = OriginPolicy::new([PromOrigin::parse(origin).unwrap()]);
        PromClient::try_new(timeout, policy).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn api_url_handles_slashes_and_prefixes() {
        let want = "https://my.prom.ua/api/v1/orders/5";
        for base in [
            "https://my.prom.ua",
            "https://my.prom.ua/",
            "https://my.prom.ua/api/v1",
            "https://my.prom.ua/api/v1/",
            "https://my.prom.ua/?x=1#f",
        ] {
            assert_eq!(
                api_url(&url(base), &["orders", "5"]).unwrap().as_str(),
                want,
                "{base}"
            );
        }
        assert_eq!(
            api_url(&url("http://127.0.0.1:1234/stand-in/"), &["products", "7"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1234/stand-in/api/v1/products/7"
        );
        assert_eq!(
            api_url(&url("http://h"), &["orders", "a/b?c"])
                .unwrap()
                .path(),
            "/api/v1/orders/a%2Fb%3Fc"
        );
        assert!(matches!(
            api_url(&url("ftp://h"), &["x"]),
            Err(PromError::Invalid(_))
        ));
        assert!(matches!(
            api_url(&url("mailto:a@b"), &["x"]),
            Err(PromError::Invalid(_))
        ));
    }

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

    #[test]
    fn set_status_bodies() {
        let req = |status, cancellation| SetStatusRequest {
            ids: vec![338390710],
            status,
            cancellation,
        };
        assert_eq!(
            req(PromStatus::Received, None).to_body().unwrap(),
            json!({"status": "received", "ids": [338390710]})
        );
        assert_eq!(
            req(PromStatus::Custom(137639), None).to_body().unwrap(),
            json!({"custom_status_id": 137639, "ids": [338390710]})
        );
        assert_eq!(
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Another, Some("Скасовано в CRM".into())))
            )
            .to_body()
            .unwrap(),
            json!({"status": "canceled", "ids": [338390710],
                   "cancellation_reason": "another", "cancellation_text": "Скасовано в CRM"})
        );
        assert_eq!(
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Duplicate, None))
            )
            .to_body()
            .unwrap(),
            json!({"status": "canceled", "ids": [338390710], "cancellation_reason": "duplicate"})
        );
        for bad in [
            req(PromStatus::Canceled, None),
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Another, Some("  ".into()))),
            ),
            req(PromStatus::Draft, None),
            SetStatusRequest {
                ids: vec![],
                status: PromStatus::Paid,
                cancellation: None,
            },
        ] {
            assert!(
                matches!(bad.to_body(), Err(PromError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_debug_hides_token() {
        let c = PromCredentials {
            base_url: url("https://my.prom.ua"),
            token: StoredSecret::plain("secret-token-123"),
            language: "uk".into(),
        };
        assert!(!format!("{c:?}").contains("secret-token-123"));
    }

    #[tokio::test]
    async fn get_order_sends_headers_and_parses_fixture() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/338390710"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .and(header("X-LANGUAGE", "uk"))
            .and(header("Accept", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(PENDING_COD, "application/json"))
            .expect(1)
            .mount(&server)
            .await;

        let order = client(&server)
            .get_order(&creds(&server), 338390710)
            .await
            .unwrap();
        assert_eq!(order.id, 338390710);
        assert_eq!(order.products.len(), 1);
    }

    #[tokio::test]
    async fn get_product_found_and_missing() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/products/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"product": {
                "id": 1, "name": "Носки", "group": {"id": 9, "name": "Шкарпетки"},
                "description": "<p>x</p>"
            }})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/products/2"))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"error": "Product not found"})),
            )
            .mount(&server)
            .await;

        let c = creds(&server);
        let p = client(&server).get_product(&c, 1).await.unwrap().unwrap();
        assert_eq!(p.category_name("uk"), Some("Шкарпетки"));
        assert_eq!(client(&server).get_product(&c, 2).await.unwrap(), None);
        // For orders a 404 stays an error: an order id always comes from Prom itself.
        assert_eq!(
            client(&server).get_order(&c, 2).await.unwrap_err(),
            PromError::NotFound
        );
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

    #[tokio::test]
    async fn a_redirect_is_a_permanent_failure_and_is_not_followed() {
        // Arrange: "Prom" redirects to a second server, which must hear nothing.
        let target = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"order": {}})))
            .expect(0)
            .mount(&target)
            .await;
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("Location", format!("{}/api/v1/orders/1", target.uri())),
            )
            .expect(1)
            .mount(&server)
            .await;
        let policy = OriginPolicy::new([
            PromOrigin::parse(&server.uri()).unwrap(),
            PromOrigin::parse(&target.uri()).unwrap(),
        ]);
        let c = PromClient::try_new(Duration::from_secs(5), policy).unwrap();

        // Act
        let e = c.get_order(&creds(&server), 1).await.unwrap_err();

        // Assert (the mocks' expectations are verified when they drop)
        assert_eq!(e, PromError::Redirect(302));
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn a_non_public_or_non_https_origin_is_refused_before_anything_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let strict = PromClient::try_new(Duration::from_secs(5), OriginPolicy::default()).unwrap();
        let port = server.address().port();
        for base in [
            server.uri(),
            format!("https://127.0.0.1:{port}"),
            format!("https://[::ffff:127.0.0.1]:{port}"),
            format!("https://user:pw@8.8.8.8:{port}"),
        ] {
            let c = PromCredentials {
                base_url: url(&base),
                ..creds(&server)
            };
            let e = strict.get_order(&c, 1).await.unwrap_err();
            assert!(matches!(e, PromError::Forbidden(_)), "{base}: {e:?}");
            assert!(!e.is_transient());
        }
    }

    #[tokio::test]
    async fn a_host_name_that_resolves_home_is_refused_at_connection_time() {
        // Arrange: the stand-in is allowed only as http://127.0.0.1:<port>.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let allowed = PromOrigin::parse(&server.uri()).unwrap();
        let c = PromClient::try_new(Duration::from_secs(5), OriginPolicy::new([allowed])).unwrap();
        let creds = PromCredentials {
            base_url: url(&format!("http://localhost:{}", server.address().port())),
            ..creds(&server)
        };

        // Act + Assert: the client refuses `localhost` by name before any lookup.
        let e = c.get_order(&creds, 1).await.unwrap_err();
        assert!(matches!(e, PromError::Forbidden(_)), "{e:?}");

        // Any other name that resolves home is left to the resolver, which the client
        // connects through: through reqwest alone, its refusal reads the same.
        let resolver = OriginPolicy::default().resolver();
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .build()
            .unwrap();
        let err = http
            .get(format!("http://localhost:{}/", server.address().port()))
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(request_error(&err), PromError::Forbidden(ref m)
                if m.starts_with("localhost resolves to") && m.ends_with("a loopback address")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn timeout_is_transport() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let c = client_for(&server.uri(), Duration::from_millis(200));
        let e = c.get_order(&creds(&server), 1).await.unwrap_err();
        assert!(
            matches!(&e, PromError::Transport(m) if m.contains("timed out")),
            "{e:?}"
        );
        assert!(e.is_transient());
    }

    #[tokio::test]
    async fn connection_refused_is_transport() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = PromCredentials {
            base_url: url(&format!("http://{addr}")),
            token: StoredSecret::plain("t"),
            language: "uk".into(),
        };
        let e = client_for(&format!("http://{addr}"), Duration::from_secs(5))
            .get_order(&c, 1)
            .await
            .unwrap_err();
        assert!(matches!(e, PromError::Transport(_)), "{e:?}");
        assert!(!e.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn list_orders_sends_query() {
        let server = MockServer::start().await;
        let order: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(PENDING_COD).unwrap()["order"].clone();
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/list"))
            .and(query_param("last_modified_from", "2025-04-07T06:00:00"))
            .and(query_param("limit", "100"))
            .and(query_param("last_id", "338390711"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"orders": [order]})))
            .expect(1)
            .mount(&server)
            .await;
        let q = OrderListQuery {
            last_modified_from: Some(
                DateTime::parse_from_rfc3339("2025-04-07T06:00:00.5+00:00")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            limit: Some(100),
            last_id: Some(338390711),
            ..Default::default()
        };
        let orders = client(&server)
            .list_orders(&creds(&server), &q)
            .await
            .unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].id, 338390710);
    }

    #[tokio::test]
    async fn set_status_posts_json_and_reads_processed_ids() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/orders/set_status"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .and(body_json(json!({"status": "received", "ids": [338390710]})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"processed_ids": [338390710]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let req = SetStatusRequest {
            ids: vec![338390710],
            status: PromStatus::Received,
            cancellation: None,
        };
        let answer = client(&server)
            .set_status(&creds(&server), &req)
            .await
            .unwrap();
        assert!(answer.processed(338390710));
        assert!(!answer.processed(1));
    }

    #[tokio::test]
    async fn a_429_pauses_the_token_for_its_retry_after() {
        // Arrange: Prom says "slow down for 1 s" once, then answers.
        let server = MockServer::start().await;
        let order: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(PENDING_COD).unwrap()["order"].clone();
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "order": order })))
            .mount(&server)
            .await;
        let c = client(&server);

        // Act
        let first = c.get_order(&creds(&server), 338390710).await.unwrap_err();
        let started = std::time::Instant::now();
        let second = c.get_order(&creds(&server), 338390710).await;

        // Assert: the second call waited out the pause instead of hitting Prom at once.
        assert_eq!(
            first,
            PromError::RateLimited {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert!(second.is_ok(), "{second:?}");
        assert!(started.elapsed() >= Duration::from_millis(900));
    }

    #[tokio::test]
    async fn a_long_429_pause_fails_fast_without_calling_prom() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
            .expect(1)
            .mount(&server)
            .await;
        let c = client(&server);
        c.get_order(&creds(&server), 1).await.unwrap_err();

        let started = std::time::Instant::now();
        let e = c.get_order(&creds(&server), 1).await.unwrap_err();

        assert!(started.elapsed() < Duration::from_millis(200));
        assert!(
            matches!(e, PromError::RateLimited { retry_after: Some(d) } if d > Duration::from_secs(100)),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn set_status_error_in_200() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"status": "error", "message": "Order status can not be changed"}),
            ))
            .mount(&server)
            .await;
        let req = SetStatusRequest {
            ids: vec![5],
            status: PromStatus::Delivered,
            cancellation: None,
        };
        assert_eq!(
            client(&server)
                .set_status(&creds(&server), &req)
                .await
                .unwrap_err(),
            PromError::Api("Order status can not be changed".into())
        );
    }
}
