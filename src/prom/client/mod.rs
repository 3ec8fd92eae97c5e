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
//!
//! Here: the client, its construction and every call's plumbing (origin check, token,
//! throttle, sending). `requests` has one method per endpoint with its request and answer
//! types; `error` says what a failure, or an answer that is not a success, means.

mod calls;
mod error;
mod requests;
mod status_options;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use reqwest::header::ACCEPT;
use reqwest::{redirect, Method};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

pub use self::calls::CallObserver;
pub use self::error::PromError;
use self::error::{error_chain, request_error, Answer};
pub use self::requests::{
    CancellationReason, OrderListQuery, SetStatusRequest, SetStatusResponse, UnknownReason,
};
pub use self::status_options::{PromStatusOption, MAX_STATUS_TITLE_CHARS};
use super::origin::{OriginError, OriginPolicy, PromOrigin};
use super::throttle::{Throttle, TokenKey};
use crate::keyring::{Keyring, StoredSecret};

/// Calls per second per token when nothing else is configured (`prom_rate_per_s`).
pub const DEFAULT_RATE_PER_S: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");
/// How long a token pauses after a 429 that did not say how long to wait.
const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);

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
    /// Told of every call sent (metrics live above this layer).
    observer: Option<CallObserver>,
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
            observer: None,
        })
    }

    /// The same client with its own throttle of `rate_per_s` calls per second per token.
    pub fn with_rate(self, rate_per_s: NonZeroU32) -> Self {
        Self {
            throttle: Arc::new(Throttle::new(rate_per_s)),
            ..self
        }
    }

    /// The same client telling `observer` of every call it sends.
    pub fn with_observer(self, observer: CallObserver) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// The same client opening stored tokens with `keyring`.
    pub fn with_keyring(self, keyring: Arc<Keyring>) -> Self {
        Self { keyring, ..self }
    }

    /// The one way out to Prom: checks the origin, opens the token, waits for the token's
    /// turn, sends, and reads the answer as `T` (`expected` names it in errors).
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        creds: &PromCredentials,
        method: Method,
        url: Url,
        body: Option<&B>,
        expected: &'static str,
    ) -> Result<T, PromError> {
        self.call_bounded(creds, method, url, body, expected, None)
            .await
    }

    /// [`Self::call`], reading at most `max_body` bytes of the answer when given: a
    /// longer answer is refused without being read further.
    async fn call_bounded<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        creds: &PromCredentials,
        method: Method,
        url: Url,
        body: Option<&B>,
        expected: &'static str,
        max_body: Option<usize>,
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
                let answer = Answer::of(&resp, expected);
                match read_body(resp, max_body).await {
                    Ok(Some(bytes)) => answer.interpret(&bytes),
                    Ok(None) => answer.too_large(max_body.unwrap_or_default()),
                    Err(e) => Err(request_error(&e)),
                }
            }
            Err(e) => Err(request_error(&e)),
        };
        if let Err(PromError::RateLimited { retry_after }) = &result {
            self.throttle
                .pause(key, retry_after.unwrap_or(DEFAULT_429_PAUSE));
        }
        let elapsed = started.elapsed();
        if let Some(observe) = self.observer {
            observe(
                calls::endpoint(url.path()),
                calls::outcome(&result),
                elapsed,
            );
        }
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::debug!(%method, path = url.path(), elapsed_ms, "prom call ok"),
            Err(e) => {
                tracing::debug!(%method, path = url.path(), elapsed_ms, error = %e, "prom call failed")
            }
        }
        result
    }
}

/// The answer's body, or `None` when it is longer than `max` bytes (then read no
/// further: a hostile answer cannot make promsync hold more than `max`).
async fn read_body(
    mut resp: reqwest::Response,
    max: Option<usize>,
) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    let Some(max) = max else {
        return resp.bytes().await.map(Some);
    };
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
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

/// Stand-ins and credentials shared by the unit tests of the client's modules.
#[cfg(test)]
mod test_support {
    use std::time::Duration;

    use url::Url;
    use wiremock::MockServer;

    use super::{PromClient, PromCredentials};
    use crate::{
        keyring::StoredSecret,
        prom::origin::{OriginPolicy, PromOrigin},
    };

    pub(super) const PENDING_COD: &str =
        include_str!("../../../tests/fixtures/prom/order-pending-cash-on-delivery.json");

    pub(super) fn creds(server: &MockServer) -> PromCredentials {
        PromCredentials {
            base_url: Url::parse(&server.uri()).unwrap(),
            token: StoredSecret::plain("secret-token-123"),
            language: "uk".to_owned(),
        }
    }

    /// A client allowed to call `server` (a local stand-in, so not public).
    pub(super) fn client(server: &MockServer) -> PromClient {
        client_for(&server.uri(), Duration::from_secs(5))
    }

    pub(super) fn client_for(origin: &str, timeout: Duration) -> PromClient {
        let policy = OriginPolicy::new([PromOrigin::parse(origin).unwrap()]);
        PromClient::try_new(timeout, policy).unwrap()
    }

    pub(super) fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::test_support::{client, client_for, creds, url, PENDING_COD};
    use super::*;

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
    fn credentials_debug_hides_token() {
        let c = PromCredentials {
            base_url: url("https://my.prom.ua"),
            token: StoredSecret::plain("secret-token-123"),
            language: "uk".into(),
        };
        assert!(!format!("{c:?}").contains("secret-token-123"));
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
}
