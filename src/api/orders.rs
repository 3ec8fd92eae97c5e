//! Orders (ARCHITECTURE.md, 'Business rules' from 'Status changes reach Prom' on): the list
//! with its `source`/`shop_id` filters, one order, creating an RO App order, changing a
//! status, writing off the goods and the manual refresh from Prom.
//!
//! A status change and the outbox row that carries it to Prom are written in one
//! transaction, so a change is never lost between the database and the broker; the outbox
//! payload only names the order because the publisher sends the order's *current* mapped
//! status ('Prom gets the current status'). The refresh limit is a conditional UPDATE in
//! the database, so two replicas racing for the same order can never both pass.

use std::collections::{BTreeSet, HashMap, HashSet};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use entity::{
    accounts, clients, order_items, order_statuses, orders, outbound_sync_log, products, shops,
};
use rust_decimal::Decimal;
use sea_orm::{
    sea_query::Expr, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{auth::Caller, ErrorBody};
use crate::{
    broker::InboundMessage,
    domain::{normalize_email, normalize_phone, Permission, Source, StatusKind},
    error::ApiError,
    outbound::{self, Decision, OutboxReason},
    prom::{
        ids::{EventId, ShopId},
        money::{book_amount, Quantity},
        order::PromStatus,
    },
    startup::AppState,
};

/// Where an imported order's page on Prom is, unless the shop has its own template.
pub const DEFAULT_ORDER_URL_TEMPLATE: &str = "https://my.prom.ua/cms/order/edit/{id}";
/// 'Refresh at most every 10 minutes' (ARCHITECTURE.md): an order is re-fetched from Prom
/// at most this often.
pub const REFRESH_INTERVAL_S: i64 = 600;
/// What a refresh that could not reach the broker suggests as `Retry-After`.
const BROKER_RETRY_AFTER_S: u64 = 5;
const DEFAULT_PER_PAGE: u64 = 50;
const MAX_PER_PAGE: u64 = 200;
/// The last page that may be asked for. The offset `(page - 1) * per_page` must stay far
/// inside the database's 64-bit range (a page of 2^64 made the query builder panic), and
/// no account pages through more than 20 million orders one screen at a time.
const MAX_PAGE: u64 = 100_000;
/// A bulk refresh names at most this many orders (one Prom fetch each).
const MAX_REFRESH_IDS: usize = 100;

/// Money is shown with two decimals (`"1234.50"`), as RO App books it.
pub fn money(value: Decimal) -> String {
    let mut value = value.round_dp(2);
    value.rescale(2);
    value.to_string()
}

/// Quantities are shown without trailing zeros (`"2"`, `"2.5"`); Prom sends floats.
pub fn quantity(value: Decimal) -> String {
    value.normalize().to_string()
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OrderSource {
    /// Created in RO App.
    Roapp,
    /// Imported from a Prom shop.
    Prom,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShopRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub id: i64,
    pub name: String,
    #[schema(value_type = StatusKind)]
    pub kind: String,
}

impl From<order_statuses::Model> for StatusView {
    fn from(s: order_statuses::Model) -> Self {
        Self {
            id: s.id,
            name: s.name,
            kind: s.kind.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl From<clients::Model> for ClientView {
    fn from(c: clients::Model) -> Self {
        Self {
            id: c.id,
            first_name: c.first_name,
            last_name: c.last_name,
            phone: c.phone,
            email: c.email,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    pub sku: Option<String>,
    #[schema(example = "2")]
    pub quantity: String,
    #[schema(example = "1234.50")]
    pub price: String,
    pub written_off: bool,
}

/// The Order of the HTTP API (`GET /api/openapi.json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: i64,
    /// The Prom order id for imported orders, `R-<n>` for orders created in RO App.
    pub number: String,
    pub source: OrderSource,
    pub shop: Option<ShopRef>,
    pub external_id: Option<String>,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The order's page on Prom (imported orders only).
    pub prom_url: Option<String>,
    pub status: StatusView,
    pub remote_status: Option<String>,
    pub written_off: bool,
    pub client: Option<ClientView>,
    pub items: Vec<ItemView>,
    #[schema(example = "1234.50")]
    pub total: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<OrderView>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// The Order views of `rows` (all of `account_id`), loading their shops, statuses,
/// clients and items in one query each.
pub async fn views<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    rows: Vec<orders::Model>,
) -> Result<Vec<OrderView>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let shop_ids: BTreeSet<i64> = rows.iter().filter_map(|o| o.shop_id).collect();
    let status_ids: BTreeSet<i64> = rows.iter().map(|o| o.status_id).collect();
    let client_ids: BTreeSet<i64> = rows.iter().filter_map(|o| o.client_id).collect();
    let order_ids: Vec<i64> = rows.iter().map(|o| o.id).collect();
    // Only the columns shown: the shop row also holds its secrets.
    let shops: HashMap<i64, (String, Option<String>)> = if shop_ids.is_empty() {
        HashMap::new()
    } else {
        shops::Entity::find()
            .select_only()
            .columns([
                shops::Column::Id,
                shops::Column::Name,
                shops::Column::OrderUrlTemplate,
            ])
            .filter(shops::Column::AccountId.eq(account_id))
            .filter(shops::Column::Id.is_in(shop_ids))
            .into_tuple::<(i64, String, Option<String>)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, name, template)| (id, (name, template)))
            .collect()
    };
    let statuses: HashMap<i64, order_statuses::Model> = order_statuses::Entity::find()
        .filter(order_statuses::Column::AccountId.eq(account_id))
        .filter(order_statuses::Column::Id.is_in(status_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut clients: HashMap<i64, clients::Model> = if client_ids.is_empty() {
        HashMap::new()
    } else {
        clients::Entity::find()
            .filter(clients::Column::AccountId.eq(account_id))
            .filter(clients::Column::Id.is_in(client_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    };
    let mut items: HashMap<i64, Vec<ItemView>> = HashMap::new();
    for item in order_items::Entity::find()
        .filter(order_items::Column::OrderId.is_in(order_ids))
        .order_by_asc(order_items::Column::OrderId)
        .order_by_asc(order_items::Column::Position)
        .order_by_asc(order_items::Column::Id)
        .all(db)
        .await?
    {
        items.entry(item.order_id).or_default().push(ItemView {
            id: item.id,
            product_id: item.product_id,
            name: item.name,
            sku: item.sku,
            quantity: quantity(item.quantity),
            price: money(item.price),
            written_off: item.written_off,
        });
    }
    let mut views = Vec::with_capacity(rows.len());
    for order in rows {
        let shop = order.shop_id.and_then(|id| shops.get(&id).map(|s| (id, s)));
        let prom_url = match (&shop, &order.external_id) {
            (Some((_, (_, template))), Some(external_id)) => Some(
                template
                    .as_deref()
                    .unwrap_or(DEFAULT_ORDER_URL_TEMPLATE)
                    .replace("{id}", external_id),
            ),
            (None, Some(external_id)) => {
                Some(DEFAULT_ORDER_URL_TEMPLATE.replace("{id}", external_id))
            }
            _ => None,
        };
        let status = match statuses.get(&order.status_id) {
            Some(s) => StatusView::from(s.clone()),
            None => {
                // The foreign key keeps this from happening; a row of another account
                // would be a bug, and must not be shown.
                return Err(DbErr::RecordNotFound(format!(
                    "status {} of order {}",
                    order.status_id, order.id
                )));
            }
        };
        views.push(OrderView {
            id: order.id,
            number: order.number,
            source: if order.external_id.is_some() {
                OrderSource::Prom
            } else {
                OrderSource::Roapp
            },
            shop: shop.map(|(id, (name, _))| ShopRef {
                id,
                name: name.clone(),
            }),
            external_id: order.external_id,
            remote_created_at: order.remote_created_at,
            last_synced_at: order.last_synced_at,
            prom_url,
            status,
            remote_status: order.remote_status,
            written_off: order.written_off_at.is_some(),
            client: order
                .client_id
                .and_then(|id| clients.remove(&id))
                .map(ClientView::from),
            items: items.remove(&order.id).unwrap_or_default(),
            total: money(order.total),
            currency: order.currency,
            created_at: order.created_at,
        });
    }
    Ok(views)
}

async fn view<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    order: orders::Model,
) -> Result<OrderView, ApiError> {
    views(db, account_id, vec![order])
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// The order `id` of the account, locked for update when inside a transaction that
/// changes it (concurrent status changes and write-offs serialize on the row).
async fn find_order<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    id: i64,
    lock: bool,
) -> Result<orders::Model, ApiError> {
    let mut query = orders::Entity::find_by_id(id).filter(orders::Column::AccountId.eq(account_id));
    if lock {
        query = query.lock_exclusive();
    }
    query.one(db).await?.ok_or(ApiError::NotFound)
}

fn is_imported(order: &orders::Model) -> bool {
    order.external_id.is_some()
}

/// 'Synced orders need a permission' (ARCHITECTURE.md): working with a synced order needs
/// "can add goods without write-off".
fn require_for_synced(
    caller: &Caller,
    order: &orders::Model,
    action: &str,
) -> Result<(), ApiError> {
    if is_imported(order) {
        caller.require(Permission::GoodsWithoutWriteOff, action)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceFilter {
    /// Orders created in RO App.
    Roapp,
    /// Orders imported from Prom shops.
    Integrations,
    #[default]
    All,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `roapp`, `integrations` or `all` (default).
    #[param(inline)]
    pub source: Option<SourceFilter>,
    /// Only orders imported from this shop.
    pub shop_id: Option<i64>,
    /// 1-based page number (default 1).
    pub page: Option<u64>,
    /// Orders per page, 1–200 (default 50).
    pub per_page: Option<u64>,
}

/// The account's orders, newest first.
#[utoipa::path(
    get, path = "/api/orders", operation_id = "listOrders", tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 400, body = ErrorBody),
        (status = 404, description = "`shop_id` is not a shop of the account", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<OrderList>, ApiError> {
    Ok(web::Json(
        list_orders(&state, &caller, query.into_inner()).await?,
    ))
}

/// The page and page size a list query asks for, within their bounds.
fn paging(query: &ListQuery) -> Result<(u64, u64), ApiError> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 || page > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`page` must be between 1 and {MAX_PAGE}"
        )));
    }
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError::BadRequest(format!(
            "`per_page` must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok((page, per_page))
}

/// The orders list of the JSON API and the UI: one page of the account's orders.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn list_orders(
    state: &AppState,
    caller: &Caller,
    query: ListQuery,
) -> Result<OrderList, ApiError> {
    let (page, per_page) = paging(&query)?;
    let mut select = orders::Entity::find().filter(orders::Column::AccountId.eq(caller.account_id));
    select = match query.source.unwrap_or_default() {
        SourceFilter::Roapp => select.filter(orders::Column::ExternalId.is_null()),
        SourceFilter::Integrations => select.filter(orders::Column::ExternalId.is_not_null()),
        SourceFilter::All => select,
    };
    if let Some(shop_id) = query.shop_id {
        super::shops::find_shop(&state.db, caller.account_id, shop_id).await?;
        select = select.filter(orders::Column::ShopId.eq(shop_id));
    }
    let paginator = select
        .order_by_desc(orders::Column::CreatedAt)
        .order_by_desc(orders::Column::Id)
        .paginate(&state.db, per_page);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page - 1).await?;
    let orders = views(&state.db, caller.account_id, rows).await?;
    Ok(OrderList {
        orders,
        page,
        per_page,
        total,
    })
}

/// One order of the account.
#[utoipa::path(
    get, path = "/api/orders/{id}", operation_id = "getOrder", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<OrderView>, ApiError> {
    Ok(web::Json(get_order(&state, &caller, *id).await?))
}

/// One order of the caller's account (404 for any other).
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id))]
pub async fn get_order(state: &AppState, caller: &Caller, id: i64) -> Result<OrderView, ApiError> {
    let order = find_order(&state.db, caller.account_id, id, false).await?;
    view(&state.db, caller.account_id, order).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub product_id: i64,
    /// A decimal string (or number) above zero.
    #[schema(value_type = String, example = "2")]
    pub quantity: Decimal,
    /// A decimal string (or number), zero or more.
    #[schema(value_type = String, example = "120.00")]
    pub price: Decimal,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub client: Option<NewClient>,
    pub items: Option<Vec<NewItem>>,
    /// Default: the account's first status of kind `new`.
    pub status_id: Option<i64>,
}

fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

async fn account_status(
    txn: &DatabaseTransaction,
    account_id: i64,
    status_id: i64,
) -> Result<order_statuses::Model, ApiError> {
    order_statuses::Entity::find_by_id(status_id)
        .filter(order_statuses::Column::AccountId.eq(account_id))
        .one(txn)
        .await?
        .ok_or_else(|| ApiError::Missing(format!("status {status_id} not found")))
}

/// Creates an order in RO App (no shop). Its number is `R-<n>`, `n` counting the
/// account's RO App orders from 1; the account row is locked while numbering, so two
/// concurrent creations never share a number.
#[utoipa::path(
    post, path = "/api/orders", operation_id = "createOrder", tag = "orders",
    request_body(content = Option<NewOrder>, description = "May be left out: an empty order of the first `new` status"),
    responses(
        (status = 201, body = OrderView),
        (status = 400, body = ErrorBody),
        (status = 404, description = "a product or status is not the account's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = tracing::field::Empty))]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body: NewOrder = super::optional_json(&body)?;
    let account_id = caller.account_id;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let account = accounts::Entity::find_by_id(account_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let status = match body.status_id {
        Some(id) => account_status(&txn, account_id, id).await?,
        None => order_statuses::Entity::find()
            .filter(order_statuses::Column::AccountId.eq(account_id))
            .filter(order_statuses::Column::Kind.eq(StatusKind::New.as_str()))
            .order_by_asc(order_statuses::Column::Position)
            .order_by_asc(order_statuses::Column::Id)
            .one(&txn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("account {account_id} has no status of kind new"))?,
    };
    let mut lines = Vec::new();
    for (position, item) in body.items.unwrap_or_default().into_iter().enumerate() {
        if item.quantity <= Decimal::ZERO {
            return Err(ApiError::BadRequest(format!(
                "items[{position}].quantity must be above zero"
            )));
        }
        Quantity::try_from(item.quantity)
            .map_err(|e| ApiError::BadRequest(format!("items[{position}].quantity: {e}")))?;
        if item.price < Decimal::ZERO {
            return Err(ApiError::BadRequest(format!(
                "items[{position}].price must not be negative"
            )));
        }
        book_amount(item.price)
            .map_err(|e| ApiError::BadRequest(format!("items[{position}].price: {e}")))?;
        let product = products::Entity::find_by_id(item.product_id)
            .filter(products::Column::AccountId.eq(account_id))
            .one(&txn)
            .await?
            .ok_or_else(|| ApiError::Missing(format!("product {} not found", item.product_id)))?;
        lines.push((position, item, product));
    }
    let client_id = match body.client {
        Some(c) => {
            let (first_name, last_name, phone, email) = (
                clean(c.first_name),
                clean(c.last_name),
                clean(c.phone),
                clean(c.email),
            );
            if first_name.is_none() && last_name.is_none() && phone.is_none() && email.is_none() {
                None
            } else {
                let client = clients::ActiveModel {
                    account_id: Set(account_id),
                    phone_normalized: Set(phone.as_deref().and_then(normalize_phone)),
                    email: Set(email.as_deref().and_then(normalize_email)),
                    first_name: Set(first_name),
                    last_name: Set(last_name),
                    phone: Set(phone),
                    created_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                Some(client.id)
            }
        }
        None => None,
    };
    let roapp_orders = orders::Entity::find()
        .filter(orders::Column::AccountId.eq(account_id))
        .filter(orders::Column::ExternalId.is_null())
        .count(&txn)
        .await?;
    // Each factor fits its column, but their product and sum need not: checked, so an
    // order of absurd size is a 400 rather than an overflow panic under the account lock.
    let total = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, (_, item, _)| {
            sum.checked_add(item.quantity.checked_mul(item.price)?)
        })
        .map(|total| total.round_dp(2))
        .and_then(|total| book_amount(total).ok())
        .ok_or_else(|| ApiError::BadRequest("the order's total does not fit the books".into()))?;
    let order = orders::ActiveModel {
        account_id: Set(account_id),
        number: Set(format!("R-{}", roapp_orders + 1)),
        shop_id: Set(None),
        external_id: Set(None),
        status_id: Set(status.id),
        remote_status: Set(None),
        remote_created_at: Set(None),
        remote_modified_at: Set(None),
        last_synced_at: Set(None),
        last_refresh_at: Set(None),
        client_id: Set(client_id),
        total: Set(total),
        currency: Set(account.currency.clone()),
        written_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    for (position, item, product) in lines {
        order_items::ActiveModel {
            order_id: Set(order.id),
            product_id: Set(product.id),
            position: Set(position as i32),
            name: Set(product.name),
            sku: Set(product.sku),
            quantity: Set(item.quantity),
            price: Set(item.price.round_dp(2)),
            written_off: Set(false),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    tracing::Span::current().record("order_id", order.id);
    tracing::info!("order created");
    let view = view(&state.db, account_id, order).await?;
    Ok(HttpResponse::Created().json(view))
}

/// What became of the Prom side of a status change (ARCHITECTURE.md,
/// 'Status changes reach Prom').
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outbound {
    /// An outbox row will carry the order's mapped status to Prom.
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
    fn as_str(self) -> &'static str {
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status_id: i64,
}

/// Decides and records, inside the status change's transaction, what goes to Prom. The
/// rules live in `outbound` (the publisher applies the same ones when it sends).
async fn outbound_for_status(
    txn: &DatabaseTransaction,
    order: &orders::Model,
    now: DateTime<Utc>,
) -> Result<Outbound, ApiError> {
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

/// Changes an order's status; for an imported order the mapped Prom status is queued in the
/// same transaction (or deferred: ARCHITECTURE.md, 'Delivered waits for the write-off').
#[utoipa::path(
    post, path = "/api/orders/{id}/status", operation_id = "changeOrderStatus", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    request_body = StatusChange,
    responses(
        (status = 200, body = StatusChanged),
        (status = 403, description = "imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_status(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<StatusChange>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusChanged>, ApiError> {
    Ok(web::Json(
        set_status(&state, &caller, *id, body.status_id).await?,
    ))
}

/// Changes an order's status and decides, in the same transaction, what goes to Prom.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: i64,
    status_id: i64,
) -> Result<StatusChanged, ApiError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
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
    let order = view(&state.db, caller.account_id, order).await?;
    Ok(StatusChanged { order, outbound })
}

/// Writes off the order's goods. If its status maps to Prom `delivered`, that update is
/// queued now ('Delivered waits for the write-off'). Writing off twice changes nothing the
/// second time.
#[utoipa::path(
    post, path = "/api/orders/{id}/write-off", operation_id = "writeOffOrder", tag = "orders",
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, body = StatusChanged),
        (status = 403, description = "imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn write_off(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusChanged>, ApiError> {
    Ok(web::Json(write_off_goods(&state, &caller, *id).await?))
}

/// Writes off an order's goods, queueing a Prom `delivered` that waited for it.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id, outbound = tracing::field::Empty))]
pub async fn write_off_goods(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<StatusChanged, ApiError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
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
    let order = view(&state.db, caller.account_id, order).await?;
    Ok(StatusChanged { order, outbound })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub order_ids: Vec<i64>,
}

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
    fn as_str(self) -> &'static str {
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

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResults {
    pub results: Vec<RefreshResult>,
}

/// Seconds until an order stamped at `last` may be refreshed again (at least 1).
fn retry_after(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let ready = last.unwrap_or(now) + Duration::seconds(REFRESH_INTERVAL_S);
    let millis = (ready - now).num_milliseconds().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

/// Re-fetches orders from Prom ('Refresh at most every 10 minutes'). Each order passes at
/// most once per 10 minutes, decided by a conditional UPDATE of `last_refresh_at`: only the
/// request whose UPDATE changed the row publishes, whatever replicas race. A publish that
/// fails puts the stamp back and answers 503, so a broker outage does not burn the 10
/// minutes.
#[utoipa::path(
    post, path = "/api/orders/refresh", operation_id = "refreshOrders", tag = "orders",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = RefreshResults),
        (status = 400, body = ErrorBody),
        (status = 403, description = "an imported order, no `goods_without_write_off`", body = ErrorBody),
        (status = 404, description = "an id is not an order of the account", body = ErrorBody),
        (status = 429, description = "none could be queued; `Retry-After` and `results` say when", body = ErrorBody),
        (status = 503, description = "the broker is unavailable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn refresh(
    caller: Caller,
    body: web::Json<RefreshRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let results = refresh_orders(&state, &caller, &body.order_ids).await?;
    match all_too_soon(&results) {
        Some(refusal) => Err(refusal),
        None => Ok(HttpResponse::Ok().json(RefreshResults { results })),
    }
}

/// The 429 of a bulk refresh none of whose orders could be queued, with the soonest
/// `Retry-After` and every order's result beside it.
pub fn all_too_soon(results: &[RefreshResult]) -> Option<ApiError> {
    let queued = results.iter().any(|r| r.result == RefreshOutcome::Queued);
    let soonest = results.iter().filter_map(|r| r.retry_after_s).min();
    match (queued, soonest) {
        (false, Some(retry_after_s)) => Some(ApiError::TooManyRequests {
            message: format!(
                "each order can be refreshed once per {} minutes; retry in {retry_after_s} s",
                REFRESH_INTERVAL_S / 60
            ),
            retry_after_s,
            results: serde_json::to_value(results).ok(),
        }),
        _ => None,
    }
}

/// Re-fetches the named orders from Prom, each at most once per 10 minutes
/// (ARCHITECTURE.md); answers every order's result, in the order asked.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, orders = tracing::field::Empty))]
pub async fn refresh_orders(
    state: &AppState,
    caller: &Caller,
    order_ids: &[i64],
) -> Result<Vec<RefreshResult>, ApiError> {
    // Repeats are forgiven, but a body of tens of thousands of ids is refused before any
    // work; what remains dedupes in linear time, keeping the order asked.
    let too_many = || {
        ApiError::BadRequest(format!(
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
        .all(&state.db)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains_key(id)) {
        return Err(ApiError::Missing(format!("order {missing} not found")));
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
        let result = refresh_one(state, order).await?;
        crate::metrics::refresh(result.result.as_str());
        results.push(result);
    }
    Ok(results)
}

async fn refresh_one(state: &AppState, order: &orders::Model) -> Result<RefreshResult, ApiError> {
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
    let now = state.clock.now();
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
        .exec(&state.db)
        .await?
        .rows_affected;
    if stamped == 0 {
        let last = orders::Entity::find_by_id(order.id)
            .select_only()
            .column(orders::Column::LastRefreshAt)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&state.db)
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
    if let Err(e) = state.broker.publish_inbound(&message).await {
        tracing::warn!(error = %e, order_id = order.id, "refresh not enqueued; stamp undone");
        orders::Entity::update_many()
            .col_expr(
                orders::Column::LastRefreshAt,
                Expr::value(order.last_refresh_at),
            )
            .filter(orders::Column::Id.eq(order.id))
            .filter(orders::Column::LastRefreshAt.eq(now))
            .exec(&state.db)
            .await?;
        return Err(ApiError::BrokerUnavailable {
            retry_after_s: BROKER_RETRY_AFTER_S,
        });
    }
    tracing::info!(order_id = order.id, event_id = %message.event_id, "refresh queued");
    Ok(result(RefreshOutcome::Queued, None))
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn money_has_two_decimals_and_quantities_no_trailing_zeros() {
        assert_eq!(money(dec!(1234.5)), "1234.50");
        assert_eq!(money(dec!(244)), "244.00");
        assert_eq!(quantity(dec!(2.000)), "2");
        assert_eq!(quantity(dec!(2.500)), "2.5");
    }

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

    mod properties {
        use actix_web::web::Query;
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any query string either fails to parse (a 400 from the extractor) or yields
            /// a page whose offset the database can take.
            #[test]
            fn any_list_query_is_refused_or_pages_within_the_databases_range(
                query in "(source=(all|roapp|integrations|x)&?)?(shop_id=-?[0-9]{0,22}&?)?(page=[-+]?[0-9]{0,25}&?)?(per_page=[-+]?[0-9]{0,25})?(&\\PC{0,10})?",
            ) {
                if let Ok(parsed) = Query::<ListQuery>::from_query(&query) {
                    if let Ok((page, per_page)) = paging(&parsed) {
                        let offset = (page - 1).checked_mul(per_page);
                        prop_assert!(offset.is_some_and(|o| i64::try_from(o).is_ok()));
                        prop_assert!((1..=MAX_PER_PAGE).contains(&per_page));
                    }
                }
            }

            #[test]
            fn arbitrary_query_strings_never_panic(query in "\\PC{0,60}") {
                if let Ok(parsed) = Query::<ListQuery>::from_query(&query) {
                    let _ = paging(&parsed);
                }
                let _ = Query::<crate::api::sync_log::SyncLogQuery>::from_query(&query);
            }
        }
    }
}
