//! A shop's order statuses as Prom lists them (ARCHITECTURE.md, 'Prom statuses by
//! name'): fetched when the shop is connected or its Prom URL or token change, and on
//! demand; kept per shop so that the mapping editor offers Prom's titles, a mapping can
//! only name a custom status the shop has, and pages show titles instead of codes.
//!
//! A fetch that fails never fails what triggered it: the reason is kept on the shop row
//! and shown with the shop's health until a fetch succeeds.

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use entity::{prom_status_options, shops};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{find_shop, shop_for_manager};
use crate::{
    domain::PromStatusKind,
    prom::{
        client::{PromError, PromStatusOption},
        source,
    },
    service::{Caller, ServiceError, ServiceResult, Services},
};

/// One status the shop has on Prom.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct PromStatusView {
    /// Prom's code: `pending`, `received`, …, or `custom-<id>`.
    pub code: String,
    /// The title Prom shows, in the shop's language.
    pub title: String,
    /// `standard` (Prom's own) or `custom` (the seller's).
    pub kind: PromStatusKind,
}

/// Why the last fetch failed, and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FetchFailure {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// What promsync knows of a shop's statuses on Prom.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromStatuses {
    /// In Prom's order; empty until a fetch succeeded.
    pub statuses: Vec<PromStatusView>,
    /// When they were fetched (null: never).
    pub fetched_at: Option<DateTime<Utc>>,
    /// The last fetch's failure, until a fetch succeeds.
    pub last_error: Option<FetchFailure>,
}

impl From<prom_status_options::Model> for PromStatusView {
    fn from(row: prom_status_options::Model) -> Self {
        Self {
            code: row.code,
            title: row.title,
            kind: row.kind,
        }
    }
}

/// The shop's statuses as last fetched, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn prom_statuses(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ServiceResult<PromStatuses> {
    let shop = shop_for_manager(db, caller, id, "viewing a shop's Prom statuses").await?;
    stored(db, shop).await
}

/// Fetches the shop's statuses from Prom now and keeps them; Prom failing is a
/// [`ServiceError::Prom`] naming why, also kept as the shop's last fetch error.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn refresh_prom_statuses(
    services: &Services,
    caller: &Caller,
    id: i64,
) -> ServiceResult<PromStatuses> {
    let shop =
        shop_for_manager(&services.db, caller, id, "fetching a shop's Prom statuses").await?;
    fetch(services, &shop, None)
        .await?
        .map_err(ServiceError::Prom)?;
    let shop = find_shop(&services.db, caller.account_id, id).await?;
    stored(&services.db, shop).await
}

/// How long saving a shop waits for Prom's status list: the save must not hang on a slow
/// Prom, and a refresh can ask again.
const CONNECT_FETCH_LIMIT: Duration = Duration::from_secs(5);

/// After a shop is connected or its Prom URL or token changed: fetches its statuses, and
/// on failure keeps the reason on the shop (its health shows it) without failing the
/// change that asked.
pub(super) async fn fetch_after_connect(services: &Services, shop: &shops::Model) {
    if let Err(e) = fetch(services, shop, Some(CONNECT_FETCH_LIMIT)).await {
        tracing::error!(error = %e, "could not record the shop's Prom statuses");
    }
}

/// Asks Prom for the shop's statuses (within `limit`, if given) and stores the answer, or
/// the reason it failed (the inner `Err`, also stored). The outer error is the database's.
async fn fetch(
    services: &Services,
    shop: &shops::Model,
    limit: Option<Duration>,
) -> ServiceResult<Result<usize, String>> {
    let fetched = match source::credentials(shop) {
        Ok(creds) => {
            let call = services.prom.list_status_options(&creds);
            let answer = match limit {
                Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                    Err(PromError::Transport(format!(
                        "no answer within {} s",
                        limit.as_secs()
                    )))
                }),
                None => call.await,
            };
            answer.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let now = services.clock.now();
    match fetched {
        Ok(options) => {
            store(&services.db, shop.id, &options, now).await?;
            tracing::info!(statuses = options.len(), "shop's Prom statuses fetched");
            Ok(Ok(options.len()))
        }
        Err(why) => {
            let message = format!("fetching the shop's statuses from Prom: {why}");
            tracing::warn!(error = %message, "shop's Prom statuses not fetched");
            shops::ActiveModel {
                id: Set(shop.id),
                prom_statuses_error: Set(Some(message.clone())),
                prom_statuses_error_at: Set(Some(now)),
                ..Default::default()
            }
            .update(&services.db)
            .await?;
            Ok(Err(message))
        }
    }
}

/// Replaces the shop's stored statuses with `options` and clears its fetch error, in one
/// transaction.
async fn store(
    db: &DatabaseConnection,
    shop_id: i64,
    options: &[PromStatusOption],
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let txn = db.begin().await?;
    prom_status_options::Entity::delete_many()
        .filter(prom_status_options::Column::ShopId.eq(shop_id))
        .exec(&txn)
        .await?;
    if !options.is_empty() {
        prom_status_options::Entity::insert_many(options.iter().map(|option| {
            prom_status_options::ActiveModel {
                shop_id: Set(shop_id),
                code: Set(option.status.to_string()),
                title: Set(option.title.clone()),
                kind: Set(if option.status.custom_id().is_some() {
                    PromStatusKind::Custom
                } else {
                    PromStatusKind::Standard
                }),
                fetched_at: Set(now),
                ..Default::default()
            }
        }))
        .exec(&txn)
        .await?;
    }
    shops::ActiveModel {
        id: Set(shop_id),
        prom_statuses_error: Set(None),
        prom_statuses_error_at: Set(None),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The shop's stored statuses, in the order Prom listed them.
pub async fn status_options(
    db: &DatabaseConnection,
    shop_id: i64,
) -> ServiceResult<Vec<prom_status_options::Model>> {
    Ok(prom_status_options::Entity::find()
        .filter(prom_status_options::Column::ShopId.eq(shop_id))
        .order_by_asc(prom_status_options::Column::Id)
        .all(db)
        .await?)
}

/// The custom status codes the shop has on Prom, as last fetched.
pub(super) async fn custom_codes(
    db: &DatabaseConnection,
    shop_id: i64,
) -> ServiceResult<BTreeSet<String>> {
    Ok(status_options(db, shop_id)
        .await?
        .into_iter()
        .filter(|row| row.kind == PromStatusKind::Custom)
        .map(|row| row.code)
        .collect())
}

async fn stored(db: &DatabaseConnection, shop: shops::Model) -> ServiceResult<PromStatuses> {
    let rows = status_options(db, shop.id).await?;
    Ok(PromStatuses {
        fetched_at: rows.iter().map(|row| row.fetched_at).max(),
        statuses: rows.into_iter().map(PromStatusView::from).collect(),
        last_error: shop
            .prom_statuses_error
            .zip(shop.prom_statuses_error_at)
            .map(|(message, at)| FetchFailure { at, message }),
    })
}
