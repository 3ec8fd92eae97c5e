//! Dead letters out of RabbitMQ and into the database: a drainer consumes a lane's
//! dead-letter queue for as long as the role runs, `promsync dlq` empties it once, and both
//! acknowledge a letter only after its row is committed. What a letter says about itself
//! (attempts, last error, when it died) is read from the headers `settle` wrote,
//! or from RabbitMQ's own for a message it dead-lettered by itself.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicQosOptions},
    types::{AMQPValue, ShortString},
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{
    connection::{subscribe, until_first_error},
    settle::{header_u32, ATTEMPTS_HEADER, DEAD_AT_HEADER, ERROR_HEADER},
    topology::declare_topology,
    RabbitBroker,
};
use crate::broker::{
    dead_letters::{DeadLetterSink, NewDeadLetter},
    Lane,
};

/// Set by quorum queues on redelivery; the attempts of a message RabbitMQ dead-lettered
/// itself (delivery limit), which never got our attempts header.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Why RabbitMQ itself dead-lettered a message (`delivery_limit`, `rejected`, …).
const DEATH_REASON_HEADER: &str = "x-first-death-reason";
/// Dead letters a drainer takes from the broker before the first is recorded.
const DRAIN_PREFETCH: u16 = 20;

impl RabbitBroker {
    /// One drainer session: consumes `lane`'s dead-letter queue, recording each letter
    /// before acknowledging it. Returns `Ok` on shutdown, `Err` when the connection is
    /// lost (unacknowledged letters go back to the queue and are recorded again, which
    /// changes nothing).
    pub(super) async fn drain_session(
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

    /// Moves every dead letter of `lane` now in the broker into the database (`promsync
    /// dlq`); returns how many.
    pub(super) async fn drain_once(
        &self,
        lane: Lane,
        sink: &dyn DeadLetterSink,
    ) -> anyhow::Result<u64> {
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
