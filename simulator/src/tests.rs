//! The simulator's listing and refusals held to what Prom documents (docs/PROM_API.md):
//! an inclusive `last_id`, no cap on `limit` unless one is asked for, and refusals in
//! Prom's one error shape.

use actix_web::{body::to_bytes, http::StatusCode};
use serde_json::{json, Value};

use super::*;

fn shop(orders: usize) -> SimHandle {
    SimHandle::new(&SimConfig {
        orders,
        ..Default::default()
    })
}

fn listed(sim: &SimHandle, limit: Option<usize>, last_id: Option<i64>) -> Vec<i64> {
    let query = ListQuery {
        limit,
        last_id,
        ..Default::default()
    };
    let list = sim.list_orders(&query).expect("a valid query");
    list["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["id"].as_i64().expect("an id"))
        .collect()
}

async fn answer(response: HttpResponse) -> (StatusCode, Value) {
    let status = response.status();
    let body = to_bytes(response.into_body()).await.expect("a body");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

#[test]
fn last_id_is_inclusive_as_prom_describes_it() {
    // Arrange
    let sim = shop(6);
    let ids = sim.order_ids();

    // Act
    let page = listed(&sim, Some(2), Some(ids[2]));

    // Assert: ids "no higher than" last_id, the boundary first.
    assert_eq!(page, [ids[2], ids[3]]);
}

#[test]
fn limit_has_no_cap_unless_one_is_asked_for() {
    // Arrange
    let sim = shop(150);

    // Act
    let uncapped = listed(&sim, Some(150), None);
    sim.set_faults(Faults {
        max_page: Some(100),
        ..Default::default()
    });
    let capped = listed(&sim, Some(150), None);

    // Assert
    assert_eq!(uncapped.len(), 150);
    assert_eq!(capped, uncapped[..100]);
}

#[actix_web::test]
async fn a_refused_status_change_is_a_200_with_prom_s_error_shape_and_changes_nothing() {
    // Arrange
    let sim = shop(1);
    let id = sim.order_ids()[0];
    let before = sim.order(id);

    // Act
    let (status, body) = answer(sim.set_status(
        &json!({"status": "canceled", "ids": [id], "cancellation_reason": "another"}),
        false,
    ))
    .await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("cancellation_text"));
    assert_eq!(sim.order(id), before);
}

#[actix_web::test]
async fn a_malformed_status_change_is_a_400_with_prom_s_error_shape() {
    // Arrange
    let sim = shop(1);
    let id = sim.order_ids()[0];

    // Act
    let (status, body) =
        answer(sim.set_status(&json!({"status": "shipped", "ids": [id]}), false)).await;

    // Assert
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("shipped"),
        "{body}"
    );
}

#[actix_web::test]
async fn an_order_can_be_set_to_draft() {
    // Arrange
    let sim = shop(1);
    let id = sim.order_ids()[0];

    // Act
    let (status, body) =
        answer(sim.set_status(&json!({"status": "draft", "ids": [id]}), false)).await;

    // Assert
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"processed_ids": [id]}))
    );
    assert_eq!(sim.order(id).unwrap()["status"], "draft");
}

#[actix_web::test]
async fn a_missing_order_and_an_unknown_path_answer_prom_s_html_404_page() {
    // Arrange
    let sim = shop(1);
    let app = actix_web::test::init_service(
        App::new()
            .app_data(web::Data::new(sim))
            .default_service(web::to(api)),
    )
    .await;

    for uri in ["/api/v1/orders/1", "/api/v1/no/such/path"] {
        // Act
        let request = actix_web::test::TestRequest::get()
            .uri(uri)
            .insert_header(("Authorization", "Bearer t"))
            .to_request();
        let response = actix_web::test::call_service(&app, request).await;

        // Assert
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "{uri}: {content_type}"
        );
    }
}
