//! Realistic Prom documents for the simulator: a small catalogue (so SKUs repeat across
//! orders), and orders shaped like the real ones in `tests/fixtures/prom/` — the same keys
//! with the same JSON types and nulls (a unit test holds them to the fixtures), localized
//! price strings with no-break spaces and a decimal comma, float quantities, names in both
//! languages, a buyer, delivery and payment blocks, and the usual statuses.
//!
//! Everything comes from a seeded generator, so a seed reproduces the same shop.

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Seller custom statuses the simulated shop has: `custom-<id>` and its label.
pub const CUSTOM_STATUSES: [(i64, &str); 2] =
    [(137639, "Очікує оплату"), (137640, "Передано в доставку")];

/// Prom's standard statuses as `order_status_options/list` numbers them.
pub const STANDARD_STATUSES: [(i64, &str); 5] = [
    (0, "pending"),
    (1, "received"),
    (3, "delivered"),
    (4, "canceled"),
    (6, "paid"),
];

/// The Prom id of a product that is in old orders but was deleted from the catalogue:
/// `GET /products/{id}` answers 404 for it.
pub const DELETED_PRODUCT_ID: i64 = 2_555_900_013;

/// One catalogue entry: Prom id, SKU, Russian and Ukrainian names, group, price in kopecks.
struct CatalogEntry {
    id: i64,
    sku: &'static str,
    ru: &'static str,
    uk: &'static str,
    group: (i64, &'static str),
    price_kop: i64,
}

const CATALOG: [CatalogEntry; 10] = [
    CatalogEntry {
        id: 2_555_900_001,
        sku: "B45N2",
        ru: "Набор носков Nike 5 пар",
        uk: "Набір шкарпеток Nike 5 пар",
        group: (101, "Шкарпетки"),
        price_kop: 24_400,
    },
    CatalogEntry {
        id: 2_555_900_002,
        sku: "TS-100",
        ru: "Футболка хлопковая белая",
        uk: "Футболка бавовняна біла",
        group: (102, "Футболки"),
        price_kop: 35_000,
    },
    CatalogEntry {
        id: 2_555_900_003,
        sku: "TS-101",
        ru: "Футболка хлопковая чёрная",
        uk: "Футболка бавовняна чорна",
        group: (102, "Футболки"),
        price_kop: 35_000,
    },
    CatalogEntry {
        id: 2_555_900_004,
        sku: "HD-7",
        ru: "Худи оверсайз серое",
        uk: "Худі оверсайз сіре",
        group: (103, "Худі"),
        price_kop: 123_450,
    },
    CatalogEntry {
        id: 2_555_900_005,
        sku: "CAP-1",
        ru: "Кепка бейсболка",
        uk: "Кепка бейсболка",
        group: (104, "Головні убори"),
        price_kop: 19_990,
    },
    CatalogEntry {
        id: 2_555_900_006,
        sku: "BAG-22",
        ru: "Рюкзак городской 22 л",
        uk: "Рюкзак міський 22 л",
        group: (105, "Рюкзаки"),
        price_kop: 149_900,
    },
    CatalogEntry {
        id: 2_555_900_007,
        sku: "SCK-3",
        ru: "Носки тай-дай 3 пары",
        uk: "Шкарпетки тай-дай 3 пари",
        group: (101, "Шкарпетки"),
        price_kop: 15_950,
    },
    CatalogEntry {
        id: 2_555_900_008,
        sku: "JK-900",
        ru: "Куртка демисезонная",
        uk: "Куртка демісезонна",
        group: (106, "Куртки"),
        price_kop: 289_999,
    },
    CatalogEntry {
        id: 2_555_900_009,
        sku: "BLT-5",
        ru: "Ремень кожаный",
        uk: "Ремінь шкіряний",
        group: (107, "Аксесуари"),
        price_kop: 45_000,
    },
    CatalogEntry {
        id: DELETED_PRODUCT_ID,
        sku: "OLD-1",
        ru: "Шарф вязаный (снят с продажи)",
        uk: "Шарф в'язаний (знятий з продажу)",
        group: (107, "Аксесуари"),
        price_kop: 32_000,
    },
];

const FIRST_NAMES: [&str; 8] = [
    "Олена",
    "Андрій",
    "Марія",
    "Іван",
    "Оксана",
    "Дмитро",
    "Наталія",
    "Сергій",
];
const LAST_NAMES: [&str; 7] = [
    "Коваленко",
    "Шевченко",
    "Бондаренко",
    "Ткаченко",
    "Кравчук",
    "Мельник",
    "Олійник",
];

/// Prom's label of a status (the seller's UI in Ukrainian).
pub fn status_name(status: &str) -> String {
    match status {
        "pending" => "Нове".into(),
        "received" => "Прийняте".into(),
        "delivered" => "Виконане".into(),
        "canceled" => "Скасоване".into(),
        "paid" => "Оплачене".into(),
        "draft" => "Чернетка".into(),
        other => other
            .strip_prefix("custom-")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| CUSTOM_STATUSES.iter().find(|(c, _)| *c == id))
            .map(|(_, name)| (*name).to_owned())
            .unwrap_or_else(|| other.to_owned()),
    }
}

/// Prom's timestamp spelling: microseconds and an explicit offset.
pub fn prom_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A timestamp written by [`prom_time`] (an RFC 3339 one): the simulator only reads back
/// its own documents, so Prom's other spellings need not be understood here.
pub fn parse_prom_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A status Prom has: one of its own (Prom's documentation spells `canceled` both ways)
/// or a seller's `custom-<id>`.
pub fn is_prom_status(status: &str) -> bool {
    match status.trim() {
        "pending" | "received" | "delivered" | "canceled" | "cancelled" | "draft" | "paid" => true,
        other => other
            .strip_prefix("custom-")
            .and_then(|id| id.parse::<i64>().ok())
            .is_some_and(|id| id > 0),
    }
}

/// A price as Prom writes it: `"244 грн"`, `"1 234,50 грн"` (no-break space between
/// thousands, decimal comma, no decimals when there are no kopecks).
pub fn localized_price(kopecks: i64) -> String {
    let hryvnias = kopecks / 100;
    let cents = kopecks % 100;
    let digits = hryvnias.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    if cents == 0 {
        format!("{grouped} грн")
    } else {
        format!("{grouped},{cents:02} грн")
    }
}

/// The catalogue as `GET /products/{id}` answers it (without the deleted product).
pub fn catalog_products(now: DateTime<Utc>) -> Vec<(i64, Value)> {
    CATALOG
        .iter()
        .filter(|p| p.id != DELETED_PRODUCT_ID)
        .map(|p| {
            let price = Decimal::new(p.price_kop, 2);
            let product = json!({
                "id": p.id,
                "external_id": "",
                "name": p.ru,
                "name_multilang": {"ru": p.ru, "uk": p.uk},
                "sku": p.sku,
                "description": format!("<p>{}</p><p>Склад: 95% бавовна, 5% еластан.</p>", p.uk),
                "description_multilang": {
                    "ru": format!("<p>{}</p>", p.ru),
                    "uk": format!("<p>{}</p>", p.uk),
                },
                "price": price.to_string().parse::<f64>().unwrap_or_default(),
                "currency": "UAH",
                "group": {"id": p.group.0, "name": p.group.1,
                          "name_multilang": {"uk": p.group.1, "ru": p.group.1}},
                "measure_unit": "шт.",
                "presence": "available",
                "status": "on_display",
                "date_modified": prom_time(now - Duration::days(30)),
            });
            (p.id, product)
        })
        .collect()
}

fn pick_status(rng: &mut StdRng) -> String {
    let roll: u32 = rng.random_range(0..100);
    match roll {
        0..40 => "pending".into(),
        40..60 => "received".into(),
        60..70 => "paid".into(),
        70..80 => "delivered".into(),
        80..88 => "canceled".into(),
        88..98 => format!("custom-{}", CUSTOM_STATUSES[(roll % 2) as usize].0),
        _ => "draft".into(),
    }
}

/// Order lines for `count` distinct catalogue products.
pub fn lines(rng: &mut StdRng, count: usize) -> Vec<Value> {
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < count.min(CATALOG.len()) {
        let i = rng.random_range(0..CATALOG.len());
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
        .into_iter()
        .map(|i| {
            let p = &CATALOG[i];
            let quantity: i64 = rng.random_range(1..=3);
            line(p, quantity as f64)
        })
        .collect()
}

fn line(p: &CatalogEntry, quantity: f64) -> Value {
    let total = (p.price_kop as f64 * quantity).round() as i64;
    json!({
        "cpa_commission": {"amount": commission(total)},
        "id": p.id,
        "external_id": "",
        "name": p.ru,
        "name_multilang": {"ru": p.ru, "uk": p.uk},
        "sku": p.sku,
        "price": localized_price(p.price_kop),
        "quantity": quantity,
        "measure_unit": "шт.",
        "image": format!("https://images.prom.ua/{}_w100_h100.jpg", p.id),
        "url": format!("https://example-shop.prom.ua/p{}.html", p.id),
        "total_price": localized_price(total),
    })
}

/// Prom's commission on `kopecks` of sales as it writes one (`"32.50"`): a flat 13 %,
/// what one of the real orders was charged.
fn commission_kopecks(kopecks: i64) -> i64 {
    (kopecks * 13 + 50) / 100
}

fn commission(kopecks: i64) -> String {
    let fee = commission_kopecks(kopecks);
    format!("{}.{:02}", fee / 100, fee % 100)
}

/// Kopecks of a line's `price` string written by [`localized_price`].
fn kopecks_of(price: &str) -> i64 {
    let digits: String = price
        .trim_end_matches(" грн")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ',')
        .collect();
    match digits.split_once(',') {
        Some((h, c)) => h.parse::<i64>().unwrap_or(0) * 100 + c.parse::<i64>().unwrap_or(0),
        None => digits.parse::<i64>().unwrap_or(0) * 100,
    }
}

/// Recomputes line totals and the order's `price`/`full_price` after lines changed.
pub fn reprice(order: &mut Value) {
    let mut total = 0;
    if let Some(lines) = order["products"].as_array_mut() {
        for line in lines {
            let unit = kopecks_of(line["price"].as_str().unwrap_or("0"));
            let quantity = line["quantity"].as_f64().unwrap_or(0.0);
            let line_total = (unit as f64 * quantity).round() as i64;
            line["total_price"] = json!(localized_price(line_total));
            line["cpa_commission"] = json!({"amount": commission(line_total)});
            total += line_total;
        }
    }
    order["price"] = json!(localized_price(total));
    order["full_price"] = json!(localized_price(total));
    order["cpa_commission"] = json!({"amount": commission(total), "is_refunded": false});
}

/// A new order with id `id`, created at `created`, in a random (or the given) status.
pub fn order(rng: &mut StdRng, id: i64, created: DateTime<Utc>, status: Option<&str>) -> Value {
    let status = status
        .map(str::to_owned)
        .unwrap_or_else(|| pick_status(rng));
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    let phone = format!("+38050{:07}", rng.random_range(0..10_000_000));
    let client_id: i64 = rng.random_range(200_000_000..300_000_000);
    let email = if rng.random_bool(0.5) {
        Value::Null
    } else {
        json!(format!("buyer{client_id}@example.com"))
    };
    let line_count = rng.random_range(1..=4);
    let prom_payment = status == "paid" || rng.random_bool(0.2);
    let mut order = json!({
        "id": id,
        "date_created": prom_time(created),
        "date_modified": prom_time(created + Duration::milliseconds(842)),
        "client_first_name": first,
        "client_second_name": "",
        "client_last_name": last,
        "client_id": client_id,
        "client": {
            "first_name": first, "last_name": last, "second_name": "",
            "phone": phone, "id": client_id,
        },
        "delivery_recipient": {"first_name": first, "last_name": last, "second_name": "", "phone": phone},
        "email": email,
        "phone": phone,
        "delivery_option": {"id": 18_781_193, "name": "Нова Пошта", "shipping_service": null},
        "delivery_address": "м. Київ, Відділення №12: вул. Хрещатик, 1",
        "delivery_provider_data": {
            "provider": "nova_poshta", "type": "W2W", "sender_warehouse_id": null,
            "recipient_warehouse_id": format!(
                "{:08x}-{:04x}-11eb-a481-b8830365bd14",
                rng.random::<u32>(),
                rng.random::<u16>()
            ),
            "declaration_number": null, "unified_status": null,
        },
        "delivery_cost": 0,
        "cancellation": null,
        "payment_option": if prom_payment {
            json!({"id": 10_827_900, "name": "Пром-оплата"})
        } else {
            json!({"id": 10_827_897, "name": "Наложенный платеж"})
        },
        "payment_data": if prom_payment {
            // `evopay` is the only payment type real orders show (Prom-payment).
            json!({"type": "evopay", "status": "paid", "status_modified": prom_time(created)})
        } else {
            Value::Null
        },
        "price": "",
        "full_price": "",
        "client_notes": "",
        "products": lines(rng, line_count),
        "status": status,
        "status_name": status_name(&status),
        "source": "portal",
        "price_with_special_offer": null,
        "special_offer_discount": null,
        "special_offer_promocode": null,
        "has_order_promo_free_delivery": false,
        "cpa_commission": null,
        "utm": {"medium": "", "source": "", "campaign": ""},
        "dont_call_customer_back": false,
        "ps_promotion": null,
    });
    reprice(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::SeedableRng;

    use super::*;

    /// The real order documents the generated ones must look like.
    const FIXTURES: [&str; 2] = [
        include_str!("../../tests/fixtures/prom/order-pending-cash-on-delivery.json"),
        include_str!("../../tests/fixtures/prom/order-custom-status-prom-payment.json"),
    ];

    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Every path in `v` (`client.phone`, `products[].sku`) with the JSON kinds seen there.
    fn shape(v: &Value, path: &str, into: &mut BTreeMap<String, BTreeSet<&'static str>>) {
        into.entry(path.to_owned()).or_default().insert(kind(v));
        match v {
            Value::Object(fields) => {
                for (key, value) in fields {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    shape(value, &child, into);
                }
            }
            Value::Array(items) => {
                for item in items {
                    shape(item, &format!("{path}[]"), into);
                }
            }
            _ => {}
        }
    }

    fn shape_of(v: &Value) -> BTreeMap<String, BTreeSet<&'static str>> {
        let mut into = BTreeMap::new();
        shape(v, "", &mut into);
        into
    }

    #[test]
    fn generated_orders_have_the_keys_types_and_nulls_of_the_real_documents() {
        // Arrange
        let fixtures: Vec<BTreeMap<String, BTreeSet<&str>>> = FIXTURES
            .iter()
            .map(|doc| shape_of(&serde_json::from_str::<Value>(doc).unwrap()["order"]))
            .collect();
        let mut real = BTreeMap::<String, BTreeSet<&str>>::new();
        for fixture in &fixtures {
            for (path, kinds) in fixture {
                real.entry(path.clone()).or_default().extend(kinds);
            }
        }
        // In every real document, so in every generated one too.
        let always: Vec<&String> = real
            .keys()
            .filter(|path| fixtures.iter().all(|f| f.contains_key(*path)))
            .collect();
        let mut rng = StdRng::seed_from_u64(11);

        // Act
        let generated: Vec<Value> = (0..40)
            .map(|i| order(&mut rng, 340_000_000 + i, Utc::now(), None))
            .collect();

        // Assert
        for order in &generated {
            let shape = shape_of(order);
            for path in &always {
                assert!(shape.contains_key(*path), "{path} missing from {order}");
            }
            for (path, kinds) in &shape {
                let seen = real
                    .get(path)
                    .unwrap_or_else(|| panic!("{path} is in no real order"));
                // Both real buyers left no e-mail; a buyer who gives one has a string.
                let allowed = kinds
                    .iter()
                    .all(|k| seen.contains(k) || (path == "email" && *k == "string"));
                assert!(allowed, "{path}: {kinds:?}, real {seen:?}");
            }
        }
    }

    #[test]
    fn prices_are_written_the_way_prom_writes_them() {
        assert_eq!(localized_price(24_400), "244 грн");
        assert_eq!(localized_price(123_450), "1\u{a0}234,50 грн");
        assert_eq!(localized_price(100_000_000), "1\u{a0}000\u{a0}000 грн");
        assert_eq!(kopecks_of("1\u{a0}234,50 грн"), 123_450);
        assert_eq!(kopecks_of("244 грн"), 24_400);
    }

    #[test]
    fn generated_orders_have_lines_consistent_totals_and_known_statuses() {
        let mut rng = StdRng::seed_from_u64(7);
        for i in 0..50 {
            let order = order(&mut rng, 340_000_000 + i, Utc::now(), None);
            let lines = order["products"].as_array().expect("lines");
            assert!(!lines.is_empty());
            let sum: i64 = lines
                .iter()
                .map(|l| kopecks_of(l["total_price"].as_str().expect("a line total")))
                .sum();
            assert_eq!(kopecks_of(order["price"].as_str().expect("a total")), sum);
            assert!(is_prom_status(order["status"].as_str().expect("a status")));
            for field in ["date_created", "date_modified"] {
                assert!(parse_prom_time(order[field].as_str().unwrap()).is_some());
            }
            // The shapes real orders have: Prom-payment is `evopay`, and an order that
            // is not cancelled carries `cancellation: null`.
            let payment = &order["payment_data"];
            assert!(
                payment.is_null() || payment["type"] == "evopay",
                "{payment}"
            );
            assert!(order["cancellation"].is_null());
            assert!(order.get("cancellation_reason").is_none());
        }
    }

    #[test]
    fn statuses_are_prom_s_own_or_custom_ones() {
        for status in ["pending", "canceled", "cancelled", "custom-137639"] {
            assert!(is_prom_status(status), "{status}");
        }
        for status in ["shipped", "custom-0", "custom-x", ""] {
            assert!(!is_prom_status(status), "{status}");
        }
    }
}
