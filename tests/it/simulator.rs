//! The Prom simulator over HTTP, driven by promsync's own Prom client: it pages like Prom
//! (an inclusive `last_id`, no cap on `limit`), refuses what Prom refuses in Prom's shape, records what it was told, and its push mode
//! feeds promsync's webhook with notifications promsync imports.

use std::time::Duration;

use chrono::Utc;
use promsync::{
    poll::cursor::Cursor,
    prom::{
        origin::{OriginPolicy, PromOrigin},
        OrderListQuery, PromClient, PromCredentials, PromError, PromStatus, SetStatusRequest,
    },
};
use promsync_simulator::{Faults, PushConfig, SimConfig};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::support::{eventually, prom::start_simulator, TestApp};

fn creds(url: &str, token: &str) -> PromCredentials {
    PromCredentials {
        base_url: url.parse().unwrap(),
        token: promsync::keyring::StoredSecret::plain(token),
        language: "uk".into(),
    }
}

/// promsync's client, allowed to call the simulator at `url` (plain http on loopback).
fn client(url: &str) -> PromClient {
    let policy = OriginPolicy::new([PromOrigin::parse(url).unwrap()]);
    PromClient::try_new(Duration::from_secs(5), policy)
        .unwrap()
        .with_rate(std::num::NonZeroU32::new(100).unwrap())
}

/// The ids promsync's poll cursor visits walking the simulator's pages of `limit`, and
/// the `last_id` of every page asked for.
async fn walk(url: &str, limit: u32) -> (Vec<i64>, Vec<Option<i64>>) {
    let (creds, prom) = (creds(url, "t"), client(url));
    let mut cursor = Cursor::new();
    let (mut seen, mut asked) = (Vec::new(), Vec::new());
    while !cursor.is_done() {
        asked.push(cursor.last_id());
        let query = OrderListQuery {
            limit: Some(limit),
            last_id: cursor.last_id(),
            ..Default::default()
        };
        let page = prom.list_orders(&creds, &query).await.unwrap();
        let ids: Vec<i64> = page.iter().map(|o| o.id).collect();
        seen.extend(cursor.accept(&ids).into_iter().map(|i| ids[i]));
    }
    (seen, asked)
}

#[tokio::test]
async fn the_last_id_cursor_is_inclusive_and_promsyncs_cursor_walks_every_order_once() {
    // Arrange
    let (url, sim) = start_simulator(SimConfig {
        orders: 25,
        ..Default::default()
    });
    let ids = sim.order_ids();

    // Act
    let (by_two, asked) = walk(&url, 2).await;
    let (by_ten, _) = walk(&url, 10).await;
    let (by_default, _) = walk(&url, 100).await;
    let boundary = client(&url)
        .list_orders(
            &creds(&url, "t"),
            &OrderListQuery {
                limit: Some(2),
                last_id: Some(ids[3]),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // Assert: by descending id, each once; pages of two move down one order at a time.
    assert_eq!(by_two, ids);
    assert_eq!(by_ten, ids);
    assert_eq!(by_default, ids);
    assert_eq!(asked.len(), 25, "{asked:?}");
    assert_eq!(
        boundary.iter().map(|o| o.id).collect::<Vec<_>>(),
        [ids[3], ids[4]]
    );
}

#[tokio::test]
async fn a_limit_above_a_hundred_is_honoured_unless_the_simulator_is_told_to_cap_pages() {
    // Arrange
    let (url, sim) = start_simulator(SimConfig {
        orders: 130,
        ..Default::default()
    });
    let (creds, prom) = (creds(&url, "t"), client(&url));
    let query = OrderListQuery {
        limit: Some(130),
        ..Default::default()
    };

    // Act
    let whole = prom.list_orders(&creds, &query).await.unwrap();
    sim.set_faults(Faults {
        max_page: Some(100),
        ..Default::default()
    });
    let capped = prom.list_orders(&creds, &query).await.unwrap();
    let (walked, _) = walk(&url, 130).await;

    // Assert: a short page is not the last one.
    assert_eq!(whole.len(), 130);
    assert_eq!(capped.len(), 100);
    assert_eq!(walked, sim.order_ids());
}

#[tokio::test]
async fn a_change_on_prom_bumps_date_modified_and_shows_in_the_last_modified_filter() {
    // Arrange
    let (url, sim) = start_simulator(SimConfig {
        orders: 10,
        ..Default::default()
    });
    let id = sim.order_ids()[5];
    let before = sim.order(id).unwrap();
    let http = reqwest::Client::new();

    // Act: the seller halves a quantity and accepts the order.
    let changed: Value = http
        .post(format!("{url}/_sim/orders/{id}"))
        .json(&json!({"status": "received", "quantities": [4.0]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recent = client(&url)
        .list_orders(
            &creds(&url, "t"),
            &OrderListQuery {
                last_modified_from: Some(Utc::now() - chrono::Duration::seconds(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // Assert
    let order = &changed["order"];
    assert_eq!(order["status"], "received");
    assert_eq!(order["products"][0]["quantity"], 4.0);
    assert!(order["date_modified"].as_str() > before["date_modified"].as_str());
    assert_ne!(order["price"], before["price"]);
    assert_eq!(recent.iter().map(|o| o.id).collect::<Vec<_>>(), [id]);
    assert_eq!(recent[0].prom_status().unwrap(), PromStatus::Received);
    assert!(recent[0].total().is_ok(), "the new total parses");
}

#[tokio::test]
async fn set_status_refusals_come_in_proms_error_shape_and_every_call_is_recorded() {
    // Arrange
    let (url, sim) = start_simulator(SimConfig {
        orders: 3,
        ..Default::default()
    });
    let id = sim.order_ids()[0];
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{url}/api/v1/orders/set_status"))
            .bearer_auth("t")
            .json(&body)
            .send()
    };

    // Act
    let unknown = post(json!({"status": "shipped", "ids": [id]}))
        .await
        .unwrap();
    let unknown_status = unknown.status();
    let unknown: Value = unknown.json().await.unwrap();
    let no_text =
        post(json!({"status": "canceled", "ids": [id], "cancellation_reason": "another"}))
            .await
            .unwrap();
    let no_text_status = no_text.status();
    let no_text: Value = no_text.json().await.unwrap();
    let ok: Value = post(json!({
        "status": "canceled", "ids": [id, 1],
        "cancellation_reason": "another", "cancellation_text": "Немає в наявності",
    }))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let recorded: Value = http
        .get(format!("{url}/_sim/calls?path=/api/v1/orders/set_status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Assert
    assert_eq!(unknown_status, 400);
    assert!(unknown["error"].as_str().unwrap().contains("shipped"));
    // A refusal is a 200 with `error` and nothing else.
    assert_eq!(no_text_status, 200);
    assert_eq!(no_text.as_object().unwrap().len(), 1, "{no_text}");
    assert!(no_text["error"]
        .as_str()
        .unwrap()
        .contains("cancellation_text"));
    // Unknown ids are left out of processed_ids, as Prom does.
    assert_eq!(ok, json!({"processed_ids": [id]}));
    let canceled = sim.order(id).unwrap();
    assert_eq!(canceled["status"], "canceled");
    // As on real orders: a `cancellation` object, no top-level reason code.
    assert_eq!(
        canceled["cancellation"],
        json!({"title": "Немає в наявності", "initiator": "seller"})
    );
    assert!(canceled.get("cancellation_reason").is_none());
    let calls = recorded["calls"].as_array().unwrap();
    assert_eq!(
        calls
            .iter()
            .map(|c| c["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [400, 200, 200]
    );
    assert_eq!(calls[0]["body"]["status"], "shipped");
}

#[tokio::test]
async fn promsyncs_client_reads_a_refusal_from_the_simulator_as_prom_s_message() {
    // Arrange: the shop has no custom status 999.
    let (url, sim) = start_simulator(SimConfig {
        orders: 1,
        ..Default::default()
    });
    let id = sim.order_ids()[0];
    let before = sim.order(id);

    // Act
    let refused = client(&url)
        .set_status(
            &creds(&url, "t"),
            &SetStatusRequest {
                ids: vec![id],
                status: PromStatus::Custom(999),
                cancellation: None,
            },
        )
        .await
        .unwrap_err();

    // Assert
    assert_eq!(refused, PromError::Api("Unknown custom status 999".into()));
    assert!(!refused.is_transient());
    assert_eq!(sim.order(id), before);
}

#[tokio::test]
async fn promsyncs_client_reads_the_simulators_errors_as_typed_errors() {
    // Arrange: only "good" is a valid token.
    let (url, sim) = start_simulator(SimConfig {
        orders: 1,
        tokens: vec!["good".into()],
        ..Default::default()
    });
    let id = sim.order_ids()[0];
    let prom = client(&url);

    // Act
    let bad_token = prom.get_order(&creds(&url, "bad"), id).await.unwrap_err();
    let missing = prom.get_order(&creds(&url, "good"), 1).await.unwrap_err();
    let product = prom.get_product(&creds(&url, "good"), 2_555_900_001).await;
    let deleted = prom
        .get_product(
            &creds(&url, "good"),
            promsync_simulator::generate::DELETED_PRODUCT_ID,
        )
        .await;

    // Assert
    assert_eq!(bad_token, PromError::Unauthorized(401));
    assert_eq!(missing, PromError::NotFound);
    let product = product.unwrap().expect("a catalogue product");
    assert_eq!(product.category_name("uk"), Some("Шкарпетки"));
    assert_eq!(deleted.unwrap(), None);
}

#[tokio::test]
async fn push_mode_sends_signed_notifications_that_promsync_accepts_and_imports() {
    // Arrange
    let mut app = TestApp::builder().spawn().await;
    let webhook = app.webhook_url(app.shop.shop_id);
    let secret = app.shop.webhook_secret.clone();

    // Act: five notifications at 20/s, starting from an empty shop.
    let sim = app
        .start_simulator(SimConfig {
            orders: 0,
            push: Some(PushConfig {
                url: webhook,
                secret: SecretString::from(secret),
                rate_per_s: 20.0,
                count: Some(5),
                thin: false,
            }),
            ..Default::default()
        })
        .await;
    app.wait_for_events(5).await;

    // Assert
    let stats = eventually("five pushes counted", Duration::from_secs(10), || async {
        let stats = sim.stats();
        (stats["pushed"] == 5).then_some(stats)
    })
    .await;
    assert_eq!(stats["push_failures"], 0);
    for (outcome, detail) in app.outcomes().await {
        assert_ne!(outcome, promsync::domain::Outcome::Rejected, "{detail:?}");
    }
    assert!(app.count("SELECT count(*) FROM orders").await >= 1);
}
