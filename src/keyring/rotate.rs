//! `promsync secrets rotate`: re-encrypts every shop's Prom token and webhook secrets
//! under the current key, legacy plaintext included.
//!
//! Safe while the system runs: shops are read in batches by id, and each value is
//! replaced by a compare-and-swap `UPDATE … WHERE <column> = <value read>`, so a token
//! or secret changed meanwhile (by the API, under the current key) is left as it is.
//! Idempotent: a value already under the current key is not touched, so a second run
//! changes nothing and an interrupted run is simply run again.

use entity::shops;
use sea_orm::{
    sea_query::Expr, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IdenStatic, QueryFilter,
    QueryOrder, QuerySelect,
};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{Keyring, Slot, StoredSecret};

/// What a rotation did; printed as JSON by the CLI.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RotationSummary {
    /// The current key's id, which every value now names.
    pub key_id: String,
    pub shops: u64,
    /// Values re-encrypted (or encrypted for the first time).
    pub reencrypted: u64,
    /// Values already under the current key.
    pub unchanged: u64,
    /// Values rewritten by someone else between read and update (left as they are).
    pub changed_meanwhile: u64,
    /// Values that could not be opened: keep the previous key until they are fixed.
    pub failed: Vec<RotationFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RotationFailure {
    pub shop_id: i64,
    pub column: &'static str,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no current key: set PROMSYNC_SECRET_KEY to the key to encrypt with")]
    NoCurrentKey,
    #[error("the batch size must be at least 1")]
    BadBatchSize,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Re-encrypts every shop's secrets under the keyring's current key, `batch_size` shops
/// at a time.
#[tracing::instrument(skip_all, fields(batch_size))]
pub async fn rotate(
    db: &DatabaseConnection,
    keyring: &Keyring,
    batch_size: u64,
) -> Result<RotationSummary, RotateError> {
    let key_id = keyring.current_id().ok_or(RotateError::NoCurrentKey)?;
    if batch_size == 0 {
        return Err(RotateError::BadBatchSize);
    }
    let mut summary = RotationSummary {
        key_id: key_id.to_string(),
        ..Default::default()
    };
    let mut after = i64::MIN;
    loop {
        let batch = shops::Entity::find()
            .filter(shops::Column::Id.gt(after))
            .order_by_asc(shops::Column::Id)
            .limit(batch_size)
            .all(db)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for shop in batch {
            summary.shops += 1;
            let columns = [
                (
                    shops::Column::PromToken,
                    Slot::prom_token(shop.id),
                    Some(shop.prom_token),
                ),
                (
                    shops::Column::WebhookSecret,
                    Slot::webhook_secret(shop.id),
                    Some(shop.webhook_secret),
                ),
                (
                    shops::Column::PreviousWebhookSecret,
                    Slot::webhook_secret(shop.id),
                    shop.previous_webhook_secret,
                ),
            ];
            for (column, slot, stored) in columns {
                let Some(stored) = stored else { continue };
                rotate_value(db, keyring, column, slot, stored, &mut summary).await?;
            }
        }
        tracing::info!(
            shops = summary.shops,
            reencrypted = summary.reencrypted,
            "rotation batch done"
        );
    }
    Ok(summary)
}

async fn rotate_value(
    db: &DatabaseConnection,
    keyring: &Keyring,
    column: shops::Column,
    slot: Slot,
    stored: String,
    summary: &mut RotationSummary,
) -> Result<(), RotateError> {
    if keyring.is_current(&stored) {
        summary.unchanged += 1;
        return Ok(());
    }
    let sealed = keyring
        .open(&StoredSecret::new(slot, stored.clone()))
        .and_then(|secret| keyring.seal(slot, secret.expose_secret()));
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(e) => {
            summary.failed.push(RotationFailure {
                shop_id: slot.shop_id,
                column: column.as_str(),
                reason: e.to_string(),
            });
            return Ok(());
        }
    };
    let result = shops::Entity::update_many()
        .col_expr(column, Expr::value(sealed))
        .filter(shops::Column::Id.eq(slot.shop_id))
        .filter(column.eq(stored))
        .exec(db)
        .await?;
    if result.rows_affected == 1 {
        summary.reencrypted += 1;
    } else {
        summary.changed_meanwhile += 1;
    }
    Ok(())
}
