//! Prom edits to orders already imported (ARCHITECTURE.md, 'Line edits stop at the
//! write-off', 'Exact money in the account's currency'), the buyer's e-mail ('Imported
//! fields') and one Prom shop connected to two accounts: each against the real app.

use chrono::{TimeZone, Utc};
use entity::order_items;
use promsync::{domain::Outcome, provision::CreatedShop};
use reqwest::Method;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

use crate::{
    import::{order, the_items, the_order},
    support::{fixture_order, webhook::headers, TestApp, PENDING_ORDER},
};

/// A Prom line `(prom id, sku, name, quantity, unit price)` as `order` takes it.
type Line = (i64, &'static str, &'static str, f64, u32);

const SOCKS: Line = (501, "SKU-1", "Шкарпетки", 2.0, 120);
const GLOVES: Line = (502, "SKU-2", "Рукавички", 1.0, 80);
const SCARF: Line = (503, "SKU-3", "Шарф", 3.0, 50);

/// An app in which `first` was imported and then `edit` arrived and settled.
async fn imported_then_edited(first: &Value, edit: &Value) -> TestApp {
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(first).await;
    app.wait_for_events(1).await;
    app.push_order(edit).await;
    app.wait_for_events(2).await;
    app
}

/// The order's lines as `(sku, quantity, price, written off)`, by position.
async fn lines(app: &TestApp) -> Vec<(Option<String>, Decimal, Decimal, bool)> {
    the_items(app)
        .await
        .into_iter()
        .map(|item: order_items::Model| (item.sku, item.quantity, item.price, item.written_off))
        .collect()
}

fn line(sku: &str, quantity: Decimal, price: Decimal) -> (Option<String>, Decimal, Decimal, bool) {
    (Some(sku.to_owned()), quantity, price, false)
}

/// The outcome of every inbox event, oldest first, without the details.
async fn outcome_kinds(app: &TestApp) -> Vec<Outcome> {
    app.outcomes().await.into_iter().map(|(o, _)| o).collect()
}

#[tokio::test]
async fn a_prom_edit_that_deletes_a_line_leaves_the_order_with_the_remaining_line_and_its_total() {
    // Arrange + Act: two lines imported, then Prom's newer version has only the gloves.
    let app = imported_then_edited(
        &order(61, 1, "pending", &[SOCKS, GLOVES]),
        &order(61, 2, "pending", &[GLOVES]),
    )
    .await;

    // Assert
    assert_eq!(
        outcome_kinds(&app).await,
        [Outcome::Applied, Outcome::Applied]
    );
    assert_eq!(lines(&app).await, [line("SKU-2", dec!(1), dec!(80))]);
    assert_eq!(app.count("SELECT count(*) FROM order_items").await, 1);
    let order = the_order(&app).await;
    assert_eq!(order.total, dec!(80));
    assert_eq!(order.written_off_at, None, "an edit writes nothing off");
}

#[tokio::test]
async fn a_prom_edit_that_adds_lines_gives_the_order_every_line_and_the_new_total() {
    // Arrange + Act: one line imported, then Prom's newer version has three.
    let app = imported_then_edited(
        &order(62, 1, "pending", &[SOCKS]),
        &order(62, 2, "pending", &[SOCKS, GLOVES, SCARF]),
    )
    .await;

    // Assert
    assert_eq!(
        outcome_kinds(&app).await,
        [Outcome::Applied, Outcome::Applied]
    );
    assert_eq!(
        lines(&app).await,
        [
            line("SKU-1", dec!(2), dec!(120)),
            line("SKU-2", dec!(1), dec!(80)),
            line("SKU-3", dec!(3), dec!(50)),
        ]
    );
    assert_eq!(the_order(&app).await.total, dec!(470));
    assert_eq!(app.count("SELECT count(*) FROM products").await, 3);
}

#[tokio::test]
async fn a_prom_edit_of_a_price_alone_updates_the_line_and_the_total_and_reuses_the_products() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    app.push_order(&order(63, 1, "pending", &[SOCKS, GLOVES]))
        .await;
    app.wait_for_events(1).await;
    let products_before: Vec<i64> = the_items(&app).await.iter().map(|i| i.product_id).collect();

    // Act: the same lines, the socks now at 150.
    let (id, sku, name, quantity, _) = SOCKS;
    app.push_order(&order(
        63,
        2,
        "pending",
        &[(id, sku, name, quantity, 150), GLOVES],
    ))
    .await;
    app.wait_for_events(2).await;

    // Assert
    assert_eq!(
        outcome_kinds(&app).await,
        [Outcome::Applied, Outcome::Applied]
    );
    assert_eq!(
        lines(&app).await,
        [
            line("SKU-1", dec!(2), dec!(150)),
            line("SKU-2", dec!(1), dec!(80)),
        ]
    );
    assert_eq!(the_order(&app).await.total, dec!(380));
    let products_after: Vec<i64> = the_items(&app).await.iter().map(|i| i.product_id).collect();
    assert_eq!(
        products_after, products_before,
        "the same products are reused"
    );
    assert_eq!(app.count("SELECT count(*) FROM products").await, 2);
}

#[tokio::test]
async fn a_prom_edit_priced_in_another_currency_is_rejected_on_the_sync_log_and_the_books_keep_the_previous_version(
) {
    // Arrange + Act: a UAH order imported, then an edit adding a line priced in dollars.
    let mut edit = order(64, 2, "pending", &[SOCKS, GLOVES]);
    edit["products"][1]["price"] = json!("80 USD");
    edit["products"][1]["total_price"] = json!("80 USD");
    let app = imported_then_edited(&order(64, 1, "pending", &[SOCKS]), &edit).await;

    // Assert: the edit is rejected, and says which currencies clashed.
    let outcomes = app.outcomes().await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].0, Outcome::Applied);
    let (outcome, detail) = &outcomes[1];
    assert_eq!(*outcome, Outcome::Rejected);
    let detail = detail.as_deref().unwrap_or("");
    assert!(
        detail.contains("price in USD, but the account's currency is UAH"),
        "the detail names both currencies: {detail}"
    );
    // The books are still at version 1.
    assert_eq!(lines(&app).await, [line("SKU-1", dec!(2), dec!(120))]);
    let order = the_order(&app).await;
    assert_eq!(order.total, dec!(240));
    assert_eq!(order.currency, "UAH");
    assert_eq!(
        order.remote_modified_at,
        Some(Utc.with_ymd_and_hms(2025, 4, 7, 7, 0, 1).unwrap()),
        "the rejected version is not recorded as the order's"
    );
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
}

/// Delivers `order` as a signed full notification to `shop`'s webhook.
async fn push_order_to(app: &TestApp, shop: &CreatedShop, order: &Value) {
    let raw = serde_json::to_vec(&json!({ "order": order })).expect("JSON body");
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let signed = headers(&shop.webhook_secret, &id, Utc::now().timestamp(), &raw);
    let response = app.post_webhook(shop.shop_id, signed, raw).await;
    assert_eq!(response.status(), 202);
}

/// What `token`'s account sees of a listing endpoint (`/api/orders`, `/api/clients`).
async fn listed(app: &TestApp, path: &str, key: &str, token: &str) -> Vec<Value> {
    let (status, body) = app.call(Method::GET, path, token, None).await;
    assert_eq!(status, 200, "{body}");
    body[key].as_array().expect("a list").clone()
}

#[tokio::test]
async fn one_prom_shop_connected_to_two_accounts_imports_the_same_order_into_each_account_apart() {
    // Arrange: a second account whose shop talks to the same Prom.
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let other = app.other_tenant().await;
    let document = fixture_order(PENDING_ORDER);

    // Act: the same order notified to each shop's webhook.
    push_order_to(&app, &app.shop, &document).await;
    push_order_to(&app, &other.shop, &document).await;
    app.wait_for_events(2).await;

    // Assert: one order, client and product in each account.
    assert_eq!(
        outcome_kinds(&app).await,
        [Outcome::Applied, Outcome::Applied]
    );
    for (account, shop) in [(app.account_id, &app.shop), (other.account_id, &other.shop)] {
        let in_account =
            |table: &str| format!("SELECT count(*) FROM {table} WHERE account_id = {account}");
        assert_eq!(app.count(&in_account("orders")).await, 1);
        assert_eq!(app.count(&in_account("clients")).await, 1);
        assert_eq!(app.count(&in_account("products")).await, 1);
        assert_eq!(
            app.text(&format!(
                "SELECT external_id FROM orders WHERE account_id = {account} AND shop_id = {}",
                shop.shop_id
            ))
            .await
            .as_deref(),
            Some("338390710")
        );
    }
    // Each admin lists only their own account's order and client.
    let mine = listed(&app, "/api/orders", "orders", &app.admin_token).await;
    let theirs = listed(&app, "/api/orders", "orders", &other.admin_token).await;
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(mine[0]["shop"]["id"], app.shop.shop_id);
    assert_eq!(theirs[0]["shop"]["id"], other.shop.shop_id);
    assert_eq!(mine[0]["number"], "338390710");
    assert_eq!(theirs[0]["number"], "338390710");
    assert_ne!(mine[0]["id"], theirs[0]["id"]);
    assert_ne!(mine[0]["client"]["id"], theirs[0]["client"]["id"]);
    assert_ne!(
        mine[0]["items"][0]["product_id"],
        theirs[0]["items"][0]["product_id"]
    );
    let my_clients = listed(&app, "/api/clients", "clients", &app.admin_token).await;
    let their_clients = listed(&app, "/api/clients", "clients", &other.admin_token).await;
    assert_eq!(my_clients.len(), 1);
    assert_eq!(their_clients.len(), 1);
    assert_eq!(my_clients[0]["id"], mine[0]["client"]["id"]);
    assert_eq!(their_clients[0]["id"], theirs[0]["client"]["id"]);
}

#[tokio::test]
async fn the_buyers_email_from_the_prom_order_is_stored_on_the_client() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;
    let mut document = fixture_order(PENDING_ORDER);
    document["email"] = json!("olena.kovalenko@example.com");

    // Act
    app.push_order(&document).await;
    app.wait_for_events(1).await;

    // Assert: in the clients table, in the order's view and in the client list.
    assert_eq!(
        app.text("SELECT email FROM clients").await.as_deref(),
        Some("olena.kovalenko@example.com")
    );
    let orders = listed(&app, "/api/orders", "orders", &app.admin_token).await;
    assert_eq!(orders[0]["client"]["email"], "olena.kovalenko@example.com");
    let clients = listed(&app, "/api/clients", "clients", &app.admin_token).await;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["email"], "olena.kovalenko@example.com");
}
