//! Typed settings: built-in defaults, then an optional TOML file, then `PROMSYNC_*`
//! environment variables (env wins). Validated once at start so a bad value fails fast
//! with the name of the field, instead of surfacing later as a confusing runtime error.
//!
//! Names, units and defaults live in one table ([`table`]): it declares the flat `Raw`
//! struct that the file and the environment are read into, so both take the flat names of
//! the table (`poll_tick_ms = 50` in the file, `PROMSYNC_POLL_TICK_MS=50` in the
//! environment; list variables are comma-separated, in the file they are TOML arrays).
//! `Settings::try_from(raw)` checks every value as it converts it into the sections each
//! role reads (`settings.poll`, `settings.import`, …), with real types: durations are
//! [`Duration`]s, addresses [`SocketAddr`]s, counts that cannot be 0 are `NonZero*`, and a
//! 0 that means "off" is a `None`. An error names the key and its variable.

pub mod table;

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::Path,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use self::table::{Raw, SETTINGS};
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

/// Everything a process is configured with, by the part of it that reads it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub broker: BrokerSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub webhook: WebhookSettings,
    pub import: ImportSettings,
    pub outbound: OutboundSettings,
    pub prom: PromSettings,
    pub poll: PollSettings,
    pub secrets: SecretSettings,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `database_url`: `postgres://…`, `postgresql://…` or `sqlite:…`.
    pub url: String,
    /// `database_max_connections`.
    pub max_connections: NonZeroU32,
    /// `database_min_connections`: never more than `max_connections`.
    pub min_connections: u32,
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }
}

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `broker_url`: `amqp://…` or `amqps://…`; `None` is the embedded broker.
    pub url: Option<String>,
    /// `broker_namespace`.
    pub namespace: String,
    /// `publish_confirm_timeout_ms`.
    pub confirm_timeout: Duration,
    /// `publish_timeout_ms`: the bound of a whole publish, reconnection included.
    pub publish_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `listen`.
    pub listen: SocketAddr,
    /// `metrics_listen`: `None` serves `/metrics` on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `http_workers`: `None` is one per CPU core (actix's default).
    pub workers: Option<NonZeroUsize>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `log_format`.
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `webhook_body_limit`, in bytes.
    pub body_limit: usize,
    /// `webhook_tolerance_s`.
    pub tolerance: Duration,
    /// `webhook_rate_per_shop_per_s`: `None` is no limit.
    pub rate_per_shop_per_s: Option<NonZeroU32>,
}

/// What an importer needs; `import::batch` builds its batching policy from it.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// `import_concurrency`.
    pub concurrency: NonZeroUsize,
    /// `import_batch_size`.
    pub batch_size: NonZeroUsize,
    /// `import_batch_linger_ms`.
    pub batch_linger: Duration,
    /// `import_max_attempts`.
    pub max_attempts: NonZeroU32,
    /// `retry_delays_ms`: never empty, none zero.
    pub retry_delays: Vec<Duration>,
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// `publish_concurrency`.
    pub publish_concurrency: NonZeroUsize,
    /// `outbox_poll_interval_ms`.
    pub outbox_poll_interval: Duration,
    /// `outbox_batch_size`.
    pub outbox_batch_size: NonZeroU64,
    /// `outbox_retention_h`: `None` keeps every row.
    pub outbox_retention: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct PromSettings {
    /// `prom_timeout_s`.
    pub timeout: Duration,
    /// `prom_rate_per_s`.
    pub rate_per_s: NonZeroU32,
    /// `prom_cancellation_text`, trimmed, never empty.
    pub cancellation_text: String,
    /// `prom_allowed_origins`, blank entries left out.
    pub allowed_origins: Vec<PromOrigin>,
}

impl PromSettings {
    /// Where shops' Prom calls may go: public `https` origins and `allowed_origins`.
    pub fn origin_policy(&self) -> OriginPolicy {
        OriginPolicy::new(self.allowed_origins.iter().cloned())
    }
}

/// The poller's settings.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// `poll_overlap_s`: absorbs clock skew, Prom's second-precision filter and orders
    /// changing during a sweep.
    pub overlap: Duration,
    /// `poll_backfill_s`: zero takes new orders only.
    pub backfill: Duration,
    /// `poll_tick_ms`.
    pub tick: Duration,
    /// `poll_lease_s`.
    pub lease: Duration,
    /// `poll_page_size`: at least [`MIN_POLL_PAGE_SIZE`].
    pub page_size: NonZeroU32,
    /// `poll_concurrency`.
    pub concurrency: NonZeroUsize,
    /// `poll_retry_base_ms`.
    pub retry_base: Duration,
    /// `poll_page_attempts`.
    pub page_attempts: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct SecretSettings {
    /// `secret_key`.
    pub key: Option<SecretString>,
    /// `secret_key_previous`.
    pub previous: Vec<SecretString>,
}

impl SecretSettings {
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
                .map_err(|e: crate::keyring::KeyError| invalid(field, e))
        };
        let current = match &self.key {
            Some(value) => parse("secret_key", value)?,
            None => None,
        };
        let mut previous = Vec::new();
        for value in &self.previous {
            previous.extend(parse("secret_key_previous", value)?);
        }
        Keyring::new(current, previous).map_err(|e| invalid("secret_key_previous", e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{field}` (PROMSYNC_{}): {reason}", .field.to_ascii_uppercase())]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

fn ensure(ok: bool, field: &'static str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, reason))
    }
}

/// A count that must be at least 1 (and at most `max`, if given).
fn count<T, N>(field: &'static str, value: T, max: Option<T>) -> Result<N, ConfigError>
where
    T: Copy + PartialOrd + std::fmt::Display,
    N: TryFrom<T>,
{
    let reason = match max {
        Some(max) => format!("must be between 1 and {max}"),
        None => "must be at least 1".to_owned(),
    };
    if max.is_some_and(|max| value > max) {
        return Err(invalid(field, reason));
    }
    N::try_from(value).map_err(|_| invalid(field, reason))
}

/// The smallest `poll_page_size`. Prom's `last_id` may be inclusive ("no higher than"):
/// the next page then starts with the previous page's last order, and a page of one order
/// would be only that order again, which ends the sweep with every lower id unvisited.
/// From two up, every page brings at least one order the sweep has not seen.
pub const MIN_POLL_PAGE_SIZE: u32 = 2;
/// The largest `poll_page_size`.
const MAX_POLL_PAGE_SIZE: u32 = 1000;

fn poll_page_size(value: u32) -> Result<NonZeroU32, ConfigError> {
    if !(MIN_POLL_PAGE_SIZE..=MAX_POLL_PAGE_SIZE).contains(&value) {
        return Err(invalid(
            "poll_page_size",
            format!(
                "must be between {MIN_POLL_PAGE_SIZE} and {MAX_POLL_PAGE_SIZE} (Prom may repeat \
                 the last order of a page at the top of the next)"
            ),
        ));
    }
    count("poll_page_size", value, None)
}

fn address(field: &'static str, value: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, format!("must be an address such as {example}")))
}

impl Settings {
    /// Loads defaults → `file` (if given) → `PROMSYNC_*` env, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, config::Environment::with_prefix("PROMSYNC"))
    }

    /// The built-in defaults alone: no file, no environment (what `deploy/` files are
    /// written against).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load_with(None, variables(Default::default()))
    }

    fn load_with(file: Option<&Path>, env: config::Environment) -> Result<Self, ConfigError> {
        // The defaults are read as the variables that would set them, so the table's
        // default column means exactly what it says.
        let defaults = SETTINGS
            .iter()
            .filter_map(|s| Some((s.env(), s.default?.to_owned())))
            .collect();
        let mut builder = config::Config::builder().add_source(parsing(variables(defaults)));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let raw: Raw = builder
            .add_source(parsing(env))
            .build()?
            .try_deserialize()?;
        Self::try_from(raw)
    }
}

/// `PROMSYNC_*` variables from `map` instead of the process environment.
fn variables(map: std::collections::HashMap<String, String>) -> config::Environment {
    config::Environment::with_prefix("PROMSYNC").source(Some(map))
}

/// How a variable's text becomes a value: numbers parsed, lists split at commas.
fn parsing(env: config::Environment) -> config::Environment {
    SETTINGS.iter().filter(|s| s.list).fold(
        env.prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(","),
        |env, s| env.with_list_parse_key(s.key),
    )
}

impl TryFrom<Raw> for Settings {
    type Error = ConfigError;

    fn try_from(raw: Raw) -> Result<Self, ConfigError> {
        let url = &raw.database_url;
        ensure(
            url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"),
            "database_url",
            "must start with postgres:// or sqlite:",
        )?;
        if let Some(url) = &raw.broker_url {
            ensure(
                url.starts_with("amqp://") || url.starts_with("amqps://"),
                "broker_url",
                "must start with amqp:// or amqps://",
            )?;
        }
        let ns = &raw.broker_namespace;
        ensure(
            !ns.is_empty()
                && ns.len() <= 64
                && ns
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "broker_namespace",
            "1-64 characters of letters, digits, '.', '-' or '_'",
        )?;
        // Below this a healthy broker's confirm (a quorum-queue write) would not make it.
        ensure(
            raw.publish_timeout_ms >= 100,
            "publish_timeout_ms",
            "must be at least 100",
        )?;
        ensure(
            raw.webhook_body_limit >= 1024,
            "webhook_body_limit",
            "must be at least 1024 bytes",
        )?;
        ensure(
            raw.import_batch_linger_ms <= 1000,
            "import_batch_linger_ms",
            "must be at most 1000",
        )?;
        ensure(
            !raw.retry_delays_ms.is_empty() && !raw.retry_delays_ms.contains(&0),
            "retry_delays_ms",
            "needs at least one delay, each above 0",
        )?;
        ensure(
            raw.outbox_poll_interval_ms > 0,
            "outbox_poll_interval_ms",
            "must be above 0",
        )?;
        let cancellation_text = raw.prom_cancellation_text.trim();
        // Prom refuses `another` without a text.
        ensure(
            !cancellation_text.is_empty(),
            "prom_cancellation_text",
            "must not be empty",
        )?;
        ensure(
            raw.poll_tick_ms >= 10,
            "poll_tick_ms",
            "must be at least 10",
        )?;
        ensure(raw.poll_lease_s > 0, "poll_lease_s", "must be at least 1")?;
        ensure(
            raw.poll_retry_base_ms > 0,
            "poll_retry_base_ms",
            "must be at least 1",
        )?;
        let outbox_retention = match raw.outbox_retention_h {
            0 => None,
            hours => Some(
                hours
                    .checked_mul(3600)
                    .map(Duration::from_secs)
                    .filter(|d| chrono::Duration::from_std(*d).is_ok())
                    .ok_or_else(|| invalid("outbox_retention_h", "is too large"))?,
            ),
        };
        let mut allowed_origins = Vec::new();
        for value in raw.prom_allowed_origins.iter().map(|v| v.trim()) {
            if value.is_empty() {
                continue;
            }
            allowed_origins.push(
                PromOrigin::parse(value)
                    .map_err(|e| invalid("prom_allowed_origins", format!("`{value}`: {e}")))?,
            );
        }
        let secrets = SecretSettings {
            key: raw.secret_key,
            previous: raw.secret_key_previous,
        };
        secrets.keyring()?;
        let max_connections: NonZeroU32 = count(
            "database_max_connections",
            raw.database_max_connections,
            None,
        )?;
        ensure(
            raw.database_min_connections <= max_connections.get(),
            "database_min_connections",
            "must not exceed database_max_connections",
        )?;
        Ok(Self {
            database: DatabaseSettings {
                max_connections,
                min_connections: raw.database_min_connections,
                url: raw.database_url,
            },
            broker: BrokerSettings {
                url: raw.broker_url,
                namespace: raw.broker_namespace,
                confirm_timeout: Duration::from_millis(raw.publish_confirm_timeout_ms),
                publish_timeout: Duration::from_millis(raw.publish_timeout_ms),
            },
            http: HttpSettings {
                listen: address("listen", &raw.listen, "127.0.0.1:8080")?,
                metrics_listen: raw
                    .metrics_listen
                    .as_deref()
                    .map(|addr| address("metrics_listen", addr, "127.0.0.1:9100"))
                    .transpose()?,
                workers: NonZeroUsize::new(raw.http_workers),
            },
            log: LogSettings {
                format: raw.log_format,
            },
            webhook: WebhookSettings {
                body_limit: raw.webhook_body_limit,
                tolerance: Duration::from_secs(raw.webhook_tolerance_s),
                rate_per_shop_per_s: NonZeroU32::new(raw.webhook_rate_per_shop_per_s),
            },
            import: ImportSettings {
                concurrency: count("import_concurrency", raw.import_concurrency, Some(1024))?,
                batch_size: count("import_batch_size", raw.import_batch_size, Some(1000))?,
                batch_linger: Duration::from_millis(raw.import_batch_linger_ms),
                max_attempts: count("import_max_attempts", raw.import_max_attempts, None)?,
                retry_delays: raw
                    .retry_delays_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            },
            outbound: OutboundSettings {
                publish_concurrency: count(
                    "publish_concurrency",
                    raw.publish_concurrency,
                    Some(1024),
                )?,
                outbox_poll_interval: Duration::from_millis(raw.outbox_poll_interval_ms),
                outbox_batch_size: count("outbox_batch_size", raw.outbox_batch_size, Some(10_000))?,
                outbox_retention,
            },
            prom: PromSettings {
                timeout: Duration::from_secs(raw.prom_timeout_s),
                rate_per_s: count("prom_rate_per_s", raw.prom_rate_per_s, None)?,
                cancellation_text: cancellation_text.to_owned(),
                allowed_origins,
            },
            poll: PollSettings {
                overlap: Duration::from_secs(raw.poll_overlap_s),
                backfill: Duration::from_secs(raw.poll_backfill_s),
                tick: Duration::from_millis(raw.poll_tick_ms),
                lease: Duration::from_secs(raw.poll_lease_s),
                page_size: poll_page_size(raw.poll_page_size)?,
                concurrency: count("poll_concurrency", raw.poll_concurrency, Some(1024))?,
                retry_base: Duration::from_millis(raw.poll_retry_base_ms),
                page_attempts: count("poll_page_attempts", raw.poll_page_attempts, None)?,
            },
            secrets,
        })
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
        Settings::load_with(None, variables(map))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn defaults_describe_a_local_embedded_setup() {
        let s = load(&[]).expect("defaults are valid");
        assert!(s.database.is_sqlite());
        assert_eq!(s.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(s.broker.url, None);
        assert_eq!(s.broker.namespace, "promsync");
        assert_eq!(s.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(s.webhook.body_limit, 262_144);
        assert_eq!(s.webhook.rate_per_shop_per_s, NonZeroU32::new(200));
        assert_eq!(s.prom.rate_per_s.get(), 2);
        assert_eq!(s.prom.cancellation_text, "Замовлення скасовано продавцем");
        assert_eq!(
            s.import.retry_delays,
            [secs(1), secs(5), secs(30), secs(120), secs(600)]
        );
        assert_eq!(s.broker.confirm_timeout, secs(5));
        assert_eq!(s.broker.publish_timeout, secs(5));
        assert_eq!(s.prom.timeout, secs(15));
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = load(&[
            ("PROMSYNC_DATABASE_URL", "postgres://u@h/db"),
            ("PROMSYNC_BROKER_URL", "amqp://g:g@h:5672/%2f"),
            ("PROMSYNC_LISTEN", "0.0.0.0:9000"),
            ("PROMSYNC_LOG_FORMAT", "json"),
            ("PROMSYNC_RETRY_DELAYS_MS", "10,20"),
            ("PROMSYNC_PUBLISH_CONFIRM_TIMEOUT_MS", "700"),
            ("PROMSYNC_PROM_TIMEOUT_S", "3"),
            ("PROMSYNC_PROM_CANCELLATION_TEXT", "  Sold out  "),
        ])
        .expect("valid");
        assert_eq!(s.database.url, "postgres://u@h/db");
        assert_eq!(s.broker.url.as_deref(), Some("amqp://g:g@h:5672/%2f"));
        assert_eq!(s.http.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.import.retry_delays, [ms(10), ms(20)]);
        assert_eq!(s.broker.confirm_timeout, ms(700));
        assert_eq!(s.prom.timeout, secs(3));
        assert_eq!(s.prom.cancellation_text, "Sold out");
    }

    #[test]
    fn a_file_takes_the_flat_keys_and_the_environment_wins_over_it() {
        let file = std::env::temp_dir().join(format!(
            "promsync-config-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(
            &file,
            "poll_tick_ms = 50\nimport_batch_linger_ms = 7\nretry_delays_ms = [10, 20]\n",
        )
        .unwrap();
        let builder = |env: &[(&str, &str)]| {
            let map = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Settings::load_with(Some(&file), variables(map))
        };
        let s = builder(&[]).expect("valid file");
        assert_eq!(s.poll.tick, ms(50));
        assert_eq!(s.import.batch_linger, ms(7));
        assert_eq!(s.import.retry_delays, [ms(10), ms(20)]);
        let s = builder(&[("PROMSYNC_POLL_TICK_MS", "60")]).expect("valid");
        assert_eq!(s.poll.tick, ms(60));
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn metrics_share_the_main_listener_unless_given_their_own() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.http.metrics_listen, None);
        let s = load(&[("PROMSYNC_METRICS_LISTEN", "127.0.0.1:9100")]).expect("valid");
        assert_eq!(
            s.http.metrics_listen,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        let err = load(&[("PROMSYNC_METRICS_LISTEN", "somewhere")]).unwrap_err();
        assert!(err.to_string().contains("`metrics_listen`"), "{err}");
    }

    #[test]
    fn http_workers_default_to_one_per_core_and_come_from_the_environment() {
        assert_eq!(load(&[]).expect("defaults are valid").http.workers, None);
        let s = load(&[("PROMSYNC_HTTP_WORKERS", "1")]).expect("valid");
        assert_eq!(s.http.workers, NonZeroUsize::new(1));
    }

    #[test]
    fn the_publish_timeout_has_an_env_name_and_a_floor() {
        let s = load(&[("PROMSYNC_PUBLISH_TIMEOUT_MS", "1500")]).expect("valid");
        assert_eq!(s.broker.publish_timeout, ms(1500));
        let err = load(&[("PROMSYNC_PUBLISH_TIMEOUT_MS", "99")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting `publish_timeout_ms` (PROMSYNC_PUBLISH_TIMEOUT_MS): must be at \
             least 100"
        );
    }

    #[test]
    fn a_zero_webhook_rate_means_no_limit() {
        let s = load(&[("PROMSYNC_WEBHOOK_RATE_PER_SHOP_PER_S", "0")]).expect("valid");
        assert_eq!(s.webhook.rate_per_shop_per_s, None);
        let s = load(&[("PROMSYNC_WEBHOOK_TOLERANCE_S", "60")]).expect("valid");
        assert_eq!(s.webhook.tolerance, secs(60));
    }

    #[test]
    fn published_outbox_rows_are_kept_a_week_unless_configured() {
        let s = load(&[]).expect("valid");
        assert_eq!(s.outbound.outbox_retention, Some(secs(168 * 3600)));
        assert_eq!(s.outbound.outbox_poll_interval, ms(250));
        assert_eq!(s.outbound.outbox_batch_size.get(), 100);
        let s = load(&[("PROMSYNC_OUTBOX_RETENTION_H", "0")]).expect("valid");
        assert_eq!(s.outbound.outbox_retention, None);
        let s = load(&[("PROMSYNC_OUTBOX_RETENTION_H", "2")]).expect("valid");
        assert_eq!(s.outbound.outbox_retention, Some(secs(7200)));
        let err = load(&[("PROMSYNC_OUTBOX_RETENTION_H", &u64::MAX.to_string())]).unwrap_err();
        assert!(err.to_string().contains("`outbox_retention_h`"), "{err}");
    }

    #[test]
    fn poll_settings_have_defaults_and_env_names() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.poll.overlap, secs(300));
        assert_eq!(s.poll.backfill, Duration::ZERO);
        assert_eq!(s.poll.page_size.get(), 100);
        assert_eq!(s.poll.concurrency.get(), 32);
        assert_eq!(s.poll.retry_base, secs(1));
        assert_eq!(s.poll.page_attempts.get(), 8);
        let s = load(&[
            ("PROMSYNC_POLL_OVERLAP_S", "5"),
            ("PROMSYNC_POLL_TICK_MS", "50"),
            ("PROMSYNC_POLL_BACKFILL_S", "3600"),
            ("PROMSYNC_POLL_LEASE_S", "2"),
        ])
        .expect("valid");
        assert_eq!(
            (s.poll.overlap, s.poll.tick, s.poll.backfill, s.poll.lease),
            (secs(5), ms(50), secs(3600), secs(2))
        );
        for (var, field) in [
            ("PROMSYNC_POLL_PAGE_SIZE", "`poll_page_size`"),
            ("PROMSYNC_POLL_PAGE_ATTEMPTS", "`poll_page_attempts`"),
            ("PROMSYNC_POLL_RETRY_BASE_MS", "`poll_retry_base_ms`"),
        ] {
            let err = load(&[(var, "0")]).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = load(&[("PROMSYNC_POLL_TICK_MS", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting `poll_tick_ms` (PROMSYNC_POLL_TICK_MS): must be at least 10"
        );
    }

    #[test]
    fn a_poll_page_of_one_order_is_refused_as_an_inclusive_last_id_would_stop_the_sweep() {
        // Arrange + Act
        let one = load(&[("PROMSYNC_POLL_PAGE_SIZE", "1")]).unwrap_err();
        let too_many = load(&[("PROMSYNC_POLL_PAGE_SIZE", "1001")]).unwrap_err();
        let two = load(&[("PROMSYNC_POLL_PAGE_SIZE", "2")]).expect("valid");

        // Assert
        assert_eq!(
            one.to_string(),
            "invalid setting `poll_page_size` (PROMSYNC_POLL_PAGE_SIZE): must be between 2 and \
             1000 (Prom may repeat the last order of a page at the top of the next)"
        );
        assert!(
            too_many.to_string().contains("`poll_page_size`"),
            "{too_many}"
        );
        assert_eq!(two.poll.page_size.get(), 2);
    }

    #[test]
    fn import_batching_has_defaults_env_names_and_bounds() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.import.batch_size.get(), 32);
        assert_eq!(s.import.batch_linger, ms(2));
        assert_eq!(s.import.concurrency.get(), 32);
        assert_eq!(s.import.max_attempts.get(), 8);
        let s = load(&[
            ("PROMSYNC_IMPORT_BATCH_SIZE", "1"),
            ("PROMSYNC_IMPORT_BATCH_LINGER_MS", "0"),
        ])
        .expect("valid");
        assert_eq!(s.import.batch_size.get(), 1);
        assert_eq!(s.import.batch_linger, Duration::ZERO);
        for (var, value, field) in [
            ("PROMSYNC_IMPORT_BATCH_SIZE", "0", "`import_batch_size`"),
            ("PROMSYNC_IMPORT_BATCH_SIZE", "1001", "`import_batch_size`"),
            (
                "PROMSYNC_IMPORT_CONCURRENCY",
                "1025",
                "`import_concurrency`",
            ),
            (
                "PROMSYNC_IMPORT_BATCH_LINGER_MS",
                "1001",
                "`import_batch_linger_ms`",
            ),
            ("PROMSYNC_RETRY_DELAYS_MS", "10,0", "`retry_delays_ms`"),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn a_bad_value_is_reported_with_the_field_name() {
        let err = load(&[("PROMSYNC_LISTEN", "not-an-address")]).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
        let err = load(&[("PROMSYNC_LISTEN", "localhost:8080")]).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
        let err = load(&[("PROMSYNC_BROKER_URL", "http://x")]).unwrap_err();
        assert!(err.to_string().contains("`broker_url`"), "{err}");
        let err = load(&[("PROMSYNC_DATABASE_MAX_CONNECTIONS", "0")]).unwrap_err();
        assert!(
            err.to_string().contains("`database_max_connections`"),
            "{err}"
        );
        let err = load(&[
            ("PROMSYNC_DATABASE_MAX_CONNECTIONS", "4"),
            ("PROMSYNC_DATABASE_MIN_CONNECTIONS", "5"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("`database_min_connections`"),
            "{err}"
        );
        let err = load(&[("PROMSYNC_PROM_RATE_PER_S", "0")]).unwrap_err();
        assert!(err.to_string().contains("`prom_rate_per_s`"), "{err}");
    }

    #[test]
    fn allowed_prom_origins_come_from_the_environment_as_a_list_and_must_be_origins() {
        let s = load(&[]).expect("defaults are valid");
        assert!(s.prom.allowed_origins.is_empty());
        let s = load(&[(
            "PROMSYNC_PROM_ALLOWED_ORIGINS",
            "http://127.0.0.1:9400,http://sim:9090/",
        )])
        .expect("valid");
        let policy = s.prom.origin_policy();
        for allowed in ["http://127.0.0.1:9400", "http://sim:9090"] {
            assert!(
                policy.is_allowed(&PromOrigin::parse(allowed).unwrap()),
                "{allowed}"
            );
        }
        assert!(!policy.is_allowed(&PromOrigin::parse("http://127.0.0.1:9401").unwrap()));
        let s = load(&[("PROMSYNC_PROM_ALLOWED_ORIGINS", "")]).expect("blank is none");
        assert!(s.prom.allowed_origins.is_empty());
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
        assert!(!s.secrets.keyring().unwrap().is_enabled());
        let s = load(&[("PROMSYNC_SECRET_KEY", "")]).expect("blank is unset");
        assert!(!s.secrets.keyring().unwrap().is_enabled());
    }

    #[test]
    fn secret_keys_come_from_the_environment_with_previous_keys_as_a_list() {
        let s = load(&[
            ("PROMSYNC_SECRET_KEY", KEY_B),
            ("PROMSYNC_SECRET_KEY_PREVIOUS", &format!("{KEY_A},{KEY_B}")),
        ])
        .expect("valid keys");
        let ring = s.secrets.keyring().unwrap();
        assert_eq!(
            ring.current_id(),
            Some(KEY_B.parse::<SecretKey>().unwrap().id())
        );
        assert_eq!(s.secrets.previous.len(), 2);
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
