//! Consuming a lane's work queue, and what becomes of each delivery once its handler has
//! answered: done → ack; retry → a copy, with its attempt count and last error, into the
//! delay's retry tier (a TTL queue that dead-letters back into the lane's exchange) or,
//! once attempts run out, the dead letters; dead → the dead letters. The copy is confirmed
//! before the original is acked, and a copy that cannot be made puts the original back
//! (nack with requeue).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicQosOptions, ConfirmSelectOptions},
    types::{AMQPValue, LongString, ShortString},
    Channel,
};
use tokio_util::sync::CancellationToken;

use super::{
    connection::{publish_confirmed, subscribe, until_first_error},
    topology::declare_topology,
    RabbitBroker,
};
use crate::broker::{retry_delay, BrokerError, Disposition, Handler, Lane, Topology};

/// How many deliveries of one message a handler has seen, carried by its retry copies.
pub(super) const ATTEMPTS_HEADER: &str = "x-promsync-attempts";
/// The reason of the last failed attempt.
pub(super) const ERROR_HEADER: &str = "x-promsync-last-error";
/// When a handler gave the message up (epoch milliseconds), for the dead letter's `dead_at`.
pub(super) const DEAD_AT_HEADER: &str = "x-promsync-dead-at";

impl RabbitBroker {
    /// One consumer session: returns `Ok` on shutdown, `Err` when the connection is lost.
    pub(super) async fn consume_session(
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

pub(super) fn header_u32(delivery: &Delivery, name: &str) -> Option<u32> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongUInt(v) => Some(*v),
        AMQPValue::LongInt(v) => u32::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u32::try_from(*v).ok(),
        _ => None,
    }
}
