//! The test's broker namespace seen from outside promsync: queue depths, the replay log
//! and dead letters, on RabbitMQ or the embedded broker alike.

use std::time::Duration;

use lapin::{options::QueueDeclareOptions, types::FieldTable, Connection, ConnectionProperties};
use promsync::broker::{dead_letters::OperatorView, Lane};
use serde_json::Value;

use super::{app::TestApp, services::broker_url};

/// Messages in a RabbitMQ queue of the suite's broker; `None` if there is no such queue.
pub async fn rabbitmq_depth(queue: String) -> Option<u32> {
    let conn = Connection::connect(&broker_url(), ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = conn.create_channel().await.expect("channel");
    let depth = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| q.message_count());
    let _ = conn.close(200, "bye".into()).await;
    depth
}

impl TestApp {
    /// Messages waiting (not dead) in a lane's work queue.
    pub async fn queue_depth(&self, lane: Lane) -> u32 {
        if self.settings.broker.url.is_none() {
            let sql = format!(
                "SELECT count(*) FROM broker_messages WHERE lane = '{}' AND dead = FALSE",
                lane.as_str()
            );
            return self.count(&sql).await as u32;
        }
        rabbitmq_depth(self.topology.work_queue(lane))
            .await
            .unwrap_or(0)
    }

    /// Every recorded dead letter of a lane, as `promsync dlq list` shows them.
    pub async fn dead_letters(&self, lane: Lane) -> Vec<OperatorView> {
        promsync::broker::dead_letters::list_lane(&self.db, lane)
            .await
            .expect("dead letters")
    }

    /// Requeues a lane's dead letters (all, or those ids) as `promsync dlq requeue` does.
    pub async fn requeue_dead(&self, lane: Lane, ids: Option<&[String]>) -> u64 {
        promsync::broker::dead_letters::requeue_in_lane(&self.db, self.broker().as_ref(), lane, ids)
            .await
            .expect("requeue")
    }

    /// Event ids held by the replay log, read from its first offset.
    pub async fn log_event_ids(&self, expected: usize) -> Vec<String> {
        if self.settings.broker.url.is_none() {
            use entity::broker_log;
            use sea_orm::{EntityTrait, QueryOrder};
            return broker_log::Entity::find()
                .order_by_asc(broker_log::Column::Id)
                .all(&self.db)
                .await
                .expect("log")
                .into_iter()
                .map(|e| e.message_id)
                .collect();
        }
        use futures::StreamExt;
        use lapin::{
            options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
            types::{AMQPValue, LongString},
        };
        let conn = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .basic_qos(100, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString(LongString::from("first".to_owned())),
        );
        let mut consumer = channel
            .basic_consume(
                self.topology.log_stream().into(),
                "log-reader".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .expect("consume the log");
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ids.len() < expected {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let body: Value = serde_json::from_slice(&delivery.data).expect("json");
                    ids.push(body["event_id"].as_str().unwrap_or_default().to_owned());
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                }
                _ => break,
            }
        }
        let _ = conn.close(200, "bye".into()).await;
        ids
    }
}
