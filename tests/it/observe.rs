//! What an installation shows Prometheus on `GET /metrics` after real traffic (PostgreSQL
//! and RabbitMQ, or the embedded broker): each histogram and gauge moves after the traffic
//! that should move it, with labels from closed sets; the alert rules and the dashboard in
//! `deploy/` name only metrics promsync exports; and logs written to a pipe carry no
//! colour codes.

use std::{collections::BTreeSet, path::Path, time::Duration};

use promsync_simulator::SimConfig;
use reqwest::Method;
use serde_json::json;
use wiremock::{matchers::path_regex, Mock, ResponseTemplate};

use crate::support::{
    eventually, fixture_order, post_thin_webhook, process::Reaped, statuses, Backend, TestApp,
    PENDING_ORDER,
};

const WAIT: Duration = Duration::from_secs(30);

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scraping /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the exposition")
}

/// The value of one series, `name{labels}` exactly as exposed.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until `check` holds on the exposition (the store gauges refresh every few
/// seconds), and returns that exposition.
async fn scraped_until(app: &TestApp, what: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(what, WAIT, || async {
        let text = scrape(app).await;
        check(&text).then_some(text)
    })
    .await
}

/// Every label value of `label` among the samples of metric `name`.
fn label_values(text: &str, name: &str, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|labels| {
            let start = labels.find(&key)? + key.len();
            let len = labels[start..].find('"')?;
            Some(labels[start..start + len].to_owned())
        })
        .collect()
}

const WEBHOOK_ACCEPTED: &str = "promsync_webhook_duration_seconds_count{result=\"accepted\"}";
const IMPORT_LAG_WEBHOOK: &str = "promsync_import_lag_seconds_count{source=\"webhook\"}";
const PRODUCT_NOT_FOUND: &str =
    "promsync_prom_request_duration_seconds_count{endpoint=\"products/{id}\",outcome=\"not_found\"}";

#[tokio::test]
async fn a_notification_is_timed_at_the_door_and_its_prom_calls_and_import_lag_observed() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let before = scrape(&app).await;
    let count = |text: &str, series: &str| value(text, series).unwrap_or(0.0);

    // Act
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.wait_for_events(1).await;

    // Assert
    let after = scraped_until(&app, "the import lag to be observed", |text| {
        count(text, IMPORT_LAG_WEBHOOK) > count(&before, IMPORT_LAG_WEBHOOK)
    })
    .await;
    assert!(count(&after, WEBHOOK_ACCEPTED) > count(&before, WEBHOOK_ACCEPTED));
    assert!(count(&after, PRODUCT_NOT_FOUND) > count(&before, PRODUCT_NOT_FOUND));
    let endpoints = label_values(
        &after,
        "promsync_prom_request_duration_seconds_count",
        "endpoint",
    );
    let known = [
        "orders/list",
        "orders/set_status",
        "orders/{id}",
        "products/{id}",
        "delivery/save_declaration_id",
        "order_status_options/list",
        "other",
    ];
    assert!(
        endpoints.iter().all(|e| known.contains(&e.as_str())),
        "{endpoints:?}"
    );
    assert_eq!(value(&after, "promsync_role_up{role=\"http\"}"), Some(1.0));
}

#[tokio::test]
async fn notifications_waiting_for_an_importer_show_as_the_inbound_queue_s_depth() {
    // Arrange
    let mut app = TestApp::builder()
        .importers(0)
        .prom_products_missing()
        .spawn()
        .await;
    let depth = "promsync_queue_depth{lane=\"inbound\",queue=\"work\"}";
    let age = "promsync_queue_oldest_age_seconds{lane=\"inbound\",queue=\"work\"}";

    // Act
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.push_order(&fixture_order(PENDING_ORDER)).await;

    // Assert
    let waiting = scraped_until(&app, "two notifications waiting", |text| {
        value(text, depth) == Some(2.0)
    })
    .await;
    match app.backend {
        // The embedded queue knows when each message arrived; AMQP only tells lengths.
        Backend::Embedded => assert!(value(&waiting, age).is_some(), "{waiting}"),
        Backend::RabbitMq => assert_eq!(value(&waiting, age), None, "{waiting}"),
    }
    app.start_importer();
    app.wait_for_events(2).await;
    scraped_until(&app, "the queue to be empty again", |text| {
        value(text, depth) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn a_token_prom_rejects_shows_as_a_rejected_shop_and_an_inbound_dead_letter() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    Mock::given(path_regex("^/api/v1/orders/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "bad token"})))
        .mount(&app.prom)
        .await;
    let before = scrape(&app).await;
    assert_eq!(value(&before, "promsync_shops_token_rejected"), Some(0.0));

    // Act
    let answer = post_thin_webhook(&app, app.shop.shop_id, &app.shop.webhook_secret).await;

    // Assert
    assert_eq!(answer, 202);
    let after = scraped_until(&app, "a rejected shop and a dead letter", |text| {
        value(text, "promsync_shops_token_rejected") == Some(1.0)
            && value(
                text,
                "promsync_queue_depth{lane=\"inbound\",queue=\"dead\"}",
            ) == Some(1.0)
    })
    .await;
    assert!(value(
        &after,
        "promsync_queue_oldest_age_seconds{lane=\"inbound\",queue=\"dead\"}"
    )
    .is_some());
    assert_eq!(
        value(
            &after,
            "promsync_queue_depth{lane=\"outbound\",queue=\"dead\"}"
        ),
        Some(0.0)
    );
    assert!(
        value(
            &after,
            "promsync_prom_request_duration_seconds_count{endpoint=\"orders/{id}\",outcome=\"unauthorized\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{after}"
    );
}

/// Imports a simulator order and changes its status through the API, so it goes back to
/// Prom; returns the exposition scraped before the change.
async fn an_order_both_ways(app: &mut TestApp) -> String {
    let sim = app
        .start_simulator(SimConfig {
            orders: 0,
            ..Default::default()
        })
        .await;
    app.start_publisher();
    let order = sim.create_order(Some("pending"));
    app.push_order(&order).await;
    app.wait_for_events(1).await;
    let order_id = app
        .count(&format!(
            "SELECT id FROM orders WHERE external_id = '{}'",
            order["id"]
        ))
        .await;
    let before = scrape(app).await;
    let in_progress = statuses(app, &app.admin_token).await["in_progress"];
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/orders/{order_id}/status"),
            &app.admin_token,
            Some(json!({ "status_id": in_progress })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outbound"], "queued", "{body}");
    before
}

const OUTBOUND_LAG: &str = "promsync_outbound_lag_seconds_count{reason=\"status_changed\"}";

#[tokio::test]
async fn a_status_change_s_lag_is_observed_once_prom_acknowledges_it() {
    // Arrange
    let mut app = TestApp::builder().spawn().await;

    // Act
    let before = an_order_both_ways(&mut app).await;

    // Assert
    let sent = |text: &str| {
        value(
            text,
            "promsync_prom_request_duration_seconds_count{endpoint=\"orders/set_status\",outcome=\"ok\"}",
        )
        .unwrap_or(0.0)
    };
    let after = scraped_until(&app, "the outbound lag to be observed", |text| {
        value(text, OUTBOUND_LAG).unwrap_or(0.0) > value(&before, OUTBOUND_LAG).unwrap_or(0.0)
    })
    .await;
    assert!(sent(&after) > sent(&before), "{after}");
}

/// Every `promsync_…` name in `text`, a histogram's series named by their family.
fn promsync_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("promsync_") {
        let tail = &rest[start..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..len];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[len..];
    }
    names
}

/// The metric families an exposition declares (`# TYPE name kind`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn files_under(dir: &str, extension: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_metric_the_alert_rules_and_the_dashboard_name_is_exported() {
    // Arrange
    let mut app = TestApp::builder().spawn().await;
    let mut referenced = BTreeSet::new();
    let files: Vec<_> = files_under("deploy/prometheus", "yml")
        .into_iter()
        .chain(files_under("deploy/grafana", "json"))
        .collect();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a deploy file");
        referenced.extend(promsync_names(&text));
    }
    assert!(referenced.len() >= 8, "{files:?} name {referenced:?}");

    // Act
    an_order_both_ways(&mut app).await;
    let text = scraped_until(&app, "Prom to acknowledge the status", |text| {
        text.contains("promsync_outbound_lag_seconds_count")
    })
    .await;

    // Assert
    let exported = exported(&text);
    let missing: Vec<_> = referenced.difference(&exported).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{text}");
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    // Arrange
    let dir = std::env::temp_dir().join(format!("promsync-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let database = format!("sqlite://{}?mode=rwc", dir.join("promsync.db").display());

    // Act: stderr is a pipe, as under a supervisor or `2> file`.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_promsync"))
        .arg("migrate")
        .env_clear()
        .env("PROMSYNC_DATABASE_URL", &database)
        .env("PROMSYNC_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "info")
        .output()
        .await
        .expect("running promsync migrate");
    let _ = std::fs::remove_dir_all(&dir);

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("INFO"), "something was logged: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in {stderr:?}");
}

#[tokio::test]
async fn an_importer_process_serves_its_own_metrics_when_given_a_metrics_address() {
    // Arrange: a free port for the importer's metrics listener.
    let app = TestApp::builder()
        .importers(0)
        .prom_products_missing()
        .spawn()
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_promsync"));
    command
        .arg("import")
        .env_clear()
        .env("PROMSYNC_DATABASE_URL", &app.settings.database.url)
        .env("PROMSYNC_BROKER_NAMESPACE", &app.settings.broker.namespace)
        .env("PROMSYNC_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PROMSYNC_PROM_ALLOWED_ORIGINS", app.prom_allowed_origins())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = &app.settings.broker.url {
        command.env("PROMSYNC_BROKER_URL", url);
    }
    let _importer = Reaped(command.spawn().expect("promsync import"));

    // Act: an order for that importer.
    app.push_order(&fixture_order(PENDING_ORDER)).await;
    app.wait_for_events(1).await;

    // Assert: its own scrape shows its role and the lag it measured.
    let text = eventually("the importer's metrics", WAIT, || async {
        let response = app
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?;
        let text = response.text().await.ok()?;
        value(&text, IMPORT_LAG_WEBHOOK)
            .is_some_and(|n| n >= 1.0)
            .then_some(text)
    })
    .await;
    assert_eq!(
        value(&text, "promsync_role_up{role=\"importer\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "promsync_role_up{role=\"http\"}"),
        None,
        "{text}"
    );
}
