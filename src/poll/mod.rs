//! The poller: Prom's public API pushes nothing, so every enabled shop's new and changed
//! orders are fetched from `GET /orders/list` and fed into the same inbound lane as a
//! webhook (ARCHITECTURE.md, 'The poller'), as full order notifications with source `poll`.
//!
//! Every tick, and whenever sweeps finish while more shops are waiting, the poller takes
//! the leases of as many due shops as it has free slots (one conditional UPDATE for the
//! batch, so with several `poll` processes a shop is swept by one at a time) and sweeps
//! each in a task (`sweep`). The watermark and the schedule live in the
//! shop row (`lease`), so a dead poller's shops are taken over by the others and a
//! crashed sweep is repeated, never skipped. On shutdown it stops taking shops, lets each
//! running sweep finish the page it is publishing, and releases its leases.

pub mod cursor;
pub mod lease;
pub mod sweep;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::{
    lease::Leases,
    sweep::{Outcome, Published, Sweeper},
};
pub use crate::config::PollSettings;
use crate::{broker::Broker, prom::client::PromClient};

/// A poller identity unique to this process: host, pid and a random part, so two
/// processes on one host (or a restarted pid) never share leases by accident.
pub fn new_owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "poller".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

pub struct Poller {
    sweeper: Arc<Sweeper>,
}

impl Poller {
    pub fn new(
        db: DatabaseConnection,
        broker: Arc<dyn Broker>,
        prom: PromClient,
        settings: PollSettings,
        owner: String,
    ) -> Self {
        let leases = Leases::new(db.clone(), owner, settings.lease);
        Self {
            sweeper: Arc::new(Sweeper {
                db,
                broker,
                prom,
                settings,
                leases,
            }),
        }
    }

    pub fn owner(&self) -> &str {
        self.sweeper.leases.owner()
    }

    /// Polls until `shutdown` fires, then lets running sweeps finish their current page,
    /// releases this poller's leases and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let sweeper = self.sweeper;
        let settings = sweeper.settings.clone();
        tracing::info!(owner = sweeper.leases.owner(), "poller started");
        let mut sweeps: JoinSet<(i64, Outcome, Published)> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, i64> = HashMap::new();
        // What each shop's last sweep published, to skip those versions next time.
        let mut published: HashMap<i64, Published> = HashMap::new();
        let mut tick = tokio::time::interval(settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let concurrency = settings.concurrency.get();
        // Between ticks, slots are refilled in batches of this many, and only while shops
        // are known to be waiting: a busy poller spends one query per batch, not one per
        // finished sweep, and an idle one asks only on its tick.
        let refill_batch = (concurrency / 4).max(1);
        let mut more_due = false;
        loop {
            let ticked = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = sweeps.join_next_with_id(), if !sweeps.is_empty() => {
                    settle(done, &mut running, &mut published);
                    false
                }
                _ = tick.tick() => true,
            };
            let free = concurrency.saturating_sub(running.len());
            if free == 0 || !(ticked || (more_due && free >= refill_batch)) {
                continue;
            }
            let sweeping: Vec<i64> = running.values().copied().collect();
            let taken = match sweeper
                .leases
                .take_due(Utc::now(), free as u64, &sweeping)
                .await
                .context("taking the leases of due shops")
            {
                Ok(taken) => taken,
                Err(e) => {
                    // The database may be back next tick; the poller keeps running.
                    more_due = false;
                    tracing::warn!(error = format!("{e:#}"), "poll tick failed");
                    continue;
                }
            };
            more_due = taken.len() == free;
            for taken in taken {
                let shop_id = taken.shop.id;
                let previously = published.remove(&shop_id).unwrap_or_default();
                let sweeper = sweeper.clone();
                let shutdown = shutdown.clone();
                let task = sweeps.spawn(async move {
                    let (outcome, now_published) =
                        sweeper.sweep(taken, &previously, &shutdown).await;
                    let keep = match outcome {
                        Outcome::Complete(_) => now_published,
                        // A partial sweep's confirmed publishes still count.
                        _ => previously.union(&now_published).copied().collect(),
                    };
                    (shop_id, outcome, keep)
                });
                running.insert(task.id(), shop_id);
            }
        }
        while let Some(done) = sweeps.join_next_with_id().await {
            settle(done, &mut running, &mut published);
        }
        let released = sweeper
            .leases
            .release_all()
            .await
            .context("releasing poll leases")?;
        tracing::info!(released, "poller stopped");
        Ok(())
    }
}

fn settle(
    done: Result<(tokio::task::Id, (i64, Outcome, Published)), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, i64>,
    published: &mut HashMap<i64, Published>,
) {
    match done {
        Ok((task, (shop_id, outcome, keep))) => {
            running.remove(&task);
            if matches!(outcome, Outcome::TokenRejected) {
                published.remove(&shop_id);
            } else {
                published.insert(shop_id, keep);
            }
        }
        Err(e) => {
            // A panicked sweep: its lease runs out and the shop is swept again.
            let shop_id = running.remove(&e.id());
            tracing::error!(?shop_id, error = %e, "a sweep task failed");
        }
    }
}
