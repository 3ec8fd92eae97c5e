//! Shop settings for employees with `manage_integrations`: Prom URL, the write-only
//! token, language, product and client matching, polling, the shop's statuses on Prom
//! (refreshed on demand), the status mapping editor offering Prom's titles, webhook secret
//! rotation, and the shop's health. Reads and writes go through the shop
//! services the JSON API uses too (validation, write-only token, rotation grace), never
//! to the credential columns directly.

use std::collections::{BTreeSet, HashMap};

use actix_web::{http::StatusCode, web, HttpResponse};
use maud::{html, Markup};

use super::{
    i18n::{order_prom_status, Texts},
    page::{button, csrf, frame, html_response, lacks, notice, respond, when},
    session::{Operator, Posted},
};
use crate::{
    domain::{Permission, PromStatusKind, Spelled},
    error::ApiError,
    http::AppState,
    service::{
        lookups,
        shops::{
            self as service,
            mapping::{INBOUND_PROM_STATUSES, OUTBOUND_PROM_STATUSES},
            ShopPatch, StatusMapping,
        },
        ServiceError,
    },
};

/// `GET /ui/shops`: every employee sees the shop names; settings and health need
/// `manage_integrations`.
pub async fn list(op: Operator, state: web::Data<AppState>) -> HttpResponse {
    let result = async {
        let t = op.lang.texts();
        let body = match lacks(&op, Permission::ManageIntegrations) {
            Some(reason) => {
                let names = service::shop_names(&state.services.db, &op.caller).await?;
                html! {
                    (notice(reason, "warn"))
                    ul { @for shop in &names { li { (shop.name) } } }
                }
            }
            None => {
                let shops = service::list_shops(&state.services.db, &op.caller).await?;
                html! {
                    table {
                        thead { tr { th { (t.shop_name) } th { (t.prom_url) } th { (t.prom_token) } } }
                        tbody {
                            @for shop in &shops {
                                tr {
                                    td { a href=(format!("/ui/shops/{}", shop.id)) { (shop.name) } }
                                    td { (shop.prom_url) }
                                    td { @if shop.token_rejected { span.badge.pending { (t.token_rejected) } }
                                         @else { (t.token_ok) } }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(html_response(StatusCode::OK, frame(&op, "/ui/shops", t.shops_title, body)))
    }
    .await;
    respond(&op, result)
}

fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

async fn shop_page(
    op: &Operator,
    id: i64,
    state: &AppState,
    done: Option<Markup>,
) -> Result<HttpResponse, ApiError> {
    let t: &Texts = op.lang.texts();
    let db = &state.services.db;
    let shop = service::get_shop(db, &op.caller, id).await?;
    let health = service::shop_health(db, &op.caller, id).await?;
    let mapping = service::status_mapping(db, &op.caller, id).await?;
    let statuses = lookups::account_statuses(db, &op.caller).await?;
    let prom = service::prom_statuses(db, &op.caller, id).await?;
    let titles: HashMap<&str, &str> = prom
        .statuses
        .iter()
        .map(|s| (s.code.as_str(), s.title.as_str()))
        .collect();
    let custom = || {
        prom.statuses
            .iter()
            .filter(|s| s.kind == PromStatusKind::Custom)
            .map(|s| s.code.as_str())
    };
    // Offered in the mapping editor: Prom's standard statuses, the shop's own ones on
    // Prom, and whatever is mapped now (a custom status gone from Prom says so).
    let inbound: BTreeSet<&str> = INBOUND_PROM_STATUSES
        .iter()
        .copied()
        .chain(custom())
        .chain(mapping.inbound.keys().map(String::as_str))
        .collect();
    let outbound: BTreeSet<&str> = OUTBOUND_PROM_STATUSES
        .iter()
        .copied()
        .chain(custom())
        .chain(mapping.outbound.values().map(String::as_str))
        .collect();
    let label = |code: &str| {
        let title = order_prom_status(op.lang, code, titles.get(code).copied());
        let standard = INBOUND_PROM_STATUSES.contains(&code);
        if standard || titles.contains_key(code) {
            title
        } else {
            format!("{title} ({})", t.not_on_prom)
        }
    };
    let body = html! {
        (done.unwrap_or_default())
        section.health {
            h2 { (t.health) }
            dl {
                dt { (t.last_poll) } dd { (when(health.polled_until, t)) }
                dt { (t.last_error) } dd id="last-error" {
                    @match &health.last_error {
                        Some((at, why)) => { (when(Some(*at), t)) ": " (why) },
                        None => (t.none),
                    }
                }
                dt { (t.prom_token) } dd {
                    @match health.token_rejected_at {
                        Some(at) => span.badge.pending { (t.token_rejected) " " (when(Some(at), t)) },
                        None => (t.token_ok),
                    }
                }
            }
        }
        section {
            h2 { (t.shop_settings) }
            form.settings method="post" action=(format!("/ui/shops/{id}")) {
                (csrf(op))
                label { (t.shop_name) " " input name="name" value=(shop.name) required; }
                label { (t.prom_url) " " input name="prom_url" type="url" value=(shop.prom_url) required; }
                label { (t.prom_token) " " input name="prom_token" type="password" autocomplete="new-password" value="";
                    " " small { (t.prom_token_hint) } }
                label { (t.language) " " (select("language", &shop.language, &[("uk", "uk"), ("ru", "ru")])) }
                label { (t.match_products_by) " " (select("match_products_by", &shop.match_products_by,
                    &[("sku", "sku"), ("name", "name"), ("prom_id", "prom_id")])) }
                label { (t.client_matching) " " (select("client_matching", &shop.client_matching,
                    &[("always_new", "always_new"), ("phone_or_email", "phone_or_email")])) }
                label { input type="checkbox" name="poll_enabled" value="on" checked[shop.poll_enabled]; " " (t.poll_enabled) }
                label { (t.poll_interval) " " input name="poll_interval_s" type="number" min="10" max="86400" value=(shop.poll_interval_s); }
                button type="submit" { (t.save) }
            }
        }
        section #prom-statuses {
            h2 { (t.prom_statuses) }
            p { (t.prom_statuses_fetched) ": " (when(prom.fetched_at, t)) }
            @if !prom.statuses.is_empty() {
                ul { @for status in &prom.statuses { li { (label(&status.code)) } } }
            }
            form method="post" action=(format!("/ui/shops/{id}/prom-statuses/refresh")) {
                (csrf(op))
                (button(t.refresh_prom_statuses, None, None))
            }
        }
        section {
            h2 { (t.mapping) }
            form.settings method="post" action=(format!("/ui/shops/{id}/mapping")) {
                (csrf(op))
                h3 { (t.mapping_inbound) }
                table { tbody {
                    @for prom in &inbound {
                        tr { td { (label(prom)) } td {
                            select name=(format!("in:{prom}")) {
                                option value="" { (t.unmapped) }
                                @for s in &statuses {
                                    option value=(s.id) selected[mapping.inbound.get(*prom) == Some(&s.id)] { (s.name) }
                                }
                            }
                        } }
                    }
                } }
                h3 { (t.mapping_outbound) }
                table { tbody {
                    @for s in &statuses {
                        @let current = mapping.outbound.get(&s.id.to_string());
                        tr { td { (s.name) } td {
                            select name=(format!("out:{}", s.id)) {
                                option value="" { (t.unmapped) }
                                @for prom in &outbound {
                                    option value=(prom) selected[current.map(String::as_str) == Some(*prom)] {
                                        (label(prom)) }
                                }
                            }
                        } }
                    }
                } }
                button type="submit" { (t.save) }
            }
        }
        section {
            h2 { (t.secret) }
            @if let Some(until) = shop.previous_secret_expires_at {
                p { (t.previous_valid_until) " " (when(Some(until), t)) }
            }
            form method="post" action=(format!("/ui/shops/{id}/rotate-secret")) {
                (csrf(op))
                (button(t.rotate_secret, None, None))
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        frame(op, &format!("/ui/shops/{id}"), &shop.name, body),
    ))
}

/// `GET /ui/shops/{id}`
pub async fn show(op: Operator, id: web::Path<i64>, state: web::Data<AppState>) -> HttpResponse {
    let result = shop_page(&op, *id, &state, None).await;
    respond(&op, result)
}

/// The settings form as a PATCH: an empty token keeps the stored one (write-only), an
/// unticked box is `false`.
fn patch_of(posted: &Posted) -> Result<ShopPatch, ApiError> {
    let f = &posted.fields;
    let text = |name: &str| f.get(name).map(str::to_owned);
    let poll_interval_s = match f.get("poll_interval_s").map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(v.parse::<i32>().map_err(|_| {
            ApiError::BadRequest("`poll_interval_s` must be a whole number of seconds".into())
        })?),
    };
    Ok(ShopPatch {
        name: text("name"),
        prom_url: text("prom_url"),
        prom_token: text("prom_token").filter(|t| !t.trim().is_empty()),
        language: text("language").map(Spelled::from),
        match_products_by: text("match_products_by").map(Spelled::from),
        client_matching: text("client_matching").map(Spelled::from),
        poll_enabled: Some(f.get("poll_enabled").is_some()),
        poll_interval_s,
        ..Default::default()
    })
}

/// `POST /ui/shops/{id}`
pub async fn save(posted: Posted, id: web::Path<i64>, state: web::Data<AppState>) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        service::patch_shop(&state.services, &op.caller, *id, patch_of(&posted)?).await?;
        shop_page(op, *id, &state, Some(notice(op.lang.texts().saved, "ok"))).await
    }
    .await;
    respond(op, result)
}

/// The editor's selects as the API's whole mapping: `in:<prom status>` = RO App status
/// id, `out:<status id>` = Prom status; an empty choice is unmapped.
fn mapping_of(posted: &Posted) -> Result<StatusMapping, ApiError> {
    let mut mapping = StatusMapping::default();
    for (name, value) in posted.fields.pairs() {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if let Some(prom) = name.strip_prefix("in:") {
            let status_id = value
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("`{value}` is not a status id")))?;
            mapping.inbound.insert(prom.to_owned(), status_id);
        } else if let Some(status_id) = name.strip_prefix("out:") {
            mapping
                .outbound
                .insert(status_id.to_owned(), value.to_owned());
        }
    }
    Ok(mapping)
}

/// `POST /ui/shops/{id}/mapping`
pub async fn save_mapping(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        service::replace_status_mapping(&state.services, &op.caller, *id, mapping_of(&posted)?)
            .await?;
        shop_page(op, *id, &state, Some(notice(op.lang.texts().saved, "ok"))).await
    }
    .await;
    respond(op, result)
}

/// `POST /ui/shops/{id}/prom-statuses/refresh`: Prom failing is said on the shop's page
/// (and kept in its health), not as an error page.
pub async fn refresh_prom_statuses(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let t = op.lang.texts();
        let done = match service::refresh_prom_statuses(&state.services, &op.caller, *id).await {
            Ok(_) => notice(t.prom_statuses_refreshed, "ok"),
            Err(ServiceError::Prom(why)) => notice(&why, "error"),
            Err(e) => return Err(e.into()),
        };
        shop_page(op, *id, &state, Some(done)).await
    }
    .await;
    respond(op, result)
}

/// `POST /ui/shops/{id}/rotate-secret`: the new secret is shown on this answer only.
pub async fn rotate(
    posted: Posted,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let op = &posted.op;
    let result = async {
        let t = op.lang.texts();
        let rotated = service::rotate_shop_secret(&state.services, &op.caller, *id, None).await?;
        let shown = html! {
            div.notice.ok role="status" {
                (t.new_secret_once) " " code.secret { (rotated.webhook_secret) }
                br; (t.previous_valid_until) " " (when(Some(rotated.previous_secret_expires_at), t))
            }
        };
        shop_page(op, *id, &state, Some(shown)).await
    }
    .await;
    respond(op, result)
}
