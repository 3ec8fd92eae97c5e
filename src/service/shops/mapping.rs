//! A shop's status mapping: which RO App status an imported Prom status becomes
//! (inbound) and which Prom status an RO App status is sent as (outbound). A mapping is
//! read and replaced whole, after checking every Prom status against Prom's standard set
//! and the shop's own statuses as last fetched from Prom, and every RO App status against
//! the account's.

use std::collections::{BTreeMap, BTreeSet};

use entity::{enums::Direction, order_statuses, status_mappings};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{prom_statuses::custom_codes, shop_for_manager};
use crate::service::{Caller, ServiceError, ServiceResult, Services};

/// Prom statuses an inbound mapping may name (`draft` orders are never imported).
pub const INBOUND_PROM_STATUSES: [&str; 5] =
    ["pending", "received", "delivered", "canceled", "paid"];
/// Prom statuses promsync may set (`set_status`).
pub const OUTBOUND_PROM_STATUSES: [&str; 3] = ["received", "delivered", "canceled"];

/// A shop's whole status mapping. A Prom status or RO App status left out is unmapped.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatusMapping {
    /// Prom status (`pending`, `received`, `delivered`, `canceled`, `paid`,
    /// `custom-<id>`) → RO App status id.
    #[serde(default)]
    #[schema(schema_with = inbound_mapping_schema)]
    pub inbound: BTreeMap<String, i64>,
    /// RO App status id (as a string key) → Prom status (`received`, `delivered`,
    /// `canceled`, `custom-<id>`).
    #[serde(default)]
    #[schema(schema_with = outbound_mapping_schema)]
    pub outbound: BTreeMap<String, String>,
}

/// A Prom status a mapping may name: one of `known` or a custom status `custom-<id>`.
fn prom_status_schema(known: &[&str]) -> utoipa::openapi::Schema {
    use utoipa::openapi::{schema::Type, ObjectBuilder, OneOfBuilder};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(known.iter().copied())),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(CUSTOM_PROM_STATUS_PATTERN)),
        )
        .into()
}

/// `custom-<id>`, the id above zero.
const CUSTOM_PROM_STATUS_PATTERN: &str = "^custom-[0-9]*[1-9][0-9]*$";

fn inbound_mapping_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{schema::Type, ObjectBuilder};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("Prom status → RO App status id"))
        .property_names(Some(prom_status_schema(&INBOUND_PROM_STATUSES)))
        .additional_properties(Some(
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64),
            )),
        ))
        .build()
}

fn outbound_mapping_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{schema::Type, ObjectBuilder};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("RO App status id (as a string key) → Prom status"))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        ))
        .additional_properties(Some(prom_status_schema(&OUTBOUND_PROM_STATUSES)))
        .build()
}

fn is_custom(status: &str) -> bool {
    status
        .strip_prefix("custom-")
        .and_then(|id| id.parse::<u64>().ok())
        .is_some_and(|id| id > 0)
}

/// A standard Prom status of `known` always passes; a custom one only if the shop has it
/// on Prom (`custom`, as last fetched), since Prom refuses the others.
fn check_prom_status(
    status: &str,
    known: &[&str],
    custom: &BTreeSet<String>,
    direction: &str,
) -> ServiceResult<()> {
    if known.contains(&status) || custom.contains(status) {
        return Ok(());
    }
    if is_custom(status) {
        return Err(ServiceError::Invalid(format!(
            "`{status}` is not one of the shop's statuses on Prom (it has {}); refresh the \
             shop's Prom statuses if it was added there",
            if custom.is_empty() {
                "no custom statuses".to_owned()
            } else {
                custom.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        )));
    }
    Err(ServiceError::Invalid(format!(
        "`{status}` is not a Prom status an {direction} mapping can use; expected one of {} \
         or one of the shop's custom-<id> statuses",
        known.join(", ")
    )))
}

/// A shop's whole status mapping, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn status_mapping(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ServiceResult<StatusMapping> {
    let shop = shop_for_manager(db, caller, id, "viewing a status mapping").await?;
    let mut mapping = StatusMapping::default();
    for row in status_mappings::Entity::find()
        .filter(status_mappings::Column::ShopId.eq(shop.id))
        .order_by_asc(status_mappings::Column::Id)
        .all(db)
        .await?
    {
        match row.direction {
            Direction::Inbound => {
                mapping
                    .inbound
                    .entry(row.prom_status)
                    .or_insert(row.status_id);
            }
            Direction::Outbound => {
                mapping
                    .outbound
                    .entry(row.status_id.to_string())
                    .or_insert(row.prom_status);
            }
        }
    }
    Ok(mapping)
}

/// Replaces a shop's whole status mapping after checking every entry; a bad entry
/// changes nothing.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn replace_status_mapping(
    services: &Services,
    caller: &Caller,
    id: i64,
    mapping: StatusMapping,
) -> ServiceResult<StatusMapping> {
    let shop = shop_for_manager(&services.db, caller, id, "changing a status mapping").await?;
    let account_statuses: Vec<i64> = order_statuses::Entity::find()
        .filter(order_statuses::Column::AccountId.eq(caller.account_id))
        .all(&services.db)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let known = |status_id: i64| {
        if account_statuses.contains(&status_id) {
            Ok(())
        } else {
            Err(ServiceError::Missing(format!(
                "status {status_id} not found"
            )))
        }
    };
    let custom = custom_codes(&services.db, shop.id).await?;
    let mut rows = Vec::new();
    for (prom, status_id) in &mapping.inbound {
        check_prom_status(prom, &INBOUND_PROM_STATUSES, &custom, "inbound")?;
        known(*status_id)?;
        rows.push((Direction::Inbound, prom.clone(), *status_id));
    }
    for (status_id, prom) in &mapping.outbound {
        let status_id: i64 = status_id.trim().parse().map_err(|_| {
            ServiceError::Invalid(format!(
                "outbound keys are RO App status ids; `{status_id}` is not one"
            ))
        })?;
        check_prom_status(prom, &OUTBOUND_PROM_STATUSES, &custom, "outbound")?;
        known(status_id)?;
        rows.push((Direction::Outbound, prom.clone(), status_id));
    }
    let txn = services.db.begin().await?;
    status_mappings::Entity::delete_many()
        .filter(status_mappings::Column::ShopId.eq(shop.id))
        .exec(&txn)
        .await?;
    for (direction, prom_status, status_id) in rows {
        status_mappings::ActiveModel {
            shop_id: Set(shop.id),
            direction: Set(direction),
            prom_status: Set(prom_status),
            status_id: Set(status_id),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    tracing::info!("status mapping replaced");
    status_mapping(&services.db, caller, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_status_always_passes_and_a_custom_one_only_if_the_shop_has_it() {
        let custom = BTreeSet::from(["custom-137639".to_owned()]);
        let none = BTreeSet::new();
        let check =
            |status, custom| check_prom_status(status, &INBOUND_PROM_STATUSES, custom, "inbound");

        assert!(check("paid", &none).is_ok());
        assert!(check("custom-137639", &custom).is_ok());
        let unknown = check("custom-137640", &custom).unwrap_err().to_string();
        assert!(
            unknown.contains("`custom-137640`") && unknown.contains("custom-137639"),
            "{unknown}"
        );
        assert!(check("custom-137639", &none).is_err());
        for bad in ["draft", "custom-", "custom-x", "custom-0", "Pending"] {
            assert!(check(bad, &custom).is_err(), "{bad}");
        }
        assert!(
            check_prom_status("pending", &OUTBOUND_PROM_STATUSES, &custom, "outbound").is_err()
        );
    }
}
