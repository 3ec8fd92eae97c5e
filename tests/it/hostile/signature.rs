//! The webhook door's signature check costs a bounded amount of work, whatever the header:
//! a stranger may send 30,000 candidate signatures, but only the first few are looked at
//! and an oversized header is refused before any HMAC is computed.

use chrono::Utc;
use promsync::{broker::Lane, ingress::signature::MAX_CANDIDATES};
use serde_json::json;

use crate::support::{webhook, TestApp};

/// Posts `body` to the test shop's door with `signature` as the whole header.
async fn post_signed(app: &TestApp, signature: &str, id: &str, at: i64, body: &[u8]) -> u16 {
    app.http
        .post(app.webhook_url(app.shop.shop_id))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("an answer, not a dropped connection")
        .status()
        .as_u16()
}

#[tokio::test]
async fn thirty_thousand_forged_candidates_are_refused_and_nothing_is_enqueued() {
    // Arrange: the attack as seen in the wild, a 120 KB header of empty `v1,` candidates over a
    // body of 256 KB, with the real signature hidden at the end.
    let app = TestApp::builder().importers(0).spawn().await;
    let at = Utc::now().timestamp();
    let body = serde_json::to_vec(&json!({"order_id": 7, "pad": "x".repeat(250 * 1024)})).unwrap();
    let good = webhook::signature(&app.shop.webhook_secret, "msg_flood", at, &body);
    let header = format!("{} {good}", vec!["v1,"; 30_000].join(" "));

    // Act
    let status = post_signed(&app, &header, "msg_flood", at, &body).await;

    // Assert
    assert_eq!(status, 401);
    assert_eq!(app.queue_depth(Lane::Inbound).await, 0);
}

#[tokio::test]
async fn a_valid_signature_beyond_the_candidates_looked_at_is_not_found() {
    // Arrange: a header short enough to be read, with the real signature ninth; and the
    // same with it eighth, which must still pass (senders rotating keys send several).
    let app = TestApp::builder().importers(0).spawn().await;
    let at = Utc::now().timestamp();
    let body = br#"{"order_id": 8}"#;
    let decoys = |n: usize| vec!["v1,Zm9v"; n].join(" ");
    let ninth = format!(
        "{} {}",
        decoys(MAX_CANDIDATES),
        webhook::signature(&app.shop.webhook_secret, "msg_9", at, body)
    );
    let eighth = format!(
        "{} {}",
        decoys(MAX_CANDIDATES - 1),
        webhook::signature(&app.shop.webhook_secret, "msg_8", at, body)
    );

    // Act
    let refused = post_signed(&app, &ninth, "msg_9", at, body).await;
    let accepted = post_signed(&app, &eighth, "msg_8", at, body).await;

    // Assert
    assert_eq!(refused, 401);
    assert_eq!(accepted, 202);
    assert_eq!(app.queue_depth(Lane::Inbound).await, 1);
}
