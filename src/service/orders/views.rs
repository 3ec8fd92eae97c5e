//! The Order view (`OrderView` and its parts) that the JSON API answers and the operator
//! pages render, built from order rows with one query per related table whatever the
//! number of orders.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{clients, order_items, order_statuses, orders, prom_status_options, shops};
use rust_decimal::Decimal;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::prom_order_url;
use crate::{
    domain::StatusKind,
    service::{ServiceError, ServiceResult},
};

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

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct RecipientView {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

/// How the order travels, as Prom describes it; each field `null` when Prom sent none.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct DeliveryView {
    /// The seller's delivery option (`Нова Пошта`).
    pub method: Option<String>,
    /// The carrier's code (`nova_poshta`).
    pub provider: Option<String>,
    /// The carrier's delivery type (`W2W`).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: Option<String>,
    pub address: Option<String>,
    /// `null` when Prom names no recipient.
    pub recipient: Option<RecipientView>,
    /// The waybill number, once there is one.
    pub declaration_number: Option<String>,
    /// Paid by the buyer on top of the goods: never part of `total`.
    #[schema(example = "80.00")]
    pub cost: Option<String>,
}

/// How the buyer pays, as Prom describes it.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PaymentView {
    /// The seller's payment option (`Пром-оплата`).
    pub method: Option<String>,
    /// Prom's payment status: `paid`, `unpaid`, `refunded`, `paid_out`, …
    pub status: Option<String>,
}

/// The cancellation reason and text an employee gave with the order's status change, sent
/// to Prom with `canceled`.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct CancellationView {
    /// One of Prom's cancellation reasons (`buyers_request`, `duplicate`, …).
    pub reason: String,
    pub text: Option<String>,
}

/// The delivery of `order`; `None` when it has no delivery field at all (orders created
/// in RO App).
fn delivery(order: &orders::Model) -> Option<DeliveryView> {
    let recipient = RecipientView {
        first_name: order.delivery_recipient_first_name.clone(),
        last_name: order.delivery_recipient_last_name.clone(),
        phone: order.delivery_recipient_phone.clone(),
    };
    let recipient = (recipient.first_name.is_some()
        || recipient.last_name.is_some()
        || recipient.phone.is_some())
    .then_some(recipient);
    let view = DeliveryView {
        method: order.delivery_method.clone(),
        provider: order.delivery_provider.clone(),
        kind: order.delivery_type.clone(),
        address: order.delivery_address.clone(),
        recipient,
        declaration_number: order.delivery_declaration_number.clone(),
        cost: order.delivery_cost.map(money),
    };
    let empty = DeliveryView {
        method: None,
        provider: None,
        kind: None,
        address: None,
        recipient: None,
        declaration_number: None,
        cost: None,
    };
    (view != empty).then_some(view)
}

fn payment(order: &orders::Model) -> Option<PaymentView> {
    (order.payment_method.is_some() || order.payment_status.is_some()).then(|| PaymentView {
        method: order.payment_method.clone(),
        status: order.payment_status.clone(),
    })
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
    /// Prom's own name of `remote_status` (e.g. "Підтверджено" for `custom-137639`): the
    /// one the order came with, else the shop's title for it on Prom; null
    /// for orders created in RO App and when Prom sent none.
    #[schema(example = "Підтверджено")]
    pub remote_status_title: Option<String>,
    pub written_off: bool,
    pub client: Option<ClientView>,
    pub items: Vec<ItemView>,
    #[schema(example = "1234.50")]
    pub total: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// `null` when the order has no delivery information (created in RO App).
    pub delivery: Option<DeliveryView>,
    /// `null` when the order has no payment information (created in RO App).
    pub payment: Option<PaymentView>,
    /// `null` unless a status change gave one: Prom then gets `another` with promsync's
    /// configured text when the order is canceled.
    pub cancellation: Option<CancellationView>,
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
    let shops: HashMap<i64, (String, String, Option<String>)> = if shop_ids.is_empty() {
        HashMap::new()
    } else {
        shops::Entity::find()
            .select_only()
            .columns([
                shops::Column::Id,
                shops::Column::Name,
                shops::Column::PromUrl,
                shops::Column::OrderUrlTemplate,
            ])
            .filter(shops::Column::AccountId.eq(account_id))
            .filter(shops::Column::Id.is_in(shop_ids))
            .into_tuple::<(i64, String, String, Option<String>)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, name, prom_url, template)| (id, (name, prom_url, template)))
            .collect()
    };
    let prom_titles = prom_titles(db, &shops, &rows).await?;
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
        let prom_url = order.external_id.as_deref().map(|external_id| match &shop {
            Some((_, (_, origin, template))) => {
                prom_order_url(Some(origin), template.as_deref(), external_id)
            }
            None => prom_order_url(None, None, external_id),
        });
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
        let delivery = delivery(&order);
        let payment = payment(&order);
        let cancellation = order
            .cancellation_reason
            .clone()
            .map(|reason| CancellationView {
                reason,
                text: order.cancellation_text.clone(),
            });
        views.push(OrderView {
            delivery,
            payment,
            cancellation,
            id: order.id,
            number: order.number,
            source: if order.external_id.is_some() {
                OrderSource::Prom
            } else {
                OrderSource::Roapp
            },
            shop: shop.map(|(id, (name, _, _))| ShopRef {
                id,
                name: name.clone(),
            }),
            external_id: order.external_id,
            remote_created_at: order.remote_created_at,
            last_synced_at: order.last_synced_at,
            prom_url,
            status,
            remote_status_title: order.remote_status_title.or_else(|| {
                let key = (order.shop_id?, order.remote_status.clone()?);
                prom_titles.get(&key).cloned()
            }),
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

/// The titles the orders' shops have on Prom for the statuses of `rows` whose own title
/// is missing (an order imported before titles were kept), by (shop, Prom status). Only
/// shops of the account (`shops`) are asked for.
async fn prom_titles<C: ConnectionTrait>(
    db: &C,
    shops: &HashMap<i64, (String, String, Option<String>)>,
    rows: &[orders::Model],
) -> Result<HashMap<(i64, String), String>, DbErr> {
    let wanted: BTreeSet<(i64, &str)> = rows
        .iter()
        .filter(|o| o.remote_status_title.is_none())
        .filter_map(|o| Some((o.shop_id?, o.remote_status.as_deref()?)))
        .filter(|(shop, _)| shops.contains_key(shop))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(prom_status_options::Entity::find()
        .filter(prom_status_options::Column::ShopId.is_in(wanted.iter().map(|(shop, _)| *shop)))
        .filter(prom_status_options::Column::Code.is_in(wanted.iter().map(|(_, code)| *code)))
        .all(db)
        .await?
        .into_iter()
        .filter(|row| wanted.contains(&(row.shop_id, row.code.as_str())))
        .map(|row| ((row.shop_id, row.code), row.title))
        .collect())
}

/// The Order view of one order of `account_id`.
pub async fn view<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    order: orders::Model,
) -> ServiceResult<OrderView> {
    views(db, account_id, vec![order])
        .await?
        .pop()
        .ok_or(ServiceError::NotFound)
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
}
