//! Rows the API and UI suites start from: statuses, products and orders written
//! directly or made through the API, employees with chosen permissions.

use std::collections::HashMap;

use chrono::Utc;
use entity::{order_items, orders, products};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};

use super::app::TestApp;

/// The account's status ids by kind (`new`, `in_progress`, `done`, `canceled`).
pub async fn statuses(app: &TestApp, token: &str) -> HashMap<String, i64> {
    let (status, body) = app.call(Method::GET, "/api/statuses", token, None).await;
    assert_eq!(status, 200, "{body}");
    body["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

pub async fn product(app: &TestApp, account_id: i64, sku: &str) -> i64 {
    products::ActiveModel {
        account_id: Set(account_id),
        name: Set(format!("Product {sku}")),
        sku: Set(Some(sku.to_owned())),
        prom_id: Set(None),
        description: Set(None),
        unit: Set("pcs".into()),
        category_id: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("product")
    .id
}

/// An order as an import leaves it, written straight to the database (status `new`, one
/// line, not written off): for tests about what happens to imported orders, not about
/// importing.
pub async fn insert_imported_order(
    app: &TestApp,
    account_id: i64,
    shop_id: i64,
    external_id: &str,
) -> i64 {
    let status_id = app
        .count(&format!(
            "SELECT min(id) FROM order_statuses WHERE account_id = {account_id} AND kind = 'new'"
        ))
        .await;
    let now = Utc::now();
    let order = orders::ActiveModel {
        account_id: Set(account_id),
        number: Set(external_id.to_owned()),
        shop_id: Set(Some(shop_id)),
        external_id: Set(Some(external_id.to_owned())),
        status_id: Set(status_id),
        remote_status: Set(Some("pending".into())),
        remote_status_title: Set(None),
        remote_created_at: Set(Some(now)),
        remote_modified_at: Set(Some(now)),
        last_synced_at: Set(Some(now)),
        last_refresh_at: Set(None),
        client_id: Set(None),
        total: Set(rust_decimal::Decimal::new(24400, 2)),
        currency: Set("UAH".into()),
        written_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("order");
    let product_id = product(app, account_id, &format!("SKU-{external_id}")).await;
    order_items::ActiveModel {
        order_id: Set(order.id),
        product_id: Set(product_id),
        position: Set(0),
        name: Set("Шкарпетки".into()),
        sku: Set(Some(format!("SKU-{external_id}"))),
        quantity: Set(rust_decimal::Decimal::new(2, 0)),
        price: Set(rust_decimal::Decimal::new(12200, 2)),
        written_off: Set(false),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("item");
    order.id
}

pub async fn roapp_order(app: &TestApp, token: &str) -> Value {
    let (status, body) = app
        .call(Method::POST, "/api/orders", token, Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn employee(app: &TestApp, permissions: &[&str]) -> String {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/employees",
            &app.admin_token,
            Some(json!({"name": "clerk", "permissions": permissions})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_i64().is_some());
    body["token"].as_str().unwrap().to_owned()
}
