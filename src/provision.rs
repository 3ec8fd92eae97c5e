//! Creating accounts and shops with everything they need to work at once: an account gets
//! its default statuses (one of each kind) and an admin employee; a shop gets a webhook
//! secret and the default status mapping in both directions (`account create`,
//! `shop create`).

use std::str::FromStr;

use anyhow::{bail, Context};
use chrono::Utc;
use entity::{accounts, employees, enums::Direction, order_statuses, shops, status_mappings};
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, Iterable, ModelTrait, Set, TransactionTrait,
};
use serde::Serialize;

use crate::{
    domain::{ClientMatching, Language, MatchProductsBy, Permission, StatusKind},
    keyring::{Keyring, Slot},
    prom::{money::Currency, origin::VettedOrigin},
    secrets,
};

/// Default statuses of a new account, one per kind, in display order.
const DEFAULT_STATUSES: [(&str, StatusKind); 4] = [
    ("New", StatusKind::New),
    ("In progress", StatusKind::InProgress),
    ("Done", StatusKind::Done),
    ("Canceled", StatusKind::Canceled),
];

/// Prom status → kind of the RO App status it lands in; `custom-*` stays unmapped.
const DEFAULT_INBOUND: [(&str, StatusKind); 5] = [
    ("pending", StatusKind::New),
    ("paid", StatusKind::New),
    ("received", StatusKind::InProgress),
    ("delivered", StatusKind::Done),
    ("canceled", StatusKind::Canceled),
];

/// Kind of RO App status → the Prom status sent for it; `new` is never sent.
const DEFAULT_OUTBOUND: [(StatusKind, &str); 3] = [
    (StatusKind::Done, "delivered"),
    (StatusKind::Canceled, "canceled"),
    (StatusKind::InProgress, "received"),
];

#[derive(Debug, Serialize)]
pub struct CreatedAccount {
    pub account_id: i64,
    pub admin_token: String,
}

pub async fn create_account(
    db: &DatabaseConnection,
    name: &str,
    currency: &str,
) -> anyhow::Result<CreatedAccount> {
    let name = name.trim();
    if name.is_empty() {
        bail!("account name must not be empty");
    }
    let currency =
        Currency::from_str(currency).map_err(|e| anyhow::anyhow!("invalid --currency: {e}"))?;
    let token = secrets::new_api_token();
    let now = Utc::now();
    let txn = db.begin().await.context("starting a transaction")?;
    let account = accounts::ActiveModel {
        name: Set(name.to_owned()),
        currency: Set(currency.code().to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("inserting the account")?;
    for (position, (status_name, kind)) in DEFAULT_STATUSES.iter().enumerate() {
        order_statuses::ActiveModel {
            account_id: Set(account.id),
            name: Set((*status_name).to_owned()),
            kind: Set(*kind),
            position: Set(position as i32),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .context("inserting default statuses")?;
    }
    employees::ActiveModel {
        account_id: Set(account.id),
        name: Set("admin".to_owned()),
        token_hash: Set(secrets::hash_api_token(&token)),
        permissions: Set(Permission::iter().collect()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("inserting the admin employee")?;
    txn.commit().await.context("committing the account")?;
    Ok(CreatedAccount {
        account_id: account.id,
        admin_token: token,
    })
}

#[derive(Debug, Clone)]
pub struct NewShop {
    pub account_id: i64,
    pub name: String,
    /// Vetted by the process's [`crate::prom::origin::OriginPolicy`] (`vet_url`).
    pub prom_url: VettedOrigin,
    pub prom_token: String,
    pub language: Language,
    pub match_products_by: MatchProductsBy,
    pub client_matching: ClientMatching,
}

#[derive(Debug, Serialize)]
pub struct CreatedShop {
    pub shop_id: i64,
    pub account_id: i64,
    pub webhook_secret: String,
}

/// Creates the shop with its Prom token and a fresh webhook secret sealed by `keyring`
/// (encrypted when a key is configured).
pub async fn create_shop(
    db: &DatabaseConnection,
    keyring: &Keyring,
    new: NewShop,
) -> anyhow::Result<CreatedShop> {
    let name = new.name.trim();
    if name.is_empty() {
        bail!("shop name must not be empty");
    }
    let prom_token = new.prom_token.trim();
    if prom_token.is_empty() {
        bail!("the Prom API token must not be empty");
    }
    keyring
        .check_storable(prom_token)
        .context("invalid Prom API token")?;
    let txn = db.begin().await.context("starting a transaction")?;
    let Some(account) = accounts::Entity::find_by_id(new.account_id)
        .one(&txn)
        .await
        .context("looking up the account")?
    else {
        bail!("account {} does not exist", new.account_id);
    };
    let statuses = account
        .find_related(order_statuses::Entity)
        .all(&txn)
        .await
        .context("loading the account's statuses")?;
    // The first status of a kind (by position) is that kind's default.
    let status_of = |kind: StatusKind| {
        statuses
            .iter()
            .filter(|s| s.kind == kind)
            .min_by_key(|s| (s.position, s.id))
            .map(|s| s.id)
    };
    let secret = secrets::new_webhook_secret();
    let shop = shops::ActiveModel {
        account_id: Set(new.account_id),
        name: Set(name.to_owned()),
        prom_url: Set(new.prom_url.to_string()),
        // Sealed values are bound to the shop's id, known only after the insert: these
        // placeholders are replaced below, in the same transaction.
        prom_token: Set(String::new()),
        webhook_secret: Set(String::new()),
        previous_webhook_secret: Set(None),
        previous_secret_expires_at: Set(None),
        language: Set(new.language),
        match_products_by: Set(new.match_products_by),
        client_matching: Set(new.client_matching),
        enabled: Set(true),
        poll_enabled: Set(true),
        poll_interval_s: Set(60),
        poll_watermark: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        token_rejected_at: Set(None),
        order_url_template: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .context("inserting the shop")?;
    shops::ActiveModel {
        id: Set(shop.id),
        prom_token: Set(keyring.seal(Slot::prom_token(shop.id), prom_token)?),
        webhook_secret: Set(keyring.seal(Slot::webhook_secret(shop.id), &secret)?),
        ..Default::default()
    }
    .update(&txn)
    .await
    .context("storing the shop's secrets")?;
    let inbound = DEFAULT_INBOUND
        .iter()
        .filter_map(|(prom, kind)| Some((Direction::Inbound, *prom, status_of(*kind)?)));
    let outbound = DEFAULT_OUTBOUND
        .iter()
        .filter_map(|(kind, prom)| Some((Direction::Outbound, *prom, status_of(*kind)?)));
    for (direction, prom_status, status_id) in inbound.chain(outbound) {
        status_mappings::ActiveModel {
            shop_id: Set(shop.id),
            direction: Set(direction),
            prom_status: Set(prom_status.to_owned()),
            status_id: Set(status_id),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .context("inserting the default status mapping")?;
    }
    txn.commit().await.context("committing the shop")?;
    Ok(CreatedShop {
        shop_id: shop.id,
        account_id: new.account_id,
        webhook_secret: secret,
    })
}
