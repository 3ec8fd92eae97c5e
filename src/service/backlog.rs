//! What `/metrics` reads from the installation's store: each lane's work queue (from the
//! broker) and dead letters, the outbox rows not yet relayed, and the shops whose Prom
//! token was rejected. Every figure is one indexed count (and a minimum) per query, so a
//! measurement costs a handful of cheap queries whatever the traffic; `metrics::StoreGauges`
//! bounds how often and how long it runs. A part that cannot be read is logged and left
//! out: the other gauges still move.

use std::fmt::Display;

use entity::{outbox, shops};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::Services;
use crate::{
    broker::{dead_letters, Backlog, Lane},
    metrics::{Queue, StoreSnapshot},
};

/// Measures everything the store gauges show.
pub async fn measure(services: &Services) -> StoreSnapshot {
    let mut queues = Vec::new();
    if let Some(work) = logged("work queues", services.broker.backlogs().await) {
        queues.extend(
            work.into_iter()
                .map(|(lane, backlog)| (lane, Queue::Work, backlog)),
        );
    }
    for lane in Lane::ALL {
        if let Some(dead) = logged(
            "dead letters",
            dead_letters::backlog(&services.db, lane).await,
        ) {
            queues.push((lane, Queue::Dead, dead));
        }
    }
    StoreSnapshot {
        queues,
        token_rejected_shops: logged("shops", token_rejected_shops(&services.db).await),
        outbox: logged("outbox", outbox_backlog(&services.db).await),
    }
}

fn logged<T, E: Display>(what: &str, measured: Result<T, E>) -> Option<T> {
    measured
        .inspect_err(|e| tracing::warn!(error = %e, what, "not measured for /metrics"))
        .ok()
}

/// Enabled shops paused because Prom refused their token.
async fn token_rejected_shops(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let count = shops::Entity::find()
        .select_only()
        .column_as(shops::Column::Id.count(), "shops")
        .filter(shops::Column::Enabled.eq(true))
        .filter(shops::Column::TokenRejectedAt.is_not_null())
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or_default();
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Outbox rows committed but not yet relayed to the broker.
async fn outbox_backlog(db: &DatabaseConnection) -> Result<Backlog, DbErr> {
    let unrelayed = outbox::Entity::find().filter(outbox::Column::PublishedAt.is_null());
    Backlog::of_rows(db, unrelayed, outbox::Column::Id, outbox::Column::CreatedAt).await
}
