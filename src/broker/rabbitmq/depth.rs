//! Queue lengths for `/metrics`: a passive declare of a lane's work queue and retry tiers
//! on a short-lived connection of its own, so a queue that does not exist (a 404 closes
//! the channel) never disturbs the publishing channel. AMQP reports how many messages are
//! ready in a queue, not how old they are.

use lapin::{options::QueueDeclareOptions, types::FieldTable, Channel};

use super::RabbitBroker;
use crate::broker::{Backlog, BrokerError, Lane};

const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

impl RabbitBroker {
    /// Both lanes, on one short-lived connection.
    pub(super) async fn measure_backlogs(&self) -> Result<Vec<(Lane, Backlog)>, BrokerError> {
        let connection = self.connect("metrics").await?;
        let measured = async {
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            let measured = self.count_lanes(&channel).await;
            // Closed before its connection, so lapin has no open channel to complain about.
            let _ = channel.close(200, "measured".into()).await;
            measured
        }
        .await;
        let _ = connection.close(200, "measured".into()).await;
        measured
    }

    async fn count_lanes(&self, channel: &Channel) -> Result<Vec<(Lane, Backlog)>, BrokerError> {
        let mut backlogs = Vec::new();
        for lane in Lane::ALL {
            backlogs.push((lane, self.count_messages(channel, lane).await?));
        }
        Ok(backlogs)
    }

    /// Ready messages of `lane`'s work queue and retry tiers.
    async fn count_messages(&self, channel: &Channel, lane: Lane) -> Result<Backlog, BrokerError> {
        let queues = std::iter::once(self.topology.work_queue(lane)).chain(
            self.retry_delays
                .iter()
                .map(|delay| self.topology.retry_queue(lane, *delay)),
        );
        let mut messages = 0;
        for queue in queues {
            let declared = channel
                .queue_declare(queue.as_str().into(), PASSIVE, FieldTable::default())
                .await
                .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            messages += u64::from(declared.message_count());
        }
        Ok(Backlog {
            messages,
            oldest: None,
        })
    }
}
