//! Replay on the embedded backend: reads the `broker_log` table in id order, a page at a
//! time, and writes each page's re-fed messages into the import queue in one
//! transaction. Where the log ends is its highest id when the replay begins, so
//! notifications logged meanwhile are left to the importers.

use anyhow::Context;
use entity::{broker_log, broker_messages};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};

use super::{now_ms, ready_message, EmbeddedBroker};
use crate::broker::{
    replay::LOG_LAG, replay_rewrite, Lane, ReplayRequest, ReplaySummary, Replayed,
};

/// Rows per insert statement: far below SQLite's and PostgreSQL's limits on bound
/// parameters, whatever `in_flight` asks for.
const INSERT_ROWS: usize = 500;

impl EmbeddedBroker {
    #[tracing::instrument(skip_all, fields(since = %request.since, until = ?request.until, in_flight = request.in_flight.get()))]
    pub(super) async fn replay_log(
        &self,
        request: &ReplayRequest,
        progress: &(dyn Fn(ReplaySummary) + Send + Sync),
    ) -> anyhow::Result<ReplaySummary> {
        let mut summary = ReplaySummary::default();
        let last: Option<i64> = broker_log::Entity::find()
            .select_only()
            .column_as(broker_log::Column::Id.max(), "last")
            .into_tuple()
            .one(&self.db)
            .await
            .context("finding the end of the replay log")?
            .flatten();
        let Some(last) = last else {
            progress(summary);
            return Ok(summary);
        };
        // The log's own stamp (milliseconds, taken when it was written) comes after
        // `received_at`: it bounds the pages read; the exact window is applied below.
        let mut query = broker_log::Entity::find()
            .filter(broker_log::Column::Id.lte(last))
            .filter(broker_log::Column::CreatedAtMs.gte(request.since.timestamp_millis()));
        if let Some(until) = request.until {
            let lag = i64::try_from(LOG_LAG.as_millis()).unwrap_or(i64::MAX);
            query = query.filter(
                broker_log::Column::CreatedAtMs.lte(until.timestamp_millis().saturating_add(lag)),
            );
        }
        let page_size = u64::try_from(request.in_flight.get()).unwrap_or(u64::MAX);
        let mut after_id = 0_i64;
        loop {
            let page = query
                .clone()
                .filter(broker_log::Column::Id.gt(after_id))
                .order_by_asc(broker_log::Column::Id)
                .limit(page_size)
                .all(&self.db)
                .await
                .context("reading the replay log")?;
            let Some(end) = page.last() else { break };
            after_id = end.id;
            let now = now_ms();
            let mut refed = Vec::with_capacity(page.len());
            for entry in page {
                match replay_rewrite(entry.payload.as_bytes(), request) {
                    Replayed::OutsideWindow => continue,
                    Replayed::Skipped => summary.skipped += 1,
                    Replayed::Requeue { id, payload } => {
                        let payload = String::from_utf8(payload)
                            .context("a re-fed notification is not UTF-8")?;
                        refed.push(ready_message(Lane::Inbound, &id, payload, now));
                    }
                }
                summary.read += 1;
            }
            let count = refed.len() as u64;
            self.requeue_all(refed).await?;
            summary.requeued += count;
            progress(summary);
        }
        progress(summary);
        Ok(summary)
    }

    /// Writes re-fed messages in one transaction: all of a page is queued, or none.
    async fn requeue_all(&self, messages: Vec<broker_messages::ActiveModel>) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await.context("re-feeding the log")?;
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            let chunk: Vec<_> = messages.by_ref().take(INSERT_ROWS).collect();
            broker_messages::Entity::insert_many(chunk)
                .exec(&txn)
                .await
                .context("re-feeding the log")?;
        }
        txn.commit().await.context("re-feeding the log")?;
        self.published.notify_waiters();
        Ok(())
    }
}
