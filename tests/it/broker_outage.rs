//! The ingress across a RabbitMQ outage and a partition: while the broker cannot be
//! reached, or stops answering, it answers 503 with `Retry-After`, within the publish
//! timeout, and enqueues nothing it claims; when the broker is back it reconnects by
//! itself, with no restart. Both are a TCP proxy in front of the real broker that this
//! test cuts (or silences) and restores.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use futures::future::join_all;
use promsync::broker::Lane;
use serde_json::{json, Value};

use crate::support::{eventually, fixture_order, proxy::Proxy, TestApp, PENDING_ORDER};

const RABBITMQ: &str = "127.0.0.1:5672";

fn broker_through(proxy: &Proxy) -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port)
}

/// A full notification of the pending fixture order as Prom order `id`.
fn order_body(id: i64) -> Value {
    let mut order = fixture_order(PENDING_ORDER);
    order["id"] = json!(id);
    json!({ "order": order })
}

#[tokio::test]
async fn the_ingress_answers_503_during_a_broker_outage_and_recovers_without_restart() {
    // Arrange: promsync talks to RabbitMQ through the proxy.
    let proxy = Proxy::start(RABBITMQ.parse().unwrap()).await;
    let app = TestApp::builder()
        .importers(0)
        .broker_url(broker_through(&proxy))
        .spawn()
        .await;
    let body = order_body(338_390_710);
    let before = app.notify(&body).await;
    assert_eq!(before.status(), 202);

    // Act + Assert: the broker goes away.
    proxy.cut();
    let accepted_during = AtomicU32::new(0);
    let during = eventually("503 during the outage", Duration::from_secs(20), || async {
        let r = app.notify(&body).await;
        if r.status() == 202 {
            accepted_during.fetch_add(1, Ordering::SeqCst);
        }
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(during.headers().contains_key("retry-after"));

    // The broker comes back: the same process accepts again.
    proxy.restore();
    eventually("202 after the outage", Duration::from_secs(20), || async {
        (app.notify(&body).await.status() == 202).then_some(())
    })
    .await;

    // Every accepted notification is queued. (A publish cut off before its confirm
    // answered 503 and may still have reached the queue: at least once, never lost.)
    let accepted = 2 + accepted_during.load(Ordering::SeqCst);
    assert!(app.queue_depth(Lane::Inbound).await >= accepted);
}

/// One notification sent now: its order id, status, whether it said `Retry-After`, and
/// how long the answer took.
async fn timed_notify(app: &TestApp, id: i64) -> (i64, u16, bool, Duration) {
    let started = Instant::now();
    let response = app.notify(&order_body(id)).await;
    let retry_after = response.headers().contains_key("retry-after");
    (
        id,
        response.status().as_u16(),
        retry_after,
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_broker_that_stops_answering_gets_503_within_the_deadline_and_is_replaced_once_back() {
    // Arrange: a short publish timeout, RabbitMQ behind the proxy, one order accepted.
    const DEADLINE: Duration = Duration::from_millis(1500);
    let proxy = Proxy::start(RABBITMQ.parse().unwrap()).await;
    let mut app = TestApp::builder()
        .importers(0)
        .broker_url(broker_through(&proxy))
        .publish_timeout(DEADLINE)
        .spawn()
        .await;
    let mut accepted = vec![];
    let (id, status, _, _) = timed_notify(&app, 610_000_000).await;
    assert_eq!(status, 202);
    accepted.push(id);
    let connections_before = proxy.connections();

    // Act: the broker goes silent, connections open; three waves of concurrent requests.
    proxy.silence();
    let mut during = vec![];
    for wave in 0..3 {
        let ids = (0..4).map(|i| 610_000_100 + wave * 10 + i);
        during.extend(join_all(ids.map(|id| timed_notify(&app, id))).await);
    }

    // Assert: each one a 503 with Retry-After, within the deadline and a second; while
    // the link was being replaced, requests did not wait their turn behind it.
    for (id, status, retry_after, took) in &during {
        assert_eq!(
            *status, 503,
            "order {id} answered {status} with the broker silent"
        );
        assert!(retry_after, "order {id}: 503 without Retry-After");
        assert!(
            *took <= DEADLINE + Duration::from_secs(1),
            "order {id} answered after {took:?}"
        );
    }
    assert!(
        during.iter().any(|(_, _, _, took)| *took < DEADLINE / 2),
        "no request failed fast while the link was replaced: {during:?}"
    );

    // Act: the partition heals; the same process accepts again.
    proxy.restore();
    let back = eventually(
        "202 after the partition",
        Duration::from_secs(30),
        || async {
            let answer = timed_notify(&app, 610_000_900 + accepted.len() as i64).await;
            (answer.1 == 202).then_some(answer.0)
        },
    )
    .await;
    accepted.push(back);
    let (id, status, _, _) = timed_notify(&app, 610_000_999).await;
    assert_eq!(status, 202);
    accepted.push(id);

    // Assert: the silent connection was replaced by a new one, and every accepted
    // notification is imported.
    assert!(
        proxy.connections() > connections_before,
        "promsync kept the connection that stopped answering"
    );
    app.start_importer();
    for id in accepted {
        eventually(
            &format!("order {id} imported"),
            Duration::from_secs(30),
            || async {
                let sql = format!("SELECT count(*) FROM orders WHERE external_id = '{id}'");
                (app.count(&sql).await == 1).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn the_embedded_queue_answers_503_within_the_deadline_while_its_database_holds_every_write() {
    if crate::support::backend() != crate::support::Backend::Embedded {
        // The embedded broker's database is the test's SQLite file, which this test locks.
        return;
    }
    // Arrange: the embedded broker with a short publish timeout, its shop's keys cached.
    use sea_orm::sqlx::{Connection, SqliteConnection};
    const DEADLINE: Duration = Duration::from_millis(1000);
    let app = TestApp::builder()
        .importers(0)
        .publish_timeout(DEADLINE)
        .spawn()
        .await;
    let (_, status, _, _) = timed_notify(&app, 620_000_000).await;
    assert_eq!(status, 202);
    // Another process takes the database's write lock and keeps it.
    let mut other = SqliteConnection::connect(&app.settings.database.url)
        .await
        .expect("a second connection to the test's database");
    sea_orm::sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .expect("the write lock");

    // Act
    let (id, status, retry_after, took) = timed_notify(&app, 620_000_001).await;

    // Assert: refused in time (SQLite alone would wait out its 30 s busy timeout).
    assert_eq!(status, 503, "order {id}");
    assert!(retry_after);
    assert!(
        took <= DEADLINE + Duration::from_secs(1),
        "answered after {took:?}"
    );

    // The lock goes: the same process accepts again.
    sea_orm::sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("released");
    eventually("202 after the lock", Duration::from_secs(40), || async {
        (timed_notify(&app, 620_000_002).await.1 == 202).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_webhook_whose_shop_keys_cannot_be_read_gets_503_with_retry_after_never_a_500() {
    // Arrange: the shop's keys not cached yet, and their table out of reach.
    use sea_orm::ConnectionTrait;
    let app = TestApp::builder().importers(0).spawn().await;
    app.db
        .execute_unprepared("ALTER TABLE shops RENAME TO shops_away")
        .await
        .expect("renamed");

    // Act
    let (_, refused, retry_after, _) = timed_notify(&app, 630_000_000).await;
    app.db
        .execute_unprepared("ALTER TABLE shops_away RENAME TO shops")
        .await
        .expect("renamed back");
    let (_, accepted, _, _) = timed_notify(&app, 630_000_001).await;

    // Assert: a transient refusal the sender retries, then accepted as usual.
    assert_eq!(refused, 503);
    assert!(retry_after);
    assert_eq!(accepted, 202);
    assert_eq!(app.queue_depth(Lane::Inbound).await, 1);
}
