//! A Prom stand-in (deploy/SIMULATOR.md) for demos, tests and benchmarks:
//! `promsync simulate-prom`.
//!
//! It is a crate of its own, outside the promsync library, and does not depend on it: it
//! plays the other party, so it builds Prom's documents as JSON and signs its pushes
//! ([`signature`]) without promsync's parsers and verifier, and what promsync accepts from
//! it is a check of both.
//!
//! It serves the Prom endpoints promsync uses — `GET /api/v1/orders/list`, `GET
//! /api/v1/orders/{id}`, `GET /api/v1/products/{id}`, `POST /api/v1/orders/set_status`,
//! `POST /api/v1/delivery/save_declaration_id`, `GET /api/v1/order_status_options/list` —
//! over generated, realistic orders ([`generate`]), validates `set_status` and waybill
//! bodies as Prom does ([`validate`], [`delivery`]), injects faults on demand (a 429/5xx
//! rate, latency, or scripted
//! answers for the next calls), and can push signed notifications of new and changed
//! orders to a promsync webhook ([`push`]). Every API call is recorded, so tests and people
//! can see what "Prom" was told: `GET /_sim/calls`. Operator endpoints under `/_sim/` change
//! orders as a seller would (`POST /_sim/orders/{id}`). See `deploy/SIMULATOR.md`.
//!
//! Like promsync's `startup::Application`, [`Simulator::build`] binds first (port 0
//! works), then [`Simulator::run_until_stopped`] serves; [`SimHandle`] reads and drives
//! the state from the same process.

pub mod delivery;
pub mod generate;
pub mod push;
pub mod shops;
pub mod signature;
#[cfg(test)]
mod tests;
pub mod validate;

use std::{
    collections::{BTreeMap, VecDeque},
    net::TcpListener,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use actix_web::{dev::Server, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::{
    generate::parse_prom_time,
    validate::{validate_set_status_for, SetStatusError},
};

/// First id of generated orders; later ones count up from the highest.
const FIRST_ORDER_ID: i64 = 340_000_001;
/// Orders on an `orders/list` page when `limit` is not given: Prom documents no default
/// (promsync always sends a `limit`).
const DEFAULT_LIMIT: usize = 100;

/// Faults injected into `/api/v1/*` answers at random.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of calls answered 429 (0.0–1.0).
    pub rate_429: f64,
    /// Share of calls answered 500/502/503.
    pub rate_5xx: f64,
    /// Added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// `Retry-After` of injected 429s, in seconds.
    pub retry_after_s: u64,
    /// `orders/list` pages hold at most this many orders, whatever `limit` asks. Prom
    /// documents no cap, so there is none by default; a listing of products asking for
    /// 1,000 was seen to come in pages of about 100, so a client must not take a short
    /// page for the last one.
    pub max_page: Option<usize>,
}

/// Where and how fast to push notifications.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// A promsync webhook, such as `http://127.0.0.1:8080/webhooks/prom/1`.
    pub url: String,
    /// The shop's `whsec_…` secret.
    pub secret: secrecy::SecretString,
    /// Notifications per second.
    pub rate_per_s: f64,
    /// Stop after this many (none: until stopped).
    pub count: Option<u64>,
    /// Send thin notifications (`{"order_id"}`) instead of full orders.
    pub thin: bool,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: String,
    /// Orders generated at start.
    pub orders: usize,
    pub seed: u64,
    /// Bearer tokens accepted; empty accepts any non-empty token.
    pub tokens: Vec<String>,
    pub faults: Faults,
    pub push: Option<PushConfig>,
    pub workers: usize,
    /// The seller's own statuses `(id, title)`: listed by `order_status_options/list` as
    /// `custom-<id>`, and the only custom ones `set_status` accepts.
    pub custom_statuses: Vec<(i64, String)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            orders: 20,
            seed: 1,
            tokens: Vec::new(),
            faults: Faults::default(),
            push: None,
            workers: 1,
            custom_statuses: generate::CUSTOM_STATUSES
                .iter()
                .map(|(id, title)| (*id, (*title).to_owned()))
                .collect(),
        }
    }
}

/// One API call the simulator received, and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
    /// The HTTP status answered; 0 while unanswered, and for ever when the caller went
    /// away before the answer.
    pub status: u16,
}

/// A scripted answer for the next matching call (tests' deterministic faults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scripted {
    /// `set_status`, `save_declaration`, `get_order`, `list_orders`, `get_product`, or
    /// `any`.
    pub endpoint: String,
    /// HTTP status to answer; 200 means "handle normally" unless a body is given.
    pub status: u16,
    pub retry_after_s: Option<u64>,
    /// Answer this body instead of the normal one.
    pub body: Option<Value>,
    /// For a 200 `set_status`: process normally but leave the ids out of `processed_ids`
    /// (and change nothing), as Prom does for orders it would not change.
    pub omit_processed: bool,
    /// For a 200: handle the call, then wait this long before answering (a caller that
    /// dies meanwhile never learns that Prom applied it).
    pub answer_delay_ms: Option<u64>,
}

/// Change an order as the seller (or buyer) would on Prom; `date_modified` moves on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderChange {
    pub status: Option<String>,
    /// New quantities by line position.
    pub quantities: Option<Vec<f64>>,
}

#[derive(Debug)]
struct Inner {
    orders: BTreeMap<i64, Value>,
    products: BTreeMap<i64, Value>,
    calls: Vec<Call>,
    script: VecDeque<Scripted>,
    faults: Faults,
    rng: StdRng,
    /// Orders created or changed since the pusher last looked.
    changed: VecDeque<i64>,
    pushed: u64,
    push_failures: u64,
    /// `SimConfig::custom_statuses`, changeable as a seller would on Prom.
    custom_statuses: Vec<(i64, String)>,
}

/// The simulator's state, shared by its HTTP workers, its pusher and in-process callers.
#[derive(Debug, Clone)]
pub struct SimHandle {
    inner: Arc<Mutex<Inner>>,
    tokens: Arc<Vec<String>>,
    shops: shops::ShopActivity,
}

impl SimHandle {
    fn new(config: &SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let now = Utc::now();
        let mut orders = BTreeMap::new();
        for i in 0..config.orders {
            let id = FIRST_ORDER_ID + i as i64;
            // Spread over the last days, the newest last.
            let created = now
                - chrono::Duration::minutes(((config.orders - i) * 37) as i64)
                - chrono::Duration::milliseconds(rng.random_range(0..60_000));
            orders.insert(id, generate::order(&mut rng, id, created, None));
        }
        Self {
            inner: Arc::new(Mutex::new(Inner {
                orders,
                products: generate::catalog_products(now).into_iter().collect(),
                calls: Vec::new(),
                script: VecDeque::new(),
                faults: config.faults.clone(),
                rng,
                changed: VecDeque::new(),
                pushed: 0,
                push_failures: 0,
                custom_statuses: config.custom_statuses.clone(),
            })),
            tokens: Arc::new(config.tokens.clone()),
            shops: shops::ShopActivity::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every API call received so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The `set_status` calls received so far.
    pub fn set_status_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == "/api/v1/orders/set_status")
            .collect()
    }

    /// The `delivery/save_declaration_id` calls received so far.
    pub fn save_declaration_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == "/api/v1/delivery/save_declaration_id")
            .collect()
    }

    /// Forgets the calls received, and the per-shop activity counted from them.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
        self.shops.reset();
    }

    /// An order as Prom has it now.
    pub fn order(&self, id: i64) -> Option<Value> {
        self.lock().orders.get(&id).cloned()
    }

    /// All order ids, newest (highest) first.
    pub fn order_ids(&self) -> Vec<i64> {
        self.lock().orders.keys().rev().copied().collect()
    }

    /// A new order, as if a buyer just placed it (in `status`, or a random one).
    pub fn create_order(&self, status: Option<&str>) -> Value {
        let mut inner = self.lock();
        let id = inner
            .orders
            .keys()
            .next_back()
            .map_or(FIRST_ORDER_ID, |last| last + 1);
        let inner = &mut *inner;
        let order = generate::order(&mut inner.rng, id, Utc::now(), status);
        inner.orders.insert(id, order.clone());
        inner.changed.push_back(id);
        order
    }

    /// Changes an order as the seller would on Prom; `None` if there is no such order.
    pub fn change_order(&self, id: i64, change: &OrderChange) -> Option<Value> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let order = inner.orders.get_mut(&id)?;
        if let Some(status) = &change.status {
            set_order_status(order, status, &inner.custom_statuses);
        }
        if let Some(quantities) = &change.quantities {
            if let Some(lines) = order["products"].as_array_mut() {
                for (line, quantity) in lines.iter_mut().zip(quantities) {
                    line["quantity"] = json!(quantity);
                }
            }
            generate::reprice(order);
        }
        touch(order);
        let order = order.clone();
        inner.changed.push_back(id);
        Some(order)
    }

    /// Replaces the shop's own statuses `(id, title)`, as a seller editing them on Prom.
    pub fn set_custom_statuses(&self, statuses: Vec<(i64, String)>) {
        self.lock().custom_statuses = statuses;
    }

    /// `GET /order_status_options/list`: Prom's standard statuses, then the shop's own.
    fn status_options(&self) -> Value {
        let inner = self.lock();
        let standard = generate::STANDARD_STATUSES.iter().map(
            |(id, name)| json!({"id": id, "name": name, "title": generate::status_name(name)}),
        );
        let custom = inner
            .custom_statuses
            .iter()
            .map(|(id, title)| json!({"id": id, "name": format!("custom-{id}"), "title": title}));
        json!({ "order_status_options": standard.chain(custom).collect::<Vec<_>>() })
    }

    /// Queues scripted answers for the next matching calls.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(answers);
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn stats(&self) -> Value {
        let inner = self.lock();
        json!({
            "orders": inner.orders.len(),
            "calls": inner.calls.len(),
            "pushed": inner.pushed,
            "push_failures": inner.push_failures,
            "scripted_left": inner.script.len(),
        })
    }

    /// Records a call as it arrives (status 0 until answered), so a call whose caller
    /// went away before the answer is still seen. Returns its index.
    fn record(&self, req: &HttpRequest, body: Option<Value>) -> usize {
        let mut inner = self.lock();
        let seq = inner.calls.len() as u64 + 1;
        inner.calls.push(Call {
            seq,
            at: Utc::now(),
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            body,
            status: 0,
        });
        inner.calls.len() - 1
    }

    fn record_answer(&self, index: usize, status: StatusCode) {
        if let Some(call) = self.lock().calls.get_mut(index) {
            call.status = status.as_u16();
        }
    }

    fn authorized(&self, req: &HttpRequest) -> bool {
        let token = bearer(req);
        !token.is_empty() && (self.tokens.is_empty() || self.tokens.iter().any(|t| t == token))
    }

    /// The scripted answer for this call, if one is queued for its endpoint.
    fn scripted(&self, endpoint: &str) -> Option<Scripted> {
        let mut inner = self.lock();
        let position = inner
            .script
            .iter()
            .position(|s| s.endpoint == endpoint || s.endpoint == "any")?;
        inner.script.remove(position)
    }

    /// A random fault per the configured rates, and the latency to add.
    fn random_fault(&self) -> (Option<(StatusCode, Option<u64>)>, Duration) {
        let mut inner = self.lock();
        let faults = inner.faults.clone();
        let roll: f64 = inner.rng.random();
        let fault = if roll < faults.rate_429 {
            Some((StatusCode::TOO_MANY_REQUESTS, Some(faults.retry_after_s)))
        } else if roll < faults.rate_429 + faults.rate_5xx {
            let code = [500, 502, 503][inner.rng.random_range(0..3)];
            Some((StatusCode::from_u16(code).expect("valid code"), None))
        } else {
            None
        };
        (fault, Duration::from_millis(faults.latency_ms))
    }

    /// Ids (and the full order documents) the pusher should announce next.
    fn take_changed(&self) -> Option<(i64, Value)> {
        let mut inner = self.lock();
        while let Some(id) = inner.changed.pop_front() {
            if let Some(order) = inner.orders.get(&id) {
                return Some((id, order.clone()));
            }
        }
        None
    }

    /// A random change for push mode: a new order, or a status/quantity change.
    fn random_activity(&self) {
        let (new, target, status) = {
            let mut inner = self.lock();
            let new = inner.orders.is_empty() || inner.rng.random_bool(0.4);
            let ids: Vec<i64> = inner.orders.keys().copied().collect();
            let target = if ids.is_empty() {
                0
            } else {
                ids[inner.rng.random_range(0..ids.len())]
            };
            let status = ["received", "paid", "delivered", "canceled"]
                [inner.rng.random_range(0..4)]
            .to_owned();
            (new, target, status)
        };
        if new {
            self.create_order(None);
        } else {
            self.change_order(
                target,
                &OrderChange {
                    status: Some(status),
                    quantities: None,
                },
            );
        }
    }

    fn count_push(&self, ok: bool) {
        let mut inner = self.lock();
        if ok {
            inner.pushed += 1;
        } else {
            inner.push_failures += 1;
        }
    }

    fn list_orders(&self, query: &ListQuery) -> Result<Value, String> {
        let from = parse_filter_time(query.last_modified_from.as_deref(), "last_modified_from")?;
        let to = parse_filter_time(query.last_modified_to.as_deref(), "last_modified_to")?;
        let created_from = parse_filter_time(query.date_from.as_deref(), "date_from")?;
        let created_to = parse_filter_time(query.date_to.as_deref(), "date_to")?;
        let inner = self.lock();
        let asked = query.limit.unwrap_or(DEFAULT_LIMIT).max(1);
        let limit = inner
            .faults
            .max_page
            .map_or(asked, |cap| asked.min(cap.max(1)));
        let time_of = |order: &Value, field: &str| order[field].as_str().and_then(parse_prom_time);
        let within = |t: Option<DateTime<Utc>>,
                      from: Option<DateTime<Utc>>,
                      to: Option<DateTime<Utc>>| match t {
            Some(t) => from.is_none_or(|f| t >= f) && to.is_none_or(|to| t <= to),
            None => false,
        };
        let orders: Vec<Value> = inner
            .orders
            .iter()
            .rev()
            // Inclusive: Prom's description selects ids "no higher than" `last_id`.
            .filter(|(id, _)| query.last_id.is_none_or(|last| **id <= last))
            .map(|(_, order)| order)
            .filter(|o| {
                query
                    .status
                    .as_deref()
                    .is_none_or(|s| o["status"].as_str() == Some(s))
            })
            .filter(|o| within(time_of(o, "date_modified"), from, to))
            .filter(|o| within(time_of(o, "date_created"), created_from, created_to))
            .take(limit)
            .cloned()
            .collect();
        Ok(json!({ "orders": orders }))
    }

    fn set_status(&self, body: &Value, omit_processed: bool) -> HttpResponse {
        let custom: Vec<i64> = self
            .lock()
            .custom_statuses
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let change = match validate_set_status_for(body, &custom) {
            Ok(change) => change,
            Err(SetStatusError::BadRequest(m)) => {
                return HttpResponse::BadRequest().json(json!({ "error": m }))
            }
            // Prom answers logical errors with 200 and its one error shape.
            Err(SetStatusError::Refused(m)) => {
                return HttpResponse::Ok().json(json!({ "error": m }))
            }
        };
        let mut processed = Vec::new();
        if !omit_processed {
            let mut inner = self.lock();
            let inner = &mut *inner;
            for id in &change.ids {
                let Some(order) = inner.orders.get_mut(id) else {
                    continue;
                };
                set_order_status(order, &change.status, &inner.custom_statuses);
                // Real orders carry a cancellation as `cancellation: {title, initiator}`
                // (or null), never as the request's reason code. Which initiators Prom
                // reports is not documented; a seller's API call is the seller's.
                order["cancellation"] = if change.status == "canceled" {
                    json!({
                        "title": change.cancellation_text.as_deref()
                            .or(change.cancellation_reason.as_deref()),
                        "initiator": "seller",
                    })
                } else {
                    Value::Null
                };
                touch(order);
                processed.push(*id);
                inner.changed.push_back(*id);
            }
        }
        HttpResponse::Ok().json(json!({ "processed_ids": processed }))
    }
}

impl SimHandle {
    /// `delivery/save_declaration_id` ([`delivery`]): the waybill shows on the order.
    fn save_declaration(&self, body: &Value) -> HttpResponse {
        let refused = |m: &str| HttpResponse::Ok().json(json!({"status": "error", "message": m}));
        let declaration = match delivery::validate_declaration(body) {
            Ok(declaration) => declaration,
            Err(SetStatusError::BadRequest(m)) => return error(StatusCode::BAD_REQUEST, &m),
            Err(SetStatusError::Refused(m)) => return refused(&m),
        };
        let mut inner = self.lock();
        let Some(order) = inner.orders.get_mut(&declaration.order_id) else {
            return refused("Order not found");
        };
        if let Err(m) = delivery::apply(order, &declaration) {
            return refused(&m);
        }
        touch(order);
        inner.changed.push_back(declaration.order_id);
        HttpResponse::Ok().json(json!({"status": "success"}))
    }
}

/// Sets an order's status and Prom's title for it (a custom status's the shop's own).
fn set_order_status(order: &mut Value, status: &str, custom: &[(i64, String)]) {
    let own = status
        .strip_prefix("custom-")
        .and_then(|id| id.parse::<i64>().ok())
        .and_then(|id| custom.iter().find(|(c, _)| *c == id))
        .map(|(_, title)| title.clone());
    order["status"] = json!(status);
    order["status_name"] = json!(own.unwrap_or_else(|| generate::status_name(status)));
}

/// Moves `date_modified` on, strictly past its previous value even within a microsecond.
fn touch(order: &mut Value) {
    let previous = order["date_modified"].as_str().and_then(parse_prom_time);
    let mut now = Utc::now();
    if let Some(previous) = previous {
        if now <= previous {
            now = previous + chrono::Duration::microseconds(1);
        }
    }
    order["date_modified"] = json!(generate::prom_time(now));
}

fn parse_filter_time(raw: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
        .map(|t| Some(t.and_utc()))
        .map_err(|_| format!("{name} must be YYYY-MM-DDTHH:MM:SS, got {raw}"))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    last_modified_from: Option<String>,
    last_modified_to: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    limit: Option<usize>,
    last_id: Option<i64>,
}

/// The call's bearer token, or "" without one.
fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
}

/// What Prom answers for an unknown path or a missing order: its HTML error page.
const NOT_FOUND_PAGE: &str = "<!DOCTYPE html><html lang=\"uk\"><head><meta charset=\"utf-8\">\
<title>Сторінку не знайдено</title></head><body><h1>404</h1></body></html>";

/// An error answered Prom's way: its one JSON shape `{"error": …}`, except a 404, which
/// is an HTML page on Prom.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    if status == StatusCode::NOT_FOUND {
        return HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(NOT_FOUND_PAGE);
    }
    HttpResponse::build(status).json(json!({ "error": message }))
}

/// Every `/api/v1/*` call: recorded, delayed, authorized, maybe faulted, then served.
async fn api(req: HttpRequest, body: web::Bytes, sim: web::Data<SimHandle>) -> HttpResponse {
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let index = sim.record(&req, json_body.clone());
    let sweep = req.path() == "/api/v1/orders/list"
        && !req
            .query_string()
            .split('&')
            .any(|pair| pair.starts_with("last_id="));
    let _in_flight = sim
        .shops
        .enter(bearer(&req), sweep, std::time::Instant::now());
    let response = serve_api(&req, &body, json_body.as_ref(), &sim).await;
    sim.record_answer(index, response.status());
    response
}

async fn serve_api(
    req: &HttpRequest,
    raw_body: &[u8],
    body: Option<&Value>,
    sim: &SimHandle,
) -> HttpResponse {
    let (fault, latency) = sim.random_fault();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !sim.authorized(req) {
        return error(StatusCode::UNAUTHORIZED, "Invalid token");
    }
    let path = req.path().trim_start_matches("/api/v1/");
    let segments: Vec<&str> = path.split('/').collect();
    let endpoint = match (req.method().as_str(), segments.as_slice()) {
        ("GET", ["orders", "list"]) => "list_orders",
        ("POST", ["orders", "set_status"]) => "set_status",
        ("POST", ["delivery", "save_declaration_id"]) => "save_declaration",
        ("GET", ["orders", _]) => "get_order",
        ("GET", ["products", _]) => "get_product",
        ("GET", ["order_status_options", "list"]) => "list_status_options",
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    };
    let mut omit_processed = false;
    let mut answer_delay = None;
    if let Some(s) = sim.scripted(endpoint) {
        let status = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
        if status != StatusCode::OK || s.body.is_some() {
            let mut answer = HttpResponse::build(status);
            if let Some(after) = s.retry_after_s {
                answer.insert_header(("Retry-After", after.to_string()));
            }
            let body = s.body.unwrap_or_else(|| match status.as_u16() {
                401 | 403 => json!({"error": "Invalid token"}),
                429 => json!({"error": "Too many requests"}),
                _ => json!({"error": status.canonical_reason().unwrap_or("error")}),
            });
            return answer.json(body);
        }
        omit_processed = s.omit_processed;
        answer_delay = s.answer_delay_ms.map(Duration::from_millis);
    } else if let Some((status, retry_after)) = fault {
        let mut answer = HttpResponse::build(status);
        if let Some(after) = retry_after {
            answer.insert_header(("Retry-After", after.to_string()));
        }
        return answer.json(json!({"error": status.canonical_reason().unwrap_or("error")}));
    }
    let response = match endpoint {
        "list_orders" => match web::Query::<ListQuery>::from_query(req.query_string()) {
            Ok(query) => match sim.list_orders(&query) {
                Ok(list) => HttpResponse::Ok().json(list),
                Err(m) => error(StatusCode::BAD_REQUEST, &m),
            },
            Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        "set_status" | "save_declaration" => match body {
            Some(body) if endpoint == "set_status" => sim.set_status(body, omit_processed),
            Some(body) => sim.save_declaration(body),
            None if raw_body.is_empty() => error(StatusCode::BAD_REQUEST, "empty body"),
            None => error(StatusCode::BAD_REQUEST, "body is not JSON"),
        },
        "list_status_options" => HttpResponse::Ok().json(sim.status_options()),
        "get_order" => match segments[1].parse::<i64>().ok().and_then(|id| sim.order(id)) {
            Some(order) => HttpResponse::Ok().json(json!({ "order": order })),
            None => error(StatusCode::NOT_FOUND, "Order not found"),
        },
        _ => {
            let product = segments[1]
                .parse::<i64>()
                .ok()
                .and_then(|id| sim.lock().products.get(&id).cloned());
            match product {
                Some(product) => HttpResponse::Ok().json(json!({ "product": product })),
                None => error(StatusCode::NOT_FOUND, "Product not found"),
            }
        }
    };
    if let Some(delay) = answer_delay {
        tokio::time::sleep(delay).await;
    }
    response
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    path: Option<String>,
}

async fn sim_calls(query: web::Query<CallsQuery>, sim: web::Data<SimHandle>) -> HttpResponse {
    let calls: Vec<Call> = sim
        .calls()
        .into_iter()
        .filter(|c| query.path.as_deref().is_none_or(|p| c.path == p))
        .collect();
    HttpResponse::Ok().json(json!({ "calls": calls }))
}

async fn sim_clear_calls(sim: web::Data<SimHandle>) -> HttpResponse {
    sim.clear_calls();
    HttpResponse::NoContent().finish()
}

async fn sim_orders(sim: web::Data<SimHandle>) -> HttpResponse {
    let orders: Vec<Value> = sim
        .order_ids()
        .into_iter()
        .filter_map(|id| sim.order(id))
        .collect();
    HttpResponse::Ok().json(json!({ "orders": orders }))
}

#[derive(Debug, Default, Deserialize)]
struct NewOrder {
    status: Option<String>,
}

async fn sim_create_order(
    body: Option<web::Json<NewOrder>>,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    let status = body.and_then(|b| b.into_inner().status);
    HttpResponse::Created().json(json!({ "order": sim.create_order(status.as_deref()) }))
}

async fn sim_order(path: web::Path<i64>, sim: web::Data<SimHandle>) -> HttpResponse {
    match sim.order(path.into_inner()) {
        Some(order) => HttpResponse::Ok().json(json!({ "order": order })),
        None => error(StatusCode::NOT_FOUND, "Order not found"),
    }
}

async fn sim_change_order(
    path: web::Path<i64>,
    change: web::Json<OrderChange>,
    sim: web::Data<SimHandle>,
) -> HttpResponse {
    if let Some(status) = &change.status {
        if !generate::is_prom_status(status) {
            return error(StatusCode::BAD_REQUEST, &format!("unknown status {status}"));
        }
    }
    match sim.change_order(path.into_inner(), &change) {
        Some(order) => HttpResponse::Ok().json(json!({ "order": order })),
        None => error(StatusCode::NOT_FOUND, "Order not found"),
    }
}

#[derive(Debug, Deserialize)]
struct Script {
    responses: Vec<Scripted>,
}

async fn sim_script(script: web::Json<Script>, sim: web::Data<SimHandle>) -> HttpResponse {
    sim.script(script.into_inner().responses);
    HttpResponse::Ok().json(sim.stats())
}

async fn sim_faults(faults: web::Json<Faults>, sim: web::Data<SimHandle>) -> HttpResponse {
    let faults = faults.into_inner();
    sim.set_faults(faults.clone());
    HttpResponse::Ok().json(faults)
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    late_after_s: Option<f64>,
}

async fn sim_stats(query: web::Query<StatsQuery>, sim: web::Data<SimHandle>) -> HttpResponse {
    let mut stats = sim.stats();
    stats["shops"] = json!(sim.shops.stats(query.late_after_s));
    HttpResponse::Ok().json(stats)
}

pub struct Simulator {
    port: u16,
    server: Server,
    handle: SimHandle,
    push: Option<PushConfig>,
}

impl Simulator {
    /// Generates the shop and binds the listener; nothing is served until
    /// [`Simulator::run_until_stopped`].
    pub fn build(config: SimConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        Self::build_on(listener, config)
    }

    /// Like [`Simulator::build`], on a listener bound beforehand (`config.listen` is not
    /// used): whoever must know the simulator's origin before it starts (a test allowing
    /// it as a Prom origin) binds first.
    pub fn build_on(listener: TcpListener, config: SimConfig) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let handle = SimHandle::new(&config);
        let data = web::Data::new(handle.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .route("/_sim/calls", web::get().to(sim_calls))
                .route("/_sim/calls", web::delete().to(sim_clear_calls))
                .route("/_sim/orders", web::get().to(sim_orders))
                .route("/_sim/orders", web::post().to(sim_create_order))
                .route("/_sim/orders/{id}", web::get().to(sim_order))
                .route("/_sim/orders/{id}", web::post().to(sim_change_order))
                .route("/_sim/script", web::post().to(sim_script))
                .route("/_sim/faults", web::put().to(sim_faults))
                .route("/_sim/stats", web::get().to(sim_stats))
                .default_service(web::to(api))
        })
        .workers(config.workers.max(1))
        .listen(listener)?
        .shutdown_timeout(2)
        .run();
        tracing::info!(port, orders = config.orders, "Prom simulator listening");
        Ok(Self {
            port,
            server,
            handle,
            push: config.push,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The origin to give promsync as a shop's `--prom-url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Stops the server from the same process (`promsync demo` shutting down).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves (and pushes, if configured) until the server stops (SIGTERM/Ctrl-C).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let pusher = self
            .push
            .map(|config| tokio::spawn(push::run(self.handle.clone(), config)));
        let served = self.server.await;
        if let Some(pusher) = pusher {
            pusher.abort();
        }
        served
    }
}
