//! Connections to RabbitMQ: one per session, each named after the role and process; the
//! shared confirm-mode publishing link, replaced in the background (at most every
//! [`RECONNECT_THROTTLE`]) when it is lost or stops answering; publishing with a confirm
//! and `mandatory`, bounded as a whole; and the supervision that runs a consumer session
//! again, with backoff, whenever its connection is lost.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::FieldTable,
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    PublisherConfirm,
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{topology::declare_topology, RabbitBroker};
use crate::broker::{BrokerError, Lane, Topology};

/// How long a connection attempt may take before the broker counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// While the broker is down, publishers try to reconnect at most this often, so a burst
/// of requests fails fast with 503 instead of queueing on connection attempts.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(500);
/// The bound of one background reconnection: connecting, a channel, the topology and
/// confirm mode. A broker that accepts the TCP connection and then says nothing (a
/// partition, a paused node) would otherwise keep the link "connecting" for ever.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The publishing link, shared by every publish of the process. Its lock is a plain
/// mutex held only to read or swap the link, never across an await: reconnecting runs
/// in a task of its own, so no publish ever waits behind another one's reconnection.
#[derive(Default)]
pub(super) struct PublisherState {
    link: Link,
    /// When the last reconnection started (the throttle).
    last_attempt: Option<Instant>,
    /// Counts links, so a failed publish drops only the link it used, never a newer one.
    generation: u64,
}

#[derive(Default)]
enum Link {
    #[default]
    Down,
    /// A background task is opening a new link; publishes meanwhile fail fast (but
    /// for the first link, see `publish_channel`). The task ends the watch when done.
    Connecting(watch::Receiver<()>),
    Up {
        /// Boxed: a connection is large, and the link is mostly swapped, not read.
        connection: Box<Connection>,
        channel: Channel,
        generation: u64,
    },
}

/// The shared state, locked briefly. A panic while it was held cannot leave it
/// inconsistent (every change is one assignment), so a poisoned lock is used as is.
fn lock(state: &Mutex<PublisherState>) -> MutexGuard<'_, PublisherState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn connect_to(url: &str, role: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("promsync-{role}-{}", std::process::id()).into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| BrokerError::Unavailable("connect timed out".into()))?
        .map_err(|e| BrokerError::Unavailable(e.to_string()))
}

/// A confirm-mode channel on a new connection with the topology declared.
async fn open_publisher(
    url: &str,
    role: &str,
    topology: &Topology,
    retry_delays: &[Duration],
) -> Result<(Connection, Channel), BrokerError> {
    let connection = connect_to(url, role).await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
    declare_topology(&channel, topology, retry_delays)
        .await
        .map_err(|e| BrokerError::Unavailable(format!("declaring topology: {e}")))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
    Ok((connection, channel))
}

/// Opens a new publishing link, bounded by [`RECONNECT_TIMEOUT`], and installs it (or
/// marks the link down). Runs as a task of its own, so it finishes, and frees the link
/// for the next attempt, even when the publish that started it has given up.
async fn reconnect(
    state: Arc<Mutex<PublisherState>>,
    // Dropped when this returns, after the link is installed: wakes whoever waits.
    _done: watch::Sender<()>,
    url: String,
    topology: Topology,
    retry_delays: Vec<Duration>,
) -> Result<(Channel, u64), BrokerError> {
    let opened = tokio::time::timeout(
        RECONNECT_TIMEOUT,
        open_publisher(&url, "publish", &topology, &retry_delays),
    )
    .await
    .unwrap_or_else(|_| {
        Err(BrokerError::Unavailable(format!(
            "no answer within {} ms while reconnecting",
            RECONNECT_TIMEOUT.as_millis()
        )))
    });
    let mut state = lock(&state);
    match opened {
        Ok((connection, channel)) => {
            state.generation += 1;
            let generation = state.generation;
            state.link = Link::Up {
                connection: Box::new(connection),
                channel: channel.clone(),
                generation,
            };
            tracing::info!("connected to RabbitMQ");
            Ok((channel, generation))
        }
        Err(e) => {
            state.link = Link::Down;
            tracing::warn!(error = %e, "could not reconnect to RabbitMQ");
            Err(e)
        }
    }
}

impl RabbitBroker {
    pub(super) async fn connect(&self, role: &str) -> Result<Connection, BrokerError> {
        connect_to(&self.url, role).await
    }

    /// A confirm-mode channel of its own, on a new connection with the topology declared
    /// (for a one-off job beside the shared link).
    pub(super) async fn open_publisher(
        &self,
        role: &str,
    ) -> Result<(Connection, Channel), BrokerError> {
        open_publisher(&self.url, role, &self.topology, &self.retry_delays).await
    }

    /// The shared publishing channel and its generation. A lost link is replaced by one
    /// background reconnection, which the publish that starts it waits for until
    /// `deadline`; every other publish meanwhile fails fast (the ingress answers 503).
    /// `retrying` skips the throttle for a publish's one second chance.
    pub(super) async fn publish_channel(
        &self,
        deadline: Instant,
        retrying: bool,
    ) -> Result<(Channel, u64), BrokerError> {
        loop {
            let reconnection = {
                let mut state = lock(&self.publisher);
                let first = match &state.link {
                    Link::Up {
                        connection,
                        channel,
                        generation,
                    } if connection.status().connected() && channel.status().connected() => {
                        return Ok((channel.clone(), *generation));
                    }
                    // Until the process's first link is up there is no outage to shed
                    // load for: publishes arriving meanwhile (a burst right after start)
                    // wait for it within their own deadline instead of being refused.
                    Link::Connecting(done) if state.generation == 0 => Some(done.clone()),
                    Link::Connecting(_) => {
                        return Err(BrokerError::Unavailable("reconnecting".into()));
                    }
                    Link::Up { .. } | Link::Down => None,
                };
                match first {
                    Some(first) => Err(first),
                    None => {
                        if !retrying
                            && state
                                .last_attempt
                                .is_some_and(|last| last.elapsed() < RECONNECT_THROTTLE)
                        {
                            return Err(BrokerError::Unavailable("reconnecting".into()));
                        }
                        let (done, waiting) = watch::channel(());
                        state.link = Link::Connecting(waiting);
                        state.last_attempt = Some(Instant::now());
                        Ok(tokio::spawn(reconnect(
                            self.publisher.clone(),
                            done,
                            self.url.clone(),
                            self.topology.clone(),
                            self.retry_delays.clone(),
                        )))
                    }
                }
            };
            let reconnection = match reconnection {
                Ok(reconnection) => reconnection,
                Err(mut first) => {
                    if tokio::time::timeout_at(deadline, first.changed())
                        .await
                        .is_err()
                    {
                        return Err(BrokerError::Unavailable(
                            "still connecting at the publish deadline".into(),
                        ));
                    }
                    continue;
                }
            };
            return match tokio::time::timeout_at(deadline, reconnection).await {
                Ok(Ok(link)) => link,
                Ok(Err(e)) => Err(BrokerError::Unavailable(format!("reconnecting: {e}"))),
                Err(_) => Err(BrokerError::Unavailable(
                    "still reconnecting at the publish deadline".into(),
                )),
            };
        }
    }

    /// Drops the publishing link if it is still the one of `generation` (another publish
    /// may already have replaced it). Dropping the connection closes it; one that no
    /// longer answers is abandoned to lapin's heartbeat.
    fn forget_publisher(&self, generation: u64) {
        let mut state = lock(&self.publisher);
        if matches!(state.link, Link::Up { generation: current, .. } if current == generation) {
            state.link = Link::Down;
        }
    }

    /// Publishes to `lane`'s exchange and waits for the confirm, all of it (reconnecting
    /// included) within `PROMSYNC_PUBLISH_TIMEOUT_MS`. A link that fails under a publish
    /// (broker restart, or RabbitMQ 3.10 crashing a channel that routes to a stream still
    /// starting) is dropped and the publish gets one immediate second chance on a fresh
    /// link if time is left; one that never confirms (a silent broker) is dropped too.
    /// Publishing twice is harmless: consumers dedupe by message id.
    pub(super) async fn publish_to(
        &self,
        lane: Lane,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let deadline = Instant::now() + self.publish_timeout;
        let mut retrying = false;
        loop {
            let (channel, generation) = self.publish_channel(deadline, retrying).await?;
            let within = self
                .confirm_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let result = publish_confirmed(
                &channel,
                &self.topology.exchange(lane),
                routing_key,
                payload,
                properties.clone(),
                within,
            )
            .await;
            match result {
                Err(BrokerError::NoAnswer(e)) => {
                    // Silent for a real wait: the link is dead, whatever lapin still
                    // says of it. A wait the deadline cut short (the link came late)
                    // proves nothing about a fresh link, which is kept.
                    if within >= self.confirm_timeout.min(self.publish_timeout / 2) {
                        self.forget_publisher(generation);
                    }
                    return Err(BrokerError::NoAnswer(e));
                }
                Err(BrokerError::Unavailable(e)) => {
                    self.forget_publisher(generation);
                    if retrying || Instant::now() >= deadline {
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
    pub(super) async fn supervised<F, Fut>(
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
}

/// A consumer's deliveries up to its first error. lapin reports a lost connection as an
/// error item and may then leave the stream open forever (seen when the broker's app was
/// stopped and started: the importer never consumed again), so the session ends there
/// and `consume` reconnects.
pub(super) fn until_first_error<T, E: std::fmt::Display>(
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

/// Starts consuming `queue` under a tag unique to this process and session
/// (`promsync-<role>-<pid>-<uuid>`), so the management UI tells consumers apart and a
/// reconnecting session never collides with its predecessor's tag.
pub(super) async fn subscribe(
    channel: &Channel,
    queue: &str,
    role: &str,
) -> Result<Consumer, lapin::Error> {
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

/// Publishes with `mandatory` and waits up to `confirm_timeout` for the broker's confirm:
/// a nack or a return (no queue took it) is `NotConfirmed`; a failing channel is
/// `Unavailable`; no confirm in time is `NoAnswer` (a broker that stopped answering,
/// whose connection may look alive for a long while yet). The caller drops the link on
/// either of the last two.
pub(super) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
    confirm_timeout: Duration,
) -> Result<(), BrokerError> {
    // Sending is inside the bound too: towards a silent broker the socket's buffers fill
    // and the publish itself stops returning.
    let confirmed = tokio::time::timeout(confirm_timeout, async {
        channel
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
            .await?
            .await
    })
    .await;
    confirmation(confirmed, confirm_timeout)
}

/// Waits up to `confirm_timeout` for the confirm of a publish already sent (as
/// [`publish_confirmed`] does, for callers keeping many publishes in flight).
pub(super) async fn confirmed(
    confirm: PublisherConfirm,
    confirm_timeout: Duration,
) -> Result<(), BrokerError> {
    confirmation(
        tokio::time::timeout(confirm_timeout, confirm).await,
        confirm_timeout,
    )
}

/// What became of a `mandatory` publish awaited up to `confirm_timeout`: anything but a
/// plain ack is a failure (see [`publish_confirmed`]).
fn confirmation(
    confirmed: Result<Result<Confirmation, lapin::Error>, tokio::time::error::Elapsed>,
    confirm_timeout: Duration,
) -> Result<(), BrokerError> {
    match confirmed {
        Err(_) => Err(BrokerError::NoAnswer(format!(
            "no confirm within {} ms",
            confirm_timeout.as_millis()
        ))),
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
