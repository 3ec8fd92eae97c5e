//! The import transaction (ARCHITECTURE.md, 'From webhook to books' and its rules): one
//! Prom order version applied to RO App's books exactly once.
//!
//! Exactly-once comes from three things in one transaction: the inbox row (primary key =
//! event id) inserted first, so a redelivered event stops there; a lock on the order's
//! `(shop, Prom id)` so concurrent versions of one order serialize; and the stored
//! `date_modified`, so an older version changes nothing. Products, categories and clients
//! that may be created are locked by their match key; a new product is normally created
//! before the batch, in a transaction of its own under the same locks
//! ([`create_product`]). Several messages share one
//! transaction (`batch`): each runs inside its own savepoint, and every lock a batch needs
//! ([`lock_names`]) is taken up front in one global order, so concurrent importers neither
//! duplicate anything nor deadlock. The orders themselves are read `FOR UPDATE`
//! ([`BatchOrders::load`]), because a write-off or status change locks the order's row,
//! not the advisory lock. On SQLite the database lock serializes writers instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{categories, clients, inbound_events, order_items, orders, products};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, ModelTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait, TryInsertResult,
};

use super::{
    plan::{ImportPlan, PlannedLine, ProductKey, Shipping},
    ShopContext,
};
use crate::{
    broker::InboundMessage,
    db::advisory_xact_locks,
    domain::{ClientMatching, Outcome},
    prom::order::PromProduct,
};

/// The unit every imported product gets ('Products matched, never duplicated').
const UNIT: &str = "pcs";
/// On the sync log of every version of an order Prom sent without `date_modified`.
pub const MODIFIED_FROM_CREATED: &str =
    "Prom sent no date_modified; the order's creation time was used";

/// What the transaction did, for the sync log, metrics and the caller's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    pub order_id: Option<i64>,
    pub detail: Option<String>,
    /// Products the transaction looked up or created, for the importer's cache.
    pub products: BTreeMap<ProductKey, i64>,
}

impl Applied {
    fn new(outcome: Outcome, order_id: Option<i64>, detail: String) -> Self {
        Self {
            outcome,
            order_id,
            detail: Some(detail),
            products: BTreeMap::new(),
        }
    }
}

/// What the importer gathered before the transaction, so that the transaction itself
/// stays short.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Products known to exist (committed, and never deleted): no lock, no lookup.
    pub known: HashMap<ProductKey, i64>,
    /// Prom's answers for products that may have to be created (`None`: Prom no longer
    /// has the product).
    pub fetched: HashMap<i64, Option<PromProduct>>,
}

pub async fn find_product<C: ConnectionTrait>(
    db: &C,
    account_id: i64,
    key: &ProductKey,
) -> Result<Option<products::Model>, DbErr> {
    let query = products::Entity::find().filter(products::Column::AccountId.eq(account_id));
    let query = match key {
        ProductKey::PromId(id) => query.filter(products::Column::PromId.eq(*id)),
        ProductKey::Sku(sku) => query.filter(products::Column::Sku.eq(sku.as_str())),
        ProductKey::Name(name) => query.filter(products::Column::Name.eq(name.as_str())),
    };
    query.order_by_asc(products::Column::Id).one(db).await
}

/// Inserts the inbox row; `false` when this event was already recorded.
async fn claim_event(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    msg: &InboundMessage,
    outcome: Outcome,
    order_id: Option<i64>,
    detail: Option<String>,
    processed_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = inbound_events::ActiveModel {
        id: Set(msg.event_id.to_string()),
        shop_id: Set(ctx.shop_id),
        order_id: Set(order_id),
        external_order_id: Set(Some(msg.order_id.to_string())),
        source: Set(msg.source),
        outcome: Set(outcome),
        detail: Set(detail),
        received_at: Set(msg.received_at),
        processed_at: Set(processed_at),
    };
    let result = inbound_events::Entity::insert(row)
        .on_conflict_do_nothing_on([inbound_events::Column::Id])
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
}

async fn order_id_of(
    db: &impl ConnectionTrait,
    ctx: &ShopContext,
    external_id: &str,
) -> Result<Option<i64>, DbErr> {
    Ok(orders::Entity::find()
        .filter(orders::Column::ShopId.eq(ctx.shop_id))
        .filter(orders::Column::ExternalId.eq(external_id))
        .one(db)
        .await?
        .map(|o| o.id))
}

/// Records an event that changes no order (rejected, skipped): visible on the sync log,
/// linked to the order when it exists. `false` when the event was already recorded.
pub async fn record_only(
    db: &DatabaseConnection,
    ctx: &ShopContext,
    msg: &InboundMessage,
    outcome: Outcome,
    detail: String,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let order_id = order_id_of(&txn, ctx, &msg.order_id.to_string()).await?;
    let fresh = claim_event(&txn, ctx, msg, outcome, order_id, Some(detail), Utc::now()).await?;
    txn.commit().await?;
    Ok(fresh)
}

/// Every lock applying this plan may need: the order's, and those of the products,
/// categories and contacts it may create. The batch takes them all before its first
/// statement (`db::advisory_xact_locks`); nothing here takes a lock of its own.
pub fn lock_names(ctx: &ShopContext, plan: &ImportPlan, prepared: &Prepared) -> Vec<String> {
    let account = ctx.account_id;
    let mut names = vec![format!("order:{}:{}", ctx.shop_id, plan.external_id)];
    names.extend(product_lock_names(ctx, &plan.lines, prepared));
    if ctx.client_matching == ClientMatching::PhoneOrEmail {
        let buyer = &plan.buyer;
        names.extend(
            buyer
                .phone_normalized
                .iter()
                .map(|p| format!("client:{account}:phone:{p}")),
        );
        names.extend(
            buyer
                .email
                .iter()
                .map(|e| format!("client:{account}:email:{e}")),
        );
    }
    names
}

/// The locks creating the products of `lines` not yet known may need: the product's own
/// and its category's.
fn product_lock_names(
    ctx: &ShopContext,
    lines: &[PlannedLine],
    prepared: &Prepared,
) -> Vec<String> {
    let account = ctx.account_id;
    let language = ctx.language.as_str();
    let mut names = Vec::new();
    for line in lines {
        if prepared.known.contains_key(&line.key) {
            continue;
        }
        names.push(line.key.lock_name(account));
        let category = line
            .prom_id
            .and_then(|id| prepared.fetched.get(&id))
            .and_then(Option::as_ref)
            .and_then(|p| p.category_name(language));
        if let Some(name) = category {
            names.push(format!("category:{account}:{name}"));
        }
    }
    names
}

/// Finds or creates the product of `line` ('Products matched, never duplicated') in a
/// transaction of its own, under the locks that serialize creating it, so the batches
/// that import its orders need neither those locks nor the wait for them. `prom` is
/// Prom's answer about the line's product (`None` inside: Prom no longer has it).
pub async fn create_product(
    db: &DatabaseConnection,
    ctx: &ShopContext,
    line: &PlannedLine,
    prom: Option<(i64, Option<PromProduct>)>,
) -> Result<i64, DbErr> {
    let prepared = Prepared {
        known: HashMap::new(),
        fetched: prom.into_iter().collect(),
    };
    let lines = std::slice::from_ref(line);
    let txn = db.begin().await?;
    advisory_xact_locks(&txn, product_lock_names(ctx, lines, &prepared)).await?;
    let ids = resolve_products(&txn, ctx, lines, &prepared).await?;
    txn.commit().await?;
    ids.get(&line.key)
        .copied()
        .ok_or_else(|| DbErr::Custom("the product was neither found nor created".into()))
}

/// Applies one order version inside the batch's transaction, whose locks it relies on,
/// and inside a savepoint of its own, so that a failure or a duplicate undoes this message
/// alone. Returns `Outcome::Duplicate` without keeping anything when the event was
/// applied before (earlier, or by an earlier message of the same batch).
///
/// The outer error means the transaction itself is broken (its savepoint could not be
/// rolled back): nothing of the batch may be committed then. PostgreSQL would answer a
/// COMMIT of an aborted transaction with a silent rollback, so the caller must not try.
///
/// The inbox row is written last: two deliveries of one event serialize on the order
/// lock, and the second finds the first's inbox row and rolls back. Writing it last
/// saves a round trip per message over claiming first and settling later.
pub async fn apply_one(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    msg: &InboundMessage,
    plan: &ImportPlan,
    prepared: &Prepared,
    processed_at: DateTime<Utc>,
    orders: &mut BatchOrders,
) -> Result<Result<Applied, DbErr>, DbErr> {
    // A savepoint is never released: it ends with the transaction, which spares a round
    // trip, and a batch holds too few of them for PostgreSQL to mind.
    txn.execute_unprepared("SAVEPOINT import_message").await?;
    let undo = || txn.execute_unprepared("ROLLBACK TO SAVEPOINT import_message");
    let key = (ctx.shop_id, plan.external_id.clone());
    let existing = orders.0.get(&key).cloned();
    match apply_here(txn, ctx, msg, plan, prepared, processed_at, existing).await {
        Ok((applied, order, true)) => {
            // Only a kept message changes what the batch knows: a rolled-back one left
            // the order as it was.
            orders.0.insert(key, order);
            Ok(Ok(applied))
        }
        Ok((applied, _, false)) => {
            undo().await?;
            Ok(Ok(Applied::new(
                Outcome::Duplicate,
                applied.order_id,
                "event already processed".into(),
            )))
        }
        Err(e) => {
            undo().await?;
            Ok(Err(e))
        }
    }
}

/// The work of [`apply_one`]: what happened, the order as it now stands, and `false`
/// when the inbox already had the event.
async fn apply_here(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    msg: &InboundMessage,
    plan: &ImportPlan,
    prepared: &Prepared,
    processed_at: DateTime<Utc>,
    existing: Option<orders::Model>,
) -> Result<(Applied, orders::Model, bool), DbErr> {
    let (mut applied, order) = match existing {
        Some(order) => update_order(txn, ctx, plan, prepared, order).await?,
        None => create_order(txn, ctx, plan, prepared).await?,
    };
    if plan.modified_from_created {
        // Imported all the same, but visibly: the order's versions are compared by a date
        // Prom did not send as one.
        applied.detail = Some(match applied.detail.take() {
            Some(detail) => format!("{detail}; {MODIFIED_FROM_CREATED}"),
            None => MODIFIED_FROM_CREATED.to_owned(),
        });
    }
    let fresh = claim_event(
        txn,
        ctx,
        msg,
        applied.outcome,
        applied.order_id,
        applied.detail.clone(),
        processed_at,
    )
    .await?;
    Ok((applied, order, fresh))
}

/// The orders a batch works on, as they stand inside its transaction: read once for the
/// whole batch, then kept up to date by each message the batch keeps. Spares every
/// message a lookup.
///
/// They are read `FOR UPDATE`. The advisory order lock only keeps other importers out;
/// a write-off or a status change (`service::orders`) locks the order's row instead, and
/// without the row lock here one of them could commit between this read and the apply,
/// which would then decide on a stale `written_off_at` (and replace the lines of an order
/// already written off). With it, such a change either committed before this read, and
/// is seen, or waits for the batch's commit. On SQLite (no row locks, one connection)
/// the transaction itself excludes every other writer.
#[derive(Debug, Default)]
pub struct BatchOrders(HashMap<(i64, String), orders::Model>);

impl BatchOrders {
    pub async fn load<'a>(
        txn: &DatabaseTransaction,
        keys: impl IntoIterator<Item = (i64, &'a str)>,
    ) -> Result<Self, DbErr> {
        let pairs: BTreeSet<(i64, String)> = keys
            .into_iter()
            .map(|(shop, id)| (shop, id.to_owned()))
            .collect();
        // Exactly the batch's pairs: it holds their advisory locks, so no other batch
        // wants these rows, and row locks taken here can never close a cycle between
        // two batches.
        let any = pairs.iter().fold(Condition::any(), |any, (shop, id)| {
            any.add(
                Condition::all()
                    .add(orders::Column::ShopId.eq(*shop))
                    .add(orders::Column::ExternalId.eq(id.as_str())),
            )
        });
        let found = orders::Entity::find()
            .filter(any)
            .lock_exclusive()
            .all(txn)
            .await?;
        Ok(Self(
            found
                .into_iter()
                .filter_map(|o| Some(((o.shop_id?, o.external_id.clone()?), o)))
                .collect(),
        ))
    }
}

async fn create_order(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    plan: &ImportPlan,
    prepared: &Prepared,
) -> Result<(Applied, orders::Model), DbErr> {
    let product_ids = resolve_products(txn, ctx, &plan.lines, prepared).await?;
    let client_id = resolve_client(txn, ctx, plan).await?;
    let status_id = ctx
        .inbound
        .get(plan.status.as_str().as_ref())
        .copied()
        .unwrap_or(ctx.default_new_status);
    let now = Utc::now();
    let mut order = orders::ActiveModel {
        account_id: Set(ctx.account_id),
        number: Set(plan.external_id.clone()),
        shop_id: Set(Some(ctx.shop_id)),
        external_id: Set(Some(plan.external_id.clone())),
        status_id: Set(status_id),
        remote_status: Set(Some(plan.status.to_string())),
        remote_status_title: Set(plan.status_title.clone()),
        remote_created_at: Set(Some(plan.created_at)),
        remote_modified_at: Set(Some(plan.modified_at)),
        last_synced_at: Set(Some(now)),
        last_refresh_at: Set(None),
        client_id: Set(client_id),
        total: Set(plan.total),
        currency: Set(ctx.currency.code().to_owned()),
        written_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    set_shipping(&mut order, &plan.shipping);
    let order = order.insert(txn).await?;
    insert_items(txn, order.id, &plan.lines, &product_ids).await?;
    let applied = Applied {
        products: product_ids,
        ..Applied::new(
            Outcome::Applied,
            Some(order.id),
            format!(
                "created with {} item(s), Prom status {}",
                plan.lines.len(),
                plan.status
            ),
        )
    };
    Ok((applied, order))
}

async fn update_order(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    plan: &ImportPlan,
    prepared: &Prepared,
    order: orders::Model,
) -> Result<(Applied, orders::Model), DbErr> {
    let order_id = Some(order.id);
    if let Some(stored) = order.remote_modified_at {
        if plan.modified_at <= stored {
            let (outcome, what) = if plan.modified_at == stored {
                (Outcome::Duplicate, "this version is already applied")
            } else {
                (Outcome::Stale, "older than the stored version")
            };
            let applied = Applied::new(
                outcome,
                order_id,
                format!("{what} (date_modified {})", plan.modified_at),
            );
            if outcome == Outcome::Duplicate {
                // 'Last update' (`last_synced_at`) is the last successful sync, not the
                // last change: Prom answering the version held is one, so a refresh that
                // finds nothing new still shows the operator that promsync checked. Nothing
                // else moves (`updated_at` means changed).
                let mut checked: orders::ActiveModel = order.into();
                checked.last_synced_at = Set(Some(Utc::now()));
                let order = checked.update(txn).await?;
                return Ok((applied, order));
            }
            return Ok((applied, order));
        }
    }
    let mut changes = Vec::new();
    let mut outcome = Outcome::Applied;
    let mut products = BTreeMap::new();
    let prom_status = plan.status.to_string();
    let mut update: orders::ActiveModel = order.clone().into();
    // 'Prom status applied only when it changed': only a Prom status that differs from the
    // last one seen is applied, so an echo of our own outbound change cannot bounce back.
    if order.remote_status.as_deref() != Some(prom_status.as_str()) {
        match ctx.inbound.get(prom_status.as_str()) {
            Some(status_id) if *status_id != order.status_id => {
                update.status_id = Set(*status_id);
                changes.push(format!("status ← Prom {prom_status}"));
            }
            Some(_) => changes.push(format!("Prom status {prom_status}")),
            None => changes.push(format!(
                "Prom status {prom_status} is unmapped: status kept"
            )),
        }
        update.remote_status = Set(Some(prom_status));
    }
    // Not goods: Prom's name of its status follows every newer version, written off or
    // not, and even when the status code itself is unchanged (a renamed custom status).
    if order.remote_status_title != plan.status_title {
        update.remote_status_title = Set(plan.status_title.clone());
        changes.push(match &plan.status_title {
            Some(title) => format!("Prom status title {title}"),
            None => "Prom status title removed".into(),
        });
    }
    let items = order
        .find_related(order_items::Entity)
        .order_by_asc(order_items::Column::Position)
        .all(txn)
        .await?;
    if !same_lines(&items, &plan.lines) {
        if order.written_off_at.is_some() {
            // 'Line edits stop at the write-off': after write-off the goods are gone from
            // stock; Prom's edits no longer apply to the lines.
            outcome = Outcome::SkippedWrittenOff;
            changes.push("line changes ignored: goods already written off".into());
        } else {
            products = resolve_products(txn, ctx, &plan.lines, prepared).await?;
            order_items::Entity::delete_many()
                .filter(order_items::Column::OrderId.eq(order.id))
                .exec(txn)
                .await?;
            insert_items(txn, order.id, &plan.lines, &products).await?;
            update.total = Set(plan.total);
            changes.push(format!("items replaced ({} line(s))", plan.lines.len()));
        }
    } else if order.written_off_at.is_none() && order.total != plan.total {
        update.total = Set(plan.total);
        changes.push("total updated".into());
    }
    // Delivery and payment are not goods: they follow Prom after the write-off too, but
    // a waybill set in RO App that Prom has not taken yet is not overwritten.
    let shipping = shipping_beside_waybill(&order, &plan.shipping, &mut update, &mut changes);
    if shipping_of(&order) != shipping {
        set_shipping(&mut update, &shipping);
        changes.push("delivery/payment updated".into());
    }
    let now = Utc::now();
    update.remote_modified_at = Set(Some(plan.modified_at));
    update.last_synced_at = Set(Some(now));
    update.updated_at = Set(now);
    let updated = update.update(txn).await?;
    if changes.is_empty() {
        changes.push("no visible change".into());
    }
    let applied = Applied {
        products,
        ..Applied::new(outcome, order_id, changes.join("; "))
    };
    Ok((applied, updated))
}

/// Prom's delivery as this import should store it (ARCHITECTURE.md, 'Waybills reach
/// Prom'). While a waybill set in RO App waits for Prom, Prom's number is an older one
/// (or none): ours stays, the publisher brings Prom to it. Once Prom took ours, a
/// different number on Prom is a later edit made there: it wins, and our waybill is
/// dropped so that nothing sends it back over Prom's.
fn shipping_beside_waybill(
    order: &orders::Model,
    from_prom: &Shipping,
    update: &mut orders::ActiveModel,
    changes: &mut Vec<String>,
) -> Shipping {
    let mut shipping = from_prom.clone();
    let Some(ours) = order.waybill_number.as_deref() else {
        return shipping;
    };
    let theirs = from_prom.declaration_number.as_deref();
    if theirs == Some(ours) {
        return shipping;
    }
    if order.pending_waybill().is_some() {
        shipping.declaration_number = order.delivery_declaration_number.clone();
        changes.push("Prom's waybill left aside: the one set in RO App is not on Prom yet".into());
    } else {
        update.waybill_number = Set(None);
        update.waybill_carrier = Set(None);
        update.waybill_sent_number = Set(None);
        update.waybill_sent_carrier = Set(None);
        changes.push("waybill changed on Prom: Prom's replaces the one set in RO App".into());
    }
    shipping
}

fn set_shipping(order: &mut orders::ActiveModel, s: &Shipping) {
    order.delivery_method = Set(s.delivery_method.clone());
    order.delivery_provider = Set(s.delivery_provider.clone());
    order.delivery_type = Set(s.delivery_type.clone());
    order.delivery_address = Set(s.delivery_address.clone());
    order.delivery_recipient_first_name = Set(s.recipient_first_name.clone());
    order.delivery_recipient_last_name = Set(s.recipient_last_name.clone());
    order.delivery_recipient_phone = Set(s.recipient_phone.clone());
    order.delivery_declaration_number = Set(s.declaration_number.clone());
    order.delivery_cost = Set(s.delivery_cost);
    order.payment_method = Set(s.payment_method.clone());
    order.payment_status = Set(s.payment_status.clone());
}

fn shipping_of(order: &orders::Model) -> Shipping {
    Shipping {
        delivery_method: order.delivery_method.clone(),
        delivery_provider: order.delivery_provider.clone(),
        delivery_type: order.delivery_type.clone(),
        delivery_address: order.delivery_address.clone(),
        recipient_first_name: order.delivery_recipient_first_name.clone(),
        recipient_last_name: order.delivery_recipient_last_name.clone(),
        recipient_phone: order.delivery_recipient_phone.clone(),
        declaration_number: order.delivery_declaration_number.clone(),
        delivery_cost: order.delivery_cost,
        payment_method: order.payment_method.clone(),
        payment_status: order.payment_status.clone(),
    }
}

fn same_lines(items: &[order_items::Model], lines: &[PlannedLine]) -> bool {
    items.len() == lines.len()
        && items.iter().zip(lines).all(|(item, line)| {
            item.name == line.name
                && item.sku == line.sku
                && item.quantity == line.quantity
                && item.price == line.price
        })
}

async fn insert_items(
    txn: &DatabaseTransaction,
    order_id: i64,
    lines: &[PlannedLine],
    product_ids: &BTreeMap<ProductKey, i64>,
) -> Result<(), DbErr> {
    let rows = lines.iter().enumerate().map(|(position, line)| {
        order_items::ActiveModel {
            order_id: Set(order_id),
            product_id: Set(product_ids[&line.key]),
            position: Set(position as i32),
            name: Set(line.name.clone()),
            sku: Set(line.sku.clone()),
            quantity: Set(line.quantity),
            price: Set(line.price),
            // 'Lines added without write-off': imported lines are added without write-off.
            written_off: Set(false),
            ..Default::default()
        }
    });
    if !lines.is_empty() {
        order_items::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Finds or creates the product of every line ('Products matched, never duplicated'). Known
/// products are taken as they are; only the others (locked by the batch beforehand, see
/// [`lock_names`]) are looked up.
async fn resolve_products(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    lines: &[PlannedLine],
    prepared: &Prepared,
) -> Result<BTreeMap<ProductKey, i64>, DbErr> {
    let mut ids = BTreeMap::new();
    let mut keys: BTreeSet<&ProductKey> = BTreeSet::new();
    for line in lines {
        match prepared.known.get(&line.key) {
            Some(id) => {
                ids.insert(line.key.clone(), *id);
            }
            None => {
                keys.insert(&line.key);
            }
        }
    }
    let mut missing = Vec::new();
    for key in keys {
        match find_product(txn, ctx.account_id, key).await? {
            Some(product) => {
                ids.insert(key.clone(), product.id);
            }
            None => missing.push(key),
        }
    }
    if missing.is_empty() {
        return Ok(ids);
    }
    let line_of = |key: &ProductKey| lines.iter().find(|l| &l.key == key).expect("key of a line");
    let prom_product = |line: &PlannedLine| {
        line.prom_id
            .and_then(|id| prepared.fetched.get(&id))
            .and_then(Option::as_ref)
    };
    let language = ctx.language.as_str();
    let category_names: BTreeSet<String> = missing
        .iter()
        .filter_map(|key| prom_product(line_of(key))?.category_name(language))
        .map(str::to_owned)
        .collect();
    let category_ids = resolve_categories(txn, ctx.account_id, &category_names).await?;
    for key in missing {
        let line = line_of(key);
        let product = prom_product(line);
        let category_id = product
            .and_then(|p| p.category_name(language))
            .and_then(|name| category_ids.get(name).copied());
        let created = products::ActiveModel {
            account_id: Set(ctx.account_id),
            name: Set(line.name.clone()),
            sku: Set(line.sku.clone()),
            prom_id: Set(line.prom_id),
            description: Set(product
                .and_then(|p| p.localized_description(language))
                .map(str::to_owned)),
            unit: Set(UNIT.to_owned()),
            category_id: Set(category_id),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(txn)
        .await?;
        ids.insert(key.clone(), created.id);
    }
    Ok(ids)
}

async fn resolve_categories(
    txn: &DatabaseTransaction,
    account_id: i64,
    names: &BTreeSet<String>,
) -> Result<HashMap<String, i64>, DbErr> {
    let mut ids = HashMap::new();
    for name in names {
        let existing = categories::Entity::find()
            .filter(categories::Column::AccountId.eq(account_id))
            .filter(categories::Column::Name.eq(name.as_str()))
            .one(txn)
            .await?;
        let id = match existing {
            Some(category) => category.id,
            None => {
                categories::ActiveModel {
                    account_id: Set(account_id),
                    name: Set(name.clone()),
                    ..Default::default()
                }
                .insert(txn)
                .await?
                .id
            }
        };
        ids.insert(name.clone(), id);
    }
    Ok(ids)
}

/// The buyer's contact ('Buyers become contacts'): always a new one, or an existing one
/// with the same normalized phone or e-mail when the shop asks for matching.
async fn resolve_client(
    txn: &DatabaseTransaction,
    ctx: &ShopContext,
    plan: &ImportPlan,
) -> Result<Option<i64>, DbErr> {
    let buyer = &plan.buyer;
    if buyer.first_name.is_none()
        && buyer.last_name.is_none()
        && buyer.phone.is_none()
        && buyer.email.is_none()
    {
        return Ok(None);
    }
    if ctx.client_matching == ClientMatching::PhoneOrEmail {
        let mut any = sea_orm::Condition::any();
        if let Some(phone) = &buyer.phone_normalized {
            any = any.add(clients::Column::PhoneNormalized.eq(phone.as_str()));
        }
        if let Some(email) = &buyer.email {
            any = any.add(clients::Column::Email.eq(email.as_str()));
        }
        if buyer.phone_normalized.is_some() || buyer.email.is_some() {
            let existing = clients::Entity::find()
                .filter(clients::Column::AccountId.eq(ctx.account_id))
                .filter(any)
                .order_by_asc(clients::Column::Id)
                .one(txn)
                .await?;
            if let Some(client) = existing {
                return Ok(Some(client.id));
            }
        }
    }
    let client = clients::ActiveModel {
        account_id: Set(ctx.account_id),
        first_name: Set(buyer.first_name.clone()),
        last_name: Set(buyer.last_name.clone()),
        phone: Set(buyer.phone.clone()),
        phone_normalized: Set(buyer.phone_normalized.clone()),
        email: Set(buyer.email.clone()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(Some(client.id))
}

/// The latest stored version of an order, if any (used before the transaction to skip
/// Prom product fetches for versions that will be stale anyway).
pub async fn stored_version(
    db: &DatabaseConnection,
    ctx: &ShopContext,
    external_id: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(orders::Entity::find()
        .filter(orders::Column::ShopId.eq(ctx.shop_id))
        .filter(orders::Column::ExternalId.eq(external_id))
        .one(db)
        .await?
        .and_then(|o| o.remote_modified_at))
}
