//! The closed sets of values stored in text columns (status kinds, shop settings, sync-log
//! sources and outcomes, lanes, outbox kinds, mapping directions, permissions), each one
//! Rust enum that is at once the column type, the JSON spelling and the string form.
//!
//! Every enum spells its variants in snake case, said once per derive (`sea_orm`, `serde`,
//! `strum`) in [`string_enum!`]; the unit tests pin each enum's strings to the ones rows
//! and clients already hold, so a rename cannot slip through. The database refuses other
//! values on PostgreSQL (see the migration adding the CHECK constraints); a row that
//! somehow holds one fails to load with a type error rather than being misread.

use std::{collections::BTreeSet, convert::Infallible, fmt, str::FromStr};

use sea_orm::{entity::prelude::*, Iterable};
use serde::{Deserialize, Serialize};

/// A string that is none of an enum's values, with what was expected; this text is what
/// the API and the CLI answer to a bad value.
#[derive(Debug, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
    expected: String,
}

/// The variant spelled `s` in the database and on the wire.
fn parse<T: ActiveEnum<Value = String>>(s: &str) -> Option<T> {
    T::try_from_value(&s.to_owned()).ok()
}

impl UnknownValue {
    fn new<T: ActiveEnum<Value = String>>(what: &'static str, value: &str) -> Self {
        UnknownValue {
            what,
            value: value.to_owned(),
            expected: T::iter().map(|v| v.to_value() + " ").collect(),
        }
    }
}

/// Declares a string enum stored in a text column: the derives that make it a column type
/// (`DeriveActiveEnum`), JSON (`serde`) and a string (`strum`'s `Display` and
/// `IntoStaticStr`, behind `as_str`), all spelling variants in snake case; parsing by
/// those spellings with an error naming what was expected (`$what`); and an OpenAPI
/// schema listing the values from the enum itself, so the document cannot drift from
/// what is accepted.
///
/// Parsing is not strum's `EnumString`: sea-orm's `EnumIter` derive reads the same
/// `#[strum]` attributes and refuses the ones that would give that error.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            EnumIter,
            DeriveActiveEnum,
            Serialize,
            Deserialize,
            strum::Display,
            strum::IntoStaticStr,
        )]
        #[sea_orm(
            rs_type = "String",
            db_type = "String(StringLen::None)",
            rename_all = "snake_case"
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                parse(s).ok_or_else(|| UnknownValue::new::<Self>($what, s))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(<$name>::iter().map(<$name>::as_str)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_enum!(
    /// What an order status means to RO App; rules refer to kinds, shops name statuses.
    StatusKind, "status kind" {
        New,
        InProgress,
        Done,
        Canceled,
    }
);

string_enum!(
    /// How an order line finds an existing product of the account (ARCHITECTURE.md,
    /// 'Products matched, never duplicated').
    MatchProductsBy, "match_products_by" {
        Name,
        Sku,
        PromId,
    }
);

string_enum!(
    /// Whether a buyer always becomes a new contact or reuses one (ARCHITECTURE.md,
    /// 'Buyers become contacts').
    ClientMatching, "client_matching" {
        AlwaysNew,
        PhoneOrEmail,
    }
);

string_enum!(
    /// The language a shop's product names and descriptions are imported in.
    Language, "language" {
        Uk,
        Ru,
    }
);

string_enum!(
    /// Employee permissions (ARCHITECTURE.md, 'Synced orders need a permission'). The
    /// declaration order is the order they are stored and listed in.
    Permission, "permission" {
        GoodsWithoutWriteOff,
        ManageIntegrations,
        ManageEmployees,
    }
);

string_enum!(
    /// Where an inbound notification came from; recorded on the sync log.
    Source, "source" {
        Webhook,
        Poll,
        Refresh,
        Replay,
    }
);

string_enum!(
    /// What became of one inbound or outbound event (the sync logs' `outcome`).
    Outcome, "outcome" {
        Processing,
        Applied,
        Duplicate,
        Stale,
        SkippedWrittenOff,
        Skipped,
        Rejected,
        Sent,
        Deferred,
        Failed,
    }
);

string_enum!(
    /// Which way one arrow of a shop's status mapping points: Prom status to RO App status
    /// (`inbound`) or back (`outbound`).
    Direction, "direction" {
        Inbound,
        Outbound,
    }
);

string_enum!(
    /// Whether a Prom order status is one of Prom's own (`pending`, `received`, …) or one a
    /// seller made (`custom-<id>`).
    PromStatusKind, "Prom status kind" {
        Standard,
        Custom,
    }
);

string_enum!(
    /// What an outbox row asks the relay to publish: the order's status, or its waybill.
    OutboxKind, "outbox kind" {
        OrderStatus,
        Waybill,
    }
);

string_enum!(
    /// The carriers a waybill (ТТН) set in RO App can be for, spelled as Prom's
    /// `delivery_type` of `POST /delivery/save_declaration_id`.
    Carrier, "carrier" {
        NovaPoshta,
        Ukrposhta,
        Meest,
    }
);

// The lane a dead letter came from, too. Not a `string_enum!`: its OpenAPI schema is
// derived (the doc comments below are part of the API document), and parsing also takes
// the work queues' names.
/// The two message flows. Each has its own work queue, retry tiers and dead letters, so
/// a Prom outage that backs up outbound traffic never delays imports.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    strum::Display,
    strum::IntoStaticStr,
    utoipa::ToSchema,
)]
#[sea_orm(
    rs_type = "String",
    db_type = "String(StringLen::None)",
    rename_all = "snake_case"
)]
#[serde(rename_all = "snake_case")]
#[schema(rename_all = "lowercase")]
#[strum(serialize_all = "snake_case")]
pub enum Lane {
    /// Notifications from Prom (webhook, poller, refresh, replay) to the importer.
    Inbound,
    /// Status changes made in RO App, to the Prom publisher.
    Outbound,
}

impl Lane {
    /// Both lanes, as an array (`Lane::iter()` yields the same).
    pub const ALL: [Lane; 2] = [Lane::Inbound, Lane::Outbound];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Takes each lane's name and its work queue's (`import`, `prom`), as operators type them.
impl FromStr for Lane {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "import" => Ok(Lane::Inbound),
            "prom" => Ok(Lane::Outbound),
            other => parse(other)
                .ok_or_else(|| format!("unknown queue `{other}`: expected inbound or outbound")),
        }
    }
}

/// An employee's permissions, stored as their wire names joined by commas in declaration
/// order. A name this version does not know (written by a newer one) is ignored on
/// reading, so a rollback never locks anybody out; it grants nothing here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, DeriveValueType)]
#[sea_orm(value_type = "String")]
#[serde(transparent)]
pub struct Permissions(pub BTreeSet<Permission>);

impl Permissions {
    pub fn contains(&self, permission: Permission) -> bool {
        self.0.contains(&permission)
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().collect())
    }
}

impl FromStr for Permissions {
    type Err = Infallible;

    fn from_str(stored: &str) -> Result<Self, Self::Err> {
        Ok(stored
            .split(',')
            .filter_map(|name| name.trim().parse().ok())
            .collect())
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, permission) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(permission.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum's spellings in the database, in JSON and as strings: the values rows and
    /// clients already hold, which must never change.
    fn spellings<T>() -> Vec<(String, String, String)>
    where
        T: ActiveEnum<Value = String> + Serialize + fmt::Display,
    {
        T::iter()
            .map(|v| {
                let json = serde_json::to_value(&v).unwrap();
                (
                    v.to_value(),
                    json.as_str().unwrap().to_owned(),
                    v.to_string(),
                )
            })
            .collect()
    }

    fn assert_spelled<T>(expected: &[&str])
    where
        T: ActiveEnum<Value = String> + Serialize + fmt::Display + FromStr,
    {
        let got = spellings::<T>();
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|s| ((*s).to_owned(), (*s).to_owned(), (*s).to_owned()))
            .collect();
        assert_eq!(got, want);
        for s in expected {
            assert!(s.parse::<T>().is_ok(), "{s} parses");
        }
    }

    #[test]
    fn stored_and_wire_spellings_are_unchanged() {
        assert_spelled::<StatusKind>(&["new", "in_progress", "done", "canceled"]);
        assert_spelled::<MatchProductsBy>(&["name", "sku", "prom_id"]);
        assert_spelled::<ClientMatching>(&["always_new", "phone_or_email"]);
        assert_spelled::<Language>(&["uk", "ru"]);
        assert_spelled::<Permission>(&[
            "goods_without_write_off",
            "manage_integrations",
            "manage_employees",
        ]);
        assert_spelled::<Source>(&["webhook", "poll", "refresh", "replay"]);
        assert_spelled::<Outcome>(&[
            "processing",
            "applied",
            "duplicate",
            "stale",
            "skipped_written_off",
            "skipped",
            "rejected",
            "sent",
            "deferred",
            "failed",
        ]);
        assert_spelled::<Direction>(&["inbound", "outbound"]);
        assert_spelled::<OutboxKind>(&["order_status", "waybill"]);
        assert_spelled::<Carrier>(&["nova_poshta", "ukrposhta", "meest"]);
        assert_spelled::<PromStatusKind>(&["standard", "custom"]);
        assert_spelled::<Lane>(&["inbound", "outbound"]);
    }

    #[test]
    fn an_unknown_value_names_what_was_expected() {
        let err = "article".parse::<MatchProductsBy>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`article` is not a valid match_products_by; expected one of: name sku prom_id "
        );
    }

    #[test]
    fn lanes_also_parse_from_their_queue_names() {
        assert_eq!("import".parse::<Lane>().unwrap(), Lane::Inbound);
        assert_eq!("prom".parse::<Lane>().unwrap(), Lane::Outbound);
        assert_eq!(
            "dlq".parse::<Lane>().unwrap_err(),
            "unknown queue `dlq`: expected inbound or outbound"
        );
    }

    #[test]
    fn permissions_are_stored_in_declaration_order_and_unknown_names_are_ignored() {
        let read: Permissions = "manage_employees,future_thing,goods_without_write_off"
            .parse()
            .unwrap();
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            [
                Permission::GoodsWithoutWriteOff,
                Permission::ManageEmployees
            ]
        );
        assert_eq!(read.to_string(), "goods_without_write_off,manage_employees");
        assert_eq!("".parse::<Permissions>().unwrap(), Permissions::default());
        assert_eq!(Permissions::default().to_string(), "");
    }
}
