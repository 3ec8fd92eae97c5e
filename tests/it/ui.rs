//! The operator UI over plain HTTP (cheaper than a browser): sign-in and its cookie flags,
//! CSRF on every form, the orders table's filter and Prom links, bulk refresh results,
//! status outcomes, the waybill form, permission refusals, shop settings, sync problems
//! and employees, in Ukrainian by default and English on request.

use std::{collections::HashMap, time::Duration};

use promsync::broker::Lane;
use reqwest::{header, redirect, Method, StatusCode};
use sea_orm::ConnectionTrait;
use wiremock::{
    matchers::{method, path},
    Mock, ResponseTemplate,
};

use crate::support::{
    capture_logs, employee, fixture_order, insert_imported_order, post_thin_webhook, roapp_order,
    statuses, TestApp, CUSTOM_STATUS_ORDER,
};

const WAIT: Duration = Duration::from_secs(30);

/// A browser stand-in: keeps cookies by hand, never follows redirects.
struct Ui {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    /// `Set-Cookie` headers of the last answer, as sent.
    last_set_cookies: Vec<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    headers: header::HeaderMap,
    body: String,
}

impl Page {
    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let start = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in: {}", self.body))
            + r#"name="csrf" value=""#.len();
        let end = self.body[start..].find('"').expect("end of csrf") + start;
        self.body[start..end].to_owned()
    }
}

impl Ui {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.address.clone(),
            cookies: HashMap::new(),
            last_set_cookies: Vec::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = request
            .header(header::COOKIE, cookie.join("; "))
            .send()
            .await
            .expect("request");
        self.last_set_cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for set in &self.last_set_cookies {
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            location: response
                .headers()
                .get(header::LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(fields);
        self.send(request).await
    }

    /// Signs in with an employee token; answers the orders page and the session's
    /// `Set-Cookie` header.
    async fn sign_in(&mut self, token: &str) -> (Page, String) {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200);
        let answer = self
            .post("/ui/login", &[("csrf", &form.csrf()), ("token", token)])
            .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location.as_deref(), Some("/ui/orders"));
        let session = self
            .last_set_cookies
            .iter()
            .find(|c| c.starts_with("promsync_session="))
            .expect("session cookie")
            .clone();
        (self.get("/ui/orders").await, session)
    }
}

async fn status_of(app: &TestApp, order_id: i64) -> i64 {
    app.count(&format!(
        "SELECT status_id FROM orders WHERE id = {order_id}"
    ))
    .await
}

#[tokio::test]
async fn signing_in_sets_an_httponly_samesite_session_cookie_and_shows_the_orders() {
    let app = TestApp::builder()
        .prom_products_missing()
        .capture_logs()
        .spawn()
        .await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let mut ui = Ui::new(&app);

    // Signed out: the root and the orders page send the browser to the sign-in form.
    let root = ui.get("/").await;
    assert_eq!(root.status, 303);
    assert_eq!(root.location.as_deref(), Some("/ui/orders"));
    let orders = ui.get("/ui/orders").await;
    assert_eq!(orders.status, 303);
    assert_eq!(orders.location.as_deref(), Some("/ui/login"));

    let (page, session) = ui.sign_in(&app.admin_token).await;
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(session.contains("Path=/ui"), "{session}");
    assert!(
        !session.contains(&app.admin_token),
        "the API token is not the session"
    );
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"lang="uk""#), "Ukrainian by default");
    assert!(page.body.contains("Замовлення"));
    assert!(page.body.contains(&format!("/ui/orders/{order}")));
    assert_eq!(
        app.count("SELECT count(*) FROM ui_sessions").await,
        1,
        "one stored session"
    );
    // Neither the employee token nor the session id reaches a log line.
    let session_id = ui.cookies["promsync_session"].clone();
    let logs = capture_logs().contents();
    assert!(!logs.contains(&app.admin_token) && !logs.contains(&session_id));
}

#[tokio::test]
async fn a_wrong_token_or_a_forged_sign_in_form_starts_no_session() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut ui = Ui::new(&app);

    let form = ui.get("/ui/login").await;
    let wrong = ui
        .post("/ui/login", &[("csrf", &form.csrf()), ("token", "ps_nope")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Невідомий токен"), "{}", wrong.body);

    // A form posted from elsewhere has no matching double-submit cookie.
    let mut other = Ui::new(&app);
    let forged = other
        .post(
            "/ui/login",
            &[("csrf", "guess"), ("token", &app.admin_token)],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!other.cookies.contains_key("promsync_session"));
    assert_eq!(app.count("SELECT count(*) FROM ui_sessions").await, 0);
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_changes_nothing() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let done = statuses(&app, &app.admin_token).await["done"];
    let before = status_of(&app, order).await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let done_s = done.to_string();

    for csrf in ["", "0000", "forged-token"] {
        let page = ui
            .post(
                &format!("/ui/orders/{order}/status"),
                &[("csrf", csrf), ("status_id", &done_s)],
            )
            .await;
        assert_eq!(page.status, 403, "csrf {csrf:?}");
    }
    let refresh = ui
        .post("/ui/orders/refresh", &[("order_id", &order.to_string())])
        .await;
    assert_eq!(refresh.status, 403);
    assert_eq!(status_of(&app, order).await, before);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = {order} AND last_refresh_at IS NOT NULL"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn the_order_page_sends_a_cancellation_reason_and_text_with_a_canceled_status() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let canceled = statuses(&app, &app.admin_token).await["canceled"].to_string();
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let page = ui.get(&format!("/ui/orders/{order}?lang=en")).await;
    assert!(
        page.body
            .contains(r#"<option value="buyers_request">Buyer's request</option>"#),
        "{}",
        page.body
    );

    // Act
    let changed = ui
        .post(
            &format!("/ui/orders/{order}/status?lang=en"),
            &[
                ("csrf", &page.csrf()),
                ("status_id", &canceled),
                ("cancellation_reason", "buyers_request"),
                ("cancellation_text", "Покупець передумав"),
            ],
        )
        .await;

    // Assert
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(
        changed
            .body
            .contains(r#"<option value="buyers_request" selected>"#),
        "{}",
        changed.body
    );
    let (_, view) = app
        .call(
            Method::GET,
            &format!("/api/orders/{order}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(
        view["cancellation"],
        serde_json::json!({"reason": "buyers_request", "text": "Покупець передумав"})
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_the_cookie() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut ui = Ui::new(&app);
    let (page, _) = ui.sign_in(&app.admin_token).await;
    let stolen = ui.cookies.clone();
    let out = ui.post("/ui/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/ui/login"));

    let mut replay = Ui::new(&app);
    replay.cookies = stolen;
    let again = replay.get("/ui/orders").await;
    assert_eq!(again.status, 303);
    assert_eq!(again.location.as_deref(), Some("/ui/login"));
    assert_eq!(app.count("SELECT count(*) FROM ui_sessions").await, 0);
}

#[tokio::test]
async fn the_orders_table_filters_by_shop_and_links_each_prom_order_in_a_new_tab() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let imported = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let own = roapp_order(&app, &app.admin_token).await;
    let own_id = own["id"].as_i64().unwrap();
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let row = |id: i64| format!(r#"data-order="{id}""#);

    let all = ui.get("/ui/orders?source=all&shop_id=").await;
    assert!(all.body.contains(&row(imported)) && all.body.contains(&row(own_id)));
    assert!(
        all.body.contains(&format!(
            r#"href="{}/cms/order/edit/338390710" target="_blank" rel="noopener""#,
            app.prom.uri()
        )),
        "{}",
        all.body
    );

    let roapp = ui.get("/ui/orders?source=roapp&shop_id=").await;
    assert!(roapp.body.contains(&row(own_id)) && !roapp.body.contains(&row(imported)));

    let shop = ui
        .get(&format!(
            "/ui/orders?source=integrations&shop_id={}",
            app.shop.shop_id
        ))
        .await;
    assert!(shop.body.contains(&row(imported)) && !shop.body.contains(&row(own_id)));

    // Another account's shop is not a filter anyone here may use.
    let tenant = app.other_tenant().await;
    let foreign = ui
        .get(&format!("/ui/orders?shop_id={}", tenant.shop.shop_id))
        .await;
    assert_eq!(foreign.status, 404);
}

#[tokio::test]
async fn the_orders_pages_show_a_custom_prom_status_by_its_title_or_by_its_code_without_one() {
    // Arrange: two imported orders in a custom status, one named by Prom, one not.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let titled = insert_imported_order(&app, app.account_id, app.shop.shop_id, "101").await;
    let untitled = insert_imported_order(&app, app.account_id, app.shop.shop_id, "102").await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE orders SET remote_status = 'custom-137639', \
             remote_status_title = CASE WHEN id = {titled} THEN 'Підтверджено' END"
        ))
        .await
        .unwrap();
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;

    // Act
    let list = ui.get("/ui/orders?source=all&shop_id=").await;
    let titled_page = ui.get(&format!("/ui/orders/{titled}")).await;
    let untitled_page = ui.get(&format!("/ui/orders/{untitled}")).await;

    // Assert
    let row = |id: i64| {
        let start = list.body.find(&format!(r#"data-order="{id}""#)).unwrap();
        let end = list.body[start..].find("</tr>").unwrap() + start;
        list.body[start..end].to_owned()
    };
    assert!(
        row(titled).contains("<td>Підтверджено</td>"),
        "{}",
        row(titled)
    );
    assert!(!row(titled).contains("custom-137639"), "{}", row(titled));
    assert!(
        row(untitled).contains("<td>custom-137639</td>"),
        "{}",
        row(untitled)
    );
    assert_eq!(titled_page.status, 200);
    assert!(
        titled_page.body.contains(": Підтверджено</p>"),
        "{}",
        titled_page.body
    );
    assert!(!titled_page.body.contains("custom-137639"));
    assert!(
        untitled_page.body.contains(": custom-137639</p>"),
        "{}",
        untitled_page.body
    );
}

#[tokio::test]
async fn an_order_prom_sent_no_title_for_shows_the_shop_s_title_for_its_status() {
    // Arrange: the shop's statuses fetched from Prom; an order in a custom status without
    // a title of its own (as after promsync set it on Prom).
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.prom_status_options(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "order_status_options": [{"id": 137639, "name": "custom-137639", "title": "Підтверджено"}]
    })))
    .await;
    let shop = app.shop.shop_id;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/shops/{shop}/prom-statuses/refresh"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let order = insert_imported_order(&app, app.account_id, shop, "101").await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE orders SET remote_status = 'custom-137639', remote_status_title = NULL \
             WHERE id = {order}"
        ))
        .await
        .unwrap();
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;

    // Act
    let list = ui.get("/ui/orders?source=all&shop_id=").await;
    let page = ui.get(&format!("/ui/orders/{order}")).await;

    // Assert
    assert!(list.body.contains("<td>Підтверджено</td>"), "{}", list.body);
    assert!(page.body.contains(": Підтверджено</p>"), "{}", page.body);
    assert!(!page.body.contains("custom-137639"));
}

#[tokio::test]
async fn the_shop_page_refreshes_prom_statuses_and_offers_their_titles_in_the_mapping_editor() {
    // Arrange: Prom fails first, then lists a custom status.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let shop = app.shop.shop_id;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let page = ui.get(&format!("/ui/shops/{shop}?lang=en")).await;
    assert!(page.body.contains("Refresh from Prom"), "{}", page.body);
    let csrf = page.csrf();
    app.prom_status_options_once(ResponseTemplate::new(503))
        .await;
    let path = format!("/ui/shops/{shop}/prom-statuses/refresh?lang=en");

    // Act: a refresh Prom fails.
    let failed = ui.post(&path, &[("csrf", &csrf)]).await;

    // Assert: said on the page and kept as the shop's last error.
    assert_eq!(failed.status, 200, "{}", failed.body);
    let last_error = &failed.body[failed.body.find(r#"id="last-error""#).unwrap()..];
    assert!(
        last_error[..400.min(last_error.len())].contains("HTTP 503"),
        "{last_error}"
    );

    // Act: a refresh Prom answers.
    app.prom_status_options(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "order_status_options": [
            {"id": 0, "name": "pending", "title": "Нове"},
            {"id": 137639, "name": "custom-137639", "title": "Підтверджено"},
        ]
    })))
    .await;
    let refreshed = ui.post(&path, &[("csrf", &csrf)]).await;

    // Assert: the editor offers the custom status by its title, in both directions.
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert!(
        refreshed.body.contains("were fetched from Prom"),
        "{}",
        refreshed.body
    );
    assert!(
        refreshed
            .body
            .contains(r#"<select name="in:custom-137639">"#),
        "{}",
        refreshed.body
    );
    assert!(
        refreshed
            .body
            .contains(r#"<option value="custom-137639">Підтверджено</option>"#),
        "{}",
        refreshed.body
    );
    assert!(
        !refreshed.body.contains(">custom-137639<"),
        "{}",
        refreshed.body
    );
}

#[tokio::test]
async fn update_orders_shows_each_orders_result_and_when_a_refused_one_is_available_again() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let first = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let second = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390711").await;
    let mut ui = Ui::new(&app);
    let (page, _) = ui.sign_in(&app.admin_token).await;
    let csrf = page.csrf();

    let one = ui
        .post(
            &format!("/ui/orders/{first}/refresh?lang=en"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(one.body.contains("update queued"), "{}", one.body);

    let both = ui
        .post(
            "/ui/orders/refresh?lang=en",
            &[
                ("csrf", &csrf),
                ("order_id", &first.to_string()),
                ("order_id", &second.to_string()),
            ],
        )
        .await;
    assert_eq!(both.status, 200, "{}", both.body);
    assert!(
        both.body
            .contains(&format!("#{first}: available again in 10 min")),
        "{}",
        both.body
    );
    assert!(
        both.body.contains(&format!("#{second}: update queued")),
        "{}",
        both.body
    );

    // The single-order button says the same, with the API's 429.
    let again = ui
        .post(
            &format!("/ui/orders/{second}/refresh?lang=en"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, 429);
    assert_eq!(again.headers[header::RETRY_AFTER], "600");
    assert!(again.body.contains("available again in 10 min"));
}

#[tokio::test]
async fn a_status_change_says_what_happened_to_prom_and_the_write_off_sends_it() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let kinds = statuses(&app, &app.admin_token).await;
    let mut ui = Ui::new(&app);
    let (page, _) = ui.sign_in(&app.admin_token).await;
    let csrf = page.csrf();
    let path = format!("/ui/orders/{order}");

    let shown = ui.get(&format!("{path}?lang=en")).await;
    assert!(shown.body.contains("without write-off"));
    assert!(shown.body.contains("External ID") && shown.body.contains("338390710"));

    let change = |status: i64| {
        let status = status.to_string();
        (format!("{path}/status"), status)
    };
    let (to, done) = change(kinds["done"]);
    let deferred = ui.post(&to, &[("csrf", &csrf), ("status_id", &done)]).await;
    assert_eq!(deferred.status, 200, "{}", deferred.body);
    assert!(
        deferred.body.contains("outbound-deferred"),
        "{}",
        deferred.body
    );
    assert!(deferred.body.contains("after the write-off"));
    // The answer to a form switches language through the order's own GET address.
    assert!(deferred
        .body
        .contains(&format!(r#"href="/ui/orders/{order}?lang=uk""#)));

    let written = ui
        .post(&format!("{path}/write-off"), &[("csrf", &csrf)])
        .await;
    assert_eq!(written.status, 200);
    assert!(written.body.contains("written off"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE order_id = {order}"
        ))
        .await,
        1,
        "the write-off queued the held-back delivered"
    );

    let (to, canceled) = change(kinds["canceled"]);
    let queued = ui
        .post(&to, &[("csrf", &csrf), ("status_id", &canceled)])
        .await;
    assert!(queued.body.contains("sent to Prom"), "{}", queued.body);

    let (to, new) = change(kinds["new"]);
    let unmapped = ui.post(&to, &[("csrf", &csrf), ("status_id", &new)]).await;
    assert!(unmapped.body.contains("not mapped"), "{}", unmapped.body);
    assert_eq!(status_of(&app, order).await, kinds["new"]);
}

#[tokio::test]
async fn without_the_permission_actions_are_shown_disabled_and_the_server_refuses_them() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let done = statuses(&app, &app.admin_token).await["done"];
    let before = status_of(&app, order).await;
    let clerk = employee(&app, &[]).await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&clerk).await;

    let page = ui.get(&format!("/ui/orders/{order}?lang=en")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("disabled"), "{}", page.body);
    assert!(page.body.contains("can add goods without write-off"));
    let csrf = page.csrf();

    let refused = ui
        .post(
            &format!("/ui/orders/{order}/status"),
            &[("csrf", &csrf), ("status_id", &done.to_string())],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("goods_without_write_off"));
    for action in ["write-off", "refresh"] {
        let refused = ui
            .post(&format!("/ui/orders/{order}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(refused.status, 403, "{action}");
    }
    assert_eq!(status_of(&app, order).await, before);

    // Shop settings need `manage_integrations`.
    let shops = ui.get("/ui/shops?lang=en").await;
    assert!(shops.body.contains("can manage integrations"));
    let settings = ui.get(&format!("/ui/shops/{}", app.shop.shop_id)).await;
    assert_eq!(settings.status, 403);
    let save = ui
        .post(
            &format!("/ui/shops/{}", app.shop.shop_id),
            &[("csrf", &csrf), ("name", "Hijacked")],
        )
        .await;
    assert_eq!(save.status, 403);
    assert_eq!(
        app.text(&format!(
            "SELECT name FROM shops WHERE id = {}",
            app.shop.shop_id
        ))
        .await
        .as_deref(),
        Some("Test shop")
    );
}

#[tokio::test]
async fn the_waybill_form_saves_the_number_says_it_is_queued_and_refuses_without_the_permission() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "338390710").await;
    let path = format!("/ui/orders/{order}");
    let mut admin = Ui::new(&app);
    admin.sign_in(&app.admin_token).await;
    let shown = admin.get(&format!("{path}?lang=en")).await;
    assert!(
        shown.body.contains(&format!(r#"action="{path}/waybill""#)),
        "{}",
        shown.body
    );
    let csrf = shown.csrf();
    let mut clerk_ui = Ui::new(&app);
    clerk_ui.sign_in(&employee(&app, &[]).await).await;
    let clerk_page = clerk_ui.get(&format!("{path}?lang=en")).await;

    // Act
    let bad = admin
        .post(
            &format!("{path}/waybill"),
            &[
                ("csrf", &csrf),
                ("number", "123"),
                ("carrier", "nova_poshta"),
            ],
        )
        .await;
    let saved = admin
        .post(
            &format!("{path}/waybill"),
            &[
                ("csrf", &csrf),
                ("number", " 20450000000001 "),
                ("carrier", "nova_poshta"),
            ],
        )
        .await;
    let refused = clerk_ui
        .post(
            &format!("{path}/waybill"),
            &[
                ("csrf", &clerk_page.csrf()),
                ("number", "20450000000002"),
                ("carrier", "nova_poshta"),
            ],
        )
        .await;

    // Assert
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("number: "), "{}", bad.body);
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("waybill-queued"), "{}", saved.body);
    assert!(saved.body.contains("queued for Prom"), "{}", saved.body);
    assert!(saved.body.contains("20450000000001"));
    let waybill_form = clerk_page
        .body
        .split(r#"class="waybill-form""#)
        .nth(1)
        .expect("the waybill form");
    assert!(waybill_form
        .split("</form>")
        .next()
        .unwrap()
        .contains("disabled"));
    assert_eq!(refused.status, 403);
    assert_eq!(
        app.text(&format!(
            "SELECT waybill_number FROM orders WHERE id = {order}"
        ))
        .await
        .as_deref(),
        Some("20450000000001")
    );
}

#[tokio::test]
async fn english_is_chosen_with_lang_and_remembered() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let en = ui.get("/ui/orders?lang=en").await;
    assert!(en.body.contains(r#"lang="en""#) && en.body.contains("Other actions"));
    let next = ui.get("/ui/orders").await;
    assert!(
        next.body.contains("Update orders"),
        "the cookie keeps English"
    );
    let uk = ui.get("/ui/orders?lang=uk").await;
    assert!(uk.body.contains("Оновити замовлення"));
}

#[tokio::test]
async fn shop_settings_keep_the_api_rules_and_never_show_the_token() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let shop = app.shop.shop_id;
    let kinds = statuses(&app, &app.admin_token).await;
    let token_before = app
        .text(&format!("SELECT prom_token FROM shops WHERE id = {shop}"))
        .await;
    let mut ui = Ui::new(&app);
    let (page, _) = ui.sign_in(&app.admin_token).await;
    let csrf = page.csrf();
    let path = format!("/ui/shops/{shop}?lang=en");

    let settings = ui.get(&path).await;
    assert_eq!(settings.status, 200, "{}", settings.body);
    assert!(
        !settings.body.contains("prom-token-1"),
        "the token is write-only"
    );
    assert!(!settings.body.contains(&app.shop.webhook_secret));
    assert!(settings.body.contains("Token accepted"));

    // A value the API refuses changes nothing.
    let bad = ui
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "Renamed"),
                ("poll_interval_s", "5"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("poll_interval_s"), "{}", bad.body);
    assert_eq!(
        app.text(&format!("SELECT name FROM shops WHERE id = {shop}"))
            .await
            .as_deref(),
        Some("Test shop")
    );

    // A new Prom URL needs the token again: the stored one never goes to another URL.
    let moved = ui
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "Renamed"),
                ("prom_url", "https://my.prom.ua"),
                ("prom_token", ""),
            ],
        )
        .await;
    assert_eq!(moved.status, 400);
    assert!(moved.body.contains("prom_token"), "{}", moved.body);
    assert_eq!(
        app.text(&format!("SELECT prom_url FROM shops WHERE id = {shop}"))
            .await,
        Some(app.prom.uri())
    );

    // An empty token field keeps the token (the URL unchanged); an unticked box turns
    // polling off.
    let prom_url = app.prom.uri();
    let saved = ui
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "Renamed"),
                ("prom_url", &prom_url),
                ("prom_token", ""),
                ("language", "ru"),
                ("match_products_by", "name"),
                ("client_matching", "phone_or_email"),
                ("poll_interval_s", "120"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("Saved."));
    let (status, view) = app
        .call(
            Method::GET,
            &format!("/api/shops/{shop}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["name"], "Renamed");
    assert_eq!(view["language"], "ru");
    assert_eq!(view["match_products_by"], "name");
    assert_eq!(view["client_matching"], "phone_or_email");
    assert_eq!(view["poll_interval_s"], 120);
    assert_eq!(view["poll_enabled"], false);
    assert_eq!(
        app.text(&format!("SELECT prom_token FROM shops WHERE id = {shop}"))
            .await,
        token_before
    );

    // The mapping editor replaces the whole mapping; a bad entry changes nothing.
    let done = kinds["done"].to_string();
    let mapped = ui
        .post(
            &format!("/ui/shops/{shop}/mapping"),
            &[
                ("csrf", &csrf),
                ("in:pending", &kinds["new"].to_string()),
                ("in:paid", ""),
                (&format!("out:{done}"), "delivered"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.body);
    let expected = serde_json::json!({
        "inbound": {"pending": kinds["new"]},
        "outbound": {done.clone(): "delivered"},
    });
    let mapping_path = format!("/api/shops/{shop}/status-mapping");
    let (_, mapping) = app
        .call(Method::GET, &mapping_path, &app.admin_token, None)
        .await;
    assert_eq!(mapping, expected);
    let refused = ui
        .post(
            &format!("/ui/shops/{shop}/mapping"),
            &[("csrf", &csrf), (&format!("out:{done}"), "pending")],
        )
        .await;
    assert_eq!(refused.status, 400);
    let (_, mapping) = app
        .call(Method::GET, &mapping_path, &app.admin_token, None)
        .await;
    assert_eq!(mapping, expected);

    // Rotation shows the new secret once; it signs notifications from now on, and the
    // old one stays valid for the grace period.
    let rotated = ui
        .post(
            &format!("/ui/shops/{shop}/rotate-secret?lang=en"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert!(rotated.body.contains("shown once"));
    let start = rotated.body.find("whsec_").expect("the new secret");
    let end = start + rotated.body[start..].find('<').expect("end of the secret");
    let secret = rotated.body[start..end].to_owned();
    assert_ne!(secret, app.shop.webhook_secret);
    assert_eq!(post_thin_webhook(&app, shop, &secret).await, 202);
    assert_eq!(
        post_thin_webhook(&app, shop, &app.shop.webhook_secret).await,
        202
    );
    assert!(!ui.get(&path).await.body.contains(&secret));
}

#[tokio::test]
async fn sync_problems_show_rejections_with_reasons_and_requeue_a_dead_letter() {
    let app = TestApp::builder()
        .currency("USD")
        .max_attempts(1)
        .spawn()
        .await;
    app.prom_products_missing().await;
    // A notification in UAH for a USD account is rejected with its reason.
    app.push_order(&crate::support::fixture_order(
        crate::support::PENDING_ORDER,
    ))
    .await;
    // Prom refuses the token once: the thin notification is dead-lettered.
    let document: serde_json::Value =
        serde_json::from_str(crate::support::CUSTOM_STATUS_ORDER).unwrap();
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/32345434343"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.prom)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/32345434343"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&app.prom)
        .await;
    let thin = app
        .notify(&serde_json::json!({"order_id": 32345434343_i64}))
        .await;
    assert_eq!(thin.status(), 202);
    app.wait_for_events(1).await;
    crate::support::eventually("a dead letter", WAIT, || async {
        (app.dead_letters(Lane::Inbound).await.len() == 1).then_some(())
    })
    .await;

    // Without `manage_integrations` the page and its action are refused.
    let clerk = employee(&app, &["goods_without_write_off"]).await;
    let mut ui = Ui::new(&app);
    let (orders, _) = ui.sign_in(&clerk).await;
    let page = ui.get("/ui/problems?lang=en").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("can manage integrations"),
        "{}",
        page.body
    );
    let letter = app.dead_letters(Lane::Inbound).await.remove(0);
    let refused = ui
        .post(
            "/ui/problems/requeue",
            &[("csrf", &orders.csrf()), ("id", &letter.id)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(app.dead_letters(Lane::Inbound).await.len(), 1);

    let mut admin = Ui::new(&app);
    admin.sign_in(&app.admin_token).await;
    let page = admin.get("/ui/problems?lang=en").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("rejected"), "{}", page.body);
    assert!(page.body.contains("UAH"), "the reason names the currency");
    assert!(page.body.contains("401"), "{}", page.body);
    let health = admin
        .get(&format!("/ui/shops/{}?lang=en", app.shop.shop_id))
        .await;
    assert!(
        health.body.contains("Prom rejected the token"),
        "{}",
        health.body
    );
    let requeued = admin
        .post(
            "/ui/problems/requeue?lang=en",
            &[("csrf", &page.csrf()), ("id", &letter.id)],
        )
        .await;
    assert_eq!(requeued.status, 200, "{}", requeued.body);
    assert!(requeued.body.contains("back in its queue"));
    // Processed again (and, in UAH, rejected for the currency like the other one).
    app.wait_for_events(2).await;
    assert!(app.dead_letters(Lane::Inbound).await.is_empty());
}

#[tokio::test]
async fn behind_an_https_proxy_the_ui_cookies_are_secure() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let answer = reqwest::Client::new()
        .get(format!("{}/ui/login", app.address))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("request");
    let cookie = answer
        .headers()
        .get(header::SET_COOKIE)
        .expect("login cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let plain = Ui::new(&app).get("/ui/login").await;
    assert_eq!(plain.status, 200);
}

#[tokio::test]
async fn unknown_ui_pages_and_ids_answer_an_html_not_found() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let tenant = app.other_tenant().await;
    let foreign = insert_imported_order(&app, tenant.account_id, tenant.shop.shop_id, "777").await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    for path in [
        "/ui/nowhere?lang=en".to_owned(),
        "/ui/orders/not-a-number?lang=en".to_owned(),
        format!("/ui/orders/{foreign}?lang=en"),
    ] {
        let page = ui.get(&path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.body.contains("Not found."), "{path}: {}", page.body);
    }
}

/// The token shown in the notice after adding an employee.
fn new_token(page: &Page) -> String {
    let marker = r#"id="new-token">"#;
    let start = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no new token in: {}", page.body))
        + marker.len();
    let end = page.body[start..].find('<').expect("end of token") + start;
    page.body[start..end].to_owned()
}

#[tokio::test]
async fn the_employees_screen_adds_an_employee_showing_its_token_once_and_revokes_it() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let admin = app
        .count(&format!(
            "SELECT min(id) FROM employees WHERE account_id = {}",
            app.account_id
        ))
        .await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;
    let screen = ui.get("/ui/employees?lang=en").await;
    assert_eq!(screen.status, 200, "{}", screen.body);
    assert!(
        screen.body.contains(r#"href="/ui/employees""#),
        "in the nav"
    );
    assert!(screen.body.contains("(you)"));
    let csrf = screen.csrf();

    // Act: add an employee who may add goods without write-off.
    let added = ui
        .post(
            "/ui/employees",
            &[
                ("csrf", &csrf),
                ("name", "Olha"),
                ("permission", "goods_without_write_off"),
            ],
        )
        .await;

    // Assert: its token is shown this once, works, and is not shown again.
    assert_eq!(added.status, 200, "{}", added.body);
    let token = new_token(&added);
    let (status, _) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(status, 200);
    let olha = app
        .count("SELECT id FROM employees WHERE name = 'Olha'")
        .await;
    assert_eq!(
        app.text(&format!(
            "SELECT permissions FROM employees WHERE id = {olha}"
        ))
        .await
        .as_deref(),
        Some("goods_without_write_off")
    );
    let again = ui.get("/ui/employees").await;
    assert!(again.body.contains("Olha") && !again.body.contains(&token));
    assert!(again.body.contains("Can add goods without write-off"));

    // A refused name is shown as a notice; nobody is added.
    let refused = ui
        .post("/ui/employees", &[("csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("must not be empty"),
        "{}",
        refused.body
    );
    assert_eq!(app.count("SELECT count(*) FROM employees").await, 2);

    // Act + Assert: revoking Olha stops her token at once.
    let revoked = ui
        .post(&format!("/ui/employees/{olha}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body.contains("Access revoked"), "{}", revoked.body);
    let (status, _) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(status, 401);

    // The last manager is kept, with a readable reason.
    let last = ui
        .post(&format!("/ui/employees/{admin}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(last.status, 409);
    assert!(
        last.body.contains("last employee who can manage employees"),
        "{}",
        last.body
    );
    assert_eq!(app.count("SELECT count(*) FROM employees").await, 1);

    // A forged form deletes nothing.
    let forged = ui
        .post(
            &format!("/ui/employees/{admin}/delete"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn revoking_oneself_on_the_employees_screen_ends_the_session() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/employees",
            &app.admin_token,
            Some(serde_json::json!({"name": "hr", "permissions": ["manage_employees"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (hr, token) = (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap(),
    );
    let mut ui = Ui::new(&app);
    let (page, _) = ui.sign_in(token).await;

    let gone = ui
        .post(
            &format!("/ui/employees/{hr}/delete"),
            &[("csrf", &page.csrf())],
        )
        .await;

    assert_eq!(gone.status, 303);
    assert_eq!(gone.location.as_deref(), Some("/ui/login"));
    let next = ui.get("/ui/employees").await;
    assert_eq!(next.location.as_deref(), Some("/ui/login"));
    assert_eq!(app.count("SELECT count(*) FROM ui_sessions").await, 0);
}

#[tokio::test]
async fn without_manage_employees_the_employees_screen_gives_the_reason_and_refuses() {
    // Arrange: every other permission.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let tenant = app.other_tenant().await;
    let admin = app
        .count(&format!(
            "SELECT min(id) FROM employees WHERE account_id = {}",
            app.account_id
        ))
        .await;
    let foreign = app
        .count(&format!(
            "SELECT min(id) FROM employees WHERE account_id = {}",
            tenant.account_id
        ))
        .await;
    let clerk = employee(&app, &["goods_without_write_off", "manage_integrations"]).await;
    let before = app.count("SELECT count(*) FROM employees").await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&clerk).await;

    // Act
    let screen = ui.get("/ui/employees?lang=en").await;

    // Assert: the reason, a disabled button, nobody's row.
    assert_eq!(screen.status, 200);
    assert!(
        screen.body.contains("can manage employees"),
        "{}",
        screen.body
    );
    assert!(screen.body.contains("disabled"));
    assert!(!screen
        .body
        .contains(&format!("/ui/employees/{admin}/delete")));
    let csrf = screen.csrf();
    let add = ui
        .post(
            "/ui/employees",
            &[
                ("csrf", &csrf),
                ("name", "mole"),
                ("permission", "manage_integrations"),
            ],
        )
        .await;
    assert_eq!(add.status, 403);
    for id in [admin, foreign] {
        let delete = ui
            .post(&format!("/ui/employees/{id}/delete"), &[("csrf", &csrf)])
            .await;
        assert_eq!(delete.status, 403, "{id}");
    }
    assert_eq!(app.count("SELECT count(*) FROM employees").await, before);

    // A manager of this account cannot reach another account's employee either.
    let mut admin_ui = Ui::new(&app);
    let (page, _) = admin_ui.sign_in(&app.admin_token).await;
    let foreign_delete = admin_ui
        .post(
            &format!("/ui/employees/{foreign}/delete?lang=en"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(foreign_delete.status, 404);
    assert_eq!(app.count("SELECT count(*) FROM employees").await, before);
}

/// The id of the one order the app holds, after importing `order`.
async fn import_one(app: &TestApp, order: &serde_json::Value) -> i64 {
    app.push_order(order).await;
    app.wait_for_events(1).await;
    let (_, listed) = app
        .call(Method::GET, "/api/orders", &app.admin_token, None)
        .await;
    listed["orders"][0]["id"].as_i64().expect("an order")
}

#[tokio::test]
async fn the_order_page_shows_a_delivery_and_a_payment_panel_in_both_languages() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = import_one(&app, &fixture_order(CUSTOM_STATUS_ORDER)).await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;

    // Act
    let en = ui.get(&format!("/ui/orders/{order}?lang=en")).await;
    let uk = ui.get(&format!("/ui/orders/{order}?lang=uk")).await;

    // Assert
    assert_eq!(en.status, 200, "{}", en.body);
    for text in [
        "<h2>Delivery</h2>",
        "Нова Пошта",
        "Поштомат",
        "20451069857325",
        "80.00 UAH",
        "<h2>Payment</h2>",
        "Пром-оплата",
        ">Paid<",
    ] {
        assert!(en.body.contains(text), "{text} missing from: {}", en.body);
    }
    for text in ["<h2>Доставка</h2>", "<h2>Оплата</h2>", "ТТН", ">Оплачено<"]
    {
        assert!(uk.body.contains(text), "{text} missing from: {}", uk.body);
    }
}

#[tokio::test]
async fn an_order_without_delivery_or_payment_says_so_on_its_page() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    let order = roapp_order(&app, &app.admin_token).await["id"]
        .as_i64()
        .unwrap();
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;

    // Act
    let page = ui.get(&format!("/ui/orders/{order}?lang=en")).await;

    // Assert
    assert!(
        page.body.contains("No delivery information"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("No payment information"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_orders_table_marks_a_paid_order_and_shows_its_waybill() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    import_one(&app, &fixture_order(CUSTOM_STATUS_ORDER)).await;
    let mut ui = Ui::new(&app);
    ui.sign_in(&app.admin_token).await;

    // Act
    let list = ui.get("/ui/orders?lang=en").await;

    // Assert
    assert!(
        list.body.contains(r#"data-payment="paid""#),
        "{}",
        list.body
    );
    assert!(list.body.contains("20451069857325"), "{}", list.body);
}
