//! Connected Prom shops (ARCHITECTURE.md, 'HTTP contract'), for employees with
//! `manage_integrations`: their settings (`crud`), their webhook secrets (`secrets`),
//! their status mappings (`mapping`) and their statuses on Prom (`prom_statuses`). The Prom token and the webhook secrets are
//! write-only: no shop view carries them.

pub mod crud;
pub mod mapping;
pub mod prom_statuses;
pub mod secrets;

use entity::shops;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

pub use self::{
    crud::{
        create_shop, get_shop, list_shops, patch_shop, shop_health, shop_names, CreatedShop,
        NewShopBody, ShopHealth, ShopPatch, ShopView,
    },
    mapping::{replace_status_mapping, status_mapping, StatusMapping},
    prom_statuses::{prom_statuses, refresh_prom_statuses, PromStatusView, PromStatuses},
    secrets::{rotate_shop_secret, RotatedSecret},
};
use crate::{
    domain::Permission,
    keyring::{KeyringError, Slot},
    service::{Caller, ServiceError, ServiceResult, Services},
};

/// The shop `id` of the account, or 404 (also for another account's shop).
pub async fn find_shop<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    id: i64,
) -> ServiceResult<shops::Model> {
    shops::Entity::find_by_id(id)
        .filter(shops::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// A secret in the form it is stored in (encrypted when a key is configured).
fn seal(services: &Services, slot: Slot, secret: &str) -> ServiceResult<String> {
    services.keyring.seal(slot, secret).map_err(|e| match e {
        KeyringError::LooksEncrypted => ServiceError::Invalid(format!("`prom_token`: {e}")),
        e => ServiceError::Internal(anyhow::Error::new(e).context("sealing a secret")),
    })
}

/// 404 before 403: a foreign shop is not found, whoever asks.
async fn shop_for_manager(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
    action: &str,
) -> ServiceResult<shops::Model> {
    let shop = find_shop(db, caller.account_id, id).await?;
    caller.require(Permission::ManageIntegrations, action)?;
    Ok(shop)
}
