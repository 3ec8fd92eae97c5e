//! Every setting in one table: its name, the type it is read as, its default and what it
//! means. [`define_settings!`] turns the table into the flat `Raw` struct that the file and
//! the environment are read into and into [`SETTINGS`], the list the defaults are loaded
//! from and the README's configuration table is checked against (a unit test fails when
//! they disagree and prints the rows the README should have). So a setting is named,
//! defaulted and described here only; the typed sections in the parent module say which
//! key each of their fields comes from, and no more.
//!
//! A default is written as the environment variable would hold it (lists comma-separated),
//! and is loaded as such, so the README's default column is exactly what applies.

use secrecy::SecretString;
use serde::Deserialize;

use super::{LogFormat, DEFAULT_DATABASE_URL};

/// One setting as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDoc {
    /// The key in the TOML file; the variable is `PROMSYNC_` and the key in upper case.
    pub key: &'static str,
    /// The default as the variable would spell it; `None` when unset by default.
    pub default: Option<&'static str>,
    /// Whether the variable holds a comma-separated list.
    pub list: bool,
    /// What it means, as the README's table says it.
    pub doc: &'static str,
}

impl SettingDoc {
    /// The environment variable that sets it.
    pub fn env(&self) -> String {
        format!("PROMSYNC_{}", self.key.to_ascii_uppercase())
    }
}

/// Whether a raw field is read from a comma-separated variable.
trait Kind {
    const LIST: bool = false;
}
impl Kind for String {}
impl Kind for u32 {}
impl Kind for u64 {}
impl Kind for usize {}
impl Kind for LogFormat {}
impl<T> Kind for Option<T> {}
impl<T> Kind for Vec<T> {
    const LIST: bool = true;
}

macro_rules! default_of {
    (unset) => {
        None
    };
    ($value:tt) => {
        Some($value)
    };
}

macro_rules! define_settings {
    ($( $(#[$attr:meta])* $key:ident : $ty:ty = $default:tt, $doc:literal; )*) => {
        /// The settings as read, before they are checked and typed (`Settings::try_from`).
        #[derive(Debug, Deserialize)]
        pub(super) struct Raw {
            $( $(#[$attr])* pub(super) $key: $ty, )*
        }

        /// Every setting, in the README's order.
        pub const SETTINGS: &[SettingDoc] = &[
            $( SettingDoc {
                key: stringify!($key),
                default: default_of!($default),
                list: <$ty as Kind>::LIST,
                doc: $doc,
            }, )*
        ];
    };
}

define_settings! {
    database_url: String = DEFAULT_DATABASE_URL,
        "`postgres://…` in production";
    database_max_connections: u32 = "16",
        "pool size per process";
    database_min_connections: u32 = "4",
        "connections each process opens before it starts work and keeps open, so the \
         first requests after a start do not wait for new ones (`0` to `database_max_connections`; \
         SQLite always has one); mind PostgreSQL's `max_connections` (100 by default) \
         across all processes";
    broker_url: Option<String> = unset,
        "`amqp://…` for RabbitMQ; unset = the embedded broker";
    broker_namespace: String = "promsync",
        "prefix of every exchange and queue";
    publish_confirm_timeout_ms: u64 = "5000",
        "wait for a publisher confirm";
    publish_timeout_ms: u64 = "5000",
        "longest one publish may take, reconnecting to the broker or writing the embedded \
         queue included; past it the ingress answers `503` with `Retry-After` (and a \
         confirm still missing drops the broker connection for a new one), the relay and \
         the poller try again later";
    listen: String = "127.0.0.1:8080",
        "HTTP address (`:0` picks a free port)";
    metrics_listen: Option<String> = unset,
        "when set, `/metrics` (every tenant's totals) is served only on this address and \
         not on `PROMSYNC_LISTEN`, and `import`, `poll` and `publish` serve theirs there \
         too; give it an address your monitoring reaches and the internet does not";
    http_workers: usize = "0",
        "HTTP worker threads of `serve`/`run`; `0` = one per CPU core";
    log_format: LogFormat = "pretty",
        "`pretty` or `json` (logs go to stderr)";
    webhook_body_limit: usize = "262144",
        "largest webhook body in bytes (413 above)";
    webhook_tolerance_s: u64 = "300",
        "accepted webhook timestamp skew";
    webhook_rate_per_shop_per_s: u32 = "200",
        "accepted webhooks per second per shop and `serve` process, bursts up to twice \
         that; above it `429` with `Retry-After` (0 = no limit)";
    import_concurrency: usize = "32",
        "messages an importer works on at once (prefetch is twice that); batches form \
         from these, so it bounds the batch size too";
    import_batch_size: usize = "32",
        "most messages an importer applies in one transaction (group commit: each in its \
         own savepoint, all acked after the one commit), and never more than half of \
         `import_concurrency`, so the next batch gathers while one commits; `1` = a \
         transaction per message";
    import_batch_linger_ms: u64 = "2",
        "how long a batch waits for more messages before committing (0 = only what is \
         already waiting)";
    import_max_attempts: u32 = "8",
        "deliveries before a message is dead-lettered";
    retry_delays_ms: Vec<u64> = "1000,5000,30000,120000,600000",
        "delayed-retry tiers";
    publish_concurrency: usize = "8",
        "status changes a publisher sends at once";
    outbox_poll_interval_ms: u64 = "250",
        "how often an idle outbox relay looks for rows";
    outbox_batch_size: u64 = "100",
        "outbox rows per relay round";
    outbox_retention_h: u64 = "168",
        "hours a published outbox row is kept before the idle relay deletes it (1,000 per \
         statement, checked every 10 min); `0` keeps every row";
    prom_timeout_s: u64 = "15",
        "timeout of one Prom API call";
    prom_rate_per_s: u32 = "2",
        "Prom API calls per second per seller token, per process";
    prom_cancellation_text: String = "Замовлення скасовано продавцем",
        "`cancellation_text` sent with Prom `canceled`";
    #[serde(default)]
    prom_allowed_origins: Vec<String> = unset,
        "comma-separated Prom origins shops may use besides public `https` ones, matched \
         exactly (scheme, host, port), e.g. `http://127.0.0.1:9400` for the simulator; a \
         private address is reachable only through an origin listed here (see [Prom \
         URLs](#prom-urls))";
    poll_overlap_s: u64 = "300",
        "how far each poll window reaches back before the watermark";
    poll_backfill_s: u64 = "0",
        "a new shop's first sweep also takes orders created this long before its \
         connection (0 = new orders only)";
    poll_tick_ms: u64 = "1000",
        "how often a poller looks for shops due for a sweep";
    poll_lease_s: u64 = "30",
        "lease of a sweeping poller; a dead poller's shops are taken over within it";
    poll_page_size: u32 = "100",
        "orders per `orders/list` page, 2 to 1000 (Prom may repeat a page's last order at \
         the top of the next, so a page of one would never move on)";
    poll_concurrency: usize = "32",
        "shops one poller process sweeps at once (a sweep mostly waits on Prom: at 60 s \
         intervals, 32 keep about 10,000 shops on time when Prom answers in 0.2 s)";
    poll_retry_base_ms: u64 = "1000",
        "first retry delay of a failing page (doubles, at most 30 s; `Retry-After` wins)";
    poll_page_attempts: u32 = "8",
        "attempts per page before the sweep is left to the next interval";
    secret_key: Option<SecretString> = unset,
        "AES-256 key (standard base64 of 32 bytes: `openssl rand -base64 32`) encrypting \
         shops' Prom tokens and webhook secrets in the database; unset = stored as \
         plaintext, with a warning at start";
    #[serde(default)]
    secret_key_previous: Vec<SecretString> = unset,
        "earlier keys, comma-separated, still read (never written) during a key rotation";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables of the README's table that are not settings: the log filter, and the file's
    /// path (a command-line flag).
    const OTHER_VARIABLES: &[&str] = &["RUST_LOG", "PROMSYNC_CONFIG"];

    /// The README's configuration table row of a setting.
    fn readme_row(setting: &SettingDoc) -> String {
        let default = match setting.default {
            Some(value) => format!("`{value}`"),
            None => "unset".to_owned(),
        };
        format!("| `{}` | {default} | {} |", setting.env(), setting.doc)
    }

    /// The rows of the README's configuration table, first column unquoted.
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("the README has a Configuration section");
        section
            .lines()
            .skip_while(|line| !line.starts_with("| variable |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let name = line
                    .split('`')
                    .nth(1)
                    .expect("a row starts with a quoted variable");
                (name.to_owned(), line.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_readme_table_lists_every_setting_with_its_default_and_meaning() {
        let rows = readme_rows();
        let documented: Vec<&str> = rows
            .iter()
            .filter(|(name, _)| !OTHER_VARIABLES.contains(&name.as_str()))
            .map(|(_, row)| row.as_str())
            .collect();
        let expected: Vec<String> = SETTINGS.iter().map(readme_row).collect();
        assert_eq!(
            documented,
            expected,
            "the README's configuration table must have these rows, in this order (rows \
             for {OTHER_VARIABLES:?} may sit anywhere):\n{}",
            expected.join("\n")
        );
        for other in OTHER_VARIABLES {
            assert!(
                rows.iter().any(|(name, _)| name == other),
                "the README's table describes {other}"
            );
        }
    }

    #[test]
    fn keys_are_unique_and_lists_are_marked() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len());
        let lists: Vec<&str> = SETTINGS.iter().filter(|s| s.list).map(|s| s.key).collect();
        assert_eq!(
            lists,
            [
                "retry_delays_ms",
                "prom_allowed_origins",
                "secret_key_previous"
            ]
        );
    }
}
