//! Replay: reads the inbound log (a stream) from a timestamp offset and re-feeds each
//! notification of the window to the import queue under the re-feed key, so it never
//! enters the log a second time.
//!
//! Speed comes from a window of publishes awaiting their confirm (`in_flight`), all on
//! one channel, so the import queue receives them in the log's order; a confirm that
//! fails ends the replay with an error (running it again is safe: the inbox stops what
//! was applied). Where the log ends is fixed before reading starts: the replay appends
//! an end mark of its own (an empty message that is no notification) straight to the
//! stream and stops when it reads it back, so neither an idle pause nor live traffic
//! arriving meanwhile decides when it is done.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::{stream::FuturesUnordered, StreamExt};
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions},
    types::AMQPValue,
    Acker, BasicProperties, Channel,
};

use super::{
    connection::{confirmed, publish_confirmed},
    topology::table,
    RabbitBroker,
};
use crate::broker::{
    replay_rewrite, BrokerError, Lane, ReplayRequest, ReplaySummary, Replayed, Topology,
};

/// The AMQP `type` of a replay's end mark; its message id names the replay that wrote it.
const END_MARK: &str = "promsync.replay-end";
/// A log that delivers nothing for this long before the end mark is stuck, not done.
const STALL: Duration = Duration::from_secs(60);
/// How often progress is reported, in messages read.
const PROGRESS_EVERY: u64 = 1_000;

impl RabbitBroker {
    /// Re-feeds what the log holds from `request.since` (see [`crate::broker::Broker::replay`]).
    #[tracing::instrument(skip_all, fields(since = %request.since, until = ?request.until, in_flight = request.in_flight.get()))]
    pub(super) async fn replay_log(
        &self,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary> {
        let (connection, publish) = self.open_publisher("replay").await?;
        let result = async {
            let end = self.mark_end(&publish).await?;
            let read = connection.create_channel().await?;
            self.refeed(&read, &publish, &end, request, progress).await
        }
        .await;
        let _ = connection.close(200, "replay done".into()).await;
        result
    }

    /// Appends this replay's end mark to the log and returns its id. Everything logged
    /// before it was confirmed is read; anything logged later is the importers' business.
    async fn mark_end(&self, publish: &Channel) -> anyhow::Result<String> {
        let id = format!("replay-end-{}", uuid::Uuid::new_v4());
        let properties = BasicProperties::default()
            .with_type(END_MARK.into())
            .with_message_id(id.as_str().into())
            .with_delivery_mode(2)
            .with_timestamp(Utc::now().timestamp().max(0) as u64);
        // Straight to the stream through the default exchange: never to the importers.
        publish_confirmed(
            publish,
            "",
            &self.topology.log_stream(),
            b"",
            properties,
            self.confirm_timeout,
        )
        .await
        .context("marking the end of the log")?;
        Ok(id)
    }

    async fn refeed(
        &self,
        read: &Channel,
        publish: &Channel,
        end: &str,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary> {
        let window = request.in_flight.get();
        // Stream consumers get credit by acknowledging; twice the window keeps the next
        // messages local while earlier ones are being confirmed.
        let prefetch = u16::try_from(window.saturating_mul(2)).unwrap_or(u16::MAX);
        read.basic_qos(prefetch, BasicQosOptions::default()).await?;
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
        let exchange = self.topology.exchange(Lane::Inbound);
        let mut credit = Credit::new(prefetch);
        let mut confirms = FuturesUnordered::new();
        let mut summary = ReplaySummary::default();
        loop {
            let delivery = tokio::time::timeout(STALL, consumer.next())
                .await
                .map_err(|_| anyhow::anyhow!("the log delivered nothing for {STALL:?}"))?
                .context("the log consumer was cancelled")?
                .context("reading the log")?;
            credit.settle(delivery.acker).await?;
            let properties = &delivery.properties;
            if properties.kind().as_ref().map(|k| k.as_str()) == Some(END_MARK) {
                // Another replay's mark is no notification either: pass over it.
                if properties.message_id().as_ref().map(|id| id.as_str()) == Some(end) {
                    break;
                }
                continue;
            }
            if request.read_past_window(logged_at(properties)) {
                break;
            }
            let (id, payload) = match replay_rewrite(&delivery.data, request) {
                Replayed::OutsideWindow => continue,
                Replayed::Skipped => {
                    summary.read += 1;
                    summary.skipped += 1;
                    continue;
                }
                Replayed::Requeue { id, payload } => (id, payload),
            };
            summary.read += 1;
            while confirms.len() >= window {
                let settled: Option<Result<(), BrokerError>> = confirms.next().await;
                if let Some(result) = settled {
                    result.context("re-feeding a logged notification")?;
                    summary.requeued += 1;
                }
            }
            let properties = BasicProperties::default()
                .with_message_id(id.as_str().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            // Sending is bounded too: towards a silent broker the socket's buffers fill
            // and the publish itself stops returning.
            let send = publish.basic_publish(
                exchange.as_str().into(),
                Topology::REFEED.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &payload,
                properties,
            );
            let confirm = tokio::time::timeout(self.confirm_timeout, send)
                .await
                .map_err(|_| {
                    anyhow::anyhow!("the broker took no publish for {:?}", self.confirm_timeout)
                })?
                .context("re-feeding a logged notification")?;
            confirms.push(confirmed(confirm, self.confirm_timeout));
            if summary.read.is_multiple_of(PROGRESS_EVERY) {
                progress(summary);
            }
        }
        while let Some(result) = confirms.next().await {
            result.context("re-feeding a logged notification")?;
            summary.requeued += 1;
        }
        progress(summary);
        Ok(summary)
    }
}

/// When the log stored a message (whole seconds, stamped at its first publish).
fn logged_at(properties: &BasicProperties) -> DateTime<Utc> {
    properties
        .timestamp()
        .and_then(|t| DateTime::from_timestamp(i64::try_from(t).ok()?, 0))
        .unwrap_or_default()
}

/// Acknowledges the stream's deliveries a batch at a time (one `multiple` ack per half
/// of the prefetch), which is all a stream consumer's credit needs.
struct Credit {
    batch: u16,
    pending: u16,
}

impl Credit {
    fn new(prefetch: u16) -> Self {
        Self {
            batch: (prefetch / 2).max(1),
            pending: 0,
        }
    }

    async fn settle(&mut self, acker: Acker) -> anyhow::Result<()> {
        self.pending += 1;
        if self.pending >= self.batch {
            self.pending = 0;
            acker
                .ack(BasicAckOptions { multiple: true })
                .await
                .context("acknowledging the log")?;
        }
        Ok(())
    }
}
