//! Hostile input: each attack a stranger on the internet (or another tenant's admin) could
//! try is a test here, run against the real app on PostgreSQL and RabbitMQ (and again on
//! SQLite with the embedded broker). A test here fails without the defence it names.

use std::time::Duration;

/// How long a test waits for something asynchronous (an import, a rejection).
pub const WAIT: Duration = Duration::from_secs(30);

mod dead_letters;
mod employees;
mod input;
mod metrics;
mod prom_urls;
mod random_bodies;
mod signature;
