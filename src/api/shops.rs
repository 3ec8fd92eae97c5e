//! Connected Prom shops and their status mappings (ARCHITECTURE.md, 'HTTP contract'), for
//! employees with `manage_integrations`. The Prom token and the webhook secrets are
//! write-only: no shop answer carries them, and `rotate-secret` shows a new secret exactly
//! once while the previous one keeps working for a grace period (the ingress honours both).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use entity::{
    enums::Direction, inbound_events, order_statuses, outbound_sync_log, shops, status_mappings,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{auth::Caller, orders::ShopRef, ErrorBody};
use crate::{
    domain::{ClientMatching, Language, MatchProductsBy, Outcome, Permission},
    error::ApiError,
    keyring::{KeyringError, Slot},
    prom::origin::VettedOrigin,
    provision::{self, NewShop},
    secrets,
    startup::AppState,
};

const DEFAULT_PROM_URL: &str = "https://my.prom.ua";
/// How long the previous webhook secret stays valid after a rotation, unless asked.
const DEFAULT_GRACE_S: i64 = 24 * 3600;
const MAX_GRACE_S: i64 = 7 * 24 * 3600;
const POLL_INTERVAL_S: std::ops::RangeInclusive<i32> = 10..=86_400;
/// Prom statuses an inbound mapping may name (`draft` orders are never imported).
const INBOUND_PROM_STATUSES: [&str; 5] = ["pending", "received", "delivered", "canceled", "paid"];
/// Prom statuses promsync may set (`set_status`).
const OUTBOUND_PROM_STATUSES: [&str; 3] = ["received", "delivered", "canceled"];

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
pub struct ShopList {
    pub shops: Vec<ShopView>,
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

/// The shop `id` of the account, or 404 (also for another account's shop).
pub async fn find_shop<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    id: i64,
) -> Result<shops::Model, ApiError> {
    shops::Entity::find_by_id(id)
        .filter(shops::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Refuses a Prom token that cannot be stored as it is (see `Keyring::check_storable`).
fn storable(state: &AppState, token: &str) -> Result<(), ApiError> {
    state
        .keyring
        .check_storable(token)
        .map_err(|e| ApiError::BadRequest(format!("`prom_token`: {e}")))
}

/// A secret in the form it is stored in (encrypted when a key is configured).
fn seal(state: &AppState, slot: Slot, secret: &str) -> Result<String, ApiError> {
    state.keyring.seal(slot, secret).map_err(|e| match e {
        KeyringError::LooksEncrypted => ApiError::BadRequest(format!("`prom_token`: {e}")),
        e => ApiError::Internal(anyhow::Error::new(e).context("sealing a secret")),
    })
}

/// 404 before 403: a foreign shop is not found, whoever asks.
async fn shop_for_manager(
    state: &AppState,
    caller: &Caller,
    id: i64,
    action: &str,
) -> Result<shops::Model, ApiError> {
    let shop = find_shop(&state.db, caller.account_id, id).await?;
    caller.require(Permission::ManageIntegrations, action)?;
    Ok(shop)
}

fn parse<T: std::str::FromStr<Err = crate::domain::UnknownValue>>(
    value: &str,
) -> Result<T, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|e: crate::domain::UnknownValue| ApiError::BadRequest(e.to_string()))
}

fn non_empty(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::BadRequest(format!("`{field}` must not be empty")));
    }
    Ok(value.to_owned())
}

/// The Prom URL parsed and vetted by the process's policy, or a 400 naming the reason.
async fn prom_origin(state: &AppState, value: &str) -> Result<VettedOrigin, ApiError> {
    state
        .prom_origins
        .vet_url(value)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[utoipa::path(
    get, path = "/api/shops", operation_id = "listShops", tag = "shops",
    responses((status = 200, body = ShopList), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopList>, ApiError> {
    let shops = list_shops(&state, &caller).await?;
    Ok(web::Json(ShopList { shops }))
}

/// The account's shops with their settings, oldest first, for `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn list_shops(state: &AppState, caller: &Caller) -> Result<Vec<ShopView>, ApiError> {
    caller.require(Permission::ManageIntegrations, "listing shops")?;
    Ok(shops::Entity::find()
        .filter(shops::Column::AccountId.eq(caller.account_id))
        .order_by_asc(shops::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(ShopView::from)
        .collect())
}

/// The ids and names of the account's shops, oldest first, for any employee (the orders
/// list shows shop names to everyone). Only those two columns are read: the shop row
/// also holds its credentials.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn shop_names(state: &AppState, caller: &Caller) -> Result<Vec<ShopRef>, ApiError> {
    Ok(shops::Entity::find()
        .select_only()
        .columns([shops::Column::Id, shops::Column::Name])
        .filter(shops::Column::AccountId.eq(caller.account_id))
        .order_by_asc(shops::Column::Id)
        .into_tuple::<(i64, String)>()
        .all(&state.db)
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
    pub language: Option<String>,
    /// Default `sku`.
    #[schema(value_type = Option<MatchProductsBy>)]
    pub match_products_by: Option<String>,
    /// Default `always_new`.
    #[schema(value_type = Option<ClientMatching>)]
    pub client_matching: Option<String>,
}

/// Connects a Prom shop with the default status mapping; answers its webhook secret once.
#[utoipa::path(
    post, path = "/api/shops", operation_id = "createShop", tag = "shops",
    request_body = NewShopBody,
    responses(
        (status = 201, body = CreatedShop),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = tracing::field::Empty))]
pub async fn create(
    caller: Caller,
    body: web::Json<NewShopBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Permission::ManageIntegrations, "connecting a shop")?;
    let body = body.into_inner();
    // Validated here so that what provisioning reports afterwards is an internal failure.
    let new = NewShop {
        account_id: caller.account_id,
        name: non_empty("name", &body.name)?,
        prom_url: prom_origin(&state, body.prom_url.as_deref().unwrap_or(DEFAULT_PROM_URL)).await?,
        prom_token: non_empty("prom_token", &body.prom_token)?,
        language: parse::<Language>(body.language.as_deref().unwrap_or("uk"))?,
        match_products_by: parse::<MatchProductsBy>(
            body.match_products_by.as_deref().unwrap_or("sku"),
        )?,
        client_matching: parse::<ClientMatching>(
            body.client_matching.as_deref().unwrap_or("always_new"),
        )?,
    };
    storable(&state, &new.prom_token)?;
    let created = provision::create_shop(&state.db, &state.keyring, new).await?;
    tracing::Span::current().record("shop_id", created.shop_id);
    tracing::info!("shop connected");
    let shop = find_shop(&state.db, caller.account_id, created.shop_id).await?;
    Ok(HttpResponse::Created().json(CreatedShop {
        shop: shop.into(),
        shop_id: created.shop_id,
        webhook_secret: created.webhook_secret,
    }))
}

#[utoipa::path(
    get, path = "/api/shops/{id}", operation_id = "getShop", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = ShopView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopView>, ApiError> {
    Ok(web::Json(get_shop(&state, &caller, *id).await?))
}

/// One shop of the account, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn get_shop(state: &AppState, caller: &Caller, id: i64) -> Result<ShopView, ApiError> {
    let shop = shop_for_manager(state, caller, id, "viewing a shop").await?;
    Ok(shop.into())
}

/// How a shop's integration is doing, for the operator UI.
#[derive(Debug)]
pub struct ShopHealth {
    /// How far the poller has read Prom's orders (its watermark).
    pub polled_until: Option<DateTime<Utc>>,
    /// The newest rejected or failed sync-log entry: when, and why.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// When Prom last refused the shop's token (cleared by a new token).
    pub token_rejected_at: Option<DateTime<Utc>>,
}

/// The health of one shop, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn shop_health(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<ShopHealth, ApiError> {
    let shop = shop_for_manager(state, caller, id, "viewing a shop").await?;
    let failed = [Outcome::Rejected.as_str(), Outcome::Failed.as_str()];
    let inbound = inbound_events::Entity::find()
        .filter(inbound_events::Column::ShopId.eq(shop.id))
        .filter(inbound_events::Column::Outcome.is_in(failed))
        .order_by_desc(inbound_events::Column::ProcessedAt)
        .one(&state.db)
        .await?
        .map(|e| (e.processed_at, e.detail.unwrap_or(e.outcome.to_string())));
    let outbound = outbound_sync_log::Entity::find()
        .filter(outbound_sync_log::Column::ShopId.eq(shop.id))
        .filter(outbound_sync_log::Column::Outcome.is_in(failed))
        .order_by_desc(outbound_sync_log::Column::At)
        .one(&state.db)
        .await?
        .map(|e| (e.at, e.detail.unwrap_or(e.outcome.to_string())));
    Ok(ShopHealth {
        polled_until: shop.poll_watermark,
        last_error: inbound
            .into_iter()
            .chain(outbound)
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
    pub language: Option<String>,
    #[schema(value_type = Option<MatchProductsBy>)]
    pub match_products_by: Option<String>,
    #[schema(value_type = Option<ClientMatching>)]
    pub client_matching: Option<String>,
    pub poll_enabled: Option<bool>,
    /// 10 to 86400 seconds.
    pub poll_interval_s: Option<i32>,
    pub enabled: Option<bool>,
    /// Must contain `{id}`; an empty string restores the default.
    pub order_url_template: Option<String>,
}

/// Changes any of a shop's settings; fields left out keep their value.
#[utoipa::path(
    patch, path = "/api/shops/{id}", operation_id = "updateShop", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body = ShopPatch,
    responses(
        (status = 200, body = ShopView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<ShopPatch>,
    state: web::Data<AppState>,
) -> Result<web::Json<ShopView>, ApiError> {
    Ok(web::Json(
        patch_shop(&state, &caller, *id, body.into_inner()).await?,
    ))
}

/// Changes the given settings of a shop; every value is checked before anything is
/// written, so a bad one changes nothing.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn patch_shop(
    state: &AppState,
    caller: &Caller,
    id: i64,
    p: ShopPatch,
) -> Result<ShopView, ApiError> {
    let shop = shop_for_manager(state, caller, id, "changing a shop").await?;
    let shop_id = shop.id;
    let shop_prom_url = shop.prom_url.clone();
    let mut update: shops::ActiveModel = shop.into();
    if let Some(name) = &p.name {
        update.name = Set(non_empty("name", name)?);
    }
    if let Some(url) = &p.prom_url {
        let origin = prom_origin(state, url).await?.to_string();
        // The stored token belongs to the URL it was given for: a new URL gets a new
        // token in the same request, or the old one would be sent wherever it points.
        if origin != shop_prom_url && p.prom_token.is_none() {
            return Err(ApiError::BadRequest(
                "`prom_token` is required when `prom_url` changes".into(),
            ));
        }
        update.prom_url = Set(origin);
    }
    if let Some(token) = &p.prom_token {
        let token = non_empty("prom_token", token)?;
        update.prom_token = Set(seal(state, Slot::prom_token(shop_id), &token)?);
        update.token_rejected_at = Set(None);
    }
    if let Some(language) = &p.language {
        update.language = Set(parse::<Language>(language)?);
    }
    if let Some(by) = &p.match_products_by {
        update.match_products_by = Set(parse::<MatchProductsBy>(by)?);
    }
    if let Some(matching) = &p.client_matching {
        update.client_matching = Set(parse::<ClientMatching>(matching)?);
    }
    if let Some(poll_enabled) = p.poll_enabled {
        update.poll_enabled = Set(poll_enabled);
    }
    if let Some(interval) = p.poll_interval_s {
        if !POLL_INTERVAL_S.contains(&interval) {
            return Err(ApiError::BadRequest(format!(
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
            return Err(ApiError::BadRequest(
                "`order_url_template` must be an http(s) URL containing `{id}`".into(),
            ));
        } else {
            update.order_url_template = Set(Some(template.to_owned()));
        }
    }
    let shop = update.update(&state.db).await?;
    tracing::info!("shop changed");
    Ok(shop.into())
}

/// Compare-and-set attempts of one rotation before it gives up with 429.
const ROTATE_ATTEMPTS: usize = 16;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret stays valid, in seconds (default 86400, at most 7 days).
    pub grace_period_s: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// Shown once.
    pub webhook_secret: String,
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// Replaces the shop's webhook secret; the previous one stays valid for the grace period
/// so senders can switch without losing notifications.
#[utoipa::path(
    post, path = "/api/shops/{id}/rotate-secret", operation_id = "rotateShopSecret", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body(content = Option<RotateSecret>),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<web::Json<RotatedSecret>, ApiError> {
    let body: RotateSecret = super::optional_json(&body)?;
    Ok(web::Json(
        rotate_shop_secret(&state, &caller, *id, body.grace_period_s).await?,
    ))
}

/// Gives the shop a new webhook secret (answered once); the previous one stays valid for
/// `grace_period_s` (default a day).
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn rotate_shop_secret(
    state: &AppState,
    caller: &Caller,
    id: i64,
    grace_period_s: Option<i64>,
) -> Result<RotatedSecret, ApiError> {
    let action = "rotating a webhook secret";
    let mut shop = shop_for_manager(state, caller, id, action).await?;
    let grace = grace_period_s.unwrap_or(DEFAULT_GRACE_S);
    if !(0..=MAX_GRACE_S).contains(&grace) {
        return Err(ApiError::BadRequest(format!(
            "`grace_period_s` must be between 0 and {MAX_GRACE_S}"
        )));
    }
    let secret = secrets::new_webhook_secret();
    let sealed = seal(state, Slot::webhook_secret(id), &secret)?;
    // Compare-and-set on the current secret: two rotations at once must not both demote
    // the same old secret, or the first one's answer would name a secret nobody accepts.
    // Each lost race means another rotation landed, so a few attempts always suffice.
    for attempt in 0..ROTATE_ATTEMPTS {
        if attempt > 0 {
            shop = shop_for_manager(state, caller, id, action).await?;
        }
        let expires_at = state.clock.now() + Duration::seconds(grace);
        // The stored previous value moves as it is: both webhook-secret columns share one
        // encryption binding (see `keyring`).
        let result = shops::Entity::update_many()
            .col_expr(shops::Column::WebhookSecret, sealed.clone().into())
            .col_expr(
                shops::Column::PreviousWebhookSecret,
                Some(shop.webhook_secret.clone()).into(),
            )
            .col_expr(
                shops::Column::PreviousSecretExpiresAt,
                Some(expires_at).into(),
            )
            .filter(shops::Column::Id.eq(shop.id))
            .filter(shops::Column::WebhookSecret.eq(shop.webhook_secret.clone()))
            .exec(&state.db)
            .await?;
        if result.rows_affected == 1 {
            tracing::info!(grace_period_s = grace, "webhook secret rotated");
            return Ok(RotatedSecret {
                webhook_secret: secret,
                previous_secret_expires_at: expires_at,
            });
        }
    }
    Err(ApiError::TooManyRequests {
        message: "the webhook secret is being rotated by others right now; retry".into(),
        retry_after_s: 1,
        results: None,
    })
}

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

fn check_prom_status(status: &str, known: &[&str], direction: &str) -> Result<(), ApiError> {
    if known.contains(&status) || is_custom(status) {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "`{status}` is not a Prom status an {direction} mapping can use; expected one of {} \
         or custom-<id>",
        known.join(", ")
    )))
}

#[utoipa::path(
    get, path = "/api/shops/{id}/status-mapping", operation_id = "getShopStatusMapping", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    responses(
        (status = 200, body = StatusMapping),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_mapping(
    caller: Caller,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusMapping>, ApiError> {
    Ok(web::Json(status_mapping(&state, &caller, *id).await?))
}

/// A shop's whole status mapping, for an employee with `manage_integrations`.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn status_mapping(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> Result<StatusMapping, ApiError> {
    let shop = shop_for_manager(state, caller, id, "viewing a status mapping").await?;
    let mut mapping = StatusMapping::default();
    for row in status_mappings::Entity::find()
        .filter(status_mappings::Column::ShopId.eq(shop.id))
        .order_by_asc(status_mappings::Column::Id)
        .all(&state.db)
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

/// Replaces the whole mapping, after checking every Prom status against the known set and
/// every RO App status against the account's.
#[utoipa::path(
    put, path = "/api/shops/{id}/status-mapping", operation_id = "replaceShopStatusMapping", tag = "shops",
    params(("id" = i64, Path, description = "Shop id")),
    request_body = StatusMapping,
    responses(
        (status = 200, body = StatusMapping),
        (status = 400, description = "an unknown Prom status or a malformed id", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "the shop, or a status not of the account", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_mapping(
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<StatusMapping>,
    state: web::Data<AppState>,
) -> Result<web::Json<StatusMapping>, ApiError> {
    Ok(web::Json(
        replace_status_mapping(&state, &caller, *id, body.into_inner()).await?,
    ))
}

/// Replaces a shop's whole status mapping after checking every entry; a bad entry
/// changes nothing.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id, shop_id = id))]
pub async fn replace_status_mapping(
    state: &AppState,
    caller: &Caller,
    id: i64,
    mapping: StatusMapping,
) -> Result<StatusMapping, ApiError> {
    let shop = shop_for_manager(state, caller, id, "changing a status mapping").await?;
    let account_statuses: Vec<i64> = order_statuses::Entity::find()
        .filter(order_statuses::Column::AccountId.eq(caller.account_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let known = |status_id: i64| {
        if account_statuses.contains(&status_id) {
            Ok(())
        } else {
            Err(ApiError::Missing(format!("status {status_id} not found")))
        }
    };
    let mut rows = Vec::new();
    for (prom, status_id) in &mapping.inbound {
        check_prom_status(prom, &INBOUND_PROM_STATUSES, "inbound")?;
        known(*status_id)?;
        rows.push((Direction::Inbound, prom.clone(), *status_id));
    }
    for (status_id, prom) in &mapping.outbound {
        let status_id: i64 = status_id.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "outbound keys are RO App status ids; `{status_id}` is not one"
            ))
        })?;
        check_prom_status(prom, &OUTBOUND_PROM_STATUSES, "outbound")?;
        known(status_id)?;
        rows.push((Direction::Outbound, prom.clone(), status_id));
    }
    let txn = state.db.begin().await?;
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
    status_mapping(state, caller, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prom_statuses_are_the_known_set_or_custom() {
        assert!(check_prom_status("paid", &INBOUND_PROM_STATUSES, "inbound").is_ok());
        assert!(check_prom_status("custom-137639", &INBOUND_PROM_STATUSES, "inbound").is_ok());
        for bad in ["draft", "custom-", "custom-x", "custom-0", "Pending"] {
            assert!(
                check_prom_status(bad, &INBOUND_PROM_STATUSES, "inbound").is_err(),
                "{bad}"
            );
        }
        assert!(check_prom_status("pending", &OUTBOUND_PROM_STATUSES, "outbound").is_err());
    }
}
