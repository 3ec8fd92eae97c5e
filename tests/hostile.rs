//! Hostile input: each attack a stranger on the internet (or another tenant's admin) could
//! try is a test here, run against the real app on PostgreSQL and RabbitMQ (and again on
//! SQLite with the embedded broker). A test here fails without the defence it names.

mod common;

mod hostile {
    pub mod dead_letters;
    pub mod signature;
}
