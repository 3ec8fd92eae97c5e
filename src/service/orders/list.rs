//! The account's orders, a page at a time: the filters by origin (`source`) and shop, and
//! the paging bounds, which keep every page's offset far inside the database's range.

use entity::orders;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{views, OrderList};
use crate::service::{Caller, ServiceError, ServiceResult};

const DEFAULT_PER_PAGE: u64 = 50;
pub(crate) const MAX_PER_PAGE: u64 = 200;
/// The last page that may be asked for. The offset `(page - 1) * per_page` must stay far
/// inside the database's 64-bit range (a page of 2^64 made the query builder panic), and
/// no account pages through more than 20 million orders one screen at a time.
const MAX_PAGE: u64 = 100_000;

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

/// The page and page size a list query asks for, within their bounds.
pub(crate) fn paging(query: &ListQuery) -> ServiceResult<(u64, u64)> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 || page > MAX_PAGE {
        return Err(ServiceError::Invalid(format!(
            "`page` must be between 1 and {MAX_PAGE}"
        )));
    }
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ServiceError::Invalid(format!(
            "`per_page` must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok((page, per_page))
}

/// One page of the account's orders, newest first.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn list_orders(
    db: &DatabaseConnection,
    caller: &Caller,
    query: ListQuery,
) -> ServiceResult<OrderList> {
    let (page, per_page) = paging(&query)?;
    let mut select = orders::Entity::find().filter(orders::Column::AccountId.eq(caller.account_id));
    select = match query.source.unwrap_or_default() {
        SourceFilter::Roapp => select.filter(orders::Column::ExternalId.is_null()),
        SourceFilter::Integrations => select.filter(orders::Column::ExternalId.is_not_null()),
        SourceFilter::All => select,
    };
    if let Some(shop_id) = query.shop_id {
        crate::service::shops::find_shop(db, caller.account_id, shop_id).await?;
        select = select.filter(orders::Column::ShopId.eq(shop_id));
    }
    let paginator = select
        .order_by_desc(orders::Column::CreatedAt)
        .order_by_desc(orders::Column::Id)
        .paginate(db, per_page);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page - 1).await?;
    let orders = views(db, caller.account_id, rows).await?;
    Ok(OrderList {
        orders,
        page,
        per_page,
        total,
    })
}

#[cfg(test)]
mod tests {
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
                let _ = Query::<crate::service::sync_log::SyncLogQuery>::from_query(&query);
            }
        }
    }
}
