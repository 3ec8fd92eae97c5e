//! What each shop's pollers did, told apart by token, for benchmarks with thousands of
//! shops.
//!
//! Prom knows a seller by the API token, so the simulator does too: every distinct bearer
//! token is one shop, and each one costs a map entry, not an order set (the orders are
//! shared; a bench of many shops runs with `--orders 0`, so each sweep is one empty page,
//! as it is for most real shops most of the time). Seen from here, which is what matters to
//! a seller, a sweep is an `orders/list` call without `last_id` (its first page); the gap
//! between two sweeps of one shop is how late its poller was, and a call that arrives
//! while another with the same token is still being answered means two pollers swept one
//! shop at once. Tokens are kept as hashes, never as themselves.

use std::{
    collections::{hash_map::DefaultHasher, HashMap},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use serde::Serialize;

#[derive(Debug, Default)]
struct Shop {
    in_flight: u32,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    shops: HashMap<u64, Shop>,
    calls: u64,
    sweeps: u64,
    overlapping_calls: u64,
    /// Seconds between one shop's consecutive sweeps.
    gaps: Vec<f64>,
}

/// Per-token activity; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct ShopActivity {
    inner: Arc<Mutex<Inner>>,
}

/// Summary of the gaps between one shop's consecutive sweeps, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gaps {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// What [`ShopActivity::stats`] reports (under `shops` in `GET /_sim/stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopStats {
    /// Distinct tokens seen since the last reset.
    pub shops: usize,
    pub calls: u64,
    pub sweeps: u64,
    /// Calls that arrived while another call with the same token was being answered.
    pub overlapping_calls: u64,
    pub sweep_gaps_s: Option<Gaps>,
    /// Gaps longer than the `late_after_s` asked for (a shop's interval plus the slack
    /// its poller is allowed): each is a sweep that came late by the excess.
    pub late_sweeps: Option<usize>,
}

/// Held while one call is answered; the shop's call is over when it is dropped.
#[derive(Debug)]
pub struct InFlight {
    activity: ShopActivity,
    key: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(shop) = self.activity.lock().shops.get_mut(&self.key) {
            shop.in_flight = shop.in_flight.saturating_sub(1);
        }
    }
}

fn key_of(token: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    token.hash(&mut hasher);
    hasher.finish()
}

impl ShopActivity {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain counters: a panic elsewhere leaves nothing half-done worth refusing over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a call with `token` arriving; `sweep` when it starts a sweep.
    pub fn enter(&self, token: &str, sweep: bool, now: Instant) -> InFlight {
        let key = key_of(token);
        let mut inner = self.lock();
        inner.calls += 1;
        let shop = inner.shops.entry(key).or_default();
        let overlapping = shop.in_flight > 0;
        shop.in_flight += 1;
        let gap = if sweep {
            shop.last_sweep
                .replace(now)
                .map(|last| now.duration_since(last).as_secs_f64())
        } else {
            None
        };
        if overlapping {
            inner.overlapping_calls += 1;
        }
        if sweep {
            inner.sweeps += 1;
        }
        inner.gaps.extend(gap);
        InFlight {
            activity: self.clone(),
            key,
        }
    }

    /// The counts so far; `late_after_s` also counts the gaps longer than it.
    pub fn stats(&self, late_after_s: Option<f64>) -> ShopStats {
        let inner = self.lock();
        let mut gaps = inner.gaps.clone();
        gaps.sort_by(f64::total_cmp);
        let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
        ShopStats {
            shops: inner.shops.len(),
            calls: inner.calls,
            sweeps: inner.sweeps,
            overlapping_calls: inner.overlapping_calls,
            sweep_gaps_s: (!gaps.is_empty()).then(|| Gaps {
                count: gaps.len(),
                p50: at(0.5),
                p99: at(0.99),
                max: gaps[gaps.len() - 1],
            }),
            late_sweeps: late_after_s.map(|bound| gaps.iter().filter(|gap| **gap > bound).count()),
        }
    }

    /// Forgets the counts and gaps (a bench's warm-up), but not calls being answered.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.shops.retain(|_, shop| shop.in_flight > 0);
        for shop in inner.shops.values_mut() {
            shop.last_sweep = None;
        }
        inner.calls = 0;
        inner.sweeps = 0;
        inner.overlapping_calls = 0;
        inner.gaps.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_token_is_a_shop_and_the_gap_between_its_sweeps_is_measured() {
        let activity = ShopActivity::default();
        let t0 = Instant::now();

        drop(activity.enter("token-a", true, t0));
        drop(activity.enter("token-b", true, t0));
        drop(activity.enter("token-a", false, t0 + Duration::from_secs(1)));
        drop(activity.enter("token-a", true, t0 + Duration::from_secs(60)));

        let stats = activity.stats(Some(59.0));
        assert_eq!(stats.shops, 2);
        assert_eq!(stats.calls, 4);
        assert_eq!(stats.sweeps, 3);
        assert_eq!(stats.overlapping_calls, 0);
        let gaps = stats.sweep_gaps_s.expect("one gap");
        assert_eq!((gaps.count, gaps.max), (1, 60.0));
        assert_eq!(stats.late_sweeps, Some(1), "60 s is late after 59 s");
        assert_eq!(activity.stats(Some(61.0)).late_sweeps, Some(0));
    }

    #[test]
    fn a_call_while_another_with_the_same_token_is_answered_is_counted_as_overlapping() {
        let activity = ShopActivity::default();
        let now = Instant::now();

        let first = activity.enter("token-a", true, now);
        drop(activity.enter("token-b", true, now));
        drop(activity.enter("token-a", true, now));
        drop(first);
        drop(activity.enter("token-a", false, now));

        assert_eq!(activity.stats(None).overlapping_calls, 1);
    }

    #[test]
    fn a_reset_forgets_counts_and_gaps_but_not_calls_in_flight() {
        let activity = ShopActivity::default();
        let now = Instant::now();
        drop(activity.enter("token-a", true, now));
        let held = activity.enter("token-b", true, now);

        activity.reset();
        drop(activity.enter("token-b", false, now));
        drop(held);

        let stats = activity.stats(None);
        assert_eq!((stats.calls, stats.sweeps, stats.shops), (1, 0, 1));
        assert_eq!(
            stats.overlapping_calls, 1,
            "token-b was still being answered"
        );
        assert!(stats.sweep_gaps_s.is_none());
    }
}
