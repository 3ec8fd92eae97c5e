//! Setting an order's waybill (ARCHITECTURE.md, 'Waybills reach Prom'): stored on the
//! order at once, and for an imported order an outbox row in the same transaction carries
//! it to Prom. Permission and tenancy are those of a status change.

use entity::orders;
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};
use serde::Serialize;
use utoipa::ToSchema;

use super::{find_order, require_for_synced, views::view, OrderView, Outbound};
use crate::{
    domain::waybill::Waybill,
    outbound,
    service::{Caller, ServiceResult, Services},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct WaybillSet {
    pub order: OrderView,
    /// `queued` when the waybill goes to Prom; `none` for an order not imported from
    /// Prom, or when Prom already has exactly this waybill.
    pub outbound: Outbound,
}

/// Stores `waybill` on order `id` and, for an imported order, queues it for Prom in the
/// same transaction. The latest waybill wins: the publisher sends whatever the order holds.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn set_waybill(
    services: &Services,
    caller: &Caller,
    id: i64,
    waybill: Waybill,
) -> ServiceResult<WaybillSet> {
    let now = services.clock.now();
    let txn = services.db.begin().await?;
    let order = find_order(&txn, caller.account_id, id, true).await?;
    require_for_synced(caller, &order, "setting the waybill of an imported order")?;
    let mut update: orders::ActiveModel = order.into();
    update.waybill_number = Set(Some(waybill.number.to_string()));
    update.waybill_carrier = Set(Some(waybill.carrier));
    update.delivery_declaration_number = Set(Some(waybill.number.to_string()));
    update.updated_at = Set(now);
    let order = update.update(&txn).await?;
    let outbound = if order.pending_waybill().is_some()
        && outbound::enqueue_waybill(&txn, &order).await?.is_some()
    {
        Outbound::Queued
    } else {
        Outbound::None
    };
    txn.commit().await?;
    tracing::Span::current().record("outbound", outbound.as_str());
    tracing::info!(carrier = %waybill.carrier, "waybill set");
    let order = view(&services.db, caller.account_id, order).await?;
    Ok(WaybillSet { order, outbound })
}
