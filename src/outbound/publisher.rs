//! The Prom publisher: consumes the outbound lane and makes Prom show each order's current
//! mapped status (ARCHITECTURE.md, 'From RO App back to Prom'), and its current waybill
//! (messages of kind `waybill`, in [`waybill`], the same way).
//!
//! No transaction is open while Prom is called: Prom may take seconds to answer, and a
//! transaction held that long would pin a pooled connection per message, so a slow Prom
//! would starve every role sharing the pool. Each message therefore takes three steps:
//!
//! 1. A short transaction re-reads the order, decides ([`super::evaluate`]) and, to send,
//!    claims the order: a row in `outbound_claims` naming the status and a lease.
//! 2. The `set_status` call, bounded so that it always ends before the lease does.
//! 3. A short transaction stores what Prom now has (`remote_status`) and the attempt on
//!    the outbound sync log, and lets the claim go — but stores Prom's status only if the
//!    claim is still this publisher's.
//!
//! While an order is claimed, other messages of that order (in this process or another)
//! wait for the claim to go before they decide, so two changes never talk to Prom at once
//! and the later one sees what the earlier one sent: a change made during a call is sent
//! next, and nothing is sent twice. The two short transactions take the order's advisory
//! lock, so a decision and a claim are one step for every other publisher. A publisher that
//! dies during a call leaves its claim until the lease runs out; then the order is free,
//! and because that call may or may not have reached Prom, the next decision does not
//! trust `remote_status` over the claimed status (a resend, at most once).
//!
//! Failures are sorted like the importer's: 429/5xx/network → delayed retry (honouring
//! `Retry-After`), Prom not listing the order in `processed_ids` → retry, 401/403 → the
//! shop is flagged "token rejected" and the message dead-lettered (requeue it once the
//! token is fixed), other refusals → dead letter. Every attempt is on the sync log.

use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::{enums::OutboxKind, orders, outbound_claims, outbound_sync_log, shops};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use tokio::sync::MutexGuard;

use super::{evaluate, Decision, OutboundError, OutboundMessage};
use crate::{
    broker::{Disposition, Handler},
    config::Settings,
    domain::Outcome,
    prom::{
        client::{CancellationReason, PromClient, PromError, SetStatusRequest, SetStatusResponse},
        order::PromStatus,
        source,
    },
};

mod waybill;

/// Stripes of the in-process order lock used where the database has no advisory locks
/// (SQLite, where one process does all the work).
const LOCAL_LOCK_STRIPES: usize = 64;
/// Added to the longest call for a claim's lease: the commits around the call, and the
/// clocks of publishers on different hosts, which only roughly agree.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// First and longest pause of a message waiting for another publisher's claim: most
/// calls end within milliseconds, a slow Prom's within seconds.
const WAIT_FIRST: Duration = Duration::from_millis(20);
const WAIT_MAX: Duration = Duration::from_millis(500);

pub struct Publisher {
    db: DatabaseConnection,
    prom: PromClient,
    cancellation_text: String,
    local_locks: Vec<tokio::sync::Mutex<()>>,
    /// The longest a `set_status` may take: the request's own timeout, and as long again
    /// for the wait on the token's rate limit.
    call_limit: Duration,
    /// How long a claim keeps other publishers away; longer than any call, so no one
    /// takes an order over while its call may still reach Prom.
    lease: Duration,
}

/// What the first step found; `C` is what was claimed (a status or a waybill).
enum Step<C> {
    /// Nothing (more) to do for this message.
    Settled(Disposition),
    /// Another publisher is sending this order's status (or waybill): decide once it is
    /// done.
    Busy,
    /// The order is claimed by this publisher for sending.
    Send(Box<C>),
}

/// A send this publisher has claimed.
struct Claim {
    id: String,
    order_id: i64,
    shop: shops::Model,
    prom_id: i64,
    status: PromStatus,
    /// For `canceled`: the reason and text Prom gets.
    cancellation: Option<(CancellationReason, Option<String>)>,
}

impl Claim {
    /// Lets the claim go, the outcome being known; `false` when it is no longer ours.
    async fn release<C: ConnectionTrait>(&self, db: &C) -> Result<bool, DbErr> {
        let deleted = outbound_claims::Entity::delete_many()
            .filter(outbound_claims::Column::OrderId.eq(self.order_id))
            .filter(outbound_claims::Column::ClaimId.eq(self.id.as_str()))
            .exec(db)
            .await?;
        Ok(deleted.rows_affected == 1)
    }

    /// Frees the order now but keeps the row: the call may or may not have changed Prom,
    /// which the next decision must not forget. `false` when the claim is no longer ours.
    async fn expire<C: ConnectionTrait>(&self, db: &C) -> Result<bool, DbErr> {
        let updated = outbound_claims::Entity::update_many()
            .col_expr(
                outbound_claims::Column::ClaimedUntil,
                Expr::value(Utc::now()),
            )
            .filter(outbound_claims::Column::OrderId.eq(self.order_id))
            .filter(outbound_claims::Column::ClaimId.eq(self.id.as_str()))
            .exec(db)
            .await?;
        Ok(updated.rows_affected == 1)
    }
}

impl Publisher {
    pub fn new(db: DatabaseConnection, prom: PromClient, settings: &Settings) -> Self {
        let call_limit = settings.prom.timeout * 2;
        Self {
            db,
            prom,
            cancellation_text: settings.prom.cancellation_text.clone(),
            local_locks: (0..LOCAL_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            call_limit,
            lease: call_limit + LEASE_MARGIN,
        }
    }

    #[tracing::instrument(
        name = "outbound_message",
        skip_all,
        fields(event_id = %msg.event_id, order_id = msg.order_id, shop_id = msg.shop_id, kind = msg.kind.as_str(), reason = msg.reason.as_str(), attempt = attempt)
    )]
    async fn publish(&self, msg: OutboundMessage, attempt: u32) -> Disposition {
        let published = match msg.kind {
            OutboxKind::OrderStatus => self.try_publish(&msg).await,
            OutboxKind::Waybill => self.try_publish_waybill(&msg).await,
        };
        match published {
            Ok(disposition) => disposition,
            Err(e) => Disposition::Retry {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }

    /// Decides (`decide`) until the order is claimed or there is nothing to send, waiting
    /// while another publisher holds the order: `Err` carries the message's disposition.
    async fn claim_when_free<C, Fut>(
        &self,
        mut decide: impl FnMut() -> Fut,
    ) -> anyhow::Result<Result<Box<C>, Disposition>>
    where
        Fut: std::future::Future<Output = anyhow::Result<Step<C>>>,
    {
        let waiting_since = Instant::now();
        let mut pause = WAIT_FIRST;
        loop {
            match decide().await? {
                Step::Settled(disposition) => return Ok(Err(disposition)),
                Step::Send(claim) => return Ok(Ok(claim)),
                Step::Busy => {
                    // Each claim ends within a lease; waiting longer means a stream of
                    // other senders, and the delivery is better retried than held.
                    if waiting_since.elapsed() > self.lease * 2 {
                        return Ok(Err(Disposition::Retry {
                            reason: "other publishers kept the order busy".to_owned(),
                            after: None,
                        }));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(WAIT_MAX);
                }
            }
        }
    }

    async fn try_publish(&self, msg: &OutboundMessage) -> anyhow::Result<Disposition> {
        let claim = match self.claim_when_free(|| self.decide(msg)).await? {
            Ok(claim) => claim,
            Err(disposition) => return Ok(disposition),
        };
        let answer = self.call(&claim).await;
        match self.record(msg, &claim, answer).await {
            Ok(disposition) => Ok(disposition),
            Err(e) => {
                // Prom may have applied the status: keep the claim as an unknown outcome,
                // but free the order now rather than at the end of the lease.
                if let Err(expire) = claim.expire(&self.db).await {
                    tracing::warn!(error = %expire, "could not free the order's claim: it runs out with its lease");
                }
                Err(e)
            }
        }
    }

    /// Step 1, one short transaction: what Prom should be told now, and the claim to tell it.
    async fn decide(&self, msg: &OutboundMessage) -> anyhow::Result<Step<Claim>> {
        let (_local, txn) = self.begin(msg.order_id).await?;
        let Some(Imported {
            order,
            shop,
            external_id,
        }) = load_imported(&txn, msg.order_id).await?
        else {
            return Ok(Step::Settled(Disposition::Done));
        };
        let now = Utc::now();
        let unsettled = outbound_claims::Entity::find_by_id(order.id)
            .one(&txn)
            .await
            .context("loading the order's claim")?;
        if unsettled.as_ref().is_some_and(|c| c.claimed_until > now) {
            // Whatever this message would decide, Prom is about to change under it.
            tracing::debug!("another publisher is sending this order's status: waiting");
            return Ok(Step::Busy);
        }
        let log = SyncLog {
            shop_id: shop.id,
            order_id: order.id,
            event_id: &msg.event_id,
        };
        if !shop.enabled {
            return skip_disabled_shop(txn, &log).await;
        }
        let decision = match evaluate(&txn, &order).await {
            Ok(decision) => decision,
            Err(OutboundError::Db(e)) => return Err(e).context("reading the status mapping"),
            Err(e @ OutboundError::BadMapping { .. }) => {
                log.write(&txn, None, Outcome::Failed, &e.to_string())
                    .await?;
                txn.commit().await.context("committing the sync log")?;
                return Ok(Step::Settled(Disposition::Dead {
                    reason: e.to_string(),
                }));
            }
        };
        // A send with an unknown outcome may have left Prom at its status instead of
        // `remote_status`: only when both say the same does Prom surely have it.
        let status = match (decision, &unsettled) {
            (Decision::Send(status), _) => status,
            (Decision::AlreadyThere(status), Some(earlier)) if !claimed(earlier, &status) => status,
            (decision, _) => {
                if let (Decision::AlreadyThere(_), Some(_)) = (&decision, &unsettled) {
                    outbound_claims::Entity::delete_by_id(order.id)
                        .exec(&txn)
                        .await
                        .context("dropping the settled claim")?;
                }
                return self
                    .settle_without_sending(txn, &log, decision)
                    .await
                    .map(Step::Settled);
            }
        };
        let Ok(prom_id) = external_id.parse::<i64>() else {
            let reason = format!("external id {external_id:?} is not a Prom order id");
            log.write(&txn, Some(&status), Outcome::Failed, &reason)
                .await?;
            txn.commit().await.context("committing the sync log")?;
            return Ok(Step::Settled(Disposition::Dead { reason }));
        };
        let claim = Claim {
            id: uuid::Uuid::new_v4().to_string(),
            order_id: order.id,
            shop,
            prom_id,
            status,
            cancellation: (status == PromStatus::Canceled).then(|| self.cancellation_of(&order)),
        };
        if !self.take(&txn, &claim, unsettled.is_some(), now).await? {
            return Ok(Step::Busy);
        }
        txn.commit().await.context("committing the claim")?;
        Ok(Step::Send(Box::new(claim)))
    }

    /// Claims the order for `claim` unless someone holds it; `true` when this publisher
    /// won. The order's lock already keeps other publishers out; the conditions make
    /// the claim safe on its own.
    async fn take(
        &self,
        txn: &DatabaseTransaction,
        claim: &Claim,
        row_exists: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        if row_exists {
            let updated = outbound_claims::Entity::update_many()
                .col_expr(
                    outbound_claims::Column::ClaimId,
                    Expr::value(claim.id.clone()),
                )
                .col_expr(
                    outbound_claims::Column::PromStatus,
                    Expr::value(claim.status.to_string()),
                )
                .col_expr(outbound_claims::Column::ClaimedUntil, Expr::value(until))
                .filter(outbound_claims::Column::OrderId.eq(claim.order_id))
                .filter(outbound_claims::Column::ClaimedUntil.lte(now))
                .exec(txn)
                .await
                .context("claiming the order")?;
            Ok(updated.rows_affected == 1)
        } else {
            // A concurrent insert fails on the primary key: retried like any database error.
            outbound_claims::ActiveModel {
                order_id: Set(claim.order_id),
                claim_id: Set(claim.id.clone()),
                prom_status: Set(claim.status.to_string()),
                claimed_until: Set(until),
            }
            .insert(txn)
            .await
            .context("claiming the order")?;
            Ok(true)
        }
    }

    /// The reason and text an employee gave with the change (ARCHITECTURE.md, 'Canceled
    /// carries a reason'), else `another` with the configured text, which Prom requires
    /// for it.
    fn cancellation_of(&self, order: &orders::Model) -> (CancellationReason, Option<String>) {
        match order
            .cancellation_reason
            .as_deref()
            .and_then(|reason| reason.parse::<CancellationReason>().ok())
        {
            Some(reason) => (reason, order.cancellation_text.clone()),
            None => (
                CancellationReason::Another,
                Some(self.cancellation_text.clone()),
            ),
        }
    }

    /// Step 2, no transaction open: the call to Prom.
    async fn call(&self, claim: &Claim) -> Result<SetStatusResponse, PromError> {
        let request = SetStatusRequest {
            ids: vec![claim.prom_id],
            status: claim.status,
            cancellation: claim.cancellation.clone(),
        };
        let creds =
            source::credentials(&claim.shop).map_err(|e| PromError::Invalid(e.to_string()))?;
        // Bounded within the lease, so the order is never taken over while this call may
        // still reach Prom.
        tokio::time::timeout(self.call_limit, self.prom.set_status(&creds, &request))
            .await
            .unwrap_or_else(|_| {
                Err(PromError::Transport(format!(
                    "no answer within {}s",
                    self.call_limit.as_secs()
                )))
            })
    }

    /// Step 3, one short transaction: what Prom answered, and the claim let go.
    async fn record(
        &self,
        msg: &OutboundMessage,
        claim: &Claim,
        answer: Result<SetStatusResponse, PromError>,
    ) -> anyhow::Result<Disposition> {
        let (_local, txn) = self.begin(claim.order_id).await?;
        let log = SyncLog {
            shop_id: claim.shop.id,
            order_id: claim.order_id,
            event_id: &msg.event_id,
        };
        let status = &claim.status;
        let prom_id = claim.prom_id;
        let disposition = match answer {
            Ok(answer) if answer.processed(prom_id) => {
                let detail = if claim.release(&txn).await.context("releasing the claim")? {
                    orders::ActiveModel {
                        id: Set(claim.order_id),
                        remote_status: Set(Some(status.to_string())),
                        // Prom's name for the old status no longer applies; the name of
                        // this one arrives with Prom's next version of the order.
                        remote_status_title: Set(None),
                        last_synced_at: Set(Some(Utc::now())),
                        ..Default::default()
                    }
                    .update(&txn)
                    .await
                    .context("storing the status Prom now has")?;
                    "Prom accepted the status"
                } else {
                    // Our lease ran out and another publisher took the order: it sends
                    // the current status and records what Prom has, not this older call.
                    tracing::warn!("the order's claim was taken over during the call");
                    "Prom accepted the status; another publisher had taken the order over meanwhile"
                };
                if claim.shop.token_rejected_at.is_some() {
                    // The token works again (fixed, then the message requeued).
                    set_token_rejected(&txn, claim.shop.id, false).await?;
                }
                log.write(&txn, Some(status), Outcome::Sent, detail).await?;
                tracing::info!(prom_status = %status, "status sent to Prom");
                if let Some(created_at) = msg.created_at {
                    crate::metrics::outbound_lag(msg.reason.as_str(), created_at);
                }
                Disposition::Done
            }
            Ok(answer) => {
                claim.release(&txn).await.context("releasing the claim")?;
                let mut reason = format!(
                    "Prom answered without order {prom_id} in processed_ids: status not changed"
                );
                if let Some(warning) = &answer.warning_message {
                    reason.push_str(&format!(" (Prom: {warning})"));
                }
                log.write(&txn, Some(status), Outcome::Failed, &reason)
                    .await?;
                Disposition::Retry {
                    reason,
                    after: None,
                }
            }
            Err(e) => {
                if may_have_applied(&e) {
                    claim.expire(&txn).await
                } else {
                    claim.release(&txn).await
                }
                .context("releasing the claim")?;
                let reason = format!("set_status: {e}");
                if let PromError::Unauthorized(_) = e {
                    set_token_rejected(&txn, claim.shop.id, true).await?;
                    tracing::warn!("Prom rejected the shop's token; shop flagged");
                }
                log.write(&txn, Some(status), Outcome::Failed, &reason)
                    .await?;
                if e.is_transient() {
                    Disposition::Retry {
                        after: e.retry_after(),
                        reason,
                    }
                } else {
                    Disposition::Dead { reason }
                }
            }
        };
        // A failed commit after Prom accepted means one more `set_status` with the same
        // status on the retry: harmless, and the final state is right.
        txn.commit().await.context("committing the publish")?;
        Ok(disposition)
    }

    async fn settle_without_sending(
        &self,
        txn: DatabaseTransaction,
        log: &SyncLog<'_>,
        decision: Decision,
    ) -> anyhow::Result<Disposition> {
        match decision {
            Decision::NotImported => {}
            Decision::NotMapped => {
                log.write(
                    &txn,
                    None,
                    Outcome::Skipped,
                    "the order's status has no outbound mapping: not sent",
                )
                .await?;
            }
            Decision::AlreadyThere(status) => {
                log.write(
                    &txn,
                    Some(&status),
                    Outcome::Skipped,
                    &format!("Prom already has {status}: not sent again"),
                )
                .await?;
            }
            Decision::WaitForWriteOff => {
                log.write(
                    &txn,
                    Some(&PromStatus::Delivered),
                    Outcome::Deferred,
                    "delivered is sent once the goods are written off",
                )
                .await?;
            }
            Decision::Send(_) => unreachable!("handled by the caller"),
        }
        txn.commit().await.context("committing the sync log")?;
        Ok(Disposition::Done)
    }

    /// Begins one of the short transactions of `order_id`, holding the order's lock: a
    /// PostgreSQL advisory lock (every process), elsewhere an in-process lock (SQLite has
    /// one process doing all the work). The guard comes first so the transaction ends
    /// before it is dropped.
    async fn begin(
        &self,
        order_id: i64,
    ) -> anyhow::Result<(Option<MutexGuard<'_, ()>>, DatabaseTransaction)> {
        let local = if self.db.get_database_backend() == DbBackend::Postgres {
            None
        } else {
            let stripe = order_id.unsigned_abs() as usize % LOCAL_LOCK_STRIPES;
            Some(self.local_locks[stripe].lock().await)
        };
        let txn = self
            .db
            .begin()
            .await
            .context("starting a publish transaction")?;
        lock_order(&txn, order_id)
            .await
            .context("taking the order's publish lock")?;
        Ok((local, txn))
    }
}

/// An imported order, its shop and its Prom id as text.
struct Imported {
    order: orders::Model,
    shop: shops::Model,
    external_id: String,
}

/// The order `order_id` with its shop; `None` (nothing to send, said in the log) when the
/// order or its shop no longer exists or the order was not imported from Prom.
async fn load_imported(
    txn: &DatabaseTransaction,
    order_id: i64,
) -> anyhow::Result<Option<Imported>> {
    let Some(order) = orders::Entity::find_by_id(order_id)
        .one(txn)
        .await
        .context("loading the order")?
    else {
        tracing::info!("order no longer exists: nothing to send");
        return Ok(None);
    };
    let (Some(shop_id), Some(external_id)) = (order.shop_id, order.external_id.clone()) else {
        tracing::info!("not an imported order: nothing to send");
        return Ok(None);
    };
    let Some(shop) = shops::Entity::find_by_id(shop_id)
        .one(txn)
        .await
        .context("loading the shop")?
    else {
        tracing::info!("the order's shop no longer exists: nothing to send");
        return Ok(None);
    };
    Ok(Some(Imported {
        order,
        shop,
        external_id,
    }))
}

/// A disabled shop's message: recorded as skipped, nothing sent.
async fn skip_disabled_shop<C>(
    txn: DatabaseTransaction,
    log: &SyncLog<'_>,
) -> anyhow::Result<Step<C>> {
    log.write(&txn, None, Outcome::Skipped, "shop is disabled: not sent")
        .await?;
    txn.commit().await.context("committing the sync log")?;
    Ok(Step::Settled(Disposition::Done))
}

/// Failures after which Prom may show the status anyway: the request may have been
/// applied before the answer went wrong. Every other failure says nothing changed.
fn may_have_applied(e: &PromError) -> bool {
    matches!(
        e,
        PromError::Server(_) | PromError::Transport(_) | PromError::Malformed(_)
    )
}

/// Whether `claim` was for `status` (Prom spells some statuses two ways).
fn claimed(claim: &outbound_claims::Model, status: &PromStatus) -> bool {
    claim.prom_status.parse::<PromStatus>().ok().as_ref() == Some(status)
}
#[async_trait]
impl Handler for Publisher {
    async fn handle(&self, payload: &[u8], attempt: u32) -> Disposition {
        match serde_json::from_slice::<OutboundMessage>(payload) {
            Ok(msg) => self.publish(msg, attempt).await,
            Err(e) => Disposition::Dead {
                reason: format!("undecodable outbound message: {e}"),
            },
        }
    }
}

/// Where one message's attempts are written.
struct SyncLog<'a> {
    shop_id: i64,
    order_id: i64,
    event_id: &'a str,
}

impl SyncLog<'_> {
    async fn write(
        &self,
        txn: &DatabaseTransaction,
        status: Option<&PromStatus>,
        outcome: Outcome,
        detail: &str,
    ) -> anyhow::Result<()> {
        outbound_sync_log::ActiveModel {
            shop_id: Set(self.shop_id),
            order_id: Set(self.order_id),
            event_id: Set(Some(self.event_id.to_owned())),
            prom_status: Set(status.map(ToString::to_string)),
            outcome: Set(outcome),
            detail: Set(Some(detail.to_owned())),
            at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(txn)
        .await
        .context("writing the outbound sync log")?;
        Ok(())
    }
}

async fn set_token_rejected(
    txn: &DatabaseTransaction,
    shop_id: i64,
    rejected: bool,
) -> anyhow::Result<()> {
    crate::db::flag_token_rejected(txn, shop_id, rejected)
        .await
        .context("flagging the shop's token")
}

/// Serializes publishing per order across processes (other databases rely on the
/// in-process lock taken by the caller).
async fn lock_order(txn: &DatabaseTransaction, order_id: i64) -> Result<(), sea_orm::DbErr> {
    crate::db::advisory_xact_lock(txn, &format!("outbound:{order_id}")).await
}
