//! The manual refresh ('Refresh at most every 10 minutes', ARCHITECTURE.md): a thin
//! notification per imported order, so the importer re-fetches it from Prom. Each order
//! passes at most once per 10 minutes, decided by a conditional UPDATE of
//! `last_refresh_at`: only the request whose UPDATE changed the row publishes, whatever
//! replicas race. A publish that fails puts the stamp back, so a broker outage does not
//! burn the 10 minutes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use entity::orders;
use sea_orm::{sea_query::Expr, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;

use super::is_imported;
use crate::{
    broker::InboundMessage,
    domain::{Permission, Source},
    prom::ids::{EventId, ShopId},
    service::{Caller, ServiceError, ServiceResult, Services},
};

/// 'Refresh at most every 10 minutes' (ARCHITECTURE.md): an order is re-fetched from Prom
/// at most this often.
pub const REFRESH_INTERVAL_S: i64 = 600;
/// What a refresh that could not reach the broker suggests as `Retry-After`.
const BROKER_RETRY_AFTER_S: u64 = 5;
/// A bulk refresh names at most this many orders (one Prom fetch each).
const MAX_REFRESH_IDS: usize = 100;

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOutcome {
    /// A thin notification is on its way to the importer, which re-fetches the order.
    Queued,
    /// Refreshed less than 10 minutes ago; see `retry_after_s`.
    TooSoon,
    /// An RO App order: there is nothing to fetch from Prom.
    NotImported,
}

impl RefreshOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Queued => "queued",
            RefreshOutcome::TooSoon => "too_soon",
            RefreshOutcome::NotImported => "not_imported",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResult {
    pub order_id: i64,
    pub result: RefreshOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

/// Seconds until an order stamped at `last` may be refreshed again (at least 1).
fn retry_after(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let ready = last.unwrap_or(now) + Duration::seconds(REFRESH_INTERVAL_S);
    let millis = (ready - now).num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

/// Re-fetches the named orders from Prom, each at most once per 10 minutes
/// (ARCHITECTURE.md); answers every order's result, in the order asked.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, orders = tracing::field::Empty))]
pub async fn refresh_orders(
    services: &Services,
    caller: &Caller,
    order_ids: &[i64],
) -> ServiceResult<Vec<RefreshResult>> {
    // Repeats are forgiven, but a body of tens of thousands of ids is refused before any
    // work; what remains dedupes in linear time, keeping the order asked.
    let too_many = || {
        ServiceError::Invalid(format!(
            "`order_ids` must name 1 to {MAX_REFRESH_IDS} orders"
        ))
    };
    if order_ids.len() > MAX_REFRESH_IDS * 10 {
        return Err(too_many());
    }
    let mut seen = HashSet::with_capacity(order_ids.len());
    let ids: Vec<i64> = order_ids
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect();
    if ids.is_empty() || ids.len() > MAX_REFRESH_IDS {
        return Err(too_many());
    }
    tracing::Span::current().record("orders", ids.len());
    let found: HashMap<i64, orders::Model> = orders::Entity::find()
        .filter(orders::Column::AccountId.eq(caller.account_id))
        .filter(orders::Column::Id.is_in(ids.clone()))
        .all(&services.db)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains_key(id)) {
        return Err(ServiceError::Missing(format!("order {missing} not found")));
    }
    if found.values().any(is_imported) {
        caller.require(
            Permission::GoodsWithoutWriteOff,
            "refreshing an imported order",
        )?;
    }
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let order = &found[&id];
        let result = refresh_one(services, order).await?;
        crate::metrics::refresh(result.result.as_str());
        results.push(result);
    }
    Ok(results)
}

async fn refresh_one(services: &Services, order: &orders::Model) -> ServiceResult<RefreshResult> {
    let result = |result, retry_after_s| RefreshResult {
        order_id: order.id,
        result,
        retry_after_s,
    };
    let prom_order_id = order
        .external_id
        .as_deref()
        .and_then(|id| id.parse::<i64>().ok());
    let shop = order.shop_id.and_then(|id| ShopId::try_from(id).ok());
    let (Some(prom_order_id), Some(shop)) = (prom_order_id, shop) else {
        return Ok(result(RefreshOutcome::NotImported, None));
    };
    let now = services.clock.now();
    let stamped = orders::Entity::update_many()
        .col_expr(orders::Column::LastRefreshAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::AccountId.eq(order.account_id))
        .filter(
            Condition::any()
                .add(orders::Column::LastRefreshAt.is_null())
                .add(
                    orders::Column::LastRefreshAt.lte(now - Duration::seconds(REFRESH_INTERVAL_S)),
                ),
        )
        .exec(&services.db)
        .await?
        .rows_affected;
    if stamped == 0 {
        let last = orders::Entity::find_by_id(order.id)
            .select_only()
            .column(orders::Column::LastRefreshAt)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&services.db)
            .await?
            .flatten();
        return Ok(result(
            RefreshOutcome::TooSoon,
            Some(retry_after(last, now)),
        ));
    }
    let message = InboundMessage {
        event_id: EventId::random(),
        shop_id: shop,
        source: Source::Refresh,
        received_at: now,
        order_id: prom_order_id,
        order: None,
    };
    if let Err(e) = services.broker.publish_inbound(&message).await {
        tracing::warn!(error = %e, order_id = order.id, "refresh not enqueued; stamp undone");
        orders::Entity::update_many()
            .col_expr(
                orders::Column::LastRefreshAt,
                Expr::value(order.last_refresh_at),
            )
            .filter(orders::Column::Id.eq(order.id))
            .filter(orders::Column::LastRefreshAt.eq(now))
            .exec(&services.db)
            .await?;
        return Err(ServiceError::BrokerUnavailable {
            retry_after_s: BROKER_RETRY_AFTER_S,
        });
    }
    tracing::info!(order_id = order.id, event_id = %message.event_id, "refresh queued");
    Ok(result(RefreshOutcome::Queued, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_whole_seconds_up_to_ten_minutes() {
        let now = Utc::now();
        assert_eq!(retry_after(Some(now), now), 600);
        assert_eq!(retry_after(Some(now - Duration::seconds(90)), now), 510);
        assert_eq!(
            retry_after(Some(now - Duration::milliseconds(500)), now),
            600
        );
        assert_eq!(retry_after(Some(now - Duration::minutes(11)), now), 1);
    }
}
