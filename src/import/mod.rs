//! The importer: applies inbound notifications to RO App's books (ARCHITECTURE.md,
//! 'From webhook to books').
//!
//! For each message: load the shop's context; take the order from the message or, for a
//! thin notification, fetch it from Prom; plan it (parse, validate, reject as a whole);
//! resolve its products, creating one new to the books (with Prom's data about it) once
//! for every message in flight that needs it; then apply everything in a transaction
//! shared with the other messages in flight (`batch`, `apply`). The broker acks only after
//! that commit. Before consuming, `warm` runs a rolled-back import on each batch
//! connection. Failures are sorted here: Prom or database trouble is transient (retry later), a token Prom refuses or an
//! unknown shop is permanent (dead letter), a bad order is a business rejection (recorded
//! on the sync log and acked).

pub mod apply;
pub mod batch;
pub mod plan;
pub mod warm;

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use async_trait::async_trait;
use entity::{accounts, enums::Direction, order_statuses, shops, status_mappings};
use moka::future::Cache;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ModelTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use self::{
    apply::{Applied, Prepared},
    batch::{BatchSettings, Batcher, PausePoint},
    plan::ProductKey,
};
use crate::{
    broker::{Disposition, InboundHandler, InboundMessage},
    domain::{ClientMatching, Language, MatchProductsBy, Outcome, StatusKind},
    prom::{
        client::{PromClient, PromCredentials, PromError},
        money::Currency,
        order::PromOrder,
        source::{self, OrderSource},
    },
};

/// Shop settings are re-read this often, so a changed mapping or token takes effect soon
/// without a database round trip per message.
const SHOP_CACHE_TTL: Duration = Duration::from_secs(5);
/// How many shops an importer loads into its cache before it consumes: the first
/// orders after a start find their shop at hand, and a large installation does not hold
/// the start up (the others load on their first order, as always).
const WARM_SHOPS: u64 = 50;
/// A failed transaction (a lost connection, a product the cache remembered wrongly) is
/// retried in place this many times before the message goes to a delayed retry.
const TXN_ATTEMPTS: usize = 3;

/// Everything about a shop the importer needs, loaded once per cache period.
#[derive(Debug)]
pub struct ShopContext {
    pub shop_id: i64,
    pub account_id: i64,
    pub currency: Currency,
    pub language: Language,
    pub match_products_by: MatchProductsBy,
    pub client_matching: ClientMatching,
    pub credentials: PromCredentials,
    /// Prom status → RO App status id.
    pub inbound: HashMap<String, i64>,
    /// The account's default status of kind `new`, for unmapped Prom statuses.
    pub default_new_status: i64,
}

pub struct Importer {
    db: DatabaseConnection,
    prom: PromClient,
    shops: Cache<i64, Arc<ShopContext>>,
    /// Product ids by (account, match key). Products are never deleted, so a committed
    /// id stays right; knowing it spares the transaction a lock and a lookup per line.
    /// A product not yet known is resolved once however many messages in flight need it
    /// (`try_get_with` lets one find or create it while the others wait): after a new
    /// product's first sale, the orders in flight would otherwise each look it up, each
    /// ask Prom about it (queueing behind the per-token throttle) and each wait, batch
    /// after batch, for the lock of the one transaction creating it.
    products: Cache<(i64, ProductKey), i64>,
    batcher: Batcher,
    /// Connections the batches hold at once: as many are warmed before consuming.
    batch_workers: usize,
}

/// What [`Importer::warm_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmed {
    /// Shops loaded into the cache.
    pub shops: usize,
    /// Connections that ran a whole import once ([`warm`]).
    pub connections: usize,
}

/// Why a product could not be resolved before the transaction.
#[derive(Debug, thiserror::Error)]
enum ProductError {
    #[error(transparent)]
    Prom(#[from] PromError),
    #[error("creating a product: {0}")]
    Db(#[from] DbErr),
}

/// Why loading a shop failed.
#[derive(Debug, thiserror::Error)]
enum ShopError {
    #[error("shop {0} does not exist or is disabled")]
    Unknown(i64),
    #[error("shop {shop} is misconfigured: {reason}")]
    Misconfigured { shop: i64, reason: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl Importer {
    /// Starts the batch workers too: call from within the Tokio runtime.
    pub fn new(db: DatabaseConnection, prom: PromClient, batch: BatchSettings) -> Self {
        Self::with_pause(db, prom, batch, None)
    }

    /// An importer whose batches stop at `pause` (tests force races with it).
    #[doc(hidden)]
    pub fn with_pause(
        db: DatabaseConnection,
        prom: PromClient,
        batch: BatchSettings,
        pause: Option<Arc<PausePoint>>,
    ) -> Self {
        Self {
            batcher: Batcher::start(db.clone(), batch, pause),
            batch_workers: batch.workers.max(1),
            db,
            prom,
            shops: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SHOP_CACHE_TTL)
                .build(),
            products: Cache::new(100_000),
        }
    }

    /// Loads up to [`WARM_SHOPS`] enabled shops into the cache, most recently created
    /// first, then has as many connections as batches run at once import a made-up order
    /// of the first of them, rolled back ([`warm`]). A shop that cannot be loaded is left
    /// for its first order to report; with no shop, no connection is warmed. An error
    /// (the shops could not be listed, or a connection failed its warm-up) is for the
    /// caller to log: the importer works all the same, only colder.
    pub async fn warm_up(&self) -> anyhow::Result<Warmed> {
        let ids: Vec<i64> = shops::Entity::find()
            .select_only()
            .column(shops::Column::Id)
            .filter(shops::Column::Enabled.eq(true))
            .order_by_desc(shops::Column::Id)
            .limit(WARM_SHOPS)
            .into_tuple()
            .all(&self.db)
            .await
            .context("listing the shops")?;
        let mut loaded = Vec::new();
        for shop_id in ids {
            if let Ok(ctx) = self.shop(shop_id).await {
                loaded.push(ctx);
            }
        }
        let connections = match loaded.first() {
            Some(ctx) => warm::warm_connections(&self.db, ctx, self.batch_workers)
                .await
                .context("warming the database connections")?,
            None => 0,
        };
        Ok(Warmed {
            shops: loaded.len(),
            connections,
        })
    }

    async fn shop(&self, shop_id: i64) -> Result<Arc<ShopContext>, Arc<ShopError>> {
        self.shops
            .try_get_with(shop_id, async move {
                load_shop(&self.db, shop_id).await.map(Arc::new)
            })
            .await
    }

    /// The order document: carried by the message, or fetched from Prom for a thin one.
    async fn order(
        &self,
        ctx: &ShopContext,
        msg: &InboundMessage,
    ) -> Result<Result<PromOrder, String>, PromError> {
        match &msg.order {
            Some(raw) => Ok(serde_json::from_str::<PromOrder>(raw.get())
                .map_err(|e| format!("malformed Prom order: {e}"))),
            None => match OrderSource::new(&self.prom, &ctx.credentials)
                .order(msg.order_id)
                .await?
            {
                Some(order) => Ok(Ok(order)),
                None => Ok(Err("order not found on Prom".into())),
            },
        }
    }

    /// What the transaction needs to know beforehand: the id of every product of the
    /// order, found or, for one new to the books, created with Prom's data about it.
    async fn prepare(
        &self,
        ctx: &ShopContext,
        plan: &plan::ImportPlan,
    ) -> anyhow::Result<Result<Prepared, PromError>> {
        let mut prepared = Prepared::default();
        let mut unknown: Vec<&plan::PlannedLine> = Vec::new();
        for line in &plan.lines {
            if prepared.known.contains_key(&line.key) || unknown.iter().any(|l| l.key == line.key) {
                continue;
            }
            match self.products.get(&(ctx.account_id, line.key.clone())).await {
                Some(id) => {
                    prepared.known.insert(line.key.clone(), id);
                }
                None => unknown.push(line),
            }
        }
        if unknown.is_empty() {
            return Ok(Ok(prepared));
        }
        // A version the order already has changes nothing: no product need be made for
        // it, nor Prom asked.
        let stored = apply::stored_version(&self.db, ctx, &plan.external_id)
            .await
            .context("reading the stored order version")?;
        if stored.is_some_and(|v| v >= plan.modified_at) {
            return Ok(Ok(prepared));
        }
        for line in unknown {
            match self.product(ctx, line).await {
                Ok(id) => {
                    prepared.known.insert(line.key.clone(), id);
                }
                // Every message that waited on the failed attempt gets its error; none
                // is kept, so the next message tries again.
                Err(e) => match e.as_ref() {
                    ProductError::Prom(e) => return Ok(Err(e.clone())),
                    ProductError::Db(e) => {
                        return Err(anyhow::anyhow!("{e}")).context("finding or creating a product")
                    }
                },
            }
        }
        Ok(Ok(prepared))
    }

    /// The product of `line`: found in the books, or created there (with Prom's data
    /// about it) in a short transaction of its own, once for all the messages in flight.
    async fn product(
        &self,
        ctx: &ShopContext,
        line: &plan::PlannedLine,
    ) -> Result<i64, Arc<ProductError>> {
        self.products
            .try_get_with((ctx.account_id, line.key.clone()), async {
                if let Some(product) =
                    apply::find_product(&self.db, ctx.account_id, &line.key).await?
                {
                    return Ok(product.id);
                }
                let prom = match line.prom_id {
                    Some(prom_id) => Some((
                        prom_id,
                        self.prom.get_product(&ctx.credentials, prom_id).await?,
                    )),
                    None => None,
                };
                Ok(apply::create_product(&self.db, ctx, line, prom).await?)
            })
            .await
    }

    async fn record(
        &self,
        ctx: &ShopContext,
        msg: &InboundMessage,
        outcome: Outcome,
        detail: String,
    ) -> Disposition {
        match apply::record_only(&self.db, ctx, msg, outcome, detail.clone()).await {
            Ok(_) => {
                tracing::info!(outcome = %outcome, %detail, "recorded");
                crate::metrics::import_outcome(outcome);
                crate::metrics::import_lag(msg.source, msg.received_at);
                Disposition::Done
            }
            Err(e) => Disposition::Retry {
                reason: format!("recording the sync log: {e}"),
                after: None,
            },
        }
    }

    async fn import(&self, msg: InboundMessage) -> Disposition {
        let ctx = match self.shop(msg.shop_id.get()).await {
            Ok(ctx) => ctx,
            Err(e) => {
                return match e.as_ref() {
                    ShopError::Db(_) => Disposition::Retry {
                        reason: e.to_string(),
                        after: None,
                    },
                    _ => Disposition::Dead {
                        reason: e.to_string(),
                    },
                }
            }
        };
        let order = match self.order(&ctx, &msg).await {
            Ok(Ok(order)) => order,
            Ok(Err(reason)) => return self.record(&ctx, &msg, Outcome::Rejected, reason).await,
            Err(e) => return self.prom_failure(&ctx, e, "fetching the order").await,
        };
        if order.id != msg.order_id {
            let reason = format!(
                "Prom answered order {} for order {}",
                order.id, msg.order_id
            );
            return self.record(&ctx, &msg, Outcome::Rejected, reason).await;
        }
        let plan = match plan::plan(&order, ctx.currency, ctx.language, ctx.match_products_by) {
            Ok(plan) => plan,
            Err(rejection) => {
                return self
                    .record(&ctx, &msg, Outcome::Rejected, rejection.to_string())
                    .await
            }
        };
        if plan.is_draft() {
            let detail = "draft orders are not imported".to_owned();
            return self.record(&ctx, &msg, Outcome::Skipped, detail).await;
        }
        let (msg, plan) = (Arc::new(msg), Arc::new(plan));
        let mut last_error = None;
        for _ in 0..TXN_ATTEMPTS {
            let prepared = match self.prepare(&ctx, &plan).await {
                Ok(Ok(prepared)) => prepared,
                Ok(Err(e)) => return self.prom_failure(&ctx, e, "fetching a product").await,
                Err(e) => {
                    return Disposition::Retry {
                        reason: format!("{e:#}"),
                        after: None,
                    }
                }
            };
            let applied = self
                .batcher
                .apply(ctx.clone(), msg.clone(), plan.clone(), prepared)
                .await;
            match applied {
                Ok(applied) => {
                    for (key, id) in &applied.products {
                        self.products
                            .insert((ctx.account_id, key.clone()), *id)
                            .await;
                    }
                    log_applied(&applied);
                    crate::metrics::import_lag(msg.source, msg.received_at);
                    return Disposition::Done;
                }
                Err(e) => {
                    // Whatever failed (a race, a lost connection, a product the cache
                    // remembers but someone removed), the next try starts from the
                    // database again.
                    for line in &plan.lines {
                        self.products
                            .invalidate(&(ctx.account_id, line.key.clone()))
                            .await;
                    }
                    tracing::debug!(error = %e, "import transaction failed; trying again");
                    last_error = Some(e);
                }
            }
        }
        Disposition::Retry {
            reason: last_error.map(|e| e.to_string()).unwrap_or_default(),
            after: None,
        }
    }
}

fn log_applied(applied: &Applied) {
    crate::metrics::import_outcome(applied.outcome);
    tracing::info!(
        outcome = %applied.outcome,
        order = applied.order_id,
        detail = applied.detail.as_deref().unwrap_or(""),
        "imported"
    );
}

impl Importer {
    /// Transient Prom trouble is retried later; anything else needs a person. A token
    /// Prom refuses also flags the shop, where operators (and the poller) see it.
    async fn prom_failure(&self, ctx: &ShopContext, e: PromError, doing: &str) -> Disposition {
        if matches!(e, PromError::Unauthorized(_)) {
            if let Err(db) = crate::db::flag_token_rejected(&self.db, ctx.shop_id, true).await {
                tracing::warn!(error = %db, "could not flag the shop's rejected token");
            }
        }
        prom_disposition(e, doing)
    }
}

fn prom_disposition(e: PromError, doing: &str) -> Disposition {
    if e.is_transient() {
        Disposition::Retry {
            after: e.retry_after(),
            reason: format!("{doing}: {e}"),
        }
    } else {
        Disposition::Dead {
            reason: format!("{doing}: {e}"),
        }
    }
}

async fn load_shop(db: &DatabaseConnection, shop_id: i64) -> Result<ShopContext, ShopError> {
    let shop = shops::Entity::find_by_id(shop_id)
        .one(db)
        .await?
        .filter(|s| s.enabled)
        .ok_or(ShopError::Unknown(shop_id))?;
    let misconfigured = |reason: String| ShopError::Misconfigured {
        shop: shop_id,
        reason,
    };
    let account = shop
        .find_related(accounts::Entity)
        .one(db)
        .await?
        .ok_or(ShopError::Unknown(shop_id))?;
    let inbound = shop
        .find_related(status_mappings::Entity)
        .filter(status_mappings::Column::Direction.eq(Direction::Inbound))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.prom_status, m.status_id))
        .collect();
    let default_new_status = account
        .find_related(order_statuses::Entity)
        .filter(order_statuses::Column::Kind.eq(StatusKind::New))
        .order_by_asc(order_statuses::Column::Position)
        .order_by_asc(order_statuses::Column::Id)
        .one(db)
        .await?
        .ok_or_else(|| misconfigured("the account has no status of kind `new`".into()))?
        .id;
    Ok(ShopContext {
        shop_id,
        account_id: account.id,
        currency: account
            .currency
            .parse()
            .map_err(|e| misconfigured(format!("account currency: {e}")))?,
        language: shop.language,
        match_products_by: shop.match_products_by,
        client_matching: shop.client_matching,
        credentials: source::credentials(&shop).map_err(|e| misconfigured(e.to_string()))?,
        inbound,
        default_new_status,
    })
}

#[async_trait]
impl InboundHandler for Importer {
    async fn handle(&self, message: InboundMessage, _attempt: u32) -> Disposition {
        let disposition = self.import(message).await;
        crate::metrics::import_disposition(&disposition);
        disposition
    }
}
