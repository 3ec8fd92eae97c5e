//! The page frame every UI screen shares (header, navigation, language switch, sign-out
//! form), the sign-in page, error pages, and small rendering helpers.

use actix_web::{http::StatusCode, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::{
    i18n::{Lang, Texts},
    session::Operator,
};
use crate::{domain::Permission, error::ApiError};

/// Times are shown in UTC, to the minute.
pub fn when(at: Option<DateTime<Utc>>, texts: &Texts) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| texts.never.to_owned())
}

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · promsync" }
            link rel="stylesheet" href="/ui/static/app.css";
            script src="/ui/static/app.js" defer {}
        }
    }
}

/// `here` with `lang=` added: the language links must lead to a page that answers GET,
/// also from a page that answered a form (whose own URL only takes POST).
fn in_lang(here: &str, code: &str) -> String {
    let joint = if here.contains('?') { '&' } else { '?' };
    format!("{here}{joint}lang={code}")
}

/// A page for a signed-in employee; `here` is the GET address of what it shows.
pub fn frame(op: &Operator, here: &str, title: &str, body: Markup) -> Markup {
    let t = op.lang.texts();
    html! {
        html lang=(op.lang.code()) {
            (head(title))
            body {
                header {
                    strong { (t.app) }
                    nav {
                        a href="/ui/orders" { (t.nav_orders) }
                        a href="/ui/shops" { (t.nav_shops) }
                        a href="/ui/problems" { (t.nav_problems) }
                        a href="/ui/employees" { (t.nav_employees) }
                    }
                    span.who { (op.name) }
                    span.langs {
                        a href=(in_lang(here, "uk")) hreflang="uk" { "UA" }
                        " "
                        a href=(in_lang(here, "en")) hreflang="en" { "EN" }
                    }
                    form method="post" action="/ui/logout" {
                        (csrf(op))
                        button type="submit" { (t.logout) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

/// Why the employee cannot do something, or `None` if they can.
pub fn lacks(op: &Operator, permission: Permission) -> Option<&'static str> {
    let t = op.lang.texts();
    (!op.caller.has(permission)).then_some(match permission {
        Permission::GoodsWithoutWriteOff => t.needs_goods_permission,
        Permission::ManageIntegrations => t.needs_integrations_permission,
        Permission::ManageEmployees => t.needs_employees_permission,
    })
}

/// A submit button, disabled with its reason shown beside it when the employee lacks
/// the permission (the server refuses the action anyway).
pub fn button(label: &str, refused: Option<&str>, name: Option<&str>) -> Markup {
    html! {
        @if let Some(reason) = refused {
            button type="submit" disabled title=(reason) name=[name] { (label) }
            " " span.reason { (reason) }
        } @else {
            button type="submit" name=[name] { (label) }
        }
    }
}

pub fn notice(text: &str, kind: &str) -> Markup {
    html! { p class=(format!("notice {kind}")) role="status" { (text) } }
}

pub fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(mime::TEXT_HTML_UTF_8)
        .body(markup.into_string())
}

/// Unknown UI paths (and ids that are not numbers) answer an HTML 404.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let lang = Lang::of(&req);
    bare_error(lang, StatusCode::NOT_FOUND, lang.texts().error_not_found)
}

/// What a UI handler answers: its page, or the error in the page frame. A 500 shows
/// a generic message; `ApiError` logs the cause.
pub fn respond(op: &Operator, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    match result {
        Ok(response) => response,
        Err(e) => {
            let t = op.lang.texts();
            let status = actix_web::ResponseError::status_code(&e);
            let message = match &e {
                ApiError::Internal(cause) => {
                    // Logged once with its cause, shown to nobody (as the JSON API does).
                    tracing::error!(error = ?cause, "UI request failed");
                    t.error_internal.to_owned()
                }
                ApiError::NotFound => t.error_not_found.to_owned(),
                ApiError::Forbidden(why) => format!("{} {why}", t.error_forbidden),
                other => other.to_string(),
            };
            html_response(
                status,
                frame(op, "/ui/orders", t.error_title, notice(&message, "error")),
            )
        }
    }
}

/// An error page outside a session (a refused form).
pub fn bare_error(lang: Lang, status: StatusCode, message: &str) -> HttpResponse {
    let t = lang.texts();
    html_response(
        status,
        html! {
            html lang=(lang.code()) {
                (head(t.error_title))
                body { main { h1 { (t.error_title) } (notice(message, "error"))
                    p { a href="/ui/orders" { (t.nav_orders) } } } }
            }
        },
    )
}

pub fn login(lang: Lang, csrf: &str, error: Option<&str>) -> Markup {
    let t = lang.texts();
    html! {
        html lang=(lang.code()) {
            (head(t.login_title))
            body.login {
                main {
                    h1 { (t.app) " · " (t.login_title) }
                    @if let Some(error) = error { (notice(error, "error")) }
                    form method="post" action="/ui/login" {
                        input type="hidden" name="csrf" value=(csrf);
                        label { (t.login_token) " "
                            input type="password" name="token" autocomplete="off" required; }
                        " "
                        button type="submit" { (t.login_submit) }
                    }
                    p.langs {
                        a href="?lang=uk" { "Українська" } " · " a href="?lang=en" { "English" }
                    }
                }
            }
        }
    }
}
