//! Orders (ARCHITECTURE.md, 'Business rules' from 'Status changes reach Prom' on): the
//! view every door shows (`views`), the list with its filters (`list`), one order,
//! creating an RO App order (`create`), changing a status and writing off the goods
//! (`status`), setting the waybill (`waybill`) and the manual refresh from Prom
//! (`refresh`).
//!
//! A status change and the outbox row that carries it to Prom are written in one
//! transaction, so a change is never lost between the database and the broker; the outbox
//! payload only names the order because the publisher sends the order's *current* mapped
//! status ('Prom gets the current status'). The refresh limit is a conditional UPDATE in
//! the database, so two replicas racing for the same order can never both pass.

pub mod create;
pub mod list;
pub mod refresh;
pub mod status;
pub mod views;
pub mod waybill;

use entity::{order_statuses, orders};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};

pub use self::{
    create::{create_order, NewClient, NewItem, NewOrder},
    list::{list_orders, ListQuery, SourceFilter},
    refresh::{refresh_orders, RefreshOutcome, RefreshResult, REFRESH_INTERVAL_S},
    status::{
        set_status, write_off_goods, Cancellation, CancellationRequest, Outbound, StatusChanged,
    },
    views::{
        money, quantity, views, ClientView, ItemView, OrderList, OrderSource, OrderView, ShopRef,
        StatusView,
    },
    waybill::{set_waybill, WaybillSet},
};
use crate::{
    domain::Permission,
    service::{Caller, ServiceError, ServiceResult},
};

/// Where an order's page is on a Prom origin, unless the shop has its own template.
const ORDER_PAGE_PATH: &str = "/cms/order/edit/{id}";

/// Prom's origin for an order that came without a shop.
const DEFAULT_PROM_ORIGIN: &str = "https://my.prom.ua";

/// The link to an imported order's page on Prom: the shop's own template if it has one,
/// else the order page on the shop's own Prom origin (a shop on another Prom host, such as
/// a regional twin or a stand-in, links there, not to `my.prom.ua`).
pub fn prom_order_url(
    prom_origin: Option<&str>,
    template: Option<&str>,
    external_id: &str,
) -> String {
    match template {
        Some(template) => template.replace("{id}", external_id),
        None => format!(
            "{}{}",
            prom_origin
                .unwrap_or(DEFAULT_PROM_ORIGIN)
                .trim_end_matches('/'),
            ORDER_PAGE_PATH.replace("{id}", external_id)
        ),
    }
}

/// One order of the caller's account (404 for any other).
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, order_id = id))]
pub async fn get_order(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ServiceResult<OrderView> {
    let order = find_order(db, caller.account_id, id, false).await?;
    views::view(db, caller.account_id, order).await
}

/// The order `id` of the account, locked for update when inside a transaction that
/// changes it (concurrent status changes and write-offs serialize on the row).
async fn find_order<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    id: i64,
    lock: bool,
) -> ServiceResult<orders::Model> {
    let mut query = orders::Entity::find_by_id(id).filter(orders::Column::AccountId.eq(account_id));
    if lock {
        query = query.lock_exclusive();
    }
    query.one(db).await?.ok_or(ServiceError::NotFound)
}

fn is_imported(order: &orders::Model) -> bool {
    order.external_id.is_some()
}

/// 'Synced orders need a permission' (ARCHITECTURE.md): working with a synced order needs
/// "can add goods without write-off".
fn require_for_synced(caller: &Caller, order: &orders::Model, action: &str) -> ServiceResult<()> {
    if is_imported(order) {
        caller.require(Permission::GoodsWithoutWriteOff, action)?;
    }
    Ok(())
}

/// The account's status `status_id`, or a 404 naming it.
async fn account_status<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    status_id: i64,
) -> ServiceResult<order_statuses::Model> {
    order_statuses::Entity::find_by_id(status_id)
        .filter(order_statuses::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::Missing(format!("status {status_id} not found")))
}

#[cfg(test)]
mod tests {
    use super::prom_order_url;

    #[test]
    fn an_order_links_to_its_shops_own_prom_origin() {
        assert_eq!(
            prom_order_url(Some("https://my.prom.md"), None, "42"),
            "https://my.prom.md/cms/order/edit/42"
        );
        assert_eq!(
            prom_order_url(Some("http://127.0.0.1:9400/"), None, "7"),
            "http://127.0.0.1:9400/cms/order/edit/7"
        );
    }

    #[test]
    fn a_shops_template_wins_and_no_shop_means_my_prom_ua() {
        assert_eq!(
            prom_order_url(
                Some("https://my.prom.ua"),
                Some("https://crm.example/prom/{id}"),
                "9"
            ),
            "https://crm.example/prom/9"
        );
        assert_eq!(
            prom_order_url(None, None, "9"),
            "https://my.prom.ua/cms/order/edit/9"
        );
    }
}
