//! Graceful shutdown of a real `promsync import` process: SIGTERM stops it taking
//! messages, lets the in-flight ones settle and exits 0; nothing it acknowledged is lost
//! and nothing is applied twice when another importer takes over.

use std::{process::Stdio, time::Duration};

use serde_json::json;

use crate::support::{eventually, fixture_order, process::Reaped, TestApp, PENDING_ORDER};

#[tokio::test]
async fn sigterm_during_load_loses_no_acknowledged_message() {
    // Arrange: 300 orders queued, then a real importer process working through them.
    let mut app = TestApp::builder().importers(0).spawn().await;
    app.prom_products_missing().await;
    let bodies: Vec<_> = (0..300_i64)
        .map(|i| {
            let mut order = fixture_order(PENDING_ORDER);
            order["id"] = json!(900_000 + i);
            json!({ "order": order })
        })
        .collect();
    for chunk in bodies.chunks(50) {
        let sends = chunk.iter().map(|body| app.notify(body));
        for r in futures::future::join_all(sends).await {
            assert_eq!(r.status(), 202);
        }
    }
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_promsync"));
    command
        .args(["import", "--concurrency", "2"])
        .env("PROMSYNC_DATABASE_URL", &app.settings.database.url)
        .env("PROMSYNC_BROKER_NAMESPACE", &app.settings.broker.namespace)
        .env("PROMSYNC_RETRY_DELAYS_MS", "50,100")
        .env("PROMSYNC_PROM_ALLOWED_ORIGINS", app.prom_allowed_origins())
        .env("RUST_LOG", "warn")
        .env_remove("PROMSYNC_BROKER_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = &app.settings.broker.url {
        command.env("PROMSYNC_BROKER_URL", url);
    }
    let mut child = Reaped(command.spawn().expect("promsync import"));
    eventually(
        "the importer to start working",
        Duration::from_secs(30),
        || async { (app.count("SELECT count(*) FROM inbound_events").await >= 20).then_some(()) },
    )
    .await;

    // Act: SIGTERM in the middle of the load.
    let pid = child.id().expect("pid").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the importer exits within 30 s")
        .expect("exit status");

    // Assert: a clean exit, then another importer finishes the rest, each order once.
    assert!(status.success(), "{status:?}");
    let done_by_first = app.count("SELECT count(*) FROM inbound_events").await;
    assert!(
        done_by_first < 300,
        "the signal came too late to test anything"
    );
    app.start_importer();
    app.wait_for_events(300).await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 300);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        300
    );
}
