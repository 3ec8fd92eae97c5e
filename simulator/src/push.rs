//! Push mode: the simulator announces new and changed orders to a promsync webhook at a
//! steady rate, signed with the shop's secret (Standard Webhooks, [`crate::signature`]),
//! the way a relay in front of Prom would.
//!
//! Each tick sends the next order changed through the API or `/_sim/` (a `set_status`
//! echo included), or, when nothing changed, makes up some activity first (a new order,
//! or a status change on an existing one). A refused or failed push is counted and not
//! retried: promsync's poller is what makes the system whole after lost notifications.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;

use crate::{signature::WebhookSecret, PushConfig, SimHandle};

pub async fn run(sim: SimHandle, config: PushConfig) {
    let key: WebhookSecret = match config.secret.expose_secret().parse() {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(error = %e, "push mode needs the shop's whsec_… secret; not pushing");
            return;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "push mode could not build an HTTP client");
            return;
        }
    };
    let period = Duration::from_secs_f64(1.0 / config.rate_per_s.max(0.001));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    while config.count.is_none_or(|count| sent < count) {
        ticker.tick().await;
        let (id, order) = match sim.take_changed() {
            Some(next) => next,
            None => {
                sim.random_activity();
                match sim.take_changed() {
                    Some(next) => next,
                    None => continue,
                }
            }
        };
        let body = if config.thin {
            json!({ "order_id": id })
        } else {
            json!({ "order": order })
        };
        let raw = serde_json::to_vec(&body).expect("JSON serializes");
        let msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp();
        let result = http
            .post(&config.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", key.sign(&msg_id, now, &raw))
            .body(raw)
            .send()
            .await;
        let ok = match result {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::warn!(
                    status = response.status().as_u16(),
                    order_id = id,
                    "push refused"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, order_id = id, "push failed");
                false
            }
        };
        sim.count_push(ok);
        sent += 1;
    }
    tracing::info!(sent, "push mode finished");
}
