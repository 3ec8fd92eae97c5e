//! Why a service call did not do what was asked. The messages are the ones people read
//! (an HTTP answer's `message`, a notice on a page), so each says what to change; an
//! internal failure carries its cause for the log, never for the caller.

use crate::broker::dead_letters::RequeueError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// What the request names is not the caller's account's (or does not exist at all:
    /// the two are not told apart).
    #[error("not found")]
    NotFound,
    /// Something the request's body refers to is not the account's, named.
    #[error("{0}")]
    Missing(String),
    /// The caller's employee or account went away while the request was on its way.
    #[error("the employee is no longer known")]
    Unauthenticated,
    /// The caller lacks a permission; the message names it.
    #[error("{0}")]
    Forbidden(String),
    /// A value of the request is not acceptable; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The request would break a rule of the stored data.
    #[error("{0}")]
    Conflict(String),
    /// Others are changing the same thing right now: retry after `retry_after_s`.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u64 },
    /// The message broker did not take a publish: retry after `retry_after_s`.
    #[error("the message broker is unavailable")]
    BrokerUnavailable { retry_after_s: u64 },
    /// Prom did not give what was asked of it; the message says why (Prom's texts are
    /// already safe to show: see `PromError`).
    #[error("{0}")]
    Prom(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(e: sea_orm::DbErr) -> Self {
        ServiceError::Internal(e.into())
    }
}

/// What a requeue that found the broker down suggests as `Retry-After`.
const REQUEUE_RETRY_AFTER_S: u64 = 5;

impl From<RequeueError> for ServiceError {
    fn from(e: RequeueError) -> Self {
        match e {
            RequeueError::Broker(e) => {
                tracing::warn!(error = %e, "requeueing a dead letter: broker unavailable");
                ServiceError::BrokerUnavailable {
                    retry_after_s: REQUEUE_RETRY_AFTER_S,
                }
            }
            RequeueError::Database(e) => e.into(),
        }
    }
}
