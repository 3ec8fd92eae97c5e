//! Hundreds of hostile bodies (wrong types, huge numbers, deep nesting, invalid UTF-8,
//! truncated and oversized documents, and real bodies with fields swapped for junk) at
//! every write endpoint and at the webhook door: each gets an answer below 500, no
//! connection is dropped, and the door enqueues nothing.

use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use promsync::broker::Lane;

use crate::support::{insert_imported_order, product, webhook, TestApp};

/// Bodies per endpoint. Fixed seeds: a failure names its seed and replays exactly.
const BODIES: usize = 300;

fn random_scalar(rng: &mut StdRng) -> Value {
    match rng.random_range(0..10) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 => json!(u64::MAX),
        5 => json!("79228162514264337593543950335"),
        6 => json!("1e20"),
        7 => json!("-1"),
        8 => json!("x".repeat(rng.random_range(0..3000))),
        _ => json!([
            "грн",
            "custom-1",
            "received",
            "",
            "0",
            "sku",
            "manage_employees"
        ]
        .choose(rng)
        .unwrap()),
    }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    if depth == 0 || rng.random_bool(0.5) {
        return random_scalar(rng);
    }
    if rng.random_bool(0.5) {
        (0..rng.random_range(0..4))
            .map(|_| random_value(rng, depth - 1))
            .collect()
    } else {
        let keys = [
            "items",
            "quantity",
            "price",
            "product_id",
            "status_id",
            "order_ids",
            "ids",
            "client",
            "name",
            "prom_url",
            "prom_token",
            "permissions",
            "inbound",
            "outbound",
            "poll_interval_s",
            "enabled",
            "order",
            "x",
        ];
        Value::Object(
            (0..rng.random_range(0..5))
                .map(|_| {
                    (
                        keys.choose(rng).unwrap().to_string(),
                        random_value(rng, depth - 1),
                    )
                })
                .collect(),
        )
    }
}

/// Replaces one field of a real body, at any depth, with junk.
fn mangle(rng: &mut StdRng, value: &mut Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.random_range(0..map.len()))
                .unwrap()
                .clone();
            if rng.random_bool(0.5) {
                map.insert(key, random_value(rng, 3));
            } else {
                mangle(rng, map.get_mut(&key).unwrap());
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.random_range(0..items.len());
            mangle(rng, &mut items[i]);
        }
        other => *other = random_value(rng, 3),
    }
}

fn hostile_body(rng: &mut StdRng, valid: &Value) -> Vec<u8> {
    match rng.random_range(0..8) {
        0 => {
            let depth = rng.random_range(100..20_000);
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        1 => (0..rng.random_range(1..64)).map(|_| rng.random()).collect(),
        2 => {
            let mut bytes = serde_json::to_vec(valid).unwrap();
            bytes.truncate(rng.random_range(0..bytes.len().max(1)));
            bytes
        }
        3 => {
            let mut bytes = serde_json::to_vec(valid).unwrap();
            // Invalid UTF-8 inside a string.
            if let Some(at) = bytes.iter().position(|b| *b == b'"') {
                bytes.splice(at + 1..at + 1, [0xff, 0xfe, 0xc3]);
            }
            bytes
        }
        4 => format!(r#"{{"n": {}}}"#, "9".repeat(rng.random_range(20..5000))).into_bytes(),
        5 => serde_json::to_vec(&random_value(rng, 6)).unwrap(),
        _ => {
            let mut body = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                mangle(rng, &mut body);
            }
            serde_json::to_vec(&body).unwrap()
        }
    }
}

/// Sends every body; panics naming the endpoint, the seed and the body's start on a 5xx
/// or a transport error.
async fn throw(app: &TestApp, method: Method, url: &str, token: &str, valid: Value, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..BODIES {
        let body = hostile_body(&mut rng, &valid);
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        let answer = app
            .http
            .request(method.clone(), url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("{method} {url} body #{n} (seed {seed}) dropped: {e}: {shown}")
            });
        let status = answer.status();
        assert!(
            status.as_u16() < 500,
            "{method} {url} body #{n} (seed {seed}) answered {status}: {shown}"
        );
    }
}

#[tokio::test]
async fn hostile_bodies_at_every_write_endpoint_get_answers_below_500() {
    // Arrange: an order of each kind and a shop to aim at.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();
    let product_id = product(&app, app.account_id, "SKU-R").await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "4242").await;
    let shop = app.shop.shop_id;
    let base = app.address.clone();
    let endpoints: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/orders".into(),
            json!({"client": {"first_name": "A", "phone": "0501234567"},
                   "items": [{"product_id": product_id, "quantity": "1", "price": "10.00"}]}),
        ),
        (
            Method::POST,
            format!("/api/orders/{order}/status"),
            json!({"status_id": 1}),
        ),
        (
            Method::POST,
            format!("/api/orders/{order}/write-off"),
            json!({}),
        ),
        (
            Method::POST,
            "/api/orders/refresh".into(),
            json!({"order_ids": [order]}),
        ),
        (
            Method::POST,
            "/api/shops".into(),
            json!({"name": "S", "prom_url": "https://my.prom.ua", "prom_token": "t"}),
        ),
        (
            Method::PATCH,
            format!("/api/shops/{shop}"),
            json!({"name": "S2", "poll_interval_s": 60, "language": "uk"}),
        ),
        (
            Method::PUT,
            format!("/api/shops/{shop}/status-mapping"),
            json!({"inbound": {"pending": 1}, "outbound": {"1": "received"}}),
        ),
        (
            Method::POST,
            "/api/employees".into(),
            json!({"name": "E", "permissions": ["goods_without_write_off"]}),
        ),
        (
            Method::POST,
            "/api/dead-letters/requeue".into(),
            json!({"ids": [1]}),
        ),
    ];

    // Act and Assert
    for (seed, (method, path, valid)) in endpoints.into_iter().enumerate() {
        throw(
            &app,
            method,
            &format!("{base}{path}"),
            &token,
            valid,
            seed as u64,
        )
        .await;
    }
    let (status, _) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(status, 200, "the API still serves");
}

#[tokio::test]
async fn hostile_bodies_signed_correctly_at_the_webhook_door_are_refused_and_none_enqueued() {
    // Arrange: every body carries a valid signature, so each reaches the parser.
    let app = TestApp::builder().importers(0).spawn().await;
    let valid = json!({"order": {"id": "x", "status": "pending"}, "order_id": null});
    let mut rng = StdRng::seed_from_u64(99);

    // Act
    let mut refused = 0;
    for n in 0..BODIES {
        let mut body = hostile_body(&mut rng, &valid);
        // A body that happens to name an order would rightly be accepted: keep only
        // those that do not.
        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
            if value.get("order_id").is_some_and(|v| !v.is_null())
                || value.get("order").is_some_and(Value::is_object)
            {
                body = b"{\"order\": null}".to_vec();
            }
        }
        let at = chrono::Utc::now().timestamp();
        let id = format!("msg_random_{n}");
        let answer = app
            .http
            .post(app.webhook_url(app.shop.shop_id))
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", at.to_string())
            .header(
                "webhook-signature",
                webhook::signature(&app.shop.webhook_secret, &id, at, &body),
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("body #{n} dropped the connection: {e}"));
        assert!(
            (400..500).contains(&answer.status().as_u16()),
            "body #{n} answered {}",
            answer.status()
        );
        refused += 1;
    }

    // Assert
    assert_eq!(refused, BODIES);
    assert_eq!(app.queue_depth(Lane::Inbound).await, 0);
}
