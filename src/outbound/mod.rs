//! Outbound (ARCHITECTURE.md, 'From RO App back to Prom'): status changes and waybills
//! made in RO App reach Prom through a transactional outbox.
//!
//! Whoever changes an imported order's status (or writes its goods off) calls
//! [`enqueue_status_change`] in the same transaction, so the change and the intent to tell
//! Prom commit together. The [`relay::Relay`] publishes committed outbox rows to the
//! broker's outbound lane; the [`publisher::Publisher`] consumes them and sends Prom the
//! order's *current* mapped status. Messages carry no status on purpose: each re-reads the
//! state, so two quick changes cannot reach Prom in the wrong order, and a redelivered or
//! duplicate message finds Prom already up to date and sends nothing.
//!
//! [`evaluate`] is the one decision of what Prom should be told; the REST API can use it
//! to answer what a status change will do (`queued`, `deferred_until_write_off`, …).
//! Waybills go the same way with their own kind of message ([`enqueue_waybill`]): the
//! message names the order, and the publisher sends its current waybill.

pub mod publisher;
pub mod relay;

use chrono::{DateTime, Utc};
use entity::{
    enums::{Direction, OutboxKind},
    orders, outbox, status_mappings,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use serde::{Deserialize, Serialize};

use crate::prom::order::PromStatus;

/// Why an outbox row was written. The publisher treats both alike (it sends the current
/// state); the reason is kept for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxReason {
    /// An employee changed the order's status.
    StatusChanged,
    /// The order's goods were written off: a deferred `delivered` may go now
    /// ('Delivered waits for the write-off').
    WrittenOff,
    /// An employee set the order's waybill.
    WaybillSet,
    /// A reason this version does not know (written by a newer one): handled the same way.
    #[serde(other)]
    Other,
}

impl OutboxReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxReason::StatusChanged => "status_changed",
            OutboxReason::WrittenOff => "written_off",
            OutboxReason::WaybillSet => "waybill_set",
            OutboxReason::Other => "other",
        }
    }
}

/// The outbox row's payload: what happened to which order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxPayload {
    pub order_id: i64,
    pub shop_id: i64,
    pub account_id: i64,
    pub reason: OutboxReason,
}

/// One message of the outbound lane: the outbox payload plus the event id (from the outbox
/// row id) that ties every attempt on the sync log to the change that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub event_id: String,
    pub order_id: i64,
    pub shop_id: i64,
    pub account_id: i64,
    pub reason: OutboxReason,
    /// What to bring up to date on Prom; messages from before waybills carry none and
    /// are status messages.
    #[serde(default = "status_kind")]
    pub kind: OutboxKind,
    /// When the outbox row was written (the change in RO App), for the outbound lag;
    /// absent in messages of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

fn status_kind() -> OutboxKind {
    OutboxKind::OrderStatus
}

impl OutboundMessage {
    /// The event id of outbox row `id`; also the broker message id.
    pub fn event_id_for(outbox_id: i64) -> String {
        format!("outbox-{outbox_id}")
    }
}

/// Records in `txn` that Prom must hear about `order`'s current state. Returns the outbox
/// row id, or `None` for an order that was not imported from Prom (nothing to tell).
///
/// Call it in the transaction that changed the status or wrote the goods off, so the
/// change and the message commit (or roll back) together.
pub async fn enqueue_status_change<C: ConnectionTrait>(
    txn: &C,
    order: &orders::Model,
    reason: OutboxReason,
) -> Result<Option<i64>, DbErr> {
    enqueue(txn, order, OutboxKind::OrderStatus, reason).await
}

/// Records in `txn` that Prom must get `order`'s current waybill, like
/// [`enqueue_status_change`] (call it in the transaction that stored the waybill).
pub async fn enqueue_waybill<C: ConnectionTrait>(
    txn: &C,
    order: &orders::Model,
) -> Result<Option<i64>, DbErr> {
    enqueue(txn, order, OutboxKind::Waybill, OutboxReason::WaybillSet).await
}

async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    order: &orders::Model,
    kind: OutboxKind,
    reason: OutboxReason,
) -> Result<Option<i64>, DbErr> {
    let (Some(shop_id), Some(_)) = (order.shop_id, order.external_id.as_ref()) else {
        return Ok(None);
    };
    let payload = OutboxPayload {
        order_id: order.id,
        shop_id,
        account_id: order.account_id,
        reason,
    };
    let row = outbox::ActiveModel {
        account_id: Set(order.account_id),
        shop_id: Set(shop_id),
        order_id: Set(order.id),
        kind: Set(kind),
        payload: Set(serde_json::to_string(&payload).expect("payload serializes")),
        created_at: Set(Utc::now()),
        published_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(Some(row.id))
}

/// What Prom should be told about an order now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not imported from Prom: nothing to send.
    NotImported,
    /// The order's RO App status has no outbound mapping in its shop.
    NotMapped,
    /// Prom already shows the mapped status ('Prom gets the current status': not sent
    /// again).
    AlreadyThere(PromStatus),
    /// The status maps to `delivered` but the goods are not written off yet
    /// ('Delivered waits for the write-off').
    WaitForWriteOff,
    /// Send this status.
    Send(PromStatus),
}

impl Decision {
    /// The `outbound` word of the status-change API answer
    /// (`POST /api/orders/{id}/status`).
    pub fn api_outcome(&self) -> &'static str {
        match self {
            Decision::NotImported | Decision::AlreadyThere(_) => "none",
            Decision::NotMapped => "not_mapped",
            Decision::WaitForWriteOff => "deferred_until_write_off",
            Decision::Send(_) => "queued",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("outbound mapping of status {status_id} names an unknown Prom status: {reason}")]
    BadMapping { status_id: i64, reason: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Decides what Prom should be told about `order`, reading the shop's outbound mapping.
pub async fn evaluate<C: ConnectionTrait>(
    db: &C,
    order: &orders::Model,
) -> Result<Decision, OutboundError> {
    let (Some(shop_id), Some(_)) = (order.shop_id, order.external_id.as_ref()) else {
        return Ok(Decision::NotImported);
    };
    // Several Prom statuses could name one RO App status; the oldest mapping wins, so the
    // choice is stable.
    let mapped = status_mappings::Entity::find()
        .filter(status_mappings::Column::ShopId.eq(shop_id))
        .filter(status_mappings::Column::Direction.eq(Direction::Outbound))
        .filter(status_mappings::Column::StatusId.eq(order.status_id))
        .order_by_asc(status_mappings::Column::Id)
        .one(db)
        .await?;
    let Some(mapped) = mapped else {
        return Ok(Decision::NotMapped);
    };
    let status: PromStatus =
        mapped
            .prom_status
            .parse()
            .map_err(
                |e: crate::prom::order::UnknownStatus| OutboundError::BadMapping {
                    status_id: order.status_id,
                    reason: e.to_string(),
                },
            )?;
    Ok(decide(order, status))
}

/// The rules once the mapped status is known.
pub fn decide(order: &orders::Model, mapped: PromStatus) -> Decision {
    let remote: Option<PromStatus> = order.remote_status.as_deref().and_then(|s| s.parse().ok());
    if remote.as_ref() == Some(&mapped) {
        return Decision::AlreadyThere(mapped);
    }
    if mapped == PromStatus::Delivered && order.written_off_at.is_none() {
        return Decision::WaitForWriteOff;
    }
    Decision::Send(mapped)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn order(remote: Option<&str>, written_off: bool) -> orders::Model {
        let now = Utc::now();
        orders::Model {
            id: 1,
            account_id: 1,
            number: "338390710".into(),
            shop_id: Some(1),
            external_id: Some("338390710".into()),
            status_id: 3,
            remote_status: remote.map(str::to_owned),
            remote_status_title: None,
            remote_created_at: None,
            remote_modified_at: None,
            last_synced_at: None,
            last_refresh_at: None,
            client_id: None,
            total: Decimal::ZERO,
            currency: "UAH".into(),
            written_off_at: written_off.then_some(now),
            created_at: now,
            updated_at: now,
            delivery_method: None,
            delivery_provider: None,
            delivery_type: None,
            delivery_address: None,
            delivery_recipient_first_name: None,
            delivery_recipient_last_name: None,
            delivery_recipient_phone: None,
            delivery_declaration_number: None,
            delivery_cost: None,
            payment_method: None,
            payment_status: None,
            waybill_number: None,
            waybill_carrier: None,
            waybill_sent_number: None,
            waybill_sent_carrier: None,
            waybill_claim_id: None,
            waybill_claimed_until: None,
            cancellation_reason: None,
            cancellation_text: None,
        }
    }

    #[test]
    fn a_status_prom_already_has_is_not_sent_again() {
        assert_eq!(
            decide(&order(Some("received"), false), PromStatus::Received),
            Decision::AlreadyThere(PromStatus::Received)
        );
        // Prom's other spelling of canceled is the same status.
        assert_eq!(
            decide(&order(Some("cancelled"), false), PromStatus::Canceled),
            Decision::AlreadyThere(PromStatus::Canceled)
        );
    }

    #[test]
    fn delivered_waits_for_the_write_off() {
        assert_eq!(
            decide(&order(Some("received"), false), PromStatus::Delivered),
            Decision::WaitForWriteOff
        );
        assert_eq!(
            decide(&order(Some("received"), true), PromStatus::Delivered),
            Decision::Send(PromStatus::Delivered)
        );
    }

    #[test]
    fn other_statuses_are_sent_whatever_the_write_off() {
        assert_eq!(
            decide(&order(Some("pending"), false), PromStatus::Canceled),
            Decision::Send(PromStatus::Canceled)
        );
        assert_eq!(
            decide(&order(None, false), PromStatus::Custom(137639)),
            Decision::Send(PromStatus::Custom(137639))
        );
    }

    #[test]
    fn outbox_payloads_use_the_wire_names() {
        let payload = OutboxPayload {
            order_id: 5,
            shop_id: 2,
            account_id: 1,
            reason: OutboxReason::WrittenOff,
        };
        assert_eq!(
            serde_json::to_value(&payload).unwrap(),
            serde_json::json!({"order_id": 5, "shop_id": 2, "account_id": 1, "reason": "written_off"})
        );
        let unknown: OutboxPayload = serde_json::from_str(
            r#"{"order_id": 5, "shop_id": 2, "account_id": 1, "reason": "something_new"}"#,
        )
        .unwrap();
        assert_eq!(unknown.reason, OutboxReason::Other);
    }

    #[test]
    fn a_message_from_before_waybills_is_a_status_message() {
        let old: OutboundMessage = serde_json::from_str(
            r#"{"event_id": "outbox-1", "order_id": 5, "shop_id": 2, "account_id": 1, "reason": "status_changed"}"#,
        )
        .unwrap();
        assert_eq!(old.kind, OutboxKind::OrderStatus);
        let waybill: OutboundMessage = serde_json::from_str(
            r#"{"event_id": "outbox-2", "order_id": 5, "shop_id": 2, "account_id": 1, "reason": "waybill_set", "kind": "waybill"}"#,
        )
        .unwrap();
        assert_eq!(waybill.kind, OutboxKind::Waybill);
    }
}
