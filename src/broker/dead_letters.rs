//! Dead letters, recorded in the database (`dead_letters`) with the account they belong
//! to, so that a tenant lists and requeues its own with a plain account-scoped query and
//! nobody reads the broker's dead-letter queues to answer a page.
//!
//! How a dead letter gets here depends on the broker. RabbitMQ keeps its dead-letter
//! queues as the safety net: a drainer (`Broker::drain_dead`, started beside the importer
//! for the inbound lane and beside the publisher for the outbound lane) consumes them and
//! [`record`]s each letter, acknowledging it only after the commit. The embedded broker
//! records in the same transaction that takes the message off its queue.
//!
//! Requeueing removes the row and republishes the payload inside one transaction
//! (`Broker::requeue_dead`): the embedded broker writes the message in that transaction;
//! RabbitMQ confirms the publish before the commit. A crash in between leaves the row, so
//! nothing is lost; the message may then run twice, which the importer's inbox and the
//! state-based publisher make harmless. Two requeues of one row cannot both publish: the
//! second's delete finds nothing.

use std::collections::BTreeSet;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::{dead_letters, shops};
use sea_orm::{
    sea_query::OnConflict, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Backlog, Broker, BrokerError, Lane};

/// Longest `last_error` kept, in characters.
pub const LAST_ERROR_MAX_CHARS: usize = 1000;
/// Most ids one requeue request may name.
pub const REQUEUE_MAX_IDS: usize = 1000;
/// Rows read per query when the operator goes through a whole lane.
const OPERATOR_PAGE: u64 = 500;

/// A dead letter as the broker hands it over.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub lane: Lane,
    pub message_id: String,
    pub payload: Vec<u8>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
}

/// Where a broker's drainer puts the dead letters it takes off a queue. `record` returns
/// only once the letter is committed; the drainer acknowledges it after that.
#[async_trait]
pub trait DeadLetterSink: Send + Sync + 'static {
    async fn record(&self, letter: NewDeadLetter) -> anyhow::Result<()>;
}

/// The sink every role uses: the `dead_letters` table.
pub struct Recorder {
    db: DatabaseConnection,
}

impl Recorder {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl DeadLetterSink for Recorder {
    async fn record(&self, letter: NewDeadLetter) -> anyhow::Result<()> {
        record(&self.db, letter)
            .await
            .context("recording a dead letter")
    }
}

/// Stores a dead letter, idempotently by `(lane, message id)`: recording the same one
/// again (a drainer's redelivery, or the same message dying again) keeps one row, with
/// the latest attempt count and error. Its account is that of the shop its payload
/// names; a payload naming no known shop belongs to no account (only `promsync dlq`
/// shows it).
pub async fn record<C: ConnectionTrait>(conn: &C, letter: NewDeadLetter) -> Result<(), DbErr> {
    let value: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap_or_default();
    let shop_id = value["shop_id"].as_i64();
    let order_id = value["order_id"].as_i64();
    let account_id = match shop_id {
        Some(shop_id) => {
            shops::Entity::find_by_id(shop_id)
                .select_only()
                .column(shops::Column::AccountId)
                .into_tuple::<i64>()
                .one(conn)
                .await?
        }
        None => None,
    };
    let row = dead_letters::ActiveModel {
        lane: Set(letter.lane),
        message_id: Set(letter.message_id),
        account_id: Set(account_id),
        shop_id: Set(shop_id),
        order_id: Set(order_id),
        attempts: Set(i32::try_from(letter.attempts).unwrap_or(i32::MAX)),
        last_error: Set(letter.last_error.map(|e| bounded(&e))),
        dead_at: Set(letter.dead_at),
        payload: Set(letter.payload),
        ..Default::default()
    };
    dead_letters::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([dead_letters::Column::Lane, dead_letters::Column::MessageId])
                .update_columns([
                    dead_letters::Column::AccountId,
                    dead_letters::Column::ShopId,
                    dead_letters::Column::OrderId,
                    dead_letters::Column::Attempts,
                    dead_letters::Column::LastError,
                    dead_letters::Column::DeadAt,
                    dead_letters::Column::Payload,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The first `LAST_ERROR_MAX_CHARS` characters of an error text.
fn bounded(text: &str) -> String {
    text.chars().take(LAST_ERROR_MAX_CHARS).collect()
}

/// A dead letter as its account sees it (`GET /api/dead-letters`, "Sync problems").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    /// `inbound` (Prom → RO App) or `outbound` (RO App → Prom).
    #[schema(value_type = Lane)]
    pub lane: String,
    pub shop_id: Option<i64>,
    /// The Prom order id (inbound) or the RO App order id (outbound).
    pub order_id: Option<i64>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
}

impl From<dead_letters::Model> for DeadLetterView {
    fn from(row: dead_letters::Model) -> Self {
        Self {
            id: row.id,
            lane: row.lane.to_string(),
            shop_id: row.shop_id,
            order_id: row.order_id,
            attempts: row.attempts,
            last_error: row.last_error,
            dead_at: row.dead_at,
        }
    }
}

/// The account's dead letters, newest first: at most `limit`, and only those older than
/// `before_id` when given (the next page starts below the last id seen).
pub async fn list_for_account(
    db: &DatabaseConnection,
    account_id: i64,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<DeadLetterView>, DbErr> {
    let mut query = dead_letters::Entity::find()
        .select_only()
        .columns([
            dead_letters::Column::Id,
            dead_letters::Column::Lane,
            dead_letters::Column::ShopId,
            dead_letters::Column::OrderId,
            dead_letters::Column::Attempts,
            dead_letters::Column::LastError,
            dead_letters::Column::DeadAt,
        ])
        .filter(dead_letters::Column::AccountId.eq(account_id));
    if let Some(before_id) = before_id {
        query = query.filter(dead_letters::Column::Id.lt(before_id));
    }
    // The payload stays in the database: listing never needs it.
    let rows = query
        .order_by_desc(dead_letters::Column::Id)
        .limit(limit)
        .into_tuple::<(
            i64,
            String,
            Option<i64>,
            Option<i64>,
            i32,
            Option<String>,
            DateTime<Utc>,
        )>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, lane, shop_id, order_id, attempts, last_error, dead_at)| DeadLetterView {
                id,
                lane,
                shop_id,
                order_id,
                attempts,
                last_error,
                dead_at,
            },
        )
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// Sends the account's dead letters among `ids` back to their work queues with a fresh
/// attempt count; ids of other accounts, or of no letter, are skipped and not counted.
pub async fn requeue_for_account(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    account_id: i64,
    ids: &[i64],
) -> Result<u64, RequeueError> {
    let ids: BTreeSet<i64> = ids.iter().copied().collect();
    // One query keeps the account's ids: a request naming a thousand foreign ids costs
    // one read, not a thousand transactions.
    let owned: Vec<i64> = dead_letters::Entity::find()
        .select_only()
        .column(dead_letters::Column::Id)
        .filter(dead_letters::Column::AccountId.eq(account_id))
        .filter(dead_letters::Column::Id.is_in(ids))
        .order_by_asc(dead_letters::Column::Id)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let mut requeued = 0;
    for id in owned {
        // The delete checks the account again: the row is only ever taken if it is the
        // caller's at that moment.
        let row = dead_letters::Entity::delete_many()
            .filter(dead_letters::Column::Id.eq(id))
            .filter(dead_letters::Column::AccountId.eq(account_id));
        if requeue_one(db, broker, row).await? {
            requeued += 1;
        }
    }
    Ok(requeued)
}

/// Removes the row `delete` selects (at most one) and republishes its message, in one
/// transaction; `false` when there was no such row (or another requeue took it first).
async fn requeue_one(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    delete: sea_orm::DeleteMany<dead_letters::Entity>,
) -> Result<bool, RequeueError> {
    let txn = db.begin().await?;
    // Deleting first locks the row: a concurrent requeue of it waits, then finds nothing.
    let Some(row) = delete.exec_with_returning(&txn).await?.into_iter().next() else {
        txn.rollback().await?;
        return Ok(false);
    };
    let lane = row.lane;
    // On an error the transaction rolls back when dropped: the row stays.
    broker
        .requeue_dead(lane, &row.message_id, &row.payload, &txn)
        .await?;
    txn.commit().await?;
    tracing::info!(
        dead_letter_id = row.id,
        lane = lane.as_str(),
        "dead letter requeued"
    );
    Ok(true)
}

/// A dead letter as `promsync dlq list` prints it (one JSON line each): the fields it
/// always printed first, then where it belongs and when it died.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    /// The row id, as `dlq requeue --id` takes it.
    pub id: String,
    pub shop_id: Option<i64>,
    pub order_id: Option<i64>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub lane: String,
    pub message_id: String,
    pub account_id: Option<i64>,
    pub dead_at: DateTime<Utc>,
}

impl From<dead_letters::Model> for OperatorView {
    fn from(row: dead_letters::Model) -> Self {
        Self {
            id: row.id.to_string(),
            shop_id: row.shop_id,
            order_id: row.order_id,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            last_error: row.last_error,
            lane: row.lane.to_string(),
            message_id: row.message_id,
            account_id: row.account_id,
            dead_at: row.dead_at,
        }
    }
}

/// One page of a lane's dead letters (every account's), oldest first, after `after_id`.
async fn lane_page(
    db: &DatabaseConnection,
    lane: Lane,
    after_id: i64,
) -> Result<Vec<dead_letters::Model>, DbErr> {
    dead_letters::Entity::find()
        .filter(dead_letters::Column::Lane.eq(lane))
        .filter(dead_letters::Column::Id.gt(after_id))
        .order_by_asc(dead_letters::Column::Id)
        .limit(OPERATOR_PAGE)
        .all(db)
        .await
}

/// Every dead letter of a lane across all accounts, oldest first (the installation's
/// operator), handed to `each` a page at a time so a long list is never held at once.
pub async fn for_each_in_lane(
    db: &DatabaseConnection,
    lane: Lane,
    mut each: impl FnMut(OperatorView) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after_id = 0;
    loop {
        let page = lane_page(db, lane, after_id)
            .await
            .context("reading dead letters")?;
        let Some(last) = page.last() else { break };
        after_id = last.id;
        for row in page {
            each(row.into())?;
        }
    }
    Ok(())
}

/// Every dead letter of a lane, oldest first (tests and small installations).
pub async fn list_lane(db: &DatabaseConnection, lane: Lane) -> anyhow::Result<Vec<OperatorView>> {
    let mut letters = Vec::new();
    for_each_in_lane(db, lane, |letter| {
        letters.push(letter);
        Ok(())
    })
    .await?;
    Ok(letters)
}

/// The operator's requeue (`promsync dlq requeue`), across accounts: the lane's dead
/// letters named by `ids` (row ids, or message ids), or all of them when `ids` is `None`.
pub async fn requeue_in_lane(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    lane: Lane,
    ids: Option<&[String]>,
) -> Result<u64, RequeueError> {
    let mut requeued = 0;
    let mut after_id = 0;
    loop {
        let page = lane_page(db, lane, after_id).await?;
        let Some(last) = page.last() else { break };
        after_id = last.id;
        for row in page {
            let named = ids.is_none_or(|ids| {
                ids.iter()
                    .any(|id| *id == row.message_id || *id == row.id.to_string())
            });
            if !named {
                continue;
            }
            let delete = dead_letters::Entity::delete_many()
                .filter(dead_letters::Column::Id.eq(row.id))
                .filter(dead_letters::Column::Lane.eq(lane));
            if requeue_one(db, broker, delete).await? {
                requeued += 1;
            }
        }
    }
    Ok(requeued)
}

/// Deletes every dead letter of a lane (every account's); returns how many.
/// How many dead letters `lane` holds and when the oldest died (for `/metrics`). Dead
/// letters are few by nature; the count walks the `(lane, message_id)` index.
pub async fn backlog(db: &DatabaseConnection, lane: Lane) -> Result<Backlog, DbErr> {
    let letters = dead_letters::Entity::find().filter(dead_letters::Column::Lane.eq(lane));
    Backlog::of_rows(
        db,
        letters,
        dead_letters::Column::Id,
        dead_letters::Column::DeadAt,
    )
    .await
}

pub async fn purge_lane(db: &DatabaseConnection, lane: Lane) -> Result<u64, DbErr> {
    let result = dead_letters::Entity::delete_many()
        .filter(dead_letters::Column::Lane.eq(lane))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use sea_orm::{Database, PaginatorTrait};

    use super::*;

    async fn database() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        crate::db::migrate(&db).await.expect("migrations");
        db
    }

    async fn shop_of(db: &DatabaseConnection, account_name: &str) -> (i64, i64) {
        let keyring = crate::keyring::Keyring::default();
        let account = crate::provision::create_account(db, account_name, "UAH")
            .await
            .expect("account");
        let shop = crate::provision::create_shop(
            db,
            &keyring,
            crate::provision::NewShop {
                account_id: account.account_id,
                name: "Shop".into(),
                prom_url: crate::prom::origin::OriginPolicy::new([])
                    .vet_url("https://my.prom.ua")
                    .await
                    .expect("the default Prom origin"),
                prom_token: "token".into(),
                language: crate::domain::Language::Uk,
                match_products_by: crate::domain::MatchProductsBy::Sku,
                client_matching: crate::domain::ClientMatching::AlwaysNew,
            },
        )
        .await
        .expect("shop");
        (account.account_id, shop.shop_id)
    }

    fn letter(message_id: &str, payload: serde_json::Value, error: &str) -> NewDeadLetter {
        NewDeadLetter {
            lane: Lane::Inbound,
            message_id: message_id.into(),
            payload: serde_json::to_vec(&payload).unwrap(),
            attempts: 1,
            last_error: Some(error.into()),
            dead_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn recording_the_same_message_twice_keeps_one_row_with_the_latest_error() {
        let db = database().await;
        let (account_id, shop_id) = shop_of(&db, "A").await;
        let payload = serde_json::json!({"shop_id": shop_id, "order_id": 7});

        record(&db, letter("m1", payload.clone(), "first"))
            .await
            .unwrap();
        record(&db, letter("m1", payload, "second")).await.unwrap();

        let rows = dead_letters::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].account_id, Some(account_id));
        assert_eq!(rows[0].order_id, Some(7));
        assert_eq!(rows[0].last_error.as_deref(), Some("second"));
    }

    #[tokio::test]
    async fn a_letter_naming_no_known_shop_belongs_to_no_account() {
        let db = database().await;
        let (account_id, _) = shop_of(&db, "A").await;

        record(&db, letter("m1", serde_json::json!({"shop_id": 999}), "x"))
            .await
            .unwrap();
        record(&db, letter("m2", serde_json::json!("not an object"), "y"))
            .await
            .unwrap();

        assert!(list_for_account(&db, account_id, None, 100)
            .await
            .unwrap()
            .is_empty());
        let rows = dead_letters::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.account_id.is_none()));
    }

    #[tokio::test]
    async fn a_long_error_is_cut_to_its_first_thousand_characters() {
        let db = database().await;
        let (_, shop_id) = shop_of(&db, "A").await;

        record(
            &db,
            letter(
                "m1",
                serde_json::json!({"shop_id": shop_id}),
                &"é".repeat(5000),
            ),
        )
        .await
        .unwrap();

        let row = dead_letters::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.last_error.unwrap().chars().count(),
            LAST_ERROR_MAX_CHARS
        );
    }

    #[tokio::test]
    async fn an_account_lists_its_own_letters_newest_first_a_page_at_a_time() {
        let db = database().await;
        let (a, shop_a) = shop_of(&db, "A").await;
        let (_, shop_b) = shop_of(&db, "B").await;
        for i in 0..3 {
            let payload = serde_json::json!({"shop_id": shop_a, "order_id": i});
            record(&db, letter(&format!("a{i}"), payload, "e"))
                .await
                .unwrap();
        }
        record(
            &db,
            letter("b", serde_json::json!({"shop_id": shop_b}), "e"),
        )
        .await
        .unwrap();

        let first = list_for_account(&db, a, None, 2).await.unwrap();
        let rest = list_for_account(&db, a, Some(first[1].id), 2)
            .await
            .unwrap();

        let orders: Vec<_> = first.iter().chain(&rest).map(|l| l.order_id).collect();
        assert_eq!(orders, [Some(2), Some(1), Some(0)]);
        assert!(first.iter().chain(&rest).all(|l| l.shop_id == Some(shop_a)));
        assert_eq!(dead_letters::Entity::find().count(&db).await.unwrap(), 4);
    }
}
