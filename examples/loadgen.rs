//! Load generator for the webhook ingress (`POST /webhooks/prom/{shop_id}`).
//!
//! Sends `--count` distinct, correctly signed Standard Webhooks messages over
//! `--concurrency` concurrent connections. Each body is `{"order": {...}}` built from a
//! Prom order fixture, with its `id` set to one of `--orders` distinct order ids, a fresh,
//! strictly increasing `date_modified`, and exactly three product lines.
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --shop-id 1 \
//!     --secret whsec_... --count 20000 --concurrency 64 --orders 1000
//! ```
//!
//! Prints sent, accepted (202), other statuses by code, transport errors, elapsed,
//! requests/s and latency percentiles, then one machine-readable line starting with
//! `loadgen-json: `. Exits non-zero only on setup errors (bad secret, unreadable fixture,
//! bad URL); request failures are counted, not fatal.

#[path = "common/cpu.rs"]
mod cpu;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Fixture paths tried, in order, when `--fixture` is not given (the repository's copy of a
/// real Prom order, wherever the repository is). If none exists a built-in template is used.
const FIXTURE_CANDIDATES: &[&str] = &[concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/prom/order-pending-cash-on-delivery.json"
)];

/// Three order lines: (price in UAH, quantity). Order total = 244*1 + 130*2 + 99*1 = 603.
const LINES: [(u64, f64); 3] = [(244, 1.0), (130, 2.0), (99, 1.0)];

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Signed webhook load generator for the promsync ingress"
)]
struct Args {
    /// Base URL of the promsync HTTP server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Shop id (path segment of /webhooks/prom/{shop_id}).
    #[arg(long)]
    shop_id: String,
    /// Shop webhook secret, `whsec_<base64 key>`.
    #[arg(long)]
    secret: String,
    /// Number of requests to send.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Concurrent requests in flight (and connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Number of distinct Prom order ids the requests are spread over.
    #[arg(long, default_value_t = 1000)]
    orders: u64,
    /// First order id; ids are `order_base + i % orders`.
    #[arg(long, default_value_t = 900_000_000)]
    order_base: u64,
    /// Prom order fixture (`{"order": {...}}` or a bare order object).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Requests per second to send at (open loop, `--concurrency` still caps the requests
    /// in flight); 0 sends as fast as the concurrency allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

struct Shared {
    endpoint: String,
    key: Vec<u8>,
    template: Value,
    args_orders: u64,
    order_base: u64,
    /// `date_modified` base; each message adds a strictly increasing microsecond offset.
    base_time: DateTime<Utc>,
    seq: AtomicU64,
}

/// Outcome of one request: HTTP status (or transport error kind), latency, body size.
struct Sample {
    status: Result<u16, &'static str>,
    latency: Duration,
    body_bytes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match setup(&args) {
        Ok(shared) => {
            // One thread: on a small machine every core the load generator takes is a
            // core the ingress and the broker under test do not get.
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("loadgen: cannot start runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(run(&args, Arc::new(shared))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("loadgen: setup error: {e}");
            ExitCode::from(2)
        }
    }
}

fn setup(args: &Args) -> Result<Shared, String> {
    if args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if args.orders == 0 {
        return Err("--orders must be at least 1".into());
    }
    let raw_key = args.secret.strip_prefix("whsec_").unwrap_or(&args.secret);
    let key = B64
        .decode(raw_key.trim())
        .map_err(|e| format!("secret is not whsec_<base64>: {e}"))?;
    if key.is_empty() {
        return Err("secret key is empty".into());
    }
    let base = url::Url::parse(&args.url).map_err(|e| format!("bad --url: {e}"))?;
    let endpoint = base
        .join(&format!("/webhooks/prom/{}", args.shop_id))
        .map_err(|e| format!("bad --url: {e}"))?
        .to_string();
    let template = load_template(args.fixture.as_deref())?;
    Ok(Shared {
        endpoint,
        key,
        template,
        args_orders: args.orders,
        order_base: args.order_base,
        base_time: Utc::now(),
        seq: AtomicU64::new(0),
    })
}

fn load_template(path: Option<&std::path::Path>) -> Result<Value, String> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read fixture {}: {e}", p.display()))?,
        ),
        None => FIXTURE_CANDIDATES
            .iter()
            .find_map(|c| std::fs::read_to_string(c).ok()),
    };
    let doc: Value = match text {
        Some(t) => serde_json::from_str(&t).map_err(|e| format!("fixture is not JSON: {e}"))?,
        None => builtin_fixture(),
    };
    let order = match doc.get("order") {
        Some(o) => o.clone(),
        None => doc,
    };
    if !order.is_object() {
        return Err("fixture has no order object".into());
    }
    let products = order.get("products").and_then(Value::as_array);
    if products.is_none_or(|p| p.is_empty()) {
        return Err("fixture order has no products".into());
    }
    Ok(order)
}

/// A trimmed copy of the cash-on-delivery fixture, used when no fixture file is found.
fn builtin_fixture() -> Value {
    json!({"order": {
        "id": 338390710,
        "date_created": "2025-04-07T06:46:42.728888+00:00",
        "date_modified": "2025-04-07T06:46:43.570150+00:00",
        "client_first_name": "Олена",
        "client_second_name": "",
        "client_last_name": "Коваленко",
        "client_id": 289664789,
        "client": {"first_name": "Олена", "last_name": "Коваленко", "second_name": "",
                   "phone": "+380000000000", "id": 289664789},
        "email": null,
        "phone": "+380000000000",
        "delivery_cost": 0,
        "payment_option": {"id": 10827897, "name": "Наложенный платеж"},
        "payment_data": null,
        "price": "244 грн",
        "full_price": "244 грн",
        "client_notes": "",
        "products": [{
            "id": 2555951114u64,
            "external_id": "",
            "name": "Набор в коробке 5 пар высокие мужские Носки Nike/найк - Tie-Dye цветные Подарочный тай дай",
            "name_multilang": {
                "ru": "Набор в коробке 5 пар высокие мужские Носки Nike/найк - Tie-Dye цветные Подарочный тай дай",
                "uk": "Набір у коробці 5 пар високі чоловічі шкарпетки Nike/найк — Tie-Dye кольорові Подарунковий тай дай"
            },
            "sku": "B45N2",
            "price": "244 грн",
            "quantity": 1.0,
            "measure_unit": "шт.",
            "total_price": "244 грн"
        }],
        "status": "pending",
        "status_name": "Новый",
        "source": "portal",
        "cancellation": null
    }})
}

/// Three product lines derived from the template's first product.
fn build_products(template: &Value) -> Value {
    let base = template["products"][0].clone();
    let base_id = base
        .get("id")
        .and_then(Value::as_u64)
        .unwrap_or(2_555_951_114);
    let base_sku = base
        .get("sku")
        .and_then(Value::as_str)
        .unwrap_or("SKU")
        .to_string();
    let base_name = base
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("Product")
        .to_string();
    let lines: Vec<Value> = LINES
        .iter()
        .enumerate()
        .map(|(k, &(price, qty))| {
            let mut p = base.clone();
            let n = k + 1;
            p["id"] = json!(base_id + k as u64);
            p["sku"] = json!(format!("{base_sku}-{n}"));
            p["name"] = json!(format!("{base_name} #{n}"));
            if let Some(ml) = p.get_mut("name_multilang").and_then(Value::as_object_mut) {
                for v in ml.values_mut() {
                    if let Some(s) = v.as_str() {
                        *v = json!(format!("{s} #{n}"));
                    }
                }
            }
            p["price"] = json!(format!("{price} грн"));
            p["quantity"] = json!(qty);
            p["total_price"] = json!(format!("{} грн", (price as f64 * qty) as u64));
            p
        })
        .collect();
    Value::Array(lines)
}

fn order_total() -> u64 {
    LINES.iter().map(|&(p, q)| (p as f64 * q) as u64).sum()
}

fn sign(key: &[u8], id: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

fn build_message(shared: &Shared, products: &Value, i: u64) -> (String, i64, Vec<u8>) {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
    let modified = shared.base_time + chrono::Duration::microseconds(seq as i64 + 1);
    let mut order = shared.template.clone();
    order["id"] = json!(shared.order_base + i % shared.args_orders);
    order["date_modified"] = json!(modified
        .to_rfc3339_opts(SecondsFormat::Micros, false)
        .replace('Z', "+00:00"));
    order["products"] = products.clone();
    let total = format!("{} грн", order_total());
    order["price"] = json!(total);
    if order.get("full_price").is_some() {
        order["full_price"] = json!(total);
    }
    let body = serde_json::to_vec(&json!({ "order": order })).expect("JSON serializes");
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    (id, Utc::now().timestamp(), body)
}

/// One request, built and signed before the clock starts.
struct Prebuilt {
    id: String,
    timestamp: String,
    signature: String,
    body: bytes::Bytes,
}

fn prebuild(shared: &Shared, products: &Value, i: u64) -> Prebuilt {
    let (id, ts, body) = build_message(shared, products, i);
    let signature = sign(&shared.key, &id, ts, &body);
    Prebuilt {
        id,
        timestamp: ts.to_string(),
        signature,
        body: body.into(),
    }
}

/// One keep-alive HTTP/1.1 connection: the load generator's own cost per request stays
/// small (no pool, no locks, no per-request task), so the cores go to the system under
/// test. A connection the server closed is opened again.
struct Connection {
    addr: String,
    authority: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>>,
}

impl Connection {
    async fn sender(
        &mut self,
    ) -> Result<&mut hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>, &'static str>
    {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|_| "connect")?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| "connect")?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("connect")?;
        sender.ready().await.map_err(|_| "transport")?;
        Ok(sender)
    }

    async fn send(&mut self, path: &str, message: Prebuilt) -> Result<u16, &'static str> {
        let request = hyper::Request::post(path)
            .header("host", self.authority.as_str())
            .header("webhook-id", message.id)
            .header("webhook-timestamp", message.timestamp)
            .header("webhook-signature", message.signature)
            .header("content-type", "application/json")
            .body(Full::new(message.body))
            .map_err(|_| "request")?;
        let response = self
            .sender()
            .await?
            .send_request(request)
            .await
            .map_err(|_| "transport")?;
        let code = response.status().as_u16();
        // Read the body so the connection can carry the next request.
        response
            .into_body()
            .collect()
            .await
            .map_err(|_| "transport")?;
        Ok(code)
    }
}

async fn send_one(
    connection: &mut Connection,
    path: &str,
    message: Prebuilt,
    timeout: Duration,
) -> Sample {
    let body_bytes = message.body.len();
    let started = Instant::now();
    let status = match tokio::time::timeout(timeout, connection.send(path, message)).await {
        Ok(result) => result,
        Err(_) => {
            // The request may still be on the wire: this connection cannot be reused.
            connection.sender = None;
            Err("timeout")
        }
    };
    Sample {
        status,
        latency: started.elapsed(),
        body_bytes,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

async fn run(args: &Args, shared: Arc<Shared>) -> Result<(), String> {
    let products = Arc::new(build_products(&shared.template));

    eprintln!(
        "loadgen: {} requests, concurrency {}, {} distinct orders -> {}",
        args.count, args.concurrency, args.orders, shared.endpoint
    );
    // Every body is built and signed before the clock starts: on a small machine the load
    // generator shares the cores with the system under test, and JSON work here would
    // be measured as the ingress being slow. Memory: about count × body size.
    let messages: Vec<Prebuilt> = (0..args.count)
        .map(|i| prebuild(&shared, &products, i))
        .collect();
    let url: hyper::Uri = shared
        .endpoint
        .parse()
        .map_err(|e| format!("bad --url: {e}"))?;
    let authority = url
        .authority()
        .ok_or("--url has no host")?
        .as_str()
        .to_string();
    let addr = format!(
        "{}:{}",
        url.host().unwrap_or("127.0.0.1"),
        url.port_u16().unwrap_or(80)
    );
    let path: Arc<str> = url.path().into();
    let queue = Arc::new(std::sync::Mutex::new(messages.into_iter().enumerate()));
    let timeout = Duration::from_secs(args.timeout_s);
    let cpu_before = cpu::cpu_seconds();
    let started = Instant::now();
    // A fixed rate paces the start of each request; the in-flight cap stays.
    let pace = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (queue, path) = (Arc::clone(&queue), Arc::clone(&path));
            let mut connection = Connection {
                addr: addr.clone(),
                authority: authority.clone(),
                sender: None,
            };
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let next = queue.lock().expect("queue lock").next();
                    let Some((i, message)) = next else {
                        break;
                    };
                    if let Some(every) = pace {
                        tokio::time::sleep_until((started + every.mul_f64(i as f64)).into()).await;
                    }
                    samples.push(send_one(&mut connection, &path, message, timeout).await);
                }
                samples
            })
        })
        .collect();
    let mut samples: Vec<Sample> = Vec::with_capacity(args.count as usize);
    for worker in workers {
        samples.extend(worker.await.map_err(|e| format!("worker failed: {e}"))?);
    }
    let cpu_s = cpu::cpu_seconds() - cpu_before;
    let elapsed = started.elapsed();

    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut accepted = 0u64;
    let mut latencies: Vec<Duration> = Vec::with_capacity(samples.len());
    for s in &samples {
        match s.status {
            Ok(202) => accepted += 1,
            Ok(code) => *by_code.entry(code.to_string()).or_default() += 1,
            Err(kind) => *by_code.entry(format!("error:{kind}")).or_default() += 1,
        }
        latencies.push(s.latency);
    }
    latencies.sort_unstable();
    let sent = samples.len() as u64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rps = sent as f64 / secs;
    let accepted_rps = accepted as f64 / secs;
    let (p50, p90, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );

    println!("sent:        {sent}");
    println!("accepted:    {accepted} (202)");
    if by_code.is_empty() {
        println!("other:       none");
    } else {
        for (code, n) in &by_code {
            println!("other {code:>5}: {n}");
        }
    }
    println!("elapsed:     {secs:.3} s");
    println!("requests/s:  {rps:.1} (accepted/s {accepted_rps:.1})");
    println!("latency ms:  p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}");
    let summary = json!({
        "sent": sent,
        "accepted": accepted,
        "other": by_code,
        "elapsed_s": secs,
        "rps": rps,
        "accepted_rps": accepted_rps,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max,
        "concurrency": args.concurrency,
        "orders": args.orders,
        "rate": args.rate,
        "cpu_s": cpu_s,
        "body_bytes": samples.iter().map(|s| s.body_bytes).sum::<usize>() / samples.len().max(1),
    });
    println!("loadgen-json: {summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_standard_webhooks_example() {
        // Example from the Standard Webhooks spec / svix docs.
        let key = B64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("valid base64");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn three_lines_and_total() {
        let t = builtin_fixture()["order"].clone();
        let p = build_products(&t);
        let p = p.as_array().expect("array");
        assert_eq!(p.len(), 3);
        assert_eq!(p[1]["quantity"], json!(2.0));
        assert_eq!(p[1]["price"], json!("130 грн"));
        assert_ne!(p[0]["sku"], p[1]["sku"]);
        assert_eq!(order_total(), 603);
    }
}
