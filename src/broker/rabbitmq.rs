//! RabbitMQ backend (lapin): topology declared idempotently by every role, publisher
//! confirms with `mandatory` on every publish, manual acks, and a connection supervised by
//! us — on loss we reconnect with backoff, redeclare, reapply QoS and resubscribe.
//!
//! Retries are delayed by per-delay TTL queues that dead-letter back into the inbound
//! exchange under the re-feed routing key (3.10 has no delayed-message plugin). The import
//! queue is a quorum queue whose delivery limit dead-letters a message that keeps killing
//! its consumer, so a poison message cannot loop forever.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use sea_orm::DatabaseTransaction;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    replay_rewrite, retry_delay, Broker, BrokerError, Disposition, Handler, Lane, ReplayRequest,
    ReplaySummary, Topology,
};
use crate::{
    broker::dead_letters::{DeadLetterSink, NewDeadLetter},
    config::Settings,
};

const ATTEMPTS_HEADER: &str = "x-promsync-attempts";
const ERROR_HEADER: &str = "x-promsync-last-error";
/// When a handler gave the message up (epoch milliseconds), for the dead letter's `dead_at`.
const DEAD_AT_HEADER: &str = "x-promsync-dead-at";
/// Set by quorum queues on redelivery; the attempts of a message RabbitMQ dead-lettered
/// itself (delivery limit), which never got our attempts header.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Why RabbitMQ itself dead-lettered a message (`delivery_limit`, `rejected`, …).
const DEATH_REASON_HEADER: &str = "x-first-death-reason";
/// Dead letters a drainer takes from the broker before the first is recorded.
const DRAIN_PREFETCH: u16 = 20;
/// Deliveries of one message after which RabbitMQ itself dead-letters it: only reached
/// when consumers crash mid-message, since handled failures count attempts themselves.
const QUORUM_DELIVERY_LIMIT: i64 = 20;
/// How long the replay log keeps notifications.
const LOG_MAX_AGE: &str = "7D";
/// A replay that has read nothing for this long has caught up with the log.
const REPLAY_IDLE: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// While the broker is down, publishers try to reconnect at most this often, so a burst
/// of requests fails fast with 503 instead of queueing on connection attempts.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(500);

pub struct RabbitBroker {
    url: String,
    topology: Topology,
    retry_delays: Vec<Duration>,
    max_attempts: u32,
    confirm_timeout: Duration,
    publisher: Mutex<PublisherState>,
}

#[derive(Default)]
struct PublisherState {
    link: Option<(Connection, Channel)>,
    last_attempt: Option<Instant>,
}

impl RabbitBroker {
    pub fn new(url: &str, settings: &Settings) -> Self {
        Self {
            url: url.to_owned(),
            topology: Topology::new(&settings.broker_namespace),
            retry_delays: settings
                .retry_delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            max_attempts: settings.import_max_attempts,
            confirm_timeout: settings.confirm_timeout(),
            publisher: Mutex::new(PublisherState::default()),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn connect(&self, role: &str) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("promsync-{role}-{}", std::process::id()).into());
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties))
            .await
            .map_err(|_| BrokerError::Unavailable("connect timed out".into()))?
            .map_err(|e| BrokerError::Unavailable(e.to_string()))
    }

    /// A confirm-mode channel on a connection with the topology declared.
    async fn open_publisher(&self, role: &str) -> Result<(Connection, Channel), BrokerError> {
        let connection = self.connect(role).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        declare_topology(&channel, &self.topology, &self.retry_delays)
            .await
            .map_err(|e| BrokerError::Unavailable(format!("declaring topology: {e}")))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        Ok((connection, channel))
    }

    /// The shared publishing channel, reconnecting if it was lost. The lock is held only
    /// to hand out a clone, so many publishes stay in flight on one channel.
    async fn publish_channel(&self, retrying: bool) -> Result<Channel, BrokerError> {
        let mut state = self.publisher.lock().await;
        if let Some((connection, channel)) = &state.link {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            state.link = None;
        }
        if let Some(last) = state.last_attempt {
            if !retrying && last.elapsed() < RECONNECT_THROTTLE {
                return Err(BrokerError::Unavailable("reconnecting".into()));
            }
        }
        state.last_attempt = Some(Instant::now());
        let (connection, channel) = self.open_publisher("publish").await?;
        tracing::info!("connected to RabbitMQ");
        state.link = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Drops the publishing link if it is still `channel` (another publish may already
    /// have replaced it).
    async fn forget_publisher(&self, channel: &Channel) {
        let mut state = self.publisher.lock().await;
        if state
            .link
            .as_ref()
            .is_some_and(|(_, current)| current.id() == channel.id())
        {
            state.link = None;
        }
    }

    /// Publishes to `lane`'s exchange and waits for the confirm. A connection that dies
    /// under a publish (broker restart, or RabbitMQ 3.10 crashing a channel that routes to
    /// a stream still starting) gets one immediate second chance on a fresh connection.
    /// Publishing twice is harmless: consumers dedupe by message id.
    async fn publish_to(
        &self,
        lane: Lane,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let mut retrying = false;
        loop {
            let channel = self.publish_channel(retrying).await?;
            let result = publish_confirmed(
                &channel,
                &self.topology.exchange(lane),
                routing_key,
                payload,
                properties.clone(),
                self.confirm_timeout,
            )
            .await;
            match result {
                Err(BrokerError::Unavailable(e)) => {
                    self.forget_publisher(&channel).await;
                    if retrying {
                        return Err(BrokerError::Unavailable(e));
                    }
                    tracing::warn!(error = %e, "publish failed; reconnecting once");
                    retrying = true;
                }
                other => return other,
            }
        }
    }

    /// Runs `session` again and again, backing off after each lost connection, until
    /// `shutdown` fires or a session ends cleanly (which it does on shutdown).
    async fn supervised<F, Fut>(
        &self,
        lane: Lane,
        what: &str,
        shutdown: &CancellationToken,
        mut session: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
        let mut backoff = INITIAL_BACKOFF;
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            match session().await {
                Ok(()) => break,
                Err(e) => {
                    // A session that ran for a while was healthy: start backing off afresh.
                    if started.elapsed() > Duration::from_secs(30) {
                        backoff = INITIAL_BACKOFF;
                    }
                    tracing::warn!(error = %e, lane = lane.as_str(), retry_in_ms = backoff.as_millis() as u64, "{what} lost its broker connection");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        Ok(())
    }

    /// One drainer session: consumes `lane`'s dead-letter queue, recording each letter
    /// before acknowledging it. Returns `Ok` on shutdown, `Err` when the connection is
    /// lost (unacknowledged letters go back to the queue and are recorded again, which
    /// changes nothing).
    async fn drain_session(
        &self,
        lane: Lane,
        sink: &dyn DeadLetterSink,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let connection = self.connect(&format!("{}-dead", lane.as_str())).await?;
        let channel = connection.create_channel().await?;
        declare_topology(&channel, &self.topology, &self.retry_delays).await?;
        channel
            .basic_qos(DRAIN_PREFETCH, BasicQosOptions::default())
            .await?;
        let queue = self.topology.dead_queue(lane);
        let consumer = subscribe(&channel, &queue, &format!("{}-dead", lane.as_str())).await?;
        tracing::info!(%queue, "draining dead letters into the database");
        let mut deliveries =
            std::pin::pin!(until_first_error(consumer.take_until(shutdown.cancelled())));
        while let Some(delivery) = deliveries.next().await {
            let letter = dead_letter_of(lane, &delivery);
            if !record_until_committed(sink, &letter, shutdown).await {
                break;
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
            tracing::info!(lane = lane.as_str(), "dead letter recorded");
        }
        if shutdown.is_cancelled() {
            let _ = connection.close(200, "shutdown".into()).await;
            return Ok(());
        }
        anyhow::bail!("dead-letter consumer stream ended (connection lost)")
    }

    /// One consumer session: returns `Ok` on shutdown, `Err` when the connection is lost.
    async fn consume_session(
        &self,
        lane: Lane,
        concurrency: usize,
        handler: &Arc<dyn Handler>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let connection = self.connect(lane.as_str()).await?;
        let consume = connection.create_channel().await?;
        let publish = connection.create_channel().await?;
        declare_topology(&consume, &self.topology, &self.retry_delays).await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let prefetch = u16::try_from(concurrency * 2).unwrap_or(u16::MAX);
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let queue = self.topology.work_queue(lane);
        let consumer = subscribe(&consume, &queue, lane.as_str()).await?;
        tracing::info!(%queue, prefetch, "consuming");
        let settler = Settler {
            lane,
            publish: &publish,
            topology: &self.topology,
            retry_delays: &self.retry_delays,
            max_attempts: self.max_attempts,
            confirm_timeout: self.confirm_timeout,
        };
        let settler = &settler;
        until_first_error(consumer.take_until(shutdown.cancelled()))
            .for_each_concurrent(concurrency, |delivery| async move {
                settler.process(delivery, handler.as_ref()).await
            })
            .await;
        if shutdown.is_cancelled() {
            // In-flight messages are settled by now; close cleanly so nothing is redelivered.
            let _ = connection.close(200, "shutdown".into()).await;
            return Ok(());
        }
        anyhow::bail!("consumer stream ended (connection lost)")
    }
}

/// A consumer's deliveries up to its first error. lapin reports a lost connection as an
/// error item and may then leave the stream open forever (seen when the broker's app was
/// stopped and started: the importer never consumed again), so the session ends there
/// and `consume` reconnects.
fn until_first_error<T, E: std::fmt::Display>(
    deliveries: impl futures::Stream<Item = Result<T, E>>,
) -> impl futures::Stream<Item = T> {
    deliveries
        .take_while(|delivery| {
            if let Err(e) = delivery {
                tracing::warn!(error = %e, "consumer error: ending the session");
            }
            futures::future::ready(delivery.is_ok())
        })
        .filter_map(|delivery| futures::future::ready(delivery.ok()))
}

struct Settler<'a> {
    lane: Lane,
    publish: &'a Channel,
    topology: &'a Topology,
    retry_delays: &'a [Duration],
    max_attempts: u32,
    confirm_timeout: Duration,
}

impl Settler<'_> {
    async fn process(&self, delivery: Delivery, handler: &dyn Handler) {
        let attempt = header_u32(&delivery, ATTEMPTS_HEADER).unwrap_or(0) + 1;
        let disposition = handler.handle(&delivery.data, attempt).await;
        // On a connection that died meanwhile, lapin's publish and ack may never return,
        // and the session (which waits for every message in flight) would never end and
        // reconnect. Unsettled, the message is redelivered; the inbox makes that safe.
        let within = self.confirm_timeout * 2;
        if tokio::time::timeout(within, self.settle(&delivery, attempt, disposition))
            .await
            .is_err()
        {
            tracing::warn!(
                "could not settle the message within {within:?}: the broker redelivers it"
            );
        }
    }

    async fn settle(&self, delivery: &Delivery, attempt: u32, disposition: Disposition) {
        let settled = match disposition {
            Disposition::Done => Ok(()),
            Disposition::Retry { reason, after } if attempt < self.max_attempts => {
                let delay = retry_delay(self.retry_delays, attempt, after);
                tracing::warn!(%reason, attempt, delay_ms = delay.as_millis() as u64, "will retry");
                self.forward(
                    delivery,
                    "",
                    &self.topology.retry_queue(self.lane, delay),
                    attempt,
                    &reason,
                    false,
                )
                .await
            }
            Disposition::Retry { reason, .. } | Disposition::Dead { reason } => {
                tracing::error!(%reason, attempt, "dead-lettered");
                let dead = self.topology.dead_exchange(self.lane);
                self.forward(delivery, &dead, "", attempt, &reason, true)
                    .await
            }
        };
        match settled {
            Ok(()) => {
                if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                    // The message comes back on another delivery; the inbox makes that safe.
                    tracing::warn!(error = %e, "ack failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not forward the message; requeueing it");
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
            }
        }
    }

    /// Re-publishes the delivered message (to a retry tier or, `dead`, the dead letters)
    /// with its attempt count and last error, and waits for the confirm before the
    /// original is acked.
    async fn forward(
        &self,
        delivery: &Delivery,
        exchange: &str,
        routing_key: &str,
        attempt: u32,
        reason: &str,
        dead: bool,
    ) -> Result<(), BrokerError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
        if dead {
            headers.insert(
                DEAD_AT_HEADER.into(),
                AMQPValue::LongLongInt(chrono::Utc::now().timestamp_millis()),
            );
        }
        let reason: String = reason.chars().take(1000).collect();
        headers.insert(
            ERROR_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        publish_confirmed(
            self.publish,
            exchange,
            routing_key,
            &delivery.data,
            properties,
            self.confirm_timeout,
        )
        .await
    }
}

fn message_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(v) => Some(v.to_string()),
        _ => None,
    }
}

fn header_u32(delivery: &Delivery, name: &str) -> Option<u32> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongUInt(v) => Some(*v),
        AMQPValue::LongInt(v) => u32::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u32::try_from(*v).ok(),
        _ => None,
    }
}

fn header_i64(delivery: &Delivery, name: &str) -> Option<i64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// What a delivery from a dead-letter queue says about itself. A message RabbitMQ
/// dead-lettered on its own (a consumer kept dying on it) carries none of our headers:
/// its attempts are the deliveries counted by the quorum queue, its error RabbitMQ's
/// reason. A message without an id is identified by its content, so that recording it
/// twice still keeps one row.
fn dead_letter_of(lane: Lane, delivery: &Delivery) -> NewDeadLetter {
    let mut id = message_id(delivery);
    if id.is_empty() {
        id = format!("sha256:{:x}", Sha256::digest(&delivery.data));
    }
    let attempts = header_u32(delivery, ATTEMPTS_HEADER)
        .or_else(|| header_u32(delivery, DELIVERY_COUNT_HEADER))
        .unwrap_or(0);
    let last_error = header_text(delivery, ERROR_HEADER).or_else(|| {
        header_text(delivery, DEATH_REASON_HEADER)
            .map(|reason| format!("dead-lettered by RabbitMQ: {reason}"))
    });
    let dead_at = header_i64(delivery, DEAD_AT_HEADER)
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    NewDeadLetter {
        lane,
        message_id: id,
        payload: delivery.data.clone(),
        attempts,
        last_error,
        dead_at,
    }
}

/// Hands a dead letter to `sink` until it is committed, backing off while the database
/// is unavailable; `false` when `shutdown` came first (the letter stays unacknowledged,
/// so the broker keeps it).
async fn record_until_committed(
    sink: &dyn DeadLetterSink,
    letter: &NewDeadLetter,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sink.record(letter.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), lane = letter.lane.as_str(), retry_in_ms = backoff.as_millis() as u64, "could not record a dead letter");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Starts consuming `queue` under a tag unique to this process and session
/// (`promsync-<role>-<pid>-<uuid>`), so the management UI tells consumers apart and a
/// reconnecting session never collides with its predecessor's tag.
async fn subscribe(channel: &Channel, queue: &str, role: &str) -> Result<Consumer, lapin::Error> {
    let tag = format!(
        "promsync-{role}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    );
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
    confirm_timeout: Duration,
) -> Result<(), BrokerError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            properties,
        )
        .await
        .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
    match tokio::time::timeout(confirm_timeout, confirm).await {
        Err(_) => Err(BrokerError::NotConfirmed("no confirm in time".into())),
        Ok(Err(e)) => Err(BrokerError::Unavailable(e.to_string())),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(_)))) => {
            Err(BrokerError::NotConfirmed("returned as unroutable".into()))
        }
        Ok(Ok(Confirmation::Nack(_))) => Err(BrokerError::NotConfirmed("nacked".into())),
        Ok(Ok(Confirmation::NotRequested)) => Err(BrokerError::NotConfirmed(
            "channel not in confirm mode".into(),
        )),
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

/// Every exchange, queue and binding the code uses, described once: `declare_topology`
/// declares from this description and `topology_definitions` renders it as a RabbitMQ
/// definitions file, so `deploy/rabbitmq/definitions.json` and the code cannot drift.
#[derive(Debug, Clone)]
struct TopologySpec {
    exchanges: Vec<ExchangeSpec>,
    queues: Vec<QueueSpec>,
    bindings: Vec<BindingSpec>,
}

#[derive(Debug, Clone)]
struct ExchangeSpec {
    name: String,
    /// Dead-letter exchanges fan out; the lanes' own exchanges route by key.
    fanout: bool,
}

#[derive(Debug, Clone)]
struct QueueSpec {
    name: String,
    arguments: Vec<(&'static str, Argument)>,
}

#[derive(Debug, Clone)]
enum Argument {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone)]
struct BindingSpec {
    queue: String,
    exchange: String,
    routing_key: String,
}

impl Argument {
    fn text(s: &str) -> Self {
        Argument::Text(s.to_owned())
    }

    fn amqp(&self) -> AMQPValue {
        match self {
            Argument::Text(s) => text(s),
            Argument::Int(n) => AMQPValue::LongLongInt(*n),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Argument::Text(s) => serde_json::Value::from(s.as_str()),
            Argument::Int(n) => serde_json::Value::from(*n),
        }
    }
}

impl TopologySpec {
    fn new(topology: &Topology, retry_delays: &[Duration]) -> Self {
        let mut spec = TopologySpec {
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        };
        for lane in Lane::ALL {
            spec.add_lane(topology, lane, retry_delays);
        }
        // The replay log: fresh inbound messages only (re-fed ones are already in it).
        let log = topology.log_stream();
        spec.queues.push(QueueSpec {
            name: log.clone(),
            arguments: vec![
                ("x-queue-type", Argument::text("stream")),
                ("x-max-age", Argument::text(LOG_MAX_AGE)),
            ],
        });
        spec.bind(&log, &topology.exchange(Lane::Inbound), Topology::FRESH);
        spec
    }

    fn add_lane(&mut self, topology: &Topology, lane: Lane, retry_delays: &[Duration]) {
        let exchange = topology.exchange(lane);
        let dead = topology.dead_exchange(lane);
        self.exchanges.push(ExchangeSpec {
            name: exchange.clone(),
            fanout: false,
        });
        self.exchanges.push(ExchangeSpec {
            name: dead.clone(),
            fanout: true,
        });
        let dead_queue = topology.dead_queue(lane);
        self.queues.push(QueueSpec {
            name: dead_queue.clone(),
            arguments: vec![("x-queue-type", Argument::text("quorum"))],
        });
        self.bind(&dead_queue, &dead, "");
        let work = topology.work_queue(lane);
        self.queues.push(QueueSpec {
            name: work.clone(),
            arguments: vec![
                ("x-queue-type", Argument::text("quorum")),
                ("x-delivery-limit", Argument::Int(QUORUM_DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", Argument::text(&dead)),
                ("x-dead-letter-strategy", Argument::text("at-least-once")),
                ("x-overflow", Argument::text("reject-publish")),
            ],
        });
        for key in [Topology::FRESH, Topology::REFEED] {
            self.bind(&work, &exchange, key);
        }
        for delay in retry_delays {
            self.queues.push(QueueSpec {
                name: topology.retry_queue(lane, *delay),
                arguments: vec![
                    ("x-queue-type", Argument::text("classic")),
                    ("x-message-ttl", Argument::Int(delay.as_millis() as i64)),
                    ("x-dead-letter-exchange", Argument::text(&exchange)),
                    (
                        "x-dead-letter-routing-key",
                        Argument::text(Topology::REFEED),
                    ),
                ],
            });
        }
    }

    fn bind(&mut self, queue: &str, exchange: &str, routing_key: &str) {
        self.bindings.push(BindingSpec {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        });
    }
}

/// The topology as the `exchanges`, `queues` and `bindings` (and `vhosts`) sections of a
/// RabbitMQ definitions file for the vhost `/`: what `deploy/rabbitmq/definitions.json`
/// must hold, since RabbitMQ refuses a redeclaration whose arguments differ.
pub fn topology_definitions(topology: &Topology, retry_delays: &[Duration]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    const VHOST: &str = "/";
    let spec = TopologySpec::new(topology, retry_delays);
    let exchanges: Vec<Value> = spec
        .exchanges
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "vhost": VHOST,
                "type": if e.fanout { "fanout" } else { "direct" },
                "durable": true,
                "auto_delete": false,
                "internal": false,
                "arguments": {},
            })
        })
        .collect();
    let queues: Vec<Value> = spec
        .queues
        .iter()
        .map(|q| {
            let arguments: Map<String, Value> = q
                .arguments
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.json()))
                .collect();
            json!({
                "name": q.name,
                "vhost": VHOST,
                "durable": true,
                "auto_delete": false,
                "arguments": arguments,
            })
        })
        .collect();
    let bindings: Vec<Value> = spec
        .bindings
        .iter()
        .map(|b| {
            json!({
                "source": b.exchange,
                "vhost": VHOST,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": {},
            })
        })
        .collect();
    json!({
        "vhosts": [{"name": VHOST}],
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    })
}

/// Declares every exchange, queue and binding of both lanes (exchanges first, then
/// queues, then bindings); safe to repeat from every role (the arguments never change for
/// a given name).
pub async fn declare_topology(
    channel: &Channel,
    topology: &Topology,
    retry_delays: &[Duration],
) -> lapin::Result<()> {
    let spec = TopologySpec::new(topology, retry_delays);
    let exchange_options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in &spec.exchanges {
        let kind = if exchange.fanout {
            ExchangeKind::Fanout
        } else {
            ExchangeKind::Direct
        };
        channel
            .exchange_declare(
                exchange.name.as_str().into(),
                kind,
                exchange_options,
                FieldTable::default(),
            )
            .await?;
    }
    for queue in &spec.queues {
        let arguments: Vec<(&str, AMQPValue)> = queue
            .arguments
            .iter()
            .map(|(k, v)| (*k, v.amqp()))
            .collect();
        channel
            .queue_declare(queue.name.as_str().into(), DURABLE, table(&arguments))
            .await?;
    }
    for binding in &spec.bindings {
        channel
            .queue_bind(
                binding.queue.as_str().into(),
                binding.exchange.as_str().into(),
                binding.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Removes every queue and exchange of a namespace (tests and `deploy/` scripts clean up
/// after themselves with it).
pub async fn delete_topology(
    url: &str,
    topology: &Topology,
    retry_delays: &[Duration],
) -> lapin::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let spec = TopologySpec::new(topology, retry_delays);
    for queue in spec.queues {
        channel
            .queue_delete(queue.name.into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in spec.exchanges {
        channel
            .exchange_delete(exchange.name.into(), Default::default())
            .await?;
    }
    let _ = connection.close(200, "bye".into()).await;
    Ok(())
}

#[async_trait]
impl Broker for RabbitBroker {
    async fn publish(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
        self.publish_to(lane, Topology::FRESH, payload, properties)
            .await
    }

    async fn check(&self) -> Result<(), BrokerError> {
        self.publish_channel(false).await.map(|_| ())
    }

    async fn replay(
        &self,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary> {
        let (connection, publish) = self.open_publisher("replay").await?;
        let read = connection.create_channel().await?;
        read.basic_qos(500, BasicQosOptions::default()).await?;
        // Streams take a timestamp offset: reading starts at the first chunk at or
        // before `since`, so earlier messages are filtered out below.
        let offset = AMQPValue::Timestamp(request.since.timestamp().max(0) as u64);
        let mut consumer = read
            .basic_consume(
                self.topology.log_stream().into(),
                format!("promsync-replay-{}", uuid::Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                table(&[("x-stream-offset", offset)]),
            )
            .await?;
        // Replay stops at --until or at the moment it started: live traffic arriving
        // meanwhile is the importers' business, not the replay's.
        let started = chrono::Utc::now();
        let until = request.until.unwrap_or(started).min(started);
        let mut summary = ReplaySummary::default();
        loop {
            let next = tokio::time::timeout(REPLAY_IDLE, consumer.next()).await;
            let delivery = match next {
                Ok(Some(Ok(delivery))) => delivery,
                Ok(Some(Err(e))) => return Err(e.into()),
                // Caught up: nothing more was logged before the replay began.
                Ok(None) | Err(_) => break,
            };
            let at = delivery
                .properties
                .timestamp()
                .map(|t| t as i64)
                .unwrap_or_default();
            delivery.acker.ack(BasicAckOptions::default()).await?;
            if at > until.timestamp() {
                break;
            }
            summary.read += 1;
            let received = serde_json::from_slice::<super::InboundMessage>(&delivery.data)
                .map(|m| m.received_at)
                .unwrap_or(request.since);
            let rewritten = if received < request.since {
                None
            } else {
                replay_rewrite(&delivery.data, request).ok().flatten()
            };
            match rewritten {
                Some((id, payload)) => {
                    let properties = BasicProperties::default()
                        .with_message_id(id.as_str().into())
                        .with_content_type("application/json".into())
                        .with_delivery_mode(2);
                    publish_confirmed(
                        &publish,
                        &self.topology.exchange(Lane::Inbound),
                        Topology::REFEED,
                        &payload,
                        properties,
                        self.confirm_timeout,
                    )
                    .await?;
                    summary.requeued += 1;
                }
                None => summary.skipped += 1,
            }
            if summary.read % 100 == 0 {
                progress(summary);
            }
        }
        progress(summary);
        let _ = connection.close(200, "replay done".into()).await;
        Ok(summary)
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
        let (connection, channel) = self.open_publisher("dlq").await?;
        let mut moved = 0;
        // Each message is acknowledged right after its commit: nothing is held while the
        // rest are read, and a crash leaves at most one letter to be recorded again. A
        // failed commit ends the run; closing the connection puts that letter back.
        while let Some(message) = channel
            .basic_get(
                self.topology.dead_queue(lane).into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        {
            sink.record(dead_letter_of(lane, &message.delivery)).await?;
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await?;
            moved += 1;
        }
        let _ = connection.close(200, "dlq drained".into()).await;
        Ok(moved)
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
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::{stream, StreamExt};

    use super::until_first_error;

    #[tokio::test]
    async fn a_consumer_session_ends_at_the_first_error_even_if_lapin_keeps_the_stream_open() {
        let deliveries = stream::iter(vec![Ok(1), Ok(2), Err("connection reset"), Ok(3)])
            .chain(stream::pending());
        let seen: Vec<i32> = tokio::time::timeout(
            Duration::from_secs(5),
            until_first_error(deliveries).collect(),
        )
        .await
        .expect("the session ended at the error");
        assert_eq!(seen, vec![1, 2]);
    }
}
