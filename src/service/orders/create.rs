//! Creating an order in RO App (no shop): its lines are checked and priced before
//! anything is written, and its number is `R-<n>`, `n` counting the account's RO App
//! orders from 1.

use entity::{accounts, clients, order_items, order_statuses, orders, products};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{account_status, views::view, OrderView};
use crate::{
    domain::{normalize_email, normalize_phone, StatusKind},
    prom::money::{book_amount, Quantity},
    service::{Caller, ServiceError, ServiceResult, Services},
};

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

/// Creates an order in RO App for the caller's account; the account row is locked while
/// numbering, so two concurrent creations never share a number.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = tracing::field::Empty))]
pub async fn create_order(
    services: &Services,
    caller: &Caller,
    body: NewOrder,
) -> ServiceResult<OrderView> {
    let account_id = caller.account_id;
    let now = services.clock.now();
    let txn = services.db.begin().await?;
    let account = accounts::Entity::find_by_id(account_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
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
            return Err(ServiceError::Invalid(format!(
                "items[{position}].quantity must be above zero"
            )));
        }
        Quantity::try_from(item.quantity)
            .map_err(|e| ServiceError::Invalid(format!("items[{position}].quantity: {e}")))?;
        if item.price < Decimal::ZERO {
            return Err(ServiceError::Invalid(format!(
                "items[{position}].price must not be negative"
            )));
        }
        book_amount(item.price)
            .map_err(|e| ServiceError::Invalid(format!("items[{position}].price: {e}")))?;
        let product = products::Entity::find_by_id(item.product_id)
            .filter(products::Column::AccountId.eq(account_id))
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ServiceError::Missing(format!("product {} not found", item.product_id))
            })?;
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
        .ok_or_else(|| ServiceError::Invalid("the order's total does not fit the books".into()))?;
    let order = orders::ActiveModel {
        account_id: Set(account_id),
        number: Set(format!("R-{}", roapp_orders + 1)),
        shop_id: Set(None),
        external_id: Set(None),
        status_id: Set(status.id),
        remote_status: Set(None),
        remote_status_title: Set(None),
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
    view(&services.db, account_id, order).await
}
