//! Typed settings: built-in defaults, then an optional TOML file, then `PROMSYNC_*`
//! environment variables (env wins). Validated once at start so a bad value fails fast
//! with the name of the field, instead of surfacing later as a confusing runtime error.

use std::{net::SocketAddr, path::Path, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    keyring::{Keyring, SecretKey},
    prom::origin::{OriginPolicy, PromOrigin},
};

/// The database when none is configured: a SQLite file in the current directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://promsync.db?mode=rwc";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `postgres://…` in production; a SQLite file by default.
    pub database_url: String,
    /// `amqp://…` for RabbitMQ; unset means the embedded backend.
    pub broker_url: Option<String>,
    /// Prefix of every exchange and queue, so several deployments (or tests) share a broker.
    pub broker_namespace: String,
    pub listen: String,
    /// Where `/metrics` is served instead of `listen`, when set: an address the
    /// installation's monitoring reaches and the internet does not.
    pub metrics_listen: Option<String>,
    pub log_format: LogFormat,
    /// Largest accepted webhook body, in bytes.
    pub webhook_body_limit: usize,
    /// How far a webhook timestamp may be from now, in seconds (Standard Webhooks).
    pub webhook_tolerance_s: u64,
    /// Accepted webhooks per second per shop (bursts up to twice that); 0 = no limit.
    /// Counted per `serve` process.
    pub webhook_rate_per_shop_per_s: u32,
    /// HTTP worker threads of `serve`/`run`; 0 = one per CPU core (actix's default).
    pub http_workers: usize,
    /// Messages an importer process works on at once.
    pub import_concurrency: usize,
    /// Most messages an importer applies in one transaction (group commit); 1 turns
    /// batching off.
    pub import_batch_size: usize,
    /// How long a batch waits for more messages before it commits anyway, in
    /// milliseconds (0: take what is waiting, never wait).
    pub import_batch_linger_ms: u64,
    /// Deliveries after which a message is dead-lettered instead of retried.
    pub import_max_attempts: u32,
    /// Delays of the retry tiers in milliseconds; attempt n waits tier min(n, last).
    pub retry_delays_ms: Vec<u64>,
    /// How long a publish waits for the broker's confirm before it counts as failed.
    pub publish_confirm_timeout_ms: u64,
    /// Timeout of one call to the Prom API.
    pub prom_timeout_s: u64,
    /// Database connection pool size per process.
    pub database_max_connections: u32,
    /// Calls per second to the Prom API per seller token, across every role of a process.
    pub prom_rate_per_s: u32,
    /// Status changes a publisher process sends to Prom at once.
    pub publish_concurrency: usize,
    /// How often an idle outbox relay looks for new rows, in milliseconds.
    pub outbox_poll_interval_ms: u64,
    /// Outbox rows one relay claims and publishes per round.
    pub outbox_batch_size: u64,
    /// Hours a published outbox row is kept (for inspection) before the relay deletes it;
    /// 0 keeps every row.
    pub outbox_retention_h: u64,
    /// The `cancellation_text` sent with Prom's `canceled` (reason `another` needs one).
    pub prom_cancellation_text: String,
    /// Poller: how far each window reaches back before the watermark, in seconds.
    pub poll_overlap_s: u64,
    /// Poller: how long before its connection a new shop's orders are imported, in
    /// seconds (0 = new orders only).
    pub poll_backfill_s: u64,
    /// Poller: how often it looks for shops due for a sweep, in milliseconds.
    pub poll_tick_ms: u64,
    /// Poller: a sweeping poller's lease length in seconds; a dead poller's shops are
    /// taken over at most this long after its last renewal.
    pub poll_lease_s: u64,
    /// Poller: orders per `orders/list` page.
    pub poll_page_size: u32,
    /// Poller: shops one process sweeps at once.
    pub poll_concurrency: usize,
    /// Poller: first retry delay of a failing page (429 without `Retry-After`, 5xx), ms.
    pub poll_retry_base_ms: u64,
    /// Poller: attempts per page before the sweep is left to the next interval.
    pub poll_page_attempts: u32,
    /// Key that encrypts shops' Prom tokens and webhook secrets at rest: standard base64
    /// of 32 random bytes. Unset: they are stored as plaintext (a warning says so).
    pub secret_key: Option<SecretString>,
    /// Earlier keys, still read (not written) while `promsync secrets rotate` moves
    /// every value to `secret_key`.
    pub secret_key_previous: Vec<SecretString>,
    /// Prom origins shops may use besides public `https` ones (`http://127.0.0.1:9400`
    /// for a simulator, a demo or a test), matched exactly (scheme, host, port).
    pub prom_allowed_origins: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Settings {
    /// Loads defaults → `file` (if given) → `PROMSYNC_*` env, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, config::Environment::with_prefix("PROMSYNC"))
    }

    /// The built-in defaults alone: no file, no environment (what `deploy/` files are
    /// written against).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load_with(
            None,
            config::Environment::with_prefix("PROMSYNC").source(Some(Default::default())),
        )
    }

    fn load_with(file: Option<&Path>, env: config::Environment) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("database_url", DEFAULT_DATABASE_URL)?
            .set_default("broker_namespace", "promsync")?
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("log_format", "pretty")?
            .set_default("webhook_body_limit", 256 * 1024)?
            .set_default("webhook_tolerance_s", 300)?
            .set_default("webhook_rate_per_shop_per_s", 200)?
            .set_default("http_workers", 0)?
            .set_default("import_concurrency", 32)?
            .set_default("import_batch_size", 32)?
            .set_default("import_batch_linger_ms", 2)?
            .set_default("import_max_attempts", 8)?
            .set_default(
                "retry_delays_ms",
                vec![1_000, 5_000, 30_000, 120_000, 600_000],
            )?
            .set_default("publish_confirm_timeout_ms", 5_000)?
            .set_default("prom_timeout_s", 15)?
            .set_default("database_max_connections", 16)?
            .set_default("prom_rate_per_s", 2)?
            .set_default("publish_concurrency", 8)?
            .set_default("outbox_poll_interval_ms", 250)?
            .set_default("outbox_batch_size", 100)?
            .set_default("outbox_retention_h", 168)?
            .set_default("prom_cancellation_text", "Замовлення скасовано продавцем")?
            .set_default("poll_overlap_s", 300)?
            .set_default("poll_backfill_s", 0)?
            .set_default("poll_tick_ms", 1_000)?
            .set_default("poll_lease_s", 30)?
            .set_default("poll_page_size", 100)?
            .set_default("poll_concurrency", 4)?
            .set_default("poll_retry_base_ms", 1_000)?
            .set_default("poll_page_attempts", 8)?
            .set_default("secret_key_previous", Vec::<String>::new())?
            .set_default("prom_allowed_origins", Vec::<String>::new())?;
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder
            .add_source(
                env.prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("retry_delays_ms")
                    .with_list_parse_key("secret_key_previous")
                    .with_list_parse_key("prom_allowed_origins"),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
            || self.database_url.starts_with("sqlite:"))
        {
            return invalid("database_url", "must start with postgres:// or sqlite:");
        }
        if let Some(url) = &self.broker_url {
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return invalid("broker_url", "must start with amqp:// or amqps://");
            }
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid("listen", "must be an address such as 127.0.0.1:8080");
        }
        if let Some(addr) = &self.metrics_listen {
            if addr.parse::<SocketAddr>().is_err() {
                return invalid(
                    "metrics_listen",
                    "must be an address such as 127.0.0.1:9100",
                );
            }
        }
        let ns = &self.broker_namespace;
        if ns.is_empty()
            || ns.len() > 64
            || !ns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return invalid(
                "broker_namespace",
                "1-64 characters of letters, digits, '.', '-' or '_'",
            );
        }
        if self.webhook_body_limit < 1024 {
            return invalid("webhook_body_limit", "must be at least 1024 bytes");
        }
        if self.import_concurrency == 0 || self.import_concurrency > 1024 {
            return invalid("import_concurrency", "must be between 1 and 1024");
        }
        if self.import_batch_size == 0 || self.import_batch_size > 1000 {
            return invalid("import_batch_size", "must be between 1 and 1000");
        }
        if self.import_batch_linger_ms > 1000 {
            return invalid("import_batch_linger_ms", "must be at most 1000");
        }
        if self.import_max_attempts == 0 {
            return invalid("import_max_attempts", "must be at least 1");
        }
        if self.retry_delays_ms.is_empty() || self.retry_delays_ms.contains(&0) {
            return invalid("retry_delays_ms", "needs at least one delay, each above 0");
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections", "must be at least 1");
        }
        if self.prom_rate_per_s == 0 {
            return invalid("prom_rate_per_s", "must be at least 1");
        }
        if self.publish_concurrency == 0 || self.publish_concurrency > 1024 {
            return invalid("publish_concurrency", "must be between 1 and 1024");
        }
        if self.outbox_poll_interval_ms == 0 {
            return invalid("outbox_poll_interval_ms", "must be above 0");
        }
        if self.outbox_batch_size == 0 || self.outbox_batch_size > 10_000 {
            return invalid("outbox_batch_size", "must be between 1 and 10000");
        }
        if self.prom_cancellation_text.trim().is_empty() {
            // Prom refuses `another` without a text.
            return invalid("prom_cancellation_text", "must not be empty");
        }
        if self.poll_tick_ms < 10 {
            return invalid("poll_tick_ms", "must be at least 10");
        }
        if self.poll_lease_s == 0 {
            return invalid("poll_lease_s", "must be at least 1");
        }
        if !(1..=1000).contains(&self.poll_page_size) {
            return invalid("poll_page_size", "must be between 1 and 1000");
        }
        if self.poll_concurrency == 0 || self.poll_concurrency > 1024 {
            return invalid("poll_concurrency", "must be between 1 and 1024");
        }
        if self.poll_retry_base_ms == 0 || self.poll_page_attempts == 0 {
            return invalid(
                "poll_retry_base_ms",
                "retry delay and poll_page_attempts must be at least 1",
            );
        }
        self.keyring()?;
        self.prom_origins()?;
        Ok(())
    }

    /// Where shops' Prom calls may go: public `https` origins, and those of
    /// `prom_allowed_origins` (blank entries ignored, anything else must be an origin).
    pub fn prom_origins(&self) -> Result<OriginPolicy, ConfigError> {
        let mut allowed = Vec::new();
        for value in self.prom_allowed_origins.iter().map(|v| v.trim()) {
            if value.is_empty() {
                continue;
            }
            allowed.push(PromOrigin::parse(value).map_err(|e| ConfigError::Invalid {
                field: "prom_allowed_origins",
                reason: format!("`{value}`: {e}"),
            })?);
        }
        Ok(OriginPolicy::new(allowed))
    }

    /// The keys of `secret_key` and `secret_key_previous`. An empty value counts as
    /// unset (an orchestrator's blank variable), anything else must be a valid key.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let parse = |field, value: &SecretString| -> Result<Option<SecretKey>, ConfigError> {
            let value = value.expose_secret().trim();
            if value.is_empty() {
                return Ok(None);
            }
            value
                .parse()
                .map(Some)
                .map_err(|e: crate::keyring::KeyError| ConfigError::Invalid {
                    field,
                    reason: e.to_string(),
                })
        };
        let current = match &self.secret_key {
            Some(value) => parse("secret_key", value)?,
            None => None,
        };
        let mut previous = Vec::new();
        for value in &self.secret_key_previous {
            previous.extend(parse("secret_key_previous", value)?);
        }
        Keyring::new(current, previous).map_err(|e| ConfigError::Invalid {
            field: "secret_key_previous",
            reason: e.to_string(),
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Checked by `validate`.
        self.listen.parse().expect("validated listen address")
    }

    /// The separate metrics listener, if one is configured (checked by `validate`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listen
            .as_deref()
            .map(|addr| addr.parse().expect("validated metrics address"))
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_confirm_timeout_ms)
    }

    pub fn prom_timeout(&self) -> Duration {
        Duration::from_secs(self.prom_timeout_s)
    }

    pub fn prom_rate(&self) -> std::num::NonZeroU32 {
        // Checked by `validate`.
        std::num::NonZeroU32::new(self.prom_rate_per_s).expect("validated prom_rate_per_s")
    }

    /// How long published outbox rows are kept; `None` keeps them forever.
    pub fn outbox_retention(&self) -> Option<chrono::Duration> {
        let hours = i64::try_from(self.outbox_retention_h).ok()?;
        (hours > 0).then(|| chrono::Duration::hours(hours))
    }

    pub fn outbox_poll_interval(&self) -> Duration {
        Duration::from_millis(self.outbox_poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_with(
            None,
            config::Environment::with_prefix("PROMSYNC").source(Some(map)),
        )
    }

    #[test]
    fn defaults_describe_a_local_embedded_setup() {
        let s = load(&[]).expect("defaults are valid");
        assert!(s.is_sqlite());
        assert_eq!(s.broker_url, None);
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert_eq!(s.webhook_body_limit, 262_144);
        assert_eq!(s.prom_rate_per_s, 2);
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = load(&[
            ("PROMSYNC_DATABASE_URL", "postgres://u@h/db"),
            ("PROMSYNC_BROKER_URL", "amqp://g:g@h:5672/%2f"),
            ("PROMSYNC_LISTEN", "0.0.0.0:9000"),
            ("PROMSYNC_LOG_FORMAT", "json"),
            ("PROMSYNC_RETRY_DELAYS_MS", "10,20"),
        ])
        .expect("valid");
        assert_eq!(s.database_url, "postgres://u@h/db");
        assert_eq!(s.broker_url.as_deref(), Some("amqp://g:g@h:5672/%2f"));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.retry_delays_ms, vec![10, 20]);
    }

    #[test]
    fn metrics_share_the_main_listener_unless_given_their_own() {
        assert_eq!(load(&[]).expect("defaults are valid").metrics_addr(), None);
        let s = load(&[("PROMSYNC_METRICS_LISTEN", "127.0.0.1:9100")]).expect("valid");
        assert_eq!(s.metrics_addr(), Some("127.0.0.1:9100".parse().unwrap()));
        let err = load(&[("PROMSYNC_METRICS_LISTEN", "somewhere")]).unwrap_err();
        assert!(err.to_string().contains("`metrics_listen`"), "{err}");
    }

    #[test]
    fn http_workers_default_to_one_per_core_and_come_from_the_environment() {
        assert_eq!(load(&[]).expect("defaults are valid").http_workers, 0);
        let s = load(&[("PROMSYNC_HTTP_WORKERS", "1")]).expect("valid");
        assert_eq!(s.http_workers, 1);
    }

    #[test]
    fn published_outbox_rows_are_kept_a_week_unless_configured() {
        let week = chrono::Duration::hours(168);
        assert_eq!(load(&[]).expect("valid").outbox_retention(), Some(week));
        let s = load(&[("PROMSYNC_OUTBOX_RETENTION_H", "0")]).expect("valid");
        assert_eq!(s.outbox_retention(), None);
        let s = load(&[("PROMSYNC_OUTBOX_RETENTION_H", "2")]).expect("valid");
        assert_eq!(s.outbox_retention(), Some(chrono::Duration::hours(2)));
    }

    #[test]
    fn poll_settings_have_defaults_and_env_names() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.poll_overlap_s, 300);
        assert_eq!(s.poll_backfill_s, 0);
        assert_eq!(s.poll_page_size, 100);
        let s = load(&[
            ("PROMSYNC_POLL_OVERLAP_S", "5"),
            ("PROMSYNC_POLL_TICK_MS", "50"),
            ("PROMSYNC_POLL_BACKFILL_S", "3600"),
            ("PROMSYNC_POLL_LEASE_S", "2"),
        ])
        .expect("valid");
        assert_eq!(
            (
                s.poll_overlap_s,
                s.poll_tick_ms,
                s.poll_backfill_s,
                s.poll_lease_s
            ),
            (5, 50, 3600, 2)
        );
        let err = load(&[("PROMSYNC_POLL_PAGE_SIZE", "0")]).unwrap_err();
        assert!(err.to_string().contains("`poll_page_size`"), "{err}");
    }

    #[test]
    fn import_batching_has_defaults_env_names_and_bounds() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!((s.import_batch_size, s.import_batch_linger_ms), (32, 2));
        let s = load(&[
            ("PROMSYNC_IMPORT_BATCH_SIZE", "1"),
            ("PROMSYNC_IMPORT_BATCH_LINGER_MS", "0"),
            ("PROMSYNC_DATABASE_URL", "postgres://u@h/db"),
        ])
        .expect("valid");
        assert_eq!((s.import_batch_size, s.import_batch_linger_ms), (1, 0));
        let err = load(&[("PROMSYNC_IMPORT_BATCH_SIZE", "0")]).unwrap_err();
        assert!(err.to_string().contains("`import_batch_size`"), "{err}");
    }

    #[test]
    fn a_bad_value_is_reported_with_the_field_name() {
        let err = load(&[("PROMSYNC_LISTEN", "not-an-address")]).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
        let err = load(&[("PROMSYNC_BROKER_URL", "http://x")]).unwrap_err();
        assert!(err.to_string().contains("`broker_url`"), "{err}");
    }

    #[test]
    fn allowed_prom_origins_come_from_the_environment_as_a_list_and_must_be_origins() {
        let s = load(&[]).expect("defaults are valid");
        assert!(s.prom_allowed_origins.is_empty());
        let s = load(&[(
            "PROMSYNC_PROM_ALLOWED_ORIGINS",
            "http://127.0.0.1:9400,http://sim:9090/",
        )])
        .expect("valid");
        let policy = s.prom_origins().unwrap();
        for allowed in ["http://127.0.0.1:9400", "http://sim:9090"] {
            assert!(
                policy.is_allowed(&PromOrigin::parse(allowed).unwrap()),
                "{allowed}"
            );
        }
        assert!(!policy.is_allowed(&PromOrigin::parse("http://127.0.0.1:9401").unwrap()));
        let s = load(&[("PROMSYNC_PROM_ALLOWED_ORIGINS", "")]).expect("blank is none");
        assert!(s.prom_origins().is_ok());
        for bad in ["127.0.0.1:9400", "http://sim:9090/api", "ftp://sim"] {
            let err = load(&[("PROMSYNC_PROM_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert!(err.to_string().contains("`prom_allowed_origins`"), "{err}");
        }
    }

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn without_a_secret_key_secrets_are_not_encrypted() {
        let s = load(&[]).expect("defaults are valid");
        assert!(!s.keyring().unwrap().is_enabled());
        let s = load(&[("PROMSYNC_SECRET_KEY", "")]).expect("blank is unset");
        assert!(!s.keyring().unwrap().is_enabled());
    }

    #[test]
    fn secret_keys_come_from_the_environment_with_previous_keys_as_a_list() {
        let s = load(&[
            ("PROMSYNC_SECRET_KEY", KEY_B),
            ("PROMSYNC_SECRET_KEY_PREVIOUS", &format!("{KEY_A},{KEY_B}")),
        ])
        .expect("valid keys");
        let ring = s.keyring().unwrap();
        assert_eq!(
            ring.current_id(),
            Some(KEY_B.parse::<SecretKey>().unwrap().id())
        );
        assert_eq!(s.secret_key_previous.len(), 2);
        // The key never shows in the settings' debug output.
        assert!(!format!("{s:?}").contains(KEY_B));
    }

    #[test]
    fn a_bad_secret_key_is_a_startup_error_naming_the_field() {
        for (var, value, field) in [
            ("PROMSYNC_SECRET_KEY", "c2hvcnQ=", "`secret_key`"),
            ("PROMSYNC_SECRET_KEY", "not base64 at all!", "`secret_key`"),
            (
                "PROMSYNC_SECRET_KEY_PREVIOUS",
                "c2hvcnQ=",
                "`secret_key_previous`",
            ),
        ] {
            let err = load(&[("PROMSYNC_SECRET_KEY", KEY_A), (var, value)]).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
            assert!(
                !err.to_string().contains(value),
                "the value is not echoed: {err}"
            );
        }
        let err = load(&[("PROMSYNC_SECRET_KEY_PREVIOUS", KEY_A)]).unwrap_err();
        assert!(err.to_string().contains("`secret_key_previous`"), "{err}");
    }
}
