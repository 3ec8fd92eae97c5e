//! Typed identifiers shared by every role: the promsync shop, the Prom order, and the
//! event id that makes inbound notifications idempotent.
//!
//! The integer ids are newtypes so a shop id can never be passed where a Prom order id is
//! expected, and they refuse zero/negative values at the edge (CLI, URL path, JSON) so the
//! rest of the code never has to re-check. Prom order ids exceed `i32` (e.g. `32345434343`),
//! hence `i64` everywhere.
//!
//! Event ids are UUID v5 for notifications that can be delivered more than once (webhook
//! retries, overlapping poll windows): the same notification always maps to the same id,
//! and the importer's inbox table (primary key = event id) turns a redelivery into a no-op.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a textual or numeric id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be a positive integer, got {value}")]
    NotPositive { kind: &'static str, value: i64 },
    #[error("{kind} is not an integer: {input:?}")]
    NotAnInteger { kind: &'static str, input: String },
    #[error("event id is not a UUID: {0:?}")]
    NotAUuid(String),
}

/// Generates a positive `i64` id newtype; the two users differ only in name, so a macro
/// keeps their trait sets from drifting apart.
macro_rules! positive_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        // `try_from` rather than `transparent` so a JSON `0` or `-1` is rejected on input too;
        // the wire form is still the bare integer.
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;

            fn try_from(value: i64) -> Result<Self, Self::Error> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(IdError::NotPositive { kind: $kind, value })
                }
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let value: i64 = s.trim().parse().map_err(|_| IdError::NotAnInteger {
                    kind: $kind,
                    input: s.to_owned(),
                })?;
                Self::try_from(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

positive_id!(
    /// A promsync shop (one Prom seller account connected to one RO App account).
    ShopId,
    "shop id"
);

positive_id!(
    /// A Prom order id, which is also the order number the buyer and seller see.
    PromOrderId,
    "Prom order id"
);

/// Namespace for v5 event ids. Fixed forever: changing it would make every redelivered
/// notification look new and be imported twice.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6c1b_9f0e_4d2a_5b7c_9e31_a8f4_02d6_e5b1);

/// Identity of one inbound notification, the inbox key that deduplicates redeliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A pushed notification: the sender's `webhook-id` is stable across its retries.
    pub fn for_webhook(shop: ShopId, webhook_id: &str) -> EventId {
        Self::v5(&format!("webhook:{shop}:{webhook_id}"))
    }

    /// A polled order version: overlapping poll windows see the same `(order,
    /// date_modified)` again, and must produce the same id. `version` is `date_modified`
    /// as Prom wrote it (its `date_created` for an order listed without one).
    pub fn for_poll(shop: ShopId, order_id: i64, version: &str) -> EventId {
        Self::v5(&format!("poll:{shop}:{order_id}:{version}"))
    }

    /// For events that are unique by nature (an operator's manual refresh).
    pub fn random() -> EventId {
        EventId(Uuid::new_v4())
    }

    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    fn v5(name: &str) -> EventId {
        EventId(Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes()))
    }
}

impl From<Uuid> for EventId {
    fn from(id: Uuid) -> Self {
        EventId(id)
    }
}

impl From<EventId> for Uuid {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl FromStr for EventId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(EventId)
            .map_err(|_| IdError::NotAUuid(s.to_owned()))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop(n: i64) -> ShopId {
        ShopId::try_from(n).unwrap()
    }

    #[test]
    fn shop_id_must_be_positive() {
        assert_eq!(shop(7).get(), 7);
        assert!(matches!(
            ShopId::try_from(0),
            Err(IdError::NotPositive { value: 0, .. })
        ));
        assert!(ShopId::try_from(-3).is_err());
    }

    #[test]
    fn shop_id_from_str_and_display() {
        assert_eq!("42".parse::<ShopId>().unwrap(), shop(42));
        assert_eq!(" 42 ".parse::<ShopId>().unwrap(), shop(42));
        assert!("0".parse::<ShopId>().is_err());
        assert!("abc".parse::<ShopId>().is_err());
        assert!("".parse::<ShopId>().is_err());
        assert_eq!(shop(42).to_string(), "42");
    }

    #[test]
    fn shop_id_serde_is_bare_integer_and_validated() {
        assert_eq!(serde_json::to_string(&shop(5)).unwrap(), "5");
        assert_eq!(serde_json::from_str::<ShopId>("5").unwrap(), shop(5));
        assert!(serde_json::from_str::<ShopId>("0").is_err());
        assert!(serde_json::from_str::<ShopId>("-1").is_err());
    }

    #[test]
    fn prom_order_id_exceeds_i32() {
        let id: PromOrderId = "32345434343".parse().unwrap();
        assert_eq!(id.get(), 32_345_434_343);
        assert_eq!(id.to_string(), "32345434343");
        assert_eq!(
            serde_json::from_str::<PromOrderId>("32345434343").unwrap(),
            id
        );
        assert!(PromOrderId::try_from(0).is_err());
    }

    #[test]
    fn event_ids_are_deterministic() {
        let a = EventId::for_webhook(shop(1), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        let b = EventId::for_webhook(shop(1), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(a, b);
        assert_ne!(
            a,
            EventId::for_webhook(shop(2), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
        );
        assert_ne!(a, EventId::for_webhook(shop(1), "msg_other"));

        let p = EventId::for_poll(shop(1), 338390710, "2025-04-07T06:46:43.570150+00:00");
        assert_eq!(
            p,
            EventId::for_poll(shop(1), 338390710, "2025-04-07T06:46:43.570150+00:00")
        );
        assert_ne!(
            p,
            EventId::for_poll(shop(1), 338390710, "2025-04-07T06:46:44.000000+00:00")
        );
        assert_eq!(p.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn event_id_value_is_pinned() {
        // Pinned so that a change of namespace or name format (which would silently
        // re-import redelivered events) fails a test.
        let expected = Uuid::new_v5(&EVENT_NAMESPACE, b"webhook:1:abc");
        assert_eq!(*EventId::for_webhook(shop(1), "abc").as_uuid(), expected);
        assert_eq!(
            EVENT_NAMESPACE.to_string(),
            "6c1b9f0e-4d2a-5b7c-9e31-a8f402d6e5b1"
        );
    }

    #[test]
    fn random_event_ids_differ() {
        let a = EventId::random();
        assert_ne!(a, EventId::random());
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn event_id_string_round_trip() {
        let id = EventId::for_poll(shop(3), 10, "x");
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.parse::<EventId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<EventId>(&format!("\"{s}\"")).unwrap(),
            id
        );
        assert!("not-a-uuid".parse::<EventId>().is_err());
    }
}
