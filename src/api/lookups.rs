//! Read-only lists of the account's books for the JSON API: statuses, products, clients
//! and categories, read through `service::lookups`. Any employee may read them.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
pub use crate::service::lookups::{CategoryView, ClientEntry, ProductView};
use crate::{
    error::ApiError, http::AppState, service::lookups as service, service::orders::StatusView,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusList {
    pub statuses: Vec<StatusView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub categories: Vec<CategoryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub products: Vec<ProductView>,
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
    let statuses = service::account_statuses(&state.services.db, &caller).await?;
    Ok(web::Json(StatusList { statuses }))
}

#[utoipa::path(
    get, path = "/api/products", operation_id = "listProducts", tag = "lookups",
    responses((status = 200, body = ProductList)),
    security(("bearer" = []))
)]
pub async fn products(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ProductList>, ApiError> {
    let products = service::account_products(&state.services.db, &caller).await?;
    Ok(web::Json(ProductList { products }))
}

#[utoipa::path(
    get, path = "/api/clients", operation_id = "listClients", tag = "lookups",
    responses((status = 200, body = ClientList)),
    security(("bearer" = []))
)]
pub async fn clients(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ClientList>, ApiError> {
    let clients = service::account_clients(&state.services.db, &caller).await?;
    Ok(web::Json(ClientList { clients }))
}

#[utoipa::path(
    get, path = "/api/categories", operation_id = "listCategories", tag = "lookups",
    responses((status = 200, body = CategoryList)),
    security(("bearer" = []))
)]
pub async fn categories(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<CategoryList>, ApiError> {
    let categories = service::account_categories(&state.services.db, &caller).await?;
    Ok(web::Json(CategoryList { categories }))
}
