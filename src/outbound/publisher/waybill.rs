//! Sending an order's waybill to Prom (ARCHITECTURE.md, 'Waybills reach Prom'), in the
//! publisher's three steps: a short transaction decides and claims, the call runs with
//! no transaction open, a short transaction records Prom's answer.
//!
//! State-based like statuses: the message names the order, and the publisher sends the
//! order's waybill as it is *now* unless Prom already took exactly that one
//! (`orders.waybill_sent_*`), so the latest number wins and a redelivered message sends
//! nothing. The claim lives in the order's row (`waybill_claim_id`, `waybill_claimed_until`):
//! while it is held other messages of the order wait, so two numbers never reach Prom at
//! once. Claiming also forgets what Prom took: from then on the outcome is unknown until
//! recorded, so a publisher dying mid-call (or a commit failing after the call) leads to
//! one more send of the current number, never to trusting an old one. Sending a number
//! Prom already has is harmless: Prom answers that it is already on the order, which the
//! client reads as success.
//!
//! Prom refusing a waybill (a 200 with `status: "error"`) is retried like a 5xx, not
//! dead-lettered at once: Prom checks the number with the carrier, and a waybill made
//! minutes ago may not be known there yet. The attempts are bounded by the lane's retry
//! limit, after which the message is a dead letter with Prom's last message.

use anyhow::Context;
use chrono::Utc;
use entity::{orders, shops};
use sea_orm::{
    sea_query::Expr, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
};

use super::{
    load_imported, set_token_rejected, skip_disabled_shop, Imported, Publisher, Step, SyncLog,
};
use crate::{
    broker::Disposition,
    domain::{waybill::Waybill, Outcome},
    outbound::OutboundMessage,
    prom::{client::PromError, source},
};

/// A waybill this publisher has claimed the order for.
struct WaybillClaim {
    id: String,
    order_id: i64,
    shop: shops::Model,
    prom_id: i64,
    waybill: Waybill,
}

impl WaybillClaim {
    /// Lets the claim go; with `taken`, also records that Prom has this claim's waybill.
    /// `false` when the claim is no longer ours (then nothing is recorded).
    async fn release<C: ConnectionTrait>(&self, db: &C, taken: bool) -> Result<bool, DbErr> {
        let mut update = orders::Entity::update_many()
            .col_expr(orders::Column::WaybillClaimId, Expr::value(None::<String>))
            .col_expr(
                orders::Column::WaybillClaimedUntil,
                Expr::value(None::<chrono::DateTime<Utc>>),
            );
        if taken {
            update = update
                .col_expr(
                    orders::Column::WaybillSentNumber,
                    Expr::value(self.waybill.number.as_str()),
                )
                .col_expr(
                    orders::Column::WaybillSentCarrier,
                    Expr::value(self.waybill.carrier.as_str()),
                )
                .col_expr(orders::Column::LastSyncedAt, Expr::value(Utc::now()));
        }
        let updated = update
            .filter(orders::Column::Id.eq(self.order_id))
            .filter(orders::Column::WaybillClaimId.eq(self.id.as_str()))
            .exec(db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    fn describe(&self) -> String {
        format!("waybill {} ({})", self.waybill.number, self.waybill.carrier)
    }
}

impl Publisher {
    pub(super) async fn try_publish_waybill(
        &self,
        msg: &OutboundMessage,
    ) -> anyhow::Result<Disposition> {
        let claim = match self.claim_when_free(|| self.decide_waybill(msg)).await? {
            Ok(claim) => claim,
            Err(disposition) => return Ok(disposition),
        };
        let answer = self.send_waybill(&claim).await;
        match self.record_waybill(msg, &claim, answer).await {
            Ok(disposition) => Ok(disposition),
            Err(e) => {
                // Prom may have taken it; what it took is already forgotten, so freeing
                // the order now only means the current number is sent once more.
                if let Err(release) = claim.release(&self.db, false).await {
                    tracing::warn!(error = %release, "could not free the order's waybill claim: it runs out with its lease");
                }
                Err(e)
            }
        }
    }

    /// Step 1: the waybill Prom should get now, and the claim to send it.
    async fn decide_waybill(&self, msg: &OutboundMessage) -> anyhow::Result<Step<WaybillClaim>> {
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
        if order.waybill_claimed_until.is_some_and(|until| until > now) {
            tracing::debug!("another publisher is sending this order's waybill: waiting");
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
        let Some((number, carrier)) = order.pending_waybill() else {
            if let (Some(number), Some(carrier)) = (&order.waybill_number, order.waybill_carrier) {
                let detail =
                    format!("Prom already has waybill {number} ({carrier}): not sent again");
                log.write(&txn, None, Outcome::Skipped, &detail).await?;
                txn.commit().await.context("committing the sync log")?;
            }
            return Ok(Step::Settled(Disposition::Done));
        };
        let waybill = Waybill::parse(number, carrier.as_str());
        let (waybill, prom_id) = match (waybill, external_id.parse::<i64>()) {
            (Ok(waybill), Ok(prom_id)) => (waybill, prom_id),
            (Err(e), _) => {
                return self
                    .give_up(txn, &log, format!("stored waybill: {e}"))
                    .await
            }
            (_, Err(_)) => {
                let reason = format!("external id {external_id:?} is not a Prom order id");
                return self.give_up(txn, &log, reason).await;
            }
        };
        let claim = WaybillClaim {
            id: uuid::Uuid::new_v4().to_string(),
            order_id: order.id,
            shop,
            prom_id,
            waybill,
        };
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        // Taking the claim forgets what Prom took: see the module's comment.
        let claimed = orders::Entity::update_many()
            .col_expr(
                orders::Column::WaybillClaimId,
                Expr::value(claim.id.clone()),
            )
            .col_expr(orders::Column::WaybillClaimedUntil, Expr::value(until))
            .col_expr(
                orders::Column::WaybillSentNumber,
                Expr::value(None::<String>),
            )
            .col_expr(
                orders::Column::WaybillSentCarrier,
                Expr::value(None::<String>),
            )
            .filter(orders::Column::Id.eq(order.id))
            .filter(
                Condition::any()
                    .add(orders::Column::WaybillClaimedUntil.is_null())
                    .add(orders::Column::WaybillClaimedUntil.lte(now)),
            )
            .exec(&txn)
            .await
            .context("claiming the order's waybill")?;
        if claimed.rows_affected != 1 {
            return Ok(Step::Busy);
        }
        txn.commit().await.context("committing the waybill claim")?;
        Ok(Step::Send(Box::new(claim)))
    }

    /// A waybill that can never be sent: recorded as failed, and a dead letter.
    async fn give_up(
        &self,
        txn: sea_orm::DatabaseTransaction,
        log: &SyncLog<'_>,
        reason: String,
    ) -> anyhow::Result<Step<WaybillClaim>> {
        log.write(&txn, None, Outcome::Failed, &reason).await?;
        txn.commit().await.context("committing the sync log")?;
        Ok(Step::Settled(Disposition::Dead { reason }))
    }

    /// Step 2, no transaction open: the call to Prom, bounded within the lease.
    async fn send_waybill(&self, claim: &WaybillClaim) -> Result<(), PromError> {
        let creds =
            source::credentials(&claim.shop).map_err(|e| PromError::Invalid(e.to_string()))?;
        tokio::time::timeout(
            self.call_limit,
            self.prom
                .save_declaration(&creds, claim.prom_id, &claim.waybill),
        )
        .await
        .unwrap_or_else(|_| {
            Err(PromError::Transport(format!(
                "no answer within {}s",
                self.call_limit.as_secs()
            )))
        })
    }

    /// Step 3: what Prom answered, and the claim let go.
    async fn record_waybill(
        &self,
        msg: &OutboundMessage,
        claim: &WaybillClaim,
        answer: Result<(), PromError>,
    ) -> anyhow::Result<Disposition> {
        let (_local, txn) = self.begin(claim.order_id).await?;
        let log = SyncLog {
            shop_id: claim.shop.id,
            order_id: claim.order_id,
            event_id: &msg.event_id,
        };
        let disposition = match answer {
            Ok(()) => {
                let ours = claim
                    .release(&txn, true)
                    .await
                    .context("recording the waybill Prom took")?;
                let detail = if ours {
                    format!("Prom took {}", claim.describe())
                } else {
                    // Our lease ran out and another publisher took the order over: it
                    // sends the current waybill and records what Prom has.
                    tracing::warn!("the order's waybill claim was taken over during the call");
                    format!(
                        "Prom took {}; another publisher had taken the order over meanwhile",
                        claim.describe()
                    )
                };
                if claim.shop.token_rejected_at.is_some() {
                    set_token_rejected(&txn, claim.shop.id, false).await?;
                }
                log.write(&txn, None, Outcome::Sent, &detail).await?;
                tracing::info!(carrier = %claim.waybill.carrier, "waybill sent to Prom");
                if let Some(created_at) = msg.created_at {
                    crate::metrics::outbound_lag(msg.reason.as_str(), created_at);
                }
                Disposition::Done
            }
            Err(e) => {
                claim
                    .release(&txn, false)
                    .await
                    .context("releasing the waybill claim")?;
                let reason = format!("save_declaration_id of {}: {e}", claim.describe());
                if let PromError::Unauthorized(_) = e {
                    set_token_rejected(&txn, claim.shop.id, true).await?;
                    tracing::warn!("Prom rejected the shop's token; shop flagged");
                }
                log.write(&txn, None, Outcome::Failed, &reason).await?;
                if e.is_transient() || matches!(e, PromError::Api(_)) {
                    Disposition::Retry {
                        after: e.retry_after(),
                        reason,
                    }
                } else {
                    Disposition::Dead { reason }
                }
            }
        };
        txn.commit()
            .await
            .context("committing the waybill publish")?;
        Ok(disposition)
    }
}
