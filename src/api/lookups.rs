//! Read-only lists of the account's books: statuses, products, clients and categories.
//! Any employee may read them; each query is scoped to the caller's account.

use std::collections::HashMap;

use actix_web::web;
use chrono::{DateTime, Utc};
use entity::{categories, clients, order_statuses, products};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    auth::Caller,
    orders::{ClientView, StatusView},
};
use crate::{error::ApiError, startup::AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusList {
    pub statuses: Vec<StatusView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub categories: Vec<CategoryView>,
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
pub struct ProductList {
    pub products: Vec<ProductView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientEntry {
    #[serde(flatten)]
    pub client: ClientView,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientEntry>,
}

#[utoipa::path(
    get, path = "/api/statuses", operation_id = "listStatuses", tag = "lookups",
    responses((status = 200, body = StatusList)),
    security(("bearer" = []))
)]
pub async fn statuses(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusList>, ApiError> {
    let statuses = account_statuses(&state, &caller).await?;
    Ok(web::Json(StatusList { statuses }))
}

/// The account's order statuses in their display order.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn account_statuses(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<StatusView>, ApiError> {
    Ok(order_statuses::Entity::find()
        .filter(order_statuses::Column::AccountId.eq(caller.account_id))
        .order_by_asc(order_statuses::Column::Position)
        .order_by_asc(order_statuses::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(StatusView::from)
        .collect())
}

async fn category_map(state: &AppState, account_id: i64) -> Result<HashMap<i64, String>, ApiError> {
    Ok(categories::Entity::find()
        .filter(categories::Column::AccountId.eq(account_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

#[utoipa::path(
    get, path = "/api/products", operation_id = "listProducts", tag = "lookups",
    responses((status = 200, body = ProductList)),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn products(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ProductList>, ApiError> {
    let categories = category_map(&state, caller.account_id).await?;
    let products = products::Entity::find()
        .filter(products::Column::AccountId.eq(caller.account_id))
        .order_by_asc(products::Column::Id)
        .all(&state.db)
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
        .collect();
    Ok(web::Json(ProductList { products }))
}

#[utoipa::path(
    get, path = "/api/clients", operation_id = "listClients", tag = "lookups",
    responses((status = 200, body = ClientList)),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn clients(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ClientList>, ApiError> {
    let clients = clients::Entity::find()
        .filter(clients::Column::AccountId.eq(caller.account_id))
        .order_by_asc(clients::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|c| ClientEntry {
            created_at: c.created_at,
            client: ClientView::from(c),
        })
        .collect();
    Ok(web::Json(ClientList { clients }))
}

#[utoipa::path(
    get, path = "/api/categories", operation_id = "listCategories", tag = "lookups",
    responses((status = 200, body = CategoryList)),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn categories(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<CategoryList>, ApiError> {
    let mut categories: Vec<CategoryView> = category_map(&state, caller.account_id)
        .await?
        .into_iter()
        .map(|(id, name)| CategoryView { id, name })
        .collect();
    categories.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(web::Json(CategoryList { categories }))
}
