//! Recovery (ARCHITECTURE.md, 'Replay', 'Retries and dead letters'): replay from the log
//! rebuilds the books and is safe beside live traffic; dead letters can be listed, requeued
//! once their cause is fixed, and purged.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use promsync::{
    broker::{Lane, ReplayRequest},
    cli::DlqCommand,
};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, ResponseTemplate,
};

use crate::support::{eventually, fixture_order, TestApp, PENDING_ORDER};

const WAIT: Duration = Duration::from_secs(60);

/// One version of an order; the product's Prom id follows its SKU, as in a real catalogue.
fn version(id: i64, v: u32, quantity: u32, sku: &str) -> Value {
    let mut order = fixture_order(PENDING_ORDER);
    order["id"] = json!(id);
    order["date_modified"] = json!(format!(
        "2025-04-07T08:{:02}:{:02}.000000+00:00",
        v / 60,
        v % 60
    ));
    order["status"] = json!(if v.is_multiple_of(2) {
        "received"
    } else {
        "pending"
    });
    order["products"][0]["sku"] = json!(sku);
    let catalogue_id = 3000 + sku.bytes().map(i64::from).sum::<i64>();
    order["products"][0]["id"] = json!(catalogue_id);
    order["products"][0]["quantity"] = json!(quantity);
    order["products"][0]["price"] = json!("100 грн");
    order["price"] = json!(format!("{} грн", 100 * quantity));
    order
}

/// The books in a form that ignores ids and sync times: what a replay must reproduce.
async fn canonical_dump(app: &TestApp) -> Vec<String> {
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT o.external_id, o.number, st.kind, o.remote_status, o.total, \
                    c.first_name, c.phone, i.name, i.sku, i.quantity, i.price, p.sku AS product_sku, \
                    p.prom_id \
             FROM orders o JOIN order_statuses st ON st.id = o.status_id \
             LEFT JOIN clients c ON c.id = o.client_id \
             JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id \
             ORDER BY o.external_id, i.position"
                .to_owned(),
        ))
        .await
        .expect("dump");
    let mut dump: Vec<String> = rows
        .iter()
        .map(|r| {
            let text = |c: &str| r.try_get::<Option<String>>("", c).unwrap_or_default();
            let number = |c: &str| {
                r.try_get::<rust_decimal::Decimal>("", c)
                    .map(|d| d.normalize().to_string())
                    .unwrap_or_default()
            };
            format!(
                "{:?} {:?} {:?} {:?} {} {:?} {:?} {:?} {:?} {} {} {:?} {:?}",
                text("external_id"),
                text("number"),
                text("kind"),
                text("remote_status"),
                number("total"),
                text("first_name"),
                text("phone"),
                text("name"),
                text("sku"),
                number("quantity"),
                number("price"),
                text("product_sku"),
                r.try_get::<Option<i64>>("", "prom_id").unwrap_or_default(),
            )
        })
        .collect();
    dump.sort();
    let count = |sql: &'static str| app.count(sql);
    dump.push(format!(
        "orders {} products {} clients {} categories {}",
        count("SELECT count(*) FROM orders").await,
        count("SELECT count(*) FROM products").await,
        count("SELECT count(*) FROM clients").await,
        count("SELECT count(*) FROM categories").await,
    ));
    dump
}

async fn wipe_books(app: &TestApp) {
    for table in [
        "order_items",
        "inbound_events",
        "orders",
        "clients",
        "products",
        "categories",
    ] {
        app.db
            .execute_unprepared(&format!("DELETE FROM {table}"))
            .await
            .expect("wipe");
    }
}

/// An app whose `importers` import every logged order (Prom knows none of the products).
async fn importing_app(importers: usize) -> TestApp {
    TestApp::builder()
        .importers(importers)
        .prom_products_missing()
        .spawn()
        .await
}

fn everything() -> ReplayRequest {
    ReplayRequest::new(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(), None)
}

#[tokio::test]
async fn replaying_a_2000_event_log_into_an_empty_database_rebuilds_the_same_books() {
    // Arrange: 2,000 notifications, 200 orders in 10 versions each, out of order.
    let app = importing_app(2).await;
    let mut bodies = Vec::new();
    for v in 1..=10_u32 {
        for o in 0..200_i64 {
            let v = if o % 3 == 0 { 11 - v } else { v };
            bodies.push(json!({"order": version(500_000 + o, v, v, &format!("R{}", o % 13))}));
        }
    }
    log_all(&app, &bodies).await;
    app.wait_for_events(2000).await;
    let original = canonical_dump(&app).await;
    assert!(original.len() > 200, "{}", original.len());

    // Act: lose the books, replay everything.
    wipe_books(&app).await;
    let summary = app
        .broker()
        .replay(&everything(), &|_| {})
        .await
        .expect("replay");

    // Assert
    assert_eq!(summary.read, 2000);
    assert_eq!(summary.requeued, 2000);
    app.wait_for_events(2000).await;
    drained(&app).await;
    let rebuilt = canonical_dump(&app).await;
    let first_difference = original
        .iter()
        .zip(&rebuilt)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("original: {a}\nrebuilt:  {b}"));
    assert_eq!(first_difference, None);
    assert_eq!(rebuilt.len(), original.len());
}

#[tokio::test]
async fn replaying_a_window_while_importers_run_creates_no_duplicate() {
    let app = importing_app(2).await;
    for o in 0..100_i64 {
        app.push_order(&version(700_000 + o, 1, 1, "W")).await;
    }
    app.wait_for_events(100).await;

    // Replay everything while fresh versions of the same orders keep arriving.
    let broker = app.broker();
    let replay = tokio::spawn(async move { broker.replay(&everything(), &|_| {}).await });
    for o in 0..100_i64 {
        app.push_order(&version(700_000 + o, 2, 2, "W")).await;
    }
    let summary = replay.await.unwrap().expect("replay");
    app.wait_for_events(200).await;
    drained(&app).await;

    assert!(summary.requeued >= 100, "{summary:?}");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 100);
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 100);
    assert_eq!(
        app.count("SELECT count(*) FROM order_items WHERE quantity = 2")
            .await,
        100,
        "no order went back to its older version"
    );
    // Without --force the inbox recognizes replayed events: no second sync-log row.
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 200);
}

#[tokio::test]
async fn a_forced_replay_re_applies_events_without_moving_orders_back() {
    let app = importing_app(2).await;
    app.push_order(&version(800_001, 5, 5, "F")).await;
    app.wait_for_events(1).await;

    let mut forced = everything();
    forced.force = true;
    let summary = app.broker().replay(&forced, &|_| {}).await.expect("replay");

    assert_eq!(summary.requeued, 1);
    app.wait_for_events(2).await;
    let outcomes = app.outcomes().await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[1].0,
        promsync::domain::Outcome::Duplicate,
        "same version: nothing changes"
    );
}

#[tokio::test]
async fn a_dead_letter_requeued_after_its_cause_is_fixed_is_applied_once() {
    // Arrange: Prom fails every fetch of order 666 until we fix it.
    let app = TestApp::builder().max_attempts(2).spawn().await;
    app.prom_products_missing().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/666"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(5)
        .mount(&app.prom)
        .await;
    let r = app.notify(&json!({"order_id": 666})).await;
    assert_eq!(r.status(), 202);
    let letters = eventually("a dead letter", WAIT, || async {
        let letters = app.dead_letters(Lane::Inbound).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].order_id, Some(666));
    assert_eq!(letters[0].attempts, 2);
    assert!(letters[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("503")));

    // Act: fix Prom, then requeue.
    let mut fixed = fixture_order(PENDING_ORDER);
    fixed["id"] = json!(666);
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/666"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "order": fixed })))
        .with_priority(1)
        .mount(&app.prom)
        .await;
    let requeued = app.requeue_dead(Lane::Inbound, None).await;

    // Assert
    assert_eq!(requeued, 1);
    app.wait_for_events(1).await;
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE external_id = '666'")
            .await,
        1
    );
    assert!(app.dead_letters(Lane::Inbound).await.is_empty());
    assert_eq!(app.requeue_dead(Lane::Inbound, None).await, 0);
}

#[tokio::test]
async fn a_dead_lettered_import_is_listed_with_its_shop_and_order_and_once_requeued_imported_once()
{
    // Arrange: Prom refuses the token on the first fetch of order 777 (a permanent
    // failure: dead-lettered at once), then serves the order.
    let app = TestApp::builder().max_attempts(3).spawn().await;
    app.prom_products_missing().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/777"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.prom)
        .await;
    let mut order = fixture_order(PENDING_ORDER);
    order["id"] = json!(777);
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/777"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "order": order })))
        .mount(&app.prom)
        .await;
    let r = app.notify(&json!({"order_id": 777})).await;
    assert_eq!(r.status(), 202);
    let listed = eventually("the dead letter in the API", WAIT, || async {
        let (status, body) = app
            .call(Method::GET, "/api/dead-letters", &app.admin_token, None)
            .await;
        assert_eq!(status, 200, "{body}");
        let letters = body["dead_letters"].as_array().unwrap().clone();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    let mut cli_output = Vec::new();
    promsync::cli::dlq(
        &app.settings,
        DlqCommand::List {
            queue: Lane::Inbound,
        },
        &mut cli_output,
    )
    .await
    .expect("dlq list");

    // Act
    let id = listed[0]["id"].as_i64().unwrap();
    let (status, requeued) = app
        .call(
            Method::POST,
            "/api/dead-letters/requeue",
            &app.admin_token,
            Some(json!({ "ids": [id] })),
        )
        .await;

    // Assert: listed with its shop and Prom order, seen by the operator's CLI too...
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["lane"], "inbound");
    assert_eq!(listed[0]["shop_id"], app.shop.shop_id);
    assert_eq!(listed[0]["order_id"], 777);
    assert_eq!(listed[0]["attempts"], 1);
    assert!(listed[0]["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("401")));
    let cli: Vec<Value> = String::from_utf8(cli_output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert_eq!(cli.len(), 1, "{cli:?}");
    assert_eq!(cli[0]["id"], id.to_string());
    assert_eq!(cli[0]["order_id"], 777);
    assert_eq!(cli[0]["account_id"], app.account_id);
    // ...and once requeued, imported exactly once.
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued, json!({"requeued": 1}));
    eventually("the order imported", WAIT, || async {
        (app.count("SELECT count(*) FROM orders WHERE external_id = '777'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    let (_, again) = app
        .call(
            Method::POST,
            "/api/dead-letters/requeue",
            &app.admin_token,
            Some(json!({ "ids": [id] })),
        )
        .await;
    assert_eq!(again, json!({"requeued": 0}));
    assert!(app.dead_letters(Lane::Inbound).await.is_empty());
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM orders WHERE external_id = '777'")
            .await,
        1
    );
}

#[tokio::test]
async fn purging_removes_every_dead_letter_and_listing_leaves_them_in_place() {
    let app = TestApp::builder().max_attempts(1).spawn().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/13"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&app.prom)
        .await;
    app.notify(&json!({"order_id": 13})).await;
    eventually("a dead letter", WAIT, || async {
        (app.dead_letters(Lane::Inbound).await.len() == 1).then_some(())
    })
    .await;
    // Listing twice shows the same letter: a list never consumes.
    assert_eq!(app.dead_letters(Lane::Inbound).await.len(), 1);

    let purged = promsync::broker::dead_letters::purge_lane(&app.db, Lane::Inbound)
        .await
        .expect("purge");

    assert_eq!(purged, 1);
    assert!(app.dead_letters(Lane::Inbound).await.is_empty());
}

/// Logs `bodies` through the webhook door, `chunk` at a time, each one accepted.
async fn log_all(app: &TestApp, bodies: &[Value]) {
    for chunk in bodies.chunks(100) {
        let sends = chunk.iter().map(|b| app.notify(b));
        for r in futures::future::join_all(sends).await {
            assert_eq!(r.status(), 202);
        }
    }
}

async fn drained(app: &TestApp) {
    eventually("the import queue to drain", WAIT, || async {
        (app.queue_depth(Lane::Inbound).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_replay_through_a_narrow_confirm_window_keeps_each_order_at_its_newest_version_and_loses_or_doubles_nothing(
) {
    // Arrange: 60 orders in 10 versions each, the newest logged first for a third of
    // them; then the books are lost.
    let app = importing_app(2).await;
    let mut bodies = Vec::new();
    for v in 1..=10_u32 {
        for o in 0..60_i64 {
            let v = if o % 3 == 0 { 11 - v } else { v };
            bodies.push(json!({"order": version(610_000 + o, v, v, "N")}));
        }
    }
    log_all(&app, &bodies).await;
    app.wait_for_events(600).await;
    drained(&app).await;
    wipe_books(&app).await;
    let mut request = everything();
    request.in_flight = std::num::NonZeroUsize::new(16).unwrap();

    // Act: the window wraps ~40 times.
    let summary = app
        .broker()
        .replay(&request, &|_| {})
        .await
        .expect("replay");

    // Assert
    assert_eq!(summary.read, 600, "{summary:?}");
    assert_eq!(summary.requeued, 600, "{summary:?}");
    assert_eq!(summary.skipped, 0, "{summary:?}");
    app.wait_for_events(600).await;
    drained(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 600);
    assert_eq!(
        app.count("SELECT count(DISTINCT id) FROM inbound_events")
            .await,
        600,
        "each logged event applied exactly once"
    );
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 60);
    assert_eq!(
        app.count("SELECT count(*) FROM order_items WHERE quantity = 10")
            .await,
        60,
        "every order at its newest version"
    );
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 60);
}

#[tokio::test]
async fn until_is_exact_below_a_second_so_an_event_logged_just_after_the_bound_is_not_replayed() {
    // Arrange: one order logged before the bound, one right after it (the same second).
    let app = importing_app(1).await;
    app.push_order(&version(620_001, 1, 1, "U")).await;
    let bound = Utc::now();
    app.push_order(&version(620_002, 1, 1, "U")).await;
    app.wait_for_events(2).await;
    drained(&app).await;
    wipe_books(&app).await;
    let mut request = everything();
    request.until = Some(bound);

    // Act
    let summary = app
        .broker()
        .replay(&request, &|_| {})
        .await
        .expect("replay");

    // Assert
    assert_eq!(summary.read, 1, "{summary:?}");
    assert_eq!(summary.requeued, 1, "{summary:?}");
    app.wait_for_events(1).await;
    drained(&app).await;
    let replayed = app
        .text("SELECT external_id FROM orders")
        .await
        .expect("one order");
    assert_eq!(replayed, "620001");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
}

#[tokio::test]
async fn a_replay_ends_by_itself_at_the_end_it_saw_at_start_while_notifications_keep_arriving() {
    // Arrange: 200 notifications logged, then a sender that never pauses.
    let app = std::sync::Arc::new(importing_app(2).await);
    let bodies: Vec<Value> = (0..200_i64)
        .map(|o| json!({"order": version(630_000 + o, 1, 1, "E")}))
        .collect();
    log_all(&app, &bodies).await;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let sender = tokio::spawn({
        let (app, sent, stop) = (app.clone(), sent.clone(), stop.clone());
        async move {
            let mut o = 0_i64;
            while !stop.is_cancelled() {
                app.push_order(&version(640_000 + o, 1, 1, "E")).await;
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                o += 1;
            }
        }
    });
    eventually("live traffic to flow", WAIT, || async {
        (sent.load(std::sync::atomic::Ordering::SeqCst) >= 20).then_some(())
    })
    .await;
    let logged_before = 200 + sent.load(std::sync::atomic::Ordering::SeqCst);

    // Act
    let summary = tokio::time::timeout(WAIT, app.broker().replay(&everything(), &|_| {}))
        .await
        .expect("the replay ended while traffic kept coming")
        .expect("replay");

    // Assert: everything logged before the replay began, nothing logged after it ended.
    let logged_after = 200 + sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(!sender.is_finished(), "traffic never stopped");
    stop.cancel();
    sender.await.expect("sender");
    assert!(
        (logged_before..=logged_after).contains(&summary.read),
        "{logged_before} <= {summary:?} <= {logged_after}"
    );
    assert_eq!(summary.requeued, summary.read);
}

#[tokio::test]
async fn replay_writes_json_progress_lines_on_stderr_when_it_is_not_a_terminal() {
    // Arrange
    let app = importing_app(1).await;
    let bodies: Vec<Value> = (0..30_i64)
        .map(|o| json!({"order": version(650_000 + o, 1, 1, "J")}))
        .collect();
    log_all(&app, &bodies).await;
    app.wait_for_events(30).await;

    // Act: the replay command with stderr piped.
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_promsync"));
    command
        .args([
            "replay",
            "--since",
            "2020-01-01T00:00:00Z",
            "--in-flight",
            "8",
        ])
        .env("PROMSYNC_DATABASE_URL", &app.settings.database.url)
        .env("PROMSYNC_BROKER_NAMESPACE", &app.settings.broker.namespace)
        .env("PROMSYNC_RETRY_DELAYS_MS", "50,100,200")
        // No logs: stderr holds the progress alone.
        .env("RUST_LOG", "off")
        .env_remove("PROMSYNC_BROKER_URL");
    if let Some(url) = &app.settings.broker.url {
        command.env("PROMSYNC_BROKER_URL", url);
    }
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("replay finished")
        .expect("running promsync replay");

    // Assert
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let last = lines
        .last()
        .unwrap_or_else(|| panic!("no progress line: {stderr}"));
    assert_eq!(last["done"], true, "{stderr}");
    assert_eq!(last["replay"]["read"], 30, "{stderr}");
    assert_eq!(last["replay"]["requeued"], 30, "{stderr}");
    assert!(last["per_s"].as_f64().is_some(), "{stderr}");
    let stdout: Value = serde_json::from_slice(&output.stdout).expect("the summary on stdout");
    assert_eq!(stdout, json!({"read": 30, "requeued": 30, "skipped": 0}));
}

#[tokio::test]
async fn a_second_replay_counts_the_same_notifications_and_passes_over_the_first_ones_end() {
    // Arrange: a replay already ran over the log (on RabbitMQ it left its end mark there).
    let app = importing_app(1).await;
    let bodies: Vec<Value> = (0..5_i64)
        .map(|o| json!({"order": version(660_000 + o, 1, 1, "S")}))
        .collect();
    log_all(&app, &bodies).await;
    app.wait_for_events(5).await;
    let first = app
        .broker()
        .replay(&everything(), &|_| {})
        .await
        .expect("first replay");

    // Act
    let second = app
        .broker()
        .replay(&everything(), &|_| {})
        .await
        .expect("second replay");

    // Assert: the end mark is no notification, not even a skipped one.
    let expected = promsync::broker::ReplaySummary {
        read: 5,
        requeued: 5,
        skipped: 0,
    };
    assert_eq!(first, expected);
    assert_eq!(second, expected);
}
