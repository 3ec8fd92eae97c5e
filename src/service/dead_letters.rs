//! The account's dead letters, for employees with `manage_integrations`: listed and
//! requeued from the database, scoped to the account (see `broker::dead_letters`), so
//! reading them never touches the broker.

use sea_orm::DatabaseConnection;

use crate::{
    broker::dead_letters::{self, DeadLetterView, REQUEUE_MAX_IDS},
    domain::Permission,
    service::{Caller, ServiceError, ServiceResult, Services},
};

/// Most dead letters one page may show.
pub const MAX_LIMIT: u64 = 1000;

/// The account's dead letters, newest first: at most `limit`, and only those with an id
/// below `before_id` when given (the next page).
pub async fn list(
    db: &DatabaseConnection,
    caller: &Caller,
    before_id: Option<i64>,
    limit: u64,
) -> ServiceResult<Vec<DeadLetterView>> {
    caller.require(Permission::ManageIntegrations, "listing dead letters")?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ServiceError::Invalid(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(dead_letters::list_for_account(db, caller.account_id, before_id, limit).await?)
}

/// Sends the account's dead letters among `ids` back to their queues with a fresh attempt
/// count; ids of other accounts, or of no letter, are skipped. Answers how many went.
#[tracing::instrument(skip_all, fields(account_id = caller.account_id))]
pub async fn requeue(services: &Services, caller: &Caller, ids: &[i64]) -> ServiceResult<u64> {
    caller.require(Permission::ManageIntegrations, "requeueing dead letters")?;
    if ids.len() > REQUEUE_MAX_IDS {
        return Err(ServiceError::Invalid(format!(
            "`ids` may name at most {REQUEUE_MAX_IDS} dead letters"
        )));
    }
    let requeued = dead_letters::requeue_for_account(
        &services.db,
        services.broker.as_ref(),
        caller.account_id,
        ids,
    )
    .await?;
    tracing::info!(requested = ids.len(), requeued, "dead letters requeued");
    Ok(requeued)
}
