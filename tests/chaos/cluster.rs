//! One scenario's deployment: private PostgreSQL and RabbitMQ, the Prom simulator and
//! real `promsync` processes (the binary cargo built), plus what the scenarios do to it:
//! sign and send webhooks, kill and restart processes, and count what was imported.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use futures::{stream, StreamExt};
use promsync::ingress::signature::SigningKey;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use super::{
    proxy::Proxy,
    services::{free_port, PrivatePostgres, PrivateRabbit, Scratch},
};

const FIXTURE: &str = include_str!("../fixtures/prom/order-pending-cash-on-delivery.json");
const PROMSYNC: &str = env!("CARGO_BIN_EXE_promsync");

/// Waits until `check` yields `Some`, polling with a deadline; `check` may fail while a
/// service is down, which counts as "not yet".
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running promsync (or simulator) process; SIGKILLed if dropped.
pub struct Proc {
    pub name: String,
    child: Mutex<Child>,
}

impl Proc {
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .expect("child lock")
            .try_wait()
            .ok()
            .flatten()
    }

    /// Panics if the process has exited: "recovers without restart" means it never did.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status}) but should have survived", self.name);
        }
    }

    /// SIGKILL, as a crash or an OOM kill would: nothing is settled or flushed.
    pub async fn kill(&self) {
        let _ = self.child.lock().expect("child lock").start_kill();
        eventually(
            &format!("{} to die", self.name),
            Duration::from_secs(10),
            || async { self.exited().map(|_| ()) },
        )
        .await;
    }
}

impl Drop for Proc {
    /// Kills and reaps the process before the scratch directory goes, so no late log
    /// write keeps the directory from being removed.
    fn drop(&mut self) {
        let child = self.child.get_mut().expect("child lock");
        let _ = child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One notification as Prom (or a relay) would push it.
#[derive(Clone)]
pub struct Notification {
    pub webhook_id: String,
    pub order_id: i64,
    pub version: i64,
    pub body: Vec<u8>,
}

/// Line items of the fixture order, each a distinct product.
fn fixture_lines() -> i64 {
    let doc: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
    doc["order"]["products"].as_array().map_or(0, Vec::len) as i64
}

/// `date_modified` of version `v` of every generated order: a fixed base plus v seconds,
/// so a version is an exact epoch second to compare with the database.
fn version_time(version: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(version)
}

/// A Prom order document (the cash-on-delivery fixture) as order `id` at `version`.
pub fn order_notification(id: i64, version: i64) -> Notification {
    let mut doc: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
    let order = &mut doc["order"];
    order["id"] = json!(id);
    order["date_created"] = json!(version_time(0).to_rfc3339_opts(SecondsFormat::Micros, false));
    order["date_modified"] =
        json!(version_time(version).to_rfc3339_opts(SecondsFormat::Micros, false));
    Notification {
        webhook_id: format!("msg_{id}_v{version}"),
        order_id: id,
        version,
        body: serde_json::to_vec(&json!({ "order": order })).expect("JSON"),
    }
}

/// A full order document as "Prom" holds it, pushed once.
pub fn document_notification(order: &Value) -> Notification {
    let id = order["id"].as_i64().expect("order id");
    Notification {
        webhook_id: format!("sim_{id}"),
        order_id: id,
        version: 0,
        body: serde_json::to_vec(&json!({ "order": order })).expect("JSON"),
    }
}

/// How a scenario's result is reported: one line, the fields first.
pub struct Report {
    pub name: &'static str,
    pub sent: usize,
    pub accepted: usize,
    pub imported: usize,
    pub duplicates: usize,
    pub lost: usize,
    pub started: Instant,
    pub extra: String,
}

impl Report {
    pub fn print(&self) {
        println!(
            "chaos: {} sent={} accepted={} imported={} duplicates={} lost={} seconds={:.1}{}",
            self.name,
            self.sent,
            self.accepted,
            self.imported,
            self.duplicates,
            self.lost,
            self.started.elapsed().as_secs_f64(),
            self.extra
        );
    }
}

/// What the orders table holds for the expected orders.
#[derive(Debug, Default)]
pub struct Tally {
    /// Expected orders present (at any version).
    pub imported: usize,
    /// Rows beyond the first for one `(shop, external_id)`, line items beyond the
    /// document's, and products beyond the document's (matched by SKU, never re-created).
    pub duplicates: usize,
    /// Expected orders missing, or not at their newest version.
    pub lost: usize,
}

/// Field order is drop order: processes first, then the services, then the directory.
pub struct Cluster {
    /// The simulator acting as Prom; held so it lives (and dies) with the cluster.
    _sim: Proc,
    pub serve: Proc,
    pub db: DatabaseConnection,
    pub http: reqwest::Client,
    pub sim_url: String,
    pub serve_url: String,
    pub shop_id: i64,
    pub admin_token: String,
    key: SigningKey,
    launcher: Launcher,
    /// In front of PostgreSQL and RabbitMQ for every promsync process, when the scenario
    /// asked for them (`start_behind_proxies`); the scenario's own checks go direct.
    pub proxies: Option<Proxies>,
    pub pg: PrivatePostgres,
    pub rabbit: PrivateRabbit,
    _scratch: Scratch,
}

/// The proxies promsync reaches its services through, which a scenario can silence.
pub struct Proxies {
    pub pg: std::sync::Arc<Proxy>,
    pub rabbit: std::sync::Arc<Proxy>,
}

impl Cluster {
    /// Private services, the simulator (`sim_args` added) as Prom, migrations, an
    /// account, a shop, and `promsync serve`.
    pub async fn start(name: &str, sim_args: &[&str]) -> Self {
        Self::start_with(name, sim_args, false).await
    }

    /// As `start`, with every promsync process reaching PostgreSQL and RabbitMQ through
    /// a TCP proxy of its own, so the scenario can make either silent (a partition).
    pub async fn start_behind_proxies(name: &str, sim_args: &[&str]) -> Self {
        Self::start_with(name, sim_args, true).await
    }

    async fn start_with(name: &str, sim_args: &[&str], proxied: bool) -> Self {
        super::services::require_tooling();
        let scratch = Scratch::new(name);
        let (pg, rabbit) = {
            let dir = &scratch;
            std::thread::scope(|s| {
                let pg = s.spawn(|| PrivatePostgres::start(dir));
                let rabbit = s.spawn(|| PrivateRabbit::start(dir));
                (
                    pg.join().expect("private PostgreSQL"),
                    rabbit.join().expect("private RabbitMQ"),
                )
            })
        };
        let proxies = if proxied {
            Some(Proxies {
                pg: Proxy::start(([127, 0, 0, 1], pg.port).into()).await,
                rabbit: Proxy::start(([127, 0, 0, 1], rabbit.port).into()).await,
            })
        } else {
            None
        };
        let (pg_url, rabbit_url) = match &proxies {
            Some(p) => (pg.url_via(p.pg.port), rabbit.url_via(p.rabbit.port)),
            None => (pg.url(), rabbit.url()),
        };
        let sim_port = free_port();
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let env = vec![
            ("PROMSYNC_DATABASE_URL".to_owned(), pg_url),
            // The simulator stands in for Prom on plain http and loopback: allowed
            // explicitly, as a deployment would list it.
            ("PROMSYNC_PROM_ALLOWED_ORIGINS".to_owned(), sim_url.clone()),
            ("PROMSYNC_BROKER_URL".to_owned(), rabbit_url),
            ("PROMSYNC_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
            // Short tiers keep a scenario within minutes; the attempts stay the default.
            (
                "PROMSYNC_RETRY_DELAYS_MS".to_owned(),
                "250,1000,3000".to_owned(),
            ),
            // The scenarios send bursts on purpose, to one simulated token.
            (
                "PROMSYNC_WEBHOOK_RATE_PER_SHOP_PER_S".to_owned(),
                "0".to_owned(),
            ),
            ("PROMSYNC_PROM_RATE_PER_S".to_owned(), "500".to_owned()),
            ("PROMSYNC_PROM_TIMEOUT_S".to_owned(), "5".to_owned()),
            (
                "PROMSYNC_OUTBOX_POLL_INTERVAL_MS".to_owned(),
                "50".to_owned(),
            ),
        ];
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Below the server's keep-alive, as a well-behaved webhook sender's: the
            // client closes an idle connection before the server does.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let launcher = Launcher {
            dir: scratch.0.clone(),
            env,
            spawned: AtomicUsize::new(0),
        };
        let listen = format!("127.0.0.1:{sim_port}");
        let mut args = vec!["simulate-prom", "--listen", &listen, "--seed", "7"];
        args.extend_from_slice(sim_args);
        let sim = launcher.spawn("simulator", &args, &[]);
        wait_http(&http, &format!("{sim_url}/_sim/stats")).await;

        launcher.output(&["migrate"]).await;
        let account = launcher
            .output(&["account", "create", "--name", "Chaos"])
            .await;
        let account_id = account["account_id"].as_i64().expect("account_id");
        let shop = launcher
            .output(&[
                "shop",
                "create",
                "--account",
                &account_id.to_string(),
                "--name",
                "Chaos shop",
                "--prom-url",
                &sim_url,
                "--prom-token",
                "chaos-token",
            ])
            .await;
        let serve_port = free_port();
        let serve_url = format!("http://127.0.0.1:{serve_port}");
        let serve = launcher.spawn(
            "serve",
            &["serve"],
            &[("PROMSYNC_LISTEN", format!("127.0.0.1:{serve_port}"))],
        );
        wait_http(&http, &format!("{serve_url}/healthz")).await;
        let db = Database::connect(pg.url()).await.expect("private database");
        Self {
            _sim: sim,
            _scratch: scratch,
            proxies,
            pg,
            rabbit,
            launcher,
            http,
            db,
            sim_url,
            serve,
            serve_url,
            shop_id: shop["shop_id"].as_i64().expect("shop_id"),
            admin_token: account["admin_token"].as_str().expect("token").to_owned(),
            key: shop["webhook_secret"]
                .as_str()
                .expect("webhook_secret")
                .parse()
                .expect("a whsec_ secret"),
        }
    }

    /// Starts `promsync <args>` in the background.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        self.launcher.spawn(name, args, &[])
    }

    /// Runs `promsync <args>` to completion and returns its stdout.
    pub async fn run(&self, args: &[&str]) -> String {
        run_promsync(&self.launcher.env, args).await
    }

    /// Posts one notification, signed now; the HTTP status, or the transport error.
    pub async fn send(&self, note: &Notification) -> Result<u16, String> {
        let now = Utc::now().timestamp();
        let signature = self.key.sign(&note.webhook_id, now, &note.body);
        self.http
            .post(format!("{}/webhooks/prom/{}", self.serve_url, self.shop_id))
            .header("content-type", "application/json")
            .header("webhook-id", &note.webhook_id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(note.body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"))
    }

    /// Sends every notification, `concurrency` at a time; statuses in input order.
    pub async fn send_all(
        &self,
        notes: &[Notification],
        concurrency: usize,
    ) -> Vec<Result<u16, String>> {
        stream::iter(notes)
            .map(|n| self.send(n))
            .buffered(concurrency)
            .collect()
            .await
    }

    pub async fn count(&self, sql: &str) -> Option<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .ok()??;
        row.try_get_by_index::<i64>(0).ok()
    }

    /// Rows of two text columns (cast in the SQL), `None` while the DB is away.
    pub async fn rows(&self, sql: &str) -> Option<Vec<(String, String)>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .ok()?;
        rows.iter()
            .map(|r| {
                Some((
                    r.try_get_by_index::<Option<String>>(0)
                        .ok()?
                        .unwrap_or_default(),
                    r.try_get_by_index::<Option<String>>(1)
                        .ok()?
                        .unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Rows of two integer columns (ids, counts, epoch seconds).
    pub async fn pairs(&self, sql: &str) -> Option<Vec<(i64, i64)>> {
        self.rows(sql)
            .await?
            .into_iter()
            .map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .collect()
    }

    /// Orders versus `expected` (order id → newest version sent and accepted).
    pub async fn tally(&self, expected: &HashMap<i64, i64>) -> Option<Tally> {
        let sql = format!(
            "SELECT external_id, count(*)::text FROM orders WHERE shop_id = {} \
             GROUP BY external_id",
            self.shop_id
        );
        let counts: HashMap<i64, i64> = self.pairs(&sql).await?.into_iter().collect();
        let sql = format!(
            "SELECT external_id, max(extract(epoch FROM remote_modified_at))::bigint::text \
             FROM orders WHERE shop_id = {} GROUP BY external_id",
            self.shop_id
        );
        let newest: HashMap<i64, i64> = self.pairs(&sql).await?.into_iter().collect();
        // Applied twice would also show as extra line items or a second product.
        let sql = format!(
            "SELECT o.external_id, count(i.id)::text FROM orders o \
             JOIN order_items i ON i.order_id = o.id WHERE o.shop_id = {} \
             GROUP BY o.external_id",
            self.shop_id
        );
        let items = self.pairs(&sql).await?;
        let products = self
            .count(&format!(
                "SELECT count(*) FROM products p JOIN shops s ON s.account_id = p.account_id \
                 WHERE s.id = {}",
                self.shop_id
            ))
            .await?;
        let extra_items: i64 = items
            .iter()
            .map(|(_, n)| (*n - fixture_lines()).max(0))
            .sum();
        let extra_orders: i64 = counts.values().map(|c| (*c - 1).max(0)).sum();
        let extra_products = (products - fixture_lines()).max(0);
        let mut tally = Tally {
            duplicates: (extra_orders + extra_items + extra_products) as usize,
            ..Tally::default()
        };
        for (id, version) in expected {
            if counts.contains_key(id) {
                tally.imported += 1;
            }
            if newest.get(id) != Some(&version_time(*version).timestamp()) {
                tally.lost += 1;
            }
        }
        Some(tally)
    }

    /// Waits until every expected order is at its newest version and the inbox holds
    /// `events` settled notifications (so nothing is still in flight), then tallies.
    pub async fn settle(
        &self,
        expected: &HashMap<i64, i64>,
        events: usize,
        within: Duration,
    ) -> Tally {
        let deadline = Instant::now() + within;
        loop {
            let settled = self.count("SELECT count(*) FROM inbound_events").await;
            if let Some(tally) = self.tally(expected).await {
                let done = tally.lost == 0 && settled.is_some_and(|n| n as usize >= events);
                if done || Instant::now() >= deadline {
                    return tally;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the private database did not answer within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Log lines containing `needle` across the logs of the processes named `name*`.
    pub fn log_lines(&self, name: &str, needle: &str) -> usize {
        std::fs::read_dir(&self.launcher.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.ends_with(".log") && file.get(4..).is_some_and(|f| f.starts_with(name))
            })
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .sum()
    }

    /// Dead letters of the inbound lane, as `promsync dlq list` prints them.
    pub async fn dead_letters(&self) -> Vec<Value> {
        self.run(&["dlq", "list", "--queue", "inbound"])
            .await
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("dlq list prints JSON lines"))
            .collect()
    }

    pub async fn get_json(&self, url: &str) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }
}

/// Starts promsync processes with the cluster's environment, each logging to its own
/// numbered file in the scenario's directory.
struct Launcher {
    dir: PathBuf,
    env: Vec<(String, String)>,
    spawned: AtomicUsize,
}

impl Launcher {
    fn spawn(&self, name: &str, args: &[&str], extra: &[(&str, String)]) -> Proc {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst) + 1;
        let log_path: PathBuf = self.dir.join(format!("{n:03}-{name}.log"));
        let log = std::fs::File::create(&log_path).expect("process log");
        let child = Command::new(PROMSYNC)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting promsync {}: {e}", args.join(" ")));
        Proc {
            name: format!("{name} ({})", log_path.display()),
            child: Mutex::new(child),
        }
    }

    async fn output(&self, args: &[&str]) -> Value {
        let out = run_promsync(&self.env, args).await;
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("promsync {} printed no JSON ({e}): {out}", args.join(" ")))
    }
}

async fn run_promsync(env: &[(String, String)], args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(PROMSYNC)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("promsync {} took over 60 s", args.join(" ")))
    .expect("running promsync");
    assert!(
        out.status.success(),
        "promsync {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

async fn wait_http(http: &reqwest::Client, url: &str) {
    eventually(
        &format!("{url} to answer"),
        Duration::from_secs(60),
        || async {
            let response = http.get(url).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
}

/// Distinct webhook ids among accepted (202) notifications.
pub fn accepted_ids(notes: &[Notification], results: &[Result<u16, String>]) -> HashSet<String> {
    notes
        .iter()
        .zip(results)
        .filter(|(_, r)| matches!(r, Ok(202)))
        .map(|(n, _)| n.webhook_id.clone())
        .collect()
}
