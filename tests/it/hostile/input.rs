//! Numbers and lists from outside cannot crash a worker or reach the database out of
//! range: money fits `NUMERIC(18,2)`, quantities `NUMERIC(18,3)`, pages are bounded, and
//! a bulk refresh is refused by its size before any work.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{product, TestApp};

async fn order_count(app: &TestApp) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM orders WHERE account_id = {}",
        app.account_id
    ))
    .await
}

/// Posts an RO App order of one line of a fresh product; answers the status and body.
async fn post_one_line(app: &TestApp, sku: &str, quantity: Value, price: Value) -> (u16, Value) {
    let product_id = product(app, app.account_id, sku).await;
    app.call(
        Method::POST,
        "/api/orders",
        &app.admin_token,
        Some(json!({"items": [{"product_id": product_id, "quantity": quantity, "price": price}]})),
    )
    .await
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_page_beyond_the_last_is_a_400_naming_page_not_a_dropped_connection() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();

    // Act
    let (status, body) = app
        .call(
            Method::GET,
            "/api/orders?page=18446744073709551615",
            &token,
            None,
        )
        .await;
    let (beyond_u64, beyond_body) = app
        .call(
            Method::GET,
            "/api/orders?page=99999999999999999999999",
            &token,
            None,
        )
        .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("page"), "{body}");
    assert_eq!(beyond_u64, 400, "{beyond_body}");
    let (ok, _) = app.call(Method::GET, "/api/orders", &token, None).await;
    assert_eq!(ok, 200, "the server still serves");
}

#[tokio::test]
async fn a_price_at_the_decimal_limit_is_a_400_and_the_account_is_not_left_locked() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let token = app.admin_token.clone();

    // Act
    let (status, body) = post_one_line(
        &app,
        "SKU-HUGE",
        json!("2"),
        json!("79228162514264337593543950335"),
    )
    .await;

    // Assert: refused naming the field; the next order of the account goes through.
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("items[0].price"), "{body}");
    assert_eq!(order_count(&app).await, 0);
    let (next, next_body) = app
        .call(Method::POST, "/api/orders", &token, Some(json!({})))
        .await;
    assert_eq!(next, 201, "{next_body}");
}

#[tokio::test]
async fn a_quantity_of_1e20_is_a_400_naming_the_field_not_a_database_500() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;

    // Act
    let (status, body) = post_one_line(&app, "SKU-MANY", json!(1e20), json!("1")).await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("items[0].quantity"), "{body}");
    assert_eq!(order_count(&app).await, 0);
}

#[tokio::test]
async fn a_total_that_overflows_the_books_is_a_400_though_each_line_fits() {
    // Arrange: each factor fits its column, their product does not.
    let app = TestApp::builder().prom_products_missing().spawn().await;

    // Act
    let (status, body) = post_one_line(
        &app,
        "SKU-BIG",
        json!("999999999999999.999"),
        json!("9999999999999999.99"),
    )
    .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("total"), "{body}");
    assert_eq!(order_count(&app).await, 0);
}

#[tokio::test]
async fn a_refresh_of_sixty_thousand_ids_is_refused_by_its_size() {
    // Arrange: the largest body the API takes, all ids distinct.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let ids: Vec<i64> = (1..=30_000).collect();

    // Act
    let (status, body) = app
        .call(
            Method::POST,
            "/api/orders/refresh",
            &app.admin_token,
            Some(json!({ "order_ids": ids })),
        )
        .await;

    // Assert
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("order_ids"), "{body}");
}

#[tokio::test]
async fn an_imported_order_with_a_price_beyond_the_books_is_rejected_with_its_reason() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut order = crate::support::fixture_order(crate::support::PENDING_ORDER);
    order["id"] = json!(990_001);
    order["price"] = json!("100000000000000000 грн");

    // Act
    app.push_order(&order).await;

    // Assert: a business rejection on the sync log, not a retry into the dead letters.
    let entries = crate::support::eventually("the rejection", super::WAIT, || async {
        let (_, log) = app
            .call(
                Method::GET,
                "/api/sync-log?outcome=rejected",
                &app.admin_token,
                None,
            )
            .await;
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    let detail = entries[0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("price"), "{detail}");
    assert!(detail.contains("does not fit"), "{detail}");
    assert_eq!(order_count(&app).await, 0);
    assert!(app
        .dead_letters(promsync::broker::Lane::Inbound)
        .await
        .is_empty());
}
