//! A shop's settings: listing, connecting, reading (with its health) and changing them.
//! Every value is checked before anything is written; a Prom URL is vetted by the
//! process's origin policy, and the token is stored sealed and never shown again.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use entity::{inbound_events, outbound_sync_log, shops};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{find_shop, prom_statuses, seal, shop_for_manager};
use crate::{
    domain::{
        ClientMatching, Language, MatchProductsBy, Outcome, Permission, Spelled, UnknownValue,
    },
    keyring::Slot,
    prom::origin::VettedOrigin,
    provision::{self, NewShop},
    service::{orders::ShopRef, Caller, ServiceError, ServiceResult, Services},
};

const DEFAULT_PROM_URL: &str = "https://my.prom.ua";
const POLL_INTERVAL_S: std::ops::RangeInclusive<i32> = 10..=86_400;

/// A shop as the API shows it: settings, never credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopView {
    pub id: i64,
    pub name: String,
    /// The Prom origin the shop's API calls go to.
    pub prom_url: String,
    #[schema(value_type = Language)]
    pub language: String,
    #[schema(value_type = MatchProductsBy)]
    pub match_products_by: String,
    #[schema(value_type = ClientMatching)]
    pub client_matching: String,
    pub enabled: bool,
    pub poll_enabled: bool,
    pub poll_interval_s: i32,
    /// Prom refused the shop's token; set a new `prom_token`.
    pub token_rejected: bool,
    /// Template of an order's Prom page, `{id}` = Prom order id (null: the default).
    pub order_url_template: Option<String>,
    /// Where notifications for this shop are posted.
    pub webhook_path: String,
    /// Until when the previous webhook secret is still accepted, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<shops::Model> for ShopView {
    fn from(s: shops::Model) -> Self {
        Self {
            webhook_path: format!("/webhooks/prom/{}", s.id),
            id: s.id,
            name: s.name,
            prom_url: s.prom_url,
            language: s.language.to_string(),
            match_products_by: s.match_products_by.to_string(),
            client_matching: s.client_matching.to_string(),
            enabled: s.enabled,
            poll_enabled: s.poll_enabled,
            poll_interval_s: s.poll_interval_s,
            token_rejected: s.token_rejected_at.is_some(),
            order_url_template: s.order_url_template,
            previous_secret_expires_at: s
                .previous_secret_expires_at
                .filter(|_| s.previous_webhook_secret.is_some()),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedShop {
    #[serde(flatten)]
    pub shop: ShopView,
    /// The same as `id` (the CLI's `shop create` prints `shop_id`).
    pub shop_id: i64,
    /// Shown once: configure the sender with it.
    pub webhook_secret: String,
}

/// Refuses a Prom token that cannot be stored as it is (see `Keyring::check_storable`).
fn storable(services: &Services, token: &str) -> ServiceResult<()> {
    services
        .keyring
        .check_storable(token)
        .map_err(|e| ServiceError::Invalid(format!("`prom_token`: {e}")))
}

/// A spelled value of a closed set, or a refusal naming the value and the set.
fn checked<T: FromStr<Err = UnknownValue>>(value: &Spelled<T>) -> ServiceResult<T> {
    value
        .parse_trimmed()
        .map_err(|e| ServiceError::Invalid(e.to_string()))
}

/// A setting a new shop may leave out, `default` then.
fn parse<T: FromStr<Err = UnknownValue>>(
    value: Option<Spelled<T>>,
    default: T,
) -> ServiceResult<T> {
    value.as_ref().map_or(Ok(default), checked)
}

fn non_empty(field: &str, value: &str) -> ServiceResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ServiceError::Invalid(format!(
            "`{field}` must not be empty"
        )));
    }
    Ok(value.to_owned())
}

/// The Prom URL parsed and vetted by the process's policy, or a refusal naming the reason.
async fn prom_origin(services: &Services, value: &str) -> ServiceResult<VettedOrigin> {
    services
        .prom_origins
        .vet_url(value)
        .await
        .map_err(|e| ServiceError::Invalid(e.to_string()))
}

/// The account's shops with their settings, oldest first, for `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn list_shops(db: &DatabaseConnection, caller: &Caller) -> ServiceResult<Vec<ShopView>> {
    caller.require(Permission::ManageIntegrations, "listing shops")?;
    Ok(shops::Entity::find()
        .filter(shops::Column::AccountId.eq(caller.account_id))
        .order_by_asc(shops::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(ShopView::from)
        .collect())
}

/// The ids and names of the account's shops, oldest first, for any employee (the orders
/// list shows shop names to everyone). Only those two columns are read: the shop row
/// also holds its credentials.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn shop_names(db: &DatabaseConnection, caller: &Caller) -> ServiceResult<Vec<ShopRef>> {
    Ok(shops::Entity::find()
        .select_only()
        .columns([shops::Column::Id, shops::Column::Name])
        .filter(shops::Column::AccountId.eq(caller.account_id))
        .order_by_asc(shops::Column::Id)
        .into_tuple::<(i64, String)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, name)| ShopRef { id, name })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShopBody {
    pub name: String,
    /// Prom origin (default `https://my.prom.ua`): `https://host[:port]`, nothing more,
    /// on public addresses (or one `PROMSYNC_PROM_ALLOWED_ORIGINS` lists); promsync
    /// appends `/api/v1/…`.
    pub prom_url: Option<String>,
    /// Write-only.
    pub prom_token: String,
    /// Default `uk`.
    #[schema(value_type = Option<Language>)]
    pub language: Option<Spelled<Language>>,
    /// Default `sku`.
    #[schema(value_type = Option<MatchProductsBy>)]
    pub match_products_by: Option<Spelled<MatchProductsBy>>,
    /// Default `always_new`.
    #[schema(value_type = Option<ClientMatching>)]
    pub client_matching: Option<Spelled<ClientMatching>>,
}

/// Connects a Prom shop to the caller's account with the default status mapping; the
/// answer carries its webhook secret, the only time it is shown.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = tracing::field::Empty))]
pub async fn create_shop(
    services: &Services,
    caller: &Caller,
    body: NewShopBody,
) -> ServiceResult<CreatedShop> {
    caller.require(Permission::ManageIntegrations, "connecting a shop")?;
    // Validated here so that what provisioning reports afterwards is an internal failure.
    let new = NewShop {
        account_id: caller.account_id,
        name: non_empty("name", &body.name)?,
        prom_url: prom_origin(
            services,
            body.prom_url.as_deref().unwrap_or(DEFAULT_PROM_URL),
        )
        .await?,
        prom_token: non_empty("prom_token", &body.prom_token)?,
        language: parse(body.language, Language::Uk)?,
        match_products_by: parse(body.match_products_by, MatchProductsBy::Sku)?,
        client_matching: parse(body.client_matching, ClientMatching::AlwaysNew)?,
    };
    storable(services, &new.prom_token)?;
    let created = provision::create_shop(&services.db, &services.keyring, new).await?;
    tracing::Span::current().record("shop_id", created.shop_id);
    tracing::info!("shop connected");
    let shop = find_shop(&services.db, caller.account_id, created.shop_id).await?;
    prom_statuses::fetch_after_connect(services, &shop).await;
    let shop = find_shop(&services.db, caller.account_id, created.shop_id).await?;
    Ok(CreatedShop {
        shop: shop.into(),
        shop_id: created.shop_id,
        webhook_secret: created.webhook_secret,
    })
}

/// One shop of the account, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn get_shop(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ServiceResult<ShopView> {
    let shop = shop_for_manager(db, caller, id, "viewing a shop").await?;
    Ok(shop.into())
}

/// How a shop's integration is doing, for the operator UI.
#[derive(Debug)]
pub struct ShopHealth {
    /// How far the poller has read Prom's orders (its watermark).
    pub polled_until: Option<DateTime<Utc>>,
    /// The newest rejected or failed sync-log entry, or failed fetch of the shop's Prom
    /// statuses: when, and why.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// When Prom last refused the shop's token (cleared by a new token).
    pub token_rejected_at: Option<DateTime<Utc>>,
}

/// The health of one shop, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn shop_health(
    db: &DatabaseConnection,
    caller: &Caller,
    id: i64,
) -> ServiceResult<ShopHealth> {
    let shop = shop_for_manager(db, caller, id, "viewing a shop").await?;
    let failed = [Outcome::Rejected.as_str(), Outcome::Failed.as_str()];
    let inbound = inbound_events::Entity::find()
        .filter(inbound_events::Column::ShopId.eq(shop.id))
        .filter(inbound_events::Column::Outcome.is_in(failed))
        .order_by_desc(inbound_events::Column::ProcessedAt)
        .one(db)
        .await?
        .map(|e| (e.processed_at, e.detail.unwrap_or(e.outcome.to_string())));
    let outbound = outbound_sync_log::Entity::find()
        .filter(outbound_sync_log::Column::ShopId.eq(shop.id))
        .filter(outbound_sync_log::Column::Outcome.is_in(failed))
        .order_by_desc(outbound_sync_log::Column::At)
        .one(db)
        .await?
        .map(|e| (e.at, e.detail.unwrap_or(e.outcome.to_string())));
    let statuses = shop.prom_statuses_error_at.zip(shop.prom_statuses_error);
    Ok(ShopHealth {
        polled_until: shop.poll_watermark,
        last_error: inbound
            .into_iter()
            .chain(outbound)
            .chain(statuses)
            .max_by_key(|(at, _)| *at),
        token_rejected_at: shop.token_rejected_at,
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopPatch {
    pub name: Option<String>,
    /// A Prom origin (see `NewShopBody`); a different one needs `prom_token` too.
    pub prom_url: Option<String>,
    /// Write-only; a new token clears `token_rejected`.
    pub prom_token: Option<String>,
    #[schema(value_type = Option<Language>)]
    pub language: Option<Spelled<Language>>,
    #[schema(value_type = Option<MatchProductsBy>)]
    pub match_products_by: Option<Spelled<MatchProductsBy>>,
    #[schema(value_type = Option<ClientMatching>)]
    pub client_matching: Option<Spelled<ClientMatching>>,
    pub poll_enabled: Option<bool>,
    /// 10 to 86400 seconds.
    pub poll_interval_s: Option<i32>,
    pub enabled: Option<bool>,
    /// Must contain `{id}`; an empty string restores the default.
    pub order_url_template: Option<String>,
}

/// Changes the given settings of a shop; every value is checked before anything is
/// written, so a bad one changes nothing.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn patch_shop(
    services: &Services,
    caller: &Caller,
    id: i64,
    p: ShopPatch,
) -> ServiceResult<ShopView> {
    let shop = shop_for_manager(&services.db, caller, id, "changing a shop").await?;
    let shop_id = shop.id;
    let shop_prom_url = shop.prom_url.clone();
    let mut update: shops::ActiveModel = shop.into();
    // New credentials may reach another Prom shop, with statuses of its own.
    let mut reconnected = p.prom_token.is_some();
    if let Some(name) = &p.name {
        update.name = Set(non_empty("name", name)?);
    }
    if let Some(url) = &p.prom_url {
        let origin = prom_origin(services, url).await?.to_string();
        // The stored token belongs to the URL it was given for: a new URL gets a new
        // token in the same request, or the old one would be sent wherever it points.
        if origin != shop_prom_url && p.prom_token.is_none() {
            return Err(ServiceError::Invalid(
                "`prom_token` is required when `prom_url` changes".into(),
            ));
        }
        reconnected |= origin != shop_prom_url;
        update.prom_url = Set(origin);
    }
    if let Some(token) = &p.prom_token {
        let token = non_empty("prom_token", token)?;
        update.prom_token = Set(seal(services, Slot::prom_token(shop_id), &token)?);
        update.token_rejected_at = Set(None);
    }
    if let Some(language) = &p.language {
        update.language = Set(checked(language)?);
    }
    if let Some(by) = &p.match_products_by {
        update.match_products_by = Set(checked(by)?);
    }
    if let Some(matching) = &p.client_matching {
        update.client_matching = Set(checked(matching)?);
    }
    if let Some(poll_enabled) = p.poll_enabled {
        update.poll_enabled = Set(poll_enabled);
    }
    if let Some(interval) = p.poll_interval_s {
        if !POLL_INTERVAL_S.contains(&interval) {
            return Err(ServiceError::Invalid(format!(
                "`poll_interval_s` must be between {} and {}",
                POLL_INTERVAL_S.start(),
                POLL_INTERVAL_S.end()
            )));
        }
        update.poll_interval_s = Set(interval);
    }
    if let Some(enabled) = p.enabled {
        update.enabled = Set(enabled);
    }
    if let Some(template) = &p.order_url_template {
        let template = template.trim();
        if template.is_empty() {
            update.order_url_template = Set(None);
        } else if !template.contains("{id}")
            || !(template.starts_with("https://") || template.starts_with("http://"))
        {
            return Err(ServiceError::Invalid(
                "`order_url_template` must be an http(s) URL containing `{id}`".into(),
            ));
        } else {
            update.order_url_template = Set(Some(template.to_owned()));
        }
    }
    let shop = update.update(&services.db).await?;
    tracing::info!("shop changed");
    if reconnected {
        prom_statuses::fetch_after_connect(services, &shop).await;
    }
    Ok(shop.into())
}
