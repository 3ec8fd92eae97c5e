//! RO App status changes and waybills reaching Prom (ARCHITECTURE.md, 'From RO App back
//! to Prom') against real PostgreSQL, RabbitMQ and the Prom simulator: the current mapped
//! status or waybill, once, in the shape Prom accepts, whatever Prom answers in between.

use std::time::Duration;

use chrono::Utc;
use entity::{orders, shops};
use promsync::{
    broker::Lane,
    outbound::{enqueue_status_change, OutboxReason},
};
use promsync_simulator::{Call, OrderChange, Scripted, SimConfig, SimHandle};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};
use serde_json::{json, Value};

use crate::support::{eventually, TestApp, TestAppBuilder};

const WAIT: Duration = Duration::from_secs(30);

/// An app with an importer, a publisher and the simulator as Prom.
async fn with_simulator_as_prom(app: TestAppBuilder) -> (TestApp, SimHandle) {
    let mut app = app.spawn().await;
    let sim = app
        .start_simulator(SimConfig {
            orders: 0,
            ..Default::default()
        })
        .await;
    app.start_publisher();
    (app, sim)
}

/// A new order on Prom in `status`, imported into RO App through the webhook. Returns the
/// Prom id and the RO App order id.
async fn import_new_prom_order(app: &TestApp, sim: &SimHandle, status: &str) -> (i64, i64) {
    let order = sim.create_order(Some(status));
    let prom_id = order["id"].as_i64().unwrap();
    app.push_order(&order).await;
    let order_id = eventually("the order to be imported", WAIT, || async {
        orders_by_prom_id(app, prom_id).await.map(|o| o.id)
    })
    .await;
    (prom_id, order_id)
}

async fn orders_by_prom_id(app: &TestApp, prom_id: i64) -> Option<orders::Model> {
    use sea_orm::{ColumnTrait, QueryFilter};
    orders::Entity::find()
        .filter(orders::Column::ExternalId.eq(prom_id.to_string()))
        .one(&app.db)
        .await
        .expect("query")
}

async fn order(app: &TestApp, order_id: i64) -> orders::Model {
    orders::Entity::find_by_id(order_id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("the order")
}

/// The id of the account's status called `name`.
async fn status_id(app: &TestApp, name: &str) -> i64 {
    app.count(&format!(
        "SELECT id FROM order_statuses WHERE account_id = {} AND name = '{name}'",
        app.account_id
    ))
    .await
}

/// What the status-change API does: the new status and the outbox row in one transaction.
async fn change_status(app: &TestApp, order_id: i64, status: &str) {
    let status_id = status_id(app, status).await;
    let mut active = order(app, order_id).await.into_active_model();
    let txn = app.db.begin().await.unwrap();
    active.status_id = Set(status_id);
    let changed = active.update(&txn).await.unwrap();
    enqueue_status_change(&txn, &changed, OutboxReason::StatusChanged)
        .await
        .unwrap()
        .expect("an imported order is queued");
    txn.commit().await.unwrap();
}

/// What the write-off endpoint does.
async fn write_off(app: &TestApp, order_id: i64) {
    let mut active = order(app, order_id).await.into_active_model();
    let txn = app.db.begin().await.unwrap();
    active.written_off_at = Set(Some(Utc::now()));
    let changed = active.update(&txn).await.unwrap();
    enqueue_status_change(&txn, &changed, OutboxReason::WrittenOff)
        .await
        .unwrap();
    txn.commit().await.unwrap();
}

/// `(outcome, prom_status)` of the order's outbound sync log, oldest first.
async fn sync_log(app: &TestApp, order_id: i64) -> Vec<(String, Option<String>)> {
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT outcome, prom_status FROM outbound_sync_log \
                 WHERE order_id = {order_id} ORDER BY id"
            ),
        ))
        .await
        .expect("query");
    rows.into_iter()
        .map(|r| {
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<Option<String>>(1).unwrap(),
            )
        })
        .collect()
}

async fn wait_for_outcome(app: &TestApp, order_id: i64, outcome: &str, n: usize) {
    eventually(
        &format!("{n} `{outcome}` entries on the sync log"),
        WAIT,
        || async {
            let log = sync_log(app, order_id).await;
            (log.iter().filter(|(o, _)| o == outcome).count() >= n).then_some(())
        },
    )
    .await;
}

/// The `set_status` calls that named `prom_id`.
fn calls_for(sim: &SimHandle, prom_id: i64) -> Vec<Call> {
    sim.set_status_calls()
        .into_iter()
        .filter(|c| {
            c.body
                .as_ref()
                .and_then(|b| b["ids"].as_array())
                .is_some_and(|ids| ids.iter().any(|id| id.as_i64() == Some(prom_id)))
        })
        .collect()
}

fn sent_status(call: &Call) -> String {
    let body = call.body.as_ref().expect("a body");
    match body.get("custom_status_id") {
        Some(id) => format!("custom-{id}"),
        None => body["status"].as_str().unwrap_or_default().to_owned(),
    }
}

fn prom_status(sim: &SimHandle, prom_id: i64) -> String {
    sim.order(prom_id).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_cancellation_reason_given_with_the_status_change_reaches_prom_and_stays_on_the_order() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    let canceled = status_id(&app, "Canceled").await;
    let in_progress = status_id(&app, "In progress").await;
    let url = format!("/api/orders/{order_id}/status");
    let token = app.admin_token.clone();

    // Act: refusals first, then a cancellation with a reason and a text.
    let refusals = [
        json!({"status_id": in_progress, "cancellation_reason": "duplicate"}),
        json!({"status_id": canceled, "cancellation_reason": "bored"}),
        json!({"status_id": canceled, "cancellation_reason": "another"}),
        json!({"status_id": canceled, "cancellation_text": "no reason"}),
    ];
    let mut refused = Vec::new();
    for body in refusals {
        refused.push(
            app.call(reqwest::Method::POST, &url, &token, Some(body))
                .await,
        );
    }
    let (status, changed) = app
        .call(
            reqwest::Method::POST,
            &url,
            &token,
            Some(
                json!({"status_id": canceled, "cancellation_reason": "buyers_request",
                        "cancellation_text": "Покупець передумав"}),
            ),
        )
        .await;

    // Assert: each refusal is a 400 naming the field, and changed nothing.
    for (status, body) in &refused {
        assert_eq!(*status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cancellation_"),
            "{body}"
        );
    }
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["outbound"], "queued");
    assert_eq!(
        changed["order"]["cancellation"],
        json!({"reason": "buyers_request", "text": "Покупець передумав"})
    );
    eventually("Prom to show canceled", WAIT, || async {
        (prom_status(&sim, prom_id) == "canceled").then_some(())
    })
    .await;
    let calls = calls_for(&sim, prom_id);
    assert_eq!(
        calls.len(),
        1,
        "only the accepted change was sent: {calls:?}"
    );
    let body = calls[0].body.as_ref().unwrap();
    assert_eq!(body["cancellation_reason"], "buyers_request");
    assert_eq!(body["cancellation_text"], "Покупець передумав");
}

#[tokio::test]
async fn two_quick_changes_leave_prom_at_the_second_canceled_with_reason_another_and_a_text() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;

    // Act: In progress (→ received), then Canceled 10 ms later.
    change_status(&app, order_id, "In progress").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    change_status(&app, order_id, "Canceled").await;

    // Assert
    eventually("Prom to show canceled", WAIT, || async {
        (prom_status(&sim, prom_id) == "canceled").then_some(())
    })
    .await;
    wait_for_outcome(&app, order_id, "sent", 1).await;
    let calls = calls_for(&sim, prom_id);
    let last = calls.last().expect("a set_status call");
    let body = last.body.as_ref().unwrap();
    assert_eq!(body["status"], "canceled");
    assert_eq!(body["cancellation_reason"], "another");
    assert!(!body["cancellation_text"]
        .as_str()
        .unwrap()
        .trim()
        .is_empty());
    // Whatever the interleaving, nothing was sent twice and canceled came last.
    let sent: Vec<String> = calls.iter().map(sent_status).collect();
    assert!(
        sent == ["canceled"] || sent == ["received", "canceled"],
        "{sent:?}"
    );
    // Prom records the call before the publisher commits what it answered: wait for it.
    eventually("the order to record Prom's canceled", WAIT, || async {
        (order(&app, order_id).await.remote_status.as_deref() == Some("canceled")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn delivered_is_deferred_until_the_goods_are_written_off_then_sent_once() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "received").await;

    // Act 1: Done (→ delivered) before the write-off.
    change_status(&app, order_id, "Done").await;
    wait_for_outcome(&app, order_id, "deferred", 1).await;

    // Assert 1: nothing went to Prom.
    assert!(calls_for(&sim, prom_id).is_empty());
    assert_eq!(prom_status(&sim, prom_id), "received");

    // Act 2: the goods are written off.
    write_off(&app, order_id).await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert 2
    let sent: Vec<String> = calls_for(&sim, prom_id).iter().map(sent_status).collect();
    assert_eq!(sent, ["delivered"]);
    assert_eq!(prom_status(&sim, prom_id), "delivered");
    assert_eq!(
        sync_log(&app, order_id).await,
        [
            ("deferred".to_owned(), Some("delivered".to_owned())),
            ("sent".to_owned(), Some("delivered".to_owned())),
        ]
    );
}

#[tokio::test]
async fn a_status_prom_already_has_is_not_sent_again() {
    // Arrange: Prom shows received, which In progress maps to.
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "received").await;

    // Act
    change_status(&app, order_id, "In progress").await;
    wait_for_outcome(&app, order_id, "skipped", 1).await;

    // Assert
    assert!(calls_for(&sim, prom_id).is_empty());
    assert_eq!(
        sync_log(&app, order_id).await,
        [("skipped".to_owned(), Some("received".to_owned()))]
    );
}

#[tokio::test]
async fn a_custom_prom_status_is_sent_by_its_custom_status_id() {
    // Arrange: an RO App status mapped outbound to the seller's custom Prom status.
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    add_status_sent_as(&app, "Awaiting payment", "in_progress", "custom-137639").await;

    // Act
    change_status(&app, order_id, "Awaiting payment").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    let calls = calls_for(&sim, prom_id);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body.as_ref().unwrap(),
        &json!({"custom_status_id": 137639, "ids": [prom_id]})
    );
    assert_eq!(prom_status(&sim, prom_id), "custom-137639");
}

#[tokio::test]
async fn an_answer_without_the_order_in_processed_ids_is_a_failure_and_is_retried() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([Scripted {
        endpoint: "set_status".into(),
        status: 200,
        omit_processed: true,
        ..Default::default()
    }]);

    // Act
    change_status(&app, order_id, "In progress").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    assert_eq!(calls_for(&sim, prom_id).len(), 2);
    let outcomes: Vec<String> = sync_log(&app, order_id)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outcomes, ["failed", "sent"]);
    assert_eq!(prom_status(&sim, prom_id), "received");
}

/// What Prom is asked and how it refuses, in a refused status change.
enum Refusal<'a> {
    /// Prom answers this HTTP status and body to the change to `In progress`.
    Scripted(u16, Value),
    /// Prom's own rules refuse the change to an RO App status sent as this Prom status.
    SentAs(&'a str),
}

/// Prom refuses a status change: the change ends as one `failed` entry on the sync log
/// whose detail quotes `message`, dead-lettered like every permanent refusal, never
/// retried and never taken for a success.
async fn a_refusal_is_a_permanent_failure_with_prom_s_message(refusal: Refusal<'_>, message: &str) {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    let (status, answered) = match refusal {
        Refusal::Scripted(answered, body) => {
            sim.script([Scripted {
                endpoint: "set_status".into(),
                status: answered,
                body: Some(body),
                ..Default::default()
            }]);
            ("In progress", answered)
        }
        Refusal::SentAs(prom_status) => {
            add_status_sent_as(&app, "Withdrawn", "in_progress", prom_status).await;
            ("Withdrawn", 200)
        }
    };

    // Act
    change_status(&app, order_id, status).await;
    eventually("the message in the outbound dead letters", WAIT, || async {
        (app.dead_letters(Lane::Outbound).await.len() == 1).then_some(())
    })
    .await;

    // Assert
    let outcomes: Vec<String> = sync_log(&app, order_id)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outcomes, ["failed"]);
    let detail = app
        .text(&format!(
            "SELECT detail FROM outbound_sync_log WHERE order_id = {order_id}"
        ))
        .await
        .unwrap_or_default();
    assert!(detail.contains(message), "{detail}");
    let calls = calls_for(&sim, prom_id);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, answered);
    assert_eq!(prom_status(&sim, prom_id), "pending");
}

#[tokio::test]
async fn a_set_status_answered_200_with_status_error_ends_failed_with_prom_s_message() {
    a_refusal_is_a_permanent_failure_with_prom_s_message(
        Refusal::Scripted(
            200,
            json!({"status": "error", "message": "Статус замовлення не може бути змінено"}),
        ),
        "Статус замовлення не може бути змінено",
    )
    .await;
}

#[tokio::test]
async fn a_set_status_answered_200_with_an_error_field_ends_failed_with_prom_s_message() {
    a_refusal_is_a_permanent_failure_with_prom_s_message(
        Refusal::Scripted(
            200,
            json!({"error": "Incorrect message id", "processed_ids": []}),
        ),
        "Incorrect message id",
    )
    .await;
}

#[tokio::test]
async fn a_set_status_answered_400_with_an_error_ends_failed_with_prom_s_message() {
    // Prom's documented error shape on a non-200 answer, as for a malformed request.
    a_refusal_is_a_permanent_failure_with_prom_s_message(
        Refusal::Scripted(400, json!({"error": "Invalid status: in_progress"})),
        "Invalid status: in_progress",
    )
    .await;
}

#[tokio::test]
async fn a_status_change_prom_refuses_by_its_own_rules_ends_failed_with_prom_s_error() {
    // A custom Prom status the shop does not have: the simulator refuses it as Prom does,
    // 200 `{"error": …}`, nothing scripted.
    a_refusal_is_a_permanent_failure_with_prom_s_message(
        Refusal::SentAs("custom-999"),
        "Unknown custom status 999",
    )
    .await;
}

#[tokio::test]
async fn prom_s_warning_message_for_an_unprocessed_order_is_on_the_sync_log() {
    // Arrange: Prom leaves the order out once, saying why.
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (_prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([Scripted {
        endpoint: "set_status".into(),
        status: 200,
        body: Some(json!({"processed_ids": [], "warning_message": "Замовлення заблоковано"})),
        ..Default::default()
    }]);

    // Act
    change_status(&app, order_id, "In progress").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert: retried as before, and the failed attempt says what Prom said.
    let detail = app
        .text(&format!(
            "SELECT detail FROM outbound_sync_log WHERE order_id = {order_id} \
             AND outcome = 'failed'"
        ))
        .await
        .unwrap_or_default();
    assert!(detail.contains("Prom: Замовлення заблоковано"), "{detail}");
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after_and_then_sent() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([Scripted {
        endpoint: "set_status".into(),
        status: 429,
        retry_after_s: Some(1),
        ..Default::default()
    }]);

    // Act
    change_status(&app, order_id, "Canceled").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    let calls = calls_for(&sim, prom_id);
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= chrono::Duration::milliseconds(950),
        "retried after {waited}"
    );
    assert_eq!(prom_status(&sim, prom_id), "canceled");
}

#[tokio::test]
async fn server_errors_are_retried_until_prom_accepts() {
    // Arrange: enough attempts for three failures and a success.
    let (app, sim) = with_simulator_as_prom(TestApp::builder().max_attempts(5)).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([500, 502, 503].map(|status| Scripted {
        endpoint: "set_status".into(),
        status,
        ..Default::default()
    }));

    // Act
    change_status(&app, order_id, "In progress").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    let statuses: Vec<u16> = calls_for(&sim, prom_id).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [500, 502, 503, 200]);
    let outcomes: Vec<String> = sync_log(&app, order_id)
        .await
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "sent"]);
}

#[tokio::test]
async fn a_rejected_token_flags_the_shop_and_dead_letters_the_message_until_requeued() {
    // Arrange
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([Scripted {
        endpoint: "set_status".into(),
        status: 401,
        ..Default::default()
    }]);

    // Act 1
    change_status(&app, order_id, "In progress").await;
    wait_for_outcome(&app, order_id, "failed", 1).await;

    // Assert 1: flagged, dead-lettered (listed to the account with its RO App order),
    // not retried.
    eventually("the message in the outbound dead letters", WAIT, || async {
        (app.dead_letters(Lane::Outbound).await.len() == 1).then_some(())
    })
    .await;
    let (status, listed) = app
        .call(
            reqwest::Method::GET,
            "/api/dead-letters",
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["dead_letters"][0]["lane"], "outbound");
    assert_eq!(listed["dead_letters"][0]["order_id"], order_id);
    assert_eq!(listed["dead_letters"][0]["shop_id"], app.shop.shop_id);
    let shop = shops::Entity::find_by_id(app.shop.shop_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(shop.token_rejected_at.is_some());
    assert_eq!(calls_for(&sim, prom_id).len(), 1);

    // Act 2: the token is fixed (the simulator accepts it again) and the dead letter
    // requeued, as `promsync dlq requeue` will.
    let requeued = app.requeue_dead(Lane::Outbound, None).await;
    assert_eq!(requeued, 1);
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert 2
    assert_eq!(prom_status(&sim, prom_id), "received");
    let shop = shops::Entity::find_by_id(app.shop.shop_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shop.token_rejected_at, None);
}

#[tokio::test]
async fn two_publishers_and_two_relays_send_each_change_exactly_once() {
    // Arrange: six orders, a second publisher process (relay included).
    let (mut app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    app.start_publisher();
    let mut imported = Vec::new();
    for _ in 0..6 {
        imported.push(import_new_prom_order(&app, &sim, "pending").await);
    }

    // Act: every order canceled, and each change queued twice (a double click, a retry
    // of the API call) so both publishers see messages of the same order at once.
    for (_, order_id) in &imported {
        change_status(&app, *order_id, "Canceled").await;
        let current = order(&app, *order_id).await;
        let txn = app.db.begin().await.unwrap();
        enqueue_status_change(&txn, &current, OutboxReason::StatusChanged)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    for (_, order_id) in &imported {
        wait_for_outcome(&app, *order_id, "sent", 1).await;
        wait_for_outcome(&app, *order_id, "skipped", 1).await;
    }

    // Assert
    for (prom_id, order_id) in &imported {
        let sent: Vec<String> = calls_for(&sim, *prom_id).iter().map(sent_status).collect();
        assert_eq!(sent, ["canceled"], "order {prom_id}");
        assert_eq!(sync_log(&app, *order_id).await.len(), 2);
    }
    assert_eq!(sim.set_status_calls().len(), 6);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 12);
}

#[tokio::test]
async fn an_inbound_notification_echoing_the_status_just_sent_changes_nothing() {
    // Arrange: a second canceled status in RO App, sent to Prom as canceled too; Prom's
    // canceled maps inbound to the default "Canceled".
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    let by_seller = add_status_sent_as(&app, "Canceled by seller", "canceled", "canceled").await;
    change_status(&app, order_id, "Canceled by seller").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Act: Prom's order, now canceled with a newer date_modified, comes back in.
    let echo: Value = sim.order(prom_id).unwrap();
    app.push_order(&echo).await;
    app.wait_for_events(2).await;

    // Assert
    let (outcome, _) = app.outcomes().await.pop().unwrap();
    assert_eq!(outcome, promsync::domain::Outcome::Applied);
    let after = order(&app, order_id).await;
    assert_eq!(
        after.status_id, by_seller,
        "the echo must not move the status"
    );
    assert_eq!(after.remote_status.as_deref(), Some("canceled"));
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);
    assert_eq!(calls_for(&sim, prom_id).len(), 1);
}

#[tokio::test]
async fn a_seller_change_on_prom_then_an_employee_change_ends_with_the_employees_status() {
    // Arrange: the seller accepts the order on Prom, and that is imported.
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    let accepted = sim
        .change_order(
            prom_id,
            &OrderChange {
                status: Some("received".into()),
                quantities: None,
            },
        )
        .unwrap();
    app.push_order(&accepted).await;
    app.wait_for_events(2).await;
    assert_eq!(
        order(&app, order_id).await.status_id,
        status_id(&app, "In progress").await
    );

    // Act: the employee cancels in RO App.
    change_status(&app, order_id, "Canceled").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    assert_eq!(prom_status(&sim, prom_id), "canceled");
    assert_eq!(calls_for(&sim, prom_id).len(), 1);
}

#[tokio::test]
async fn a_publisher_killed_after_prom_applied_but_before_its_ack_resends_at_most_once() {
    // Arrange: Prom applies the change but answers only 2 s later.
    let (mut app, sim, prom_id, order_id) =
        applied_by_a_slow_prom(2_000, "Canceled", "canceled").await;

    // Act: the publisher dies before Prom's answer arrives, and another one starts.
    app.kill_publishers().await;
    assert_eq!(
        order(&app, order_id).await.remote_status.as_deref(),
        Some("pending"),
        "the killed publisher's transaction must have rolled back"
    );
    app.start_publisher();
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert: one resend of the same status, and both sides agree.
    let sent: Vec<String> = calls_for(&sim, prom_id).iter().map(sent_status).collect();
    assert_eq!(sent, ["canceled", "canceled"]);
    assert_eq!(
        order(&app, order_id).await.remote_status.as_deref(),
        Some("canceled")
    );
    assert_eq!(prom_status(&sim, prom_id), "canceled");
}

/// What the app holds open in the test's database, seen from another connection:
/// transactions idle for over half a second, and advisory locks.
async fn held_open(app: &TestApp) -> (i64, i64) {
    let idle = app
        .count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%' \
             AND clock_timestamp() - state_change > interval '500 milliseconds'",
        )
        .await;
    let locks = app
        .count(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND d.datname = current_database()",
        )
        .await;
    (idle, locks)
}

#[tokio::test]
async fn while_prom_is_slow_to_answer_the_publisher_holds_no_transaction_and_no_lock() {
    // Arrange: Prom applies the change at once but answers 3 s later.
    let (app, sim, prom_id, order_id) = applied_by_a_slow_prom(3_000, "Canceled", "canceled").await;

    // Act: look at the database from another connection while the answer is awaited.
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(held_open(&app).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Assert: nothing was held while Prom answered, and the answer was recorded after.
    assert!(
        seen.iter().all(|held| *held == (0, 0)),
        "(idle transactions, advisory locks) during the call: {seen:?}"
    );
    assert_eq!(
        order(&app, order_id).await.remote_status.as_deref(),
        Some("pending"),
        "the call has not answered yet"
    );
    wait_for_outcome(&app, order_id, "sent", 1).await;
    assert_eq!(
        order(&app, order_id).await.remote_status.as_deref(),
        Some("canceled")
    );
    assert_eq!(calls_for(&sim, prom_id).len(), 1);
}

#[tokio::test]
async fn a_change_made_while_prom_is_answering_is_sent_right_after_the_answer() {
    // Arrange: Prom applies In progress (→ received) at once but answers 2 s later.
    let (app, sim, prom_id, order_id) =
        applied_by_a_slow_prom(2_000, "In progress", "received").await;

    // Act: the employee cancels during the call.
    change_status(&app, order_id, "Canceled").await;
    wait_for_outcome(&app, order_id, "sent", 2).await;

    // Assert: canceled went after received's answer, each once.
    let calls = calls_for(&sim, prom_id);
    let sent: Vec<String> = calls.iter().map(sent_status).collect();
    assert_eq!(sent, ["received", "canceled"]);
    assert!(
        calls[1].at - calls[0].at >= chrono::Duration::milliseconds(1_900),
        "canceled was sent before received was answered"
    );
    assert_eq!(prom_status(&sim, prom_id), "canceled");
    eventually("the order to record Prom's canceled", WAIT, || async {
        (order(&app, order_id).await.remote_status.as_deref() == Some("canceled")).then_some(())
    })
    .await;
}

/// An outbox row as the relay leaves it: published at `published_at` (or not yet).
/// Its order is a fresh RO App order (the outbox references real orders).
async fn outbox_row(app: &TestApp, published_at: Option<chrono::DateTime<Utc>>) -> i64 {
    let order = crate::support::roapp_order(app, &app.admin_token).await;
    entity::outbox::ActiveModel {
        account_id: Set(app.account_id),
        shop_id: Set(app.shop.shop_id),
        order_id: Set(order["id"].as_i64().expect("order id")),
        kind: Set(entity::enums::OutboxKind::OrderStatus),
        payload: Set("{}".to_owned()),
        created_at: Set(Utc::now() - chrono::Duration::days(30)),
        published_at: Set(published_at),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("outbox row")
    .id
}

async fn outbox_ids(app: &TestApp) -> Vec<i64> {
    let mut ids: Vec<i64> = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn the_relay_deletes_published_outbox_rows_past_the_retention_and_keeps_the_recent() {
    // Arrange: one row published eight days ago, one an hour ago; a week's retention.
    let mut app = TestApp::builder().spawn().await;
    let expired = outbox_row(&app, Some(Utc::now() - chrono::Duration::days(8))).await;
    let recent = outbox_row(&app, Some(Utc::now() - chrono::Duration::hours(1))).await;
    app.settings.outbound.outbox_retention = Some(Duration::from_secs(168 * 3600));

    // Act
    app.start_publisher();

    // Assert
    eventually("the expired row to be deleted", WAIT, || async {
        (!outbox_ids(&app).await.contains(&expired)).then_some(())
    })
    .await;
    assert_eq!(outbox_ids(&app).await, vec![recent]);
}

#[tokio::test]
async fn the_outbox_clean_up_never_deletes_an_unpublished_row_and_stops_at_its_limit() {
    // Arrange: three long-published rows and one old row not yet published.
    let app = TestApp::builder().spawn().await;
    let long_ago = Some(Utc::now() - chrono::Duration::days(30));
    let mut published = Vec::new();
    for _ in 0..3 {
        published.push(outbox_row(&app, long_ago).await);
    }
    let unpublished = outbox_row(&app, None).await;
    let before = Utc::now() - chrono::Duration::days(7);

    // Act
    let first = promsync::outbound::relay::purge_published(&app.db, before, 2)
        .await
        .unwrap();
    let second = promsync::outbound::relay::purge_published(&app.db, before, 2)
        .await
        .unwrap();

    // Assert: the oldest two went first, then the third; the unpublished one stays.
    assert_eq!((first, second), (2, 1));
    assert_eq!(outbox_ids(&app).await, vec![unpublished]);
}

/// Adds an RO App status of `kind` to the test account and maps it outbound to Prom's
/// `prom_status` for the test shop; returns the status's id.
async fn add_status_sent_as(app: &TestApp, name: &str, kind: &str, prom_status: &str) -> i64 {
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO order_statuses (account_id, name, kind, position) \
             VALUES ({}, '{name}', '{kind}', 9)",
            app.account_id
        ))
        .await
        .unwrap();
    let id = status_id(app, name).await;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO status_mappings (shop_id, direction, prom_status, status_id) \
             VALUES ({}, 'outbound', '{prom_status}', {id})",
            app.shop.shop_id
        ))
        .await
        .unwrap();
    id
}

/// An imported order whose status an employee changed to `status`, which Prom has applied
/// (it shows `prom_status_now`) but answers only `answer_delay_ms` later: the call is still in
/// flight when this returns. Gives the app, Prom, the Prom id and the order id.
async fn applied_by_a_slow_prom(
    answer_delay_ms: u64,
    status: &str,
    prom_status_now: &str,
) -> (TestApp, SimHandle, i64, i64) {
    let (app, sim) = with_simulator_as_prom(TestApp::builder()).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "pending").await;
    sim.script([Scripted {
        endpoint: "set_status".into(),
        status: 200,
        answer_delay_ms: Some(answer_delay_ms),
        ..Default::default()
    }]);
    change_status(&app, order_id, status).await;
    eventually(
        &format!("Prom to apply {prom_status_now}"),
        WAIT,
        || async { (prom_status(&sim, prom_id) == prom_status_now).then_some(()) },
    )
    .await;
    (app, sim, prom_id, order_id)
}

// Waybills (ARCHITECTURE.md, 'Waybills reach Prom').

const WAYBILL: &str = "20450000000001";
const LATER_WAYBILL: &str = "20450000000002";

/// An imported order (Prom status `received`) and the app sending its waybills to the
/// simulator, which answers the next `save_declaration_id` calls as `answers` say. Gives
/// the app, Prom, the Prom id and the order id.
async fn waybill_order(
    app: TestAppBuilder,
    answers: impl IntoIterator<Item = Scripted>,
) -> (TestApp, SimHandle, i64, i64) {
    let (app, sim) = with_simulator_as_prom(app).await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "received").await;
    sim.script(answers);
    (app, sim, prom_id, order_id)
}

/// Prom's next `save_declaration_id` answered with HTTP `status` and `body`.
fn waybill_answer(status: u16, body: Option<Value>) -> Scripted {
    Scripted {
        endpoint: "save_declaration".into(),
        status,
        body,
        ..Default::default()
    }
}

/// `POST /api/orders/{id}/waybill` as the admin; the answer's body.
async fn set_waybill(app: &TestApp, order_id: i64, number: &str, carrier: &str) -> Value {
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/orders/{order_id}/waybill"),
            &app.admin_token,
            Some(json!({"number": number, "carrier": carrier})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body
}

/// The `save_declaration_id` calls that named `prom_id`.
fn waybill_calls_for(sim: &SimHandle, prom_id: i64) -> Vec<Call> {
    sim.save_declaration_calls()
        .into_iter()
        .filter(|c| c.body.as_ref().is_some_and(|b| b["order_id"] == prom_id))
        .collect()
}

fn waybill_on_prom(sim: &SimHandle, prom_id: i64) -> Option<String> {
    sim.order(prom_id).unwrap()["delivery_provider_data"]["declaration_number"]
        .as_str()
        .map(str::to_owned)
}

async fn wait_for_waybill_on_prom(sim: &SimHandle, prom_id: i64, number: &str) {
    eventually(&format!("Prom to show waybill {number}"), WAIT, || async {
        (waybill_on_prom(sim, prom_id).as_deref() == Some(number)).then_some(())
    })
    .await;
}

/// The sync-log details of the order's entries with `outcome`, oldest first.
async fn details(app: &TestApp, order_id: i64, outcome: &str) -> Vec<String> {
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!(
                "SELECT detail FROM outbound_sync_log \
                 WHERE order_id = {order_id} AND outcome = '{outcome}' ORDER BY id"
            ),
        ))
        .await
        .expect("query");
    rows.into_iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

fn outcomes(log: &[(String, Option<String>)]) -> Vec<&str> {
    log.iter().map(|(o, _)| o.as_str()).collect()
}

#[tokio::test]
async fn a_waybill_is_stored_at_once_and_reaches_prom_as_save_declaration_id() {
    // Arrange
    let (app, sim, prom_id, order_id) = waybill_order(TestApp::builder(), []).await;

    // Act
    let answer = set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;

    // Assert: stored before Prom heard of it, then on Prom, once, as Prom wants it.
    assert_eq!(answer["outbound"], "queued");
    assert_eq!(answer["order"]["delivery"]["declaration_number"], WAYBILL);
    wait_for_waybill_on_prom(&sim, prom_id, WAYBILL).await;
    wait_for_outcome(&app, order_id, "sent", 1).await;
    let calls = waybill_calls_for(&sim, prom_id);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body.as_ref().unwrap(),
        &json!({"order_id": prom_id, "declaration_id": WAYBILL, "delivery_type": "nova_poshta"})
    );
    let stored = order(&app, order_id).await;
    assert_eq!(stored.waybill_sent_number.as_deref(), Some(WAYBILL));
    assert!(details(&app, order_id, "sent").await[0].contains(WAYBILL));
}

#[tokio::test]
async fn of_two_waybills_set_quickly_prom_ends_with_the_later() {
    // Arrange
    let (app, sim, prom_id, order_id) = waybill_order(TestApp::builder(), []).await;

    // Act
    set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;
    let answer = set_waybill(&app, order_id, LATER_WAYBILL, "nova_poshta").await;

    // Assert
    assert_eq!(
        answer["order"]["delivery"]["declaration_number"],
        LATER_WAYBILL
    );
    eventually("Prom to hold the later waybill, recorded", WAIT, || async {
        let stored = order(&app, order_id).await;
        (stored.waybill_sent_number.as_deref() == Some(LATER_WAYBILL)).then_some(())
    })
    .await;
    assert_eq!(
        waybill_on_prom(&sim, prom_id).as_deref(),
        Some(LATER_WAYBILL)
    );
    let sent: Vec<Value> = waybill_calls_for(&sim, prom_id)
        .iter()
        .map(|c| c.body.as_ref().unwrap()["declaration_id"].clone())
        .collect();
    assert_eq!(sent.last(), Some(&json!(LATER_WAYBILL)), "{sent:?}");
    assert!(sent.len() <= 2, "nothing sent twice: {sent:?}");
}

#[tokio::test]
async fn a_redelivered_waybill_message_sends_nothing_once_prom_took_it() {
    // Arrange: Prom took the waybill.
    let (app, sim, prom_id, order_id) = waybill_order(TestApp::builder(), []).await;
    set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Act: the same message again, as a redelivery would bring it.
    let txn = app.db.begin().await.unwrap();
    promsync::outbound::enqueue_waybill(&txn, &order(&app, order_id).await)
        .await
        .unwrap()
        .expect("an imported order is queued");
    txn.commit().await.unwrap();
    wait_for_outcome(&app, order_id, "skipped", 1).await;

    // Assert
    assert_eq!(waybill_calls_for(&sim, prom_id).len(), 1);
    assert_eq!(
        outcomes(&sync_log(&app, order_id).await),
        ["sent", "skipped"]
    );
    assert!(details(&app, order_id, "skipped").await[0].contains("not sent again"));
}

#[tokio::test]
async fn a_waybill_refused_in_a_200_is_failed_with_prom_s_message_and_retried() {
    // Arrange
    let refusal = json!({"status": "error", "message": "ЕН не знайдено у перевізника"});
    let (app, sim, prom_id, order_id) =
        waybill_order(TestApp::builder(), [waybill_answer(200, Some(refusal))]).await;

    // Act
    set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert
    assert_eq!(
        outcomes(&sync_log(&app, order_id).await),
        ["failed", "sent"]
    );
    let failed = &details(&app, order_id, "failed").await[0];
    assert!(failed.contains("ЕН не знайдено у перевізника"), "{failed}");
    assert_eq!(waybill_calls_for(&sim, prom_id).len(), 2);
    assert_eq!(waybill_on_prom(&sim, prom_id).as_deref(), Some(WAYBILL));
}

#[tokio::test]
async fn a_waybill_prom_keeps_refusing_is_a_dead_letter_after_the_attempts() {
    // Arrange
    let refusal = waybill_answer(200, Some(json!({"error": "Access denied"})));
    let (app, sim, prom_id, order_id) = waybill_order(
        TestApp::builder().max_attempts(2),
        [refusal.clone(), refusal],
    )
    .await;

    // Act
    set_waybill(&app, order_id, WAYBILL, "ukrposhta").await;
    eventually("the waybill in the outbound dead letters", WAIT, || async {
        (app.dead_letters(Lane::Outbound).await.len() == 1).then_some(())
    })
    .await;

    // Assert
    assert_eq!(
        outcomes(&sync_log(&app, order_id).await),
        ["failed", "failed"]
    );
    assert_eq!(waybill_calls_for(&sim, prom_id).len(), 2);
    assert_eq!(waybill_on_prom(&sim, prom_id), None);
    let stored = order(&app, order_id).await;
    assert_eq!(stored.delivery_declaration_number.as_deref(), Some(WAYBILL));
    assert_eq!(stored.waybill_sent_number, None);
}

/// Prom's version of order `prom_id` carrying waybill `number`, newer than any before.
fn prom_edit_with_waybill(sim: &SimHandle, prom_id: i64, number: &str) -> Value {
    let mut edited = sim.order(prom_id).unwrap();
    edited["delivery_provider_data"] =
        json!({"provider": "nova_poshta", "declaration_number": number});
    edited["date_modified"] = json!(promsync_simulator::generate::prom_time(
        Utc::now() + chrono::Duration::seconds(5)
    ));
    edited
}

#[tokio::test]
async fn an_import_keeps_a_pending_waybill_and_follows_prom_once_prom_took_ours() {
    // Arrange: no publisher yet, so the waybill set in RO App waits.
    let mut app = TestApp::builder().spawn().await;
    let sim = app
        .start_simulator(SimConfig {
            orders: 0,
            ..Default::default()
        })
        .await;
    let (prom_id, order_id) = import_new_prom_order(&app, &sim, "received").await;
    set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;

    // Act 1: Prom's order arrives with another (older) number.
    app.push_order(&prom_edit_with_waybill(&sim, prom_id, "20459999999999"))
        .await;
    app.wait_for_events(2).await;

    // Assert 1: ours stays (the sync log says so), and the publisher then brings Prom to it.
    let stored = order(&app, order_id).await;
    assert_eq!(stored.delivery_declaration_number.as_deref(), Some(WAYBILL));
    let (_, detail) = app.outcomes().await.pop().expect("the edit's import");
    assert!(detail.unwrap_or_default().contains("waybill left aside"));
    app.start_publisher();
    wait_for_waybill_on_prom(&sim, prom_id, WAYBILL).await;
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Act 2: later, the seller changes the number on Prom.
    let mut edited = prom_edit_with_waybill(&sim, prom_id, LATER_WAYBILL);
    edited["date_modified"] = json!(promsync_simulator::generate::prom_time(
        Utc::now() + chrono::Duration::seconds(10)
    ));
    app.push_order(&edited).await;

    // Assert 2: Prom's edit wins, and nothing sends ours back over it.
    eventually("Prom's new waybill in RO App", WAIT, || async {
        let stored = order(&app, order_id).await;
        (stored.delivery_declaration_number.as_deref() == Some(LATER_WAYBILL)).then_some(stored)
    })
    .await;
    let stored = order(&app, order_id).await;
    assert_eq!(stored.waybill_number, None);
    assert_eq!(stored.pending_waybill(), None);
    assert_eq!(waybill_calls_for(&sim, prom_id).len(), 1);
}

#[tokio::test]
async fn a_publisher_killed_while_prom_takes_a_waybill_resends_it_once_and_prom_s_already_added_settles_it(
) {
    // Arrange: Prom takes the waybill but answers only 2 s later.
    let slow = Scripted {
        answer_delay_ms: Some(2_000),
        ..waybill_answer(200, None)
    };
    let (mut app, sim, prom_id, order_id) = waybill_order(TestApp::builder(), [slow]).await;
    set_waybill(&app, order_id, WAYBILL, "nova_poshta").await;
    wait_for_waybill_on_prom(&sim, prom_id, WAYBILL).await;

    // Act: the publisher dies before Prom's answer arrives, and another one starts.
    app.kill_publishers().await;
    assert_eq!(order(&app, order_id).await.waybill_sent_number, None);
    app.start_publisher();
    wait_for_outcome(&app, order_id, "sent", 1).await;

    // Assert: one resend, which Prom refuses as already there: that is success.
    let calls = waybill_calls_for(&sim, prom_id);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].status, 200);
    assert_eq!(outcomes(&sync_log(&app, order_id).await), ["sent"]);
    let stored = order(&app, order_id).await;
    assert_eq!(stored.waybill_sent_number.as_deref(), Some(WAYBILL));
    assert_eq!(stored.waybill_claim_id, None);
    assert_eq!(waybill_on_prom(&sim, prom_id).as_deref(), Some(WAYBILL));
}

#[tokio::test]
async fn a_rejected_token_flags_the_shop_and_dead_letters_the_waybill_at_once() {
    // Arrange
    let (app, sim, prom_id, order_id) = waybill_order(
        TestApp::builder().max_attempts(5),
        [waybill_answer(401, None)],
    )
    .await;

    // Act
    set_waybill(&app, order_id, WAYBILL, "meest").await;
    eventually("the waybill in the outbound dead letters", WAIT, || async {
        (app.dead_letters(Lane::Outbound).await.len() == 1).then_some(())
    })
    .await;

    // Assert
    assert_eq!(waybill_calls_for(&sim, prom_id).len(), 1);
    assert_eq!(outcomes(&sync_log(&app, order_id).await), ["failed"]);
    let shop = shops::Entity::find_by_id(app.shop.shop_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(shop.token_rejected_at.is_some());
}
