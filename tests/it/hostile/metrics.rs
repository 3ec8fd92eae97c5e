//! `/metrics` holds every tenant's totals: with `PROMSYNC_METRICS_LISTEN` set it is served
//! only on that listener, never on the public one.

use crate::support::TestApp;

#[tokio::test]
async fn with_a_metrics_listener_the_public_port_has_no_metrics() {
    // Arrange
    let mut app = TestApp::builder().prom_products_missing().spawn().await;
    app.restart_with(|s| s.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");

    // Act
    let public = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let private = app
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(public.status(), 404);
    assert_eq!(private.status(), 200);
    assert!(private
        .text()
        .await
        .unwrap()
        .contains("promsync_outbox_pending"));
}

#[tokio::test]
async fn without_a_metrics_listener_metrics_stay_on_the_main_port() {
    // Arrange
    let app = TestApp::builder().prom_products_missing().spawn().await;

    // Act
    let answer = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(answer.status(), 200);
    assert!(app.metrics_address.is_none());
}
