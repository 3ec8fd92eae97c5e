//! The Prom publisher: consumes the outbound lane and makes Prom show each order's current
//! mapped status (ARCHITECTURE.md, 'From RO App back to Prom').
//!
//! Per message, in one database transaction: take the order's publish lock (so two
//! messages of one order, in this process or another, never talk to Prom at once), re-read
//! the order, decide ([`super::evaluate`]), call `set_status` if needed, then store what
//! Prom now has (`remote_status`) and the attempt on the outbound sync log. Because the
//! next message of the same order waits for that commit, it sees Prom's new status and
//! sends nothing twice. The lock is held across the Prom call on purpose; it is an
//! advisory lock, so the API and the importer keep writing the order meanwhile.
//!
//! Failures are sorted like the importer's: 429/5xx/network → delayed retry (honouring
//! `Retry-After`), Prom not listing the order in `processed_ids` → retry, 401/403 → the
//! shop is flagged "token rejected" and the message dead-lettered (requeue it once the
//! token is fixed), other refusals → dead letter. Every attempt is on the sync log.

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use entity::{orders, outbound_sync_log, shops};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, Set,
    TransactionTrait,
};

use super::{evaluate, Decision, OutboundError, OutboundMessage};
use crate::{
    broker::{Disposition, Handler},
    config::Settings,
    domain::Outcome,
    poll::source,
    prom::{
        client::{CancellationReason, PromClient, PromError, SetStatusRequest},
        order::PromStatus,
    },
};

/// Stripes of the in-process order lock used where the database has no advisory locks
/// (SQLite, where one process does all the work).
const LOCAL_LOCK_STRIPES: usize = 64;

pub struct Publisher {
    db: DatabaseConnection,
    prom: PromClient,
    cancellation_text: String,
    local_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Publisher {
    pub fn new(db: DatabaseConnection, prom: PromClient, settings: &Settings) -> Self {
        Self {
            db,
            prom,
            cancellation_text: settings.prom_cancellation_text.trim().to_owned(),
            local_locks: (0..LOCAL_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    #[tracing::instrument(
        name = "outbound_message",
        skip_all,
        fields(event_id = %msg.event_id, order_id = msg.order_id, shop_id = msg.shop_id, reason = msg.reason.as_str(), attempt = attempt)
    )]
    async fn publish(&self, msg: OutboundMessage, attempt: u32) -> Disposition {
        let _local = if self.db.get_database_backend() == DbBackend::Postgres {
            None
        } else {
            let stripe = msg.order_id.unsigned_abs() as usize % LOCAL_LOCK_STRIPES;
            Some(self.local_locks[stripe].lock().await)
        };
        match self.try_publish(&msg).await {
            Ok(disposition) => disposition,
            Err(e) => Disposition::Retry {
                reason: format!("{e:#}"),
                after: None,
            },
        }
    }

    async fn try_publish(&self, msg: &OutboundMessage) -> anyhow::Result<Disposition> {
        let txn = self
            .db
            .begin()
            .await
            .context("starting the publish transaction")?;
        lock_order(&txn, msg.order_id)
            .await
            .context("taking the order's publish lock")?;
        let Some(order) = orders::Entity::find_by_id(msg.order_id)
            .one(&txn)
            .await
            .context("loading the order")?
        else {
            tracing::info!("order no longer exists: nothing to send");
            return Ok(Disposition::Done);
        };
        let (Some(shop_id), Some(external_id)) = (order.shop_id, order.external_id.clone()) else {
            tracing::info!("not an imported order: nothing to send");
            return Ok(Disposition::Done);
        };
        let Some(shop) = shops::Entity::find_by_id(shop_id)
            .one(&txn)
            .await
            .context("loading the shop")?
        else {
            tracing::info!("the order's shop no longer exists: nothing to send");
            return Ok(Disposition::Done);
        };
        let log = SyncLog {
            shop_id,
            order_id: order.id,
            event_id: &msg.event_id,
        };
        if !shop.enabled {
            log.write(&txn, None, Outcome::Skipped, "shop is disabled: not sent")
                .await?;
            txn.commit().await.context("committing the sync log")?;
            return Ok(Disposition::Done);
        }
        let status = match evaluate(&txn, &order).await {
            Ok(Decision::Send(status)) => status,
            Ok(decision) => return self.settle_without_sending(txn, &log, decision).await,
            Err(OutboundError::Db(e)) => return Err(e).context("reading the status mapping"),
            Err(e @ OutboundError::BadMapping { .. }) => {
                log.write(&txn, None, Outcome::Failed, &e.to_string())
                    .await?;
                txn.commit().await.context("committing the sync log")?;
                return Ok(Disposition::Dead {
                    reason: e.to_string(),
                });
            }
        };
        let Ok(prom_id) = external_id.parse::<i64>() else {
            let reason = format!("external id {external_id:?} is not a Prom order id");
            log.write(&txn, Some(&status), Outcome::Failed, &reason)
                .await?;
            txn.commit().await.context("committing the sync log")?;
            return Ok(Disposition::Dead { reason });
        };
        let request = SetStatusRequest {
            ids: vec![prom_id],
            status,
            cancellation: (status == PromStatus::Canceled).then(|| {
                (
                    CancellationReason::Another,
                    Some(self.cancellation_text.clone()),
                )
            }),
        };
        let answer = match source::credentials(&shop).map_err(|e| PromError::Invalid(e.to_string()))
        {
            Ok(creds) => self.prom.set_status(&creds, &request).await,
            Err(e) => Err(e),
        };
        let disposition = match answer {
            Ok(answer) if answer.processed(prom_id) => {
                orders::ActiveModel {
                    id: Set(order.id),
                    remote_status: Set(Some(status.to_string())),
                    last_synced_at: Set(Some(Utc::now())),
                    ..Default::default()
                }
                .update(&txn)
                .await
                .context("storing the status Prom now has")?;
                if shop.token_rejected_at.is_some() {
                    // The token works again (fixed, then the message requeued).
                    set_token_rejected(&txn, shop.id, false).await?;
                }
                log.write(
                    &txn,
                    Some(&status),
                    Outcome::Sent,
                    "Prom accepted the status",
                )
                .await?;
                tracing::info!(prom_status = %status, "status sent to Prom");
                Disposition::Done
            }
            Ok(_) => {
                let reason = format!(
                    "Prom answered without order {prom_id} in processed_ids: status not changed"
                );
                log.write(&txn, Some(&status), Outcome::Failed, &reason)
                    .await?;
                Disposition::Retry {
                    reason,
                    after: None,
                }
            }
            Err(e) => {
                let reason = format!("set_status: {e}");
                if let PromError::Unauthorized(_) = e {
                    set_token_rejected(&txn, shop.id, true).await?;
                    tracing::warn!("Prom rejected the shop's token; shop flagged");
                }
                log.write(&txn, Some(&status), Outcome::Failed, &reason)
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
            outcome: Set(outcome.as_str().to_owned()),
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
    source::flag_token_rejected(txn, shop_id, rejected)
        .await
        .context("flagging the shop's token")
}

/// Serializes publishing per order across processes (other databases rely on the
/// in-process lock taken by the caller).
async fn lock_order(txn: &DatabaseTransaction, order_id: i64) -> Result<(), sea_orm::DbErr> {
    crate::db::advisory_xact_lock(txn, &format!("outbound:{order_id}")).await
}
