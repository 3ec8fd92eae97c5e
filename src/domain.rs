//! Small value types of RO App's side shared by the importer, the API and the CLI: status
//! kinds, per-shop import settings and employee permissions. Each parses from its wire
//! spelling so that an unknown value is rejected where it enters, not deep inside a role.

use std::{fmt, marker::PhantomData, str::FromStr};

#[derive(Debug, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
    expected: &'static str,
}

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

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// In OpenAPI a string of a closed set, listed from `ALL` so the document cannot
        /// drift from what is accepted.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

wire_enum!(
    /// What an order status means to RO App; rules refer to kinds, shops name statuses.
    StatusKind, "status kind" {
        New => "new",
        InProgress => "in_progress",
        Done => "done",
        Canceled => "canceled",
    }
);

wire_enum!(
    /// How an order line finds an existing product of the account (ARCHITECTURE.md,
    /// 'Products matched, never duplicated').
    MatchProductsBy, "match_products_by" {
        Name => "name",
        Sku => "sku",
        PromId => "prom_id",
    }
);

wire_enum!(
    /// Whether a buyer always becomes a new contact or reuses one (ARCHITECTURE.md,
    /// 'Buyers become contacts').
    ClientMatching, "client_matching" {
        AlwaysNew => "always_new",
        PhoneOrEmail => "phone_or_email",
    }
);

wire_enum!(
    /// The language a shop's product names and descriptions are imported in.
    Language, "language" {
        Uk => "uk",
        Ru => "ru",
    }
);

wire_enum!(
    /// Employee permissions (ARCHITECTURE.md, 'Synced orders need a permission').
    Permission, "permission" {
        GoodsWithoutWriteOff => "goods_without_write_off",
        ManageIntegrations => "manage_integrations",
        ManageEmployees => "manage_employees",
    }
);

wire_enum!(
    /// Where an inbound notification came from; recorded on the sync log.
    Source, "source" {
        Webhook => "webhook",
        Poll => "poll",
        Refresh => "refresh",
        Replay => "replay",
    }
);

wire_enum!(
    /// What became of one inbound or outbound event (the sync log's `outcome`).
    Outcome, "outcome" {
        Processing => "processing",
        Applied => "applied",
        Duplicate => "duplicate",
        Stale => "stale",
        SkippedWrittenOff => "skipped_written_off",
        Skipped => "skipped",
        Rejected => "rejected",
        Sent => "sent",
        Deferred => "deferred",
        Failed => "failed",
    }
);

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
    fn wire_spellings_round_trip() {
        for kind in StatusKind::ALL {
            assert_eq!(kind.as_str().parse::<StatusKind>().unwrap(), *kind);
        }
        assert_eq!(
            "prom_id".parse::<MatchProductsBy>().unwrap(),
            MatchProductsBy::PromId
        );
    }

    #[test]
    fn an_unknown_value_names_what_was_expected() {
        let err = "article".parse::<MatchProductsBy>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("match_products_by") && msg.contains("sku"),
            "{msg}"
        );
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
