//! Connections to RabbitMQ: one per session, each named after the role and process; the
//! shared confirm-mode publishing channel, reopened (at most every [`RECONNECT_THROTTLE`])
//! when lost; publishing with a confirm and `mandatory`; and the supervision that runs a
//! consumer session again, with backoff, whenever its connection is lost.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::FieldTable,
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    PublisherConfirm,
};
use tokio_util::sync::CancellationToken;

use super::{topology::declare_topology, RabbitBroker};
use crate::broker::{BrokerError, Lane};

/// How long a connection attempt may take before the broker counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// While the broker is down, publishers try to reconnect at most this often, so a burst
/// of requests fails fast with 503 instead of queueing on connection attempts.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(500);

/// The publishing link, shared by every publish of the process.
#[derive(Default)]
pub(super) struct PublisherState {
    link: Option<(Connection, Channel)>,
    last_attempt: Option<Instant>,
}

impl RabbitBroker {
    pub(super) async fn connect(&self, role: &str) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("promsync-{role}-{}", std::process::id()).into());
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties))
            .await
            .map_err(|_| BrokerError::Unavailable("connect timed out".into()))?
            .map_err(|e| BrokerError::Unavailable(e.to_string()))
    }

    /// A confirm-mode channel on a connection with the topology declared.
    pub(super) async fn open_publisher(
        &self,
        role: &str,
    ) -> Result<(Connection, Channel), BrokerError> {
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
    pub(super) async fn publish_channel(&self, retrying: bool) -> Result<Channel, BrokerError> {
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
    pub(super) async fn publish_to(
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
/// a nack, a return (no queue took it) or no confirm in time is `NotConfirmed`, a failing
/// channel `Unavailable` (the caller reconnects).
pub(super) async fn publish_confirmed(
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
    confirmed(confirm, confirm_timeout).await
}

/// Waits up to `confirm_timeout` for the confirm of a `mandatory` publish: anything but a
/// plain ack is a failure (see [`publish_confirmed`]).
pub(super) async fn confirmed(
    confirm: PublisherConfirm,
    confirm_timeout: Duration,
) -> Result<(), BrokerError> {
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
