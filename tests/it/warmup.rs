//! Warm before ready: `serve` opens its broker link by itself and `/readyz` says 503
//! until it is up; every process opens its minimum of database connections when it
//! connects; an importer caches the shops and runs a rolled-back import on each
//! connection its batches use before it consumes, and starts all the same when there
//! are no shops.

use std::time::Duration;

use promsync::{
    db,
    import::{batch::BatchSettings, Importer, Warmed},
    startup::Backends,
};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::{
    broker_outage::{broker_through, RABBITMQ},
    supervise::readyz,
    support::{backend, eventually, fixture_order, proxy::Proxy, Backend, TestApp, PENDING_ORDER},
};

/// `/readyz` of the app's own server.
async fn app_readyz(app: &TestApp) -> (u16, Value) {
    let port = app
        .address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the app's port");
    readyz(app, port).await
}

/// An importer of the app's database with backends of its own.
async fn importer(app: &TestApp) -> Importer {
    let backends = Backends::connect(&app.settings).await.expect("backends");
    let batch = BatchSettings::new(&app.settings.import, app.settings.database.is_sqlite(), 1);
    Importer::new(backends.db, backends.prom, batch)
}

#[tokio::test]
async fn readiness_is_503_while_the_broker_is_silent_and_200_once_the_publisher_connected() {
    // Arrange: the broker behind a proxy that answers nothing from the start.
    let proxy = Proxy::start(RABBITMQ.parse().unwrap()).await;
    proxy.silence();
    let app = TestApp::builder()
        .importers(0)
        .broker_url(broker_through(&proxy))
        .publish_timeout(Duration::from_millis(500))
        .spawn()
        .await;

    // Act + Assert: the process started, but is not ready.
    let (status, body) = app_readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["broker"], "unavailable");
    assert_eq!(body["database"], "ok");

    // The broker answers again: ready without a restart.
    proxy.restore();
    let body = eventually("/readyz 200", Duration::from_secs(30), || async {
        let (status, body) = app_readyz(&app).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body["broker"], "ok");
}

#[tokio::test]
async fn serve_connects_to_the_broker_before_any_request_asks_it_to() {
    // Arrange: the broker behind a proxy that counts connections; no importer, so only
    // the HTTP role could connect.
    let proxy = Proxy::start(RABBITMQ.parse().unwrap()).await;

    // Act: the app starts; nobody sends it anything.
    let _app = TestApp::builder()
        .importers(0)
        .broker_url(broker_through(&proxy))
        .spawn()
        .await;

    // Assert: its publishing link was opened all the same.
    eventually(
        "a connection to the broker",
        Duration::from_secs(30),
        || async { (proxy.connections() >= 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_pool_opens_its_minimum_of_connections_when_it_connects() {
    if backend() == Backend::Embedded {
        // SQLite has one connection whatever the setting.
        return;
    }
    // Arrange: the test's database, and a pool that keeps four connections.
    let app = TestApp::builder().importers(0).spawn().await;
    let mut settings = app.settings.clone();
    settings.database.min_connections = 4;
    let since = app
        .text("SELECT now()::text")
        .await
        .expect("the database's time");

    // Act
    let pool = db::connect(&settings).await.expect("connecting");

    // Assert: the connections are there as soon as connecting returned, before any query.
    let opened = app
        .count(&format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = '{}' AND backend_start >= '{since}'::timestamptz",
            app.db_name()
        ))
        .await;
    assert!(opened >= 4, "{opened} connections opened");
    pool.close().await.expect("closing the pool");
}

#[tokio::test]
async fn an_importer_caches_the_enabled_shops_before_it_consumes() {
    // Arrange: the app's one enabled shop.
    let app = TestApp::builder().importers(0).spawn().await;
    let importer = importer(&app).await;

    // Act
    let warmed = importer.warm_up().await.expect("warm-up");

    // Assert
    assert_eq!(warmed.shops, 1);
}

/// Rows in every table an import writes.
async fn imported_rows(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "orders",
        "order_items",
        "clients",
        "products",
        "categories",
        "inbound_events",
        "outbound_sync_log",
        "outbox",
    ] {
        counts.push(app.count(&format!("SELECT count(*) FROM {table}")).await);
    }
    counts
}

#[tokio::test]
async fn an_importer_imports_a_made_up_order_on_each_connection_its_batches_use_and_keeps_none_of_it(
) {
    // Arrange
    let app = TestApp::builder().importers(0).spawn().await;
    let importer = importer(&app).await;
    let before = imported_rows(&app).await;

    // Act
    let warmed = importer.warm_up().await.expect("warm-up");

    // Assert: as many connections as batches run at once went through a whole import,
    // and every row they wrote was rolled back.
    let batches = BatchSettings::new(&app.settings.import, app.settings.database.is_sqlite(), 1);
    assert_eq!(
        warmed,
        Warmed {
            shops: 1,
            connections: batches.workers
        }
    );
    assert_eq!(imported_rows(&app).await, before, "nothing is kept");
}

#[tokio::test]
async fn an_importer_starts_on_a_database_without_shops_and_imports_once_one_is_enabled() {
    // Arrange: no enabled shop when the importer starts.
    let mut app = TestApp::builder().importers(0).spawn().await;
    app.db
        .execute_unprepared("UPDATE shops SET enabled = false")
        .await
        .expect("disabling the shop");
    let warmed = importer(&app)
        .await
        .warm_up()
        .await
        .expect("warming up with no shop is no error");
    assert_eq!(
        warmed,
        Warmed {
            shops: 0,
            connections: 0
        }
    );

    // Act: the importer starts with nothing to warm; then the shop is enabled and
    // notifies an order.
    app.start_importer();
    app.db
        .execute_unprepared("UPDATE shops SET enabled = true")
        .await
        .expect("enabling the shop");
    let response = app
        .notify(&json!({ "order": fixture_order(PENDING_ORDER) }))
        .await;
    assert_eq!(response.status(), 202);

    // Assert: the importer that started cold imports it.
    app.wait_for_events(1).await;
}
