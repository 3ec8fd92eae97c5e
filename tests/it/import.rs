//! The importer against real PostgreSQL and RabbitMQ (ARCHITECTURE.md,
//! 'From webhook to books'): every order exactly once, at its newest version, whatever
//! arrives twice, late or at once.

use std::{num::NonZeroUsize, time::Duration};

use chrono::{TimeZone, Utc};
use entity::{
    enums::{Carrier, Direction, OutboxKind},
    order_items, orders, shops,
};
use promsync::{
    broker::Lane,
    domain::{
        ClientMatching, Language, MatchProductsBy, Outcome, PromStatusKind, Source, StatusKind,
    },
};
use rust_decimal_macros::dec;
use sea_orm::{sea_query::Expr, ActiveEnum, ConnectionTrait, EntityTrait, QueryOrder};
use serde_json::{json, Value};
use wiremock::{
    matchers::{header, method, path},
    Mock, ResponseTemplate,
};

use crate::support::{
    eventually, fixture_order, Backend, TestApp, TestAppBuilder, CUSTOM_STATUS_ORDER, PENDING_ORDER,
};

const WAIT: Duration = Duration::from_secs(30);

/// The real pending order with another id, version (`date_modified` = base + seconds),
/// status and lines `(prom id, sku, name, quantity, unit price)`.
pub(crate) fn order(
    id: i64,
    version_s: u32,
    status: &str,
    lines: &[(i64, &str, &str, f64, u32)],
) -> Value {
    let mut order = fixture_order(PENDING_ORDER);
    order["id"] = json!(id);
    order["date_modified"] = json!(format!(
        "2025-04-07T07:{:02}:{:02}.000000+00:00",
        version_s / 60,
        version_s % 60
    ));
    order["status"] = json!(status);
    let template = order["products"][0].clone();
    let mut total = 0.0;
    order["products"] = Value::Array(
        lines
            .iter()
            .map(|(prom_id, sku, name, quantity, price)| {
                total += *quantity * f64::from(*price);
                let mut line = template.clone();
                line["id"] = json!(prom_id);
                line["sku"] = json!(sku);
                line["name"] = json!(name);
                line["name_multilang"] = json!({"uk": name, "ru": name});
                line["quantity"] = json!(quantity);
                line["price"] = json!(format!("{price} грн"));
                line["total_price"] = json!(format!("{} грн", *quantity * f64::from(*price)));
                line
            })
            .collect(),
    );
    order["price"] = json!(format!("{total} грн"));
    order
}

pub(crate) fn one_line(id: i64, version_s: u32, status: &str, quantity: f64) -> Value {
    order(
        id,
        version_s,
        status,
        &[(501, "SKU-1", "Шкарпетки", quantity, 120)],
    )
}

pub(crate) async fn the_order(app: &TestApp) -> orders::Model {
    orders::Entity::find()
        .one(&app.db)
        .await
        .expect("query")
        .expect("an order")
}

pub(crate) async fn the_items(app: &TestApp) -> Vec<order_items::Model> {
    order_items::Entity::find()
        .order_by_asc(order_items::Column::Position)
        .all(&app.db)
        .await
        .expect("items")
}

#[tokio::test]
async fn a_notification_delivered_ten_times_creates_one_order_client_and_product_set() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let body = json!({ "order": fixture_order(PENDING_ORDER) });

    // Act: the same webhook message ten times, then the same version under new ids.
    for _ in 0..10 {
        let r = app.notify_with_id("msg_same", &body).await;
        assert_eq!(r.status(), 202);
    }
    for _ in 0..5 {
        app.push_order(&fixture_order(PENDING_ORDER)).await;
    }
    app.wait_for_events(6).await;
    eventually("the queue to drain", WAIT, || async {
        (app.queue_depth(Lane::Inbound).await == 0).then_some(())
    })
    .await;

    // Assert
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM clients").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 6);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'duplicate'")
            .await,
        5
    );
}

#[tokio::test]
async fn the_imported_order_carries_every_field_and_the_four_integration_fields() {
    let app = TestApp::builder().prom_products_missing().spawn().await;

    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.wait_for_events(1).await;

    let row = |sql: &'static str| app.text(sql);
    assert_eq!(
        row("SELECT number FROM orders").await.as_deref(),
        Some("338390710")
    );
    assert_eq!(
        row("SELECT external_id FROM orders").await.as_deref(),
        Some("338390710")
    );
    assert_eq!(
        row("SELECT s.name FROM orders o JOIN shops s ON s.id = o.shop_id")
            .await
            .as_deref(),
        Some("Test shop")
    );
    let order = the_order(&app).await;
    let created = Utc.with_ymd_and_hms(2025, 4, 7, 6, 46, 42).unwrap()
        + chrono::Duration::microseconds(728_888);
    assert_eq!(order.remote_created_at, Some(created));
    assert!(order
        .last_synced_at
        .is_some_and(|at| (Utc::now() - at).num_seconds() < 60));
    assert_eq!(order.total, dec!(244));
    assert_eq!(
        row("SELECT currency FROM orders").await.as_deref(),
        Some("UAH")
    );
    assert_eq!(
        row("SELECT st.kind FROM orders o JOIN order_statuses st ON st.id = o.status_id")
            .await
            .as_deref(),
        Some("new")
    );
    assert_eq!(
        row("SELECT remote_status FROM orders").await.as_deref(),
        Some("pending")
    );
    assert_eq!(
        row("SELECT first_name || ' ' || last_name || ' ' || phone FROM clients")
            .await
            .as_deref(),
        Some("Олена Коваленко +380000000000")
    );
    let items = the_items(&app).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].quantity, items[0].price, items[0].written_off),
        (dec!(1), dec!(244), false)
    );
    assert_eq!(
        row("SELECT sku || ' ' || unit FROM products")
            .await
            .as_deref(),
        Some("B45N2 pcs")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM products WHERE prom_id = 2555951114")
            .await,
        1
    );
    assert!(row("SELECT name FROM products")
        .await
        .is_some_and(|n| n.starts_with("Набір")));
}

#[tokio::test]
async fn an_older_version_after_a_newer_one_changes_nothing() {
    let app = TestApp::builder().prom_products_missing().spawn().await;

    app.push_order(&one_line(7001, 20, "received", 2.0)).await;
    app.wait_for_events(1).await;
    app.push_order(&one_line(7001, 10, "pending", 1.0)).await;
    app.wait_for_events(2).await;

    assert_eq!(
        app.text("SELECT remote_status FROM orders")
            .await
            .as_deref(),
        Some("received")
    );
    assert_eq!(
        app.text("SELECT st.kind FROM orders o JOIN order_statuses st ON st.id = o.status_id")
            .await
            .as_deref(),
        Some("in_progress")
    );
    assert_eq!(the_items(&app).await[0].quantity, dec!(2));
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'stale'")
            .await,
        1
    );
}

#[tokio::test]
async fn eight_concurrent_importers_on_the_same_50_orders_duplicate_nothing() {
    // Arrange: 10 catalogue products in 3 Prom groups, shared by 50 orders that each
    // arrive in 4 versions, shuffled, with 10% of the messages delivered twice.
    let app = TestApp::builder()
        .prom_products_missing()
        .importers(8)
        .spawn()
        .await;
    for p in 0..10_i64 {
        app.prom_product(
            9000 + p,
            json!({"id": 9000 + p, "name": format!("Товар {p}"), "sku": format!("S{p}"),
                   "description": format!("Опис {p}"), "group": {"id": p % 3, "name": format!("Група {}", p % 3)}}),
        )
        .await;
    }
    let mut messages = Vec::new();
    for o in 0..50_i64 {
        for version in 1..=4_u32 {
            let lines: Vec<(i64, String, String, f64, u32)> = (0..3)
                .map(|k| {
                    let p = (o + k) % 10;
                    (
                        9000 + p,
                        format!("S{p}"),
                        format!("Товар {p}"),
                        f64::from(version),
                        100,
                    )
                })
                .collect();
            let lines: Vec<(i64, &str, &str, f64, u32)> = lines
                .iter()
                .map(|(a, b, c, d, e)| (*a, b.as_str(), c.as_str(), *d, *e))
                .collect();
            let body = json!({ "order": order(100_000 + o, version, "pending", &lines) });
            messages.push((format!("msg_{o}_{version}"), body));
        }
    }
    // A fixed permutation (no RNG needed): stride through the list.
    let n = messages.len();
    let mut shuffled: Vec<_> = (0..n).map(|i| messages[(i * 37) % n].clone()).collect();
    let duplicates: Vec<_> = shuffled.iter().step_by(10).cloned().collect();
    shuffled.extend(duplicates);

    // Act: send everything concurrently.
    let sends = shuffled
        .iter()
        .map(|(id, body)| app.notify_with_id(id, body));
    for response in futures::future::join_all(sends).await {
        assert_eq!(response.status(), 202);
    }
    app.wait_for_events(200).await;
    eventually("the queue to drain", WAIT, || async {
        (app.queue_depth(Lane::Inbound).await == 0).then_some(())
    })
    .await;

    // Assert
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 50);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 10);
    assert_eq!(app.count("SELECT count(*) FROM categories").await, 3);
    assert_eq!(app.count("SELECT count(*) FROM clients").await, 50);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 200);
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 150);
    assert_eq!(
        app.count("SELECT count(*) FROM order_items WHERE quantity <> 4")
            .await,
        0,
        "every order ends at its newest version"
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT category_id) FROM products")
            .await,
        3
    );
}

/// Pushes orders one by one (waiting for each) and returns the number of products.
async fn products_after(app: TestAppBuilder, orders: &[Value]) -> i64 {
    let app = app.prom_products_missing().spawn().await;
    for (i, order) in orders.iter().enumerate() {
        app.push_order(order).await;
        app.wait_for_events(i as i64 + 1).await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        orders.len() as i64
    );
    let products = app.count("SELECT count(*) FROM products").await;
    products
}

fn by(match_products_by: MatchProductsBy) -> TestAppBuilder {
    TestApp::builder().match_products_by(match_products_by)
}

#[tokio::test]
async fn matching_by_sku_reuses_a_product_with_the_same_article() {
    let orders = [
        order(1, 1, "pending", &[(11, "ART-1", "Назва А", 1.0, 10)]),
        order(2, 1, "pending", &[(12, "ART-1", "Назва Б", 1.0, 10)]),
        order(3, 1, "pending", &[(11, "ART-2", "Назва А", 1.0, 10)]),
    ];
    assert_eq!(products_after(by(MatchProductsBy::Sku), &orders).await, 2);
}

#[tokio::test]
async fn matching_by_name_reuses_a_product_with_the_same_name() {
    let orders = [
        order(1, 1, "pending", &[(11, "ART-1", "Однакова назва", 1.0, 10)]),
        order(2, 1, "pending", &[(12, "ART-2", "Однакова назва", 1.0, 10)]),
        order(3, 1, "pending", &[(11, "ART-1", "Інша назва", 1.0, 10)]),
    ];
    assert_eq!(products_after(by(MatchProductsBy::Name), &orders).await, 2);
}

#[tokio::test]
async fn matching_by_prom_id_reuses_a_product_with_the_same_prom_id() {
    let orders = [
        order(1, 1, "pending", &[(11, "ART-1", "Назва А", 1.0, 10)]),
        order(2, 1, "pending", &[(11, "ART-2", "Назва Б", 1.0, 10)]),
        order(3, 1, "pending", &[(12, "ART-1", "Назва А", 1.0, 10)]),
    ];
    assert_eq!(
        products_after(by(MatchProductsBy::PromId), &orders).await,
        2
    );
}

async fn clients_after(client_matching: ClientMatching) -> i64 {
    let app = TestApp::builder()
        .prom_products_missing()
        .client_matching(client_matching)
        .spawn()
        .await;
    let mut first = one_line(1, 1, "pending", 1.0);
    first["phone"] = json!("0501234567");
    let mut second = one_line(2, 1, "pending", 1.0);
    second["phone"] = json!("+380501234567");
    second["client"]["phone"] = json!("+380501234567");
    let mut third = one_line(3, 1, "pending", 1.0);
    third["phone"] = json!("+380671111111");
    third["email"] = json!("Buyer@Example.com");
    let mut fourth = one_line(4, 1, "pending", 1.0);
    fourth["phone"] = json!("+380672222222");
    fourth["email"] = json!("buyer@example.com");
    for (i, order) in [first, second, third, fourth].iter().enumerate() {
        app.push_order(order).await;
        app.wait_for_events(i as i64 + 1).await;
    }
    let clients = app.count("SELECT count(*) FROM clients").await;
    clients
}

#[tokio::test]
async fn always_new_creates_a_contact_per_order_like_ro_app() {
    assert_eq!(clients_after(ClientMatching::AlwaysNew).await, 4);
}

#[tokio::test]
async fn phone_or_email_reuses_a_contact_with_a_normalized_phone_or_email() {
    assert_eq!(clients_after(ClientMatching::PhoneOrEmail).await, 2);
}

#[tokio::test]
async fn quantity_edits_apply_before_write_off_and_are_ignored_after() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&one_line(42, 1, "pending", 1.0)).await;
    app.wait_for_events(1).await;

    // Before write-off: Prom's edit reaches the order.
    app.push_order(&one_line(42, 2, "pending", 3.0)).await;
    app.wait_for_events(2).await;
    assert_eq!(the_items(&app).await[0].quantity, dec!(3));
    assert_eq!(the_order(&app).await.total, dec!(360));

    // After write-off: the lines stay, the status still follows Prom, the log says why.
    orders::Entity::update_many()
        .col_expr(orders::Column::WrittenOffAt, Expr::value(Some(Utc::now())))
        .exec(&app.db)
        .await
        .unwrap();
    app.push_order(&one_line(42, 3, "received", 5.0)).await;
    app.wait_for_events(3).await;
    assert_eq!(the_items(&app).await[0].quantity, dec!(3));
    assert_eq!(
        app.text("SELECT st.kind FROM orders o JOIN order_statuses st ON st.id = o.status_id")
            .await
            .as_deref(),
        Some("in_progress")
    );
    let outcomes = app.outcomes().await;
    let (outcome, detail) = outcomes.last().unwrap();
    assert_eq!(*outcome, Outcome::SkippedWrittenOff);
    assert!(
        detail.as_deref().unwrap_or("").contains("written off"),
        "{detail:?}"
    );
}

#[tokio::test]
async fn a_write_off_committed_while_an_import_is_under_way_keeps_the_goods_written_off() {
    // Arrange: an imported order, and an importer that stops once its batch has read the
    // order for Prom's next version (a quantity edit).
    let mut app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&one_line(42, 1, "pending", 1.0)).await;
    app.wait_for_events(1).await;
    let order_id = the_order(&app).await.id;
    app.stop_importers().await;
    let pause = app.start_importer_pausing();
    app.push_order(&one_line(42, 2, "pending", 3.0)).await;
    tokio::time::timeout(WAIT, pause.reached.notified())
        .await
        .expect("the importer read the order");

    // Act: the write-off goes in while the importer holds what it read. Without the
    // importer's row lock it commits at once; with it, it waits for the import (seen as
    // a lock wait on PostgreSQL; on SQLite the importer holds the only connection). Only
    // then does the importer go on.
    let write_off = tokio::spawn(
        app.api(
            reqwest::Method::POST,
            &format!("/api/orders/{order_id}/write-off"),
            &app.admin_token,
        )
        .send(),
    );
    if app.backend == Backend::RabbitMq {
        let lock_waits = "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'";
        eventually(
            "the write-off done or waiting for the import",
            WAIT,
            || async { (write_off.is_finished() || app.count(lock_waits).await > 0).then_some(()) },
        )
        .await;
    }
    pause.release.notify_one();
    let response = write_off.await.expect("write-off task").expect("write-off");
    assert_eq!(response.status().as_u16(), 200);
    app.wait_for_events(2).await;

    // Assert: written off with every line written off, and the lines are those of
    // whichever came first: the write-off (Prom's edit skipped) or the import.
    let order = the_order(&app).await;
    let items = the_items(&app).await;
    assert!(order.written_off_at.is_some());
    assert!(
        items.iter().all(|item| item.written_off),
        "every line of a written-off order is written off: {items:?}"
    );
    let outcomes = app.outcomes().await;
    let (outcome, detail) = outcomes.last().expect("the edit's sync log");
    let (quantity, total) = match outcome {
        Outcome::SkippedWrittenOff => (dec!(1), dec!(120)),
        Outcome::Applied => (dec!(3), dec!(360)),
        other => panic!("the edit is applied or skipped, not {other:?} ({detail:?})"),
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].quantity, quantity);
    assert_eq!(order.total, total);
}

#[tokio::test]
async fn a_prom_edit_renaming_only_the_status_updates_its_title_even_after_write_off() {
    // Arrange: the custom-status order imported, then its goods written off.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let version = |s: u32, status_name: Value| {
        let mut order = fixture_order(CUSTOM_STATUS_ORDER);
        order["date_modified"] = json!(format!("2025-01-01T00:00:{s:02}.000000+00:00"));
        order["status_name"] = status_name;
        order
    };
    app.push_order(&version(1, json!("Підтверджено"))).await;
    app.wait_for_events(1).await;
    let imported = the_order(&app).await.remote_status_title;
    orders::Entity::update_many()
        .col_expr(orders::Column::WrittenOffAt, Expr::value(Some(Utc::now())))
        .exec(&app.db)
        .await
        .unwrap();

    // Act
    app.push_order(&version(2, json!("Узгоджено з покупцем")))
        .await;
    app.wait_for_events(2).await;
    let renamed = the_order(&app).await;
    app.push_order(&version(3, json!("  "))).await;
    app.wait_for_events(3).await;
    let blanked = the_order(&app).await;

    // Assert
    assert_eq!(imported.as_deref(), Some("Підтверджено"));
    assert_eq!(renamed.remote_status.as_deref(), Some("custom-137639"));
    assert_eq!(
        renamed.remote_status_title.as_deref(),
        Some("Узгоджено з покупцем")
    );
    assert_eq!(blanked.remote_status_title, None);
    let outcomes = app.outcomes().await;
    let (_, detail) = &outcomes[1];
    assert!(
        detail
            .as_deref()
            .unwrap_or("")
            .contains("Узгоджено з покупцем"),
        "{detail:?}"
    );
}

#[tokio::test]
async fn a_currency_mismatch_is_rejected_visibly_and_writes_nothing() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut usd = order(
        55,
        1,
        "pending",
        &[(1, "A", "Перший", 1.0, 10), (2, "B", "Другий", 1.0, 10)],
    );
    usd["products"][1]["price"] = json!("10 USD");

    app.push_order(&usd).await;
    app.wait_for_events(1).await;

    let outcomes = app.outcomes().await;
    assert_eq!(outcomes[0].0, Outcome::Rejected);
    let detail = outcomes[0].1.clone().unwrap_or_default();
    assert!(detail.contains("USD") && detail.contains("UAH"), "{detail}");
    for table in ["orders", "order_items", "products", "clients", "categories"] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} must stay empty"
        );
    }
}

#[tokio::test]
async fn an_unparseable_price_is_rejected_with_its_reason() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut bad = one_line(56, 1, "pending", 1.0);
    bad["price"] = json!("сто гривень");

    app.push_order(&bad).await;
    app.wait_for_events(1).await;

    let outcomes = app.outcomes().await;
    assert_eq!(outcomes[0].0, Outcome::Rejected);
    assert!(outcomes[0]
        .1
        .as_deref()
        .unwrap_or("")
        .contains("unparseable"));
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_after_n_attempts_while_others_flow() {
    // Arrange: Prom fails every fetch of order 666.
    let app = TestApp::builder()
        .prom_products_missing()
        .max_attempts(3)
        .spawn()
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/666"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.prom)
        .await;

    // Act
    let r = app.notify(&json!({"order_id": 666})).await;
    assert_eq!(r.status(), 202);
    app.push_order(&one_line(777, 1, "pending", 1.0)).await;

    // Assert
    app.wait_for_events(1).await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    eventually("the failing message in the dead letters", WAIT, || async {
        (app.dead_letters(Lane::Inbound).await.len() == 1).then_some(())
    })
    .await;
    let fetches = app
        .prom
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/orders/666")
        .count();
    assert_eq!(fetches, 3, "one Prom call per attempt");
    assert_eq!(app.queue_depth(Lane::Inbound).await, 0);
}

#[tokio::test]
async fn a_thin_notification_fetches_the_order_from_prom_with_the_shops_credentials() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let document: Value = serde_json::from_str(CUSTOM_STATUS_ORDER).unwrap();
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/32345434343"))
        .and(header("authorization", "Bearer prom-token-1"))
        .and(header("x-language", "uk"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&app.prom)
        .await;

    let r = app.notify(&json!({"order_id": 32345434343_i64})).await;
    assert_eq!(r.status(), 202);
    app.wait_for_events(1).await;

    assert_eq!(
        app.text("SELECT external_id FROM orders").await.as_deref(),
        Some("32345434343")
    );
    // custom-137639 has no inbound mapping: a new order gets the default `new` status.
    assert_eq!(
        app.text("SELECT st.kind FROM orders o JOIN order_statuses st ON st.id = o.status_id")
            .await
            .as_deref(),
        Some("new")
    );
    assert_eq!(
        app.text("SELECT remote_status FROM orders")
            .await
            .as_deref(),
        Some("custom-137639")
    );
}

#[tokio::test]
async fn new_products_take_description_and_category_from_prom_and_reuse_categories() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    for (id, group) in [(1_i64, "Шкарпетки"), (2, "Шкарпетки")] {
        app.prom_product(
            id,
            json!({"id": id, "name": "x", "description": format!("<p>Опис {id}</p>"),
                   "group": {"id": 5, "name": group}}),
        )
        .await;
    }

    app.push_order(&order(
        1,
        1,
        "pending",
        &[(1, "A", "Перший", 1.0, 10), (2, "B", "Другий", 1.0, 10)],
    ))
    .await;
    app.wait_for_events(1).await;
    // Product 3 is gone from Prom (404): it is created from the order line alone.
    app.push_order(&order(2, 1, "pending", &[(3, "C", "Третій", 1.0, 10)]))
        .await;
    app.wait_for_events(2).await;

    assert_eq!(app.count("SELECT count(*) FROM categories").await, 1);
    assert_eq!(
        app.text("SELECT description FROM products WHERE sku = 'A'")
            .await
            .as_deref(),
        Some("<p>Опис 1</p>")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM products WHERE category_id IS NOT NULL")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM products WHERE sku = 'C' AND category_id IS NULL AND description IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn orders_in_flight_for_one_new_product_ask_prom_about_it_once_and_create_it_once() {
    // Arrange: 30 orders of one product new to the books wait in the queue, so that the
    // importer takes them all at once; Prom answers about the product slowly.
    let mut app = TestApp::builder()
        .prom_products_missing()
        .importers(0)
        .spawn()
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/products/777"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"product": {"id": 777, "name": "Товар", "description": "Опис"}}),
                )
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&app.prom)
        .await;
    for id in 0..30 {
        app.push_order(&order(
            500 + id,
            1,
            "pending",
            &[(777, "S7", "Товар", 1.0, 100)],
        ))
        .await;
    }

    // Act
    app.start_importer();
    app.wait_for_events(30).await;

    // Assert
    let asked = app
        .prom
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/products/777")
        .count();
    assert_eq!(asked, 1, "Prom was asked about the product once");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 30);
    assert_eq!(
        app.count("SELECT count(*) FROM products WHERE description = 'Опис'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
}

#[tokio::test]
async fn prom_statuses_apply_only_when_changed_and_unmapped_ones_keep_the_status() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let kind =
        || app.text("SELECT st.kind FROM orders o JOIN order_statuses st ON st.id = o.status_id");

    app.push_order(&one_line(9, 1, "pending", 1.0)).await;
    app.wait_for_events(1).await;
    assert_eq!(kind().await.as_deref(), Some("new"));

    app.push_order(&one_line(9, 2, "received", 1.0)).await;
    app.wait_for_events(2).await;
    assert_eq!(kind().await.as_deref(), Some("in_progress"));

    // An employee moved the order on in RO App; Prom's unchanged status must not undo it.
    app.db
        .execute_unprepared(
            "UPDATE orders SET status_id = (SELECT id FROM order_statuses WHERE kind = 'done')",
        )
        .await
        .unwrap();
    app.push_order(&one_line(9, 3, "received", 1.0)).await;
    app.wait_for_events(3).await;
    assert_eq!(kind().await.as_deref(), Some("done"));

    // An unmapped Prom status keeps the RO App status but is remembered.
    app.push_order(&one_line(9, 4, "custom-137639", 1.0)).await;
    app.wait_for_events(4).await;
    assert_eq!(kind().await.as_deref(), Some("done"));
    assert_eq!(
        app.text("SELECT remote_status FROM orders")
            .await
            .as_deref(),
        Some("custom-137639")
    );
}

#[tokio::test]
async fn draft_orders_are_not_imported() {
    let app = TestApp::builder().prom_products_missing().spawn().await;

    app.push_order(&one_line(10, 1, "draft", 1.0)).await;
    app.wait_for_events(1).await;

    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0);
    assert_eq!(app.outcomes().await[0].0, Outcome::Skipped);
}

#[tokio::test]
async fn a_token_prom_refuses_dead_letters_the_message_and_flags_the_shop() {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/4242"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "bad token"})))
        .mount(&app.prom)
        .await;

    let r = app.notify(&json!({"order_id": 4242})).await;
    assert_eq!(r.status(), 202);

    let letters = eventually("a dead letter", WAIT, || async {
        let letters = app.dead_letters(Lane::Inbound).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0].attempts, 1, "a refused token is not retried");
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE token_rejected_at IS NOT NULL")
            .await,
        1
    );
}

/// An app whose importer is not started yet, with batches large and patient enough that
/// every message queued before [`start_batching_importer`] lands in one transaction.
async fn app_with_stopped_importer(max_attempts: u32) -> TestApp {
    let mut app = TestApp::builder()
        .prom_products_missing()
        .importers(0)
        .max_attempts(max_attempts)
        .spawn()
        .await;
    app.settings.import.concurrency = NonZeroUsize::new(32).unwrap();
    app.settings.import.batch_size = NonZeroUsize::new(64).unwrap();
    app.settings.import.batch_linger = Duration::from_millis(1000);
    app
}

/// How many transactions the applied events came from (a batch stamps one time on all).
async fn batches(app: &TestApp) -> i64 {
    app.count("SELECT count(DISTINCT processed_at) FROM inbound_events")
        .await
}

#[tokio::test]
async fn ten_versions_of_one_order_in_one_batch_leave_it_at_the_newest_version() {
    // Arrange: versions 1..=10 (quantity = version) queued in a scrambled order.
    let mut app = app_with_stopped_importer(3).await;
    for version in [3_u32, 7, 1, 10, 5, 2, 9, 4, 8, 6] {
        app.push_order(&one_line(4242, version, "pending", f64::from(version)))
            .await;
    }

    // Act
    app.start_importer();
    app.wait_for_events(10).await;

    // Assert
    assert_eq!(batches(&app).await, 1, "all ten in one transaction");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    let items = the_items(&app).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].quantity, dec!(10), "the newest version wins");
    assert_eq!(
        the_order(&app).await.remote_modified_at,
        Some(Utc.with_ymd_and_hms(2025, 4, 7, 7, 0, 10).unwrap())
    );
}

#[tokio::test]
async fn an_event_delivered_twice_into_one_batch_is_applied_once_and_acked_as_duplicate() {
    // Arrange
    let mut app = app_with_stopped_importer(3).await;
    let webhook_id = format!("msg_twice_{}", uuid::Uuid::new_v4().simple());
    let body = json!({ "order": one_line(5151, 1, "pending", 2.0) });
    let mut event = String::new();
    for _ in 0..2 {
        let response = app.notify_with_id(&webhook_id, &body).await;
        assert_eq!(response.status(), 202);
        let answer: Value = response.json().await.expect("JSON answer");
        event = answer["event_id"].as_str().expect("event id").to_owned();
    }
    app.push_order(&one_line(5252, 1, "pending", 1.0)).await;

    // Act
    app.start_importer();
    app.wait_for_events(2).await;
    eventually("the queue to drain", WAIT, || async {
        (app.queue_depth(Lane::Inbound).await == 0).then_some(())
    })
    .await;

    // Assert
    assert_eq!(batches(&app).await, 1, "one transaction");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM clients").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 2);
    let sql =
        format!("SELECT count(*) FROM inbound_events WHERE id = '{event}' AND outcome = 'applied'");
    assert_eq!(app.count(&sql).await, 1);
    assert!(
        app.dead_letters(Lane::Inbound).await.is_empty(),
        "the second delivery is settled as a duplicate, not failed"
    );
}

#[tokio::test]
async fn a_message_failing_inside_a_batch_rolls_back_alone_and_the_others_commit() {
    if crate::support::backend() == crate::support::Backend::Embedded {
        // SQLite stores a NUL in text, so this poison is harmless there.
        return;
    }
    // Arrange: one order the database refuses (PostgreSQL text cannot hold a NUL byte)
    // between four good ones. Out-of-range numbers no longer serve: they are rejected
    // before the database.
    let mut app = app_with_stopped_importer(2).await;
    for id in [6001, 6002] {
        app.push_order(&one_line(id, 1, "pending", 1.0)).await;
    }
    let mut poison = one_line(6666, 1, "pending", 1.0);
    poison["client_first_name"] = json!("Nul\u{0}byte");
    app.push_order(&poison).await;
    for id in [6003, 6004] {
        app.push_order(&one_line(id, 1, "pending", 1.0)).await;
    }

    // Act
    app.start_importer();

    // Assert
    app.wait_for_events(4).await;
    eventually("the poison in the dead letters", WAIT, || async {
        (app.dead_letters(Lane::Inbound).await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 4);
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE external_id = '6666'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 4);
    assert_eq!(batches(&app).await, 1, "the good four share one commit");
}

/// Each enum's values as stored.
fn stored_values<T: ActiveEnum<Value = String>>() -> Vec<String> {
    T::iter().map(|v| v.to_value()).collect()
}

/// The closed sets stay closed below the importer too: on PostgreSQL a CHECK constraint
/// admits exactly the values of the entity enum and refuses any other, even from plain
/// SQL; SQLite has no such constraint, and there the entity refuses to load the row.
#[tokio::test]
async fn a_value_outside_an_enum_is_refused_even_from_plain_sql() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    let shop_id = app.shop.shop_id;

    // Act
    let written = app
        .db
        .execute_unprepared(&format!(
            "UPDATE shops SET language = 'de' WHERE id = {shop_id}"
        ))
        .await;

    // Assert
    match app.backend {
        Backend::RabbitMq => {
            let err = written.expect_err("PostgreSQL refuses a language outside the enum");
            assert!(err.to_string().contains("ck_shops_language"), "{err}");
            let checks = [
                ("ck_order_statuses_kind", stored_values::<StatusKind>()),
                ("ck_shops_language", stored_values::<Language>()),
                (
                    "ck_shops_match_products_by",
                    stored_values::<MatchProductsBy>(),
                ),
                (
                    "ck_shops_client_matching",
                    stored_values::<ClientMatching>(),
                ),
                ("ck_status_mappings_direction", stored_values::<Direction>()),
                ("ck_inbound_events_source", stored_values::<Source>()),
                ("ck_inbound_events_outcome", stored_values::<Outcome>()),
                ("ck_outbound_sync_log_outcome", stored_values::<Outcome>()),
                ("ck_outbox_kind", stored_values::<OutboxKind>()),
                ("ck_orders_waybill_carrier", stored_values::<Carrier>()),
                ("ck_orders_waybill_sent_carrier", stored_values::<Carrier>()),
                ("ck_dead_letters_lane", stored_values::<Lane>()),
                ("ck_broker_messages_lane", stored_values::<Lane>()),
                (
                    "ck_prom_status_options_kind",
                    stored_values::<PromStatusKind>(),
                ),
            ];
            for (constraint, values) in checks {
                let definition = app
                    .text(&format!(
                        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                         WHERE conname = '{constraint}'"
                    ))
                    .await
                    .unwrap_or_else(|| panic!("no constraint {constraint}"));
                for value in &values {
                    assert!(
                        definition.contains(&format!("'{value}'")),
                        "{constraint} refuses `{value}`: {definition}"
                    );
                }
                assert_eq!(
                    definition.matches('\'').count(),
                    2 * values.len(),
                    "{constraint} admits a value its enum does not have: {definition}"
                );
            }
        }
        Backend::Embedded => {
            written.expect("SQLite has no CHECK constraint to refuse it");
            let read = shops::Entity::find_by_id(shop_id).one(&app.db).await;
            assert!(read.is_err(), "the entity must not load `de`: {read:?}");
            app.db
                .execute_unprepared(&format!(
                    "UPDATE shops SET language = 'uk' WHERE id = {shop_id}"
                ))
                .await
                .expect("restoring the shop");
        }
    }
}

#[tokio::test]
async fn a_prom_edit_of_the_delivery_reaches_a_written_off_order_while_its_goods_stay_frozen() {
    // Arrange: an imported order, written off.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&one_line(42, 1, "pending", 1.0)).await;
    app.wait_for_events(1).await;
    orders::Entity::update_many()
        .col_expr(orders::Column::WrittenOffAt, Expr::value(Some(Utc::now())))
        .exec(&app.db)
        .await
        .unwrap();
    let mut edited = one_line(42, 2, "pending", 5.0);
    edited["delivery_address"] = json!("м. Київ, Відділення №1");
    edited["delivery_provider_data"]["declaration_number"] = json!("20450000000001");
    edited["delivery_cost"] = json!("65.50");
    edited["payment_data"] = json!({"type": "evopay", "status": "paid"});

    // Act: Prom changes the lines, the address and sets a waybill number.
    app.push_order(&edited).await;
    app.wait_for_events(2).await;

    // Assert
    let order = the_order(&app).await;
    assert_eq!(the_items(&app).await[0].quantity, dec!(1));
    assert_eq!(order.total, dec!(120));
    assert_eq!(
        order.delivery_address.as_deref(),
        Some("м. Київ, Відділення №1")
    );
    assert_eq!(
        order.delivery_declaration_number.as_deref(),
        Some("20450000000001")
    );
    assert_eq!(order.delivery_cost, Some(dec!(65.50)));
    assert_eq!(order.payment_status.as_deref(), Some("paid"));
}

#[tokio::test]
async fn a_prom_edit_of_the_delivery_reaches_an_order_before_its_write_off() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&one_line(42, 1, "pending", 1.0)).await;
    app.wait_for_events(1).await;
    let mut edited = one_line(42, 2, "pending", 1.0);
    edited["delivery_provider_data"]["declaration_number"] = json!("20450000000002");

    // Act
    app.push_order(&edited).await;
    app.wait_for_events(2).await;

    // Assert
    let order = the_order(&app).await;
    assert_eq!(
        order.delivery_declaration_number.as_deref(),
        Some("20450000000002")
    );
    assert_eq!(order.total, dec!(120));
}
