//! Replay: reads the inbound log (a stream) from a timestamp offset and re-feeds each
//! notification to the import queue under the re-feed key, so it never enters the log a
//! second time.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::AMQPValue,
    BasicProperties,
};

use super::{connection::publish_confirmed, topology::table, RabbitBroker};
use crate::broker::{replay_rewrite, InboundMessage, Lane, ReplayRequest, ReplaySummary, Topology};

/// A replay that has read nothing for this long has caught up with the log.
const REPLAY_IDLE: Duration = Duration::from_secs(3);

impl RabbitBroker {
    /// Re-feeds what the log holds from `request.since` (see [`crate::broker::Broker::replay`]).
    pub(super) async fn replay_log(
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
            let received = serde_json::from_slice::<InboundMessage>(&delivery.data)
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
}
