//! Warming an importer's database connections before it consumes.
//!
//! A fresh PostgreSQL connection pays, the first time it runs each statement, for
//! preparing it (a round trip, parsing, planning) and for loading the catalogue entries of
//! every table and index the statement touches. After a start, the first orders met that
//! on every connection at once, with the load already coming in: the first second's
//! orders waited ~130 ms longer than those of a run whose connections had been used.
//! Here each connection the batches will use first imports a made-up order through the
//! batch's own code (`batch::apply_items`), in a transaction that is rolled back: nothing is kept (sequences aside:
//! a rolled-back insert still uses up an id).

use anyhow::Context;
use chrono::Utc;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;

use super::{
    apply::Prepared,
    batch::{apply_items, Item},
    plan, ShopContext,
};
use crate::{
    broker::InboundMessage,
    domain::Source,
    prom::{
        ids::{EventId, ShopId},
        order::PromOrder,
    },
};

/// The made-up order: a buyer, two lines, delivery and payment, so that every statement
/// of a new order's import runs. Its id is negative, which no Prom order has, so its lock
/// can never hold up a real one.
fn made_up_order(id: i64) -> anyhow::Result<PromOrder> {
    serde_json::from_value(json!({
        "id": id,
        "date_created": "2026-01-01T00:00:00+00:00",
        "date_modified": "2026-01-01T00:00:00+00:00",
        "status": "pending",
        "client_first_name": "Warm",
        "client_last_name": "Up",
        "phone": "+380000000000",
        "email": "warm-up@example.invalid",
        "price": "2",
        "delivery_cost": 0,
        "delivery_option": {"name": "Warm-up"},
        "payment_option": {"name": "Warm-up"},
        "products": [
            {"id": id, "sku": format!("warm-up{id}"), "name": "Warm-up", "price": "1",
             "quantity": 1, "total_price": "1"},
            {"id": id - 1, "sku": format!("warm-up{}", id - 1), "name": "Warm-up 2",
             "price": "1", "quantity": 1, "total_price": "1"}
        ]
    }))
    .context("the made-up order")
}

/// Imports a made-up order of `ctx`'s shop on `connections` connections at once, each in
/// a transaction rolled back at the end. Returns how many ran.
pub async fn warm_connections(
    db: &DatabaseConnection,
    ctx: &ShopContext,
    connections: usize,
) -> anyhow::Result<usize> {
    let shop = ShopId::try_from(ctx.shop_id).context("the shop's id")?;
    let runs = (1..=connections).map(|n| async move {
        let order = made_up_order(-(i64::try_from(n)? * 2))?;
        let plan = plan::plan(&order, ctx.currency, ctx.language, ctx.match_products_by)
            .map_err(|e| anyhow::anyhow!("planning the made-up order: {e}"))?;
        let msg = InboundMessage {
            event_id: EventId::random(),
            shop_id: shop,
            source: Source::Webhook,
            received_at: Utc::now(),
            order_id: order.id,
            order: None,
        };
        let prepared = Prepared::default();
        let item = Item {
            ctx,
            msg: &msg,
            plan: &plan,
            prepared: &prepared,
        };
        let txn = db.begin().await.context("beginning")?;
        let mut results = apply_items(&txn, &[item], Utc::now(), None)
            .await
            .context("applying")?;
        txn.rollback().await.context("rolling back")?;
        results.pop().context("no result")?.context("applying")?;
        anyhow::Ok(())
    });
    futures::future::try_join_all(runs).await?;
    Ok(connections)
}
