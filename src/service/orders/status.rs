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
    prom::{
        client::{CancellationReason, UnknownReason},
        order::PromStatus,
    },
    service::{Caller, ServiceError, ServiceResult, Services},
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

/// Longest cancellation text accepted, in characters.
const MAX_CANCELLATION_TEXT: usize = 500;

/// A cancellation's reason and text as a status change request spells them; both may be
/// left out (then promsync's default reason and text go to Prom).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancellationRequest {
    pub reason: Option<String>,
    pub text: Option<String>,
}

/// A cancellation Prom takes: one of its reasons, with a text where that reason needs one
/// (ARCHITECTURE.md, 'Canceled carries a reason').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub reason: CancellationReason,
    /// One line, at most 500 characters.
    pub text: Option<String>,
}

impl CancellationRequest {
    /// The cancellation asked for, if any, or a refusal naming the field.
    pub fn parse(self) -> ServiceResult<Option<Cancellation>> {
        let text = self
            .text
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        if let Some(text) = &text {
            if text.chars().any(char::is_control) {
                return Err(ServiceError::Invalid(
                    "`cancellation_text` must be one line without control characters".into(),
                ));
            }
            if text.chars().count() > MAX_CANCELLATION_TEXT {
                return Err(ServiceError::Invalid(format!(
                    "`cancellation_text` must be at most {MAX_CANCELLATION_TEXT} characters"
                )));
            }
        }
        let Some(reason) = self.reason else {
            return match text {
                Some(_) => Err(ServiceError::Invalid(
                    "`cancellation_text` needs a `cancellation_reason`".into(),
                )),
                None => Ok(None),
            };
        };
        let reason: CancellationReason = reason.parse().map_err(|e: UnknownReason| {
            ServiceError::Invalid(format!("`cancellation_reason`: {e}"))
        })?;
        if reason.requires_text() && text.is_none() {
            return Err(ServiceError::Invalid(format!(
                "`cancellation_reason` `{}` needs a `cancellation_text`, as Prom requires",
                reason.as_str()
            )));
        }
        Ok(Some(Cancellation { reason, text }))
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

/// Changes an order's status and decides, in the same transaction, what goes to Prom. A
/// cancellation reason and text may come with a status sent to Prom as `canceled`; they
/// are kept on the order (what is sent is decided from its state) and cleared by a
/// change without them.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn set_status(
    services: &Services,
    caller: &Caller,
    id: i64,
    status_id: i64,
    cancellation: CancellationRequest,
) -> ServiceResult<StatusChanged> {
    let now = services.clock.now();
    let txn = services.db.begin().await?;
    let order = find_order(&txn, caller.account_id, id, true).await?;
    require_for_synced(caller, &order, "changing the status of an imported order")?;
    let status = account_status(&txn, caller.account_id, status_id).await?;
    let cancellation = cancellation.parse()?;
    let mut update: orders::ActiveModel = order.into();
    update.status_id = Set(status.id);
    update.updated_at = Set(now);
    update.cancellation_reason = Set(cancellation.as_ref().map(|c| c.reason.as_str().to_owned()));
    update.cancellation_text = Set(cancellation.as_ref().and_then(|c| c.text.clone()));
    let order = update.update(&txn).await?;
    if cancellation.is_some() {
        let decision = outbound::evaluate(&txn, &order)
            .await
            .map_err(anyhow::Error::from)?;
        if !matches!(
            decision,
            Decision::Send(PromStatus::Canceled) | Decision::AlreadyThere(PromStatus::Canceled)
        ) {
            // Dropping the transaction undoes the change.
            return Err(ServiceError::Invalid(
                "`cancellation_reason` goes only with a status the shop sends to Prom as \
                 `canceled`"
                    .into(),
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(reason: Option<&str>, text: Option<&str>) -> ServiceResult<Option<Cancellation>> {
        CancellationRequest {
            reason: reason.map(str::to_owned),
            text: text.map(str::to_owned),
        }
        .parse()
    }

    #[test]
    fn a_cancellation_is_a_prom_reason_with_a_text_where_prom_needs_one() {
        assert_eq!(asked(None, None).unwrap(), None);
        assert_eq!(asked(None, Some("  ")).unwrap(), None);
        assert_eq!(
            asked(Some("duplicate"), None).unwrap(),
            Some(Cancellation {
                reason: CancellationReason::Duplicate,
                text: None
            })
        );
        assert_eq!(
            asked(Some("another"), Some(" Покупець передумав ")).unwrap(),
            Some(Cancellation {
                reason: CancellationReason::Another,
                text: Some("Покупець передумав".into())
            })
        );
    }

    #[test]
    fn a_bad_cancellation_is_refused_naming_the_field() {
        let long = "x".repeat(MAX_CANCELLATION_TEXT + 1);
        for (reason, text, field) in [
            (Some("bored"), None, "`cancellation_reason`"),
            (Some("another"), None, "`cancellation_text`"),
            (Some("price_changed"), Some(" "), "`cancellation_text`"),
            (None, Some("why"), "`cancellation_reason`"),
            (Some("duplicate"), Some("two\nlines"), "`cancellation_text`"),
            (
                Some("duplicate"),
                Some(long.as_str()),
                "`cancellation_text`",
            ),
        ] {
            let refused = asked(reason, text).unwrap_err().to_string();
            assert!(refused.contains(field), "{reason:?} {text:?}: {refused}");
        }
    }
}
