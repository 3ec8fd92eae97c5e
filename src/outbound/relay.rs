//! The outbox relay: moves committed outbox rows to the broker's outbound lane.
//!
//! Each round claims a batch of unpublished rows, publishes them (each confirmed by the
//! broker) and marks the confirmed ones published, all in one transaction. On PostgreSQL
//! the batch is claimed with `FOR UPDATE SKIP LOCKED`, so several relays (one per
//! `promsync publish` process) share the work without publishing a row twice; on SQLite
//! writers are serialized by the database anyway. A crash between the confirm and the
//! commit publishes a row again on the next round, which is harmless: the publisher sends
//! the order's current state, which Prom then already has.
//!
//! Published rows are only history once the broker holds the message; the relay deletes
//! those older than `outbox_retention_h` when it is idle, a bounded batch at a time, so
//! the table stays the size of the recent past.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::outbox;
use sea_orm::{
    sea_query::{Expr, LockBehavior, LockType},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use tokio_util::sync::CancellationToken;

use super::{OutboundMessage, OutboxPayload, OutboxReason};
use crate::{
    broker::{Broker, Lane},
    config::Settings,
};

/// Longest pause after a failed round (database or broker down).
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(10);
/// Published rows deleted per statement: short statements, no long lock on the table.
const PURGE_BATCH: u64 = 1000;
/// How often an idle relay looks for published rows past the retention.
const PURGE_EVERY: Duration = Duration::from_secs(600);

pub struct Relay {
    db: DatabaseConnection,
    broker: Arc<dyn Broker>,
    batch_size: u64,
    interval: Duration,
    retention: Option<chrono::Duration>,
}

impl Relay {
    pub fn new(db: DatabaseConnection, broker: Arc<dyn Broker>, settings: &Settings) -> Self {
        Self {
            db,
            broker,
            batch_size: settings.outbound.outbox_batch_size.get(),
            interval: settings.outbound.outbox_poll_interval,
            // Representable: checked when the settings were read.
            retention: settings
                .outbound
                .outbox_retention
                .and_then(|d| chrono::Duration::from_std(d).ok()),
        }
    }

    /// Relays until `shutdown` fires; the round in progress finishes first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = self.interval;
        let mut next_purge = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let pause = match self.relay_batch().await {
                // A full batch means more rows are probably waiting: go on at once.
                Ok(n) if n as u64 == self.batch_size => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(published = n, "outbox rows relayed");
                    }
                    backoff = self.interval;
                    if tokio::time::Instant::now() >= next_purge {
                        next_purge = self.purge_round().await;
                    }
                    self.interval
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox relay round failed"
                    );
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                    pause
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        Ok(())
    }

    /// Deletes one batch of expired published rows; returns when to look again (at once
    /// while full batches keep coming).
    async fn purge_round(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let Some(retention) = self.retention else {
            return now + PURGE_EVERY;
        };
        match purge_published(&self.db, Utc::now() - retention, PURGE_BATCH).await {
            Ok(deleted) if deleted == PURGE_BATCH => now,
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "published outbox rows past the retention deleted");
                }
                now + PURGE_EVERY
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "outbox clean-up failed");
                now + PURGE_EVERY
            }
        }
    }

    /// One round: claims up to a batch of rows, publishes them, marks the confirmed ones.
    /// Returns how many were published; fails if any could not be (the others still count).
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            // SQLite serializes writers and the embedded broker publishes by writing to
            // this same database, so no transaction may stay open across the publish.
            // One relay per database file is the embedded setup; a row published twice
            // after a crash is harmless, as the publisher sends state, not changes.
            return self.relay_rows(&self.db, false).await;
        }
        let txn = self
            .db
            .begin()
            .await
            .context("starting the relay transaction")?;
        let result = self.relay_rows(&txn, true).await;
        txn.commit()
            .await
            .context("committing the relayed outbox rows")?;
        result
    }

    async fn relay_rows<C: ConnectionTrait>(
        &self,
        conn: &C,
        skip_locked: bool,
    ) -> anyhow::Result<usize> {
        let mut query = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(self.batch_size);
        if skip_locked {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = query.all(conn).await.context("claiming outbox rows")?;
        if rows.is_empty() {
            return Ok(0);
        }
        let messages: Vec<(i64, String, Vec<u8>)> = rows
            .iter()
            .map(|row| {
                let message = message_of(row);
                let body = serde_json::to_vec(&message).expect("message serializes");
                (row.id, message.event_id, body)
            })
            .collect();
        // Published concurrently: the broker confirms many in flight far faster than one
        // at a time, and order within a batch does not matter (messages carry no state).
        let results = futures::future::join_all(
            messages
                .iter()
                .map(|(_, id, body)| self.broker.publish(Lane::Outbound, id, body)),
        )
        .await;
        let mut published = Vec::new();
        let mut first_error = None;
        for ((id, _, _), result) in messages.iter().zip(results) {
            match result {
                Ok(()) => published.push(*id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !published.is_empty() {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(outbox::Column::Id.is_in(published.iter().copied()))
                .exec(conn)
                .await
                .context("marking outbox rows published")?;
        }
        match first_error {
            Some(e) => Err(anyhow::Error::new(e).context(format!(
                "publishing outbox rows ({} of {} published)",
                published.len(),
                messages.len()
            ))),
            None => Ok(published.len()),
        }
    }
}

/// Deletes up to `limit` rows published before `before`, oldest first; returns how many.
/// Unpublished rows are never touched. The lookup walks the primary key from the oldest
/// id, where the expired rows are, and stops at `limit`; without an index on
/// `published_at` a round that finds fewer reads the table once, every `PURGE_EVERY`.
pub async fn purge_published<C: ConnectionTrait>(
    db: &C,
    before: DateTime<Utc>,
    limit: u64,
) -> anyhow::Result<u64> {
    let ids: Vec<i64> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::PublishedAt.lt(before))
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
        .context("finding published outbox rows past the retention")?;
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = outbox::Entity::delete_many()
        .filter(outbox::Column::Id.is_in(ids))
        .exec(db)
        .await
        .context("deleting published outbox rows past the retention")?;
    Ok(deleted.rows_affected)
}

/// The broker message of a row. The row's columns are authoritative for the ids; the
/// payload adds the reason (a row written by hand with an odd payload still goes out).
fn message_of(row: &outbox::Model) -> OutboundMessage {
    let reason = serde_json::from_str::<OutboxPayload>(&row.payload)
        .map(|p| p.reason)
        .unwrap_or(OutboxReason::StatusChanged);
    OutboundMessage {
        event_id: OutboundMessage::event_id_for(row.id),
        order_id: row.order_id,
        shop_id: row.shop_id,
        account_id: row.account_id,
        reason,
        kind: row.kind,
        created_at: Some(row.created_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: &str) -> outbox::Model {
        outbox::Model {
            id: 42,
            account_id: 1,
            shop_id: 2,
            order_id: 3,
            kind: entity::enums::OutboxKind::OrderStatus,
            payload: payload.into(),
            created_at: Utc::now(),
            published_at: None,
        }
    }

    #[test]
    fn a_message_takes_its_ids_from_the_row_and_its_reason_from_the_payload() {
        let m = message_of(&row(
            r#"{"order_id":3,"shop_id":2,"account_id":1,"reason":"written_off"}"#,
        ));
        assert_eq!(m.event_id, "outbox-42");
        assert_eq!((m.order_id, m.shop_id, m.account_id), (3, 2, 1));
        assert_eq!(m.reason, OutboxReason::WrittenOff);
    }

    #[test]
    fn a_message_carries_its_rows_kind() {
        let mut waybill =
            row(r#"{"order_id":3,"shop_id":2,"account_id":1,"reason":"waybill_set"}"#);
        waybill.kind = entity::enums::OutboxKind::Waybill;
        let m = message_of(&waybill);
        assert_eq!(m.kind, entity::enums::OutboxKind::Waybill);
        assert_eq!(m.reason, OutboxReason::WaybillSet);
        assert_eq!(
            message_of(&row("{}")).kind,
            entity::enums::OutboxKind::OrderStatus
        );
    }

    #[test]
    fn an_unreadable_payload_still_relays_the_change() {
        let m = message_of(&row("not json"));
        assert_eq!(m.order_id, 3);
        assert_eq!(m.reason, OutboxReason::StatusChanged);
    }
}
