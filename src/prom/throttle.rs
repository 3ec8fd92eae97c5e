//! Per-token pacing of Prom API calls: a rate limit per seller token, and a shared pause
//! after Prom answered 429.
//!
//! Prom documents no rate limit but answers 429 under bursts, and the limit is per token,
//! not per process role: the importer, the poller and the publisher of one process all go
//! through one [`Throttle`] (held by the one `PromClient`). Tokens are keyed by a hash, so
//! the limiter never holds a token itself.
//!
//! A 429 pauses every later call with that token until its `Retry-After` has passed. Short
//! pauses are waited out in place; a long one fails fast with the time left, so a message
//! goes to a delayed retry instead of holding a worker (and its database connection).

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A pause after 429 at most this long is waited out by the caller; a longer one is
/// reported back so the caller can schedule a retry.
const MAX_IN_PLACE_WAIT: Duration = Duration::from_secs(5);

/// Identifies a token without holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey(u64);

impl TokenKey {
    pub fn of(token: &SecretString) -> Self {
        let digest = Sha256::digest(token.expose_secret().as_bytes());
        TokenKey(u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")))
    }
}

pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<TokenKey>,
    paused_until: Mutex<HashMap<TokenKey, Instant>>,
    rate_per_s: NonZeroU32,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("rate_per_s", &self.rate_per_s)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// At most `rate_per_s` calls per second per token, with bursts of that size.
    pub fn new(rate_per_s: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate_per_s)),
            paused_until: Mutex::new(HashMap::new()),
            rate_per_s,
        }
    }

    pub fn rate_per_s(&self) -> NonZeroU32 {
        self.rate_per_s
    }

    /// Waits for this token's turn. `Err(left)` when the token is paused (after a 429) for
    /// longer than is worth waiting here: nothing should be sent for `left`.
    pub async fn acquire(&self, key: TokenKey) -> Result<(), Duration> {
        if let Some(left) = self.pause_left(key) {
            if left > MAX_IN_PLACE_WAIT {
                return Err(left);
            }
            tokio::time::sleep(left).await;
        }
        self.limiter.until_key_ready(&key).await;
        Ok(())
    }

    /// Pauses the token for `duration` (Prom answered 429); an existing longer pause stays.
    pub fn pause(&self, key: TokenKey, duration: Duration) {
        let until = Instant::now() + duration;
        let mut paused = self.paused_until.lock().expect("throttle lock");
        // Forget finished pauses so the map stays the size of the tokens being paused.
        let now = Instant::now();
        paused.retain(|_, t| *t > now);
        let entry = paused.entry(key).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    fn pause_left(&self, key: TokenKey) -> Option<Duration> {
        let paused = self.paused_until.lock().expect("throttle lock");
        let until = *paused.get(&key)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> TokenKey {
        TokenKey::of(&SecretString::from(token))
    }

    fn throttle(rate: u32) -> Throttle {
        Throttle::new(NonZeroU32::new(rate).unwrap())
    }

    #[tokio::test]
    async fn calls_with_one_token_are_paced_to_the_rate() {
        // Arrange: 2 per second, so a burst of 2 and then one every 500 ms.
        let t = throttle(2);
        let started = Instant::now();

        // Act
        for _ in 0..4 {
            t.acquire(key("a")).await.unwrap();
        }

        // Assert: the 3rd waits ~500 ms, the 4th ~1 s.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2_000), "{elapsed:?}");
    }

    #[tokio::test]
    async fn another_token_is_not_slowed_by_a_busy_one() {
        let t = throttle(2);
        for _ in 0..2 {
            t.acquire(key("busy")).await.unwrap();
        }

        let started = Instant::now();
        t.acquire(key("quiet")).await.unwrap();

        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_short_pause_after_429_is_waited_out() {
        let t = throttle(100);
        t.pause(key("a"), Duration::from_millis(300));

        let started = Instant::now();
        t.acquire(key("a")).await.unwrap();

        assert!(started.elapsed() >= Duration::from_millis(250));
        // The pause is the token's, not everybody's.
        let started = Instant::now();
        t.acquire(key("b")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_long_pause_after_429_fails_fast_with_the_time_left() {
        let t = throttle(100);
        t.pause(key("a"), Duration::from_secs(60));
        // A shorter pause later does not shorten it.
        t.pause(key("a"), Duration::from_secs(1));

        let left = t.acquire(key("a")).await.unwrap_err();

        assert!(left > Duration::from_secs(55), "{left:?}");
    }

    #[test]
    fn token_keys_are_stable_and_distinct() {
        assert_eq!(key("t1"), key("t1"));
        assert_ne!(key("t1"), key("t2"));
    }
}
