//! Shop secrets at rest (docs/SECURITY.md): with `PROMSYNC_SECRET_KEY` set, Prom tokens and
//! webhook secrets are stored encrypted, yet webhooks verify and imports reach Prom; key
//! rotation with `promsync secrets rotate`; a value under an unknown key fails cleanly.

use std::time::Duration;

use promsync::{
    broker::Lane,
    keyring::{Keyring, Slot},
};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use wiremock::{
    matchers::{header, method, path},
    Mock, ResponseTemplate,
};

use crate::support::{eventually, webhook, TestApp, CUSTOM_STATUS_ORDER};

const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const KEY_C: &str = "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=";
const THIN_ORDER_ID: i64 = 32_345_434_343;

fn key_id(key: &str) -> String {
    key.parse::<promsync::keyring::SecretKey>()
        .expect("key")
        .id()
        .to_string()
}

/// One column of a shop's row as stored.
async fn stored(app: &TestApp, column: &str, shop_id: i64) -> Option<String> {
    app.text(&format!("SELECT {column} FROM shops WHERE id = {shop_id}"))
        .await
}

/// Stores `secret` at `slot` sealed under a key no process of the test has.
async fn store_under_unknown_key(app: &TestApp, slot: Slot, secret: &str) {
    let stranger = Keyring::new(Some(KEY_C.parse().unwrap()), Vec::new()).unwrap();
    let sealed = stranger.seal(slot, secret).unwrap();
    app.db
        .execute_unprepared(&format!(
            "UPDATE shops SET {} = '{sealed}' WHERE id = {}",
            slot.field.as_str(),
            slot.shop_id
        ))
        .await
        .unwrap();
}

/// Prom answers the thin notification's order only for the shop's real token.
async fn mount_order_for_token(app: &TestApp, token: &str) {
    let document: Value = serde_json::from_str(CUSTOM_STATUS_ORDER).unwrap();
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/orders/{THIN_ORDER_ID}")))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&app.prom)
        .await;
}

/// Sends a thin notification (the importer must fetch the order from Prom with the
/// shop's token), expects 202 and waits until the importer settled it; returns how many
/// times Prom was asked for the order with `token`.
async fn import_thin_order(app: &TestApp, events_before: i64, token: &str) -> usize {
    let r = app.notify(&json!({ "order_id": THIN_ORDER_ID })).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    app.wait_for_events(events_before + 1).await;
    let outcomes = app.outcomes().await;
    let (outcome, detail) = outcomes.last().expect("an outcome");
    assert_ne!(*outcome, promsync::domain::Outcome::Rejected, "{detail:?}");
    let bearer = format!("Bearer {token}");
    app.prom
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == format!("/api/v1/orders/{THIN_ORDER_ID}"))
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.to_str().ok() == Some(bearer.as_str()))
        })
        .count()
}

/// Runs the `promsync` binary against the test's database with the given keys.
async fn promsync(app: &TestApp, args: &[&str], key: &str, previous: &str) -> (bool, Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_promsync"))
        .args(args)
        .env_clear()
        .env("PROMSYNC_DATABASE_URL", &app.settings.database.url)
        .env("PROMSYNC_SECRET_KEY", key)
        .env("PROMSYNC_SECRET_KEY_PREVIOUS", previous)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("running promsync");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(key),
        "the key is never printed"
    );
    (output.status.success(), json)
}

#[tokio::test]
async fn with_a_key_the_stored_shop_holds_no_plaintext_yet_webhooks_and_imports_work() {
    let logs = crate::support::capture_logs();
    let app = TestApp::builder().secret_key(KEY_A).spawn().await;
    let shop = app.shop.shop_id;

    let token = stored(&app, "prom_token", shop).await.unwrap();
    let secret = stored(&app, "webhook_secret", shop).await.unwrap();
    let prefix = format!("enc:v1:{}:", key_id(KEY_A));
    assert!(token.starts_with(&prefix), "{token}");
    assert!(secret.starts_with(&prefix), "{secret}");
    assert!(!token.contains("prom-token-1"));
    let key_part = app.shop.webhook_secret.trim_start_matches("whsec_");
    assert!(!secret.contains(key_part));

    mount_order_for_token(&app, "prom-token-1").await;
    assert_eq!(import_thin_order(&app, 0, "prom-token-1").await, 1);
    assert_eq!(
        app.text("SELECT external_id FROM orders").await.as_deref(),
        Some("32345434343")
    );

    // The CLI's `shop create` stores the same way.
    let account = app.account_id.to_string();
    let (ok, created) = promsync(
        &app,
        &[
            "shop",
            "create",
            "--account",
            &account,
            "--name",
            "CLI shop",
            "--prom-token",
            "cli-token-42",
        ],
        KEY_A,
        "",
    )
    .await;
    assert!(ok, "{created}");
    let cli_shop = created["shop_id"].as_i64().expect("shop_id");
    assert!(created["webhook_secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    let cli_token = stored(&app, "prom_token", cli_shop).await.unwrap();
    assert!(cli_token.starts_with(&prefix) && !cli_token.contains("cli-token-42"));

    // A new token set through the API is stored sealed too, and never answered.
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/shops/{shop}"),
            &app.admin_token,
            Some(json!({"prom_token": "prom-token-2"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("prom-token-2"));
    let token = stored(&app, "prom_token", shop).await.unwrap();
    assert!(token.starts_with(&prefix) && !token.contains("prom-token-2"));

    let logs = logs.contents();
    for secret in [KEY_A, "prom-token-1", "prom-token-2", key_part] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn rotation_moves_every_secret_to_the_new_key_after_which_the_old_key_can_be_dropped() {
    let mut app = TestApp::builder().secret_key(KEY_A).spawn().await;
    let shop = app.shop.shop_id;
    // A previous webhook secret under the old key, and a legacy shop stored in plaintext.
    let (status, rotated) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/shops/{shop}/rotate-secret"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    app.shop.webhook_secret = rotated["webhook_secret"].as_str().unwrap().to_owned();
    let legacy = app.other_tenant().await.shop.shop_id;
    app.db
        .execute_unprepared(&format!(
            "UPDATE shops SET prom_token = 'legacy-token' WHERE id = {legacy}"
        ))
        .await
        .unwrap();
    mount_order_for_token(&app, "prom-token-1").await;

    // Step 1: every process gets the new key, the old one as previous: all still reads.
    app.restart_with(|s| {
        s.secrets.key = Some(KEY_B.into());
        s.secrets.previous = vec![KEY_A.into()];
    })
    .await;
    assert_eq!(import_thin_order(&app, 0, "prom-token-1").await, 1);

    // Step 2: rotate. Every value, the plaintext ones too, now names the new key.
    let (ok, summary) = promsync(&app, &["secrets", "rotate"], KEY_B, KEY_A).await;
    assert!(ok, "{summary}");
    assert_eq!(summary["reencrypted"], 5, "{summary}");
    assert_eq!(summary["failed"], json!([]));
    let prefix = format!("enc:v1:{}:", key_id(KEY_B));
    for id in [shop, legacy] {
        for column in ["prom_token", "webhook_secret"] {
            let value = stored(&app, column, id).await.unwrap();
            assert!(value.starts_with(&prefix), "shop {id} {column}: {value}");
        }
    }
    let previous = stored(&app, "previous_webhook_secret", shop).await.unwrap();
    assert!(previous.starts_with(&prefix));
    // Idempotent: a second run has nothing to do.
    let (ok, again) = promsync(&app, &["secrets", "rotate"], KEY_B, KEY_A).await;
    assert!(ok, "{again}");
    assert_eq!(
        (again["reencrypted"].clone(), again["unchanged"].clone()),
        (json!(0), json!(5))
    );

    // Step 3: the old key is dropped; webhooks verify and imports reach Prom.
    app.restart_with(|s| s.secrets.previous = Vec::new()).await;
    assert_eq!(import_thin_order(&app, 1, "prom-token-1").await, 2);
}

#[tokio::test]
async fn a_secret_under_an_unknown_key_answers_401_and_dead_letters_its_imports() {
    // The importer starts after the token is sealed under the unknown key: an importer
    // caches its shops as it starts (for their cache period), as any running one would.
    let mut app = TestApp::builder()
        .secret_key(KEY_A)
        .importers(0)
        .spawn()
        .await;

    // The other shop's webhook secret was sealed under a key no process has: its
    // webhooks get exactly what an unknown shop gets.
    let other = app.other_tenant().await.shop;
    store_under_unknown_key(
        &app,
        Slot::webhook_secret(other.shop_id),
        &other.webhook_secret,
    )
    .await;
    let raw = serde_json::to_vec(&json!({"order_id": 1})).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signature = webhook::signature(&other.webhook_secret, "msg_1", now, &raw);
    let mut answers = Vec::new();
    for shop_id in [other.shop_id, 999_999] {
        let r = app
            .http
            .post(app.webhook_url(shop_id))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", &signature)
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0], answers[1], "no difference from an unknown shop");

    // The test shop's Prom token under that key: the import that needs it is dead-lettered
    // with the reason, and Prom is never called with anything.
    store_under_unknown_key(&app, Slot::prom_token(app.shop.shop_id), "prom-token-1").await;
    app.start_importer();
    let r = app.notify(&json!({ "order_id": THIN_ORDER_ID })).await;
    assert_eq!(r.status(), 202);
    let letters = eventually("a dead letter", Duration::from_secs(30), || async {
        let letters = app.dead_letters(Lane::Inbound).await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    let reason = letters[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.contains(&key_id(KEY_C)) && reason.contains("not configured"),
        "{reason}"
    );
    assert!(app
        .prom
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_status_update_for_a_shop_whose_token_is_under_an_unknown_key_is_recorded_failed() {
    let mut app = TestApp::builder().secret_key(KEY_A).spawn().await;
    app.start_publisher();
    app.prom_products_missing().await;
    app.push_order(&crate::support::fixture_order(
        crate::support::PENDING_ORDER,
    ))
    .await;
    let order_id = eventually("the order to be imported", Duration::from_secs(30), || {
        let app = &app;
        async move {
            (app.count("SELECT count(*) FROM orders").await == 1).then_some(())?;
            Some(app.count("SELECT id FROM orders").await)
        }
    })
    .await;
    store_under_unknown_key(&app, Slot::prom_token(app.shop.shop_id), "prom-token-1").await;
    let in_progress = app
        .count(&format!(
            "SELECT id FROM order_statuses WHERE account_id = {} AND kind = 'in_progress'",
            app.account_id
        ))
        .await;
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/orders/{order_id}/status"),
            &app.admin_token,
            Some(json!({ "status_id": in_progress })),
        )
        .await;
    assert_eq!(
        (status, body["outbound"].clone()),
        (200, json!("queued")),
        "{body}"
    );

    let detail = eventually("a failed outbound entry", Duration::from_secs(30), || async {
        app.text(&format!(
            "SELECT detail FROM outbound_sync_log WHERE order_id = {order_id} AND outcome = 'failed'"
        ))
        .await
    })
    .await;
    assert!(
        detail.contains(&key_id(KEY_C)) && detail.contains("not configured"),
        "{detail}"
    );
    let set_status_calls = app
        .prom
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("set_status"))
        .count();
    assert_eq!(
        set_status_calls, 0,
        "nothing is sent without the real token"
    );
}

#[tokio::test]
async fn without_a_key_secrets_are_stored_as_they_are_and_a_token_that_looks_encrypted_is_refused()
{
    let app = TestApp::builder().spawn().await;
    let shop = app.shop.shop_id;
    assert_eq!(
        stored(&app, "prom_token", shop).await.as_deref(),
        Some("prom-token-1")
    );
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            format!("/api/shops/{shop}"),
            json!({"prom_token": "enc:v1:00000000:abc"}),
        ),
        (
            reqwest::Method::POST,
            "/api/shops".to_owned(),
            json!({"name": "X", "prom_token": "enc:v1:00000000:abc"}),
        ),
    ] {
        let (status, body) = app.call(method, &path, &app.admin_token, Some(body)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("enc:"));
    }
    assert_eq!(
        stored(&app, "prom_token", shop).await.as_deref(),
        Some("prom-token-1"),
        "nothing changed"
    );
    assert_eq!(app.count("SELECT count(*) FROM shops").await, 1);
}
