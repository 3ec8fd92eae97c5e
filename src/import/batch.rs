//! Group commit: the messages an importer works on at once share one transaction.
//!
//! A commit costs a WAL flush and two round trips; paid per message it capped imports
//! near the database's single-commit rate. Here each `handle()` prepares its message
//! (parse, plan, product lookups) on its own, then hands the work to a batch worker and
//! waits. A worker takes up to `size` waiting messages (lingering at most `linger` for
//! more), and in ONE transaction: takes every lock the batch needs in one global order
//! (so batches of concurrent importers cannot deadlock), applies each message inside its
//! own savepoint sorted by (shop, order) (so a failing message rolls back alone and gets
//! its own answer), commits, and only then answers each waiting `handle()` — the broker
//! still acks a message only after the commit that holds it. A failed commit answers every
//! message of the batch with an error, and each is retried.
//!
//! Messages of one batch are applied one after another in the same transaction, so two
//! versions of one order, or two deliveries of one event, behave exactly as they do in
//! separate transactions: newest version wins, one inbox row per event.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::{
    apply::{self, Applied, BatchOrders, Prepared},
    plan::ImportPlan,
    ShopContext,
};
use crate::{broker::InboundMessage, config::ImportSettings, db::advisory_xact_locks};

/// How messages are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most messages in one transaction (1 = a transaction per message).
    pub size: usize,
    /// How long a worker holding fewer than `size` messages waits for more.
    pub linger: Duration,
    /// Batches committing at once (each holds one database connection meanwhile).
    pub workers: usize,
}

impl BatchSettings {
    /// How an importer with `concurrency` messages in flight groups them into
    /// transactions. On PostgreSQL, at least two batches are under way at once (one
    /// gathers while another commits), one per 8 messages in flight, at most four (each
    /// holds a connection; the database gains from a few writers at once, as pgbench
    /// with 4 clients shows); SQLite has a single connection.
    ///
    /// A batch takes at most half the messages in flight: one that took them all would
    /// leave nothing to gather while it commits, and the importer would go stop-and-go
    /// (every message waits for the batch, then the next ones all prepare at once).
    /// Under a backlog that halved the rate at which it caught up.
    pub fn new(settings: &ImportSettings, sqlite: bool, concurrency: usize) -> Self {
        Self {
            size: settings.batch_size.get().min((concurrency / 2).max(1)),
            linger: settings.batch_linger,
            workers: if sqlite {
                1
            } else {
                (concurrency / 8).clamp(2, 4)
            },
        }
    }
}

/// A place where a test stops a batch: after it read (and locked) its orders, before it
/// applies anything. Tests force a race with it (a write-off committing while the batch
/// holds what it read); inert unless a test hands one to the importer.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct PausePoint {
    /// Notified when a batch has read its orders and waits.
    pub reached: Notify,
    /// Notify once to let the waiting batch go on.
    pub release: Notify,
}

/// Why a message's batch did not apply it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// This message failed; its savepoint was rolled back, the others went on.
    #[error("applying the order: {0}")]
    Message(String),
    /// The batch's transaction failed (begin, locks or commit): nothing was kept.
    #[error("batch transaction: {0}")]
    Transaction(String),
    #[error("the batch worker stopped")]
    Stopped,
}

struct Work {
    ctx: Arc<ShopContext>,
    msg: Arc<InboundMessage>,
    plan: Arc<ImportPlan>,
    prepared: Prepared,
    reply: oneshot::Sender<Result<Applied, BatchError>>,
}

/// The handle `handle()` calls submit through. Workers stop once every handle is gone.
pub struct Batcher {
    queue: mpsc::Sender<Work>,
}

impl Batcher {
    pub fn start(
        db: DatabaseConnection,
        settings: BatchSettings,
        pause: Option<Arc<PausePoint>>,
    ) -> Self {
        let size = settings.size.max(1);
        let workers = settings.workers.max(1);
        let (queue, receiver) = mpsc::channel(size * workers * 2);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers {
            tokio::spawn(work(
                db.clone(),
                Arc::clone(&receiver),
                size,
                settings.linger,
                pause.clone(),
            ));
        }
        Self { queue }
    }

    /// Applies one prepared message in the next batch; returns after that batch committed.
    pub async fn apply(
        &self,
        ctx: Arc<ShopContext>,
        msg: Arc<InboundMessage>,
        plan: Arc<ImportPlan>,
        prepared: Prepared,
    ) -> Result<Applied, BatchError> {
        let (reply, answer) = oneshot::channel();
        let work = Work {
            ctx,
            msg,
            plan,
            prepared,
            reply,
        };
        self.queue
            .send(work)
            .await
            .map_err(|_| BatchError::Stopped)?;
        answer.await.map_err(|_| BatchError::Stopped)?
    }
}

async fn work(
    db: DatabaseConnection,
    receiver: Arc<Mutex<mpsc::Receiver<Work>>>,
    size: usize,
    linger: Duration,
    pause: Option<Arc<PausePoint>>,
) {
    loop {
        // One worker gathers at a time; the others are committing meanwhile, so batches
        // form from whatever arrived during the previous commit.
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < size {
                // `timeout_at` polls the channel before the clock: with no linger, what
                // is already waiting still joins.
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(work)) => batch.push(work),
                    Ok(None) | Err(_) => break,
                }
            }
            batch
        };
        run(&db, batch, pause.as_deref()).await;
    }
}

#[tracing::instrument(skip_all, fields(size = batch.len()))]
async fn run(db: &DatabaseConnection, mut batch: Vec<Work>, pause: Option<&PausePoint>) {
    // A stable sort: versions of one order keep their arrival order.
    batch.sort_by(|a, b| {
        (a.ctx.shop_id, &a.plan.external_id).cmp(&(b.ctx.shop_id, &b.plan.external_id))
    });
    let results = match apply_all(db, &batch, pause).await {
        Ok(results) => results,
        Err(e) => {
            tracing::debug!(error = %e, "batch transaction failed");
            let e = BatchError::Transaction(e.to_string());
            vec![Err(e); batch.len()]
        }
    };
    for (work, result) in batch.into_iter().zip(results) {
        // A handler that went away (its task was cancelled) needs no answer.
        let _ = work.reply.send(result);
    }
}

async fn apply_all(
    db: &DatabaseConnection,
    batch: &[Work],
    pause: Option<&PausePoint>,
) -> Result<Vec<Result<Applied, BatchError>>, DbErr> {
    // One time for the whole batch: the moment its transaction applied the messages.
    let processed_at = Utc::now();
    let txn = db.begin().await?;
    let items: Vec<Item<'_>> = batch
        .iter()
        .map(|w| Item {
            ctx: &w.ctx,
            msg: &w.msg,
            plan: &w.plan,
            prepared: &w.prepared,
        })
        .collect();
    let results = apply_items(&txn, &items, processed_at, pause).await?;
    txn.commit().await?;
    Ok(results)
}

/// One message of a batch, ready to apply.
pub(super) struct Item<'a> {
    pub ctx: &'a ShopContext,
    pub msg: &'a InboundMessage,
    pub plan: &'a ImportPlan,
    pub prepared: &'a Prepared,
}

/// The work of a batch inside `txn`, which the caller commits (or, warming up, rolls
/// back): every lock first, the orders read under their row locks, then each message in
/// its own savepoint.
pub(super) async fn apply_items(
    txn: &DatabaseTransaction,
    items: &[Item<'_>],
    processed_at: DateTime<Utc>,
    pause: Option<&PausePoint>,
) -> Result<Vec<Result<Applied, BatchError>>, DbErr> {
    let locks = items
        .iter()
        .flat_map(|w| apply::lock_names(w.ctx, w.plan, w.prepared));
    advisory_xact_locks(txn, locks).await?;
    let keys = items
        .iter()
        .map(|w| (w.ctx.shop_id, w.plan.external_id.as_str()));
    // Read under the orders' row locks: a write-off or status change (which lock the
    // row) waits for this batch, and this batch sees any that committed before.
    let mut orders = BatchOrders::load(txn, keys).await?;
    if let Some(pause) = pause {
        pause.reached.notify_one();
        pause.release.notified().await;
    }
    let mut results = Vec::with_capacity(items.len());
    for w in items {
        let result = apply::apply_one(
            txn,
            w.ctx,
            w.msg,
            w.plan,
            w.prepared,
            processed_at,
            &mut orders,
        )
        .await?
        .map_err(|e| BatchError::Message(e.to_string()));
        results.push(result);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_has_one_batch_worker_postgres_two_to_four() {
        let import = crate::config::Settings::defaults()
            .expect("defaults are valid")
            .import;
        let batch = BatchSettings::new(&import, true, 64);
        assert_eq!(
            (batch.size, batch.linger, batch.workers),
            (32, Duration::from_millis(2), 1),
            "SQLite has one connection"
        );
        assert_eq!(BatchSettings::new(&import, false, 8).workers, 2);
        assert_eq!(BatchSettings::new(&import, false, 24).workers, 3);
        assert_eq!(BatchSettings::new(&import, false, 1000).workers, 4);
    }

    #[test]
    fn a_batch_takes_at_most_half_the_messages_in_flight() {
        let import = crate::config::Settings::defaults()
            .expect("defaults are valid")
            .import;
        assert_eq!(import.batch_size.get(), 32);
        assert_eq!(BatchSettings::new(&import, false, 32).size, 16);
        assert_eq!(BatchSettings::new(&import, false, 64).size, 32);
        assert_eq!(BatchSettings::new(&import, false, 1000).size, 32);
        assert_eq!(BatchSettings::new(&import, true, 1).size, 1);
        assert_eq!(BatchSettings::new(&import, false, 3).size, 1);
    }
}
