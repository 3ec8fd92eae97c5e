//! The RO App API through HTTP against real PostgreSQL and RabbitMQ (ARCHITECTURE.md,
//! business rules from 'Status changes reach Prom' on, 'HTTP contract'): order list filters
//! and fields, tenant isolation, permissions, the refresh limit under races and injected
//! time, the outbox contract of status changes and write-offs, shops and mappings, secrets
//! kept out of answers and logs, metrics and the OpenAPI document.

use std::time::Duration;

use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, ResponseTemplate,
};

use crate::support::{
    capture_logs, employee, eventually, fixture_order, insert_imported_order, post_thin_webhook,
    product, roapp_order, statuses, Backend, TestApp, CUSTOM_STATUS_ORDER, PENDING_ORDER,
};

const WAIT: Duration = Duration::from_secs(30);

fn ids(body: &Value) -> Vec<i64> {
    body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_orders_list_filters_by_source_and_shop_newest_first_with_paging() {
    // Arrange: two imported orders of the test shop, one of a second shop, two RO App ones.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();
    let (status, second) = app
        .call(
            Method::POST,
            "/api/shops",
            &token,
            Some(json!({"name": "Second", "prom_url": app.prom.uri(), "prom_token": "t2"})),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second_shop = second["id"].as_i64().unwrap();
    let a1 = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    app.clock.advance(chrono::Duration::seconds(1));
    let a2 = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1002").await;
    let b1 = insert_imported_order(&app, app.account_id, second_shop, "2001").await;
    app.clock.advance(chrono::Duration::hours(1));
    let r1 = roapp_order(&app, &token).await["id"].as_i64().unwrap();
    app.clock.advance(chrono::Duration::seconds(1));
    let r2 = roapp_order(&app, &token).await["id"].as_i64().unwrap();

    // Act + Assert: each filter.
    let list = |query: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            let (status, body) = app
                .call(Method::GET, &format!("/api/orders{query}"), &token, None)
                .await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["page"], 1);
    assert_eq!(ids(&all)[..2], [r2, r1], "RO App orders are the newest");
    assert_eq!(ids(&list("?source=all").await).len(), 5);
    assert_eq!(ids(&list("?source=roapp").await), vec![r2, r1]);
    let mut integrations = ids(&list("?source=integrations").await);
    integrations.sort();
    assert_eq!(integrations, vec![a1, a2, b1]);
    let by_shop = app
        .call(
            Method::GET,
            &format!(
                "/api/orders?source=integrations&shop_id={}",
                app.shop.shop_id
            ),
            &token,
            None,
        )
        .await
        .1;
    let mut by_shop_ids = ids(&by_shop);
    by_shop_ids.sort();
    assert_eq!(by_shop_ids, vec![a1, a2]);
    assert!(by_shop["orders"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["shop"]["name"] == "Test shop"));
    let page2 = list("?per_page=2&page=2").await;
    assert_eq!(page2["total"], 5);
    assert_eq!(page2["per_page"], 2);
    assert_eq!(ids(&page2).len(), 2);
    assert_eq!(ids(&list("?per_page=2&page=3").await).len(), 1);
    let (status, body) = app
        .call(Method::GET, "/api/orders?source=other", &token, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn an_imported_order_shows_the_four_integration_fields_and_its_prom_link() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.wait_for_events(1).await;
    let token = &app.admin_token;
    let listed = app.call(Method::GET, "/api/orders", token, None).await.1;
    let id = ids(&listed)[0];

    // Act
    let (status, order) = app
        .call(Method::GET, &format!("/api/orders/{id}"), token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["source"], "prom");
    assert_eq!(order["number"], "338390710");
    assert_eq!(
        order["shop"],
        json!({"id": app.shop.shop_id, "name": "Test shop"})
    );
    assert_eq!(order["external_id"], "338390710");
    assert_eq!(order["remote_created_at"], "2025-04-07T06:46:42.728888Z");
    assert!(order["last_synced_at"].as_str().unwrap().ends_with('Z'));
    // The shop's Prom is the test's stand-in: the link goes to its own origin.
    assert_eq!(
        order["prom_url"],
        format!("{}/cms/order/edit/338390710", app.prom.uri())
    );
    assert_eq!(order["status"]["kind"], "new");
    assert_eq!(order["remote_status"], "pending");
    assert_eq!(order["written_off"], false);
    assert_eq!(order["currency"], "UAH");
    let total = order["total"].as_str().unwrap();
    assert_eq!(total.split('.').nth(1).map(str::len), Some(2), "{total}");
    let item = &order["items"][0];
    for field in ["id", "product_id", "name", "sku", "quantity", "price"] {
        assert!(!item[field].is_null(), "item.{field}: {item}");
    }
    assert_eq!(item["written_off"], false);
    assert!(order["client"]["id"].as_i64().is_some(), "{order}");
    assert_eq!(listed["orders"][0]["prom_url"], order["prom_url"]);

    // A shop's own template changes the link.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/shops/{}", app.shop.shop_id),
            token,
            Some(json!({"order_url_template": "https://shop.example/orders/{id}"})),
        )
        .await;
    assert_eq!(status, 200);
    let order = app
        .call(Method::GET, &format!("/api/orders/{id}"), token, None)
        .await
        .1;
    assert_eq!(order["prom_url"], "https://shop.example/orders/338390710");
}

#[tokio::test]
async fn an_imported_order_with_a_custom_status_carries_proms_own_title_for_it() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&fixture_order(CUSTOM_STATUS_ORDER)).await;
    app.wait_for_events(1).await;
    let token = &app.admin_token;

    // Act
    let (_, listed) = app.call(Method::GET, "/api/orders", token, None).await;
    let id = ids(&listed)[0];
    let (status, order) = app
        .call(Method::GET, &format!("/api/orders/{id}"), token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["remote_status"], "custom-137639");
    assert_eq!(order["remote_status_title"], "Підтверджено");
    assert_eq!(listed["orders"][0]["remote_status_title"], "Підтверджено");
}

#[tokio::test]
async fn an_order_created_in_ro_app_has_a_null_remote_status_title() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = &app.admin_token;

    // Act
    let created = roapp_order(&app, token).await;
    let id = created["id"].as_i64().unwrap();
    let (status, order) = app
        .call(Method::GET, &format!("/api/orders/{id}"), token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{order}");
    for order in [&created, &order] {
        let object = order.as_object().expect("an order object");
        assert_eq!(
            object.get("remote_status_title"),
            Some(&Value::Null),
            "{order}"
        );
    }
}

#[tokio::test]
async fn an_order_created_in_ro_app_is_numbered_per_account_and_has_no_shop() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = &app.admin_token;
    let product_id = product(&app, app.account_id, "A-1").await;
    let done = statuses(&app, token).await["done"];

    // Act
    let (status, order) = app
        .call(
            Method::POST,
            "/api/orders",
            token,
            Some(json!({
                "client": {"first_name": "Олена", "phone": "0501234567"},
                "items": [{"product_id": product_id, "quantity": "2.5", "price": "100.10"}],
                "status_id": done,
            })),
        )
        .await;
    let second = roapp_order(&app, token).await;
    let empty = app
        .api(Method::POST, "/api/orders", token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["number"], "R-1");
    assert_eq!(second["number"], "R-2");
    assert_eq!(empty.status(), 201);
    assert_eq!(order["source"], "roapp");
    assert_eq!(order["shop"], Value::Null);
    assert_eq!(order["external_id"], Value::Null);
    assert_eq!(order["prom_url"], Value::Null);
    assert_eq!(order["status"]["id"], done);
    assert_eq!(order["total"], "250.25");
    assert_eq!(order["items"][0]["quantity"], "2.5");
    assert_eq!(order["items"][0]["price"], "100.10");
    assert_eq!(order["items"][0]["sku"], "A-1");
    assert_eq!(order["client"]["first_name"], "Олена");
    assert_eq!(second["status"]["kind"], "new");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/orders",
            token,
            Some(json!({"items": [{"product_id": product_id, "quantity": "0", "price": "1"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn every_endpoint_answers_404_for_another_accounts_ids() {
    // Arrange: the other tenant owns an order, a shop, a product and statuses.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let other = app.other_tenant().await;
    let foreign_order =
        insert_imported_order(&app, other.account_id, other.shop.shop_id, "9001").await;
    let foreign_shop = other.shop.shop_id;
    let foreign_product = product(&app, other.account_id, "F-1").await;
    let foreign_status = statuses(&app, &other.admin_token).await["done"];
    let own_order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let own_status = statuses(&app, &app.admin_token).await["done"];
    let shop = app.shop.shop_id;
    let table: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/orders/{foreign_order}"), None),
        (
            Method::POST,
            format!("/api/orders/{foreign_order}/status"),
            Some(json!({"status_id": own_status})),
        ),
        (
            Method::POST,
            format!("/api/orders/{foreign_order}/write-off"),
            None,
        ),
        (
            Method::POST,
            format!("/api/orders/{foreign_order}/waybill"),
            Some(json!({"number": "20450000000001", "carrier": "nova_poshta"})),
        ),
        (
            Method::GET,
            format!("/api/orders/{foreign_order}/sync-log"),
            None,
        ),
        (
            Method::POST,
            "/api/orders/refresh".into(),
            Some(json!({"order_ids": [foreign_order]})),
        ),
        (
            Method::GET,
            format!("/api/orders?shop_id={foreign_shop}"),
            None,
        ),
        (
            Method::POST,
            "/api/orders".into(),
            Some(
                json!({"items": [{"product_id": foreign_product, "quantity": "1", "price": "1"}]}),
            ),
        ),
        (
            Method::POST,
            "/api/orders".into(),
            Some(json!({"status_id": foreign_status})),
        ),
        (Method::GET, format!("/api/shops/{foreign_shop}"), None),
        (
            Method::PATCH,
            format!("/api/shops/{foreign_shop}"),
            Some(json!({"name": "mine now"})),
        ),
        (
            Method::POST,
            format!("/api/shops/{foreign_shop}/rotate-secret"),
            None,
        ),
        (
            Method::GET,
            format!("/api/shops/{foreign_shop}/status-mapping"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/shops/{foreign_shop}/status-mapping"),
            Some(json!({"inbound": {}, "outbound": {}})),
        ),
        (
            Method::GET,
            format!("/api/shops/{foreign_shop}/prom-statuses"),
            None,
        ),
        (
            Method::POST,
            format!("/api/shops/{foreign_shop}/prom-statuses/refresh"),
            None,
        ),
        (
            Method::POST,
            format!("/api/orders/{own_order}/status"),
            Some(json!({"status_id": foreign_status})),
        ),
        (
            Method::PUT,
            format!("/api/shops/{shop}/status-mapping"),
            Some(json!({"inbound": {"pending": foreign_status}, "outbound": {}})),
        ),
    ];

    // Act + Assert: the admin (every permission) and a clerk (none) both get 404; the
    // last two rows touch the clerk's own order and shop, where its missing permission
    // rightly answers 403 first, so only the admin runs them.
    let clerk = employee(&app, &[]).await;
    for (token, rows) in [(&app.admin_token, table.len()), (&clerk, table.len() - 2)] {
        for (method, path, body) in &table[..rows] {
            let (status, answer) = app.call(method.clone(), path, token, body.clone()).await;
            assert_eq!(status, 404, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_found", "{method} {path}");
        }
    }
    // Lists never show the other tenant's rows.
    for (path, key, foreign) in [
        ("/api/orders", "orders", foreign_order),
        ("/api/products", "products", foreign_product),
        ("/api/statuses", "statuses", foreign_status),
        ("/api/shops", "shops", foreign_shop),
    ] {
        let (status, body) = app.call(Method::GET, path, &app.admin_token, None).await;
        assert_eq!(status, 200, "{path}");
        let rows = body[key].as_array().unwrap();
        assert!(!rows.is_empty(), "{path}");
        assert!(
            rows.iter().all(|row| row["id"] != foreign),
            "{path} shows the other tenant's {foreign}: {body}"
        );
    }
    // Nothing of the other tenant changed.
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(
        app.text(&format!("SELECT name FROM shops WHERE id = {foreign_shop}"))
            .await
            .as_deref(),
        Some("Other shop")
    );
}

#[tokio::test]
async fn working_with_a_synced_order_needs_the_goods_without_write_off_permission() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let in_progress = statuses(&app, &app.admin_token).await["in_progress"];
    let clerk = employee(&app, &[]).await;
    let trusted = employee(&app, &["goods_without_write_off"]).await;
    let own = roapp_order(&app, &clerk).await["id"].as_i64().unwrap();
    let actions = [
        (
            format!("/api/orders/{order}/status"),
            Some(json!({"status_id": in_progress})),
        ),
        (
            "/api/orders/refresh".to_owned(),
            Some(json!({"order_ids": [order]})),
        ),
        (format!("/api/orders/{order}/write-off"), None),
    ];

    // Act + Assert: without the permission every action is 403, reading is fine.
    for (path, body) in &actions {
        let (status, answer) = app.call(Method::POST, path, &clerk, body.clone()).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("goods_without_write_off"),
            "{answer}"
        );
    }
    let (status, _) = app
        .call(Method::GET, &format!("/api/orders/{order}"), &clerk, None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/orders/{own}/status"),
            &clerk,
            Some(json!({"status_id": in_progress})),
        )
        .await;
    assert_eq!(status, 200, "an RO App order needs no permission: {body}");
    assert_eq!(body["outbound"], "none");
    // Shops need manage_integrations; nobody can grant what they lack.
    let (status, _) = app.call(Method::GET, "/api/shops", &clerk, None).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/employees",
            &trusted,
            Some(json!({"name": "x", "permissions": ["manage_integrations"]})),
        )
        .await;
    assert_eq!(status, 403);

    // With the permission every action succeeds.
    for (path, body) in &actions {
        let (status, answer) = app.call(Method::POST, path, &trusted, body.clone()).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
}

#[tokio::test]
async fn two_concurrent_refreshes_of_one_order_queue_it_exactly_once() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let body = json!({"order_ids": [order]});

    for round in 0..5 {
        // Act: two requests at once, as two replicas would see them.
        let (a, b) = tokio::join!(
            app.call(
                Method::POST,
                "/api/orders/refresh",
                &app.admin_token,
                Some(body.clone())
            ),
            app.call(
                Method::POST,
                "/api/orders/refresh",
                &app.admin_token,
                Some(body.clone())
            ),
        );

        // Assert
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 429], "round {round}: {} / {}", a.1, b.1);
        let results: Vec<&str> = [&a.1, &b.1]
            .iter()
            .map(|r| r["results"][0]["result"].as_str().unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|r| **r == "queued").count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(results.contains(&"too_soon"));
        app.clock.advance(chrono::Duration::minutes(10));
    }
}

#[tokio::test]
async fn a_refresh_within_ten_minutes_is_too_soon_and_says_when() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let local = roapp_order(&app, &app.admin_token).await["id"]
        .as_i64()
        .unwrap();
    let refresh = |ids: Vec<i64>| {
        app.api(Method::POST, "/api/orders/refresh", &app.admin_token)
            .json(&json!({ "order_ids": ids }))
            .send()
    };
    let first = refresh(vec![order]).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        first["results"],
        json!([{"order_id": order, "result": "queued"}])
    );

    // Act: 4 minutes later.
    app.clock.advance(chrono::Duration::minutes(4));
    let again = refresh(vec![order, local]).await.unwrap();

    // Assert
    assert_eq!(again.status(), 429);
    assert_eq!(again.headers()["retry-after"], "360");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["error"]["code"], "too_many_requests");
    assert_eq!(
        again["results"],
        json!([
            {"order_id": order, "result": "too_soon", "retry_after_s": 360},
            {"order_id": local, "result": "not_imported"},
        ])
    );
    app.clock.advance(chrono::Duration::minutes(6));
    let later = refresh(vec![order]).await.unwrap();
    assert_eq!(later.status(), 200);
}

/// Imports the fixture order, then has Prom answer it, `change`d, from now on; the
/// order's id.
async fn imported_order_as_prom_has_it(app: &TestApp, change: impl FnOnce(&mut Value)) -> i64 {
    let mut order = fixture_order(PENDING_ORDER);
    app.push_order(&order).await;
    app.wait_for_events(1).await;
    change(&mut order);
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/338390710"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "order": order })))
        .mount(&app.prom)
        .await;
    ids(&app
        .call(Method::GET, "/api/orders", &app.admin_token, None)
        .await
        .1)[0]
}

/// Refreshes one order through the API, checks it was queued, and waits until the
/// importer has recorded it as the order's second event.
async fn refresh_and_wait(app: &TestApp, id: i64) {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/orders/refresh",
            &app.admin_token,
            Some(json!({"order_ids": [id]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["result"], "queued", "{body}");
    app.wait_for_events(2).await;
}

/// `GET` of an API path as the admin; the JSON body.
async fn get(app: &TestApp, path: &str) -> Value {
    app.call(Method::GET, path, &app.admin_token, None).await.1
}

#[tokio::test]
async fn a_queued_refresh_makes_the_importer_apply_the_order_fetched_from_prom() {
    // Arrange: the order is imported, then changes on Prom without a notification.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let id = imported_order_as_prom_has_it(&app, |order| {
        order["status"] = json!("received");
        order["date_modified"] = json!("2025-04-07T08:00:00.000000+00:00");
    })
    .await;

    // Act
    refresh_and_wait(&app, id).await;

    // Assert
    let order = get(&app, &format!("/api/orders/{id}")).await;
    assert_eq!(order["remote_status"], "received");
    assert_eq!(order["status"]["kind"], "in_progress");
    let log = get(&app, &format!("/api/orders/{id}/sync-log")).await;
    let newest = &log["entries"][0];
    assert_eq!(newest["source"], "refresh", "{log}");
    assert_eq!(newest["outcome"], "applied");
    assert_eq!(log["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_refresh_that_finds_the_order_unchanged_on_prom_moves_only_its_last_update() {
    // Arrange: the order is imported, and Prom still has that very version.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let id = imported_order_as_prom_has_it(&app, |_| {}).await;
    let before = get(&app, &format!("/api/orders/{id}")).await;

    // Act
    refresh_and_wait(&app, id).await;

    // Assert: "Last update" moved; everything else is as it was.
    let after = get(&app, &format!("/api/orders/{id}")).await;
    let synced = |order: &Value| {
        chrono::DateTime::parse_from_rfc3339(order["last_synced_at"].as_str().unwrap())
            .expect("an RFC 3339 time")
    };
    assert!(synced(&after) > synced(&before), "{before} -> {after}");
    let rest = |order: &Value| {
        let mut order = order.clone();
        order.as_object_mut().unwrap().remove("last_synced_at");
        order
    };
    assert_eq!(rest(&after), rest(&before));
    let log = get(&app, &format!("/api/orders/{id}/sync-log")).await;
    assert_eq!(log["entries"][0]["source"], "refresh", "{log}");
    assert_eq!(log["entries"][0]["outcome"], "duplicate", "{log}");
}

#[tokio::test]
async fn a_delivered_status_waits_for_the_write_off_and_is_queued_by_it() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = &app.admin_token;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let kinds = statuses(&app, token).await;
    let status_url = format!("/api/orders/{order}/status");
    let set_status = |status_id: i64| {
        app.call(
            Method::POST,
            &status_url,
            token,
            Some(json!({ "status_id": status_id })),
        )
    };

    // Act: Done maps to Prom delivered, goods not written off.
    let (status, changed) = set_status(kinds["done"]).await;

    // Assert: kept locally, nothing queued, the sync log says why.
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["outbound"], "deferred_until_write_off");
    assert_eq!(changed["order"]["status"]["kind"], "done");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM outbound_sync_log WHERE outcome = 'deferred'")
            .await,
        1
    );
    let log = app
        .call(Method::GET, "/api/sync-log?outcome=deferred", token, None)
        .await
        .1;
    assert_eq!(log["entries"][0]["order_id"], order, "{log}");
    assert_eq!(log["entries"][0]["outcome"], "deferred");

    // Act: write off the goods.
    let (status, written) = app
        .call(
            Method::POST,
            &format!("/api/orders/{order}/write-off"),
            token,
            None,
        )
        .await;

    // Assert: queued now, with the outbox contract.
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["outbound"], "queued");
    assert_eq!(written["order"]["written_off"], true);
    assert_eq!(written["order"]["items"][0]["written_off"], true);
    let payload: Value = serde_json::from_str(
        &app.text(
            "SELECT payload FROM outbox WHERE kind = 'order_status' AND published_at IS NULL",
        )
        .await
        .expect("an outbox row"),
    )
    .unwrap();
    assert_eq!(
        payload,
        json!({"order_id": order, "shop_id": app.shop.shop_id, "account_id": app.account_id, "reason": "written_off"})
    );
    // Writing off again changes nothing.
    let (_, again) = app
        .call(
            Method::POST,
            &format!("/api/orders/{order}/write-off"),
            token,
            None,
        )
        .await;
    assert_eq!(again["outbound"], "none");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);

    // The other outcomes: a mapped status is queued, an unmapped one is not.
    let (_, progress) = set_status(kinds["in_progress"]).await;
    assert_eq!(progress["outbound"], "queued");
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE payload LIKE '%status_changed%'")
            .await,
        1
    );
    let (_, new) = set_status(kinds["new"]).await;
    assert_eq!(new["outbound"], "not_mapped");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 2);
}

#[tokio::test]
async fn the_status_mapping_is_replaced_whole_and_validated() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = &app.admin_token;
    let kinds = statuses(&app, token).await;
    let url = format!("/api/shops/{}/status-mapping", app.shop.shop_id);
    let (status, default) = app.call(Method::GET, &url, token, None).await;
    assert_eq!(status, 200);
    assert_eq!(default["inbound"]["pending"], kinds["new"]);
    assert_eq!(default["outbound"][kinds["done"].to_string()], "delivered");
    // The shop has the custom status on Prom.
    app.prom_status_options(ResponseTemplate::new(200).set_body_json(json!({
        "order_status_options": [{"id": 137639, "name": "custom-137639", "title": "Підтверджено"}]
    })))
    .await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/shops/{}/prom-statuses/refresh", app.shop.shop_id),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mapping = json!({
        "inbound": {"pending": kinds["new"], "custom-137639": kinds["in_progress"]},
        "outbound": {kinds["canceled"].to_string(): "canceled", kinds["in_progress"].to_string(): "custom-137639"},
    });

    // Act
    let (status, saved) = app
        .call(Method::PUT, &url, token, Some(mapping.clone()))
        .await;

    // Assert
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved, mapping);
    assert_eq!(app.call(Method::GET, &url, token, None).await.1, mapping);
    for bad in [
        json!({"inbound": {"draft": kinds["new"]}, "outbound": {}}),
        json!({"inbound": {"custom-x": kinds["new"]}, "outbound": {}}),
        json!({"inbound": {"custom-137640": kinds["new"]}, "outbound": {}}),
        json!({"inbound": {}, "outbound": {"abc": "delivered"}}),
        json!({"inbound": {}, "outbound": {kinds["new"].to_string(): "pending"}}),
    ] {
        let (status, body) = app.call(Method::PUT, &url, token, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = app
        .call(
            Method::PUT,
            &url,
            token,
            Some(json!({"inbound": {"pending": 999_999}, "outbound": {}})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.call(Method::GET, &url, token, None).await.1, mapping);
}

#[tokio::test]
async fn concurrent_rotations_chain_so_the_last_two_answered_secrets_both_sign() {
    // Arrange: the test app's own shop, whose secret was never looked up yet.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();
    let shop = app.shop.shop_id;
    let original = app.shop.webhook_secret.clone();
    let url = format!("/api/shops/{shop}/rotate-secret");

    // Act: several operators rotate at the same moment. On PostgreSQL a row lock held by
    // the test makes every rotation read the same current secret before any can write,
    // the interleaving that would let two of them demote the same secret.
    const ROTATIONS: usize = 6;
    let lock = match app.backend {
        Backend::RabbitMq => {
            let txn = app.db.begin().await.unwrap();
            txn.execute_unprepared(&format!("select 1 from shops where id = {shop} for update"))
                .await
                .unwrap();
            Some(txn)
        }
        Backend::Embedded => None,
    };
    let rotations = futures::future::join_all((0..ROTATIONS).map(|_| {
        app.call(
            Method::POST,
            &url,
            &token,
            Some(json!({"grace_period_s": 3600})),
        )
    }));
    let release = async {
        if let Some(txn) = lock {
            let waiting = format!(
                "select count(*) as n from pg_stat_activity \
                 where datname = '{}' and wait_event_type = 'Lock'",
                app.db_name()
            );
            eventually(
                "every rotation waiting to write",
                Duration::from_secs(20),
                || {
                    let (db, sql) = (&app.db, waiting.clone());
                    async move {
                        let row = db
                            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                            .await
                            .ok()??;
                        let n: i64 = row.try_get("", "n").ok()?;
                        (n as usize >= ROTATIONS).then_some(())
                    }
                },
            )
            .await;
            txn.commit().await.unwrap();
        }
    };
    let (answers, ()) = futures::join!(rotations, release);

    // Assert: the rotations applied one after another, so the current secret and the
    // previous one are both secrets someone was given; none was demoted twice.
    let mut signing = 0;
    for (status, rotated) in &answers {
        assert_eq!(*status, 200, "{rotated}");
        let secret = rotated["webhook_secret"].as_str().unwrap();
        if post_thin_webhook(&app, shop, secret).await == 202 {
            signing += 1;
        }
    }
    assert_eq!(signing, 2, "exactly the last two rotations' secrets sign");
    assert_eq!(post_thin_webhook(&app, shop, &original).await, 401);
}

#[tokio::test]
async fn secrets_never_appear_in_any_answer_or_log_line() {
    // Arrange
    let logs = capture_logs();
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();
    let mut answers = Vec::new();

    // Act: everything that handles a secret.
    let (status, created) = app
        .call(
            Method::POST,
            "/api/shops",
            &token,
            Some(json!({"name": "Secret shop", "prom_url": app.prom.uri(), "prom_token": "prom-secret-token-A"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let shop = created["id"].as_i64().unwrap();
    assert_eq!(created["shop_id"], shop);
    let first_secret = created["webhook_secret"].as_str().unwrap().to_owned();
    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/api/shops/{shop}/rotate-secret"),
            &token,
            Some(json!({"grace_period_s": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second_secret = rotated["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(first_secret, second_secret);
    // Both secrets sign during the grace period.
    assert_eq!(post_thin_webhook(&app, shop, &second_secret).await, 202);
    assert_eq!(post_thin_webhook(&app, shop, &first_secret).await, 202);
    let clerk = employee(&app, &["goods_without_write_off"]).await;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/shops/{shop}"),
            Some(json!({"prom_token": "prom-secret-token-B", "poll_interval_s": 120})),
        ),
        (Method::GET, format!("/api/shops/{shop}"), None),
        (Method::GET, "/api/shops".to_owned(), None),
        (Method::GET, "/api/orders".to_owned(), None),
        (Method::GET, "/api/sync-log".to_owned(), None),
        (Method::GET, "/api/openapi.json".to_owned(), None),
        (Method::GET, "/metrics".to_owned(), None),
        (
            Method::POST,
            "/api/employees".to_owned(),
            Some(json!({"name": "y", "permissions": ["nonsense"]})),
        ),
    ] {
        for caller in [&token, &clerk] {
            let mut request = app.api(method.clone(), &path, caller);
            if let Some(body) = &body {
                request = request.json(body);
            }
            answers.push(request.send().await.unwrap().text().await.unwrap());
        }
    }
    let unauthenticated = app
        .http
        .get(format!("{}/api/orders", app.address))
        .bearer_auth("ps_wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // Assert
    let shop_json = &answers[2];
    assert!(shop_json.contains("\"poll_interval_s\":120"), "{shop_json}");
    assert!(
        shop_json.contains("\"token_rejected\":false"),
        "{shop_json}"
    );
    let secrets = [
        "prom-secret-token-A",
        "prom-secret-token-B",
        "prom-token-1",
        first_secret.as_str(),
        second_secret.as_str(),
        app.shop.webhook_secret.as_str(),
        token.as_str(),
        clerk.as_str(),
        "ps_wrong-token",
    ];
    let logged = logs.contents();
    assert!(logged.contains("shop connected"), "logs are captured");
    for secret in secrets {
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "an answer shows a secret: {answer}"
            );
        }
        if let Some(line) = logged.lines().find(|l| l.contains(secret)) {
            // Show where, with the secret itself masked.
            panic!(
                "a log line shows a secret: {}",
                line.replace(secret, "<SECRET>")
            );
        }
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::builder().prom_products_missing().spawn().await;

    let response = app
        .http
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["info"]["title"], "promsync");
    let routes = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
        ("post", "/webhooks/prom/{shop_id}"),
        ("get", "/api/employees"),
        ("post", "/api/employees"),
        ("delete", "/api/employees/{id}"),
        ("get", "/api/orders"),
        ("post", "/api/orders"),
        ("post", "/api/orders/refresh"),
        ("get", "/api/orders/{id}"),
        ("post", "/api/orders/{id}/status"),
        ("post", "/api/orders/{id}/write-off"),
        ("get", "/api/orders/{id}/sync-log"),
        ("get", "/api/sync-log"),
        ("get", "/api/dead-letters"),
        ("post", "/api/dead-letters/requeue"),
        ("get", "/api/shops"),
        ("post", "/api/shops"),
        ("get", "/api/shops/{id}"),
        ("patch", "/api/shops/{id}"),
        ("post", "/api/shops/{id}/rotate-secret"),
        ("get", "/api/shops/{id}/status-mapping"),
        ("put", "/api/shops/{id}/status-mapping"),
        ("get", "/api/shops/{id}/prom-statuses"),
        ("post", "/api/shops/{id}/prom-statuses/refresh"),
        ("get", "/api/statuses"),
        ("get", "/api/products"),
        ("get", "/api/clients"),
        ("get", "/api/categories"),
    ];
    for (method, route) in routes {
        assert!(
            doc["paths"][route][method].is_object(),
            "{method} {route} is not documented"
        );
    }
    // Every reference resolves to a schema of the document.
    let text = doc.to_string();
    let schemas = &doc["components"]["schemas"];
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(schemas[name].is_object(), "{target} does not resolve");
    }
    assert!(schemas["OrderView"]["properties"]["prom_url"].is_object());
    // Permissions are a closed set, listed by their wire names.
    assert_eq!(
        schemas["Permission"]["enum"],
        json!([
            "goods_without_write_off",
            "manage_integrations",
            "manage_employees"
        ])
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn metrics_count_webhook_answers_imports_and_outbound_results() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.wait_for_events(1).await;
    assert_eq!(
        post_thin_webhook(
            &app,
            app.shop.shop_id,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )
        .await,
        401
    );

    // Act
    let text = eventually("metrics to show the import", WAIT, || async {
        let text = app
            .http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("promsync_imports_total{outcome=\"applied\"}")
            .then_some(text)
    })
    .await;

    // Assert
    assert!(
        text.contains("promsync_notifications_total{reason=\"accepted\",result=\"accepted\"}"),
        "{text}"
    );
    assert!(
        text.contains("promsync_notifications_total{reason=\"unauthorized\",result=\"rejected\"}"),
        "{text}"
    );
    assert!(
        text.contains("promsync_webhook_signature_failures_total{reason=\"no_valid_signature\"}"),
        "{text}"
    );
    assert!(text.contains("promsync_outbox_pending 0"), "{text}");
}

#[tokio::test]
async fn every_error_answers_the_same_json_body() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let cases = [
        app.http
            .get(format!("{}/api/orders", app.address))
            .send()
            .await
            .unwrap(),
        app.api(Method::GET, "/api/nothing-here", &app.admin_token)
            .send()
            .await
            .unwrap(),
        app.api(Method::GET, "/api/orders/abc", &app.admin_token)
            .send()
            .await
            .unwrap(),
        app.api(Method::POST, "/api/orders/1/status", &app.admin_token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        app.api(Method::POST, "/api/orders", &app.admin_token)
            .header("content-type", "application/json")
            .body(r#"{"unknown": 1}"#)
            .send()
            .await
            .unwrap(),
        app.api(Method::GET, "/webhooks/prom/1", &app.admin_token)
            .send()
            .await
            .unwrap(),
    ];
    let expected = [
        (401, "unauthorized"),
        (404, "not_found"),
        (404, "not_found"),
        (400, "bad_request"),
        (400, "bad_request"),
        (404, "not_found"),
    ];
    for (response, (status, code)) in cases.into_iter().zip(expected) {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn a_refresh_the_broker_cannot_take_answers_503_and_keeps_the_ten_minutes() {
    // Arrange: nothing listens on port 1, so every publish fails.
    capture_logs();
    let app = TestApp::builder()
        .importers(0)
        .broker_url("amqp://guest:guest@127.0.0.1:1/%2f")
        .spawn()
        .await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;

    // Act
    let response = app
        .api(Method::POST, "/api/orders/refresh", &app.admin_token)
        .json(&json!({"order_ids": [order]}))
        .send()
        .await
        .unwrap();

    // Assert: refused as unavailable, and the stamp is undone so a retry may pass.
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "broker_unavailable");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE id = {order} AND last_refresh_at IS NULL"
        ))
        .await,
        1
    );
}

/// The one order's JSON after importing `order`.
async fn imported(order: Value) -> Value {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&order).await;
    app.wait_for_events(1).await;
    let token = &app.admin_token;
    let listed = app.call(Method::GET, "/api/orders", token, None).await.1;
    let id = ids(&listed)[0];
    let (status, order) = app
        .call(Method::GET, &format!("/api/orders/{id}"), token, None)
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(
        listed["orders"][0]["delivery"], order["delivery"],
        "the list agrees"
    );
    order
}

#[tokio::test]
async fn the_cash_on_delivery_order_shows_its_recipient_and_no_payment_status() {
    // Arrange + Act
    let order = imported(fixture_order(PENDING_ORDER)).await;

    // Assert
    assert_eq!(
        order["delivery"],
        json!({
            "method": "Нова Пошта",
            "provider": "nova_poshta",
            "type": "W2W",
            "address": "смт. Ставище (Київська обл.), №2 (до 30 кг): вул. Паркова , 6",
            "recipient": {"first_name": "Олена", "last_name": "Коваленко", "phone": "+380000000000"},
            "declaration_number": null,
            "cost": "0.00"
        })
    );
    assert_eq!(
        order["payment"],
        json!({"method": "Наложенный платеж", "status": null})
    );
}

#[tokio::test]
async fn the_prom_payment_order_is_paid_and_its_delivery_cost_stays_out_of_the_total() {
    // Arrange + Act
    let order = imported(fixture_order(CUSTOM_STATUS_ORDER)).await;

    // Assert
    assert_eq!(
        order["delivery"],
        json!({
            "method": "Нова Пошта",
            "provider": "nova_poshta",
            "type": "W2W",
            "address": "м. Полтава, Поштомат \"Нова Пошта\" №6666: вул. Мазепи, 12/8, біля відділення №6",
            "recipient": null,
            "declaration_number": "20451069857325",
            "cost": "80.00"
        })
    );
    assert_eq!(
        order["payment"],
        json!({"method": "Пром-оплата", "status": "paid"})
    );
    assert_eq!(order["total"], "250.00");
}

#[tokio::test]
async fn an_order_created_in_ro_app_has_no_delivery_nor_payment() {
    // Arrange
    let app = TestApp::builder().spawn().await;

    // Act
    let order = roapp_order(&app, &app.admin_token).await;

    // Assert
    assert_eq!(order["delivery"], Value::Null, "{order}");
    assert_eq!(order["payment"], Value::Null, "{order}");
}

// Waybills (ARCHITECTURE.md, 'Waybills reach Prom').

/// `POST /api/orders/{order}/waybill` with `body` as `token`.
async fn post_waybill(app: &TestApp, order: i64, token: &str, body: Value) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/api/orders/{order}/waybill"),
        token,
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_waybill_that_does_not_fit_its_carrier_is_a_400_naming_the_field_and_changes_nothing() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let cases = [
        (
            json!({"number": "2045000000000", "carrier": "nova_poshta"}),
            "number",
        ),
        (
            json!({"number": "2045000000000X", "carrier": "nova_poshta"}),
            "number",
        ),
        (
            json!({"number": " 20450000000001", "carrier": "nova_poshta"}),
            "number",
        ),
        (
            json!({"number": "1234567", "carrier": "ukrposhta"}),
            "number",
        ),
        (
            json!({"number": "RR12345678ÜA", "carrier": "meest"}),
            "number",
        ),
        (json!({"carrier": "meest"}), "number"),
        (
            json!({"number": "20450000000001", "carrier": "justin"}),
            "carrier",
        ),
        (json!({"number": "20450000000001"}), "carrier"),
        (json!({"number": "20450000000001", "carrier": 1}), "carrier"),
    ];

    for (body, field) in cases {
        // Act
        let (status, answer) = post_waybill(&app, order, &app.admin_token, body.clone()).await;

        // Assert
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{body}: {message}"
        );
    }
    let malformed = app
        .api(
            Method::POST,
            &format!("/api/orders/{order}/waybill"),
            &app.admin_token,
        )
        .header("content-type", "application/json")
        .body("{\"number\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let (_, shown) = app
        .call(
            Method::GET,
            &format!("/api/orders/{order}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(shown["delivery"], Value::Null);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn a_waybill_is_stored_at_once_and_queued_for_prom_in_the_same_transaction() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;

    // Act
    let (status, answer) = post_waybill(
        &app,
        order,
        &app.admin_token,
        json!({"number": "RR123456789UA", "carrier": "ukrposhta"}),
    )
    .await;

    // Assert
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outbound"], "queued");
    assert_eq!(answer["order"]["id"], order);
    assert_eq!(
        answer["order"]["delivery"]["declaration_number"],
        "RR123456789UA"
    );
    let (_, shown) = app
        .call(
            Method::GET,
            &format!("/api/orders/{order}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(shown["delivery"]["declaration_number"], "RR123456789UA");
    assert_eq!(
        app.text(&format!("SELECT kind FROM outbox WHERE order_id = {order}"))
            .await
            .as_deref(),
        Some("waybill")
    );
    assert_eq!(
        app.text(&format!(
            "SELECT waybill_carrier FROM orders WHERE id = {order}"
        ))
        .await
        .as_deref(),
        Some("ukrposhta")
    );
}

#[tokio::test]
async fn a_waybill_of_an_imported_order_needs_the_goods_permission_and_an_ro_app_order_none() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let order = insert_imported_order(&app, app.account_id, app.shop.shop_id, "1001").await;
    let clerk = employee(&app, &[]).await;
    let own = roapp_order(&app, &clerk).await["id"].as_i64().unwrap();
    let waybill = json!({"number": "20450000000001", "carrier": "nova_poshta"});

    // Act
    let (refused, answer) = post_waybill(&app, order, &clerk, waybill.clone()).await;
    let (accepted, roapp) = post_waybill(&app, own, &clerk, waybill).await;

    // Assert
    assert_eq!(refused, 403, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("goods_without_write_off"));
    assert_eq!(
        app.text(&format!(
            "SELECT waybill_number FROM orders WHERE id = {order}"
        ))
        .await,
        None
    );
    assert_eq!(accepted, 202, "{roapp}");
    assert_eq!(roapp["outbound"], "none");
    assert_eq!(
        roapp["order"]["delivery"]["declaration_number"],
        "20450000000001"
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
}

/// Sends `GET /healthz` on `stream` and reads the answer's status line and headers.
async fn get_healthz(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: promsync\r\n\r\n")
        .await?;
    let mut answer = vec![0_u8; 4096];
    let n = stream.read(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}

#[tokio::test]
async fn an_idle_connection_outlives_the_idle_timeouts_of_the_clients_in_front() {
    // Arrange: a kept-alive connection that has answered once.
    let app = TestApp::builder().importers(0).spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connecting");
    let first = get_healthz(&mut stream).await.expect("first request");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    // Act: the connection idles longer than actix's default keep-alive (5 s). The idle
    // time is the behaviour under test, so there is no condition to await instead.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let second = get_healthz(&mut stream).await;

    // Assert: the server kept it open; the request on it is answered.
    let second = second.expect("second request on the idle connection");
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
}
