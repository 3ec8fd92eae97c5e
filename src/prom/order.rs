//! Prom order and product documents as the API returns them, and the order status set.
//!
//! The types mirror the JSON closely and stay tolerant: Prom adds fields freely, sends
//! `null` where a value is absent, and alternates between strings and numbers for prices.
//! Unknown fields are ignored and nulls become `None`/empty, so a harmless API change never
//! stops imports. Prices and quantities stay as raw [`serde_json::Value`] here; the
//! accessor methods turn them into exact [`Money`]/[`Quantity`] so the importer can reject
//! one bad order with a clear reason instead of failing deserialization of a whole page.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::money::{Money, MoneyError, Quantity, QuantityError};

/// An order status as Prom spells it. `Custom` is a seller-defined status (`custom-<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromStatus {
    Pending,
    Received,
    Delivered,
    Canceled,
    Draft,
    Paid,
    Custom(i64),
}

/// A status string that is not one of Prom's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Prom order status {0:?}")]
pub struct UnknownStatus(pub String);

impl PromStatus {
    /// Prom's spelling; only custom statuses need an allocation.
    pub fn as_str(&self) -> Cow<'static, str> {
        let fixed = match self {
            PromStatus::Pending => "pending",
            PromStatus::Received => "received",
            PromStatus::Delivered => "delivered",
            PromStatus::Canceled => "canceled",
            PromStatus::Draft => "draft",
            PromStatus::Paid => "paid",
            PromStatus::Custom(id) => return Cow::Owned(format!("custom-{id}")),
        };
        Cow::Borrowed(fixed)
    }

    /// Seller-defined statuses are set through `custom_status_id`, not `status`.
    pub const fn custom_id(&self) -> Option<i64> {
        match self {
            PromStatus::Custom(id) => Some(*id),
            _ => None,
        }
    }
}

impl FromStr for PromStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let status = match s.trim() {
            "pending" => PromStatus::Pending,
            "received" => PromStatus::Received,
            "delivered" => PromStatus::Delivered,
            // Prom's documentation uses both spellings.
            "canceled" | "cancelled" => PromStatus::Canceled,
            "draft" => PromStatus::Draft,
            "paid" => PromStatus::Paid,
            other => {
                let id = other
                    .strip_prefix("custom-")
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|id| *id > 0)
                    .ok_or_else(|| UnknownStatus(s.to_owned()))?;
                PromStatus::Custom(id)
            }
        };
        Ok(status)
    }
}

impl fmt::Display for PromStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl Serialize for PromStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a Prom timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparseable Prom timestamp {0:?}")]
pub struct BadTimestamp(pub String);

/// Parses Prom's ISO-8601 timestamps: `2025-04-07T06:46:42.728888+00:00`, and the same
/// without an offset (taken as UTC, which is what Prom means by its offset-less dates).
pub fn parse_prom_datetime(s: &str) -> Result<DateTime<Utc>, BadTimestamp> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    // `%#z` also takes "+0000" and "+00", which RFC 3339 does not.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(naive.and_utc());
        }
    }
    Err(BadTimestamp(s.to_owned()))
}

/// A text in both of Prom's languages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multilang {
    #[serde(default)]
    pub uk: Option<String>,
    #[serde(default)]
    pub ru: Option<String>,
}

impl Multilang {
    /// The text in `lang` (`"uk"`/`"ru"`), if Prom has a non-blank one.
    pub fn pick(&self, lang: &str) -> Option<&str> {
        let text = match lang.trim().to_ascii_lowercase().as_str() {
            "uk" | "ua" => self.uk.as_deref(),
            "ru" => self.ru.as_deref(),
            _ => None,
        };
        non_blank(text)
    }
}

/// The buyer as Prom nests it under `client`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromClientInfo {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub second_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// One order document (`GET /orders/{id}` → `order`, `GET /orders/list` → `orders[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromOrder {
    pub id: i64,
    /// Raw text kept for event ids and logs; [`PromOrder::created_at`] parses it.
    pub date_created: String,
    /// The order's version: newer wins. Raw text kept so poll event ids are stable. Real
    /// orders have it, but Prom's schema does not require it: without it the creation
    /// date stands in ([`PromOrder::version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_modified: Option<String>,
    pub status: String,
    #[serde(default)]
    pub status_name: Option<String>,
    #[serde(default)]
    pub client_first_name: Option<String>,
    #[serde(default)]
    pub client_last_name: Option<String>,
    #[serde(default)]
    pub client_second_name: Option<String>,
    #[serde(default)]
    pub client_id: Option<i64>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub client: Option<PromClientInfo>,
    #[serde(default)]
    pub price: serde_json::Value,
    #[serde(default)]
    pub full_price: Option<serde_json::Value>,
    /// What delivery costs the buyer, on top of `price`.
    #[serde(default)]
    pub delivery_cost: Option<serde_json::Value>,
    /// The delivery and payment parts stay raw JSON: they are display data, and a field of
    /// an unexpected shape in them must cost that field, never the whole order or page.
    /// The accessors ([`PromOrder::delivery`], [`PromOrder::payment`]) read them.
    #[serde(default)]
    pub delivery_option: Option<serde_json::Value>,
    #[serde(default)]
    pub delivery_address: Option<serde_json::Value>,
    #[serde(default)]
    pub delivery_provider_data: Option<serde_json::Value>,
    #[serde(default)]
    pub delivery_recipient: Option<serde_json::Value>,
    #[serde(default)]
    pub payment_option: Option<serde_json::Value>,
    #[serde(default)]
    pub payment_data: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub products: Vec<PromOrderLine>,
}

/// Who receives the parcel, when Prom names anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromRecipient {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

/// The delivery texts of an order, unbounded as Prom sent them; the cost is read apart
/// ([`PromOrder::delivery_cost_amount`]) because it is money.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromDelivery {
    /// `delivery_option.name`.
    pub method: Option<String>,
    /// `delivery_provider_data.provider`.
    pub provider: Option<String>,
    /// `delivery_provider_data.type`.
    pub kind: Option<String>,
    pub address: Option<String>,
    /// `None` for `{}`, `null` or a recipient with only blank fields.
    pub recipient: Option<PromRecipient>,
    /// `delivery_provider_data.declaration_number`: the waybill.
    pub declaration_number: Option<String>,
}

/// How the buyer pays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromPayment {
    /// `payment_option.name`.
    pub method: Option<String>,
    /// `payment_data.status` (`paid`, `unpaid`, `refunded`, `paid_out`, …).
    pub status: Option<String>,
}

/// A text field of a JSON value: a non-blank string, or a number written out (waybill
/// numbers are digits and may arrive as one); anything else counts as absent.
fn text_of(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => non_blank(Some(s)).map(str::to_owned),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field_of(object: Option<&serde_json::Value>, key: &str) -> Option<String> {
    text_of(object?.get(key))
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromOrderLine {
    /// The Prom product id; absent for a product removed from the catalogue.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub name_multilang: Option<Multilang>,
    #[serde(default)]
    pub price: serde_json::Value,
    #[serde(default)]
    pub quantity: serde_json::Value,
    #[serde(default)]
    pub total_price: Option<serde_json::Value>,
    #[serde(default)]
    pub measure_unit: Option<String>,
}

/// `{"order": {...}}`, the shape of `GET /orders/{id}` and of a full webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEnvelope {
    pub order: PromOrder,
}

/// `{"orders": [...]}`, the shape of `GET /orders/list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderList {
    #[serde(default, deserialize_with = "null_as_default")]
    pub orders: Vec<PromOrder>,
}

impl PromOrder {
    pub fn created_at(&self) -> Result<DateTime<Utc>, BadTimestamp> {
        parse_prom_datetime(&self.date_created)
    }

    /// The order's version as Prom wrote it: `date_modified`, or `date_created` when Prom
    /// sent none, so such an order is neither newer nor older than itself forever.
    pub fn version(&self) -> &str {
        match &self.date_modified {
            Some(modified) if !self.lacks_date_modified() => modified,
            _ => &self.date_created,
        }
    }

    /// Whether Prom sent no `date_modified` (or a blank one), so the creation date is the
    /// version.
    pub fn lacks_date_modified(&self) -> bool {
        self.date_modified
            .as_deref()
            .is_none_or(|m| m.trim().is_empty())
    }

    /// The time of [`PromOrder::version`].
    pub fn modified_at(&self) -> Result<DateTime<Utc>, BadTimestamp> {
        parse_prom_datetime(self.version())
    }

    /// Prom's own name of the status (`status_name`, e.g. "Підтверджено" for a custom
    /// status): trimmed, `None` when blank. Bounded, like all text kept from Prom, by the
    /// import plan.
    pub fn status_title(&self) -> Option<&str> {
        non_blank(self.status_name.as_deref())
    }

    pub fn prom_status(&self) -> Result<PromStatus, UnknownStatus> {
        self.status.parse()
    }

    /// Drafts are never imported (ARCHITECTURE.md, 'Drafts are not imported').
    pub fn is_draft(&self) -> bool {
        matches!(self.prom_status(), Ok(PromStatus::Draft))
    }

    /// The field that holds the order's amount, and its value: `price`, or `full_price`
    /// when `price` is null or absent (real orders carry both; `full_price` is documented
    /// as including delivery, yet equals `price` in real orders whose delivery is charged,
    /// so it is only a fallback).
    pub fn amount(&self) -> (&'static str, &serde_json::Value) {
        match (&self.price, &self.full_price) {
            (serde_json::Value::Null, Some(full)) if !full.is_null() => ("full_price", full),
            (price, _) => ("price", price),
        }
    }

    /// The order total: [`PromOrder::amount`] read as money.
    pub fn total(&self) -> Result<Money, MoneyError> {
        Money::from_json(self.amount().1)
    }

    /// The top-level `client_*` fields are what the seller sees; the nested `client` is the
    /// buyer's account, used only when the top level is blank.
    pub fn buyer_first_name(&self) -> Option<&str> {
        non_blank(self.client_first_name.as_deref())
            .or_else(|| non_blank(self.client.as_ref()?.first_name.as_deref()))
    }

    pub fn buyer_last_name(&self) -> Option<&str> {
        non_blank(self.client_last_name.as_deref())
            .or_else(|| non_blank(self.client.as_ref()?.last_name.as_deref()))
    }

    pub fn buyer_phone(&self) -> Option<&str> {
        non_blank(self.phone.as_deref())
            .or_else(|| non_blank(self.client.as_ref()?.phone.as_deref()))
    }

    /// The delivery texts; all `None` for an order Prom sent no delivery for.
    pub fn delivery(&self) -> PromDelivery {
        let provider = self.delivery_provider_data.as_ref();
        let recipient = self.delivery_recipient.as_ref();
        let recipient = PromRecipient {
            first_name: field_of(recipient, "first_name"),
            last_name: field_of(recipient, "last_name"),
            phone: field_of(recipient, "phone"),
        };
        PromDelivery {
            method: field_of(self.delivery_option.as_ref(), "name"),
            provider: field_of(provider, "provider"),
            kind: field_of(provider, "type"),
            address: text_of(self.delivery_address.as_ref()),
            recipient: (recipient != PromRecipient::default()).then_some(recipient),
            declaration_number: field_of(provider, "declaration_number"),
        }
    }

    /// `delivery_cost` read as money; `None` when Prom sent none.
    pub fn delivery_cost_amount(&self) -> Option<&serde_json::Value> {
        self.delivery_cost.as_ref().filter(|v| !v.is_null())
    }

    pub fn payment(&self) -> PromPayment {
        PromPayment {
            method: field_of(self.payment_option.as_ref(), "name"),
            status: field_of(self.payment_data.as_ref(), "status"),
        }
    }

    pub fn buyer_email(&self) -> Option<&str> {
        non_blank(self.email.as_deref())
            .or_else(|| non_blank(self.client.as_ref()?.email.as_deref()))
    }
}

impl PromOrderLine {
    pub fn unit_price(&self) -> Result<Money, MoneyError> {
        Money::from_json(&self.price)
    }

    pub fn quantity(&self) -> Result<Quantity, QuantityError> {
        Quantity::try_from(&self.quantity)
    }

    pub fn line_total(&self) -> Option<Result<Money, MoneyError>> {
        self.total_price
            .as_ref()
            .filter(|v| !v.is_null())
            .map(Money::from_json)
    }

    /// The name in the shop's language, falling back to `name` (which Prom may send in
    /// Russian whatever the `X-LANGUAGE` header said).
    pub fn localized_name(&self, lang: &str) -> Option<&str> {
        localized(self.name_multilang.as_ref(), self.name.as_deref(), lang)
    }

    pub fn sku(&self) -> Option<&str> {
        non_blank(self.sku.as_deref())
    }

    /// Prom sends `""` for "no external id".
    pub fn external_id(&self) -> Option<&str> {
        non_blank(self.external_id.as_deref())
    }
}

/// A product's seller-defined group: promsync's category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromGroup {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub name_multilang: Option<Multilang>,
}

impl PromGroup {
    pub fn localized_name(&self, lang: &str) -> Option<&str> {
        localized(self.name_multilang.as_ref(), self.name.as_deref(), lang)
    }
}

/// A catalogue product (`GET /products/{id}` → `product`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromProduct {
    pub id: i64,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub name_multilang: Option<Multilang>,
    #[serde(default)]
    pub sku: Option<String>,
    /// HTML, as the seller wrote it.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub description_multilang: Option<Multilang>,
    #[serde(default)]
    pub price: Option<serde_json::Value>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub group: Option<PromGroup>,
    #[serde(default)]
    pub measure_unit: Option<String>,
    #[serde(default)]
    pub presence: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub date_modified: Option<String>,
}

impl PromProduct {
    pub fn localized_name(&self, lang: &str) -> Option<&str> {
        localized(self.name_multilang.as_ref(), self.name.as_deref(), lang)
    }

    pub fn localized_description(&self, lang: &str) -> Option<&str> {
        localized(
            self.description_multilang.as_ref(),
            self.description.as_deref(),
            lang,
        )
    }

    /// The category name, if the product is in a named group.
    pub fn category_name(&self, lang: &str) -> Option<&str> {
        self.group.as_ref()?.localized_name(lang)
    }
}

/// `{"product": {...}}`, the shape of `GET /products/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductEnvelope {
    pub product: PromProduct,
}

fn localized<'a>(
    multi: Option<&'a Multilang>,
    fallback: Option<&'a str>,
    lang: &str,
) -> Option<&'a str> {
    multi
        .and_then(|m| m.pick(lang))
        .or_else(|| non_blank(fallback))
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// `null` → `Default` for collections, because `#[serde(default)]` covers only a missing key.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::money::Currency;
    use rust_decimal::Decimal;
    use serde_json::json;

    const PENDING_COD: &str =
        include_str!("../../tests/fixtures/prom/order-pending-cash-on-delivery.json");
    const CUSTOM_PROM_PAY: &str =
        include_str!("../../tests/fixtures/prom/order-custom-status-prom-payment.json");

    fn order(doc: &str) -> PromOrder {
        serde_json::from_str::<OrderEnvelope>(doc).unwrap().order
    }

    #[test]
    fn status_parse_and_display() {
        let cases = [
            ("pending", PromStatus::Pending),
            ("received", PromStatus::Received),
            ("delivered", PromStatus::Delivered),
            ("canceled", PromStatus::Canceled),
            ("draft", PromStatus::Draft),
            ("paid", PromStatus::Paid),
            ("custom-137639", PromStatus::Custom(137639)),
        ];
        for (s, st) in cases {
            assert_eq!(s.parse::<PromStatus>().unwrap(), st);
            assert_eq!(st.to_string(), s);
            assert_eq!(st.as_str(), s);
            assert_eq!(serde_json::to_value(st).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<PromStatus>(json!(s)).unwrap(), st);
        }
        assert_eq!(
            "cancelled".parse::<PromStatus>().unwrap(),
            PromStatus::Canceled
        );
        assert_eq!(PromStatus::Custom(5).custom_id(), Some(5));
        assert_eq!(PromStatus::Paid.custom_id(), None);
    }

    #[test]
    fn unknown_status_rejected() {
        for s in [
            "",
            "new",
            "Pending",
            "custom-",
            "custom-x",
            "custom-0",
            "custom--1",
        ] {
            assert_eq!(
                s.parse::<PromStatus>(),
                Err(UnknownStatus(s.to_owned())),
                "{s:?}"
            );
        }
        assert!(serde_json::from_value::<PromStatus>(json!("shipped")).is_err());
    }

    #[test]
    fn the_cash_on_delivery_fixture_has_a_named_recipient_and_no_payment_data() {
        let o = order(PENDING_COD);

        let delivery = o.delivery();
        let payment = o.payment();

        assert_eq!(delivery.method.as_deref(), Some("Нова Пошта"));
        assert_eq!(delivery.provider.as_deref(), Some("nova_poshta"));
        assert_eq!(delivery.kind.as_deref(), Some("W2W"));
        assert_eq!(delivery.declaration_number, None);
        assert!(delivery.address.unwrap().starts_with("смт. Ставище"));
        assert_eq!(
            delivery.recipient,
            Some(PromRecipient {
                first_name: Some("Олена".into()),
                last_name: Some("Коваленко".into()),
                phone: Some("+380000000000".into()),
            })
        );
        assert_eq!(o.delivery_cost_amount(), Some(&json!(0)));
        assert_eq!(payment.method.as_deref(), Some("Наложенный платеж"));
        assert_eq!(payment.status, None);
    }

    #[test]
    fn the_prom_payment_fixture_is_paid_and_its_empty_recipient_is_none() {
        let o = order(CUSTOM_PROM_PAY);

        let delivery = o.delivery();
        let payment = o.payment();

        assert_eq!(delivery.recipient, None);
        assert_eq!(
            delivery.declaration_number.as_deref(),
            Some("20451069857325")
        );
        assert_eq!(o.delivery_cost_amount(), Some(&json!(80.0)));
        assert_eq!(payment.method.as_deref(), Some("Пром-оплата"));
        assert_eq!(payment.status.as_deref(), Some("paid"));
    }

    #[test]
    fn delivery_and_payment_fields_of_odd_shapes_are_absent_instead_of_failing_the_order() {
        let mut doc: serde_json::Value = serde_json::from_str(PENDING_COD).unwrap();
        let o = doc.get_mut("order").unwrap();
        o["delivery_option"] = json!("Нова Пошта");
        o["delivery_address"] = json!({"city": "Київ"});
        o["delivery_provider_data"] = json!({"provider": ["x"], "declaration_number": 2045106985});
        o["delivery_recipient"] = json!(null);
        o["delivery_cost"] = json!(null);
        o["payment_option"] = json!(null);
        o["payment_data"] = json!({"status": "  "});

        let o = serde_json::from_value::<OrderEnvelope>(doc).unwrap().order;

        assert_eq!(
            o.delivery(),
            PromDelivery {
                declaration_number: Some("2045106985".into()),
                ..PromDelivery::default()
            }
        );
        assert_eq!(o.delivery_cost_amount(), None);
        assert_eq!(o.payment(), PromPayment::default());
    }

    #[test]
    fn an_order_without_delivery_fields_has_no_delivery_nor_payment() {
        let o = order(
            r#"{"order": {"id": 1, "date_created": "2025-01-01T00:00:00", "status": "pending"}}"#,
        );

        assert_eq!(o.delivery(), PromDelivery::default());
        assert_eq!(o.delivery_cost_amount(), None);
        assert_eq!(o.payment(), PromPayment::default());
    }

    #[test]
    fn fixture_pending_cash_on_delivery() {
        let o = order(PENDING_COD);
        assert_eq!(o.id, 338390710);
        assert_eq!(o.prom_status().unwrap(), PromStatus::Pending);
        assert!(!o.is_draft());
        assert_eq!(o.buyer_first_name(), Some("Олена"));
        assert_eq!(o.buyer_last_name(), Some("Коваленко"));
        assert_eq!(o.buyer_phone(), Some("+380000000000"));
        assert_eq!(o.buyer_email(), None);
        let total = o.total().unwrap();
        assert_eq!(total.amount, Decimal::from(244));
        assert_eq!(total.currency, Some(Currency::UAH));
        assert_eq!(
            o.created_at().unwrap().to_rfc3339(),
            "2025-04-07T06:46:42.728888+00:00"
        );
        assert!(o.modified_at().unwrap() > o.created_at().unwrap());

        assert_eq!(o.products.len(), 1);
        let line = &o.products[0];
        assert_eq!(line.id, Some(2555951114));
        assert_eq!(line.sku(), Some("B45N2"));
        assert_eq!(line.external_id(), None);
        assert_eq!(line.quantity().unwrap().to_string(), "1");
        assert_eq!(line.unit_price().unwrap().amount, Decimal::from(244));
        assert_eq!(
            line.line_total().unwrap().unwrap().amount,
            Decimal::from(244)
        );
        assert!(line.localized_name("uk").unwrap().starts_with("Набір"));
        assert!(line.localized_name("ru").unwrap().starts_with("Набор"));
        assert_eq!(line.measure_unit.as_deref(), Some("шт."));
    }

    #[test]
    fn the_status_title_is_prom_status_name_trimmed_or_none_when_blank() {
        let mut o = order(CUSTOM_PROM_PAY);
        let titles = [
            (None, None),
            (Some("  \t "), None),
            (Some(" Підтверджено "), Some("Підтверджено")),
        ];
        for (status_name, expected) in titles {
            o.status_name = status_name.map(str::to_owned);

            let title = o.status_title();

            assert_eq!(title, expected, "{status_name:?}");
        }
    }

    #[test]
    fn fixture_custom_status_prom_payment() {
        let o = order(CUSTOM_PROM_PAY);
        assert_eq!(o.id, 32345434343);
        assert_eq!(o.prom_status().unwrap(), PromStatus::Custom(137639));
        assert_eq!(o.status_name.as_deref(), Some("Підтверджено"));
        assert_eq!(o.total().unwrap().amount, Decimal::from(250));
        // The nested client has no phone here; the top-level one is used.
        assert_eq!(o.buyer_phone(), Some("+380000000000"));
        assert_eq!(o.client_second_name, None);
        assert_eq!(o.delivery_cost, Some(json!(80.0)));
        assert_eq!(
            o.modified_at().unwrap(),
            parse_prom_datetime("2024-12-23T13:47:36.943983Z").unwrap()
        );
        assert_eq!(o.products[0].sku(), Some("B43N1"));
    }

    #[test]
    fn fixtures_round_trip_through_serialize() {
        for doc in [PENDING_COD, CUSTOM_PROM_PAY] {
            let env: OrderEnvelope = serde_json::from_str(doc).unwrap();
            let again: OrderEnvelope =
                serde_json::from_value(serde_json::to_value(&env).unwrap()).unwrap();
            assert_eq!(env, again);
        }
    }

    #[test]
    fn an_order_without_date_modified_is_read_with_its_creation_date_as_version() {
        // Arrange
        let created = "2025-01-01T10:00:00.123456+00:00";
        let doc = |modified: serde_json::Value| {
            json!({"id": 1, "date_created": created, "date_modified": modified,
                   "status": "pending", "price": 100, "products": []})
        };
        let mut absent = doc(json!(null));
        absent.as_object_mut().unwrap().remove("date_modified");

        for document in [absent, doc(json!(null)), doc(json!(""))] {
            // Act
            let o: PromOrder = serde_json::from_value(document.clone()).unwrap();

            // Assert
            assert!(o.lacks_date_modified(), "{document}");
            assert_eq!(o.version(), created);
            assert_eq!(o.modified_at().unwrap(), o.created_at().unwrap());
        }
        let dated: PromOrder = serde_json::from_value(doc(json!(created))).unwrap();
        assert!(!dated.lacks_date_modified());
        let newer: PromOrder =
            serde_json::from_value(doc(json!("2025-01-02T00:00:00+00:00"))).unwrap();
        assert_eq!(newer.version(), "2025-01-02T00:00:00+00:00");
        assert!(!newer.lacks_date_modified());
    }

    #[test]
    fn minimal_order_with_nulls_is_tolerated() {
        let o: PromOrder = serde_json::from_value(json!({
            "id": 1,
            "date_created": "2025-01-01T00:00:00",
            "date_modified": "2025-01-01T00:00:01",
            "status": "paid",
            "client_first_name": null,
            "client": null,
            "phone": null,
            "price": 100,
            "products": null,
            "something_new": {"x": 1}
        }))
        .unwrap();
        assert!(o.products.is_empty());
        assert_eq!(o.buyer_first_name(), None);
        assert_eq!(o.buyer_phone(), None);
        assert_eq!(o.total().unwrap().amount, Decimal::from(100));
        assert_eq!(o.total().unwrap().currency, None);
        assert_eq!(
            o.created_at().unwrap().to_rfc3339(),
            "2025-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn buyer_falls_back_to_nested_client() {
        let o: PromOrder = serde_json::from_value(json!({
            "id": 1,
            "date_created": "2025-01-01T00:00:00+00:00",
            "date_modified": "2025-01-01T00:00:00+00:00",
            "status": "pending",
            "client_first_name": "",
            "client_last_name": null,
            "email": " ",
            "client": {"first_name": "Іван", "last_name": "Петренко",
                       "phone": "0501234567", "email": "i@example.com"},
            "price": "1 234,50 грн",
            "products": [{"price": "1 234,50 грн", "quantity": 2.5, "name": "Кабель",
                          "name_multilang": {"uk": "", "ru": null}}]
        }))
        .unwrap();
        assert_eq!(o.buyer_first_name(), Some("Іван"));
        assert_eq!(o.buyer_last_name(), Some("Петренко"));
        assert_eq!(o.buyer_phone(), Some("0501234567"));
        assert_eq!(o.buyer_email(), Some("i@example.com"));
        assert_eq!(o.total().unwrap().amount, Decimal::new(123450, 2));
        let line = &o.products[0];
        assert_eq!(line.id, None);
        assert_eq!(line.quantity().unwrap().to_string(), "2.5");
        assert_eq!(line.localized_name("uk"), Some("Кабель"));
        assert!(line.line_total().is_none());
    }

    #[test]
    fn bad_line_values_surface_as_errors_not_panics() {
        let line: PromOrderLine =
            serde_json::from_value(json!({"price": "abc", "quantity": 0})).unwrap();
        assert!(line.unit_price().is_err());
        assert!(line.quantity().is_err());
    }

    #[test]
    fn timestamps() {
        let want = parse_prom_datetime("2025-04-07T06:46:42.728888+00:00").unwrap();
        assert_eq!(want.timestamp_subsec_micros(), 728888);
        assert_eq!(
            parse_prom_datetime("2025-04-07T06:46:42.728888").unwrap(),
            want
        );
        assert_eq!(
            parse_prom_datetime("2025-04-07T09:46:42.728888+03:00").unwrap(),
            want
        );
        assert_eq!(
            parse_prom_datetime("2025-04-07T09:46:42.728888+0300").unwrap(),
            want
        );
        assert_eq!(
            parse_prom_datetime("2025-04-07 06:46:42.728888").unwrap(),
            want
        );
        assert!(parse_prom_datetime("2025-04-07T06:46:42").is_ok());
        assert!(parse_prom_datetime("yesterday").is_err());
        assert!(parse_prom_datetime("").is_err());
    }

    #[test]
    fn multilang_pick_non_empty_only() {
        let m = Multilang {
            uk: Some("Шкарпетки".into()),
            ru: Some("  ".into()),
        };
        assert_eq!(m.pick("uk"), Some("Шкарпетки"));
        assert_eq!(m.pick("UK"), Some("Шкарпетки"));
        assert_eq!(m.pick("ru"), None);
        assert_eq!(m.pick("en"), None);
        assert_eq!(Multilang::default().pick("uk"), None);
    }

    #[test]
    fn product_envelope() {
        let p: ProductEnvelope = serde_json::from_value(json!({"product": {
            "id": 2555951114_i64,
            "external_id": "",
            "name": "Набор носков",
            "name_multilang": {"uk": "Набір шкарпеток", "ru": "Набор носков"},
            "sku": "B45N2",
            "description": "<p>Опис</p>",
            "price": 244.0,
            "currency": "UAH",
            "group": {"id": 77, "name": "Шкарпетки"},
            "measure_unit": "шт.",
            "presence": "available",
            "status": "on_display",
            "date_modified": "2025-04-01T10:00:00.000000+00:00",
            "images": []
        }}))
        .unwrap();
        let p = p.product;
        assert_eq!(p.localized_name("uk"), Some("Набір шкарпеток"));
        assert_eq!(p.localized_description("uk"), Some("<p>Опис</p>"));
        assert_eq!(p.category_name("uk"), Some("Шкарпетки"));
        assert_eq!(p.group.as_ref().and_then(|g| g.id), Some(77));

        let bare: PromProduct =
            serde_json::from_value(json!({"id": 1, "group": null, "name": null})).unwrap();
        assert_eq!(bare.category_name("uk"), None);
        assert_eq!(bare.localized_name("uk"), None);
    }

    #[test]
    fn order_list_shape() {
        let list: OrderList = serde_json::from_str(&format!(
            "{{\"orders\": [{}, {}]}}",
            serde_json::to_string(&order(PENDING_COD)).unwrap(),
            serde_json::to_string(&order(CUSTOM_PROM_PAY)).unwrap()
        ))
        .unwrap();
        assert_eq!(list.orders.len(), 2);
        let empty: OrderList = serde_json::from_str(r#"{"orders": null}"#).unwrap();
        assert!(empty.orders.is_empty());
    }

    #[test]
    fn the_simulator_s_orders_parse_with_consistent_totals() {
        use rand::{rngs::StdRng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        for i in 0..50 {
            let value = promsync_simulator::generate::order(
                &mut rng,
                340_000_000 + i,
                chrono::Utc::now(),
                None,
            );
            let parsed: PromOrder = serde_json::from_value(value).expect("a Prom order");
            let total = parsed.total().expect("parseable total").amount;
            let sum: Decimal = parsed
                .products
                .iter()
                .map(|l| {
                    Money::from_json(l.total_price.as_ref().unwrap())
                        .unwrap()
                        .amount
                })
                .sum();
            assert_eq!(total, sum);
            assert!(!parsed.products.is_empty());
            assert!(parsed.prom_status().is_ok());
        }
    }
}
