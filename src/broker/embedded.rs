//! Embedded backend: durable queues as tables of the application's own database, so the
//! whole system runs on one machine with no broker (SQLite by default; PostgreSQL works
//! too). Same semantics as RabbitMQ: a publish returns once committed; a consumer claims
//! messages with a lease, and a message is deleted (acked) only after the handler's own
//! commit; retries wait in the same table until their time; a dead letter leaves the
//! queue for the `dead_letters` table in one transaction (the table is this backend's
//! dead-letter storage); fresh inbound messages are also written to a log for replay.
//!
//! A consumer that dies keeps its claim only until the lease runs out; then another one
//! takes the message again (the importer's inbox makes that safe).

mod replay;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use entity::{broker_log, broker_messages};
use futures::StreamExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    retry_delay, Backlog, Broker, BrokerError, Disposition, Handler, Lane, ReplayRequest,
    ReplaySummary,
};
use crate::{
    broker::dead_letters::{self, DeadLetterSink, NewDeadLetter},
    config::Settings,
};

/// How long a claimed message stays invisible to other consumers.
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle consumer looks for work (publishes in the same process wake it
/// at once).
const IDLE_POLL: Duration = Duration::from_millis(100);

pub struct EmbeddedBroker {
    db: DatabaseConnection,
    retry_delays: Vec<Duration>,
    max_attempts: u32,
    publish_timeout: Duration,
    published: Notify,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

struct Claimed {
    id: i64,
    message_id: String,
    payload: String,
    attempts: i32,
}

impl EmbeddedBroker {
    pub fn new(db: DatabaseConnection, settings: &Settings) -> Self {
        Self {
            db,
            retry_delays: settings.import.retry_delays.clone(),
            max_attempts: settings.import.max_attempts.get(),
            publish_timeout: settings.broker.publish_timeout,
            published: Notify::new(),
        }
    }

    /// Writes a ready message of `lane` in `txn`.
    async fn insert_message(
        txn: &DatabaseTransaction,
        lane: Lane,
        message_id: &str,
        payload: String,
    ) -> Result<(), BrokerError> {
        ready_message(lane, message_id, payload, now_ms())
            .insert(txn)
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn enqueue(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
        log: bool,
    ) -> Result<(), BrokerError> {
        let unavailable = |e: sea_orm::DbErr| BrokerError::Unavailable(e.to_string());
        let payload = utf8(payload)?;
        let now = now_ms();
        let txn = self.db.begin().await.map_err(unavailable)?;
        Self::insert_message(&txn, lane, message_id, payload.clone()).await?;
        if log {
            broker_log::ActiveModel {
                message_id: Set(message_id.to_owned()),
                payload: Set(payload),
                created_at_ms: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        self.published.notify_waiters();
        Ok(())
    }

    /// `lane`'s queued messages (not the dead ones) and the oldest's arrival.
    async fn backlog(&self, lane: Lane) -> Result<Backlog, BrokerError> {
        // Walks the `(lane, dead, available_at_ms)` index; retries keep their first
        // `created_at_ms`, so the oldest is the longest waiting.
        let (messages, oldest_ms) = broker_messages::Entity::find()
            .select_only()
            .column_as(broker_messages::Column::Id.count(), "messages")
            .column_as(broker_messages::Column::CreatedAtMs.min(), "oldest")
            .filter(broker_messages::Column::Lane.eq(lane))
            .filter(broker_messages::Column::Dead.eq(false))
            .into_tuple::<(i64, Option<i64>)>()
            .one(&self.db)
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?
            .unwrap_or_default();
        Ok(Backlog {
            messages: u64::try_from(messages).unwrap_or_default(),
            oldest: oldest_ms.and_then(chrono::DateTime::from_timestamp_millis),
        })
    }

    /// Claims up to `limit` ready messages of `lane` for this consumer.
    async fn claim(&self, lane: Lane, limit: usize) -> anyhow::Result<Vec<Claimed>> {
        let now = now_ms();
        let backend = self.db.get_database_backend();
        // SKIP LOCKED lets PostgreSQL consumers claim side by side; SQLite serializes
        // writers, so the plain form is already exclusive there.
        let (sql, values): (&str, Vec<sea_orm::Value>) = match backend {
            DbBackend::Postgres => (
                "UPDATE broker_messages SET locked_until_ms = $1 WHERE id IN (\
                 SELECT id FROM broker_messages WHERE lane = $2 AND dead = FALSE \
                 AND available_at_ms <= $3 AND (locked_until_ms IS NULL OR locked_until_ms < $3) \
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, message_id, payload, attempts",
                vec![
                    (now + LEASE.as_millis() as i64).into(),
                    lane.as_str().into(),
                    now.into(),
                    (limit as i64).into(),
                ],
            ),
            _ => (
                "UPDATE broker_messages SET locked_until_ms = ?1 WHERE id IN (\
                 SELECT id FROM broker_messages WHERE lane = ?2 AND dead = FALSE \
                 AND available_at_ms <= ?3 AND (locked_until_ms IS NULL OR locked_until_ms < ?3) \
                 ORDER BY id LIMIT ?4) \
                 RETURNING id, message_id, payload, attempts",
                vec![
                    (now + LEASE.as_millis() as i64).into(),
                    lane.as_str().into(),
                    now.into(),
                    (limit as i64).into(),
                ],
            ),
        };
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .context("claiming messages")?;
        let mut claimed = rows
            .into_iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.try_get("", "id")?,
                    message_id: row.try_get("", "message_id")?,
                    payload: row.try_get("", "payload")?,
                    attempts: row.try_get("", "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn process(&self, lane: Lane, message: Claimed, handler: &dyn Handler) {
        let attempt = u32::try_from(message.attempts).unwrap_or(0) + 1;
        let disposition = handler.handle(message.payload.as_bytes(), attempt).await;
        let settled = match disposition {
            Disposition::Done => broker_messages::Entity::delete_by_id(message.id)
                .exec(&self.db)
                .await
                .map(|_| ()),
            Disposition::Retry { reason, after } if attempt < self.max_attempts => {
                let delay = retry_delay(&self.retry_delays, attempt, after);
                tracing::warn!(%reason, attempt, lane = lane.as_str(), delay_ms = delay.as_millis() as u64, "will retry");
                self.update(message.id, attempt, delay, reason).await
            }
            Disposition::Retry { reason, .. } | Disposition::Dead { reason } => {
                tracing::error!(%reason, attempt, lane = lane.as_str(), "dead-lettered");
                let letter = NewDeadLetter {
                    lane,
                    message_id: message.message_id,
                    payload: message.payload.into_bytes(),
                    attempts: attempt,
                    last_error: Some(reason),
                    dead_at: Utc::now(),
                };
                self.bury(message.id, letter).await
            }
        };
        if let Err(e) = settled {
            // The lease runs out and the message is delivered again; the handlers are
            // idempotent, so that is safe.
            tracing::warn!(error = %e, "could not settle a message");
        }
    }

    /// Moves message `id` off the queue into the dead letters, in one transaction.
    async fn bury(&self, id: i64, letter: NewDeadLetter) -> Result<(), sea_orm::DbErr> {
        let txn = self.db.begin().await?;
        dead_letters::record(&txn, letter).await?;
        broker_messages::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await
    }

    /// Moves dead letters an older version left flagged in the queue table into the
    /// `dead_letters` table; returns how many.
    async fn bury_flagged(&self, lane: Lane) -> anyhow::Result<u64> {
        let flagged = broker_messages::Entity::find()
            .filter(broker_messages::Column::Lane.eq(lane))
            .filter(broker_messages::Column::Dead.eq(true))
            .order_by_asc(broker_messages::Column::Id)
            .all(&self.db)
            .await
            .context("reading flagged dead letters")?;
        let moved = flagged.len() as u64;
        for row in flagged {
            let letter = NewDeadLetter {
                lane,
                message_id: row.message_id,
                payload: row.payload.into_bytes(),
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                last_error: row.last_error,
                dead_at: chrono::DateTime::from_timestamp_millis(row.available_at_ms)
                    .unwrap_or_else(Utc::now),
            };
            self.bury(row.id, letter)
                .await
                .context("moving a dead letter")?;
        }
        Ok(moved)
    }

    /// Puts message `id` back for another attempt after `delay`.
    async fn update(
        &self,
        id: i64,
        attempts: u32,
        delay: Duration,
        reason: String,
    ) -> Result<(), sea_orm::DbErr> {
        broker_messages::ActiveModel {
            id: Set(id),
            attempts: Set(attempts as i32),
            available_at_ms: Set(now_ms() + delay.as_millis() as i64),
            locked_until_ms: Set(None),
            last_error: Set(Some(reason.chars().take(1000).collect())),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map(|_| ())
    }
}

/// Messages of this backend are text; every producer writes JSON.
/// A message of `lane` ready to be claimed now.
fn ready_message(
    lane: Lane,
    message_id: &str,
    payload: String,
    now: i64,
) -> broker_messages::ActiveModel {
    broker_messages::ActiveModel {
        lane: Set(lane),
        message_id: Set(message_id.to_owned()),
        payload: Set(payload),
        attempts: Set(0),
        available_at_ms: Set(now),
        locked_until_ms: Set(None),
        dead: Set(false),
        last_error: Set(None),
        created_at_ms: Set(now),
        ..Default::default()
    }
}

fn utf8(payload: &[u8]) -> Result<String, BrokerError> {
    String::from_utf8(payload.to_vec())
        .map_err(|_| BrokerError::NotConfirmed("payload is not UTF-8".into()))
}

#[async_trait]
impl Broker for EmbeddedBroker {
    async fn publish(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), BrokerError> {
        // A database that stops answering would hold the ingress's request (and a
        // pooled connection) for as long as TCP keeps trying; past the bound the insert
        // is abandoned (rolled back, or at worst committed unseen: at least once) and the
        // caller answers 503.
        tokio::time::timeout(
            self.publish_timeout,
            self.enqueue(lane, message_id, payload, lane == Lane::Inbound),
        )
        .await
        .unwrap_or_else(|_| {
            Err(BrokerError::NoAnswer(format!(
                "the database did not take the message within {} ms",
                self.publish_timeout.as_millis()
            )))
        })
    }

    async fn check(&self) -> Result<(), BrokerError> {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| BrokerError::Unavailable(e.to_string()))
    }

    async fn backlogs(&self) -> Result<Vec<(Lane, Backlog)>, BrokerError> {
        let mut backlogs = Vec::new();
        for lane in Lane::ALL {
            backlogs.push((lane, self.backlog(lane).await?));
        }
        Ok(backlogs)
    }

    async fn consume(
        &self,
        lane: Lane,
        concurrency: usize,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        tracing::info!(lane = lane.as_str(), "consuming (embedded broker)");
        while !shutdown.is_cancelled() {
            let batch = match self.claim(lane, concurrency).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "embedded broker unavailable");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.published.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            // A claimed batch is always finished, even during shutdown: its messages are
            // invisible to others until their lease ends.
            futures::stream::iter(batch)
                .for_each_concurrent(concurrency, |message| {
                    self.process(lane, message, handler.as_ref())
                })
                .await;
        }
        Ok(())
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
        _sink: Arc<dyn DeadLetterSink>,
        _shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        // Consumers bury dead letters themselves; only an older version's flagged ones
        // are left to move, once.
        let moved = self.bury_flagged(lane).await?;
        if moved > 0 {
            tracing::info!(
                lane = lane.as_str(),
                moved,
                "flagged dead letters moved to the dead_letters table"
            );
        }
        Ok(())
    }

    async fn drain_dead_once(&self, lane: Lane, _sink: &dyn DeadLetterSink) -> anyhow::Result<u64> {
        self.bury_flagged(lane).await
    }

    async fn requeue_dead(
        &self,
        lane: Lane,
        message_id: &str,
        payload: &[u8],
        txn: &DatabaseTransaction,
    ) -> Result<(), BrokerError> {
        // Written in the caller's transaction: the message is back exactly when its dead
        // letter is gone. Consumers find it on their next look (at most `IDLE_POLL`).
        Self::insert_message(txn, lane, message_id, utf8(payload)?).await
    }
}
