//! The message broker behind a small trait, so roles do not care whether RabbitMQ or the
//! embedded backend carries their messages.
//!
//! The trait keeps the delivery guarantees in one place: a publish returns only once the
//! broker has durably accepted the message, and a consumed message is settled only after
//! the handler says what became of it — done (ack), retry later (a delayed retry tier, or
//! the dead-letter queue once attempts run out) or dead (straight to the dead letters).

pub mod dead_letters;
pub mod embedded;
pub mod rabbitmq;
mod replay;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::dead_letters::DeadLetterSink;
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
    /// The broker was reached but did not take the message (nack, return).
    #[error("message not accepted by the broker: {0}")]
    NotConfirmed(String),
    /// The broker said nothing in time (no confirm, a database that stopped answering):
    /// callers answer 503, and the connection it was awaited on is suspect.
    #[error("no answer from the message broker: {0}")]
    NoAnswer(String),
}

/// A queue's backlog: how many messages wait, and when the oldest arrived if the store
/// can tell (RabbitMQ reports a queue's length, not its messages' ages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub messages: u64,
    pub oldest: Option<DateTime<Utc>>,
}

impl Backlog {
    /// The rows `query` selects, counted by `id`, and the earliest `at` among them.
    pub async fn of_rows<E: EntityTrait>(
        db: &impl ConnectionTrait,
        query: Select<E>,
        id: E::Column,
        at: E::Column,
    ) -> Result<Self, DbErr> {
        let (messages, oldest) = query
            .select_only()
            .column_as(id.count(), "messages")
            .column_as(at.min(), "oldest")
            .into_tuple::<(i64, Option<DateTime<Utc>>)>()
            .one(db)
            .await?
            .unwrap_or_default();
        Ok(Self {
            messages: u64::try_from(messages).unwrap_or_default(),
            oldest,
        })
    }
}

pub use self::replay::{replay_rewrite, ReplayRequest, ReplaySummary, Replayed};
/// The two message flows (defined with the dead-letter and embedded-queue columns that
/// store them).
pub use entity::enums::Lane;

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

/// Handles raw messages of one lane; `attempt` counts deliveries, starting at 1.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, payload: &[u8], attempt: u32) -> Disposition;
}

/// Handles decoded inbound notifications (the importer).
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    async fn handle(&self, message: InboundMessage, attempt: u32) -> Disposition;
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes a fresh message of `lane` (inbound ones also go to the replay log) and
    /// returns once the broker confirmed it durably.
    async fn publish(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError>;

    /// Whether the broker is reachable now (readiness).
    async fn check(&self) -> Result<(), BrokerError>;

    /// How many messages each lane's work queue holds (ready, or waiting in a retry tier),
    /// and when the oldest was published if the backend can tell (for `/metrics`), in the
    /// order of `Lane::ALL`.
    async fn backlogs(&self) -> Result<Vec<(Lane, Backlog)>, BrokerError>;

    /// Consumes `lane` with `concurrency` messages in flight until `shutdown` fires; then
    /// stops taking messages, lets the in-flight ones finish, and returns. Connection
    /// losses are survived by reconnecting with backoff.
    async fn consume(
        &self,
        lane: Lane,
        concurrency: usize,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>;

    /// Feeds logged inbound notifications from `request.since` back to the import queue
    /// (never back into the log), calling `progress` as it goes.
    async fn replay(
        &self,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary>;

    /// Moves `lane`'s dead letters into the database until `shutdown` fires: each one is
    /// handed to `sink` and acknowledged only after `sink` committed it. Survives
    /// connection losses like `consume`.
    async fn drain_dead(
        &self,
        lane: Lane,
        sink: Arc<dyn DeadLetterSink>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>;

    /// Moves the dead letters waiting in `lane`'s dead-letter queue now into the database
    /// and returns how many (`promsync dlq`, which may run while no drainer does).
    async fn drain_dead_once(&self, lane: Lane, sink: &dyn DeadLetterSink) -> anyhow::Result<u64>;

    /// Sends a recorded dead letter back to `lane`'s work queue with a fresh attempt
    /// count. `txn` is the transaction removing its row: the embedded broker writes the
    /// message in it (both commit together); RabbitMQ returns once the broker confirmed
    /// the publish, before the caller commits.
    async fn requeue_dead(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
        txn: &DatabaseTransaction,
    ) -> Result<(), BrokerError>;
}

impl dyn Broker {
    pub async fn publish_inbound(&self, message: &InboundMessage) -> Result<(), BrokerError> {
        let payload = serde_json::to_vec(message)
            .map_err(|e| BrokerError::NotConfirmed(format!("encoding: {e}")))?;
        self.publish(Lane::Inbound, &message.event_id.to_string(), &payload)
            .await
    }

    pub async fn consume_inbound(
        &self,
        concurrency: usize,
        handler: Arc<dyn InboundHandler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let decoder = Arc::new(DecodeInbound(handler));
        self.consume(Lane::Inbound, concurrency, decoder, shutdown)
            .await
    }
}

/// Decodes inbound payloads and gives each message its span (event id, shop, order).
struct DecodeInbound(Arc<dyn InboundHandler>);

#[async_trait]
impl Handler for DecodeInbound {
    async fn handle(&self, payload: &[u8], attempt: u32) -> Disposition {
        let message = match serde_json::from_slice::<InboundMessage>(payload) {
            Ok(message) => message,
            Err(e) => {
                return Disposition::Dead {
                    reason: format!("undecodable message: {e}"),
                }
            }
        };
        let span = tracing::info_span!(
            "inbound_message",
            event_id = %message.event_id,
            shop_id = %message.shop_id,
            order_id = message.order_id,
            source = %message.source,
            attempt,
        );
        self.0.handle(message, attempt).instrument(span).await
    }
}

/// Names of every exchange and queue, derived from one namespace so that deployments and
/// tests sharing a broker never see each other's messages.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    /// Routing key of fresh messages: delivered to the work queue (and, inbound, the log).
    pub const FRESH: &'static str = "fresh";
    /// Routing key of re-fed messages (retries, replay): the work queue only, so the
    /// replay log never holds a message twice.
    pub const REFEED: &'static str = "refeed";

    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn exchange(&self, lane: Lane) -> String {
        format!("{}.{}", self.namespace, lane.as_str())
    }

    /// The queue a lane's consumers take work from.
    pub fn work_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Inbound => format!("{}.inbound.import", self.namespace),
            Lane::Outbound => format!("{}.outbound.prom", self.namespace),
        }
    }

    /// Retry tiers are named by their delay, because a queue's TTL cannot change once
    /// declared: a new delay is a new queue, never a failed redeclaration.
    pub fn retry_queue(&self, lane: Lane, delay: Duration) -> String {
        format!(
            "{}.{}.retry.{}ms",
            self.namespace,
            lane.as_str(),
            delay.as_millis()
        )
    }

    /// Dead letters: `{ns}.dead` for imports (the name operators know), and
    /// `{ns}.outbound.dead` for the publisher.
    pub fn dead_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Inbound => format!("{}.dead", self.namespace),
            Lane::Outbound => format!("{}.outbound.dead", self.namespace),
        }
    }

    pub fn dead_exchange(&self, lane: Lane) -> String {
        self.dead_queue(lane)
    }

    pub fn import_queue(&self) -> String {
        self.work_queue(Lane::Inbound)
    }

    pub fn log_stream(&self) -> String {
        format!("{}.inbound.log", self.namespace)
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
        assert_eq!(t.work_queue(Lane::Outbound), "t1.outbound.prom");
        assert_eq!(
            t.retry_queue(Lane::Inbound, Duration::from_millis(250)),
            "t1.inbound.retry.250ms"
        );
        assert_eq!(t.dead_queue(Lane::Inbound), "t1.dead");
        assert_eq!(t.dead_queue(Lane::Outbound), "t1.outbound.dead");
    }
}
