//! The sync log as operators read it: inbound events (the importer's inbox, `at` = when
//! processed) and outbound attempts (`outbound_sync_log`) merged, newest first. Rows still
//! `processing` are hidden (they only exist inside an uncommitted import).

use chrono::{DateTime, Utc};
use entity::{inbound_events, orders, outbound_sync_log, shops};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, Iterable, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{Outcome, Source, Spelled},
    service::{Caller, ServiceError, ServiceResult},
};

const DEFAULT_LIMIT: u64 = 200;
const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLogEntry {
    pub at: DateTime<Utc>,
    /// The inbound event id; for outbound entries the publisher's id, when it has one.
    pub event_id: Option<String>,
    pub order_id: Option<i64>,
    #[schema(schema_with = source_schema)]
    pub source: String,
    #[schema(schema_with = outcome_schema)]
    pub outcome: String,
    pub detail: Option<String>,
    #[schema(schema_with = direction_schema)]
    pub direction: String,
    /// The Prom status an outbound entry was about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prom_status: Option<String>,
}

fn string_enum<'a>(
    values: impl IntoIterator<Item = &'a str>,
    description: &str,
) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

fn source_schema() -> utoipa::openapi::Object {
    string_enum(
        Source::iter().map(Source::as_str).chain([OUTBOUND_SOURCE]),
        "Inbound: where the notification came from; outbound: `outbound`",
    )
}

/// The outcome of an entry (`processing` rows are not shown).
fn outcome_schema() -> utoipa::openapi::Object {
    string_enum(
        Outcome::iter()
            .filter(|o| *o != Outcome::Processing)
            .map(|o| o.as_str()),
        "What became of the event",
    )
}

fn direction_schema() -> utoipa::openapi::Object {
    string_enum(
        ["inbound", "outbound"],
        "`inbound` (Prom → RO App) or `outbound` (RO App → Prom)",
    )
}

/// The `source` of every outbound entry.
const OUTBOUND_SOURCE: &str = "outbound";
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncLogQuery {
    /// Only entries with this outcome (e.g. `rejected`).
    #[param(value_type = Option<Outcome>, inline)]
    pub outcome: Option<Spelled<Outcome>>,
    /// At most this many entries, newest first (default 200, at most 1000).
    pub limit: Option<u64>,
}

/// The log a query asks for: the account's (`order_id`: one order's, 404 for an order of
/// another account), after checking the query's filters.
pub async fn query_log(
    db: &DatabaseConnection,
    caller: &Caller,
    order_id: Option<i64>,
    query: &SyncLogQuery,
) -> ServiceResult<Vec<SyncLogEntry>> {
    if let Some(order_id) = order_id {
        orders::Entity::find_by_id(order_id)
            .filter(orders::Column::AccountId.eq(caller.account_id))
            .one(db)
            .await?
            .ok_or(ServiceError::NotFound)?;
    }
    entries(db, caller, order_id, outcome(query)?, limit(query)?).await
}

/// The account's sync log (`order_id`: one order's), optionally one outcome only, at most
/// `limit` entries.
pub async fn entries(
    db: &DatabaseConnection,
    caller: &Caller,
    order_id: Option<i64>,
    outcome: Option<Outcome>,
    limit: u64,
) -> ServiceResult<Vec<SyncLogEntry>> {
    let account_id = caller.account_id;
    let shop_ids: Vec<i64> = shops::Entity::find()
        .select_only()
        .column(shops::Column::Id)
        .filter(shops::Column::AccountId.eq(account_id))
        .into_tuple::<i64>()
        .all(db)
        .await?;
    if shop_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut inbound = inbound_events::Entity::find()
        .filter(inbound_events::Column::ShopId.is_in(shop_ids.clone()))
        .filter(inbound_events::Column::Outcome.ne(Outcome::Processing.as_str()));
    let mut outbound =
        outbound_sync_log::Entity::find().filter(outbound_sync_log::Column::ShopId.is_in(shop_ids));
    if let Some(order_id) = order_id {
        inbound = inbound.filter(inbound_events::Column::OrderId.eq(order_id));
        outbound = outbound.filter(outbound_sync_log::Column::OrderId.eq(order_id));
    }
    if let Some(outcome) = outcome {
        inbound = inbound.filter(inbound_events::Column::Outcome.eq(outcome.as_str()));
        outbound = outbound.filter(outbound_sync_log::Column::Outcome.eq(outcome.as_str()));
    }
    let inbound = inbound
        .order_by_desc(inbound_events::Column::ProcessedAt)
        .limit(limit)
        .all(db)
        .await?;
    let outbound = outbound
        .order_by_desc(outbound_sync_log::Column::At)
        .order_by_desc(outbound_sync_log::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let mut entries: Vec<SyncLogEntry> = inbound
        .into_iter()
        .map(|e| SyncLogEntry {
            at: e.processed_at,
            event_id: Some(e.id),
            order_id: e.order_id,
            source: e.source.to_string(),
            outcome: e.outcome.to_string(),
            detail: e.detail,
            direction: "inbound".into(),
            prom_status: None,
        })
        .chain(outbound.into_iter().map(|e| SyncLogEntry {
            at: e.at,
            event_id: e.event_id,
            order_id: Some(e.order_id),
            source: "outbound".into(),
            outcome: e.outcome.to_string(),
            detail: e.detail,
            direction: "outbound".into(),
            prom_status: e.prom_status,
        }))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.at));
    entries.truncate(limit as usize);
    Ok(entries)
}

fn limit(query: &SyncLogQuery) -> ServiceResult<u64> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ServiceError::Invalid(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

fn outcome(query: &SyncLogQuery) -> ServiceResult<Option<Outcome>> {
    query
        .outcome
        .as_ref()
        .map(|o| o.parse().map_err(|e| ServiceError::Invalid(e.to_string())))
        .transpose()
}
