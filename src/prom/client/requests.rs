//! One [`PromClient`] method per Prom endpoint promsync calls (`orders/list`,
//! `orders/{id}`, `products/{id}`, `orders/set_status`, `delivery/save_declaration_id`), with the request and answer types
//! that are the client's own; the order and product documents are in `prom::order`.

use chrono::{DateTime, Utc};
use reqwest::Method;

use super::{api_url, error::prom_message, PromClient, PromCredentials, PromError};
use crate::{
    domain::waybill::Waybill,
    prom::order::{OrderEnvelope, OrderList, ProductEnvelope, PromOrder, PromProduct, PromStatus},
};

/// Query of `GET /orders/list`. Dates go out as UTC `YYYY-MM-DDTHH:MM:SS`, as Prom wants;
/// sub-seconds are dropped, which only widens a `*_from` window. Every listing asks for
/// `sort_dir=desc`: the `last_id` cursor walks down by id, and Prom does not document
/// which order it uses when none is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderListQuery {
    pub status: Option<PromStatus>,
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
    pub last_modified_from: Option<DateTime<Utc>>,
    pub last_modified_to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    /// Cursor: orders come by descending id; inclusiveness is undocumented, so callers
    /// dedupe the boundary order.
    pub last_id: Option<i64>,
}

impl OrderListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let date = |d: &DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut q = Vec::new();
        if let Some(s) = &self.status {
            q.push(("status", s.to_string()));
        }
        for (key, value) in [
            ("date_from", &self.date_from),
            ("date_to", &self.date_to),
            ("last_modified_from", &self.last_modified_from),
            ("last_modified_to", &self.last_modified_to),
        ] {
            if let Some(d) = value {
                q.push((key, date(d)));
            }
        }
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(last_id) = self.last_id {
            q.push(("last_id", last_id.to_string()));
        }
        q.push(("sort_dir", "desc".to_owned()));
        q
    }
}

/// Prom's cancellation reasons for `canceled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancellationReason {
    NotAvailable,
    PriceChanged,
    BuyersRequest,
    NotEnoughFields,
    Duplicate,
    InvalidPhoneNumber,
    LessThanMinimalPrice,
    Another,
}

impl CancellationReason {
    /// Every reason Prom documents (see PROM_API.md, 'Statuses').
    pub const ALL: [CancellationReason; 8] = [
        CancellationReason::NotAvailable,
        CancellationReason::PriceChanged,
        CancellationReason::BuyersRequest,
        CancellationReason::NotEnoughFields,
        CancellationReason::Duplicate,
        CancellationReason::InvalidPhoneNumber,
        CancellationReason::LessThanMinimalPrice,
        CancellationReason::Another,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            CancellationReason::NotAvailable => "not_available",
            CancellationReason::PriceChanged => "price_changed",
            CancellationReason::BuyersRequest => "buyers_request",
            CancellationReason::NotEnoughFields => "not_enough_fields",
            CancellationReason::Duplicate => "duplicate",
            CancellationReason::InvalidPhoneNumber => "invalid_phone_number",
            CancellationReason::LessThanMinimalPrice => "less_than_minimal_price",
            CancellationReason::Another => "another",
        }
    }

    /// Prom refuses these without a `cancellation_text`.
    pub const fn requires_text(self) -> bool {
        matches!(
            self,
            CancellationReason::PriceChanged
                | CancellationReason::NotEnoughFields
                | CancellationReason::Another
        )
    }
}

/// A cancellation reason that is not one of Prom's, with the ones it could be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of Prom's cancellation reasons ({reasons})", reasons = CancellationReason::ALL.map(CancellationReason::as_str).join(", "))]
pub struct UnknownReason(pub String);

impl std::str::FromStr for CancellationReason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CancellationReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s.trim())
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// Body of `POST /orders/set_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetStatusRequest {
    pub ids: Vec<i64>,
    pub status: PromStatus,
    /// Used only with [`PromStatus::Canceled`], where Prom requires a reason.
    pub cancellation: Option<(CancellationReason, Option<String>)>,
}

impl SetStatusRequest {
    /// The JSON Prom expects: custom statuses go by `custom_status_id`, the others by
    /// `status`, and a cancellation carries its reason (and text where Prom requires it).
    pub fn to_body(&self) -> Result<serde_json::Value, PromError> {
        use serde_json::{json, Value};
        if self.ids.is_empty() {
            return Err(PromError::Invalid("set_status without order ids".into()));
        }
        let mut body = match self.status {
            PromStatus::Custom(id) => json!({ "custom_status_id": id, "ids": self.ids }),
            PromStatus::Draft => {
                return Err(PromError::Invalid(
                    "Prom orders cannot be set to draft".into(),
                ))
            }
            ref status => json!({ "status": status.as_str(), "ids": self.ids }),
        };
        if self.status == PromStatus::Canceled {
            let (reason, text) = self.cancellation.as_ref().ok_or_else(|| {
                PromError::Invalid("canceling a Prom order needs a cancellation reason".into())
            })?;
            body["cancellation_reason"] = Value::from(reason.as_str());
            match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) => body["cancellation_text"] = Value::from(t),
                None if reason.requires_text() => {
                    return Err(PromError::Invalid(format!(
                        "cancellation reason {} needs a cancellation text",
                        reason.as_str()
                    )))
                }
                None => {}
            }
        }
        Ok(body)
    }
}

/// Prom's answer to `set_status`: only the ids listed were changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct SetStatusResponse {
    #[serde(default)]
    pub processed_ids: Vec<i64>,
    /// Why Prom left ids out, when it says: the refusal is still a 200. Flattened and cut
    /// short like every message of Prom's, as it goes to the sync log.
    #[serde(default, deserialize_with = "warning_text")]
    pub warning_message: Option<String>,
}

/// `warning_message` as text, whatever JSON Prom put there (an empty one is none), so an
/// odd warning never turns Prom's answer into a malformed one.
fn warning_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = match <Option<serde_json::Value> as serde::Deserialize>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    Ok(Some(prom_message(&text)).filter(|t| !t.is_empty()))
}

impl SetStatusResponse {
    pub fn processed(&self, order_id: i64) -> bool {
        self.processed_ids.contains(&order_id)
    }
}

impl PromClient {
    /// `GET /orders/{id}`.
    pub async fn get_order(
        &self,
        creds: &PromCredentials,
        id: i64,
    ) -> Result<PromOrder, PromError> {
        let url = api_url(&creds.base_url, &["orders", &id.to_string()])?;
        let env: OrderEnvelope = self
            .call(creds, Method::GET, url, None::<&()>, "JSON with an order")
            .await?;
        Ok(env.order)
    }

    /// `GET /products/{id}`; `None` when Prom no longer has the product.
    pub async fn get_product(
        &self,
        creds: &PromCredentials,
        id: i64,
    ) -> Result<Option<PromProduct>, PromError> {
        let url = api_url(&creds.base_url, &["products", &id.to_string()])?;
        match self
            .call::<ProductEnvelope, ()>(creds, Method::GET, url, None, "JSON with a product")
            .await
        {
            Ok(env) => Ok(Some(env.product)),
            Err(PromError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /orders/list` — one page.
    pub async fn list_orders(
        &self,
        creds: &PromCredentials,
        query: &OrderListQuery,
    ) -> Result<Vec<PromOrder>, PromError> {
        let list: OrderList = self.list_page(creds, query).await?;
        Ok(list.orders)
    }

    /// `GET /orders/list` — one page, each order kept as the JSON document Prom sent, so a
    /// poller can forward fields promsync does not model (payment and delivery data).
    pub async fn list_order_documents(
        &self,
        creds: &PromCredentials,
        query: &OrderListQuery,
    ) -> Result<Vec<serde_json::Value>, PromError> {
        #[derive(serde::Deserialize)]
        struct Documents {
            #[serde(default)]
            orders: Option<Vec<serde_json::Value>>,
        }
        let list: Documents = self.list_page(creds, query).await?;
        Ok(list.orders.unwrap_or_default())
    }

    /// One page of `GET /orders/list`, read as `T`: typed orders or the documents as sent.
    async fn list_page<T: serde::de::DeserializeOwned>(
        &self,
        creds: &PromCredentials,
        query: &OrderListQuery,
    ) -> Result<T, PromError> {
        let mut url = api_url(&creds.base_url, &["orders", "list"])?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        self.call(
            creds,
            Method::GET,
            url,
            None::<&()>,
            "JSON with a list of orders",
        )
        .await
    }

    /// `POST /orders/set_status`. HTTP 200 is not success by itself: check
    /// [`SetStatusResponse::processed`] for each id.
    pub async fn set_status(
        &self,
        creds: &PromCredentials,
        request: &SetStatusRequest,
    ) -> Result<SetStatusResponse, PromError> {
        let body = request.to_body()?;
        let url = api_url(&creds.base_url, &["orders", "set_status"])?;
        self.call(
            creds,
            Method::POST,
            url,
            Some(&body),
            "JSON with processed_ids",
        )
        .await
    }
}

/// Prom's words for "this waybill is already on this order" (live, on sending the same
/// number again): the number is there, which is what was asked.
const ALREADY_ADDED: &[&str] = &["уже добавлен", "вже додан"];

impl PromClient {
    /// `POST /delivery/save_declaration_id`: puts `waybill` on Prom order `order_id`.
    /// Prom answers `{"status": "success"}`; a refusal is a 200 with `status: "error"` and
    /// a message, a failure here ([`PromError::Api`]) — except Prom saying the number is
    /// already on the order, which is success.
    pub async fn save_declaration(
        &self,
        creds: &PromCredentials,
        order_id: i64,
        waybill: &Waybill,
    ) -> Result<(), PromError> {
        let url = api_url(&creds.base_url, &["delivery", "save_declaration_id"])?;
        let body = serde_json::json!({
            "order_id": order_id,
            "declaration_id": waybill.number.as_str(),
            "delivery_type": waybill.carrier.as_str(),
        });
        let answer = self
            .call::<serde::de::IgnoredAny, _>(
                creds,
                Method::POST,
                url,
                Some(&body),
                "JSON with a status",
            )
            .await;
        match answer {
            Err(PromError::Api(message))
                if ALREADY_ADDED
                    .iter()
                    .any(|m| message.to_lowercase().contains(m)) =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::prom::client::test_support::{client, creds, PENDING_COD};

    /// `set_status` of order `id` to `received`.
    fn received(id: i64) -> SetStatusRequest {
        SetStatusRequest {
            ids: vec![id],
            status: PromStatus::Received,
            cancellation: None,
        }
    }

    #[test]
    fn a_cancellation_reason_is_one_of_prom_s_spelled_as_prom_spells_it() {
        for reason in CancellationReason::ALL {
            assert_eq!(reason.as_str().parse::<CancellationReason>(), Ok(reason));
        }
        let unknown = "bored".parse::<CancellationReason>().unwrap_err();
        assert!(
            unknown.to_string().contains("`bored`") && unknown.to_string().contains("duplicate")
        );
        assert!("Another".parse::<CancellationReason>().is_err());
    }

    #[test]
    fn set_status_bodies() {
        let req = |status, cancellation| SetStatusRequest {
            ids: vec![338390710],
            status,
            cancellation,
        };
        assert_eq!(
            req(PromStatus::Received, None).to_body().unwrap(),
            json!({"status": "received", "ids": [338390710]})
        );
        assert_eq!(
            req(PromStatus::Custom(137639), None).to_body().unwrap(),
            json!({"custom_status_id": 137639, "ids": [338390710]})
        );
        assert_eq!(
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Another, Some("Скасовано в CRM".into())))
            )
            .to_body()
            .unwrap(),
            json!({"status": "canceled", "ids": [338390710],
                   "cancellation_reason": "another", "cancellation_text": "Скасовано в CRM"})
        );
        assert_eq!(
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Duplicate, None))
            )
            .to_body()
            .unwrap(),
            json!({"status": "canceled", "ids": [338390710], "cancellation_reason": "duplicate"})
        );
        for bad in [
            req(PromStatus::Canceled, None),
            req(
                PromStatus::Canceled,
                Some((CancellationReason::Another, Some("  ".into()))),
            ),
            req(PromStatus::Draft, None),
            SetStatusRequest {
                ids: vec![],
                status: PromStatus::Paid,
                cancellation: None,
            },
        ] {
            assert!(
                matches!(bad.to_body(), Err(PromError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn get_order_sends_headers_and_parses_fixture() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/338390710"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .and(header("X-LANGUAGE", "uk"))
            .and(header("Accept", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(PENDING_COD, "application/json"))
            .expect(1)
            .mount(&server)
            .await;

        let order = client(&server)
            .get_order(&creds(&server), 338390710)
            .await
            .unwrap();
        assert_eq!(order.id, 338390710);
        assert_eq!(order.products.len(), 1);
    }

    #[tokio::test]
    async fn get_product_found_and_missing() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/products/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"product": {
                "id": 1, "name": "Носки", "group": {"id": 9, "name": "Шкарпетки"},
                "description": "<p>x</p>"
            }})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/products/2"))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"error": "Product not found"})),
            )
            .mount(&server)
            .await;

        let c = creds(&server);
        let p = client(&server).get_product(&c, 1).await.unwrap().unwrap();
        assert_eq!(p.category_name("uk"), Some("Шкарпетки"));
        assert_eq!(client(&server).get_product(&c, 2).await.unwrap(), None);
        // For orders a 404 stays an error: an order id always comes from Prom itself.
        assert_eq!(
            client(&server).get_order(&c, 2).await.unwrap_err(),
            PromError::NotFound
        );
    }

    #[tokio::test]
    async fn list_orders_sends_query() {
        let server = MockServer::start().await;
        let order: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(PENDING_COD).unwrap()["order"].clone();
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/list"))
            .and(query_param("last_modified_from", "2025-04-07T06:00:00"))
            .and(query_param("limit", "100"))
            .and(query_param("last_id", "338390711"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"orders": [order]})))
            .expect(1)
            .mount(&server)
            .await;
        let q = OrderListQuery {
            last_modified_from: Some(
                DateTime::parse_from_rfc3339("2025-04-07T06:00:00.5+00:00")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            limit: Some(100),
            last_id: Some(338390711),
            ..Default::default()
        };
        let orders = client(&server)
            .list_orders(&creds(&server), &q)
            .await
            .unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].id, 338390710);
    }

    #[tokio::test]
    async fn every_order_listing_asks_for_descending_ids() {
        // Arrange: Prom answers only a listing sorted by descending id.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/orders/list"))
            .and(query_param("sort_dir", "desc"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"orders": []})))
            .expect(3)
            .mount(&server)
            .await;
        let (c, creds) = (client(&server), creds(&server));
        let first_page = OrderListQuery::default();
        let next_page = OrderListQuery {
            limit: Some(2),
            last_id: Some(7),
            ..Default::default()
        };

        // Act
        let typed = c.list_orders(&creds, &first_page).await;
        let documents = c.list_order_documents(&creds, &next_page).await;
        let documents_first = c.list_order_documents(&creds, &first_page).await;

        // Assert (the mock's expectation is verified when it drops)
        assert!(typed.unwrap().is_empty());
        assert!(documents.unwrap().is_empty());
        assert!(documents_first.unwrap().is_empty());
    }

    #[tokio::test]
    async fn set_status_posts_json_and_reads_processed_ids() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/orders/set_status"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .and(body_json(json!({"status": "received", "ids": [338390710]})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"processed_ids": [338390710]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let req = received(338390710);
        let answer = client(&server)
            .set_status(&creds(&server), &req)
            .await
            .unwrap();
        assert!(answer.processed(338390710));
        assert!(!answer.processed(1));
    }

    fn waybill() -> Waybill {
        Waybill::parse("20450000000001", "nova_poshta").unwrap()
    }

    #[tokio::test]
    async fn save_declaration_posts_the_order_number_and_carrier() {
        // Arrange
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/delivery/save_declaration_id"))
            .and(header("Authorization", "Bearer secret-token-123"))
            .and(body_json(json!({
                "order_id": 338390710,
                "declaration_id": "20450000000001",
                "delivery_type": "nova_poshta"
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "success"})))
            .expect(1)
            .mount(&server)
            .await;

        // Act
        let answer = client(&server)
            .save_declaration(&creds(&server), 338390710, &waybill())
            .await;

        // Assert
        assert_eq!(answer, Ok(()));
    }

    #[tokio::test]
    async fn prom_saying_the_waybill_is_already_on_the_order_is_success() {
        // Arrange: the refusal Prom gives to the same number sent again.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "status": "error", "message": "Этот ЭН уже добавлен к данному заказу"
            })))
            .mount(&server)
            .await;

        // Act
        let answer = client(&server)
            .save_declaration(&creds(&server), 5, &waybill())
            .await;

        // Assert
        assert_eq!(answer, Ok(()));
    }

    /// What each endpoint the client calls makes of one answer of Prom's.
    async fn every_endpoint_answering(template: ResponseTemplate) -> Vec<Result<(), PromError>> {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(template)
            .mount(&server)
            .await;
        let (c, creds) = (client(&server), creds(&server));
        let query = OrderListQuery::default();
        let request = received(5);
        vec![
            c.list_orders(&creds, &query).await.map(drop),
            c.list_order_documents(&creds, &query).await.map(drop),
            c.get_order(&creds, 5).await.map(drop),
            c.get_product(&creds, 5).await.map(drop),
            c.set_status(&creds, &request).await.map(drop),
            c.save_declaration(&creds, 5, &waybill()).await,
        ]
    }

    #[tokio::test]
    async fn a_200_carrying_an_error_fails_every_endpoint_with_prom_s_message() {
        // Arrange
        let answers = [
            (
                json!({"error": "Incorrect message id"}),
                "Incorrect message id",
            ),
            (
                json!({"status": "error", "message": "Boom", "errors": {"ids": ["bad"]}}),
                "Boom",
            ),
            (
                json!({"status": "error", "error": "Only an error"}),
                "Only an error",
            ),
            // Shapes that also fit a success: empty orders, no processed_ids.
            (
                json!({"orders": [], "error": "Access denied"}),
                "Access denied",
            ),
            (
                json!({"processed_ids": [], "status": "error"}),
                "unspecified error",
            ),
        ];
        for (body, message) in answers {
            // Act
            let results =
                every_endpoint_answering(ResponseTemplate::new(200).set_body_json(&body)).await;

            // Assert
            for result in results {
                assert_eq!(result, Err(PromError::Api(message.into())), "{body}");
            }
        }
    }

    #[tokio::test]
    async fn prom_s_message_reaches_an_error_flattened_and_cut_short() {
        // Arrange
        let long = format!("line one\nline two {}", "x".repeat(500));

        // Act
        let results = every_endpoint_answering(ResponseTemplate::new(200).set_body_json(json!({
            "status": "error", "message": long
        })))
        .await;

        // Assert
        let want = format!("line one line two {}…", "x".repeat(200 - 18));
        for result in results {
            assert_eq!(result, Err(PromError::Api(want.clone())));
        }
    }

    #[tokio::test]
    async fn an_empty_or_null_error_field_is_no_refusal() {
        for body in [
            json!({"orders": [], "processed_ids": [5], "error": ""}),
            json!({"orders": [], "processed_ids": [5], "error": null, "status": "ok"}),
        ] {
            let server = MockServer::start().await;
            Mock::given(wiremock::matchers::any())
                .respond_with(ResponseTemplate::new(200).set_body_json(&body))
                .mount(&server)
                .await;
            let (c, creds) = (client(&server), creds(&server));

            let listed = c
                .list_order_documents(&creds, &OrderListQuery::default())
                .await;

            assert_eq!(listed, Ok(vec![]), "{body}");
        }
    }

    #[tokio::test]
    async fn a_set_status_refusal_carries_prom_s_warning_message() {
        // Arrange: Prom's refusal is a 200 without the id, and a warning.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/orders/set_status"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "processed_ids": [],
                "warning_message": "Order 5 can not be\nchanged"
            })))
            .mount(&server)
            .await;
        let req = received(5);

        // Act
        let answer = client(&server)
            .set_status(&creds(&server), &req)
            .await
            .unwrap();

        // Assert
        assert!(!answer.processed(5));
        assert_eq!(
            answer.warning_message.as_deref(),
            Some("Order 5 can not be changed")
        );
    }

    #[tokio::test]
    async fn set_status_error_in_200() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"status": "error", "message": "Order status can not be changed"}),
            ))
            .mount(&server)
            .await;
        let req = SetStatusRequest {
            ids: vec![5],
            status: PromStatus::Delivered,
            cancellation: None,
        };
        assert_eq!(
            client(&server)
                .set_status(&creds(&server), &req)
                .await
                .unwrap_err(),
            PromError::Api("Order status can not be changed".into())
        );
    }
}
