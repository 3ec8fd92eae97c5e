//! The operator UI under `/ui`: server-rendered HTML (maud) with a little local CSS and
//! JS, no front-end build and nothing from a CDN. It shows what RO App's own Prom
//! integration shows operators (orders table with the Shop filter and column, Prom links,
//! "Other actions → Update orders", the order page with its integration fields, shop
//! settings, sync problems), in Ukrainian by default and English on request.
//!
//! Every page reads and acts through the application layer (`crate::service`), as the
//! JSON API does, with the same `Caller` and permissions; this module only renders and
//! parses forms.
//! Modules: `session` (sign-in, cookies, CSRF), `i18n`, `page` (frame and helpers),
//! `orders`, `shops`, `problems`, `employees`.

pub mod employees;
pub mod i18n;
pub mod orders;
pub mod page;
pub mod problems;
pub mod session;
pub mod shops;

use actix_web::{
    cookie::{Cookie, SameSite},
    http::header::{self, HeaderValue},
    middleware, web, HttpResponse,
};

use i18n::{Lang, LANG_COOKIE};

const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");
/// Everything the pages load comes from here; no inline script can run.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   form-action 'self'; base-uri 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(to_orders)).service(
        web::scope("/ui")
            .app_data(web::PayloadConfig::new(session::FORM_LIMIT))
            .wrap(middleware::from_fn(headers_and_language))
            .route("", web::get().to(to_orders))
            .route("/", web::get().to(to_orders))
            .route("/static/app.css", web::get().to(css))
            .route("/static/app.js", web::get().to(js))
            .route("/login", web::get().to(session::login_form))
            .route("/login", web::post().to(session::login))
            .route("/logout", web::post().to(session::logout))
            .route("/orders", web::get().to(orders::list))
            .route("/orders/refresh", web::post().to(orders::refresh_many))
            .route("/orders/{id}", web::get().to(orders::show))
            .route("/orders/{id}/status", web::post().to(orders::change_status))
            .route("/orders/{id}/write-off", web::post().to(orders::write_off))
            .route("/orders/{id}/waybill", web::post().to(orders::set_waybill))
            .route("/orders/{id}/refresh", web::post().to(orders::refresh_one))
            .route("/shops", web::get().to(shops::list))
            .route("/shops/{id}", web::get().to(shops::show))
            .route("/shops/{id}", web::post().to(shops::save))
            .route("/shops/{id}/mapping", web::post().to(shops::save_mapping))
            .route("/shops/{id}/rotate-secret", web::post().to(shops::rotate))
            .route(
                "/shops/{id}/prom-statuses/refresh",
                web::post().to(shops::refresh_prom_statuses),
            )
            .route("/problems", web::get().to(problems::show))
            .route("/problems/requeue", web::post().to(problems::requeue))
            .route("/employees", web::get().to(employees::list))
            .route("/employees", web::post().to(employees::create))
            .route("/employees/{id}/delete", web::post().to(employees::delete))
            .app_data(web::PathConfig::default().error_handler(|_, req| {
                let lang = Lang::of(req);
                let page = page::bare_error(
                    lang,
                    actix_web::http::StatusCode::NOT_FOUND,
                    lang.texts().error_not_found,
                );
                actix_web::error::InternalError::from_response("not found", page).into()
            }))
            .default_service(web::to(page::not_found)),
    );
}

async fn to_orders() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/orders"))
        .finish()
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(APP_CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(APP_JS)
}

/// Security headers on every UI answer, and `?lang=` remembered in a cookie so the
/// choice survives the next click.
async fn headers_and_language(
    req: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let chosen = Lang::from_query(req.query_string());
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(lang) = chosen {
        let cookie = Cookie::build(LANG_COOKIE, lang.code())
            .path("/ui")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::days(365))
            .finish();
        response.response_mut().add_cookie(&cookie)?;
    }
    Ok(response)
}
