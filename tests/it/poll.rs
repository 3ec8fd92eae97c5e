//! The poller against real PostgreSQL and RabbitMQ, with importers running and a Prom
//! stand-in that lists orders as Prom does (ARCHITECTURE.md, 'The poller'): every order
//! arrives once, at its newest version, whatever happens to the sweep, the pollers or Prom.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, NaiveDateTime, Utc};
use promsync::{
    domain::{ClientMatching, Language, MatchProductsBy},
    poll::lease::Leases,
    prom::parse_prom_datetime,
    provision::{self, NewShop},
};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path, path_regex},
    Mock, MockServer, Request, Respond, ResponseTemplate,
};

use crate::support::{eventually, fixture_order, TestApp, PENDING_ORDER};

const WAIT: Duration = Duration::from_secs(60);

/// Prom's timestamp spelling: microseconds and an offset.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The real pending order with another id, status and dates.
fn prom_order(id: i64, status: &str, created: DateTime<Utc>, modified: DateTime<Utc>) -> Value {
    let mut order = fixture_order(PENDING_ORDER);
    order["id"] = json!(id);
    order["status"] = json!(status);
    order["date_created"] = json!(stamp(created));
    order["date_modified"] = json!(stamp(modified));
    order
}

/// `n` new pending orders with ids `first..first + n`, created and modified now.
fn new_orders(first: i64, n: i64) -> Vec<Value> {
    let now = Utc::now();
    (first..first + n)
        .map(|id| prom_order(id, "pending", now, now))
        .collect()
}

type Mutation = Box<dyn FnOnce(&mut BTreeMap<i64, Value>) + Send>;

/// One `GET /orders/list` request as the stand-in saw it.
#[derive(Debug, Clone)]
struct ListCall {
    from: Option<String>,
    last_id: Option<i64>,
    served: Vec<i64>,
    failed: bool,
}

#[derive(Default)]
struct State {
    orders: BTreeMap<i64, Value>,
    calls: Vec<ListCall>,
    /// Answers served instead of a page, by call number (0-based).
    failures: HashMap<usize, ResponseTemplate>,
    /// Changes to the order set made right after the page of a call number was built.
    after_call: Vec<(usize, Mutation)>,
}

/// Prom's `orders/list`: orders modified since `last_modified_from` (second precision),
/// by descending id, `limit` per page, `last_id` inclusive (the harder case: the boundary
/// order comes again and must be deduped).
#[derive(Clone)]
struct StandIn {
    state: Arc<Mutex<State>>,
    delay: Duration,
}

impl Respond for StandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let mut state = self.state.lock().unwrap();
        let n = state.calls.len();
        let from = query.get("last_modified_from").cloned();
        let last_id = query.get("last_id").and_then(|v| v.parse::<i64>().ok());
        if let Some(failure) = state.failures.remove(&n) {
            state.calls.push(ListCall {
                from,
                last_id,
                served: Vec::new(),
                failed: true,
            });
            return failure;
        }
        let limit = query
            .get("limit")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(100);
        let since = from.as_deref().map(|f| {
            NaiveDateTime::parse_from_str(f, "%Y-%m-%dT%H:%M:%S")
                .expect("Prom's date format")
                .and_utc()
        });
        let page: Vec<Value> = state
            .orders
            .iter()
            .rev()
            .filter(|(id, _)| last_id.is_none_or(|last| **id <= last))
            .filter(|(_, order)| {
                since.is_none_or(|since| {
                    // An order without `date_modified` is listed by its creation date.
                    let version = order["date_modified"]
                        .as_str()
                        .or(order["date_created"].as_str())
                        .unwrap();
                    parse_prom_datetime(version).unwrap() >= since
                })
            })
            .take(limit)
            .map(|(_, order)| order.clone())
            .collect();
        state.calls.push(ListCall {
            from,
            last_id,
            served: page.iter().map(|o| o["id"].as_i64().unwrap()).collect(),
            failed: false,
        });
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut state.after_call)
            .into_iter()
            .partition(|(call, _)| *call == n);
        state.after_call = later;
        for (_, change) in now {
            change(&mut state.orders);
        }
        ResponseTemplate::new(200)
            .set_body_json(json!({ "orders": page }))
            .set_delay(self.delay)
    }
}

impl StandIn {
    /// Serves `orders` on `server`'s `orders/list`; every product is gone (404).
    async fn mount(server: &MockServer, orders: Vec<Value>, delay: Duration) -> Self {
        let stand_in = Self {
            state: Arc::new(Mutex::new(State {
                orders: orders
                    .into_iter()
                    .map(|o| (o["id"].as_i64().unwrap(), o))
                    .collect(),
                ..Default::default()
            })),
            delay,
        };
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/list"))
            .respond_with(stand_in.clone())
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/api/v1/products/"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})))
            .mount(server)
            .await;
        stand_in
    }

    fn calls(&self) -> Vec<ListCall> {
        self.state.lock().unwrap().calls.clone()
    }

    fn sweeps_started(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.last_id.is_none() && !c.failed)
            .count()
    }

    fn change(&self, change: impl FnOnce(&mut BTreeMap<i64, Value>)) {
        change(&mut self.state.lock().unwrap().orders);
    }

    fn after_call(
        &self,
        call: usize,
        change: impl FnOnce(&mut BTreeMap<i64, Value>) + Send + 'static,
    ) {
        self.state
            .lock()
            .unwrap()
            .after_call
            .push((call, Box::new(change)));
    }

    fn fail(&self, call: usize, answer: ResponseTemplate) {
        self.state.lock().unwrap().failures.insert(call, answer);
    }
}

/// A new version of an order: another status, modified now.
fn touch(orders: &mut BTreeMap<i64, Value>, id: i64, status: &str) {
    let order = orders.get_mut(&id).expect("a listed order");
    order["status"] = json!(status);
    order["date_modified"] = json!(stamp(Utc::now()));
}

/// A test app whose poller settings and shops are fast: one-second intervals, two-second
/// leases, ticks of 50 ms, a two-second overlap.
async fn fast_polling_app() -> TestApp {
    fast_polling_app_with_proms(0).await
}

/// [`fast_polling_app`] with `extra_proms` more Prom stand-ins (allowed origins) for more shops.
async fn fast_polling_app_with_proms(extra_proms: usize) -> TestApp {
    let mut app = TestApp::builder().extra_proms(extra_proms).spawn().await;
    app.settings.poll.overlap = Duration::from_secs(2);
    app.settings.poll.tick = Duration::from_millis(50);
    app.settings.poll.lease = Duration::from_secs(2);
    app.settings.poll.retry_base = Duration::from_millis(50);
    app.settings.poll.page_attempts = NonZeroU32::new(8).unwrap();
    set_interval(&app, 1).await;
    app
}

async fn set_interval(app: &TestApp, seconds: i32) {
    app.db
        .execute_unprepared(&format!("UPDATE shops SET poll_interval_s = {seconds}"))
        .await
        .expect("shop interval");
}

/// Connects another shop of the test account to its own Prom stand-in.
async fn add_shop(app: &TestApp, server: &MockServer, token: &str) -> i64 {
    provision::create_shop(
        &app.db,
        &app.keyring(),
        NewShop {
            account_id: app.account_id,
            name: format!("Shop {token}"),
            prom_url: app.vet(&server.uri()).await,
            prom_token: token.into(),
            language: Language::Uk,
            match_products_by: MatchProductsBy::Sku,
            client_matching: ClientMatching::AlwaysNew,
        },
    )
    .await
    .expect("shop")
    .shop_id
}

async fn wait_count(app: &TestApp, what: &str, sql: &str, want: i64) {
    eventually(what, WAIT, || async {
        (app.count(sql).await == want).then_some(())
    })
    .await;
}

async fn remote_status(app: &TestApp, external_id: i64) -> Option<String> {
    app.text(&format!(
        "SELECT remote_status FROM orders WHERE external_id = '{external_id}'"
    ))
    .await
}

async fn wait_status(app: &TestApp, external_id: i64, status: &str) {
    eventually(
        &format!("order {external_id} to be {status}"),
        WAIT,
        || async {
            (remote_status(app, external_id).await.as_deref() == Some(status)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn three_hundred_fifty_orders_across_four_pages_are_all_imported_once() {
    // Arrange
    let app = fast_polling_app().await;
    let prom = StandIn::mount(&app.prom, new_orders(1, 350), Duration::ZERO).await;

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_count(&app, "350 orders", "SELECT count(*) FROM orders", 350).await;
    // Two more sweeps over the same versions.
    eventually("two more sweeps", WAIT, || async {
        (prom.sweeps_started() >= 3).then_some(())
    })
    .await;
    app.wait_for_events(350).await;

    // Assert: four pages and the boundary-only page that ends the first sweep.
    let first: Vec<Option<i64>> = prom.calls().iter().take(5).map(|c| c.last_id).collect();
    assert_eq!(first, vec![None, Some(251), Some(152), Some(53), Some(1)]);
    assert_eq!(prom.calls()[4].served, vec![1]);
    assert_eq!(prom.calls()[5].last_id, None, "the first sweep ended there");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 350);
    assert_eq!(
        app.count("SELECT count(DISTINCT external_id) FROM orders")
            .await,
        350
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 350);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM inbound_events WHERE outcome = 'applied' AND source = 'poll'"
        )
        .await,
        350
    );
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE poll_watermark IS NOT NULL")
            .await,
        1
    );
    stop.cancel();
    poller.await.unwrap().unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE lease_owner IS NOT NULL")
            .await,
        0,
        "a graceful stop releases the leases"
    );
}

#[tokio::test]
async fn an_order_that_turns_paid_between_two_sweeps_is_imported_then_updated() {
    // Arrange
    let app = fast_polling_app().await;
    let prom = StandIn::mount(&app.prom, new_orders(5001, 1), Duration::ZERO).await;
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_status(&app, 5001, "pending").await;

    // Act: Prom's payment arrives between two sweeps.
    prom.change(|orders| touch(orders, 5001, "paid"));

    // Assert
    wait_status(&app, 5001, "paid").await;
    let sweeps = prom.sweeps_started();
    eventually("another sweep", WAIT, || async {
        (prom.sweeps_started() > sweeps + 1).then_some(())
    })
    .await;
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
    stop.cancel();
    poller.await.unwrap().unwrap();
}

#[tokio::test]
async fn orders_changed_or_created_while_a_sweep_walks_the_pages_are_not_missed() {
    // Arrange: 250 orders; while the first sweep is between its second and third page, an
    // order already passed changes, an order not yet reached changes, and a new order
    // appears above the cursor.
    let app = fast_polling_app().await;
    let prom = StandIn::mount(&app.prom, new_orders(1, 250), Duration::from_millis(100)).await;
    prom.after_call(1, |orders| {
        touch(orders, 240, "received");
        touch(orders, 20, "canceled");
        let now = Utc::now();
        orders.insert(1000, prom_order(1000, "pending", now, now));
    });

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");

    // Assert
    wait_count(&app, "251 orders", "SELECT count(*) FROM orders", 251).await;
    wait_status(&app, 240, "received").await;
    wait_status(&app, 20, "canceled").await;
    assert_eq!(remote_status(&app, 1000).await.as_deref(), Some("pending"));
    assert_eq!(
        app.count("SELECT count(DISTINCT external_id) FROM orders")
            .await,
        251
    );
    stop.cancel();
    poller.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_poller_killed_mid_sweep_is_replaced_and_nothing_is_missed_or_duplicated() {
    // Arrange: slow pages, so the kill lands mid-sweep.
    let app = fast_polling_app().await;
    let prom = StandIn::mount(&app.prom, new_orders(1, 350), Duration::from_millis(300)).await;
    let (_, first) = app.spawn_poller("poller-a");
    eventually("two pages served", WAIT, || async {
        (prom.calls().len() >= 2).then_some(())
    })
    .await;

    // Act: kill it abruptly (no lease release, no watermark), start another one.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE poll_watermark IS NULL")
            .await,
        1,
        "an unfinished sweep never moves the watermark"
    );
    let killed_at = prom.calls().len();
    let (stop, second) = app.spawn_poller("poller-b");

    // Assert
    wait_count(&app, "350 orders", "SELECT count(*) FROM orders", 350).await;
    app.wait_for_events(350).await;
    let calls = prom.calls();
    let repeat = &calls[killed_at..];
    assert_eq!(repeat[0].last_id, None, "the sweep starts over");
    assert_eq!(repeat[0].from, calls[0].from, "from the same watermark");
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 350);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE outcome = 'applied'")
            .await,
        350
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 350);
    eventually("the watermark", WAIT, || async {
        (app.count("SELECT count(*) FROM shops WHERE poll_watermark IS NOT NULL")
            .await
            == 1)
            .then_some(())
    })
    .await;
    stop.cancel();
    second.await.unwrap().unwrap();
}

#[tokio::test]
async fn two_pollers_on_the_same_shops_fetch_each_page_once() {
    // Arrange: three shops of 150 orders each (created after the shops were connected),
    // one sweep per shop (a long interval).
    let mut app = fast_polling_app_with_proms(2).await;
    let mut servers = Vec::new();
    for (k, server) in (2..=3_i64).zip(std::mem::take(&mut app.extra_proms)) {
        add_shop(&app, &server, &format!("token-{k}")).await;
        servers.push((k, server));
    }
    let mut stand_ins = vec![
        StandIn::mount(
            &app.prom,
            new_orders(10_001, 150),
            Duration::from_millis(50),
        )
        .await,
    ];
    for (k, server) in &servers {
        stand_ins.push(
            StandIn::mount(
                server,
                new_orders(k * 10_000 + 1, 150),
                Duration::from_millis(50),
            )
            .await,
        );
    }
    set_interval(&app, 3600).await;

    // Act
    let (stop_a, a) = app.spawn_poller("poller-a");
    let (stop_b, b) = app.spawn_poller("poller-b");
    wait_count(&app, "450 orders", "SELECT count(*) FROM orders", 450).await;
    app.wait_for_events(450).await;

    // Assert: per shop, pages of 100, 51 (boundary again) and the boundary alone, once.
    for prom in &stand_ins {
        let pages: Vec<Option<i64>> = prom.calls().iter().map(|c| c.last_id).collect();
        assert_eq!(pages.len(), 3, "{pages:?}");
        assert_eq!(pages.iter().collect::<HashSet<_>>().len(), 3, "{pages:?}");
    }
    let published = app.log_event_ids(451).await;
    assert_eq!(published.len(), 450, "each order published once");
    assert_eq!(published.iter().collect::<HashSet<_>>().len(), 450);
    stop_a.cancel();
    stop_b.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
}

#[tokio::test]
async fn prom_rate_limits_and_server_errors_delay_the_sweep_but_it_completes() {
    // Arrange: the first page is refused three times (429 with Retry-After, 503, 502),
    // the second once (429 without a hint).
    let app = fast_polling_app().await;
    let prom = StandIn::mount(&app.prom, new_orders(1, 120), Duration::ZERO).await;
    prom.fail(
        0,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(json!({"error": "Too many requests"})),
    );
    prom.fail(1, ResponseTemplate::new(503));
    prom.fail(2, ResponseTemplate::new(502));
    prom.fail(4, ResponseTemplate::new(429));

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");

    // Assert
    wait_count(&app, "120 orders", "SELECT count(*) FROM orders", 120).await;
    app.wait_for_events(120).await;
    let calls = prom.calls();
    assert_eq!(calls.iter().filter(|c| c.failed).count(), 4);
    assert_eq!(calls[3].last_id, None, "the first page, at the fourth try");
    assert_eq!(calls[5].last_id, calls[4].last_id, "the refused page again");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 120);
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE token_rejected_at IS NOT NULL")
            .await,
        0
    );
    stop.cancel();
    poller.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_order_listed_without_date_modified_is_imported_with_a_warning_on_the_sync_log() {
    // Arrange: a new order Prom lists without `date_modified`, next to a dated one.
    let app = fast_polling_app().await;
    let mut orders = new_orders(1, 2);
    orders[0].as_object_mut().unwrap().remove("date_modified");
    let prom = StandIn::mount(&app.prom, orders, Duration::ZERO).await;

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_status(&app, 1, "pending").await;
    wait_status(&app, 2, "pending").await;
    eventually("another sweep", WAIT, || async {
        (prom.sweeps_started() >= 2).then_some(())
    })
    .await;
    stop.cancel();
    poller.await.unwrap().unwrap();

    // Assert: imported once, and the sync log says what stood in for the missing date.
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
    let detail = event_column(&app, 1, "detail").await.unwrap_or_default();
    assert!(
        detail.contains("Prom sent no date_modified; the order's creation time was used"),
        "{detail}"
    );
    assert_eq!(
        event_column(&app, 1, "outcome").await.as_deref(),
        Some("applied")
    );
    let dated = event_column(&app, 2, "detail").await.unwrap_or_default();
    assert!(!dated.contains("date_modified"), "{dated}");
}

/// `column` of the inbound event that imported the order with Prom id `external_id`.
async fn event_column(app: &TestApp, external_id: i64, column: &str) -> Option<String> {
    app.text(&format!(
        "SELECT e.{column} FROM inbound_events e JOIN orders o ON o.id = e.order_id \
         WHERE o.external_id = '{external_id}'"
    ))
    .await
}

#[tokio::test]
async fn an_orders_list_answered_200_with_an_error_is_a_failed_sweep_not_an_empty_page() {
    // Arrange: Prom refuses every listing, in a 200.
    let app = fast_polling_app().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/orders/list"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"error": "Incorrect message id"})),
        )
        .mount(&app.prom)
        .await;

    // Act: two sweeps, the second started only because the first failed.
    let (stop, poller) = app.spawn_poller("poller-a");
    eventually("a second sweep", WAIT, || async {
        let calls = app.prom.received_requests().await.unwrap_or_default();
        (calls.len() >= 2).then_some(())
    })
    .await;
    stop.cancel();
    poller.await.unwrap().unwrap();

    // Assert: the watermark never moved past what was never listed.
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE poll_watermark IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM shops WHERE token_rejected_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_shop_whose_token_prom_rejects_is_flagged_and_the_other_shops_keep_going() {
    // Arrange: a second shop whose Prom answers 401 to everything.
    let mut app = fast_polling_app_with_proms(1).await;
    let good = StandIn::mount(&app.prom, new_orders(1, 50), Duration::ZERO).await;
    let bad_prom = app.extra_proms.remove(0);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "Invalid token"})))
        .mount(&bad_prom)
        .await;
    let bad = add_shop(&app, &bad_prom, "expired-token").await;
    set_interval(&app, 1).await;

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");

    // Assert
    wait_count(&app, "50 orders", "SELECT count(*) FROM orders", 50).await;
    wait_count(
        &app,
        "the bad shop flagged",
        &format!("SELECT count(*) FROM shops WHERE id = {bad} AND token_rejected_at IS NOT NULL"),
        1,
    )
    .await;
    let sweeps = good.sweeps_started();
    eventually("two more sweeps of the good shop", WAIT, || async {
        (good.sweeps_started() >= sweeps + 2).then_some(())
    })
    .await;
    let bad_calls = bad_prom.received_requests().await.unwrap_or_default();
    assert_eq!(bad_calls.len(), 1, "a flagged shop is not polled again");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders WHERE shop_id = {bad}"
        ))
        .await,
        0
    );
    stop.cancel();
    poller.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_new_shop_imports_only_orders_created_since_it_was_connected_and_never_drafts() {
    // Arrange: an old order modified after the connection, a draft, and a new order.
    let app = fast_polling_app().await;
    let now = Utc::now();
    let orders = vec![
        prom_order(1, "received", now - chrono::Duration::hours(3), now),
        prom_order(2, "draft", now, now),
        prom_order(3, "pending", now, now),
    ];
    let prom = StandIn::mount(&app.prom, orders, Duration::ZERO).await;

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_status(&app, 3, "pending").await;
    eventually("another sweep", WAIT, || async {
        (prom.sweeps_started() >= 2).then_some(())
    })
    .await;

    // Assert
    assert_eq!(app.count("SELECT count(*) FROM orders").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);
    stop.cancel();
    poller.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreadable_order_just_below_the_boundary_does_not_end_the_sweep_early() {
    // Arrange: pages of two, and order 4's `date_modified` is not a date string, so the
    // page after the boundary (5) holds nothing else readable.
    let mut app = fast_polling_app().await;
    app.settings.poll.page_size = NonZeroU32::new(2).unwrap();
    let mut orders = new_orders(1, 6);
    orders[3]["date_modified"] = json!(1_733_000_000);
    let prom = StandIn::mount(&app.prom, orders, Duration::ZERO).await;

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_count(&app, "five orders", "SELECT count(*) FROM orders", 5).await;
    eventually("another sweep", WAIT, || async {
        (prom.sweeps_started() >= 2).then_some(())
    })
    .await;
    stop.cancel();
    poller.await.unwrap().unwrap();

    // Assert: the first sweep stepped over order 4 and on down to order 1.
    let first: Vec<Option<i64>> = prom.calls().iter().take(6).map(|c| c.last_id).collect();
    assert_eq!(first, [None, Some(5), Some(4), Some(3), Some(2), Some(1)]);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 5);
    assert_eq!(remote_status(&app, 4).await, None);
}

/// The `last_id` of a recorded `orders/list` call of the simulator.
fn last_id_of(call: &promsync_simulator::Call) -> Option<i64> {
    reqwest::Url::parse(&format!("http://prom/?{}", call.query))
        .expect("a query string")
        .query_pairs()
        .find(|(k, _)| k == "last_id")
        .map(|(_, v)| v.parse().expect("a numeric last_id"))
}

/// The poller, `page_size` orders a page, against the simulator as Prom with `orders`
/// orders placed over the last days: every order but the drafts is imported exactly once,
/// and the first sweep asks for `pages` pages, each lower than the last, then ends.
async fn the_simulator_is_swept_once_per_order(page_size: u32, orders: usize, pages: usize) {
    // Arrange
    let mut app = fast_polling_app().await;
    app.settings.poll.page_size = NonZeroU32::new(page_size).unwrap();
    app.settings.poll.backfill = Duration::from_secs(7 * 24 * 3600);
    let sim = app
        .start_simulator(promsync_simulator::SimConfig {
            orders,
            ..Default::default()
        })
        .await;
    let wanted: Vec<i64> = sim
        .order_ids()
        .into_iter()
        .filter(|id| sim.order(*id).unwrap()["status"] != "draft")
        .collect();
    let wanted_count = i64::try_from(wanted.len()).unwrap();
    let lists = || {
        sim.calls()
            .into_iter()
            .filter(|c| c.path == "/api/v1/orders/list" && c.status == 200)
            .collect::<Vec<_>>()
    };

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_count(
        &app,
        "every order but the drafts",
        "SELECT count(*) FROM inbound_events",
        wanted_count,
    )
    .await;
    eventually("a second sweep", WAIT, || async {
        (lists().iter().filter(|c| last_id_of(c).is_none()).count() >= 2).then_some(())
    })
    .await;
    stop.cancel();
    poller.await.unwrap().unwrap();

    // Assert
    let first_sweep: Vec<Option<i64>> = lists()
        .iter()
        .map(last_id_of)
        .enumerate()
        .take_while(|(i, last_id)| *i == 0 || last_id.is_some())
        .map(|(_, last_id)| last_id)
        .collect();
    assert_eq!(first_sweep.len(), pages, "{first_sweep:?}");
    assert!(
        first_sweep.windows(2).skip(1).all(|w| w[0] > w[1]),
        "{first_sweep:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events").await,
        wanted_count
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT external_order_id) FROM inbound_events")
            .await,
        wanted_count
    );
    assert_eq!(app.count("SELECT count(*) FROM orders").await, wanted_count);
}

#[tokio::test]
async fn pages_of_two_against_the_inclusive_last_id_import_every_order_once() {
    // 30 orders, one new a page: the first page and 29 more, the last holding only the
    // boundary.
    the_simulator_is_swept_once_per_order(2, 30, 30).await;
}

#[tokio::test]
async fn pages_of_the_default_size_against_the_inclusive_last_id_import_every_order_once() {
    // 130 orders by 100: two pages and the boundary alone.
    the_simulator_is_swept_once_per_order(100, 130, 3).await;
}

#[tokio::test]
async fn a_poller_refills_its_free_slots_as_sweeps_end_instead_of_waiting_for_the_next_tick() {
    // Arrange: twelve shops on one Prom, a poller sweeping two at a time whose tick comes
    // once an hour: only refilling as sweeps end can reach the ten others.
    let mut app = fast_polling_app().await;
    for k in 2..=12 {
        add_shop(&app, &app.prom, &format!("token-{k}")).await;
    }
    let prom = StandIn::mount(&app.prom, Vec::new(), Duration::ZERO).await;
    set_interval(&app, 3600).await;
    app.settings.poll.tick = Duration::from_secs(3600);
    app.settings.poll.concurrency = std::num::NonZeroUsize::new(2).unwrap();

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_count(
        &app,
        "every shop swept",
        "SELECT count(*) FROM shops WHERE poll_watermark IS NOT NULL",
        12,
    )
    .await;

    // Assert: one sweep each, none repeated.
    assert_eq!(prom.sweeps_started(), 12);
    stop.cancel();
    poller.await.unwrap().unwrap();
}

/// Shop ids taken by `leases` now, at most `limit`, none of `sweeping`.
async fn take_due(leases: &Leases, limit: u64, sweeping: &[i64]) -> HashSet<i64> {
    leases
        .take_due(Utc::now(), limit, sweeping)
        .await
        .expect("taking due shops")
        .into_iter()
        .map(|taken| taken.shop.id)
        .collect()
}

#[tokio::test]
async fn a_poller_never_takes_a_shop_it_is_sweeping_a_second_time() {
    // Arrange: eight shops; the poller holds the leases of five, which stay takeable by
    // their owner (a restarted poller resumes them).
    let app = fast_polling_app().await;
    for k in 2..=8 {
        add_shop(&app, &app.prom, &format!("token-{k}")).await;
    }
    let leases = Leases::new(app.db.clone(), "poller-a".into(), Duration::from_secs(30));
    let sweeping: Vec<i64> = take_due(&leases, 5, &[]).await.into_iter().collect();

    // Act
    let again = take_due(&leases, 8, &sweeping).await;

    // Assert
    assert_eq!(sweeping.len(), 5);
    assert_eq!(again.len(), 3, "only the three others");
    assert!(again.iter().all(|id| !sweeping.contains(id)), "{again:?}");
}

#[tokio::test]
async fn pollers_taking_due_shops_at_the_same_moment_never_take_the_same_shop() {
    // Arrange: forty shops, four pollers each asking for twenty at once, many times.
    let app = fast_polling_app().await;
    for k in 2..=40 {
        add_shop(&app, &app.prom, &format!("token-{k}")).await;
    }
    let pollers: Vec<Leases> = (0..4)
        .map(|p| {
            Leases::new(
                app.db.clone(),
                format!("poller-{p}"),
                Duration::from_secs(30),
            )
        })
        .collect();

    for round in 0..5 {
        // Act
        let taken = futures::future::join_all(pollers.iter().map(|l| take_due(l, 20, &[]))).await;

        // Assert: disjoint, and every shop taken by someone.
        let all: Vec<i64> = taken.iter().flatten().copied().collect();
        let distinct: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            distinct.len(),
            "round {round}: a shop taken twice"
        );
        assert_eq!(distinct.len(), 40, "round {round}");
        for leases in &pollers {
            leases.release_all().await.expect("releasing");
        }
    }
}

#[tokio::test]
async fn a_sweep_that_starts_late_schedules_the_next_one_interval_after_the_shop_was_due() {
    // Arrange: the shop fell due five seconds ago (its poller was busy), an hour's interval.
    let app = fast_polling_app().await;
    StandIn::mount(&app.prom, Vec::new(), Duration::ZERO).await;
    set_interval(&app, 3600).await;
    let due = Utc::now() - chrono::Duration::seconds(5);
    entity::shops::Entity::update_many()
        .col_expr(
            entity::shops::Column::LeaseUntil,
            sea_orm::sea_query::Expr::value(due),
        )
        .exec(&app.db)
        .await
        .expect("scheduling the shop");

    // Act
    let (stop, poller) = app.spawn_poller("poller-a");
    wait_count(
        &app,
        "the sweep complete",
        "SELECT count(*) FROM shops WHERE poll_watermark IS NOT NULL",
        1,
    )
    .await;
    stop.cancel();
    poller.await.unwrap().unwrap();

    // Assert: due again an hour after it was due, not an hour after the sweep began.
    let shop = entity::shops::Entity::find()
        .one(&app.db)
        .await
        .expect("reading the shop")
        .expect("the shop");
    assert_eq!(
        shop.lease_until.map(|t| t.timestamp_micros()),
        Some((due + chrono::Duration::seconds(3600)).timestamp_micros())
    );
}
