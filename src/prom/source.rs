//! A shop's access to Prom, from its row: the credentials every role that calls Prom
//! builds here (poller, importer, publisher), so a change to how a shop talks to Prom (URL,
//! token, language) is made once, and fetching its orders, shared by the two paths that
//! ask Prom for orders: the poller (pages of `GET /orders/list`) and the importer's
//! thin-notification and manual-refresh path (`GET /orders/{id}`).

use entity::shops;
use serde_json::Value;

use super::{
    client::{OrderListQuery, PromClient, PromCredentials, PromError},
    order::PromOrder,
    origin::PromOrigin,
};
use crate::keyring::{Slot, StoredSecret};

/// Why a shop's row cannot be turned into Prom credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("prom_url: {0}")]
    BadUrl(String),
}

/// The shop's access to Prom, from its row. The token stays as stored (encrypted when a
/// key is configured) and bound to its shop; the Prom client opens it per request.
pub fn credentials(shop: &shops::Model) -> Result<PromCredentials, SourceError> {
    Ok(PromCredentials {
        // Parsed as an origin again: a row written around the API (or before origins were
        // enforced) with a path, query or user info is refused, not half-used.
        base_url: PromOrigin::parse(&shop.prom_url)
            .map_err(|e| SourceError::BadUrl(e.to_string()))?
            .to_string()
            .parse()
            .map_err(|e: url::ParseError| SourceError::BadUrl(e.to_string()))?,
        token: StoredSecret::new(Slot::prom_token(shop.id), shop.prom_token.clone()),
        language: shop.language.to_string(),
    })
}

/// One shop's orders on Prom, through the shared client (its pool and throttle).
#[derive(Debug, Clone, Copy)]
pub struct OrderSource<'a> {
    pub prom: &'a PromClient,
    pub credentials: &'a PromCredentials,
}

impl<'a> OrderSource<'a> {
    pub fn new(prom: &'a PromClient, credentials: &'a PromCredentials) -> Self {
        Self { prom, credentials }
    }

    /// The current version of one order; `None` when Prom no longer has it.
    pub async fn order(&self, order_id: i64) -> Result<Option<PromOrder>, PromError> {
        match self.prom.get_order(self.credentials, order_id).await {
            Ok(order) => Ok(Some(order)),
            Err(PromError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of the order list, each order as the document Prom sent.
    pub async fn page(&self, query: &OrderListQuery) -> Result<Vec<Value>, PromError> {
        self.prom
            .list_order_documents(self.credentials, query)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ClientMatching, Language, MatchProductsBy};

    fn shop(prom_url: &str) -> shops::Model {
        shops::Model {
            id: 1,
            account_id: 1,
            name: "s".into(),
            prom_url: prom_url.into(),
            prom_token: "s3cr3t-value".into(),
            webhook_secret: "whsec_x".into(),
            previous_webhook_secret: None,
            previous_secret_expires_at: None,
            language: Language::Ru,
            match_products_by: MatchProductsBy::Sku,
            client_matching: ClientMatching::AlwaysNew,
            enabled: true,
            poll_enabled: true,
            poll_interval_s: 60,
            poll_watermark: None,
            lease_owner: None,
            lease_until: None,
            token_rejected_at: None,
            order_url_template: None,
            created_at: chrono::Utc::now(),
            prom_statuses_error: None,
            prom_statuses_error_at: None,
        }
    }

    #[test]
    fn credentials_come_from_the_shop_row_and_hide_the_token() {
        let c = credentials(&shop("https://my.prom.ua")).unwrap();
        assert_eq!(c.base_url.as_str(), "https://my.prom.ua/");
        assert_eq!(c.language, "ru");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_bad_prom_url_is_reported_not_panicked_on() {
        for bad in [
            "not a url",
            "https://user:pw@my.prom.ua",
            "https://my.prom.ua/x",
        ] {
            assert!(
                matches!(credentials(&shop(bad)), Err(SourceError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
