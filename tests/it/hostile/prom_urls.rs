//! A tenant admin chooses a shop's Prom URL, and promsync calls it with the shop's token:
//! pointed at promsync's own network (loopback, private ranges, cloud metadata), that
//! would be a request forgery whose answers come back through error texts. Prom URLs are
//! public https origins (or an origin the deployment allows), checked when saved and at
//! every call; redirects are not followed; Prom's answers never show in error texts; and
//! the stored token never goes to a new URL.

use std::time::Duration;

use promsync::broker::Lane;
use reqwest::{header, Method};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, ResponseTemplate,
};

use crate::support::{eventually, TestApp};

const WAIT: Duration = Duration::from_secs(30);

/// What an internal endpoint would answer: Prometheus text with something to steal.
const METRICS_CANARY: &str = "s3cr3t-canary-7f3a";

fn metrics_text() -> String {
    format!(
        "# HELP internal_build_info {METRICS_CANARY}\n# TYPE internal_build_info gauge\n\
         internal_build_info{{token=\"{METRICS_CANARY}\"}} 1\n"
    )
}

async fn stored_prom_url(app: &TestApp) -> Option<String> {
    app.text(&format!(
        "SELECT prom_url FROM shops WHERE id = {}",
        app.shop.shop_id
    ))
    .await
}

/// Waits for the inbound lane's single dead letter and answers its reason.
async fn dead_letter_reason(app: &TestApp) -> String {
    eventually("a dead letter", WAIT, || async {
        let letters = app.dead_letters(Lane::Inbound).await;
        letters
            .first()
            .map(|l| l.last_error.clone().unwrap_or_default())
    })
    .await
}

/// Signs in to the operator UI as `token` and answers the page at `path`.
async fn operator_page(app: &TestApp, token: &str, page: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies = |response: &reqwest::Response| -> Vec<String> {
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect()
    };
    let form = http
        .get(format!("{}/ui/login", app.address))
        .send()
        .await
        .unwrap();
    let login_cookies = cookies(&form).join("; ");
    let body = form.text().await.unwrap();
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker).expect("a csrf field") + marker.len();
    let csrf = &body[start..start + body[start..].find('"').unwrap()];
    let signed_in = http
        .post(format!("{}/ui/login", app.address))
        .header(header::COOKIE, login_cookies)
        .form(&[("csrf", csrf), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = cookies(&signed_in)
        .into_iter()
        .find(|c| c.starts_with("promsync_session="))
        .expect("a session cookie");
    let answer = http
        .get(format!("{}{page}", app.address))
        .header(header::COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{page}");
    answer.text().await.unwrap()
}

#[tokio::test]
async fn a_loopback_private_link_local_or_ipv4_mapped_prom_url_is_refused_on_create_and_patch() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    let shops_before = app.count("SELECT count(*) FROM shops").await;
    let shop_path = format!("/api/shops/{}", app.shop.shop_id);

    for (url, reason) in [
        ("http://127.0.0.1:9999", "127.0.0.1 is a loopback address"),
        ("https://127.0.0.1", "127.0.0.1 is a loopback address"),
        ("https://[::1]:8080", "::1 is a loopback address"),
        ("https://10.1.2.3", "10.1.2.3 is a private address"),
        ("https://192.168.0.10", "192.168.0.10 is a private address"),
        (
            "https://169.254.169.254",
            "169.254.169.254 is a link-local address",
        ),
        ("https://[fd00::1]", "fd00::1 is a unique-local address"),
        (
            "https://100.64.0.1",
            "100.64.0.1 is a shared (CGNAT) address",
        ),
        ("https://0.0.0.0", "0.0.0.0 is the unspecified address"),
        (
            "https://[::ffff:127.0.0.1]",
            "::ffff:127.0.0.1 is a loopback address",
        ),
        (
            "https://[::ffff:a9fe:a9fe]",
            "::ffff:169.254.169.254 is a link-local address",
        ),
        ("https://2130706433", "127.0.0.1 is a loopback address"),
        ("https://localhost:9999", "localhost names this machine"),
    ] {
        // Act
        let (created, create_body) = app
            .call(
                Method::POST,
                "/api/shops",
                &app.admin_token,
                Some(json!({"name": "Evil", "prom_url": url, "prom_token": "t"})),
            )
            .await;
        let (patched, patch_body) = app
            .call(
                Method::PATCH,
                &shop_path,
                &app.admin_token,
                Some(json!({"prom_url": url, "prom_token": "t"})),
            )
            .await;

        // Assert
        for (status, body) in [(created, &create_body), (patched, &patch_body)] {
            assert_eq!(status, 400, "{url}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("prom_url: ") && message.contains(reason),
                "{url}: {message}"
            );
        }
    }
    assert_eq!(app.count("SELECT count(*) FROM shops").await, shops_before);
    assert_eq!(stored_prom_url(&app).await, Some(app.prom.uri()));
}

#[tokio::test]
async fn a_prom_url_with_user_info_a_path_a_query_or_plain_http_is_refused() {
    let app = TestApp::builder().spawn().await;
    let shop_path = format!("/api/shops/{}", app.shop.shop_id);
    for (url, reason) in [
        ("https://user:pw@my.prom.ua", "user info"),
        ("https://evil@my.prom.ua", "user info"),
        ("https://my.prom.ua/api/v1", "path"),
        // A path on an allowed origin is still a path.
        (&format!("{}/metrics", app.prom.uri()), "path"),
        ("https://my.prom.ua/?next=http://127.0.0.1", "query"),
        ("https://my.prom.ua/#x", "fragment"),
        ("http://my.prom.ua", "not https"),
        ("file:///etc/passwd", "scheme"),
    ] {
        for (method, path) in [(Method::POST, "/api/shops"), (Method::PATCH, &*shop_path)] {
            let (status, body) = app
                .call(
                    method.clone(),
                    path,
                    &app.admin_token,
                    Some(json!({"name": "Evil", "prom_url": url, "prom_token": "t"})),
                )
                .await;
            assert_eq!(status, 400, "{method} {url}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("prom_url: ") && message.contains(reason),
                "{url}: {message}"
            );
        }
    }
    assert_eq!(app.count("SELECT count(*) FROM shops").await, 1);
    assert_eq!(stored_prom_url(&app).await, Some(app.prom.uri()));
}

#[tokio::test]
async fn changing_the_prom_url_without_a_token_is_400_and_the_old_token_never_goes_to_the_new_url()
{
    // Arrange: a second stand-in the deployment allows, where the admin moves the shop.
    let mut app = TestApp::builder()
        .extra_proms(1)
        .prom_products_missing()
        .spawn()
        .await;
    let new_prom = app.extra_proms.remove(0);
    let shop_path = format!("/api/shops/{}", app.shop.shop_id);

    // Act: move without a token, then fetch an order.
    let (status, body) = app
        .call(
            Method::PATCH,
            &shop_path,
            &app.admin_token,
            Some(json!({"prom_url": new_prom.uri()})),
        )
        .await;
    app.notify(&json!({"order_id": 501})).await;
    eventually("the fetch from the old Prom", WAIT, || async {
        (!app.prom.received_requests().await.unwrap().is_empty()).then_some(())
    })
    .await;

    // Assert: refused, nothing changed, nothing went to the new URL.
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prom_token"),
        "{body}"
    );
    assert_eq!(stored_prom_url(&app).await, Some(app.prom.uri()));
    assert!(new_prom.received_requests().await.unwrap().is_empty());

    // Act: the same move with a new token.
    let (status, body) = app
        .call(
            Method::PATCH,
            &shop_path,
            &app.admin_token,
            Some(json!({"prom_url": new_prom.uri(), "prom_token": "token-for-the-new-url"})),
        )
        .await;
    // A fresh importer: the running one keeps a shop's URL and token (together) for a
    // few seconds.
    app.stop_importers().await;
    app.start_importer();
    app.notify(&json!({"order_id": 502})).await;
    let requests = eventually("the fetch from the new Prom", WAIT, || async {
        let requests = new_prom.received_requests().await.unwrap();
        (!requests.is_empty()).then_some(requests)
    })
    .await;

    // Assert: the new URL only ever saw the new token.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prom_url"], new_prom.uri());
    for request in requests {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            "Bearer token-for-the-new-url"
        );
    }
    // Saving the same URL again (as the settings form does) needs no token.
    let (status, body) = app
        .call(
            Method::PATCH,
            &shop_path,
            &app.admin_token,
            Some(json!({"prom_url": format!("{}/", new_prom.uri()), "name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_redirect_from_prom_is_not_followed_and_fails_for_good() {
    // Arrange: "Prom" redirects the order fetch to another server (allowed too, so only
    // the redirect rule stands in the way).
    let mut app = TestApp::builder()
        .extra_proms(1)
        .prom_products_missing()
        .spawn()
        .await;
    let target = app.extra_proms.remove(0);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(metrics_text()))
        .mount(&target)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/601"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/metrics", target.uri())),
        )
        .mount(&app.prom)
        .await;

    // Act
    let response = app.notify(&json!({"order_id": 601})).await;
    let reason = dead_letter_reason(&app).await;

    // Assert
    assert_eq!(response.status(), 202);
    assert!(
        reason.contains("302") && reason.contains("redirect"),
        "{reason}"
    );
    assert_eq!(
        app.dead_letters(Lane::Inbound).await[0].attempts,
        1,
        "not retried"
    );
    assert!(target.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_non_json_answer_never_shows_in_dead_letters_the_sync_log_the_api_or_the_operator_pages()
{
    // Arrange: "Prom" answers an order fetch with Prometheus text.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/701"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(metrics_text(), "text/plain; version=0.0.4; charset=utf-8"),
        )
        .mount(&app.prom)
        .await;

    // Act
    app.notify(&json!({"order_id": 701})).await;
    let reason = dead_letter_reason(&app).await;

    // Assert: the error names the answer, not its content, wherever it is shown.
    assert!(
        reason.contains("Prom answered 200 with text/plain; expected JSON"),
        "{reason}"
    );
    let mut shown = vec![reason];
    for api in [
        "/api/sync-log".to_owned(),
        "/api/sync-log?outcome=rejected".to_owned(),
        "/api/orders?source=all".to_owned(),
        format!("/api/shops/{}", app.shop.shop_id),
    ] {
        let (status, body) = app.call(Method::GET, &api, &app.admin_token, None).await;
        assert_eq!(status, 200, "{api}: {body}");
        shown.push(body.to_string());
    }
    for page in [
        "/ui/problems?lang=en".to_owned(),
        format!("/ui/shops/{}?lang=en", app.shop.shop_id),
    ] {
        shown.push(operator_page(&app, &app.admin_token, &page).await);
    }
    assert!(
        shown[5].contains("text/plain"),
        "the problems page shows the reason"
    );
    for text in &shown {
        assert!(!text.contains(METRICS_CANARY), "{text}");
        assert!(!text.contains("internal_build_info"), "{text}");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM inbound_events WHERE detail LIKE '%{METRICS_CANARY}%'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn an_allowed_origin_is_accepted_and_called() {
    // Arrange: the deployment allows its stand-ins' exact origins (plain http, loopback).
    let mut app = TestApp::builder()
        .extra_proms(1)
        .prom_products_missing()
        .spawn()
        .await;
    let other = app.extra_proms.remove(0);
    let order: Value = crate::support::fixture_order(crate::support::PENDING_ORDER);
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/orders/{}", order["id"])))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "order": order })))
        .mount(&app.prom)
        .await;

    // Act
    let (created, body) = app
        .call(
            Method::POST,
            "/api/shops",
            &app.admin_token,
            Some(json!({"name": "Allowed", "prom_url": format!("{}/", other.uri()), "prom_token": "t"})),
        )
        .await;
    app.notify(&json!({"order_id": order["id"]})).await;

    // Assert
    assert_eq!(created, 201, "{body}");
    assert_eq!(body["prom_url"], other.uri());
    eventually(
        "the order fetched from the allowed origin",
        WAIT,
        || async { (app.count("SELECT count(*) FROM orders").await == 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_stored_url_the_policy_refuses_is_refused_at_fetch_time_without_a_request() {
    // Arrange: rows written around the API, at the stand-in's own port but not at its
    // allowed origin (`http://127.0.0.1:<port>`): an IP literal (which no resolver sees),
    // its IPv4-mapped form, and a name that resolves to loopback.
    let app = TestApp::builder().spawn().await;
    let port = app.prom.address().port();
    let urls = [
        format!("https://127.0.0.1:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://localhost:{port}"),
    ];

    for (i, url) in urls.iter().enumerate() {
        // Act
        app.db
            .execute_unprepared(&format!(
                "UPDATE shops SET prom_url = '{url}' WHERE id = {}",
                app.shop.shop_id
            ))
            .await
            .unwrap();
        app.notify(&json!({"order_id": 800 + i})).await;

        // Assert: dead at the first attempt, with the reason.
        let letters = eventually("a dead letter per URL", WAIT, || async {
            let letters = app.dead_letters(Lane::Inbound).await;
            (letters.len() == i + 1).then_some(letters)
        })
        .await;
        for letter in letters {
            let reason = letter.last_error.unwrap_or_default();
            assert!(reason.contains("Prom URL not allowed"), "{url}: {reason}");
            assert_eq!(letter.attempts, 1);
        }
    }
    assert!(app.prom.received_requests().await.unwrap().is_empty());
}
