//! Where the suite's services are and which backend it runs on: PostgreSQL and RabbitMQ
//! (the default) or SQLite with the embedded broker. `deploy/test.sh` runs the suite on
//! both.

use lapin::{Connection, ConnectionProperties};

/// An admin connection to PostgreSQL: test databases and the template are made through it.
pub fn admin_database_url() -> String {
    std::env::var("PROMSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn broker_url() -> String {
    std::env::var("PROMSYNC_TEST_BROKER_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Which backend the suite runs on, from `PROMSYNC_TEST_BACKEND`: `rabbitmq` (PostgreSQL
/// + RabbitMQ, the default) or `embedded` (SQLite and the embedded broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    RabbitMq,
    Embedded,
}

pub fn backend() -> Backend {
    match std::env::var("PROMSYNC_TEST_BACKEND").as_deref() {
        Ok("embedded") => Backend::Embedded,
        Ok("rabbitmq") | Err(_) => Backend::RabbitMq,
        Ok(other) => panic!("PROMSYNC_TEST_BACKEND={other}: expected rabbitmq or embedded"),
    }
}

/// Fails the test, naming the broker, when RabbitMQ does not answer at `url`.
pub async fn ensure_broker(url: &str) {
    match Connection::connect(url, ConnectionProperties::default()).await {
        Ok(conn) => {
            let _ = conn.close(200, "probe".into()).await;
        }
        Err(e) => panic!("RabbitMQ is required for integration tests ({url}): {e}"),
    }
}
