//! The webhook door (ARCHITECTURE.md, 'Webhook ingress'): what is accepted is enqueued
//! once, after the broker's confirm; whatever is refused enqueues nothing.

use chrono::Utc;
use entity::shops;
use promsync::broker::Lane;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;

use crate::support::{fixture_order, webhook, TestApp, PENDING_ORDER};

struct BadRequest {
    name: &'static str,
    shop_id: Option<i64>,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    expected: u16,
}

fn signed_headers(app: &TestApp, body: &[u8], at: i64) -> Vec<(&'static str, String)> {
    webhook::headers(&app.shop.webhook_secret, "msg_bad", at, body).to_vec()
}

#[tokio::test]
async fn every_bad_webhook_gets_its_status_code_and_nothing_is_enqueued() {
    // Arrange
    let app = TestApp::builder().importers(0).spawn().await;
    let now = Utc::now().timestamp();
    let order = serde_json::to_vec(&json!({ "order": fixture_order(PENDING_ORDER) })).unwrap();
    let big = serde_json::to_vec(&json!({
        "order": fixture_order(PENDING_ORDER),
        "padding": "x".repeat(300 * 1024),
    }))
    .unwrap();
    let malformed = b"{\"order\": {".to_vec();
    let no_order = b"{\"something\": 1}".to_vec();
    let cases = vec![
        BadRequest {
            name: "missing signature headers",
            shop_id: None,
            content_type: "application/json",
            body: order.clone(),
            headers: vec![],
            expected: 401,
        },
        BadRequest {
            name: "wrong signature",
            shop_id: None,
            content_type: "application/json",
            body: order.clone(),
            headers: vec![
                ("webhook-id", "msg_bad".into()),
                ("webhook-timestamp", now.to_string()),
                (
                    "webhook-signature",
                    "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
                ),
            ],
            expected: 401,
        },
        BadRequest {
            name: "stale timestamp",
            shop_id: None,
            content_type: "application/json",
            body: order.clone(),
            headers: signed_headers(&app, &order, now - 6 * 60),
            expected: 401,
        },
        BadRequest {
            name: "timestamp from the future",
            shop_id: None,
            content_type: "application/json",
            body: order.clone(),
            headers: signed_headers(&app, &order, now + 6 * 60),
            expected: 401,
        },
        BadRequest {
            name: "unknown shop",
            shop_id: Some(app.shop.shop_id + 1000),
            content_type: "application/json",
            body: order.clone(),
            headers: signed_headers(&app, &order, now),
            expected: 401,
        },
        BadRequest {
            name: "300 KiB body",
            shop_id: None,
            content_type: "application/json",
            body: big.clone(),
            headers: signed_headers(&app, &big, now),
            expected: 413,
        },
        BadRequest {
            name: "wrong content type",
            shop_id: None,
            content_type: "text/plain",
            body: order.clone(),
            headers: signed_headers(&app, &order, now),
            expected: 415,
        },
        BadRequest {
            name: "malformed JSON",
            shop_id: None,
            content_type: "application/json",
            body: malformed.clone(),
            headers: signed_headers(&app, &malformed, now),
            expected: 400,
        },
        BadRequest {
            name: "JSON without an order",
            shop_id: None,
            content_type: "application/json",
            body: no_order.clone(),
            headers: signed_headers(&app, &no_order, now),
            expected: 400,
        },
    ];

    // Act
    for case in &cases {
        let mut request = app
            .http
            .post(app.webhook_url(case.shop_id.unwrap_or(app.shop.shop_id)))
            .header("content-type", case.content_type)
            .body(case.body.clone());
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("request");

        // Assert
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, case.expected, "{}: {body}", case.name);
        assert!(
            body["error"]["code"].is_string(),
            "{}: error body {body}",
            case.name
        );
    }
    // A good notification afterwards proves the queue exists and is counted.
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    assert_eq!(app.queue_depth(Lane::Inbound).await, 1);
}

#[tokio::test]
async fn an_accepted_notification_is_enqueued_once_with_its_event_id() {
    let app = TestApp::builder().importers(0).spawn().await;

    let response = app
        .notify_with_id(
            "msg_once",
            &json!({ "order": fixture_order(PENDING_ORDER) }),
        )
        .await;

    assert_eq!(response.status(), 202);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    let event_id = body["event_id"].as_str().expect("event_id").to_owned();
    assert_eq!(app.queue_depth(Lane::Inbound).await, 1);
    assert_eq!(app.log_event_ids(1).await, vec![event_id]);
}

#[tokio::test]
async fn a_thin_notification_is_accepted() {
    let app = TestApp::builder().importers(0).spawn().await;

    let response = app.notify(&json!({ "order_id": 338390710_i64 })).await;

    assert_eq!(response.status(), 202);
    assert_eq!(app.queue_depth(Lane::Inbound).await, 1);
}

#[tokio::test]
async fn the_previous_secret_signs_during_rotation_and_not_after() {
    // Arrange: rotate the shop's secret, keeping the old one for a grace period.
    let app = TestApp::builder().importers(0).spawn().await;
    let old_secret = app.shop.webhook_secret.clone();
    let set_previous = |expires_in_s: i64| {
        let db = app.db.clone();
        let old_secret = old_secret.clone();
        let shop_id = app.shop.shop_id;
        async move {
            shops::ActiveModel {
                id: Set(shop_id),
                webhook_secret: Set(promsync::secrets::new_webhook_secret()),
                previous_webhook_secret: Set(Some(old_secret)),
                previous_secret_expires_at: Set(Some(
                    Utc::now() + chrono::Duration::seconds(expires_in_s),
                )),
                ..Default::default()
            }
            .update(&db)
            .await
            .expect("rotate");
        }
    };
    set_previous(3600).await;

    // Act + Assert: signed by the previous secret → accepted.
    let during = crate::support::eventually(
        "the rotated secret to be seen",
        std::time::Duration::from_secs(10),
        || async {
            let r = app
                .notify(&json!({ "order": fixture_order(PENDING_ORDER) }))
                .await;
            Some(r.status().as_u16())
        },
    )
    .await;
    assert_eq!(during, 202);

    // After the grace period the previous secret no longer passes.
    set_previous(-1).await;
    crate::support::eventually(
        "the expired secret to be refused",
        std::time::Duration::from_secs(10),
        || async {
            let r = app
                .notify(&json!({ "order": fixture_order(PENDING_ORDER) }))
                .await;
            (r.status() == 401).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_dead_broker_answers_503_with_retry_after_and_enqueues_nothing() {
    // Nothing listens on port 1: the broker is unreachable from the start.
    let app = TestApp::builder()
        .importers(0)
        .broker_url("amqp://guest:guest@127.0.0.1:1/%2f")
        .spawn()
        .await;

    let response = app
        .notify(&json!({ "order": fixture_order(PENDING_ORDER) }))
        .await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "broker_unavailable");
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn a_shop_over_its_webhook_rate_gets_429_with_retry_after_and_nothing_more_is_enqueued() {
    // Arrange: 5 notifications per second per shop, bursts of 10.
    let app = TestApp::builder()
        .importers(0)
        .webhook_rate_per_shop_per_s(5)
        .spawn()
        .await;
    let body = json!({ "order": fixture_order(PENDING_ORDER) });

    // Act: 30 at once.
    let sends = (0..30).map(|_| app.notify(&body));
    let responses = futures::future::join_all(sends).await;

    // Assert
    let accepted = responses.iter().filter(|r| r.status() == 202).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(accepted + limited.len(), 30);
    assert!((10..=12).contains(&accepted), "accepted {accepted}");
    assert!(limited
        .iter()
        .all(|r| r.headers().get("retry-after").is_some_and(|v| v == "1")));
    assert_eq!(app.queue_depth(Lane::Inbound).await as usize, accepted);
}
