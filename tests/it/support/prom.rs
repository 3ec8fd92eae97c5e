//! Prom as the tests see it: real order documents (the fixtures), the wiremock stand-in
//! every `TestApp` talks to, and the Prom simulator for tests that need a Prom which keeps
//! state (statuses set, orders listed).

use promsync_simulator::{SimConfig, SimHandle, Simulator};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path_regex},
    Mock, ResponseTemplate,
};

use super::app::TestApp;

pub const PENDING_ORDER: &str =
    include_str!("../../fixtures/prom/order-pending-cash-on-delivery.json");
pub const CUSTOM_STATUS_ORDER: &str =
    include_str!("../../fixtures/prom/order-custom-status-prom-payment.json");

/// The `order` object of a fixture document.
pub fn fixture_order(document: &str) -> Value {
    serde_json::from_str::<Value>(document).expect("fixture JSON")["order"].clone()
}

/// Runs a built simulator on the test's runtime; answers its URL and its handle.
fn run(sim: Simulator) -> (String, SimHandle) {
    let url = sim.url();
    let handle = sim.handle();
    tokio::spawn(sim.run_until_stopped());
    (url, handle)
}

/// A simulator of its own (no app), on a free port.
pub fn start_simulator(config: SimConfig) -> (String, SimHandle) {
    run(Simulator::build(config).expect("simulator"))
}

impl TestApp {
    /// Mounts Prom's answer for `GET /api/v1/products/{id}` (any id not mounted is 404).
    pub async fn prom_product(&self, id: i64, product: Value) {
        Mock::given(method("GET"))
            .and(path_regex(format!("^/api/v1/products/{id}$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "product": product })))
            .mount(&self.prom)
            .await;
    }

    /// Mounts Prom's answer for `GET /api/v1/order_status_options/list`; an answer
    /// mounted earlier and not used up is given first.
    pub async fn prom_status_options(&self, answer: ResponseTemplate) {
        self.status_options_mock(answer).mount(&self.prom).await;
    }

    /// Like `prom_status_options`, for the next call only.
    pub async fn prom_status_options_once(&self, answer: ResponseTemplate) {
        self.status_options_mock(answer)
            .up_to_n_times(1)
            .mount(&self.prom)
            .await;
    }

    fn status_options_mock(&self, answer: ResponseTemplate) -> Mock {
        Mock::given(method("GET"))
            .and(path_regex("^/api/v1/order_status_options/list$"))
            .respond_with(answer)
    }

    /// Answers every product lookup 404, so imports never wait on a product fetch.
    pub async fn prom_products_missing(&self) {
        Mock::given(method("GET"))
            .and(path_regex("^/api/v1/products/"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})))
            .with_priority(200)
            .mount(&self.prom)
            .await;
    }

    /// Starts the Prom simulator in-process (on the port reserved for it, whatever
    /// `config.listen` says) and points the shop at it.
    pub async fn start_simulator(&mut self, config: SimConfig) -> SimHandle {
        let listener = self
            .sim_listener
            .take()
            .expect("one simulator per test app");
        let (url, handle) = run(Simulator::build_on(listener, config).expect("simulator"));
        self.db
            .execute_unprepared(&format!(
                "UPDATE shops SET prom_url = '{url}' WHERE id = {}",
                self.shop.shop_id
            ))
            .await
            .expect("pointing the shop at the simulator");
        handle
    }
}
