//! The operator UI in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, `fantoccini`). An operator signs in, filters by shop, opens an order on
//! Prom in a new tab, refreshes two orders (one refused as too soon), changes a status
//! and sees what happened to Prom; an employee without the permission sees the actions
//! disabled and is refused by the server anyway.
//!
//! Needs Debian's `chromium` and `chromium-driver` (deploy/test.sh installs them); if
//! they are missing the tests fail and say so. With `PROMSYNC_SCREENSHOTS_DIR` set, the
//! operator test saves the orders table and the order page there as PNG (the README's
//! screenshots: `PROMSYNC_SCREENSHOTS_DIR=docs/screenshots cargo test --test it -- ui_browser::`).

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Method;
use serde_json::json;
use wiremock::{
    matchers::{method, path_regex},
    Mock, ResponseTemplate,
};

use crate::support::{
    employee, eventually, fixture_order, process::Reaped, roapp_order, TestApp,
    CUSTOM_STATUS_ORDER, PENDING_ORDER,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session; the driver process dies with it (`Reaped`).
struct Browser {
    client: Client,
    _driver: Reaped,
    profile: PathBuf,
    base: String,
}

impl Browser {
    async fn start(app: &TestApp) -> Self {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's `{package}` \
                 (deploy/test.sh installs it: apt-get install -y chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map(Reaped)
            .expect("starting chromedriver");
        let webdriver = format!("http://127.0.0.1:{port}");
        eventually("chromedriver to listen", WAIT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        let profile =
            std::env::temp_dir().join(format!("promsync-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).expect("profile dir");
        // Without the background-networking flags Chromium keeps reaching for Google's
        // services, which on a closed network makes it stall.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            _driver: driver,
            profile,
            base: app.address.clone(),
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigation");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    async fn choose(&self, select: &str, value: &str) {
        self.find(select)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value} in `{select}`: {e}"));
    }

    /// Picks a status by name on the order page and submits it.
    async fn change_status(&self, name: &str) {
        self.find("select[name=status_id]")
            .await
            .select_by_label(name)
            .await
            .expect("a status of that name");
        self.click("section.status button").await;
    }

    async fn sign_in(&self, token: &str) {
        self.goto("/ui/login?lang=en").await;
        self.find("input[name=token]")
            .await
            .send_keys(token)
            .await
            .expect("typing the token");
        self.click("form[action='/ui/login'] button[type=submit]")
            .await;
        self.find("form#orders").await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/ui/logout'] button").await;
        self.find("input[name=token]").await;
    }

    async fn order_rows(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for row in self
            .client
            .find_all(Locator::Css("tbody tr[data-order]"))
            .await
            .expect("rows")
        {
            ids.push(row.attr("data-order").await.unwrap().unwrap());
        }
        ids
    }

    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("PROMSYNC_SCREENSHOTS_DIR") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("writing the screenshot");
    }

    async fn close(self) {
        self.client.close().await.expect("closing the browser");
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The orders a test works with: ids of the two imported ones, their Prom ids, and the
/// RO App one.
struct Orders {
    first: String,
    first_ext: String,
    second: String,
    own: i64,
}

/// An app with two Prom orders imported through the webhook (real fixture documents, so
/// buyers and items are real) and one RO App order; the shop's Prom links point at the
/// test's Prom stand-in, which serves a page for them (the machine has no internet).
async fn app_with_orders() -> (TestApp, Orders) {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let orders = orders_to_work_with(&app).await;
    (app, orders)
}

async fn orders_to_work_with(app: &TestApp) -> Orders {
    let template = format!("{}/cms/order/edit/{{id}}", app.prom.uri());
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/shops/{}", app.shop.shop_id),
            &app.admin_token,
            Some(json!({"name": "Шкарпетки UA", "order_url_template": template})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Mock::given(method("GET"))
        .and(path_regex(r"^/cms/order/edit/\d+$"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html><title>Prom order</title><body>Prom</body></html>",
            "text/html",
        ))
        .mount(&app.prom)
        .await;
    let first = fixture_order(PENDING_ORDER);
    let second = fixture_order(CUSTOM_STATUS_ORDER);
    app.push_order(&first).await;
    app.push_order(&second).await;
    app.wait_for_events(2).await;
    let own = roapp_order(app, &app.admin_token).await["id"]
        .as_i64()
        .unwrap();
    let first_ext = first["id"].to_string();
    Orders {
        first: order_id(app, &first_ext).await,
        first_ext,
        second: order_id(app, &second["id"].to_string()).await,
        own,
    }
}

async fn order_id(app: &TestApp, external_id: &str) -> String {
    app.count(&format!(
        "SELECT id FROM orders WHERE external_id = '{external_id}'"
    ))
    .await
    .to_string()
}

#[tokio::test]
async fn an_operator_filters_by_shop_opens_prom_refreshes_two_orders_and_changes_a_status() {
    let (app, orders) = app_with_orders().await;
    let Orders {
        first,
        first_ext,
        second,
        own,
    } = orders;
    let browser = Browser::start(&app).await;

    // Sign in; all three orders are listed.
    browser.sign_in(&app.admin_token).await;
    let mut all = browser.order_rows().await;
    all.sort();
    let mut expected = vec![first.clone(), second.clone(), own.to_string()];
    expected.sort();
    assert_eq!(all, expected);

    // Filter Shop: RO App, then integrations of the one shop.
    browser.choose("select[name=source]", "roapp").await;
    browser.click("form.filters button").await;
    browser
        .find("select[name=source] option[value=roapp][selected]")
        .await;
    assert_eq!(browser.order_rows().await, vec![own.to_string()]);
    browser.choose("select[name=source]", "integrations").await;
    browser
        .choose("select[name=shop_id]", &app.shop.shop_id.to_string())
        .await;
    browser.click("form.filters button").await;
    browser
        .find("select[name=source] option[value=integrations][selected]")
        .await;
    let mut shop_rows = browser.order_rows().await;
    shop_rows.sort();
    let mut imported = vec![first.clone(), second.clone()];
    imported.sort();
    assert_eq!(shop_rows, imported);

    // The README's picture of the orders table, in the default language.
    browser.goto("/ui/orders?lang=uk&source=all&shop_id=").await;
    browser.find("form#orders").await;
    browser.screenshot("orders.png").await;
    browser.goto("/ui/orders?lang=en").await;

    // The Shop column opens the order on Prom in a new tab, without a handle back here.
    let link = format!("tr[data-order='{first}'] td.shop a");
    assert_eq!(
        browser
            .find(&link)
            .await
            .attr("target")
            .await
            .unwrap()
            .as_deref(),
        Some("_blank")
    );
    let here = browser.client.window().await.expect("window");
    browser.click(&link).await;
    let windows = eventually("the Prom tab to open", WAIT, || async {
        let windows = browser.client.windows().await.ok()?;
        (windows.len() == 2).then_some(windows)
    })
    .await;
    let prom_tab = windows.into_iter().find(|w| *w != here).expect("new tab");
    browser
        .client
        .switch_to_window(prom_tab)
        .await
        .expect("switch");
    let expected_url = format!("{}/cms/order/edit/{first_ext}", app.prom.uri());
    eventually("the Prom page to load", WAIT, || async {
        let url = browser.client.current_url().await.ok()?;
        (url.as_str() == expected_url).then_some(())
    })
    .await;
    let opener = browser
        .client
        .execute("return window.opener === null;", vec![])
        .await
        .expect("script");
    assert_eq!(
        opener,
        json!(true),
        "rel=noopener: the Prom tab cannot reach back"
    );
    browser.client.close_window().await.expect("close tab");
    browser
        .client
        .switch_to_window(here)
        .await
        .expect("switch back");

    // Refresh the first order from its page, then both from the list: one is too soon.
    browser.goto(&format!("/ui/orders/{first}")).await;
    browser.click("section.integration button").await;
    assert!(browser
        .text(".notice.refresh")
        .await
        .contains("update queued"));
    browser.goto("/ui/orders?source=integrations").await;
    browser
        .click(&format!("input[name=order_id][value='{first}']"))
        .await;
    browser
        .click(&format!("input[name=order_id][value='{second}']"))
        .await;
    browser.click("details.actions summary").await;
    browser.click("details.actions button").await;
    assert_eq!(
        browser
            .text(&format!("#refresh-results li[data-order='{first}']"))
            .await,
        format!("#{first}: available again in 10 min")
    );
    assert_eq!(
        browser
            .text(&format!("#refresh-results li[data-order='{second}']"))
            .await,
        format!("#{second}: update queued")
    );

    // Done waits for the write-off; the write-off sends it.
    browser.goto(&format!("/ui/orders/{second}?lang=uk")).await;
    browser.find("section.items").await;
    browser.screenshot("order.png").await;
    browser.goto(&format!("/ui/orders/{second}?lang=en")).await;
    browser.change_status("Done").await;
    assert!(browser
        .text(".notice.outbound-deferred")
        .await
        .contains("will be sent to Prom after the write-off"));
    assert!(browser
        .text("section.items")
        .await
        .contains("without write-off"));
    browser.click("section.items form button").await;
    browser.find(".notice.ok").await;
    assert!(!browser
        .text("section.items")
        .await
        .contains("without write-off"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM outbox WHERE order_id = {second}"
        ))
        .await,
        1
    );

    browser.close().await;
}

#[tokio::test]
async fn an_employee_without_the_permission_sees_the_actions_disabled_and_cannot_act() {
    let (app, orders) = app_with_orders().await;
    let first = orders.first;
    let status_before = app
        .count(&format!("SELECT status_id FROM orders WHERE id = {first}"))
        .await;
    let clerk = employee(&app, &[]).await;
    let browser = Browser::start(&app).await;

    browser.sign_in(&clerk).await;
    browser.goto(&format!("/ui/orders/{first}?lang=en")).await;
    let change = browser.find("section.status button").await;
    assert!(!change.is_enabled().await.expect("enabled?"));
    assert!(browser
        .text("section.status")
        .await
        .contains("can add goods without write-off"));
    assert!(!browser
        .find("section.items form button")
        .await
        .is_enabled()
        .await
        .unwrap());

    // Enabling the button in the page does not help: the server refuses.
    browser
        .client
        .execute(
            "document.querySelectorAll('section.status [disabled]').forEach(e => e.disabled = false);",
            vec![],
        )
        .await
        .expect("script");
    browser.change_status("Done").await;
    assert!(browser.text(".notice.error").await.contains("Not allowed"));
    assert_eq!(
        app.count(&format!("SELECT status_id FROM orders WHERE id = {first}"))
            .await,
        status_before
    );

    browser.sign_out().await;
    browser.close().await;
}
