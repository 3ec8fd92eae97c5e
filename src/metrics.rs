//! Prometheus metrics shared by every role (ingress, importer, poller, publisher, API),
//! served by `GET /metrics`. Roles call the small functions here, one line at the spot
//! where the thing happens; label values come from closed sets (wire enums, HTTP answers,
//! the Prom endpoints promsync calls) so the series count stays bounded and nothing from
//! outside ever becomes a label.
//!
//! Two kinds live here. Counters and histograms are process-wide statics in [`REGISTRY`].
//! Gauges measured from the database and the broker ([`StoreGauges`]) belong to one HTTP
//! server: each installation (a test's app, too) reads its own store, and a scrape
//! refreshes them at most every [`StoreGauges::MIN_INTERVAL`], so scraping often costs
//! the store nothing more. Every metric is listed in the README ("Monitoring").

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use prometheus::{
    core::Collector, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::{
    broker::{Backlog, Disposition, Lane},
    domain::{Outcome, Source},
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// `metric`, registered in `registry` (each name once).
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registered(&REGISTRY, counter)
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(
        &REGISTRY,
        HistogramVec::new(opts, labels).expect("valid metric"),
    )
}

/// Answer times: a webhook is verified and published in milliseconds, or waits on the
/// broker's confirm.
const FAST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Lags: seconds when all is well, minutes to hours when a role or Prom is down.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

static NOTIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_notifications_total",
        "Webhook notifications by result (accepted/rejected) and reason (the error code)",
        &["result", "reason"],
    )
});

static SIGNATURE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_webhook_signature_failures_total",
        "Webhook notifications refused by signature verification, by reason",
        &["reason"],
    )
});

static IMPORTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_imports_total",
        "Inbound events settled by the importer, by sync-log outcome",
        &["outcome"],
    )
});

static IMPORT_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_import_failures_total",
        "Inbound events the importer could not settle: retried later or dead-lettered",
        &["disposition"],
    )
});

static OUTBOUND: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_outbound_total",
        "Outbound status updates by result: the API's decision (queued, \
         deferred_until_write_off, not_mapped, none) and the publisher's (sent, failed)",
        &["result"],
    )
});

static REFRESHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "promsync_refresh_total",
        "Manual refresh requests per order, by result",
        &["result"],
    )
});

static WEBHOOK_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "promsync_webhook_duration_seconds",
        "Time the ingress took to answer a webhook, by result (accepted/rejected)",
        &["result"],
        FAST_BUCKETS,
    )
});

static IMPORT_LAG: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "promsync_import_lag_seconds",
        "From a notification's receipt (webhook, poll, refresh; a replay keeps the \
         original receipt) to its import committed, by source",
        &["source"],
        LAG_BUCKETS,
    )
});

static OUTBOUND_LAG: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "promsync_outbound_lag_seconds",
        "From the change in RO App (its outbox row) to Prom's acknowledgement, by the \
         outbox row's reason",
        &["reason"],
        LAG_BUCKETS,
    )
});

static PROM_CALLS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "promsync_prom_request_duration_seconds",
        "Calls to Prom's API sent, by endpoint and outcome (ok or the failure's kind)",
        &["endpoint", "outcome"],
        FAST_BUCKETS,
    )
});

/// Registers every process-wide metric so that `/metrics` lists them before the first
/// event: counters and histograms without labels to fill appear once something happens.
pub fn init() {
    for metric in [
        &NOTIFICATIONS,
        &SIGNATURE_FAILURES,
        &IMPORTS,
        &IMPORT_FAILURES,
        &OUTBOUND,
        &REFRESHES,
    ] {
        LazyLock::force(metric);
    }
    for metric in [&WEBHOOK_DURATION, &IMPORT_LAG, &OUTBOUND_LAG, &PROM_CALLS] {
        LazyLock::force(metric);
    }
}

/// One answered webhook: `status` is the HTTP status, `code` the error code when refused.
pub fn notification(accepted: bool, reason: &str) {
    let result = if accepted { "accepted" } else { "rejected" };
    NOTIFICATIONS.with_label_values(&[result, reason]).inc();
}

/// `reason` is the failure's label (`VerifyError::label`): the ingress sits above this
/// module and names its own failures.
pub fn signature_failure(reason: &str) {
    SIGNATURE_FAILURES.with_label_values(&[reason]).inc();
}

pub fn import_outcome(outcome: Outcome) {
    IMPORTS.with_label_values(&[outcome.as_str()]).inc();
}

/// An inbound event's effect committed: `received_at` is when its door took it.
pub fn import_lag(source: Source, received_at: chrono::DateTime<chrono::Utc>) {
    IMPORT_LAG
        .with_label_values(&[source.as_str()])
        .observe(seconds_since(received_at));
}

/// Prom acknowledged what an outbox row written at `created_at` asked for.
pub fn outbound_lag(reason: &str, created_at: chrono::DateTime<chrono::Utc>) {
    OUTBOUND_LAG
        .with_label_values(&[reason])
        .observe(seconds_since(created_at));
}

/// One call to Prom that was sent; both labels are the prom client's own names.
pub fn prom_call(endpoint: &'static str, outcome: &'static str, took: Duration) {
    PROM_CALLS
        .with_label_values(&[endpoint, outcome])
        .observe(took.as_secs_f64());
}

/// How long the ingress took to answer one webhook.
pub fn webhook_answered(accepted: bool, took: Duration) {
    WEBHOOK_DURATION
        .with_label_values(&[if accepted { "accepted" } else { "rejected" }])
        .observe(took.as_secs_f64());
}

/// A clock that went backwards (another host's time) counts as no lag, not a negative one.
fn seconds_since(at: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - at)
        .to_std()
        .map_or(0.0, |lag| lag.as_secs_f64())
}

pub fn import_disposition(disposition: &Disposition) {
    let label = match disposition {
        Disposition::Done => return,
        Disposition::Retry { .. } => "retry",
        Disposition::Dead { .. } => "dead",
    };
    IMPORT_FAILURES.with_label_values(&[label]).inc();
}

pub fn outbound(result: &str) {
    OUTBOUND.with_label_values(&[result]).inc();
}

pub fn refresh(result: &str) {
    REFRESHES.with_label_values(&[result]).inc();
}

/// The text exposition of the process-wide metrics followed by `store`'s gauges.
pub fn render(store: Option<&StoreGauges>) -> String {
    init();
    let mut families = REGISTRY.gather();
    if let Some(store) = store {
        families.extend(store.registry.gather());
    }
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&families, &mut out)
        .expect("text encoding of metrics");
    out
}

/// Which queue of a lane a backlog figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Messages waiting to be handled (ready or in a retry tier).
    Work,
    /// Dead letters waiting for someone to requeue or purge them.
    Dead,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Work => "work",
            Queue::Dead => "dead",
        }
    }
}

/// What the store showed at one measurement; a part that could not be read is `None` and
/// leaves its gauges as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSnapshot {
    pub queues: Vec<(Lane, Queue, Backlog)>,
    pub token_rejected_shops: Option<u64>,
    /// Outbox rows not yet relayed, and when the oldest was written.
    pub outbox: Option<Backlog>,
}

/// Gauges read from the database and the broker by one HTTP server; see the module
/// documentation.
pub struct StoreGauges {
    registry: Registry,
    depth: IntGaugeVec,
    oldest_age: IntGaugeVec,
    token_rejected: IntGauge,
    role_up: IntGaugeVec,
    outbox_pending: IntGauge,
    outbox_lag: IntGauge,
    /// When the store was last measured; held while measuring, so concurrent scrapes
    /// never measure twice.
    measured: tokio::sync::Mutex<Option<Instant>>,
    /// How long a measurement may take (`TIMEOUT`; tests shorten it).
    timeout: Duration,
}

impl Default for StoreGauges {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreGauges {
    /// Scrapes closer together than this reuse the last measurement.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
    /// A measurement taking longer is abandoned; the gauges keep their last values.
    pub const TIMEOUT: Duration = Duration::from_secs(3);

    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registered(&registry, gauge)
        };
        let depth = gauge_vec(
            "promsync_queue_depth",
            "Messages waiting in a lane's work queue (ready or retrying) or dead letters",
            &["lane", "queue"],
        );
        let oldest_age = gauge_vec(
            "promsync_queue_oldest_age_seconds",
            "Age of the oldest message waiting, 0 when none waits; absent where the \
             broker cannot tell (RabbitMQ work queues)",
            &["lane", "queue"],
        );
        let role_up = gauge_vec(
            "promsync_role_up",
            "1 while a role of this process runs, 0 once it failed or stopped",
            &["role"],
        );
        let gauge = |name: &str, help: &str| {
            registered(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let token_rejected = gauge(
            "promsync_shops_token_rejected",
            "Enabled shops whose Prom token Prom rejected (paused until the token is renewed)",
        );
        let outbox_pending = gauge(
            "promsync_outbox_pending",
            "Outbound status updates written but not yet relayed to the broker",
        );
        let outbox_lag = gauge(
            "promsync_outbox_lag_seconds",
            "Age of the oldest unrelayed outbox row, 0 when none waits",
        );
        Self {
            registry,
            depth,
            oldest_age,
            token_rejected,
            role_up,
            outbox_pending,
            outbox_lag,
            measured: tokio::sync::Mutex::new(None),
            timeout: Self::TIMEOUT,
        }
    }

    /// Measures the store with `measure` unless that was done less than
    /// [`Self::MIN_INTERVAL`] ago or another scrape is measuring now, bounded by
    /// [`Self::TIMEOUT`]. A failure is logged and leaves the last values.
    pub async fn refresh<F>(&self, measure: F)
    where
        F: std::future::Future<Output = StoreSnapshot>,
    {
        let Ok(mut measured) = self.measured.try_lock() else {
            return;
        };
        if measured.is_some_and(|at| at.elapsed() < Self::MIN_INTERVAL) {
            return;
        }
        match tokio::time::timeout(self.timeout, measure).await {
            Ok(snapshot) => self.set(&snapshot),
            Err(_) => tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "measuring queues for /metrics took too long; gauges keep their last values"
            ),
        }
        *measured = Some(Instant::now());
    }

    pub fn set(&self, snapshot: &StoreSnapshot) {
        for (lane, queue, backlog) in &snapshot.queues {
            let labels = [lane.as_str(), queue.as_str()];
            self.depth
                .with_label_values(&labels)
                .set(i64::try_from(backlog.messages).unwrap_or(i64::MAX));
            let age = match (backlog.messages, backlog.oldest) {
                (0, _) => Some(0),
                (_, Some(at)) => Some(age_seconds(at)),
                (_, None) => None,
            };
            match age {
                Some(age) => self.oldest_age.with_label_values(&labels).set(age),
                None => {
                    let _ = self.oldest_age.remove_label_values(&labels);
                }
            }
        }
        if let Some(shops) = snapshot.token_rejected_shops {
            self.token_rejected
                .set(i64::try_from(shops).unwrap_or(i64::MAX));
        }
        if let Some(outbox) = snapshot.outbox {
            self.outbox_pending
                .set(i64::try_from(outbox.messages).unwrap_or(i64::MAX));
            self.outbox_lag.set(outbox.oldest.map_or(0, age_seconds));
        }
    }

    /// The roles of this process as the supervisor sees them now (cheap: read at every
    /// scrape). Role names are the supervisor's own constants.
    pub fn set_roles<'a>(&self, roles: impl IntoIterator<Item = (&'a str, bool)>) {
        for (role, up) in roles {
            self.role_up.with_label_values(&[role]).set(i64::from(up));
        }
    }
}

fn age_seconds(at: chrono::DateTime<chrono::Utc>) -> i64 {
    (chrono::Utc::now() - at).num_seconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_with_the_promsync_prefix() {
        import_outcome(Outcome::Applied);
        let text = render(Some(&StoreGauges::new()));
        assert!(
            text.contains("promsync_imports_total{outcome=\"applied\"}"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("promsync_"), "{line}");
        }
    }

    fn backlog(messages: u64, age_s: Option<i64>) -> Backlog {
        Backlog {
            messages,
            oldest: age_s.map(|s| chrono::Utc::now() - chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn store_gauges_show_depths_ages_and_shops_by_closed_labels() {
        let gauges = StoreGauges::new();
        gauges.set(&StoreSnapshot {
            queues: vec![
                (Lane::Inbound, Queue::Work, backlog(7, Some(90))),
                (Lane::Outbound, Queue::Dead, backlog(0, None)),
            ],
            token_rejected_shops: Some(2),
            outbox: Some(backlog(3, Some(40))),
        });

        let text = render(Some(&gauges));

        for line in [
            "promsync_queue_depth{lane=\"inbound\",queue=\"work\"} 7",
            "promsync_queue_depth{lane=\"outbound\",queue=\"dead\"} 0",
            "promsync_queue_oldest_age_seconds{lane=\"outbound\",queue=\"dead\"} 0",
            "promsync_shops_token_rejected 2",
            "promsync_outbox_pending 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let age = |prefix: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
        };
        assert!((90..95).contains(&age(
            "promsync_queue_oldest_age_seconds{lane=\"inbound\",queue=\"work\"}"
        )));
        assert!((40..45).contains(&age("promsync_outbox_lag_seconds")));
    }

    #[test]
    fn a_queue_whose_age_the_broker_cannot_tell_has_no_age_series() {
        let gauges = StoreGauges::new();
        gauges.set(&StoreSnapshot {
            queues: vec![(Lane::Inbound, Queue::Work, backlog(1, Some(5)))],
            ..Default::default()
        });

        gauges.set(&StoreSnapshot {
            queues: vec![(Lane::Inbound, Queue::Work, backlog(4, None))],
            ..Default::default()
        });

        let text = render(Some(&gauges));
        assert!(text.contains("promsync_queue_depth{lane=\"inbound\",queue=\"work\"} 4"));
        assert!(
            !text.contains("promsync_queue_oldest_age_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_role_reads_zero_and_a_running_one_one() {
        let gauges = StoreGauges::new();

        gauges.set_roles([("importer", false), ("http", true)]);

        let text = render(Some(&gauges));
        assert!(
            text.contains("promsync_role_up{role=\"importer\"} 0"),
            "{text}"
        );
        assert!(text.contains("promsync_role_up{role=\"http\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn a_measurement_that_hangs_is_abandoned_and_the_gauges_keep_their_values() {
        let gauges = StoreGauges {
            timeout: Duration::from_millis(20),
            ..StoreGauges::new()
        };
        gauges.set(&StoreSnapshot {
            token_rejected_shops: Some(3),
            ..Default::default()
        });

        gauges.refresh(std::future::pending()).await;

        let text = render(Some(&gauges));
        assert!(text.contains("promsync_shops_token_rejected 3"), "{text}");
    }

    #[tokio::test]
    async fn scrapes_closer_than_the_interval_measure_the_store_once() {
        let gauges = StoreGauges::new();
        let measured = std::sync::atomic::AtomicUsize::new(0);
        let measure = || async {
            measured.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            StoreSnapshot::default()
        };

        gauges.refresh(measure()).await;
        gauges.refresh(measure()).await;

        assert_eq!(measured.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
