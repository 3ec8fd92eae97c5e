//! Changing an order's status and writing off its goods: for an imported order, what goes
//! to Prom is decided and recorded in the same transaction as the change (an outbox row,
//! or a deferral: ARCHITECTURE.md, 'Delivered waits for the write-off').

use chrono::{DateTime, Utc};
use entity::{order_items, orders, outbound_sync_log};
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{account_status, find_order, require_for_synced, views::view, OrderView};
use crate::{
    outbound::{self, Decision, OutboxReason},
    prom::order::PromStatus,
    service::{Caller, ServiceResult, Services},
};

/// What became of the Prom side of a status change (ARCHITECTURE.md,
/// 'Status changes reach Prom').
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outbound {
    /// An outbox row will carry the change to Prom (the order's mapped status, or its
    /// waybill).
    Queued,
    /// Maps to Prom `delivered`, which waits until the goods are written off (see
    /// ARCHITECTURE.md, 'Delivered waits for the write-off').
    DeferredUntilWriteOff,
    /// The shop's outbound mapping has no Prom status for the new status.
    NotMapped,
    /// Nothing goes to Prom (an RO App order, or nothing to send).
    None,
}

impl Outbound {
    pub fn as_str(self) -> &'static str {
        match self {
            Outbound::Queued => "queued",
            Outbound::DeferredUntilWriteOff => "deferred_until_write_off",
            Outbound::NotMapped => "not_mapped",
            Outbound::None => "none",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChanged {
    pub order: OrderView,
    pub outbound: Outbound,
}

/// Decides and records, inside the status change's transaction, what goes to Prom. The
/// rules live in `outbound` (the publisher applies the same ones when it sends).
async fn outbound_for_status(
    txn: &DatabaseTransaction,
    order: &orders::Model,
    now: DateTime<Utc>,
) -> ServiceResult<Outbound> {
    let decision = outbound::evaluate(txn, order)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(match decision {
        Decision::NotImported | Decision::AlreadyThere(_) => Outbound::None,
        Decision::NotMapped => Outbound::NotMapped,
        Decision::WaitForWriteOff => {
            outbound_sync_log::ActiveModel {
                shop_id: Set(order.shop_id.unwrap_or_default()),
                order_id: Set(order.id),
                event_id: Set(None),
                prom_status: Set(Some(PromStatus::Delivered.to_string())),
                outcome: Set(crate::domain::Outcome::Deferred),
                detail: Set(Some(
                    "Prom `delivered` is sent once the order's goods are written off".into(),
                )),
                at: Set(now),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            Outbound::DeferredUntilWriteOff
        }
        Decision::Send(_) => {
            outbound::enqueue_status_change(txn, order, OutboxReason::StatusChanged).await?;
            Outbound::Queued
        }
    })
}

/// Changes an order's status and decides, in the same transaction, what goes to Prom.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn set_status(
    services: &Services,
    caller: &Caller,
    id: i64,
    status_id: i64,
) -> ServiceResult<StatusChanged> {
    let now = services.clock.now();
    let txn = services.db.begin().await?;
    let order = find_order(&txn, caller.account_id, id, true).await?;
    require_for_synced(caller, &order, "changing the status of an imported order")?;
    let status = account_status(&txn, caller.account_id, status_id).await?;
    let mut update: orders::ActiveModel = order.into();
    update.status_id = Set(status.id);
    update.updated_at = Set(now);
    let order = update.update(&txn).await?;
    let outbound = outbound_for_status(&txn, &order, now).await?;
    txn.commit().await?;
    crate::metrics::outbound(outbound.as_str());
    tracing::Span::current().record("outbound", outbound.as_str());
    tracing::info!(status_id = status.id, "status changed");
    let order = view(&services.db, caller.account_id, order).await?;
    Ok(StatusChanged { order, outbound })
}

/// Writes off an order's goods, queueing a Prom `delivered` that waited for it.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn write_off_goods(
    services: &Services,
    caller: &Caller,
    id: i64,
) -> ServiceResult<StatusChanged> {
    let now = services.clock.now();
    let txn = services.db.begin().await?;
    let order = find_order(&txn, caller.account_id, id, true).await?;
    require_for_synced(caller, &order, "writing off the goods of an imported order")?;
    let mut outbound = Outbound::None;
    let order = if order.written_off_at.is_some() {
        order
    } else {
        let mut update: orders::ActiveModel = order.into();
        update.written_off_at = Set(Some(now));
        update.updated_at = Set(now);
        let order = update.update(&txn).await?;
        order_items::Entity::update_many()
            .col_expr(order_items::Column::WrittenOff, Expr::value(true))
            .filter(order_items::Column::OrderId.eq(order.id))
            .exec(&txn)
            .await?;
        // 'Delivered waits for the write-off': a `delivered` held back for the write-off
        // goes now.
        let decision = outbound::evaluate(&txn, &order)
            .await
            .map_err(anyhow::Error::from)?;
        if decision == Decision::Send(PromStatus::Delivered) {
            outbound::enqueue_status_change(&txn, &order, OutboxReason::WrittenOff).await?;
            outbound = Outbound::Queued;
        }
        order
    };
    txn.commit().await?;
    crate::metrics::outbound(outbound.as_str());
    tracing::Span::current().record("outbound", outbound.as_str());
    tracing::info!("goods written off");
    let order = view(&services.db, caller.account_id, order).await?;
    Ok(StatusChanged { order, outbound })
}
