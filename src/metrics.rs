//! Prometheus counters shared by every role (ingress, importer, API, and later the
//! publisher), in one registry served by `GET /metrics`. Roles call the small functions
//! here, one line at the spot where the thing happens; label values come from closed sets
//! (wire enums, HTTP answers) so the series count stays bounded.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use crate::{broker::Disposition, domain::Outcome};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    REGISTRY
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

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

static OUTBOX_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    let gauge = IntGauge::new(
        "promsync_outbox_pending",
        "Outbound status updates written but not yet relayed to the broker (at scrape time)",
    )
    .expect("valid metric");
    REGISTRY
        .register(Box::new(gauge.clone()))
        .expect("metric registered once");
    gauge
});

static OUTBOX_LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    let gauge = IntGauge::new(
        "promsync_outbox_lag_seconds",
        "Age of the oldest unrelayed outbox row, 0 when none waits (at scrape time)",
    )
    .expect("valid metric");
    REGISTRY
        .register(Box::new(gauge.clone()))
        .expect("metric registered once");
    gauge
});

/// The outbound queue's backlog, measured from the database when `/metrics` is scraped.
pub fn outbox_backlog(pending: i64, lag_s: i64) {
    OUTBOX_PENDING.set(pending);
    OUTBOX_LAG.set(lag_s.max(0));
}

/// Registers every metric so that `/metrics` lists them (at zero) before the first event.
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
    LazyLock::force(&OUTBOX_PENDING);
    LazyLock::force(&OUTBOX_LAG);
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

/// The text exposition of every registered metric.
pub fn render() -> String {
    init();
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&REGISTRY.gather(), &mut out)
        .expect("text encoding of metrics");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_with_the_promsync_prefix() {
        import_outcome(Outcome::Applied);
        let text = render();
        assert!(
            text.contains("promsync_imports_total{outcome=\"applied\"}"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("promsync_"), "{line}");
        }
    }
}
