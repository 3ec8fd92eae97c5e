//! Turning a Prom order document into what the importer writes (ARCHITECTURE.md,
//! 'Imported fields', 'Exact money in the account's currency'), with no database in sight:
//! every price parsed to an exact decimal and checked against the account's currency,
//! quantities kept as Prom sent them, names picked in the shop's language. Anything wrong
//! rejects the whole order here, before a transaction starts, so nothing is ever
//! half-imported.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{
    domain::{normalize_email, normalize_phone, Language, MatchProductsBy},
    prom::{
        money::{excerpt, Currency, Money, MoneyError},
        order::{PromOrder, PromOrderLine, PromStatus},
    },
};

/// Why an order cannot be imported; recorded on the sync log as `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{field}: unparseable price `{raw}`")]
    UnparseablePrice { field: String, raw: String },
    #[error("{field}: unknown currency in `{raw}`")]
    UnknownCurrency { field: String, raw: String },
    #[error("{field}: price in {found}, but the account's currency is {expected}")]
    CurrencyMismatch {
        field: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub phone_normalized: Option<String>,
    pub email: Option<String>,
}

/// How a line finds its product, per the shop's `match_products_by`; a line lacking the
/// configured attribute falls back to the next one that identifies a product.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProductKey {
    PromId(i64),
    Sku(String),
    Name(String),
}

impl ProductKey {
    /// A stable text form, used to name the lock that serializes creating this product.
    pub fn lock_name(&self, account_id: i64) -> String {
        match self {
            ProductKey::PromId(id) => format!("product:{account_id}:prom_id:{id}"),
            ProductKey::Sku(sku) => format!("product:{account_id}:sku:{sku}"),
            ProductKey::Name(name) => format!("product:{account_id}:name:{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLine {
    pub key: ProductKey,
    pub prom_id: Option<i64>,
    pub sku: Option<String>,
    pub name: String,
    pub quantity: Decimal,
    pub price: Decimal,
}

/// The delivery and payment of an order, bounded and ready to store; every field is
/// display data, so it follows Prom on every update, write-off or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shipping {
    pub delivery_method: Option<String>,
    pub delivery_provider: Option<String>,
    pub delivery_type: Option<String>,
    pub delivery_address: Option<String>,
    pub recipient_first_name: Option<String>,
    pub recipient_last_name: Option<String>,
    pub recipient_phone: Option<String>,
    pub declaration_number: Option<String>,
    /// On top of the goods: never part of [`ImportPlan::total`].
    pub delivery_cost: Option<Decimal>,
    pub payment_method: Option<String>,
    pub payment_status: Option<String>,
}

/// Longest name, phone, status or waybill number kept from Prom, in characters: far
/// beyond any real one, yet a hostile order cannot fill the database or the page.
const SHORT_TEXT_CHARS: usize = 200;
/// Longest delivery address kept, in characters.
const ADDRESS_CHARS: usize = 1000;

fn bounded(text: Option<String>, max_chars: usize) -> Option<String> {
    text.map(|t| crate::domain::excerpt(&t, max_chars))
}

fn plan_shipping(order: &PromOrder, currency: Currency) -> Result<Shipping, Rejection> {
    let delivery = order.delivery();
    let payment = order.payment();
    let short = |t: Option<String>| bounded(t, SHORT_TEXT_CHARS);
    let recipient = delivery.recipient.unwrap_or_default();
    let delivery_cost = order
        .delivery_cost_amount()
        .map(|cost| money_in("delivery_cost", cost, currency))
        .transpose()?;
    Ok(Shipping {
        delivery_method: short(delivery.method),
        delivery_provider: short(delivery.provider),
        delivery_type: short(delivery.kind),
        delivery_address: bounded(delivery.address, ADDRESS_CHARS),
        recipient_first_name: short(recipient.first_name),
        recipient_last_name: short(recipient.last_name),
        recipient_phone: short(recipient.phone),
        declaration_number: short(delivery.declaration_number),
        delivery_cost,
        payment_method: short(payment.method),
        payment_status: short(payment.status),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPlan {
    pub external_id: String,
    pub created_at: DateTime<Utc>,
    /// `date_modified`, or the creation date when Prom sent none.
    pub modified_at: DateTime<Utc>,
    /// Prom sent no `date_modified`: the sync log says the creation date stood in.
    pub modified_from_created: bool,
    pub status: PromStatus,
    /// Prom's own name of `status` (`status_name`), bounded; `None` when blank or absent.
    pub status_title: Option<String>,
    pub buyer: Buyer,
    pub lines: Vec<PlannedLine>,
    pub total: Decimal,
    pub shipping: Shipping,
}

impl ImportPlan {
    pub fn is_draft(&self) -> bool {
        self.status == PromStatus::Draft
    }
}

fn invalid(field: impl Into<String>, reason: impl ToString) -> Rejection {
    Rejection::Invalid {
        field: field.into(),
        reason: reason.to_string(),
    }
}

fn money_in(
    field: &str,
    value: &serde_json::Value,
    currency: Currency,
) -> Result<Decimal, Rejection> {
    // The reason lands on the sync log and the operator page: quote a bounded excerpt, so
    // a price field of a hundred kilobytes is not copied there.
    let raw = || match value {
        serde_json::Value::String(s) => excerpt(s),
        other => excerpt(&other.to_string()),
    };
    let money = Money::from_json(value).map_err(|e| match e {
        MoneyError::OutOfRange(_) | MoneyError::Imprecise(_) => Rejection::Invalid {
            field: field.to_owned(),
            reason: e.to_string(),
        },
        MoneyError::UnknownCurrency(_) => Rejection::UnknownCurrency {
            field: field.to_owned(),
            raw: raw(),
        },
        _ => Rejection::UnparseablePrice {
            field: field.to_owned(),
            raw: raw(),
        },
    })?;
    match money.currency {
        Some(found) if found != currency => Err(Rejection::CurrencyMismatch {
            field: field.to_owned(),
            found: found.code(),
            expected: currency.code(),
        }),
        _ => Ok(money.amount),
    }
}

fn non_blank(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn plan_line(
    index: usize,
    line: &PromOrderLine,
    currency: Currency,
    language: Language,
    match_by: MatchProductsBy,
) -> Result<PlannedLine, Rejection> {
    let field = |name: &str| format!("products[{index}].{name}");
    let name = non_blank(line.localized_name(language.as_str()))
        .ok_or_else(|| invalid(field("name"), "missing"))?;
    let sku = non_blank(line.sku());
    let quantity = line
        .quantity()
        .map_err(|e| invalid(field("quantity"), e))?
        .get();
    let price = money_in(&field("price"), &line.price, currency)?;
    let prom_id = line.id.filter(|id| *id > 0);
    let by_name = ProductKey::Name(name.clone());
    let by_sku = sku.clone().map(ProductKey::Sku);
    let by_prom_id = prom_id.map(ProductKey::PromId);
    let key = match match_by {
        MatchProductsBy::Name => by_name,
        MatchProductsBy::Sku => by_sku.unwrap_or(by_name),
        MatchProductsBy::PromId => by_prom_id.or(by_sku).unwrap_or(by_name),
    };
    Ok(PlannedLine {
        key,
        prom_id,
        sku,
        name,
        quantity,
        price,
    })
}

pub fn plan(
    order: &PromOrder,
    currency: Currency,
    language: Language,
    match_by: MatchProductsBy,
) -> Result<ImportPlan, Rejection> {
    let created_at = order.created_at().map_err(|e| invalid("date_created", e))?;
    let modified_at = order
        .modified_at()
        .map_err(|e| invalid("date_modified", e))?;
    let modified_from_created = order.lacks_date_modified();
    let status = order.prom_status().map_err(|e| invalid("status", e))?;
    let (amount_field, amount) = order.amount();
    let total = money_in(amount_field, amount, currency)?;
    let lines = order
        .products
        .iter()
        .enumerate()
        .map(|(i, line)| plan_line(i, line, currency, language, match_by))
        .collect::<Result<Vec<_>, _>>()?;
    let shipping = plan_shipping(order, currency)?;
    let phone = non_blank(order.buyer_phone());
    let email = order.buyer_email().and_then(normalize_email);
    Ok(ImportPlan {
        external_id: order.id.to_string(),
        created_at,
        modified_at,
        modified_from_created,
        status,
        status_title: bounded(order.status_title().map(str::to_owned), SHORT_TEXT_CHARS),
        buyer: Buyer {
            first_name: non_blank(order.buyer_first_name()),
            last_name: non_blank(order.buyer_last_name()),
            phone_normalized: phone.as_deref().and_then(normalize_phone),
            phone,
            email,
        },
        lines,
        total,
        shipping,
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::prom::order::OrderEnvelope;

    fn fixture() -> PromOrder {
        let text = include_str!("../../tests/fixtures/prom/order-pending-cash-on-delivery.json");
        serde_json::from_str::<OrderEnvelope>(text).unwrap().order
    }

    fn plan_uah(order: &PromOrder) -> Result<ImportPlan, Rejection> {
        plan(order, Currency::UAH, Language::Uk, MatchProductsBy::Sku)
    }

    #[test]
    fn the_delivery_cost_is_kept_apart_from_the_total() {
        let mut order = fixture();
        order.delivery_cost = Some(serde_json::json!(80.0));

        let p = plan_uah(&order).unwrap();

        assert_eq!(p.total, dec!(244));
        assert_eq!(p.shipping.delivery_cost, Some(dec!(80)));
        assert_eq!(
            p.shipping.payment_method.as_deref(),
            Some("Наложенный платеж")
        );
    }

    #[test]
    fn an_out_of_range_delivery_cost_rejects_the_order() {
        let mut order = fixture();
        order.delivery_cost = Some(serde_json::json!("100000000000000000000"));

        let rejection = plan_uah(&order).unwrap_err();

        assert!(
            matches!(&rejection, Rejection::Invalid { field, .. } if field == "delivery_cost"),
            "{rejection:?}"
        );
    }

    #[test]
    fn huge_delivery_texts_from_prom_are_bounded() {
        let mut order = fixture();
        order.delivery_address = Some(serde_json::json!("a".repeat(100_000)));
        order.payment_data = Some(serde_json::json!({"status": "p".repeat(100_000)}));
        order.status_name = Some("я".repeat(SHORT_TEXT_CHARS * 10));

        let p = plan_uah(&order).unwrap();

        assert!(p.shipping.delivery_address.unwrap().chars().count() <= ADDRESS_CHARS + 1);
        assert!(p.shipping.payment_status.unwrap().chars().count() <= SHORT_TEXT_CHARS + 1);
        let title = p.status_title.unwrap();
        assert_eq!(title.chars().count(), SHORT_TEXT_CHARS + 1, "with its '…'");
        assert!(title.ends_with('…'));
    }

    #[test]
    fn an_order_whose_price_is_null_is_booked_at_its_full_price() {
        let mut order = fixture();
        order.price = serde_json::Value::Null;
        order.full_price = Some(serde_json::json!("244 грн"));

        let p = plan_uah(&order).unwrap();

        assert_eq!(p.total, dec!(244));
    }

    #[test]
    fn an_order_with_neither_price_is_rejected_naming_price() {
        let mut order = fixture();
        order.price = serde_json::Value::Null;
        order.full_price = None;

        let rejection = plan_uah(&order).unwrap_err();

        assert!(format!("{rejection:?}").contains("price"), "{rejection:?}");
    }

    #[test]
    fn the_real_order_plans_with_exact_money_and_the_ukrainian_name() {
        let p = plan_uah(&fixture()).unwrap();
        assert_eq!(p.external_id, "338390710");
        assert_eq!(p.total, dec!(244));
        assert_eq!(p.status, PromStatus::Pending);
        assert_eq!(p.lines.len(), 1);
        let line = &p.lines[0];
        assert_eq!(line.key, ProductKey::Sku("B45N2".into()));
        assert_eq!(line.quantity, dec!(1));
        assert_eq!(line.price, dec!(244));
        assert!(line.name.starts_with("Набір"), "{}", line.name);
        assert_eq!(p.buyer.phone_normalized.as_deref(), Some("380000000000"));
        assert_eq!(p.buyer.first_name.as_deref(), Some("Олена"));
    }

    #[test]
    fn localized_prices_with_no_break_spaces_are_exact() {
        let mut order = fixture();
        order.price = serde_json::json!("1\u{a0}234,50 грн");
        order.products[0].price = serde_json::json!("1\u{202f}234,50 грн");
        order.products[0].quantity = serde_json::json!(2.5);
        let p = plan_uah(&order).unwrap();
        assert_eq!(p.total, dec!(1234.50));
        assert_eq!(p.lines[0].price, dec!(1234.50));
        assert_eq!(p.lines[0].quantity, dec!(2.5));
    }

    #[test]
    fn a_price_in_another_currency_rejects_the_order() {
        let mut order = fixture();
        order.products[0].price = serde_json::json!("12 USD");
        let err = plan_uah(&order).unwrap_err();
        assert!(matches!(err, Rejection::CurrencyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("UAH"), "{err}");
    }

    #[test]
    fn an_unparseable_or_unknown_currency_price_rejects_the_order() {
        let mut order = fixture();
        order.price = serde_json::json!("двісті грн");
        assert!(matches!(
            plan_uah(&order).unwrap_err(),
            Rejection::UnparseablePrice { .. }
        ));
        order.price = serde_json::json!("200 XYZ");
        assert!(matches!(
            plan_uah(&order).unwrap_err(),
            Rejection::UnknownCurrency { .. }
        ));
    }

    #[test]
    fn the_match_key_follows_the_shop_setting_with_fallbacks() {
        let order = fixture();
        let key = |by| {
            plan(&order, Currency::UAH, Language::Ru, by).unwrap().lines[0]
                .key
                .clone()
        };
        assert_eq!(key(MatchProductsBy::PromId), ProductKey::PromId(2555951114));
        assert!(
            matches!(key(MatchProductsBy::Name), ProductKey::Name(n) if n.starts_with("Набор"))
        );
        let mut no_sku = fixture();
        no_sku.products[0].sku = Some(String::new());
        let p = plan(&no_sku, Currency::UAH, Language::Uk, MatchProductsBy::Sku).unwrap();
        assert!(matches!(&p.lines[0].key, ProductKey::Name(_)));
    }

    #[test]
    fn drafts_are_recognized() {
        let mut order = fixture();
        order.status = "draft".into();
        assert!(plan_uah(&order).unwrap().is_draft());
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::*;

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[-0-9 ,.]{0,24}( ?грн| ?UAH| ?\\$)?".prop_map(Value::from),
                "\\PC{0,16}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// The fields of a Prom order and of its lines that an attacker (or a Prom bug)
        /// might fill with anything.
        const ORDER_FIELDS: &[&str] = &[
            "id",
            "date_created",
            "date_modified",
            "status",
            "price",
            "full_price",
            "client_first_name",
            "phone",
            "email",
            "client",
            "products",
        ];
        const LINE_FIELDS: &[&str] = &[
            "id",
            "sku",
            "name",
            "name_multilang",
            "price",
            "quantity",
            "total_price",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// A real order document with some fields replaced by arbitrary JSON is either
            /// refused by serde, or planned, or rejected with a reason: never a panic, and
            /// what is planned fits the books.
            #[test]
            fn a_mangled_order_document_is_refused_or_planned_within_the_books(
                order_changes in prop::collection::vec((prop::sample::select(ORDER_FIELDS), any_json()), 0..4),
                line_changes in prop::collection::vec((prop::sample::select(LINE_FIELDS), any_json()), 0..4),
            ) {
                let mut document = serde_json::to_value(fixture()).unwrap();
                for (field, value) in order_changes {
                    document[field] = value;
                }
                if let Some(line) = document["products"].get_mut(0).filter(|l| l.is_object()) {
                    for (field, value) in line_changes {
                        line[field] = value;
                    }
                }
                let Ok(order) = serde_json::from_value::<PromOrder>(document) else {
                    return Ok(());
                };
                // What serde accepted round-trips.
                let again: PromOrder = serde_json::from_value(serde_json::to_value(&order).unwrap()).unwrap();
                prop_assert_eq!(&again, &order);
                if let Ok(plan) = plan_uah(&order) {
                    prop_assert!(crate::prom::money::book_amount(plan.total).is_ok());
                    for line in &plan.lines {
                        prop_assert!(crate::prom::money::book_amount(line.price).is_ok());
                        prop_assert!(crate::prom::money::Quantity::try_from(line.quantity).is_ok());
                    }
                }
            }

            #[test]
            fn any_json_value_as_an_order_never_panics(value in any_json()) {
                if let Ok(order) = serde_json::from_value::<PromOrder>(json!({"order": value})["order"].clone()) {
                    let _ = plan_uah(&order);
                }
            }
        }
    }
}
