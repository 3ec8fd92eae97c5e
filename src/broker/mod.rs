//! The message broker behind a small trait, so roles do not care whether RabbitMQ or the
//! embedded backend carries their messages.
//!
//! The trait keeps the delivery guarantees in one place: a publish returns only once the
//! broker has durably accepted the message, and a consumed message is settled only after
//! the handler says what became of it — done (ack), retry later (a delayed retry tier, or
//! the dead-letter queue once attempts run out) or dead (straight to the dead letters).

pub mod rabbitmq;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::{
    domain::Source,
    prom::ids::{EventId, ShopId},
};

/// One inbound notification, as it travels from a door (webhook, poller, refresh, replay)
/// to the importer. `order` is the full Prom order document when the sender had it; a thin
/// notification carries only `order_id` and the importer fetches the order from Prom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundMessage {
    pub event_id: EventId,
    pub shop_id: ShopId,
    pub source: Source,
    pub received_at: DateTime<Utc>,
    pub order_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Box<RawValue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached or refused the connection: callers answer 503.
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// The broker was reached but did not take the message (nack, return, no confirm).
    #[error("message not accepted by the broker: {0}")]
    NotConfirmed(String),
}

/// What the handler decided about one delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Fully handled (applied, or recorded as duplicate/stale/rejected): acknowledge.
    Done,
    /// A transient failure: try again after a delay (at least `after` when given).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// A permanent failure: no retry can help until someone fixes the cause.
    Dead { reason: String },
}

#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// `attempt` counts deliveries of this message, starting at 1.
    async fn handle(&self, message: InboundMessage, attempt: u32) -> Disposition;
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes a fresh notification (to the import queue and the replay log) and
    /// returns once the broker confirmed it durably.
    async fn publish_inbound(&self, message: &InboundMessage) -> Result<(), BrokerError>;

    /// Whether the broker is reachable now (readiness).
    async fn check(&self) -> Result<(), BrokerError>;

    /// Consumes the import queue with `concurrency` messages in flight until `shutdown`
    /// fires; then stops taking messages, lets the in-flight ones finish, and returns.
    /// Connection losses are survived by reconnecting with backoff.
    async fn consume_inbound(
        &self,
        concurrency: usize,
        handler: Arc<dyn InboundHandler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>;
}

/// Names of every exchange and queue, derived from one namespace so that deployments and
/// tests sharing a broker never see each other's messages.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    /// Routing key of fresh notifications: delivered to the import queue and the log.
    pub const NOTIFICATION: &'static str = "notification";
    /// Routing key of re-fed notifications (retries, replay): the import queue only, so
    /// the replay log never holds a message twice.
    pub const REFEED: &'static str = "refeed";

    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn inbound_exchange(&self) -> String {
        format!("{}.inbound", self.namespace)
    }

    pub fn import_queue(&self) -> String {
        format!("{}.inbound.import", self.namespace)
    }

    pub fn log_stream(&self) -> String {
        format!("{}.inbound.log", self.namespace)
    }

    /// Retry tiers are named by their delay, because a queue's TTL cannot change once
    /// declared: a new delay is a new queue, never a failed redeclaration.
    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.inbound.retry.{}ms", self.namespace, delay.as_millis())
    }

    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }
}

/// The retry tier for a failed `attempt` (1-based): tiers grow with attempts, and a
/// `Retry-After` hint moves the message to the first tier at least that long.
pub fn retry_delay(delays: &[Duration], attempt: u32, at_least: Option<Duration>) -> Duration {
    let by_attempt = delays[(attempt.saturating_sub(1) as usize).min(delays.len() - 1)];
    match at_least {
        Some(min) if min > by_attempt => delays
            .iter()
            .copied()
            .find(|d| *d >= min)
            .unwrap_or(delays[delays.len() - 1]),
        _ => by_attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<Duration> {
        [1, 5, 30].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn retry_tiers_grow_with_attempts_and_stop_at_the_last() {
        let t = tiers();
        assert_eq!(retry_delay(&t, 1, None), Duration::from_secs(1));
        assert_eq!(retry_delay(&t, 2, None), Duration::from_secs(5));
        assert_eq!(retry_delay(&t, 9, None), Duration::from_secs(30));
    }

    #[test]
    fn a_retry_after_hint_picks_a_long_enough_tier() {
        let t = tiers();
        assert_eq!(
            retry_delay(&t, 1, Some(Duration::from_secs(3))),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(&t, 1, Some(Duration::from_secs(300))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn names_share_the_namespace() {
        let t = Topology::new("t1");
        assert_eq!(t.import_queue(), "t1.inbound.import");
        assert_eq!(
            t.retry_queue(Duration::from_millis(250)),
            "t1.inbound.retry.250ms"
        );
    }
}
