//! Read-only lists of the account's books: statuses, products, clients and categories.
//! Any employee may read them; each query is scoped to the caller's account.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{categories, clients, order_statuses, products};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    orders::{ClientView, StatusView},
    Caller, ServiceResult,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub id: i64,
    pub name: String,
    /// The article.
    pub sku: Option<String>,
    pub prom_id: Option<i64>,
    pub description: Option<String>,
    pub unit: String,
    pub category: Option<CategoryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientEntry {
    #[serde(flatten)]
    pub client: ClientView,
    pub created_at: DateTime<Utc>,
}

/// The account's order statuses in their display order.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_statuses(
    db: &DatabaseConnection,
    caller: &Caller,
) -> ServiceResult<Vec<StatusView>> {
    Ok(order_statuses::Entity::find()
        .filter(order_statuses::Column::AccountId.eq(caller.account_id))
        .order_by_asc(order_statuses::Column::Position)
        .order_by_asc(order_statuses::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(StatusView::from)
        .collect())
}

async fn category_map(
    db: &DatabaseConnection,
    account_id: i64,
) -> ServiceResult<HashMap<i64, String>> {
    Ok(categories::Entity::find()
        .filter(categories::Column::AccountId.eq(account_id))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

/// The account's products with their categories, oldest first.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_products(
    db: &DatabaseConnection,
    caller: &Caller,
) -> ServiceResult<Vec<ProductView>> {
    let categories = category_map(db, caller.account_id).await?;
    Ok(products::Entity::find()
        .filter(products::Column::AccountId.eq(caller.account_id))
        .order_by_asc(products::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|p| ProductView {
            category: p.category_id.and_then(|id| {
                categories.get(&id).map(|name| CategoryView {
                    id,
                    name: name.clone(),
                })
            }),
            id: p.id,
            name: p.name,
            sku: p.sku,
            prom_id: p.prom_id,
            description: p.description,
            unit: p.unit,
        })
        .collect())
}

/// The account's clients, oldest first.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_clients(
    db: &DatabaseConnection,
    caller: &Caller,
) -> ServiceResult<Vec<ClientEntry>> {
    Ok(clients::Entity::find()
        .filter(clients::Column::AccountId.eq(caller.account_id))
        .order_by_asc(clients::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|c| ClientEntry {
            created_at: c.created_at,
            client: ClientView::from(c),
        })
        .collect())
}

/// The account's categories by name.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_categories(
    db: &DatabaseConnection,
    caller: &Caller,
) -> ServiceResult<Vec<CategoryView>> {
    let mut categories: Vec<CategoryView> = category_map(db, caller.account_id)
        .await?
        .into_iter()
        .map(|(id, name)| CategoryView { id, name })
        .collect();
    categories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(categories)
}
