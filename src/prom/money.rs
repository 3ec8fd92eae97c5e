//! Money and quantities as Prom sends them, turned into exact decimals.
//!
//! Prom prices arrive as localized display strings (`"244 грн"`, `"1 234,50 грн"` with a
//! no-break space between thousands and a decimal comma), sometimes as bare JSON numbers.
//! A wrong price is worse than a rejected order, so parsing is strict: the grouping must be
//! well-formed, the currency must be one we know, and the number is parsed from text into a
//! [`Decimal`] — never through `f64`, which would turn `0.1` into `0.1000000000000000055…`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a price could not be turned into [`Money`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unparseable price {0:?}")]
    Unparseable(String),
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    #[error("negative price")]
    Negative,
    #[error("price {0} does not fit the books (at most 16 digits before the point and 2 after)")]
    OutOfRange(String),
    #[error(
        "price {0} is a JSON number with more digits than a float keeps exactly; send it as text"
    )]
    Imprecise(String),
}

/// The books keep money as `NUMERIC(18,2)` and quantities as `NUMERIC(18,3)`. A value
/// beyond them would be rounded or refused by the database (a 500, or an import retried
/// forever), so it is refused where it enters, naming the value.
const MONEY_SCALE: u32 = 2;
const QUANTITY_SCALE: u32 = 3;
const BOOK_PRECISION: u32 = 18;

/// How many characters of an unreadable value an error quotes: enough to recognise it,
/// never a whole hostile document copied into the sync log.
const QUOTED_CHARS: usize = 64;

/// The start of `text`, as errors quote it.
pub fn excerpt(text: &str) -> String {
    crate::domain::excerpt(text, QUOTED_CHARS)
}

/// True when `value` fits a `NUMERIC(BOOK_PRECISION, scale)` column exactly.
fn fits_column(value: Decimal, scale: u32) -> bool {
    let limit = Decimal::from(10u64.pow(BOOK_PRECISION - scale));
    value.normalize().scale() <= scale && value.abs() < limit
}

/// An amount the books can hold: `NUMERIC(18,2)`, so at most 16 digits before the point
/// and 2 after. Request bodies' prices and computed totals go through this.
pub fn book_amount(value: Decimal) -> Result<Decimal, MoneyError> {
    if fits_column(value, MONEY_SCALE) {
        Ok(value)
    } else {
        Err(MoneyError::OutOfRange(value.to_string()))
    }
}

/// The currencies a Prom seller (Ukraine, and historically Russia) can price in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)] // ISO 4217 codes read best as written.
pub enum Currency {
    UAH,
    USD,
    EUR,
    PLN,
    RUB,
}

impl Currency {
    pub const ALL: [Currency; 5] = [
        Currency::UAH,
        Currency::USD,
        Currency::EUR,
        Currency::PLN,
        Currency::RUB,
    ];

    /// ISO 4217 code, the form stored in the database and sent over JSON.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::UAH => "UAH",
            Currency::USD => "USD",
            Currency::EUR => "EUR",
            Currency::PLN => "PLN",
            Currency::RUB => "RUB",
        }
    }

    /// Maps a display token next to a price (`"грн"`, `"₴"`, `"$"`, `"UAH"`) to a currency.
    /// Case-insensitive because Prom's spelling varies with the interface language.
    pub fn from_symbol(token: &str) -> Option<Currency> {
        let t = token.trim().to_lowercase();
        let c = match t.as_str() {
            "грн" | "грн." | "₴" | "uah" => Currency::UAH,
            "$" | "usd" | "us$" => Currency::USD,
            "€" | "eur" => Currency::EUR,
            "zł" | "pln" => Currency::PLN,
            "руб" | "руб." | "₽" | "rub" | "р." => Currency::RUB,
            _ => return None,
        };
        Some(c)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Accepts ISO codes only (any case); display symbols go through [`Currency::from_symbol`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim();
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(code))
            .ok_or_else(|| MoneyError::UnknownCurrency(excerpt(s)))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An exact amount, with the currency if the source named one. `currency: None` means
/// "the account's currency" (Prom's bare numbers); the importer decides what a mismatch
/// means, not the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Option<Currency>,
}

impl Money {
    /// Parses a Prom price string such as `"1 234,50 грн"`, `"₴ 99"`, `"$12.5"`, `"1234.50"`.
    pub fn parse(s: &str) -> Result<Money, MoneyError> {
        let unparseable = || MoneyError::Unparseable(excerpt(s));
        let trimmed = s.trim();

        let (Some(first), Some(last)) = (
            trimmed.find(|c: char| c.is_ascii_digit()),
            trimmed.rfind(|c: char| c.is_ascii_digit()),
        ) else {
            return Err(unparseable());
        };
        // The number runs from the first digit to the last; whatever surrounds it is a sign
        // and/or a currency token. `last` is a byte index of an ASCII digit, so +1 is a
        // char boundary.
        let (mut prefix, number, suffix) = (
            trimmed[..first].trim(),
            &trimmed[first..=last],
            trimmed[last + 1..].trim(),
        );

        let mut negative = false;
        if let Some(rest) = prefix
            .strip_suffix('-')
            .or_else(|| prefix.strip_suffix('\u{2212}'))
        {
            negative = true;
            prefix = rest.trim();
        } else if let Some(rest) = prefix.strip_suffix('+') {
            prefix = rest.trim();
        }
        // A sign before the currency symbol ("-$12") is as common as after it ("$-12").
        if let Some(rest) = prefix
            .strip_prefix('-')
            .or_else(|| prefix.strip_prefix('\u{2212}'))
        {
            negative = true;
            prefix = rest.trim();
        }

        let currency = match (currency_token(prefix, s)?, currency_token(suffix, s)?) {
            (Some(a), Some(b)) if a != b => return Err(unparseable()),
            (a, b) => a.or(b),
        };

        let amount = parse_localized_number(number).ok_or_else(unparseable)?;
        if negative && !amount.is_zero() {
            return Err(MoneyError::Negative);
        }
        let amount = book_amount(amount)?;
        Ok(Money { amount, currency })
    }

    /// Reads a price field that may be a localized string or a JSON number.
    pub fn from_json(v: &serde_json::Value) -> Result<Money, MoneyError> {
        match v {
            serde_json::Value::String(s) => Money::parse(s),
            serde_json::Value::Number(n) => {
                let amount = decimal_from_json_number(n)
                    .ok_or_else(|| MoneyError::Unparseable(excerpt(&n.to_string())))?;
                if amount.is_sign_negative() && !amount.is_zero() {
                    return Err(MoneyError::Negative);
                }
                let amount = book_amount(amount)?;
                if !is_exact_json_number(n, amount, MONEY_SCALE) {
                    return Err(MoneyError::Imprecise(n.to_string()));
                }
                Ok(Money {
                    amount,
                    currency: None,
                })
            }
            other => Err(MoneyError::Unparseable(excerpt(&other.to_string()))),
        }
    }

    /// True when this amount may be booked in an account kept in `account`: either the
    /// source named that currency or it named none (Prom's bare numbers).
    pub fn is_in(&self, account: Currency) -> bool {
        self.currency.is_none_or(|c| c == account)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.currency {
            Some(c) => write!(f, "{} {}", self.amount, c),
            None => write!(f, "{}", self.amount),
        }
    }
}

/// Classifies the text beside a number. Empty is "no currency"; a token made only of
/// punctuation (`"12."`, `"12,"`) means a malformed number rather than a foreign currency.
fn currency_token(token: &str, original: &str) -> Result<Option<Currency>, MoneyError> {
    if token.is_empty() {
        return Ok(None);
    }
    if let Some(c) = Currency::from_symbol(token) {
        return Ok(Some(c));
    }
    if token
        .chars()
        .all(|c| c.is_ascii_punctuation() || c.is_whitespace())
    {
        return Err(MoneyError::Unparseable(excerpt(original)));
    }
    Err(MoneyError::UnknownCurrency(excerpt(token)))
}

/// Spaces that Prom (and browsers copying from it) put between thousands.
fn is_group_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{00A0}' | '\u{202F}' | '\u{2009}' | '\u{2007}' | '\u{200A}'
    )
}

/// Parses `"1 234,50"`, `"1234.50"`, `"1,234.50"`, `"1.234,50"` into an exact decimal.
///
/// Rules: the decimal separator is the last `.`/`,` when both appear, or the only one when
/// a single separator appears once; repeated separators of one kind are thousands grouping.
/// Grouping must be well-formed (1–3 leading digits, then groups of exactly 3), so that
/// `"12,3,4"` is an error instead of a silently wrong 1234.
fn parse_localized_number(s: &str) -> Option<Decimal> {
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == ',' || is_group_space(c))
    {
        return None;
    }
    let dots = s.matches('.').count();
    let commas = s.matches(',').count();
    let decimal_sep = match (dots, commas) {
        (0, 0) => None,
        (_, 0) if dots == 1 => Some('.'),
        (0, _) if commas == 1 => Some(','),
        (0, _) | (_, 0) => None, // several of one kind: all are grouping
        _ => {
            let (last_dot, last_comma) = (s.rfind('.')?, s.rfind(',')?);
            Some(if last_dot > last_comma { '.' } else { ',' })
        }
    };
    let (int_part, frac_part) = match decimal_sep {
        Some(sep) => {
            let (i, f) = s.rsplit_once(sep)?;
            (i, Some(f))
        }
        None => (s, None),
    };

    let int_digits = ungroup(int_part, decimal_sep)?;
    let mut text = int_digits;
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        text.push('.');
        text.push_str(frac);
    }
    Decimal::from_str(&text).ok()
}

/// Removes thousands separators from the integer part after checking their placement.
/// Any separator other than the decimal one counts; mixing kinds ("1 234.567") is refused.
fn ungroup(int_part: &str, decimal_sep: Option<char>) -> Option<String> {
    let is_sep = |c: char| is_group_space(c) || ((c == '.' || c == ',') && Some(c) != decimal_sep);
    let groups: Vec<&str> = int_part.split(is_sep).collect();
    if groups.len() > 1 {
        let mut kinds =
            int_part
                .chars()
                .filter(|&c| is_sep(c))
                .map(|c| if is_group_space(c) { ' ' } else { c });
        let first_kind = kinds.next()?;
        if !kinds.all(|k| k == first_kind) {
            return None;
        }
        let (head, tail) = groups.split_first()?;
        if head.is_empty() || head.len() > 3 || tail.iter().any(|g| g.len() != 3) {
            return None;
        }
    }
    let digits: String = groups.concat();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(digits)
}

/// Exact decimal from a JSON number's own text (`80.0` → `80.0`, `0.1` → `0.1`). serde_json
/// prints floats in shortest round-trip form, which is the literal the sender wrote for any
/// price-sized value; exponent forms (`1e-7`) go through `from_scientific`.
/// Significant decimal digits an `f64` carries exactly, whatever its exponent.
const F64_EXACT_DIGITS: u32 = 15;

/// True when `n`, read as `amount`, is surely what the sender wrote. serde_json reads
/// every non-integer as an `f64`, which holds 15 significant digits exactly: with `scale`
/// decimals allowed, a float is trusted below `10^(15 - scale)`. Above that
/// `2588794086232713.77` would arrive as `2588794086232714.0`, a wrong price, so it is
/// refused instead (Prom sends such amounts as text).
fn is_exact_json_number(n: &serde_json::Number, amount: Decimal, scale: u32) -> bool {
    n.is_i64() || n.is_u64() || amount.abs() < Decimal::from(10u64.pow(F64_EXACT_DIGITS - scale))
}

fn decimal_from_json_number(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// Why a line quantity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is not a number: {0}")]
    NotANumber(String),
    #[error("quantity must be greater than zero, got {0}")]
    NotPositive(String),
    #[error(
        "quantity {0} does not fit the books (at most 15 digits before the point and 3 after)"
    )]
    OutOfRange(String),
    #[error("quantity {0} is a JSON number with more digits than a float keeps exactly; send it as text")]
    Imprecise(String),
}

/// A line quantity: a positive decimal (Prom sends floats such as `1.0` or `2.5`, and goods
/// sold by weight or length are fractional). Normalized, so `1.0` is stored and shown as `1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(Decimal);

impl Quantity {
    pub const fn get(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Quantity {
    type Error = QuantityError;

    fn try_from(d: Decimal) -> Result<Self, Self::Error> {
        if d <= Decimal::ZERO {
            Err(QuantityError::NotPositive(d.to_string()))
        } else if !fits_column(d, QUANTITY_SCALE) {
            Err(QuantityError::OutOfRange(d.to_string()))
        } else {
            Ok(Quantity(d.normalize()))
        }
    }
}

impl TryFrom<&serde_json::Value> for Quantity {
    type Error = QuantityError;

    fn try_from(v: &serde_json::Value) -> Result<Self, Self::Error> {
        let d = match v {
            serde_json::Value::Number(n) => {
                let d = decimal_from_json_number(n)
                    .ok_or_else(|| QuantityError::NotANumber(excerpt(&n.to_string())))?;
                let quantity = Quantity::try_from(d)?;
                if !is_exact_json_number(n, d, QUANTITY_SCALE) {
                    return Err(QuantityError::Imprecise(n.to_string()));
                }
                return Ok(quantity);
            }
            serde_json::Value::String(s) => {
                // A decimal comma is accepted: quantities come from the same localized UI.
                let t = s.trim().replace(',', ".");
                Decimal::from_str(&t)
                    .or_else(|_| Decimal::from_scientific(&t))
                    .ok()
            }
            _ => None,
        }
        .ok_or_else(|| QuantityError::NotANumber(excerpt(&v.to_string())))?;
        Quantity::try_from(d)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::try_from(&serde_json::Value::String(s.to_owned()))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(deserializer)?;
        Quantity::try_from(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn assert_money(s: &str, amount: &str, currency: Option<Currency>) {
        let m = money(s);
        assert_eq!(m.amount, dec(amount), "amount of {s:?}");
        assert_eq!(m.currency, currency, "currency of {s:?}");
    }

    #[test]
    fn parses_prom_examples() {
        use Currency::*;
        assert_money("244 грн", "244", Some(UAH));
        assert_money("250 грн", "250", Some(UAH));
        assert_money("1 234,50 грн", "1234.50", Some(UAH));
        assert_money("1234.50", "1234.50", None);
        assert_money("1 234.50 UAH", "1234.50", Some(UAH));
        assert_money("₴ 99", "99", Some(UAH));
        assert_money("₴99", "99", Some(UAH));
        assert_money("$12.5", "12.5", Some(USD));
        assert_money("12,5 €", "12.5", Some(EUR));
        assert_money("12.5 EUR", "12.5", Some(EUR));
        assert_money("10 zł", "10", Some(PLN));
        assert_money("10 PLN", "10", Some(PLN));
        assert_money("100 руб.", "100", Some(RUB));
        assert_money("100 руб", "100", Some(RUB));
        assert_money("100 ₽", "100", Some(RUB));
        assert_money("100 RUB", "100", Some(RUB));
        assert_money("99 грн.", "99", Some(UAH));
        assert_money("12 USD", "12", Some(USD));
        assert_money("  7  ", "7", None);
        assert_money("0 грн", "0", Some(UAH));
    }

    #[test]
    fn exact_decimal_no_float_rounding() {
        let m = money("1 234,50 грн");
        assert_eq!(m.amount, Decimal::new(123450, 2));
        assert_eq!(m.amount.to_string(), "1234.50");
        assert_eq!(money("0,1").amount.to_string(), "0.1");
        assert_eq!(
            money("0.1").amount + money("0.2").amount,
            money("0.3").amount
        );
    }

    #[test]
    fn every_thousands_space_is_accepted() {
        for sep in [' ', '\u{00A0}', '\u{202F}', '\u{2009}'] {
            let s = format!("1{sep}234,50{sep}грн");
            assert_money(&s, "1234.50", Some(Currency::UAH));
            let s = format!("12{sep}345{sep}678 грн");
            assert_money(&s, "12345678", Some(Currency::UAH));
        }
    }

    #[test]
    fn other_grouping_styles() {
        assert_money("1,234.50", "1234.50", None);
        assert_money("1.234,50", "1234.50", None);
        assert_money("1,234,567.89 USD", "1234567.89", Some(Currency::USD));
        assert_money("1.234.567", "1234567", None);
        assert_money("1,5", "1.5", None);
    }

    #[test]
    fn garbage_is_unparseable() {
        for s in [
            "",
            "   ",
            "abc грн",
            "грн",
            "12,3,4",
            "12.3.4",
            "1 23,50 грн",
            "1234 567",
            "1 234.567,8 9",
            "12abc34",
            "12 34",
            "12.",
            "12,",
            "1,2.3,4",
            "99999999999999999999999999999999 грн",
        ] {
            assert!(
                matches!(Money::parse(s), Err(MoneyError::Unparseable(_))),
                "{s:?} → {:?}",
                Money::parse(s)
            );
        }
    }

    #[test]
    fn mismatched_prefix_and_suffix_currencies_rejected() {
        assert!(matches!(
            Money::parse("$12 EUR"),
            Err(MoneyError::Unparseable(_))
        ));
        assert_money("$12 USD", "12", Some(Currency::USD));
    }

    #[test]
    fn unknown_currency_rejected() {
        assert_eq!(
            Money::parse("12 XYZ"),
            Err(MoneyError::UnknownCurrency("XYZ".into()))
        );
        assert_eq!(
            Money::parse("12 ¥"),
            Err(MoneyError::UnknownCurrency("¥".into()))
        );
        assert!(matches!(
            Money::parse("£5"),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn negative_rejected() {
        for s in ["-5", "-5 грн", "−5 грн", "$-5", "-$5", "- 1 234,50 грн"] {
            assert_eq!(Money::parse(s), Err(MoneyError::Negative), "{s:?}");
        }
        assert_eq!(Money::from_json(&json!(-1.5)), Err(MoneyError::Negative));
        assert_eq!(money("-0").amount, Decimal::ZERO);
    }

    #[test]
    fn error_messages_are_clear() {
        assert_eq!(
            Money::parse("abc грн").unwrap_err().to_string(),
            "unparseable price \"abc грн\""
        );
        assert_eq!(
            Money::parse("12 XYZ").unwrap_err().to_string(),
            "unknown currency \"XYZ\""
        );
        assert_eq!(
            Money::parse("-1").unwrap_err().to_string(),
            "negative price"
        );
    }

    #[test]
    fn from_json_string_and_number() {
        let m = Money::from_json(&json!("1 234,50 грн")).unwrap();
        assert_eq!(m.amount, dec("1234.50"));
        assert_eq!(m.currency, Some(Currency::UAH));

        let m = Money::from_json(&json!(80.0)).unwrap();
        assert_eq!(m.amount.to_string(), "80.0");
        assert_eq!(m.currency, None);
        assert_eq!(
            Money::from_json(&json!(0.1)).unwrap().amount.to_string(),
            "0.1"
        );
        assert_eq!(Money::from_json(&json!(244)).unwrap().amount, dec("244"));
        assert_eq!(
            Money::from_json(&json!(1234.5)).unwrap().amount,
            dec("1234.5")
        );
        assert!(matches!(
            Money::from_json(&json!(null)),
            Err(MoneyError::Unparseable(_))
        ));
        assert!(matches!(
            Money::from_json(&json!({"amount": 1})),
            Err(MoneyError::Unparseable(_))
        ));
    }

    #[test]
    fn from_json_parses_number_from_raw_text() {
        let v: serde_json::Value = serde_json::from_str("19.99").unwrap();
        assert_eq!(Money::from_json(&v).unwrap().amount, dec("19.99"));
        let v: serde_json::Value = serde_json::from_str("1e2").unwrap();
        assert_eq!(Money::from_json(&v).unwrap().amount, dec("100"));
    }

    #[test]
    fn currency_codes_and_serde() {
        assert_eq!("UAH".parse::<Currency>().unwrap(), Currency::UAH);
        assert_eq!("eur".parse::<Currency>().unwrap(), Currency::EUR);
        assert!(matches!(
            "грн".parse::<Currency>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>().unwrap(), c);
            assert_eq!(c.to_string(), c.code());
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.code()));
            assert_eq!(serde_json::from_str::<Currency>(&j).unwrap(), c);
        }
        assert!(serde_json::from_str::<Currency>("\"XYZ\"").is_err());
    }

    #[test]
    fn money_serde_and_currency_check() {
        let m = money("1 234,50 грн");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"amount": "1234.50", "currency": "UAH"})
        );
        assert_eq!(m.to_string(), "1234.50 UAH");
        assert!(m.is_in(Currency::UAH));
        assert!(!m.is_in(Currency::USD));
        assert!(money("5").is_in(Currency::USD));
    }

    #[test]
    fn quantity_from_json() {
        let q = Quantity::try_from(&json!(1.0)).unwrap();
        assert_eq!(q.get(), Decimal::ONE);
        assert_eq!(q.to_string(), "1");
        assert_eq!(Quantity::try_from(&json!(2.5)).unwrap().to_string(), "2.5");
        assert_eq!(Quantity::try_from(&json!(3)).unwrap().to_string(), "3");
        assert_eq!(
            Quantity::try_from(&json!("2.50")).unwrap().to_string(),
            "2.5"
        );
        assert_eq!(
            Quantity::try_from(&json!("0,75")).unwrap().to_string(),
            "0.75"
        );
        assert_eq!(Quantity::try_from(&json!(0.1)).unwrap().get(), dec("0.1"));
    }

    #[test]
    fn quantity_must_be_positive_number() {
        for v in [json!(0), json!(0.0), json!(-1), json!("-2.5"), json!("0")] {
            assert!(
                matches!(Quantity::try_from(&v), Err(QuantityError::NotPositive(_))),
                "{v}"
            );
        }
        for v in [
            json!(null),
            json!("abc"),
            json!(""),
            json!(true),
            json!([1]),
        ] {
            assert!(
                matches!(Quantity::try_from(&v), Err(QuantityError::NotANumber(_))),
                "{v}"
            );
        }
    }

    #[test]
    fn quantity_serde_as_decimal_string() {
        let q = Quantity::try_from(&json!(2.0)).unwrap();
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"2\"");
        assert_eq!(serde_json::from_str::<Quantity>("\"2\"").unwrap(), q);
        assert_eq!(serde_json::from_str::<Quantity>("2.0").unwrap(), q);
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert_eq!("1.5".parse::<Quantity>().unwrap().to_string(), "1.5");
    }

    #[test]
    fn amounts_beyond_numeric_18_2_are_out_of_range_not_rounded() {
        assert_eq!(
            money("9999999999999999.99").amount,
            dec("9999999999999999.99")
        );
        for too_big in [
            "10000000000000000",
            "79228162514264337593543950335",
            "1.005",
        ] {
            assert!(
                matches!(Money::parse(too_big), Err(MoneyError::OutOfRange(_))),
                "{too_big}"
            );
        }
        assert!(matches!(
            Money::from_json(&json!(1e20)),
            Err(MoneyError::OutOfRange(_))
        ));
        assert_eq!(book_amount(dec("12.50")), Ok(dec("12.50")));
    }

    #[test]
    fn quantities_beyond_numeric_18_3_are_out_of_range() {
        assert!(Quantity::try_from(dec("999999999999999.999")).is_ok());
        for too_big in [json!(1e20), json!("1000000000000000"), json!("0.0001")] {
            assert!(
                matches!(
                    Quantity::try_from(&too_big),
                    Err(QuantityError::OutOfRange(_))
                ),
                "{too_big}"
            );
        }
    }

    #[test]
    fn an_unreadable_value_is_quoted_only_in_part() {
        let long = "x".repeat(10_000);
        for input in [format!("1{long}"), format!("1 2{long}3")] {
            let (MoneyError::Unparseable(quoted) | MoneyError::UnknownCurrency(quoted)) =
                Money::parse(&input).unwrap_err()
            else {
                panic!("unreadable expected");
            };
            assert!(quoted.chars().count() <= 65, "{}", quoted.len());
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Exact decimals of every size and scale a `Decimal` can hold.
        fn any_decimal() -> impl Strategy<Value = Decimal> {
            (any::<i64>(), 0u32..=28).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn money_parsing_never_panics(text in "\\PC{0,40}") {
                let _ = Money::parse(&text);
            }

            #[test]
            fn price_shaped_text_parses_or_is_refused_never_panics(
                text in "[-+₴$€]{0,2}[0-9 \u{a0},.]{0,30}( ?(грн|UAH|USD|руб\\.|₴|\\$|XYZ))?",
            ) {
                if let Ok(money) = Money::parse(&text) {
                    prop_assert!(book_amount(money.amount).is_ok());
                    // What is accepted round-trips through its display form.
                    prop_assert_eq!(Money::parse(&money.to_string()), Ok(money));
                }
            }

            #[test]
            fn a_json_number_is_booked_exactly_or_refused(amount in any_decimal()) {
                let number: serde_json::Value = serde_json::from_str(&amount.to_string()).unwrap();
                let fits = amount.normalize().scale() <= 2
                    && amount.abs() < Decimal::from(10u64.pow(13));
                let digits = amount.normalize().mantissa().unsigned_abs().to_string().len();
                let float_can_hold_it = number.is_i64() || number.is_u64() || digits <= 15;
                match Money::from_json(&number) {
                    // What a float can carry is booked exactly as sent, never as the
                    // float's neighbour; beyond that (`0.3099777` and 15 more digits)
                    // JSON itself cannot tell, and the amount stays where floats are exact.
                    Ok(money) if float_can_hold_it => prop_assert_eq!(money.amount, amount),
                    Ok(money) => {
                        prop_assert!(money.amount.abs() < Decimal::from(10u64.pow(13)));
                        prop_assert!(money.amount.normalize().scale() <= 2);
                    }
                    Err(MoneyError::Negative) => prop_assert!(amount.is_sign_negative()),
                    Err(e) => {
                        prop_assert!(
                            matches!(e, MoneyError::OutOfRange(_) | MoneyError::Imprecise(_)),
                            "{e}"
                        );
                        // A price that fits and that a float holds exactly is never refused.
                        prop_assert!(!fits || amount.is_sign_negative(), "{amount} refused: {e}");
                    }
                }
            }

            #[test]
            fn quantities_parse_or_are_refused_and_round_trip(text in "\\PC{0,30}") {
                if let Ok(quantity) = text.parse::<Quantity>() {
                    prop_assert!(quantity.get() > Decimal::ZERO);
                    prop_assert_eq!(quantity.to_string().parse::<Quantity>(), Ok(quantity));
                }
            }

            #[test]
            fn a_decimal_quantity_fits_numeric_18_3_or_is_refused(amount in any_decimal()) {
                if let Ok(quantity) = Quantity::try_from(amount) {
                    prop_assert!(quantity.get().normalize().scale() <= 3);
                    prop_assert!(quantity.get() < Decimal::from(10u64.pow(15)));
                    prop_assert_eq!(quantity.to_string().parse::<Quantity>(), Ok(quantity));
                }
            }
        }
    }
}
