//! The orders screens: the list (source/shop filter, paging, "Other actions → Update
//! orders" with per-order results) and one order (items, buyer, the four integration
//! fields with a refresh button, status change with its Prom outcome, the waybill form,
//! write-off, sync log). Every read and action goes through the service layer, as the JSON API's do, so
//! the rules (10-minute refresh, outbox, permissions, account scoping) are the same.

use actix_web::{http::StatusCode, web, HttpResponse};
use maud::{html, Markup};
use sea_orm::Iterable;
use serde::Deserialize;

use super::{
    i18n::{cancellation_reason, order_prom_status, with_n, Texts},
    page::{button, csrf, frame, html_response, lacks, notice, respond, when},
    session::{Operator, Posted},
};
use crate::{
    domain::{waybill::Waybill, Carrier, Permission},
    error::ApiError,
    http::AppState,
    prom::client::CancellationReason,
    service::{
        lookups,
        orders::{
            self as service, ListQuery, OrderView, Outbound, RefreshOutcome, RefreshResult,
            SourceFilter,
        },
        shops, sync_log,
    },
};

const PER_PAGE: u64 = 25;
/// How many sync-log entries the order page shows.
const LOG_ENTRIES: u64 = 50;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    pub source: Option<String>,
    pub shop_id: Option<String>,
    pub page: Option<u64>,
}

impl ListParams {
    /// An empty or unknown filter value means "no filter": the filter form always sends
    /// both fields.
    fn query(&self) -> ListQuery {
        ListQuery {
            source: match self.source.as_deref() {
                Some("roapp") => Some(SourceFilter::Roapp),
                Some("integrations") => Some(SourceFilter::Integrations),
                _ => Some(SourceFilter::All),
            },
            shop_id: self.shop_id.as_deref().and_then(|s| s.parse().ok()),
            page: Some(self.page.unwrap_or(1).max(1)),
            per_page: Some(PER_PAGE),
        }
    }

    fn link(&self, page: u64) -> String {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        if let Some(source) = &self.source {
            link.append_pair("source", source);
        }
        if let Some(shop) = &self.shop_id {
            link.append_pair("shop_id", shop);
        }
        link.append_pair("page", &page.to_string());
        format!("/ui/orders?{}", link.finish())
    }
}

fn buyer(order: &OrderView) -> String {
    order
        .client
        .as_ref()
        .map(|c| {
            [c.first_name.as_deref(), c.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Prom's payment status in the operator's words; a status Prom adds later shows as sent.
fn payment_status<'a>(t: &'a Texts, status: &'a str) -> &'a str {
    match status {
        "paid" => t.paid,
        "unpaid" => t.unpaid,
        "refunded" => t.refunded,
        "paid_out" => t.paid_out,
        other => other,
    }
}

/// The list's payment mark and waybill number, so an operator sees at a glance what is
/// paid and what has shipped.
fn shipping_marks(t: &Texts, order: &OrderView) -> Markup {
    let status = order.payment.as_ref().and_then(|p| p.status.as_deref());
    let waybill = order
        .delivery
        .as_ref()
        .and_then(|d| d.declaration_number.as_deref());
    html! {
        @if let Some(status) = status {
            @let class = if status == "paid" { "badge done" } else { "badge pending" };
            span class=(class) data-payment=(status) { (payment_status(t, status)) }
        }
        @if let Some(waybill) = waybill {
            " " span.waybill title=(t.waybill) { (waybill) }
        }
    }
}

fn shop_link(order: &OrderView) -> Markup {
    html! {
        @match (&order.shop, &order.prom_url) {
            (Some(shop), Some(url)) => a.prom href=(url) target="_blank" rel="noopener" { (shop.name) },
            (Some(shop), None) => (shop.name),
            _ => "RO App",
        }
    }
}

fn refresh_result(t: &Texts, result: &RefreshResult) -> String {
    match result.result {
        RefreshOutcome::Queued => t.refresh_queued.to_owned(),
        RefreshOutcome::TooSoon => with_n(
            t.refresh_too_soon,
            result.retry_after_s.unwrap_or(1).div_ceil(60),
        ),
        RefreshOutcome::NotImported => t.refresh_not_imported.to_owned(),
    }
}

/// `GET /ui/orders`
pub async fn list(
    op: Operator,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = list_page(&op, &params, &state, None).await;
    respond(&op, result.map(|m| html_response(StatusCode::OK, m)))
}

async fn list_page(
    op: &Operator,
    params: &ListParams,
    state: &AppState,
    results: Option<&[RefreshResult]>,
) -> Result<Markup, ApiError> {
    let t = op.lang.texts();
    let list = service::list_orders(&state.services.db, &op.caller, params.query()).await?;
    let shops = shops::shop_names(&state.services.db, &op.caller).await?;
    let source = params.source.as_deref().unwrap_or("all");
    let shop_id = params.shop_id.as_deref().unwrap_or("");
    let pages = list.total.div_ceil(list.per_page).max(1);
    let refused = lacks(op, Permission::GoodsWithoutWriteOff);
    let body = html! {
        @if let Some(results) = results {
            section.results {
                h2 { (t.refresh_results) }
                ul id="refresh-results" {
                    @for r in results {
                        li data-order=(r.order_id) data-result=(format!("{:?}", r.result)) {
                            "#" (r.order_id) ": " (refresh_result(t, r))
                        }
                    }
                }
            }
        }
        form.filters method="get" action="/ui/orders" {
            label { (t.filter_shop) " "
                select name="source" {
                    option value="roapp" selected[source == "roapp"] { (t.filter_roapp) }
                    option value="integrations" selected[source == "integrations"] { (t.filter_integrations) }
                    option value="all" selected[source == "all"] { (t.filter_all) }
                }
            }
            " "
            select name="shop_id" aria-label=(t.filter_shop) {
                option value="" { (t.filter_any_shop) }
                @for shop in &shops {
                    option value=(shop.id) selected[shop_id == shop.id.to_string()] { (shop.name) }
                }
            }
            " "
            button type="submit" { (t.filter_apply) }
        }
        form id="orders" method="post" action="/ui/orders/refresh" {
            (csrf(op))
            details.actions {
                summary { (t.other_actions) }
                (button(t.update_orders, refused, None))
            }
            table {
                thead { tr {
                    th { input type="checkbox" class="select-all" title=(t.select_all) aria-label=(t.select_all); }
                    th { (t.col_number) } th { (t.col_date) } th { (t.col_buyer) }
                    th { (t.col_total) } th { (t.payment) } th { (t.col_status) } th { (t.col_prom_status) }
                    th { (t.col_shop) }
                } }
                tbody {
                    @for order in &list.orders {
                        tr data-order=(order.id) {
                            td { input type="checkbox" name="order_id" value=(order.id) aria-label=(order.number); }
                            td { a href=(format!("/ui/orders/{}", order.id)) { (order.number) } }
                            td { (when(Some(order.remote_created_at.unwrap_or(order.created_at)), t)) }
                            td { (buyer(order)) }
                            td.num { (order.total) " " (order.currency) }
                            td.shipping { (shipping_marks(t, order)) }
                            td { (order.status.name) }
                            td { (order.remote_status.as_deref().map(|s| order_prom_status(op.lang, s, order.remote_status_title.as_deref())).unwrap_or_default()) }
                            td.shop { (shop_link(order)) }
                        }
                    }
                }
            }
            @if list.orders.is_empty() { p { (t.no_orders) } }
        }
        nav.paging {
            @if list.page > 1 { a rel="prev" href=(params.link(list.page - 1)) { (t.prev) } " " }
            span { (with_n(t.page_of, format!("{} / {pages}", list.page))) }
            @if list.page < pages { " " a rel="next" href=(params.link(list.page + 1)) { (t.next) } }
        }
    };
    Ok(frame(op, &params.link(list.page), t.orders_title, body))
}

/// `POST /ui/orders/refresh`: the bulk "Update orders"; shows the list again with each
/// order's result (a refusal as "available again in N min").
pub async fn refresh_many(
    posted: Posted,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let ids: Vec<i64> = posted
            .fields
            .all("order_id")
            .filter_map(|id| id.parse().ok())
            .collect();
        let results = service::refresh_orders(&state.services, &op.caller, &ids).await?;
        Ok(html_response(
            StatusCode::OK,
            list_page(op, &params, &state, Some(&results)).await?,
        ))
    }
    .await;
    respond(op, result)
}

/// What happened on the order page just before it was shown.
enum Notice {
    Status(Outbound),
    Waybill(Outbound),
    WrittenOff,
    Refreshed(RefreshResult),
}

/// `GET /ui/orders/{id}`
pub async fn show(op: Operator, id: web::Path<i64>, state: web::Data<AppState>) -> HttpResponse {
    let result = order_page(&op, *id, &state, None).await;
    respond(&op, result)
}

async fn order_page(
    op: &Operator,
    id: i64,
    state: &AppState,
    done: Option<Notice>,
) -> Result<HttpResponse, ApiError> {
    let t = op.lang.texts();
    let db = &state.services.db;
    let order = service::get_order(db, &op.caller, id).await?;
    let statuses = lookups::account_statuses(db, &op.caller).await?;
    let log = sync_log::entries(db, &op.caller, Some(id), None, LOG_ENTRIES).await?;
    let imported = order.external_id.is_some();
    let refused = if imported {
        lacks(op, Permission::GoodsWithoutWriteOff)
    } else {
        None
    };
    let done = done.map(|n| match n {
        Notice::Status(Outbound::Queued) => notice(t.outbound_queued, "ok outbound-queued"),
        Notice::Status(Outbound::DeferredUntilWriteOff) => {
            notice(t.outbound_deferred, "ok outbound-deferred")
        }
        Notice::Status(Outbound::NotMapped) => {
            notice(t.outbound_not_mapped, "warn outbound-not-mapped")
        }
        Notice::Status(Outbound::None) => notice(t.outbound_none, "ok outbound-none"),
        Notice::Waybill(Outbound::Queued) => notice(t.waybill_queued, "ok waybill-queued"),
        Notice::Waybill(_) => notice(t.waybill_saved, "ok waybill-saved"),
        Notice::WrittenOff => notice(t.written_off_done, "ok"),
        Notice::Refreshed(r) => {
            let kind = if r.result == RefreshOutcome::Queued {
                "ok refresh"
            } else {
                "warn refresh"
            };
            notice(&refresh_result(t, &r), kind)
        }
    });
    let body = html! {
        (done.unwrap_or_default())
        div.cards {
        @if imported {
            section.integration {
                h2 { (t.integration) }
                dl {
                    dt { (t.field_shop) } dd { (shop_link(&order)) }
                    dt { (t.field_external_id) } dd id="external-id" { (order.external_id.as_deref().unwrap_or_default()) }
                    dt { (t.field_created) } dd { (when(order.remote_created_at, t)) }
                    dt { (t.field_last_update) } dd { (when(order.last_synced_at, t)) }
                }
                form method="post" action=(format!("/ui/orders/{id}/refresh")) {
                    (csrf(op))
                    (button(t.refresh, refused, None))
                }
            }
        }
        section.status {
            h2 { (t.status) }
            form method="post" action=(format!("/ui/orders/{id}/status")) {
                (csrf(op))
                select name="status_id" aria-label=(t.status) disabled[refused.is_some()] {
                    @for s in &statuses {
                        option value=(s.id) selected[s.id == order.status.id] { (s.name) }
                    }
                }
                @if order.external_id.is_some() {
                    " "
                    select name="cancellation_reason" aria-label=(t.cancellation_reason) disabled[refused.is_some()] {
                        option value="" { (t.cancellation_default) }
                        @for reason in CancellationReason::ALL {
                            option value=(reason.as_str())
                                selected[order.cancellation.as_ref().is_some_and(|c| c.reason == reason.as_str())] {
                                (cancellation_reason(op.lang, reason)) }
                        }
                    }
                    " "
                    input name="cancellation_text" aria-label=(t.cancellation_text) placeholder=(t.cancellation_text)
                        maxlength="500" disabled[refused.is_some()]
                        value=(order.cancellation.as_ref().and_then(|c| c.text.as_deref()).unwrap_or_default());
                }
                " "
                (button(t.change_status, refused, None))
            }
            @if let Some(remote) = &order.remote_status {
                p { (t.col_prom_status) ": " (order_prom_status(op.lang, remote, order.remote_status_title.as_deref())) }
            }
        }
        section.buyer {
            h2 { (t.buyer) }
            @match &order.client {
                Some(c) => p {
                    (buyer(&order)) br;
                    (c.phone.as_deref().unwrap_or_default()) " " (c.email.as_deref().unwrap_or_default())
                },
                None => p { (t.no_buyer) },
            }
        }
        section.delivery {
            h2 { (t.delivery) }
            @match &order.delivery {
                Some(d) => dl {
                    @if let Some(method) = &d.method { dt { (t.delivery_method) } dd { (method) } }
                    @if let Some(address) = &d.address { dt { (t.delivery_address) } dd { (address) } }
                    @if let Some(r) = &d.recipient {
                        dt { (t.recipient) }
                        dd {
                            (r.first_name.as_deref().unwrap_or_default()) " "
                            (r.last_name.as_deref().unwrap_or_default()) " "
                            (r.phone.as_deref().unwrap_or_default())
                        }
                    }
                    @if let Some(waybill) = &d.declaration_number { dt { (t.waybill) } dd.waybill { (waybill) } }
                    @if let Some(cost) = &d.cost { dt { (t.delivery_cost) } dd { (cost) " " (order.currency) } }
                },
                None => p { (t.no_delivery) },
            }
            form.waybill-form method="post" action=(format!("/ui/orders/{id}/waybill")) {
                (csrf(op))
                input type="text" name="number" aria-label=(t.waybill_number) placeholder=(t.waybill_number)
                    maxlength="20" required disabled[refused.is_some()]
                    value=(order.delivery.as_ref().and_then(|d| d.declaration_number.as_deref()).unwrap_or_default());
                " "
                select name="carrier" aria-label=(t.carrier) disabled[refused.is_some()] {
                    @for carrier in Carrier::iter() {
                        option value=(carrier.as_str()) { (carrier_name(carrier)) }
                    }
                }
                " "
                (button(t.set_waybill, refused, None))
            }
        }
        section.payment {
            h2 { (t.payment) }
            @match &order.payment {
                Some(p) => dl {
                    @if let Some(method) = &p.method { dt { (t.payment_method) } dd { (method) } }
                    @if let Some(status) = &p.status { dt { (t.payment_status) } dd { (payment_status(t, status)) } }
                },
                None => p { (t.no_payment) },
            }
        }
        }
        section.items {
            h2 { (t.items) }
            table {
                thead { tr { th { (t.col_product) } th { (t.col_sku) } th { (t.col_quantity) } th { (t.col_price) } th {} } }
                tbody {
                    @for item in &order.items {
                        tr {
                            td { (item.name) } td { (item.sku.as_deref().unwrap_or_default()) }
                            td.num { (item.quantity) } td.num { (item.price) " " (order.currency) }
                            td {
                                @if item.written_off { span.badge.done { (t.written_off) } }
                                @else { span.badge.pending { (t.without_write_off) } }
                            }
                        }
                    }
                }
                tfoot { tr { td colspan="3" { (t.col_total) } td.num { (order.total) " " (order.currency) } td {} } }
            }
            @if !order.written_off {
                form method="post" action=(format!("/ui/orders/{id}/write-off")) {
                    (csrf(op))
                    (button(t.write_off, refused, None))
                }
            }
        }
        section.log {
            h2 { (t.sync_log) }
            (log_table(t, &log))
        }
    };
    Ok(html_response(
        StatusCode::OK,
        frame(
            op,
            &format!("/ui/orders/{id}"),
            &with_n(t.order_title, &order.number),
            body,
        ),
    ))
}

pub fn log_table(t: &Texts, log: &[sync_log::SyncLogEntry]) -> Markup {
    html! {
        @if log.is_empty() { p { (t.no_entries) } } @else {
            table.log {
                thead { tr { th { (t.col_at) } th { (t.col_order) } th { (t.col_source) } th { (t.col_outcome) } th { (t.col_detail) } } }
                tbody {
                    @for e in log {
                        tr class=(e.outcome) {
                            td { (when(Some(e.at), t)) }
                            td { @if let Some(id) = e.order_id { a href=(format!("/ui/orders/{id}")) { "#" (id) } } }
                            td { (e.source) }
                            td { (e.outcome) @if let Some(p) = &e.prom_status { " (" (p) ")" } }
                            td { (e.detail.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn field_id(posted: &Posted, name: &str) -> Result<i64, ApiError> {
    posted
        .fields
        .get(name)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("`{name}` must be a number")))
}

/// `POST /ui/orders/{id}/status`
pub async fn change_status(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let status_id = field_id(&posted, "status_id")?;
        let given = |name| {
            posted
                .fields
                .get(name)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned)
        };
        let cancellation = service::CancellationRequest {
            reason: given("cancellation_reason"),
            text: given("cancellation_text"),
        };
        let changed =
            service::set_status(&state.services, &op.caller, *id, status_id, cancellation).await?;
        order_page(op, *id, &state, Some(Notice::Status(changed.outbound))).await
    }
    .await;
    respond(op, result)
}

/// `POST /ui/orders/{id}/waybill`: the waybill form; a bad number or carrier is a 400
/// naming the field, like the API's. Blanks around a typed or pasted number are dropped
/// here (the API, for programs, takes the number exactly as sent).
pub async fn set_waybill(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let field = |name: &str| posted.fields.get(name).unwrap_or_default();
        let waybill = Waybill::parse(field("number").trim(), field("carrier"))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let set = service::set_waybill(&state.services, &op.caller, *id, waybill).await?;
        order_page(op, *id, &state, Some(Notice::Waybill(set.outbound))).await
    }
    .await;
    respond(op, result)
}

/// A carrier as people know it (the same in both languages).
fn carrier_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::NovaPoshta => "Nova Poshta",
        Carrier::Ukrposhta => "Ukrposhta",
        Carrier::Meest => "Meest",
    }
}

/// `POST /ui/orders/{id}/write-off`
pub async fn write_off(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        service::write_off_goods(&state.services, &op.caller, *id).await?;
        order_page(op, *id, &state, Some(Notice::WrittenOff)).await
    }
    .await;
    respond(op, result)
}

/// `POST /ui/orders/{id}/refresh`: the refresh button of one order; a refusal says
/// when it becomes possible (HTTP 429, like the API).
pub async fn refresh_one(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let result = service::refresh_orders(&state.services, &op.caller, &[*id])
            .await?
            .pop()
            .ok_or(ApiError::NotFound)?;
        let too_soon = result
            .retry_after_s
            .filter(|_| result.result == RefreshOutcome::TooSoon);
        let mut response = order_page(op, *id, &state, Some(Notice::Refreshed(result))).await?;
        if let Some(retry_after_s) = too_soon {
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
                .headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, retry_after_s.into());
        }
        Ok(response)
    }
    .await;
    respond(op, result)
}
