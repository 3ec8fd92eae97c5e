//! RabbitMQ backend (lapin): topology declared idempotently by every role, publisher
//! confirms with `mandatory` on every publish, manual acks, and a connection supervised by
//! us — on loss we reconnect with backoff, redeclare, reapply QoS and resubscribe.
//!
//! Retries are delayed by per-delay TTL queues that dead-letter back into the inbound
//! exchange under the re-feed routing key (3.10 has no delayed-message plugin). The import
//! queue is a quorum queue whose delivery limit dead-letters a message that keeps killing
//! its consumer, so a poison message cannot loop forever.
//!
//! The pieces: `connection` (connecting, the shared confirm-mode publishing channel,
//! reconnecting sessions), `topology` (the exchanges, queues and bindings, declared and
//! rendered from one description), `settle` (consuming, and what becomes of each
//! delivery: ack, a retry tier or the dead letters), `dead_letters` (moving dead letters
//! into the database) and `replay` (re-feeding the log). This module holds the broker and
//! its [`Broker`] implementation, which wires them.

mod connection;
mod dead_letters;
mod depth;
mod replay;
mod settle;
mod topology;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use lapin::BasicProperties;
use sea_orm::DatabaseTransaction;
use tokio_util::sync::CancellationToken;

use self::connection::PublisherState;
pub use self::topology::{declare_topology, delete_topology, topology_definitions};
use super::{Backlog, Broker, BrokerError, Handler, Lane, ReplayRequest, ReplaySummary, Topology};
use crate::{broker::dead_letters::DeadLetterSink, config::Settings};

pub struct RabbitBroker {
    url: String,
    topology: Topology,
    retry_delays: Vec<Duration>,
    max_attempts: u32,
    confirm_timeout: Duration,
    publish_timeout: Duration,
    publisher: Arc<Mutex<PublisherState>>,
}

impl RabbitBroker {
    pub fn new(url: &str, settings: &Settings) -> Self {
        Self {
            url: url.to_owned(),
            topology: Topology::new(&settings.broker.namespace),
            retry_delays: settings.import.retry_delays.clone(),
            max_attempts: settings.import.max_attempts.get(),
            confirm_timeout: settings.broker.confirm_timeout,
            publish_timeout: settings.broker.publish_timeout,
            publisher: Arc::new(Mutex::new(PublisherState::default())),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    async fn publish(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        let properties = fresh_properties(message_id);
        self.publish_to(lane, Topology::FRESH, payload, properties)
            .await
    }

    async fn check(&self) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + self.publish_timeout;
        self.publish_channel(deadline, false).await.map(|_| ())
    }

    async fn backlogs(&self) -> Result<Vec<(Lane, Backlog)>, BrokerError> {
        self.measure_backlogs().await
    }

    async fn replay(
        &self,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary> {
        self.replay_log(request, progress).await
    }

    async fn drain_dead(
        &self,
        lane: Lane,
        sink: Arc<dyn DeadLetterSink>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.supervised(lane, "dead-letter drainer", &shutdown, || {
            self.drain_session(lane, sink.as_ref(), &shutdown)
        })
        .await
    }

    async fn drain_dead_once(&self, lane: Lane, sink: &dyn DeadLetterSink) -> anyhow::Result<u64> {
        self.drain_once(lane, sink).await
    }

    async fn requeue_dead(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
        _txn: &DatabaseTransaction,
    ) -> Result<(), BrokerError> {
        // A fresh start: no attempt count, no last error. Re-fed, so an inbound message
        // goes to the import queue only, never into the replay log a second time.
        let properties = fresh_properties(message_id);
        self.publish_to(lane, Topology::REFEED, payload, properties)
            .await
    }

    async fn consume(
        &self,
        lane: Lane,
        concurrency: usize,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.supervised(lane, "consumer", &shutdown, || {
            self.consume_session(lane, concurrency, &handler, &shutdown)
        })
        .await
    }
}

/// A message as it starts its journey: persistent JSON, stamped now, with no attempt count
/// or last error (a requeued dead letter starts afresh too).
fn fresh_properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
}
