//! One sweep of one shop: every order modified since the watermark (minus the overlap),
//! page by page down Prom's `last_id` cursor, each published to the inbound lane and
//! confirmed before the next page is asked for; then, and only then, the watermark moves.
//!
//! Anything that stops a sweep early (shutdown, a lost lease, Prom or the broker failing
//! for good) leaves the watermark where it was, so the next sweep repeats this one; the
//! deterministic event ids make the repeat import nothing twice.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::shops;
use futures::{stream, StreamExt};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    cursor::{self, Cursor, Listed, Verdict},
    lease::{Leases, Taken},
    PollSettings,
};
use crate::{
    broker::{Broker, InboundMessage},
    domain::Source,
    prom::{
        client::{OrderListQuery, PromClient, PromError},
        ids::{EventId, ShopId},
        source::{self, OrderSource},
    },
};

/// The longest single wait on a `Retry-After`; the lease is kept during it anyway, but a
/// bogus hint of hours should not freeze a shop.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest wait between retries of a failing page.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Confirmed publishes in flight at once while a page is published.
const PUBLISH_CONCURRENCY: usize = 16;

/// How a sweep ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every page published and confirmed; the watermark moved.
    Complete(Summary),
    /// Shutdown came between two pages; the shop is due again at once.
    Interrupted,
    /// Another poller took the lease (this one stalled past it); it owns the shop now.
    LeaseLost,
    /// Prom refused the token: the shop is paused and flagged.
    TokenRejected,
    /// Prom, the broker or the database kept failing; tried again next interval.
    Failed(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub pages: u32,
    pub listed: u32,
    pub published: u32,
    /// Already published and confirmed by this poller's previous sweep of the shop.
    pub unchanged: u32,
    pub skipped: u32,
}

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("shutting down")]
    Shutdown,
    #[error("lease taken by another poller")]
    LeaseLost,
    #[error(transparent)]
    Prom(#[from] PromError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// What every sweep of one poller shares.
pub struct Sweeper {
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    pub prom: PromClient,
    pub settings: PollSettings,
    pub leases: Leases,
}

/// The event ids this poller published and saw confirmed in its last complete sweep of a
/// shop. Overlapping windows list those versions again; skipping them keeps every
/// sweep from re-sending the last few minutes of orders (and from growing the replay
/// log). Only an optimization: after a restart or a lease move everything in the window
/// is published again, and the importer's inbox turns that into no-ops.
pub type Published = HashSet<EventId>;

impl Sweeper {
    /// Sweeps one shop whose lease this poller holds (the row as the take returned it),
    /// and settles the lease.
    #[tracing::instrument(skip_all, fields(shop_id = taken.shop.id))]
    pub async fn sweep(
        &self,
        taken: Taken,
        previously: &Published,
        shutdown: &CancellationToken,
    ) -> (Outcome, Published) {
        let Taken { shop, due } = taken;
        let shop_id = shop.id;
        let started = tokio::time::Instant::now();
        let wall_start = Utc::now();
        let mut published = Published::new();
        // The lease is kept by its own loop, so no step of the sweep (a slow publish, a
        // long `Retry-After`) can outlast it; if another poller took it anyway, the walk
        // is dropped where it is, like a crash, and the watermark stays.
        let result = tokio::select! {
            result = self.walk(&shop, previously, &mut published, shutdown) => result,
            lost = self.keep_lease(shop_id, shop.lease_until) => Err(lost),
        };
        let outcome = match result {
            Ok((summary, window, newest)) => {
                let watermark = cursor::next_watermark(
                    shop.poll_watermark,
                    window.horizon,
                    newest,
                    started.elapsed(),
                    self.settings.overlap,
                );
                let next_due = next_due(due, wall_start, interval_of(&shop));
                match self.leases.complete(shop_id, watermark, next_due).await {
                    Ok(true) => {
                        tracing::info!(
                            pages = summary.pages,
                            listed = summary.listed,
                            published = summary.published,
                            unchanged = summary.unchanged,
                            skipped = summary.skipped,
                            %watermark,
                            "sweep complete"
                        );
                        Outcome::Complete(summary)
                    }
                    Ok(false) => Outcome::LeaseLost,
                    Err(e) => Outcome::Failed(format!("recording the watermark: {e}")),
                }
            }
            Err(Stop::Shutdown) => Outcome::Interrupted,
            Err(Stop::LeaseLost) => Outcome::LeaseLost,
            Err(Stop::Prom(PromError::Unauthorized(code))) => {
                tracing::warn!(
                    http_status = code,
                    "Prom rejected the shop's token: polling paused until it is renewed"
                );
                match self.leases.reject_token(shop_id, Utc::now()).await {
                    Ok(()) => Outcome::TokenRejected,
                    Err(e) => Outcome::Failed(format!("flagging the rejected token: {e}")),
                }
            }
            Err(e @ (Stop::Prom(_) | Stop::Other(_))) => Outcome::Failed(e.to_string()),
        };
        match &outcome {
            Outcome::Interrupted => {
                // Due at once, so another poller repeats the sweep without waiting.
                if let Err(e) = self.leases.release(shop_id, None).await {
                    tracing::warn!(error = %e, "releasing the lease");
                }
                tracing::info!("sweep interrupted by shutdown; it will be repeated");
            }
            Outcome::Failed(reason) => {
                let retry_at = Utc::now() + interval_of(&shop);
                if let Err(e) = self.leases.release(shop_id, Some(retry_at)).await {
                    tracing::warn!(error = %e, "releasing the lease");
                }
                tracing::warn!(%reason, "sweep failed; it will be repeated");
            }
            Outcome::LeaseLost => tracing::warn!("lease lost to another poller mid-sweep"),
            Outcome::Complete(_) | Outcome::TokenRejected => {}
        }
        (outcome, published)
    }

    /// Walks every page; returns what was done, the window and the newest
    /// `date_modified` listed.
    async fn walk(
        &self,
        shop: &shops::Model,
        previously: &Published,
        published: &mut Published,
        shutdown: &CancellationToken,
    ) -> Result<(Summary, cursor::Window, Option<DateTime<Utc>>), Stop> {
        let shop_id = shop.id;
        let credentials = source::credentials(shop).context("the shop's Prom settings")?;
        let source = OrderSource::new(&self.prom, &credentials);
        let shop_ref = ShopId::try_from(shop_id).context("shop id")?;
        let window = cursor::window(
            shop.poll_watermark,
            shop.created_at,
            self.settings.backfill,
            self.settings.overlap,
        );
        let mut cursor = Cursor::new();
        let mut summary = Summary::default();
        let mut newest: Option<DateTime<Utc>> = None;
        loop {
            if shutdown.is_cancelled() {
                return Err(Stop::Shutdown);
            }
            let query = OrderListQuery {
                last_modified_from: Some(window.from),
                limit: Some(self.settings.page_size.get()),
                last_id: cursor.last_id(),
                ..Default::default()
            };
            let page = self.page(&source, &query, shutdown).await?;
            summary.pages += 1;
            // The cursor moves over every order with an id, readable or not: `last_id` is
            // inclusive, so an unreadable order right after the boundary would otherwise
            // leave a page with nothing new and end the sweep before the orders below it.
            let mut with_id: Vec<(i64, &Value)> = Vec::new();
            for doc in &page {
                match doc.get("id").and_then(Value::as_i64) {
                    Some(id) => with_id.push((id, doc)),
                    None => tracing::warn!("order on the list page without a numeric id"),
                }
            }
            let ids: Vec<i64> = with_id.iter().map(|(id, _)| *id).collect();
            let fresh = cursor.accept(&ids);
            let mut messages = Vec::new();
            for doc in fresh.into_iter().map(|i| with_id[i].1) {
                summary.listed += 1;
                let Some(listed) = readable(doc) else {
                    summary.skipped += 1;
                    continue;
                };
                newest = newest.max(listed.modified_at());
                if listed.verdict(window.horizon) != Verdict::Publish {
                    summary.skipped += 1;
                    continue;
                }
                // Never `None`: such an order was left out as unreadable above.
                let Some(version) = listed.version() else {
                    continue;
                };
                let event_id = EventId::for_poll(shop_ref, listed.id, version);
                if previously.contains(&event_id) {
                    summary.unchanged += 1;
                    published.insert(event_id);
                    continue;
                }
                messages.push(InboundMessage {
                    event_id,
                    shop_id: shop_ref,
                    source: Source::Poll,
                    received_at: Utc::now(),
                    order_id: listed.id,
                    order: Some(serde_json::value::to_raw_value(doc).context("encoding an order")?),
                });
            }
            summary.published += self.publish(messages, published).await?;
            if cursor.is_done() {
                return Ok((summary, window, newest));
            }
        }
    }

    /// Renews the lease every third of its length until another poller has taken it
    /// (the only way this returns). A database error is retried at the next renewal: the
    /// lease only lapses if the database stays unreachable for its whole length.
    async fn keep_lease(&self, shop_id: i64, taken_until: Option<DateTime<Utc>>) -> Stop {
        let every = (self.settings.lease / 3).max(Duration::from_millis(10));
        // The take set a whole lease length, so most sweeps end before the first renewal
        // and cost none; that renewal is a third of a lease after the take, not after this
        // sweep began, however long the sweep waited to start.
        let first = taken_until
            .and_then(|until| (until - Utc::now()).to_std().ok())
            .map_or(Duration::ZERO, |left| left.saturating_sub(every * 2));
        tokio::time::sleep(first).await;
        loop {
            match self.leases.renew(shop_id, Utc::now()).await {
                Ok(true) => {}
                Ok(false) => return Stop::LeaseLost,
                Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Publishes one page's orders and waits for every confirm.
    async fn publish(
        &self,
        messages: Vec<InboundMessage>,
        published: &mut Published,
    ) -> Result<u32, Stop> {
        let mut count = 0;
        let mut results = stream::iter(messages)
            .map(|message| async move {
                let result = self.broker.publish_inbound(&message).await;
                (message.event_id, result)
            })
            .buffer_unordered(PUBLISH_CONCURRENCY);
        let mut failure = None;
        while let Some((event_id, result)) = results.next().await {
            match result {
                Ok(()) => {
                    published.insert(event_id);
                    count += 1;
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            None => Ok(count),
            Some(e) => Err(anyhow::Error::new(e).context("publishing an order").into()),
        }
    }

    /// One page, retried in place on rate limits and transient failures (honouring
    /// `Retry-After`) while the lease is kept; gives up after `page_attempts`.
    async fn page(
        &self,
        source: &OrderSource<'_>,
        query: &OrderListQuery,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Value>, Stop> {
        let mut attempt: u32 = 0;
        loop {
            let error = match source.page(query).await {
                Ok(page) => return Ok(page),
                Err(e) if !e.is_transient() => return Err(e.into()),
                Err(e) => e,
            };
            attempt += 1;
            if attempt >= self.settings.page_attempts.get() {
                return Err(error.into());
            }
            let backoff = self
                .settings
                .retry_base
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            let wait = error
                .retry_after()
                .map_or(backoff, |hint| hint.min(MAX_RETRY_AFTER));
            tracing::info!(error = %error, attempt, wait_ms = wait.as_millis() as u64, "Prom page failed; retrying");
            self.pause(wait, shutdown).await?;
        }
    }

    /// Waits before a retry, unless shutdown comes first.
    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) -> Result<(), Stop> {
        tokio::select! {
            _ = shutdown.cancelled() => Err(Stop::Shutdown),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

/// The fields the poller needs of a listed order, if it has them: without a version it
/// can be neither imported nor deduped.
fn readable(doc: &Value) -> Option<Listed> {
    match Listed::deserialize(doc) {
        Ok(listed) if listed.version().is_some() => Some(listed),
        Ok(_) => {
            tracing::warn!("order on the list page without date_modified or date_created");
            None
        }
        Err(e) => {
            // The error names the field, never the buyer's data.
            tracing::warn!(error = %e, "unreadable order on the list page");
            None
        }
    }
}

/// When a shop that fell due at `due` and was swept from `started` is due next: one
/// interval after it was due, not after the sweep began, so a poller that starts sweeps a
/// little late (up to a tick) does not push every shop's schedule back by that much each
/// time; but never sooner than half an interval after this sweep, so a poller that fell
/// far behind (an outage) catches up over a few sweeps instead of sweeping back to back.
pub fn next_due(
    due: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    interval: chrono::Duration,
) -> DateTime<Utc> {
    // A lease still running (a restarted poller resuming its own shop) is no schedule.
    let anchor = due.map_or(started, |due| due.min(started));
    (anchor + interval).max(started + interval / 2)
}

/// The shop's own poll interval; a value below one second is taken as one second.
pub fn interval_of(shop: &shops::Model) -> chrono::Duration {
    chrono::Duration::seconds(i64::from(shop.poll_interval_s.max(1)))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_sweep_started_late_keeps_the_shop_on_its_schedule() {
        assert_eq!(next_due(Some(at(0)), at(1), Duration::seconds(60)), at(60));
    }

    #[test]
    fn a_shop_never_swept_is_due_one_interval_after_its_first_sweep() {
        assert_eq!(next_due(None, at(5), Duration::seconds(60)), at(65));
    }

    #[test]
    fn a_shop_far_behind_its_schedule_waits_at_least_half_an_interval() {
        assert_eq!(next_due(Some(at(0)), at(50), Duration::seconds(60)), at(80));
    }

    #[test]
    fn a_lease_still_running_is_not_taken_for_the_schedule() {
        // A restarted poller resumes its own shop while its lease has 20 s to go.
        assert_eq!(
            next_due(Some(at(30)), at(10), Duration::seconds(60)),
            at(70)
        );
    }
}
