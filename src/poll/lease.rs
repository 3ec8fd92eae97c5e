//! Poll leases in the `shops` row: which poller sweeps a shop, and when the shop is next
//! due, shared by every `poll` process through the database.
//!
//! `lease_until` is both the lock and the schedule. While a poller sweeps, it owns the
//! row (`lease_owner` = its id) and keeps `lease_until` a lease length ahead; a poller
//! that dies stops renewing, so its shops fall due again within one lease length. After a
//! sweep the owner is cleared and `lease_until` becomes the next due time, so whichever
//! poller is free then takes the shop, and no two pollers sweep a shop in one interval.
//! Every change is one conditional UPDATE: two pollers racing for a row cannot both win.
//!
//! Times are this process's clock, passed as values (portable between PostgreSQL and
//! SQLite); pollers' clocks only need to agree to well within a lease length.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use entity::shops;
use sea_orm::{
    sea_query::{Expr, LockBehavior, LockType},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A shop whose lease a poller has just taken, with the time it was due: the schedule the
/// next sweep keeps to, whatever time this one starts (see `poll::sweep::next_due`).
#[derive(Debug, Clone)]
pub struct Taken {
    pub shop: shops::Model,
    /// `lease_until` before the take: when the shop fell due (or its dead poller's lease
    /// ran out); `None` for a shop never swept.
    pub due: Option<DateTime<Utc>>,
}

/// One poller's view of the leases.
#[derive(Debug, Clone)]
pub struct Leases {
    db: DatabaseConnection,
    owner: String,
    length: Duration,
}

impl Leases {
    pub fn new(db: DatabaseConnection, owner: String, length: Duration) -> Self {
        Self { db, owner, length }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Shops that poll and whose lease is free (never taken, due, expired) or already
    /// ours (a restarted poller with the same id resumes at once).
    fn takeable(&self, now: DateTime<Utc>) -> Condition {
        Condition::all()
            .add(shops::Column::Enabled.eq(true))
            .add(shops::Column::PollEnabled.eq(true))
            // A rejected token stays paused until someone renews it and clears the flag.
            .add(shops::Column::TokenRejectedAt.is_null())
            .add(
                Condition::any()
                    .add(shops::Column::LeaseUntil.is_null())
                    .add(shops::Column::LeaseUntil.lte(now))
                    .add(shops::Column::LeaseOwner.eq(self.owner.as_str())),
            )
    }

    /// Takes the leases of up to `limit` shops that may be taken now, the longest overdue
    /// first, and returns those shops as they are after the take: one transaction per
    /// batch however large, so a poller with thousands of shops spends a couple of
    /// statements per batch, not two per shop (and no further read of the shop row in
    /// the sweep).
    ///
    /// On PostgreSQL the choice locks the rows it picks and skips rows another poller is
    /// taking right now, so two pollers split the due shops instead of queueing on each
    /// other. The update repeats the condition, so a row taken by another poller between
    /// the two statements (SQLite, or an expired lock) is left out: a shop is never taken
    /// twice. (One statement, `… WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`,
    /// is not a safe shortcut: PostgreSQL may run the subquery more than once and update
    /// more than `n` rows.)
    ///
    /// `sweeping` are the shops this poller is sweeping now: its own leases are takeable
    /// (a restarted poller resumes them), but never a second time while it holds them.
    pub async fn take_due(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        sweeping: &[i64],
    ) -> Result<Vec<Taken>, DbErr> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let txn = self.db.begin().await?;
        let mut due = shops::Entity::find()
            .select_only()
            .column(shops::Column::Id)
            .column(shops::Column::LeaseUntil)
            .filter(self.takeable(now))
            .filter(shops::Column::Id.is_not_in(sweeping.iter().copied()))
            .order_by_asc(shops::Column::LeaseUntil)
            .order_by_asc(shops::Column::Id)
            .limit(limit);
        if txn.get_database_backend() == DbBackend::Postgres {
            due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let due: HashMap<i64, Option<DateTime<Utc>>> =
            due.into_tuple().all(&txn).await?.into_iter().collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // The lease runs from now, not from `now`: the choice may have waited on locks.
        let until = Utc::now().max(now) + chrono(self.length);
        let taken = shops::Entity::update_many()
            .col_expr(shops::Column::LeaseOwner, Expr::value(self.owner.clone()))
            .col_expr(shops::Column::LeaseUntil, Expr::value(until))
            .filter(shops::Column::Id.is_in(due.keys().copied()))
            .filter(self.takeable(now))
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(taken
            .into_iter()
            .map(|shop| Taken {
                due: due.get(&shop.id).copied().flatten(),
                shop,
            })
            .collect())
    }

    /// Extends a lease this poller holds; `false` when another poller has taken it.
    pub async fn renew(&self, shop_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
        let result = shops::Entity::update_many()
            .col_expr(
                shops::Column::LeaseUntil,
                Expr::value(now + chrono(self.length)),
            )
            .filter(shops::Column::Id.eq(shop_id))
            .filter(shops::Column::LeaseOwner.eq(self.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Ends a complete sweep: records the new watermark and the next due time, and lets
    /// the lease go, in one statement, only if this poller still holds the lease.
    pub async fn complete(
        &self,
        shop_id: i64,
        watermark: DateTime<Utc>,
        next_due: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let result = shops::Entity::update_many()
            .col_expr(shops::Column::PollWatermark, Expr::value(watermark))
            .col_expr(
                shops::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(shops::Column::LeaseUntil, Expr::value(next_due))
            .filter(shops::Column::Id.eq(shop_id))
            .filter(shops::Column::LeaseOwner.eq(self.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Lets the lease go without touching the watermark (interrupted or failed sweep):
    /// due again at `next_due`, or at once when `None`.
    pub async fn release(
        &self,
        shop_id: i64,
        next_due: Option<DateTime<Utc>>,
    ) -> Result<(), DbErr> {
        shops::Entity::update_many()
            .col_expr(
                shops::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(shops::Column::LeaseUntil, Expr::value(next_due))
            .filter(shops::Column::Id.eq(shop_id))
            .filter(shops::Column::LeaseOwner.eq(self.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Pauses a shop whose token Prom refused, and lets its lease go.
    pub async fn reject_token(&self, shop_id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
        shops::Entity::update_many()
            .col_expr(shops::Column::TokenRejectedAt, Expr::value(now))
            .col_expr(
                shops::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                shops::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(shops::Column::Id.eq(shop_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Graceful shutdown: every lease still held by this poller is let go, due at once.
    pub async fn release_all(&self) -> Result<u64, DbErr> {
        let result = shops::Entity::update_many()
            .col_expr(
                shops::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                shops::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(shops::Column::LeaseOwner.eq(self.owner.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }
}
