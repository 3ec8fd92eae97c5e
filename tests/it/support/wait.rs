//! Waiting for something asynchronous (an import, a dead letter, a listener) by polling
//! with a deadline, so tests neither sleep blindly nor hang.

use std::{future::Future, time::Duration};

/// Waits until `check` yields `Some`, polling with a deadline instead of sleeping blindly.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
