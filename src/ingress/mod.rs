//! Webhook ingress: `POST /webhooks/prom/{shop_id}` (ARCHITECTURE.md, 'Webhook ingress').
//! Verifies the Standard Webhooks signature over the raw body, checks the body names an
//! order, publishes one notification and answers 202 only after the broker confirmed it. It
//! reads shop secrets (cached briefly) but never writes the database: the hot path is
//! verify → publish.

pub mod signature;

use std::{sync::Arc, time::Duration};

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use anyhow::Context;
use chrono::Utc;
use entity::shops;
use futures::StreamExt;
use moka::future::Cache;
use sea_orm::{DatabaseConnection, EntityTrait};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::value::RawValue;

use self::signature::{SignedMessage, SigningKey};
use crate::{
    broker::InboundMessage,
    domain::Source,
    error::ApiError,
    http::AppState,
    keyring::{Keyring, Slot},
    prom::ids::{EventId, ShopId},
};

/// How long a shop's keys are cached: a rotated secret is honoured within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// What 503 answers suggest as `Retry-After`.
const BROKER_RETRY_AFTER_S: u64 = 5;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/prom/{shop_id}", web::post().to(receive));
}

/// What the ingress keeps between requests, once per process: the shops' signing keys
/// and their notification allowances.
pub struct IngressState {
    pub webhook_keys: KeyCache,
    pub webhook_rate: ShopRateLimit,
}

impl IngressState {
    pub fn new(keyring: Arc<Keyring>, rate_per_shop_per_s: Option<std::num::NonZeroU32>) -> Self {
        Self {
            webhook_keys: KeyCache::new(keyring),
            webhook_rate: ShopRateLimit::new(rate_per_shop_per_s),
        }
    }
}

/// The keys that may sign a shop's notifications: its secret, plus the previous one
/// during a rotation's grace period.
#[derive(Clone)]
pub struct ShopKeys(Arc<Vec<SigningKey>>);

/// Shops' signing keys, opened from their stored (possibly encrypted) secrets.
#[derive(Clone)]
pub struct KeyCache(Cache<i64, Option<ShopKeys>>, Arc<Keyring>);

impl KeyCache {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self(
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            keyring,
        )
    }

    async fn get(&self, db: &DatabaseConnection, shop: ShopId) -> anyhow::Result<Option<ShopKeys>> {
        let (db, keyring) = (db.clone(), self.1.clone());
        self.0
            .try_get_with(shop.get(), async move {
                let shop = shops::Entity::find_by_id(shop.get())
                    .one(&db)
                    .await
                    .context("loading the shop's webhook secrets")?;
                Ok::<_, anyhow::Error>(shop.filter(|s| s.enabled).map(|s| {
                    let now = Utc::now();
                    let previous = s
                        .previous_webhook_secret
                        .filter(|_| s.previous_secret_expires_at.is_none_or(|until| until > now));
                    let keys = std::iter::once(s.webhook_secret)
                        .chain(previous)
                        .filter_map(|secret| {
                            keyring
                                .open_logged(Slot::webhook_secret(s.id), secret)?
                                .expose_secret()
                                .parse::<SigningKey>()
                                .ok()
                        })
                        .collect();
                    ShopKeys(Arc::new(keys))
                }))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}

/// A per-shop limit on accepted notifications, so one shop's flood (a misbehaving relay)
/// cannot crowd out every other shop's orders. Checked after the signature, so forged
/// requests never spend a shop's allowance.
pub struct ShopRateLimit(Option<governor::DefaultKeyedRateLimiter<i64>>);

impl ShopRateLimit {
    /// `None` is no limit.
    pub fn new(per_second: Option<std::num::NonZeroU32>) -> Self {
        Self(per_second.map(|rate| {
            let burst = rate.saturating_mul(std::num::NonZeroU32::new(2).expect("2 > 0"));
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        }))
    }

    /// `Err(seconds to wait)` when the shop is over its allowance.
    fn check(&self, shop: ShopId) -> Result<(), u64> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(&shop.get()).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

#[derive(Deserialize)]
struct WebhookBody<'a> {
    #[serde(borrow, default)]
    order: Option<&'a RawValue>,
    #[serde(default)]
    order_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OrderHead {
    id: serde_json::Value,
}

fn positive_id(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

/// The order id a body names, and the full order document when it carries one.
fn parse_body(body: &[u8]) -> Result<(i64, Option<Box<RawValue>>), ApiError> {
    let parsed: WebhookBody<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
    let thin_id =
        match &parsed.order_id {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(positive_id(v).ok_or_else(|| {
                ApiError::BadRequest("`order_id` must be a positive integer".into())
            })?),
        };
    match parsed.order {
        Some(raw) if raw.get() != "null" => {
            let head: OrderHead = serde_json::from_str(raw.get()).map_err(|_| {
                ApiError::BadRequest("`order` must be a Prom order object with an `id`".into())
            })?;
            let id = positive_id(&head.id).ok_or_else(|| {
                ApiError::BadRequest("`order.id` must be a positive integer".into())
            })?;
            if thin_id.is_some_and(|thin| thin != id) {
                return Err(ApiError::BadRequest(
                    "`order_id` and `order.id` disagree".into(),
                ));
            }
            Ok((id, Some(raw.to_owned())))
        }
        _ => thin_id.map(|id| (id, None)).ok_or_else(|| {
            ApiError::BadRequest("the body must carry `order` or `order_id`".into())
        }),
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_json(req: &HttpRequest) -> bool {
    header_str(req, header::CONTENT_TYPE.as_str())
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

/// Reads the body, refusing it as soon as it exceeds `limit` (by its declared length or
/// by what actually arrives).
async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared =
        header_str(req, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[tracing::instrument(skip_all, fields(shop_id = %path, event_id = tracing::field::Empty, order_id = tracing::field::Empty))]
async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
    ingress: web::Data<IngressState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_limited(&req, payload, settings.webhook.body_limit).await?;
    // From here on the request is ours: whatever the database or the broker do, it is
    // answered within the publish timeout (ARCHITECTURE.md, 'Bounded answers').
    let deadline = tokio::time::Instant::now() + settings.broker.publish_timeout;
    let unavailable = ApiError::BrokerUnavailable {
        retry_after_s: BROKER_RETRY_AFTER_S,
    };
    // An unparseable id and an unknown shop answer exactly like a bad signature, so the
    // endpoint does not reveal which shops exist.
    let shop: ShopId = path.parse().map_err(|_| ApiError::Unauthorized)?;
    let keys =
        match tokio::time::timeout_at(deadline, ingress.webhook_keys.get(&state.services.db, shop))
            .await
        {
            Ok(Ok(keys)) => keys.ok_or(ApiError::Unauthorized)?,
            // The keys cannot be read now (the database is down or silent): like a broker
            // outage, a transient refusal the sender retries, never a 500.
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "webhook keys not loaded");
                return Err(unavailable);
            }
            Err(_) => {
                tracing::warn!("webhook keys not loaded before the deadline");
                return Err(unavailable);
            }
        };
    let message = SignedMessage {
        id: header_str(&req, "webhook-id"),
        timestamp: header_str(&req, "webhook-timestamp"),
        signature: header_str(&req, "webhook-signature"),
        body: &body,
    };
    if let Err(reason) = signature::verify(
        &keys.0,
        &message,
        Utc::now().timestamp(),
        settings.webhook.tolerance.as_secs(),
    ) {
        tracing::info!(%reason, "webhook refused");
        crate::metrics::signature_failure(reason.label());
        return Err(ApiError::Unauthorized);
    }
    if let Err(retry_after_s) = ingress.webhook_rate.check(shop) {
        return Err(ApiError::TooManyRequests {
            message: "too many notifications for this shop; retry later".into(),
            retry_after_s: retry_after_s.max(1),
            results: None,
        });
    }
    let (order_id, order) = parse_body(&body)?;
    let event_id = EventId::for_webhook(shop, message.id.unwrap_or_default());
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(&event_id));
    span.record("order_id", order_id);
    let notification = InboundMessage {
        event_id,
        shop_id: shop,
        source: Source::Webhook,
        received_at: Utc::now(),
        order_id,
        order,
    };
    // The broker bounds its own publish by the same timeout (dropping a link that never
    // confirmed); this bound only keeps the whole request within the deadline when the
    // keys took part of it.
    match tokio::time::timeout_at(
        deadline,
        state.services.broker.publish_inbound(&notification),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "notification not enqueued");
            return Err(unavailable);
        }
        Err(_) => {
            tracing::warn!("notification not enqueued before the deadline");
            return Err(unavailable);
        }
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({"event_id": event_id})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_body_yields_the_order_id_and_document() {
        let (id, order) =
            parse_body(br#"{"order": {"id": 338390710, "status": "pending"}}"#).unwrap();
        assert_eq!(id, 338390710);
        assert!(order.unwrap().get().contains("pending"));
    }

    #[test]
    fn a_thin_body_yields_only_the_id() {
        let (id, order) = parse_body(br#"{"order_id": 32345434343}"#).unwrap();
        assert_eq!(id, 32345434343);
        assert!(order.is_none());
    }

    #[test]
    fn bodies_without_an_order_are_bad_requests() {
        for body in [
            &br#"{}"#[..],
            br#"{"order": null}"#,
            br#"{"order": {"status": "x"}}"#,
            br#"{"order": {"id": -1}}"#,
            br#"{"order_id": "abc"}"#,
            br#"[1,2]"#,
            br#"{"order": {"id": 1}, "order_id": 2}"#,
            b"{not json",
        ] {
            assert!(
                matches!(parse_body(body), Err(ApiError::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// JSON of any shape, nested a few levels, with numbers of every size.
        fn any_json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                "\\PC{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("order".to_owned()),
                            Just("order_id".to_owned()),
                            Just("id".to_owned()),
                            "[a-z]{1,6}"
                        ],
                        inner,
                        0..6,
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn arbitrary_bytes_are_a_400_or_an_order_never_a_panic(
                body in prop::collection::vec(any::<u8>(), 0..256),
            ) {
                if let Ok((id, _)) = parse_body(&body) {
                    prop_assert!(id > 0);
                }
            }

            #[test]
            fn arbitrary_json_names_a_positive_order_or_is_refused(value in any_json()) {
                let body = serde_json::to_vec(&value).unwrap();
                if let Ok((id, order)) = parse_body(&body) {
                    prop_assert!(id > 0);
                    // What was accepted round-trips: the thin form of it names the same id,
                    // and a full document re-sent is read the same way.
                    let thin = serde_json::to_vec(&serde_json::json!({"order_id": id})).unwrap();
                    prop_assert_eq!(parse_body(&thin).unwrap().0, id);
                    if let Some(order) = order {
                        let again = format!(r#"{{"order": {}}}"#, order.get());
                        let (again_id, again_order) = parse_body(again.as_bytes()).unwrap();
                        let again_order = again_order.expect("a full document again");
                        prop_assert_eq!(again_id, id);
                        prop_assert_eq!(again_order.get(), order.get());
                    }
                }
            }
        }
    }
}
