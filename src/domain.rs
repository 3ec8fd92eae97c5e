//! Small value types of RO App's side shared by the importer, the API and the CLI: status
//! kinds, per-shop import settings and employee permissions (defined with the columns
//! that store them, in `entity::enums`), and the normalizations matching relies on. Each
//! enum parses from its wire spelling so that an unknown value is rejected where it
//! enters, not deep inside a role.

pub mod waybill;

pub use entity::enums::{
    Carrier, ClientMatching, Language, MatchProductsBy, Outcome, Permission, Permissions,
    PromStatusKind, Source, StatusKind, UnknownValue,
};

use std::{fmt, marker::PhantomData, str::FromStr};

/// A value of a closed set (`T`, one of the enums below) as a request spells it. It is
/// typed, so the code cannot parse it as another set (a request type's OpenAPI schema
/// names `T` with `value_type`), but it is checked where the rules say
/// ([`Spelled::parse`], an unknown value refused with `UnknownValue`'s message), not by
/// the JSON parser: a caller lacking the permission hears that first, whatever it sent.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Spelled<T> {
    text: String,
    #[serde(skip)]
    of: PhantomData<T>,
}

impl<T: FromStr<Err = UnknownValue>> Spelled<T> {
    /// The value, spelled exactly.
    pub fn parse(&self) -> Result<T, UnknownValue> {
        self.text.parse()
    }

    /// The value, surrounding spaces forgiven.
    pub fn parse_trimmed(&self) -> Result<T, UnknownValue> {
        self.text.trim().parse()
    }
}

impl<T> From<String> for Spelled<T> {
    fn from(text: String) -> Self {
        Self {
            text,
            of: PhantomData,
        }
    }
}

impl<T> From<&str> for Spelled<T> {
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

impl<T> fmt::Debug for Spelled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.text.fmt(f)
    }
}

/// Brings a Ukrainian phone number to one spelling so `0501234567`, `+380501234567` and
/// `38 (050) 123-45-67` compare equal; other numbers keep their digits.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let normalized = match digits.len() {
        0 => return None,
        10 if digits.starts_with('0') => format!("38{digits}"),
        11 if digits.starts_with("80") => format!("3{digits}"),
        _ => digits,
    };
    Some(normalized)
}

/// Lower-cased, trimmed e-mail, or `None` for an empty one.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    (!email.is_empty()).then_some(email)
}

/// The start of `text`, cut after `max_chars` characters with an ellipsis: how a value
/// from outside is quoted in an error, a sync-log entry or a log line, so a hostile
/// document of a hundred kilobytes is never copied whole.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_cuts_at_a_character_boundary_and_says_it_was_cut() {
        assert_eq!(excerpt("grn", 5), "grn");
        assert_eq!(excerpt("гривня", 3), "гри…");
        assert_eq!(excerpt("", 0), "");
    }

    #[test]
    fn ukrainian_phones_compare_equal_in_every_spelling() {
        let want = Some("380501234567".to_owned());
        assert_eq!(normalize_phone("0501234567"), want);
        assert_eq!(normalize_phone("+380501234567"), want);
        assert_eq!(normalize_phone("38 (050) 123-45-67"), want);
        assert_eq!(normalize_phone("80501234567"), want);
        assert_eq!(normalize_phone(""), None);
    }

    #[test]
    fn emails_compare_case_insensitively() {
        assert_eq!(normalize_email(" A@B.ua "), Some("a@b.ua".to_owned()));
        assert_eq!(normalize_email("  "), None);
    }
}
