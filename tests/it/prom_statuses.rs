//! A shop's statuses on Prom (ARCHITECTURE.md, 'Prom statuses by name'): fetched when a
//! shop is connected or reconnected and on demand, a failed fetch recorded without failing
//! the save, tenancy and permission of the endpoints, the mapping refusing a custom status
//! the shop does not have, and a hostile answer kept bounded.

use std::time::Duration;

use promsync_simulator::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::support::{employee, statuses, TestApp};

fn prom_statuses_path(shop: i64) -> String {
    format!("/api/shops/{shop}/prom-statuses")
}

fn refresh_path(shop: i64) -> String {
    format!("/api/shops/{shop}/prom-statuses/refresh")
}

/// Prom's answer listing its standard statuses and the given custom ones.
fn status_list(custom: &[(i64, &str)]) -> ResponseTemplate {
    let standard = [
        (0, "pending", "Нове"),
        (1, "received", "Прийнято"),
        (4, "canceled", "Скасовано"),
    ]
    .map(|(id, name, title)| json!({"id": id, "name": name, "title": title}));
    let custom = custom
        .iter()
        .map(|(id, title)| json!({"id": id, "name": format!("custom-{id}"), "title": title}));
    ResponseTemplate::new(200).set_body_json(json!({
        "order_status_options": standard.into_iter().chain(custom).collect::<Vec<_>>()
    }))
}

/// `(code, title, kind)` of every status of a `prom-statuses` answer.
fn listed(body: &Value) -> Vec<(String, String, String)> {
    body["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|s| {
            (
                s["code"].as_str().unwrap().to_owned(),
                s["title"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn connecting_a_shop_fetches_its_statuses_from_prom_and_keeps_their_titles() {
    // Arrange: Prom (the simulator) where the seller has a status of their own.
    let mut app = TestApp::builder().spawn().await;
    let sim = app
        .start_simulator(SimConfig {
            orders: 0,
            custom_statuses: vec![(555, "Чекає на складі".into())],
            ..Default::default()
        })
        .await;
    let token = app.admin_token.clone();
    let (_, own) = app
        .call(
            Method::GET,
            &format!("/api/shops/{}", app.shop.shop_id),
            &token,
            None,
        )
        .await;
    let sim_url = own["prom_url"].as_str().unwrap().to_owned();

    // Act
    let (status, created) = app
        .call(
            Method::POST,
            "/api/shops",
            &token,
            Some(json!({"name": "Second", "prom_url": sim_url, "prom_token": "t2"})),
        )
        .await;

    // Assert
    assert_eq!(status, 201, "{created}");
    let asked: Vec<_> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path == "/api/v1/order_status_options/list")
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].status, 200);
    let shop = created["id"].as_i64().unwrap();
    let (status, body) = app
        .call(Method::GET, &prom_statuses_path(shop), &token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let statuses = listed(&body);
    assert!(
        statuses.contains(&("pending".into(), "Нове".into(), "standard".into())),
        "{body}"
    );
    assert!(
        statuses.contains(&(
            "custom-555".into(),
            "Чекає на складі".into(),
            "custom".into()
        )),
        "{body}"
    );
    assert!(body["fetched_at"].is_string(), "{body}");
    assert!(body["last_error"].is_null(), "{body}");
}

#[tokio::test]
async fn a_failed_fetch_does_not_fail_the_save_and_shows_as_the_shop_s_last_error() {
    // Arrange: Prom fails the status list.
    let app = TestApp::builder().spawn().await;
    app.prom_status_options(ResponseTemplate::new(503)).await;
    let token = app.admin_token.clone();
    let shop = app.shop.shop_id;

    // Act: a new token (a reconnection), and a new shop.
    let (patched, patch_body) = app
        .call(
            Method::PATCH,
            &format!("/api/shops/{shop}"),
            &token,
            Some(json!({"prom_token": "renewed"})),
        )
        .await;
    let (created, create_body) = app
        .call(
            Method::POST,
            "/api/shops",
            &token,
            Some(json!({"name": "Second", "prom_url": app.prom.uri(), "prom_token": "t2"})),
        )
        .await;

    // Assert
    assert_eq!(patched, 200, "{patch_body}");
    assert_eq!(created, 201, "{create_body}");
    for shop in [shop, create_body["id"].as_i64().unwrap()] {
        let (_, body) = app
            .call(Method::GET, &prom_statuses_path(shop), &token, None)
            .await;
        assert!(body["statuses"].as_array().unwrap().is_empty(), "{body}");
        let message = body["last_error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("HTTP 503"), "{body}");
        assert!(body["last_error"]["at"].is_string(), "{body}");
    }
    assert_eq!(
        app.text(&format!(
            "SELECT token_rejected_at FROM shops WHERE id = {shop}"
        ))
        .await,
        None,
        "a failed status list is no rejected token"
    );
}

#[tokio::test]
async fn a_prom_that_does_not_answer_leaves_the_new_shop_saved_with_the_reason() {
    // Arrange: Prom would answer the status list only after a minute.
    let app = TestApp::builder().spawn().await;
    app.prom_status_options(status_list(&[]).set_delay(Duration::from_secs(60)))
        .await;

    // Act
    let (status, created) = app
        .call(
            Method::POST,
            "/api/shops",
            &app.admin_token,
            Some(json!({"name": "Slow", "prom_url": app.prom.uri(), "prom_token": "t2"})),
        )
        .await;

    // Assert
    assert_eq!(status, 201, "{created}");
    let shop = created["id"].as_i64().unwrap();
    let (_, body) = app
        .call(
            Method::GET,
            &prom_statuses_path(shop),
            &app.admin_token,
            None,
        )
        .await;
    let message = body["last_error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no answer within") || message.contains("timed out"),
        "{body}"
    );
}

#[tokio::test]
async fn a_refresh_fetches_again_and_clears_the_last_error() {
    // Arrange: a first fetch failed.
    let app = TestApp::builder().spawn().await;
    let token = app.admin_token.clone();
    let shop = app.shop.shop_id;
    app.prom_status_options_once(ResponseTemplate::new(500))
        .await;
    let (status, failed) = app
        .call(Method::POST, &refresh_path(shop), &token, None)
        .await;
    assert_eq!(status, 502, "{failed}");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    app.prom_status_options(status_list(&[(137639, "Підтверджено")]))
        .await;

    // Act
    let (status, body) = app
        .call(Method::POST, &refresh_path(shop), &token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert!(listed(&body).contains(&(
        "custom-137639".into(),
        "Підтверджено".into(),
        "custom".into()
    )));
    assert!(body["last_error"].is_null(), "{body}");
    assert_eq!(
        app.call(Method::GET, &prom_statuses_path(shop), &token, None)
            .await
            .1,
        body
    );
}

#[tokio::test]
async fn prom_statuses_need_manage_integrations_and_another_account_s_shop_is_not_found() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    app.prom_status_options(status_list(&[(7, "Своє")])).await;
    let clerk = employee(&app, &["goods_without_write_off"]).await;
    let other = app.other_tenant().await;
    let own = app.shop.shop_id;
    let foreign = other.shop.shop_id;

    // Act + Assert
    for (method, path) in [
        (Method::GET, prom_statuses_path(own)),
        (Method::POST, refresh_path(own)),
    ] {
        let (status, body) = app.call(method.clone(), &path, &clerk, None).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("manage_integrations"));
        let (status, body) = app
            .call(
                method.clone(),
                &path.replace(&own.to_string(), &foreign.to_string()),
                &app.admin_token,
                None,
            )
            .await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM prom_status_options WHERE shop_id = {foreign}"
        ))
        .await,
        0,
        "nothing was fetched for the other account's shop"
    );
}

#[tokio::test]
async fn the_mapping_refuses_a_custom_status_the_shop_does_not_have_and_accepts_a_fetched_one() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    let token = app.admin_token.clone();
    let shop = app.shop.shop_id;
    let kinds = statuses(&app, &token).await;
    let url = format!("/api/shops/{shop}/status-mapping");
    let with = |prom: &str| {
        json!({
            "inbound": {"pending": kinds["new"], prom: kinds["in_progress"]},
            "outbound": {kinds["in_progress"].to_string(): prom},
        })
    };
    let (_, before) = app.call(Method::GET, &url, &token, None).await;

    // Act + Assert: before Prom listed it, the custom status is unknown.
    let (status, body) = app
        .call(Method::PUT, &url, &token, Some(with("custom-137639")))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`custom-137639`"),
        "{body}"
    );
    assert_eq!(app.call(Method::GET, &url, &token, None).await.1, before);

    // Once fetched it is accepted, and another custom id still is not.
    app.prom_status_options(status_list(&[(137639, "Підтверджено")]))
        .await;
    let (status, _) = app
        .call(Method::POST, &refresh_path(shop), &token, None)
        .await;
    assert_eq!(status, 200);
    let (status, saved) = app
        .call(Method::PUT, &url, &token, Some(with("custom-137639")))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved, with("custom-137639"));
    let (status, body) = app
        .call(Method::PUT, &url, &token, Some(with("custom-999")))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`custom-999`"),
        "{body}"
    );
    // A standard Prom status needs no fetch.
    let (status, body) = app
        .call(Method::PUT, &url, &token, Some(with("received")))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_hostile_status_list_is_kept_bounded_and_flattened_or_refused_whole() {
    // Arrange: odd titles, unreadable entries, then an answer over the size cap.
    let app = TestApp::builder().spawn().await;
    let token = app.admin_token.clone();
    let shop = app.shop.shop_id;
    app.prom_status_options_once(ResponseTemplate::new(200).set_body_json(json!({
        "order_status_options": [
            {"name": "custom-1", "title": "<b>Очікує</b>\r\n\u{202E}оплату\u{0}"},
            {"name": "custom-2", "title": "Дуже ".repeat(5_000)},
            {"name": "custom-3; DROP TABLE shops", "title": "x"},
            {"name": {"nested": true}, "title": "x"},
        ]
    })))
    .await;

    // Act
    let (status, body) = app
        .call(Method::POST, &refresh_path(shop), &token, None)
        .await;

    // Assert
    assert_eq!(status, 200, "{body}");
    let statuses = listed(&body);
    assert_eq!(statuses.len(), 2, "{body}");
    assert_eq!(statuses[0].1, "<b>Очікує</b> оплату");
    assert!(statuses[1].1.chars().count() <= 101, "{}", statuses[1].1);
    assert!(statuses
        .iter()
        .all(|(_, title, _)| !title.chars().any(char::is_control)));

    // Act: an answer of several megabytes is refused; what was stored stays.
    app.prom_status_options(ResponseTemplate::new(200).set_body_json(json!({
        "order_status_options": [{"name": "custom-9", "title": "x".repeat(4 << 20)}]
    })))
    .await;
    let (status, refused) = app
        .call(Method::POST, &refresh_path(shop), &token, None)
        .await;

    // Assert
    assert_eq!(status, 502, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("bytes") && message.len() < 300,
        "{message}"
    );
    let (_, kept) = app
        .call(Method::GET, &prom_statuses_path(shop), &token, None)
        .await;
    assert!(
        kept["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("bytes"),
        "{kept}"
    );
    assert_eq!(listed(&kept), statuses);
}
