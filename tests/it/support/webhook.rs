//! The webhook door from the sender's side. `signature` is the one place a test signs a
//! notification (Standard Webhooks, with a shop's `whsec_` secret); everything that posts
//! a signed webhook goes through it.

use chrono::Utc;
use promsync::ingress::signature::SigningKey;
use serde_json::{json, Value};

use super::app::TestApp;

/// The `webhook-signature` of `body` sent as `id` at `timestamp`, signed with `secret`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key: SigningKey = secret.parse().expect("a whsec_ secret");
    key.sign(id, timestamp, body)
}

/// The `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of `body` sent
/// as `id` at `timestamp`, signed with `secret`.
pub fn headers(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature(secret, id, timestamp, body)),
    ]
}

/// A fresh webhook id, as a sender makes one per notification.
fn new_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn webhook_url(&self, shop_id: i64) -> String {
        format!("{}/webhooks/prom/{shop_id}", self.address)
    }

    /// Posts `body` to `shop_id`'s door with the given headers.
    pub async fn post_webhook(
        &self,
        shop_id: i64,
        headers: impl IntoIterator<Item = (&'static str, String)>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.webhook_url(shop_id))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).send().await.expect("request")
    }

    /// Posts a correctly signed notification with a fresh webhook id.
    pub async fn notify(&self, body: &Value) -> reqwest::Response {
        self.notify_with_id(&new_id(), body).await
    }

    pub async fn notify_with_id(&self, msg_id: &str, body: &Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("JSON body");
        let signed = headers(
            &self.shop.webhook_secret,
            msg_id,
            Utc::now().timestamp(),
            &raw,
        );
        self.post_webhook(self.shop.shop_id, signed, raw).await
    }

    /// Sends a full order and asserts it was accepted.
    pub async fn push_order(&self, order: &Value) {
        let response = self.notify(&json!({ "order": order })).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    }
}

/// Posts a thin notification (`order_id` 5) for `shop_id` signed with `secret`; answers
/// the status.
pub async fn post_thin_webhook(app: &TestApp, shop_id: i64, secret: &str) -> u16 {
    let body = br#"{"order_id": 5}"#.to_vec();
    let signed = headers(secret, &new_id(), Utc::now().timestamp(), &body);
    app.post_webhook(shop_id, signed, body)
        .await
        .status()
        .as_u16()
}
