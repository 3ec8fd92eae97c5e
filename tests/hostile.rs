//! Hostile input: each attack a stranger on the internet (or another tenant's admin) could
//! try is a test here, run against the real app on PostgreSQL and RabbitMQ (and again on
//! SQLite with the embedded broker). A test here fails without the defence it names.

mod common;

use std::time::Duration;

/// How long a test waits for something asynchronous (an import, a rejection).
pub const WAIT: Duration = Duration::from_secs(30);

mod hostile {
    pub mod dead_letters;
    pub mod employees;
    pub mod input;
    pub mod metrics;
    pub mod prom_urls;
    pub mod random_bodies;
    pub mod signature;
}
