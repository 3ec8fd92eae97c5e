//! Dead letters are one account's business: another tenant's employee can neither see
//! nor move them, an employee without `manage_integrations` gets 403, and listing reads
//! the database only, so no page view makes the server hold anybody's messages in the
//! broker.

use std::{collections::HashMap, time::Duration};

use promsync::broker::Lane;
use reqwest::{header, redirect, Method};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path_regex},
    Mock, ResponseTemplate,
};

use crate::support::{
    broker::rabbitmq_depth, employee, eventually, post_thin_webhook, Backend, Tenant, TestApp,
};

const WAIT: Duration = Duration::from_secs(60);
/// The Prom order of tenant A's dead letter (tenant B's is order 5, `post_thin_webhook`'s).
const A_ORDER: i64 = 4242;

/// Tenant A (the app's account) and tenant B each with one inbound dead letter: Prom
/// refuses every order fetch with 401, a permanent failure, so each thin notification
/// is dead-lettered at its first attempt. Answers both letters' ids.
async fn two_tenants_with_a_dead_letter_each() -> (TestApp, Tenant, i64, i64) {
    let app = TestApp::builder().max_attempts(1).spawn().await;
    app.prom_products_missing().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/orders/\d+$"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&app.prom)
        .await;
    let b = app.other_tenant().await;
    let accepted = app.notify(&json!({"order_id": A_ORDER})).await;
    assert_eq!(accepted.status(), 202);
    assert_eq!(
        post_thin_webhook(&app, b.shop.shop_id, &b.shop.webhook_secret).await,
        202
    );
    let a_id = only_letter(&app, &app.admin_token).await;
    let b_id = only_letter(&app, &b.admin_token).await;
    (app, b, a_id, b_id)
}

/// Waits until the holder of `token` lists exactly one dead letter; answers its id.
async fn only_letter(app: &TestApp, token: &str) -> i64 {
    eventually("one listed dead letter", WAIT, || async {
        let letters = list(app, token).await;
        (letters.len() == 1).then(|| letters[0]["id"].as_i64().expect("a numeric id"))
    })
    .await
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app
        .call(Method::GET, "/api/dead-letters", token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["dead_letters"].as_array().expect("a list").clone()
}

async fn requeue(app: &TestApp, token: &str, ids: &[i64]) -> (u16, Value) {
    app.call(
        Method::POST,
        "/api/dead-letters/requeue",
        token,
        Some(json!({ "ids": ids })),
    )
    .await
}

/// The stored row of a dead letter (attempts, error, time of death), to show it unmoved.
async fn row(app: &TestApp, id: i64) -> Option<String> {
    app.text(&format!(
        "SELECT lane || '|' || message_id || '|' || attempts || '|' || \
         coalesce(last_error, '') FROM dead_letters WHERE id = {id}"
    ))
    .await
}

/// Messages waiting in the broker's inbound dead-letter queue (the drainer empties it).
async fn dead_queue_depth(app: &TestApp) -> u32 {
    if app.backend == Backend::Embedded {
        let sql = "SELECT count(*) FROM broker_messages WHERE dead = TRUE";
        return app.count(sql).await as u32;
    }
    rabbitmq_depth(app.topology.dead_queue(Lane::Inbound))
        .await
        .expect("the dead-letter queue exists")
}

/// A signed-in operator-UI session of the holder of `token`; answers its cookies and
/// the CSRF value of its pages.
async fn ui_session(app: &TestApp, token: &str) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client");
    let mut cookies: HashMap<String, String> = HashMap::new();
    let remember = |response: &reqwest::Response, cookies: &mut HashMap<String, String>| {
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            cookies.insert(name.to_owned(), value.to_owned());
        }
    };
    let jar = |cookies: &HashMap<String, String>| {
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let form = http
        .get(format!("{}/ui/login", app.address))
        .send()
        .await
        .unwrap();
    remember(&form, &mut cookies);
    let csrf = csrf_of(&form.text().await.unwrap());
    let signed_in = http
        .post(format!("{}/ui/login", app.address))
        .header(header::COOKIE, jar(&cookies))
        .form(&[("csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "signed in");
    remember(&signed_in, &mut cookies);
    let orders = http
        .get(format!("{}/ui/orders", app.address))
        .header(header::COOKIE, jar(&cookies))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&orders.text().await.unwrap());
    (jar(&cookies), csrf)
}

fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let end = page[start..].find('"').expect("end of csrf") + start;
    page[start..end].to_owned()
}

async fn ui_get(app: &TestApp, cookies: &str, path: &str) -> (u16, String) {
    let response = app
        .http
        .get(format!("{}{path}", app.address))
        .header(header::COOKIE, cookies)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn ui_requeue(app: &TestApp, cookies: &str, csrf: &str, id: i64) -> u16 {
    app.http
        .post(format!("{}/ui/problems/requeue", app.address))
        .header(header::COOKIE, cookies)
        .form(&[("csrf", csrf), ("id", &id.to_string())])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_employee_lists_and_requeues_only_their_own_accounts_dead_letters() {
    // Arrange
    let (app, b, a_id, b_id) = two_tenants_with_a_dead_letter_each().await;
    let b_before = row(&app, b_id).await;

    // Act
    let listed = list(&app, &app.admin_token).await;
    let (status, requeued) = requeue(&app, &app.admin_token, &[a_id, b_id]).await;

    // Assert: A saw and moved its own letter only; B's row is exactly as it was.
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["shop_id"], app.shop.shop_id);
    assert_eq!(listed[0]["order_id"], A_ORDER);
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued, json!({"requeued": 1}));
    assert!(b_before.is_some());
    assert_eq!(row(&app, b_id).await, b_before);
    let b_sees = list(&app, &b.admin_token).await;
    assert_eq!(b_sees.len(), 1);
    assert_eq!(b_sees[0]["id"], b_id);
    assert_eq!(b_sees[0]["shop_id"], b.shop.shop_id);
    assert_eq!(row(&app, a_id).await, None, "A's letter left for its queue");
}

#[tokio::test]
async fn another_accounts_requeue_of_my_ids_requeues_nothing_and_my_letters_stay() {
    // Arrange
    let (app, b, a_id, _) = two_tenants_with_a_dead_letter_each().await;
    let a_before = row(&app, a_id).await;
    let (cookies, csrf) = ui_session(&app, &b.admin_token).await;

    // Act: B names A's id through the API and through the operator UI.
    let (status, requeued) = requeue(&app, &b.admin_token, &[a_id, a_id]).await;
    let from_ui = ui_requeue(&app, &cookies, &csrf, a_id).await;

    // Assert
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued, json!({"requeued": 0}));
    assert_eq!(from_ui, 404);
    assert!(a_before.is_some());
    assert_eq!(row(&app, a_id).await, a_before);
    let a_sees = list(&app, &app.admin_token).await;
    assert_eq!(a_sees.len(), 1);
    assert_eq!(a_sees[0]["id"], a_id);
}

#[tokio::test]
async fn an_employee_without_manage_integrations_gets_403_on_dead_letters_and_sync_problems() {
    // Arrange
    let (app, _, a_id, _) = two_tenants_with_a_dead_letter_each().await;
    let clerk = employee(&app, &["goods_without_write_off"]).await;
    let before = row(&app, a_id).await;
    let (cookies, csrf) = ui_session(&app, &clerk).await;

    // Act
    let (listed, list_body) = app
        .call(Method::GET, "/api/dead-letters", &clerk, None)
        .await;
    let (requeued, requeue_body) = requeue(&app, &clerk, &[a_id]).await;
    let (page, page_body) = ui_get(&app, &cookies, "/ui/problems?lang=en").await;
    let from_ui = ui_requeue(&app, &cookies, &csrf, a_id).await;

    // Assert
    assert_eq!(listed, 403, "{list_body}");
    assert_eq!(list_body["error"]["code"], "forbidden");
    assert!(list_body.to_string().contains("manage_integrations"));
    assert_eq!(requeued, 403, "{requeue_body}");
    assert_eq!(page, 403, "{page_body}");
    assert!(!page_body.contains(&A_ORDER.to_string()), "{page_body}");
    assert_eq!(from_ui, 403);
    assert!(before.is_some());
    assert_eq!(row(&app, a_id).await, before);
}

#[tokio::test]
async fn dead_letters_are_listed_from_the_database_even_with_the_broker_out_of_reach() {
    // Arrange: the drainer has moved the letters out of the dead-letter queue; then the
    // processes restart against a broker nobody can reach.
    let (mut app, _, a_id, _) = two_tenants_with_a_dead_letter_each().await;
    eventually("an empty dead-letter queue", WAIT, || async {
        (dead_queue_depth(&app).await == 0).then_some(())
    })
    .await;
    app.restart_with(|s| s.broker.url = Some("amqp://guest:guest@127.0.0.1:1/%2f".into()))
        .await;
    let (cookies, _) = ui_session(&app, &app.admin_token).await;

    // Act
    let listed = list(&app, &app.admin_token).await;
    let (page, page_body) = ui_get(&app, &cookies, "/ui/problems?lang=en").await;

    // Assert
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], a_id);
    assert_eq!(listed[0]["lane"], "inbound");
    assert_eq!(listed[0]["attempts"], 1);
    assert!(listed[0]["dead_at"].is_string());
    assert_eq!(page, 200, "{page_body}");
    assert!(page_body.contains(&A_ORDER.to_string()), "{page_body}");
}

#[tokio::test]
async fn a_requeue_naming_more_than_a_thousand_ids_or_no_list_is_a_400() {
    // Arrange
    let app = TestApp::builder().spawn().await;
    let too_many: Vec<i64> = (1..=1001).collect();

    // Act
    let (over, over_body) = requeue(&app, &app.admin_token, &too_many).await;
    let (not_a_list, _) = app
        .call(
            Method::POST,
            "/api/dead-letters/requeue",
            &app.admin_token,
            Some(json!({"ids": "1"})),
        )
        .await;
    let (bad_limit, limit_body) = app
        .call(
            Method::GET,
            "/api/dead-letters?limit=1001",
            &app.admin_token,
            None,
        )
        .await;

    // Assert
    assert_eq!(over, 400, "{over_body}");
    assert!(over_body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("ids")));
    assert_eq!(not_a_list, 400);
    assert_eq!(bad_limit, 400, "{limit_body}");
    assert!(limit_body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("limit")));
}

#[tokio::test]
async fn two_requeues_of_one_dead_letter_at_once_send_it_back_once() {
    // Arrange
    let (app, _, a_id, _) = two_tenants_with_a_dead_letter_each().await;

    // Act: the same request twice at the same moment (a double click, a replayed call).
    let ids = [a_id];
    let (first, second) = tokio::join!(
        requeue(&app, &app.admin_token, &ids),
        requeue(&app, &app.admin_token, &ids),
    );

    // Assert: one of them took the row and published; the other found nothing.
    assert_eq!((first.0, second.0), (200, 200));
    let total = first.1["requeued"].as_u64().unwrap() + second.1["requeued"].as_u64().unwrap();
    assert_eq!(total, 1, "{first:?} {second:?}");
    // Prom still refuses, so the message dies again: a new dead letter of the account.
    let again = only_letter(&app, &app.admin_token).await;
    assert_ne!(again, a_id);
}
