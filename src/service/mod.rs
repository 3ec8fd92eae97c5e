//! The application layer: what an employee can do with the account's orders, shops,
//! employees and sync log, with the rules that hold whichever door the request came
//! through. The JSON API (`api`) and the operator pages (`ui`) both call these functions
//! with the same [`Caller`]; they only parse requests and render answers.
//!
//! A service function takes the backends it needs ([`Services`], or just a database
//! connection for reads), the caller (every query is scoped to `caller.account_id`), and
//! returns a domain value or a [`ServiceError`]. It knows nothing of HTTP: the HTTP layer
//! turns a `ServiceError` into its answer in one place (`error`).
//!
//! Modules: `caller` (who is acting, permissions), `error`, `orders` (views, list, create,
//! status and write-off, refresh), `shops` (settings, secrets, status mapping),
//! `employees`, `dead_letters`, `lookups` (statuses, products, clients, categories), `sync_log`,
//! and `backlog` (the queue and shop figures `/metrics` shows).

pub mod backlog;
pub mod caller;
pub mod dead_letters;
pub mod employees;
pub mod error;
pub mod lookups;
pub mod orders;
pub mod shops;
pub mod sync_log;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use self::{caller::Caller, error::ServiceError};
use crate::{
    broker::Broker,
    clock::Clock,
    keyring::Keyring,
    prom::{client::PromClient, origin::OriginPolicy},
};

/// What a service call may return.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// The backends the application layer works over, built once per process.
#[derive(Clone)]
pub struct Services {
    pub db: DatabaseConnection,
    /// Where a manual refresh publishes its notification.
    pub broker: Arc<dyn Broker>,
    /// Seals the Prom tokens and webhook secrets the services write.
    pub keyring: Arc<Keyring>,
    /// Which Prom URLs a shop may be given (the Prom client calls by the same policy).
    pub prom_origins: Arc<OriginPolicy>,
    /// The process's Prom client, for what an employee asks of Prom directly (a shop's
    /// status list).
    pub prom: PromClient,
    /// Time for rules that depend on it (refresh limit, secret grace); tests inject one.
    pub clock: Arc<dyn Clock>,
}
