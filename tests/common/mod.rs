//! Test harness: every test gets its own PostgreSQL database, its own broker namespace
//! (so its own queues), a Prom stand-in (wiremock, or the Prom simulator on demand) and
//! the real `Application`, importers and publishers, started exactly as production starts
//! them.
//!
//! Services come from `PROMSYNC_TEST_DATABASE_URL` (an admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `PROMSYNC_TEST_BROKER_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). A missing service fails the test with its
//! name; nothing is skipped silently.

#![allow(dead_code)]

use std::{
    future::Future,
    io::Write,
    num::{NonZeroU32, NonZeroUsize},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use chrono::Utc;
use lapin::{options::QueueDeclareOptions, types::FieldTable, Connection, ConnectionProperties};
use promsync::{
    broker::{rabbitmq::delete_topology, Broker, Lane, Topology},
    clock::ManualClock,
    config::Settings,
    dead_letters::OperatorView,
    domain::{ClientMatching, Language, MatchProductsBy},
    ingress::signature::SigningKey,
    prom::origin::{PromOrigin, VettedOrigin},
    provision::{self, CreatedShop, NewShop},
    startup::{spawn_importer, spawn_publisher, Application, Backends},
};
use promsync_simulator::{SimConfig, SimHandle, Simulator};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use wiremock::{
    matchers::{method, path_regex},
    Mock, MockServer, ResponseTemplate,
};

pub const PENDING_ORDER: &str =
    include_str!("../fixtures/prom/order-pending-cash-on-delivery.json");
pub const CUSTOM_STATUS_ORDER: &str =
    include_str!("../fixtures/prom/order-custom-status-prom-payment.json");

pub fn admin_database_url() -> String {
    std::env::var("PROMSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Which backend the suite runs on: `rabbitmq` (PostgreSQL + RabbitMQ, the default) or
/// `embedded` (SQLite and the embedded broker). `.ci/run` runs the suite on both.
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

pub fn broker_url() -> String {
    std::env::var("PROMSYNC_TEST_BROKER_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The `order` object of a fixture document.
pub fn fixture_order(document: &str) -> Value {
    serde_json::from_str::<Value>(document).expect("fixture JSON")["order"].clone()
}

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

pub struct Options {
    pub importers: usize,
    pub match_products_by: MatchProductsBy,
    pub client_matching: ClientMatching,
    pub currency: &'static str,
    pub broker_url: Option<String>,
    pub max_attempts: u32,
    /// Per-shop webhook limit of the test's ingress (0 = none).
    pub webhook_rate_per_shop_per_s: u32,
    /// `PROMSYNC_SECRET_KEY` of the test's processes (none: secrets stored as plaintext).
    pub secret_key: Option<String>,
    pub secret_key_previous: Vec<String>,
    /// More Prom stand-ins (wiremock) started with the app, their origins allowed like
    /// `prom`'s, for tests that connect more shops.
    pub extra_proms: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            importers: 1,
            match_products_by: MatchProductsBy::Sku,
            client_matching: ClientMatching::AlwaysNew,
            currency: "UAH",
            broker_url: None,
            max_attempts: 3,
            webhook_rate_per_shop_per_s: 0,
            secret_key: None,
            secret_key_previous: Vec::new(),
            extra_proms: 0,
        }
    }
}

/// Every log line of the test process once `capture_logs` ran (JSON, all fields), so a
/// test can assert that no secret was ever logged.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per test binary) a subscriber that writes every event, at debug level
/// and promsync's trace level, into a buffer. The Prom stand-in (wiremock) is left out:
/// it is the test's fake Prom, and it logs the requests promsync sends it, token included.
pub fn capture_logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,promsync=trace,h2=info,hyper=info,rustls=info,wiremock=off",
            ))
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

/// A second account with its own admin and shop, for tenant-isolation tests.
pub struct Tenant {
    pub account_id: i64,
    pub admin_token: String,
    pub shop: CreatedShop,
}

pub struct TestApp {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub db_name: String,
    pub address: String,
    /// `/metrics` on its own listener, when the settings ask for one.
    pub metrics_address: Option<String>,
    pub http: reqwest::Client,
    pub prom: MockServer,
    /// `Options::extra_proms` more stand-ins, each an allowed Prom origin.
    pub extra_proms: Vec<MockServer>,
    /// Where `start_simulator` will listen, bound at spawn so that its origin could be
    /// allowed before the app started.
    sim_listener: Option<std::net::TcpListener>,
    pub backend: Backend,
    sqlite_file: Option<std::path::PathBuf>,
    pub account_id: i64,
    /// The token of the account's admin (every permission), as `account create` prints it.
    pub admin_token: String,
    pub shop: CreatedShop,
    pub topology: Topology,
    /// The time API handlers see; tests advance it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The Prom simulator, once `start_simulator` pointed the shop at it.
    pub sim: Option<SimHandle>,
    backends: Backends,
    importers: Vec<(
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    publishers: Vec<(
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

async fn vet(backends: &Backends, url: &str) -> VettedOrigin {
    backends
        .prom_origins
        .vet_url(url)
        .await
        .unwrap_or_else(|e| panic!("{url} as a Prom URL: {e}"))
}

async fn create_database() -> (String, String) {
    let admin_url = admin_database_url();
    let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for integration tests ({admin_url}): {e}")
    });
    let name = format!("promsync_t_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating the test database");
    let _ = admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .expect("database URL with a path");
    (name.clone(), format!("{base}/{name}"))
}

async fn ensure_broker(url: &str) {
    match Connection::connect(url, ConnectionProperties::default()).await {
        Ok(conn) => {
            let _ = conn.close(200, "probe".into()).await;
        }
        Err(e) => panic!("RabbitMQ is required for integration tests ({url}): {e}"),
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// The app most API-level tests want: logs captured (so tests can check nothing
    /// secret is logged) and every Prom product lookup answered 404, so imports never
    /// wait on a product fetch.
    pub async fn spawn_for_api() -> Self {
        capture_logs();
        let app = Self::spawn_with(Options::default()).await;
        app.prom_products_missing().await;
        app
    }

    pub async fn spawn_with(options: Options) -> Self {
        // Logs show with a failing test's output (RUST_LOG picks the level).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let backend = backend();
        let broker = match (&options.broker_url, backend) {
            (Some(url), _) => Some(url.clone()),
            (None, Backend::Embedded) => None,
            (None, Backend::RabbitMq) => {
                let url = broker_url();
                ensure_broker(&url).await;
                Some(url)
            }
        };
        let (db_name, database_url, sqlite_file) = match backend {
            Backend::RabbitMq => {
                let (name, url) = create_database().await;
                (name, url, None)
            }
            Backend::Embedded => {
                let file = std::env::temp_dir().join(format!(
                    "promsync-test-{}.db",
                    uuid::Uuid::new_v4().simple()
                ));
                let url = format!("sqlite://{}?mode=rwc", file.display());
                (String::new(), url, Some(file))
            }
        };
        let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
        // The stand-ins are plain http on loopback: the app allows exactly their origins,
        // as a deployment lists its simulator in PROMSYNC_PROM_ALLOWED_ORIGINS.
        let prom = MockServer::start().await;
        let mut extra_proms = Vec::new();
        for _ in 0..options.extra_proms {
            extra_proms.push(MockServer::start().await);
        }
        let sim_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a simulator port");
        let sim_origin = format!(
            "http://127.0.0.1:{}",
            sim_listener.local_addr().expect("simulator address").port()
        );
        let mut settings = Settings::load(None).expect("default settings");
        settings.prom.allowed_origins = std::iter::once(prom.uri())
            .chain(extra_proms.iter().map(MockServer::uri))
            .chain([sim_origin])
            .map(|origin| PromOrigin::parse(&origin).expect("a stand-in's origin"))
            .collect();
        settings.database.url = database_url;
        settings.broker.url = broker;
        settings.broker.namespace = namespace.clone();
        settings.http.listen = "127.0.0.1:0".parse().unwrap();
        settings.import.retry_delays = [50, 100, 200].map(Duration::from_millis).to_vec();
        settings.import.max_attempts =
            NonZeroU32::new(options.max_attempts).expect("max_attempts above 0");
        settings.import.concurrency = NonZeroUsize::new(4).unwrap();
        settings.database.max_connections = NonZeroU32::new(10).unwrap();
        settings.prom.timeout = Duration::from_secs(5);
        // Tests send bursts on purpose; the per-shop limit has its own test.
        settings.webhook.rate_per_shop_per_s = NonZeroU32::new(options.webhook_rate_per_shop_per_s);
        // Tests call one stand-in with one token far faster than a real shop would.
        settings.prom.rate_per_s = NonZeroU32::new(100).unwrap();
        settings.outbound.outbox_poll_interval = Duration::from_millis(20);
        settings.outbound.publish_concurrency = NonZeroUsize::new(4).unwrap();
        settings.secrets.key = options.secret_key.map(Into::into);
        settings.secrets.previous = options
            .secret_key_previous
            .into_iter()
            .map(Into::into)
            .collect();
        settings.secrets.keyring().expect("the test's secret keys");

        let backends = Backends::connect(&settings).await.expect("backends");
        promsync::db::migrate(&backends.db)
            .await
            .expect("migrations");
        let account = provision::create_account(&backends.db, "Test", options.currency)
            .await
            .expect("account");
        let shop = provision::create_shop(
            &backends.db,
            &backends.keyring,
            NewShop {
                account_id: account.account_id,
                name: "Test shop".into(),
                prom_url: vet(&backends, &prom.uri()).await,
                prom_token: "prom-token-1".into(),
                language: Language::Uk,
                match_products_by: options.match_products_by,
                client_matching: options.client_matching,
            },
        )
        .await
        .expect("shop");

        let clock = Arc::new(ManualClock::default());
        let app = Application::build_with_clock(&settings, &backends, clock.clone())
            .await
            .expect("application");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());

        let mut test_app = Self {
            topology: Topology::new(&namespace),
            db: backends.db.clone(),
            settings,
            db_name,
            address,
            metrics_address: None,
            http: reqwest::Client::new(),
            prom,
            extra_proms,
            sim_listener: Some(sim_listener),
            backend,
            sqlite_file,
            account_id: account.account_id,
            admin_token: account.admin_token,
            shop,
            clock,
            sim: None,
            backends,
            importers: Vec::new(),
            publishers: Vec::new(),
        };
        for _ in 0..options.importers {
            test_app.start_importer();
        }
        test_app
    }

    pub fn start_importer(&mut self) {
        let token = CancellationToken::new();
        let handle = spawn_importer(
            &self.settings,
            &self.backends,
            self.settings.import.concurrency.get(),
            token.clone(),
        );
        self.importers.push((token, handle));
    }

    /// Starts `promsync publish` (outbox relay + Prom publisher), as production does.
    pub fn start_publisher(&mut self) {
        let token = CancellationToken::new();
        let handle = spawn_publisher(
            &self.settings,
            &self.backends,
            self.settings.outbound.publish_concurrency.get(),
            token.clone(),
        );
        self.publishers.push((token, handle));
    }

    /// Stops every publisher gracefully (in-flight messages settle first).
    pub async fn stop_publishers(&mut self) {
        for (token, handle) in self.publishers.drain(..) {
            token.cancel();
            handle.await.expect("publisher task").expect("publisher");
        }
    }

    /// Kills every publisher at once, as a crash would: no in-flight message is settled
    /// and open transactions roll back.
    pub async fn kill_publishers(&mut self) {
        for (_, handle) in self.publishers.drain(..) {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Starts the Prom simulator in-process (on the port reserved for it, whatever
    /// `config.listen` says) and points the shop at it.
    pub async fn start_simulator(&mut self, config: SimConfig) -> SimHandle {
        let listener = self
            .sim_listener
            .take()
            .expect("one simulator per test app");
        let sim = Simulator::build_on(listener, config).expect("simulator");
        let url = sim.url();
        let handle = sim.handle();
        tokio::spawn(sim.run_until_stopped());
        self.db
            .execute_unprepared(&format!(
                "UPDATE shops SET prom_url = '{url}' WHERE id = {}",
                self.shop.shop_id
            ))
            .await
            .expect("pointing the shop at the simulator");
        self.sim = Some(handle.clone());
        handle
    }

    /// Restarts the test's processes (HTTP, importers, publishers) with changed settings,
    /// as a redeploy would; the database and queues stay. The old HTTP server keeps
    /// running but is no longer addressed.
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Settings)) {
        let importers = self.importers.len();
        let publishers = self.publishers.len();
        self.stop_publishers().await;
        self.stop_importers().await;
        change(&mut self.settings);
        self.settings
            .secrets
            .keyring()
            .expect("the restarted settings");
        self.backends = Backends::connect(&self.settings).await.expect("backends");
        self.db = self.backends.db.clone();
        let app = Application::build_with_clock(&self.settings, &self.backends, self.clock.clone())
            .await
            .expect("application");
        self.address = format!("http://127.0.0.1:{}", app.port());
        self.metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped());
        for _ in 0..importers {
            self.start_importer();
        }
        for _ in 0..publishers {
            self.start_publisher();
        }
    }

    /// `url` as a shop's Prom URL, vetted by the app's policy (a stand-in of the app's
    /// passes).
    pub async fn vet(&self, url: &str) -> VettedOrigin {
        vet(&self.backends, url).await
    }

    /// The keyring the test's processes seal and open shop secrets with.
    pub fn keyring(&self) -> Arc<promsync::keyring::Keyring> {
        self.backends.keyring.clone()
    }

    pub fn broker(&self) -> Arc<dyn Broker> {
        self.backends.broker.clone()
    }

    /// Stops every importer gracefully (in-flight messages settle first).
    pub async fn stop_importers(&mut self) {
        for (token, handle) in self.importers.drain(..) {
            token.cancel();
            handle.await.expect("importer task").expect("importer");
        }
    }

    /// A request to the API (`path` starts with `/`) as the holder of `token`.
    pub fn api(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token)
    }

    /// Sends an API request (with a JSON body when given); returns status and JSON body
    /// (`Value::Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.api(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates another account with an admin and a shop (talking to the same Prom mock).
    pub async fn other_tenant(&self) -> Tenant {
        let account = provision::create_account(&self.db, "Other", "UAH")
            .await
            .expect("account");
        let shop = provision::create_shop(
            &self.db,
            &self.backends.keyring,
            NewShop {
                account_id: account.account_id,
                name: "Other shop".into(),
                prom_url: self.vet(&self.prom.uri()).await,
                prom_token: "prom-token-other".into(),
                language: Language::Uk,
                match_products_by: MatchProductsBy::Sku,
                client_matching: ClientMatching::AlwaysNew,
            },
        )
        .await
        .expect("shop");
        Tenant {
            account_id: account.account_id,
            admin_token: account.admin_token,
            shop,
        }
    }

    /// Starts a poller as `promsync poll` does, with this test's settings and the given
    /// owner id. Cancel the token to stop it gracefully; abort the handle to kill it.
    pub fn spawn_poller(
        &self,
        owner: &str,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let token = CancellationToken::new();
        let poller = promsync::poll::Poller::new(
            self.backends.db.clone(),
            self.backends.broker.clone(),
            self.backends.prom.clone(),
            self.settings.poll.clone(),
            owner.to_owned(),
        );
        (token.clone(), tokio::spawn(poller.run(token)))
    }

    pub fn webhook_url(&self, shop_id: i64) -> String {
        format!("{}/webhooks/prom/{shop_id}", self.address)
    }

    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let key: SigningKey = self.shop.webhook_secret.parse().expect("secret");
        key.sign(msg_id, timestamp, body)
    }

    /// Posts a correctly signed notification with a fresh webhook id.
    pub async fn notify(&self, body: &Value) -> reqwest::Response {
        self.notify_with_id(&format!("msg_{}", uuid::Uuid::new_v4().simple()), body)
            .await
    }

    pub async fn notify_with_id(&self, msg_id: &str, body: &Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let now = Utc::now().timestamp();
        self.http
            .post(self.webhook_url(self.shop.shop_id))
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", self.sign(msg_id, now, &raw))
            .body(raw)
            .send()
            .await
            .expect("request")
    }

    /// Sends a full order and asserts it was accepted.
    pub async fn push_order(&self, order: &Value) {
        let response = self.notify(&json!({ "order": order })).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    }

    /// Messages waiting (not dead) in a lane's work queue.
    pub async fn queue_depth(&self, lane: Lane) -> u32 {
        if self.settings.broker.url.is_none() {
            let sql = format!(
                "SELECT count(*) FROM broker_messages WHERE lane = '{}' AND dead = FALSE",
                lane.as_str()
            );
            return self.count(&sql).await as u32;
        }
        let conn = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        let depth = channel
            .queue_declare(
                self.topology.work_queue(lane).into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(0);
        let _ = conn.close(200, "bye".into()).await;
        depth
    }

    /// Every recorded dead letter of a lane, as `promsync dlq list` shows them.
    pub async fn dead_letters(&self, lane: Lane) -> Vec<OperatorView> {
        promsync::dead_letters::list_lane(&self.db, lane)
            .await
            .expect("dead letters")
    }

    /// Requeues a lane's dead letters (all, or those ids) as `promsync dlq requeue` does.
    pub async fn requeue_dead(&self, lane: Lane, ids: Option<&[String]>) -> u64 {
        promsync::dead_letters::requeue_in_lane(&self.db, self.backends.broker.as_ref(), lane, ids)
            .await
            .expect("requeue")
    }

    /// Event ids held by the replay log, read from its first offset.
    pub async fn log_event_ids(&self, expected: usize) -> Vec<String> {
        if self.settings.broker.url.is_none() {
            use entity::broker_log;
            use sea_orm::{EntityTrait, QueryOrder};
            return broker_log::Entity::find()
                .order_by_asc(broker_log::Column::Id)
                .all(&self.db)
                .await
                .expect("log")
                .into_iter()
                .map(|e| e.message_id)
                .collect();
        }
        use futures::StreamExt;
        use lapin::{
            options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
            types::{AMQPValue, LongString},
        };
        let conn = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .expect("broker");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .basic_qos(100, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString(LongString::from("first".to_owned())),
        );
        let mut consumer = channel
            .basic_consume(
                self.topology.log_stream().into(),
                "log-reader".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .expect("consume the log");
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ids.len() < expected {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let body: Value = serde_json::from_slice(&delivery.data).expect("json");
                    ids.push(body["event_id"].as_str().unwrap_or_default().to_owned());
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                }
                _ => break,
            }
        }
        let _ = conn.close(200, "bye".into()).await;
        ids
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")?;
        row.try_get_by_index::<Option<String>>(0).expect("a text")
    }

    /// Waits until the inbox holds `n` events (each accepted notification settles as one).
    pub async fn wait_for_events(&self, n: i64) {
        eventually(
            &format!("{n} processed events"),
            Duration::from_secs(30),
            || async {
                (self.count("SELECT count(*) FROM inbound_events").await >= n).then_some(())
            },
        )
        .await;
    }

    /// The outcome and detail of the sync-log entry of one event.
    pub async fn outcomes(&self) -> Vec<(promsync::domain::Outcome, Option<String>)> {
        use entity::inbound_events;
        use sea_orm::{EntityTrait, QueryOrder};
        inbound_events::Entity::find()
            .order_by_asc(inbound_events::Column::ProcessedAt)
            .all(&self.db)
            .await
            .expect("events")
            .into_iter()
            .map(|e| (e.outcome, e.detail))
            .collect()
    }

    /// Mounts Prom's answer for `GET /api/v1/products/{id}` (any id not mounted is 404).
    pub async fn prom_product(&self, id: i64, product: Value) {
        Mock::given(method("GET"))
            .and(path_regex(format!("^/api/v1/products/{id}$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "product": product })))
            .mount(&self.prom)
            .await;
    }

    pub async fn prom_products_missing(&self) {
        Mock::given(method("GET"))
            .and(path_regex("^/api/v1/products/"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})))
            .with_priority(200)
            .mount(&self.prom)
            .await;
    }

    pub async fn cleanup(mut self) {
        self.stop_publishers().await;
        self.stop_importers().await;
        let delays = &self.settings.import.retry_delays;
        if self.settings.broker.url.is_some() {
            let _ = delete_topology(&broker_url(), &self.topology, delays).await;
        }
        let _ = self.db.clone().close().await;
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
            return;
        }
        let admin = Database::connect(&admin_database_url())
            .await
            .expect("admin");
        let _ = admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .await;
    }
}

// Helpers the API and UI suites share: statuses, products and orders written directly,
// employees with chosen permissions.

use std::collections::HashMap;

use entity::{order_items, orders, products};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, Set};

/// The account's status ids by kind (`new`, `in_progress`, `done`, `canceled`).
pub async fn statuses(app: &TestApp, token: &str) -> HashMap<String, i64> {
    let (status, body) = app.call(Method::GET, "/api/statuses", token, None).await;
    assert_eq!(status, 200, "{body}");
    body["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

pub async fn product(app: &TestApp, account_id: i64, sku: &str) -> i64 {
    products::ActiveModel {
        account_id: Set(account_id),
        name: Set(format!("Product {sku}")),
        sku: Set(Some(sku.to_owned())),
        prom_id: Set(None),
        description: Set(None),
        unit: Set("pcs".into()),
        category_id: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("product")
    .id
}

/// An imported order written directly (status `new`, one line, not written off).
pub async fn imported_order(
    app: &TestApp,
    account_id: i64,
    shop_id: i64,
    external_id: &str,
) -> i64 {
    let status_id = app
        .count(&format!(
            "SELECT min(id) FROM order_statuses WHERE account_id = {account_id} AND kind = 'new'"
        ))
        .await;
    let now = Utc::now();
    let order = orders::ActiveModel {
        account_id: Set(account_id),
        number: Set(external_id.to_owned()),
        shop_id: Set(Some(shop_id)),
        external_id: Set(Some(external_id.to_owned())),
        status_id: Set(status_id),
        remote_status: Set(Some("pending".into())),
        remote_created_at: Set(Some(now)),
        remote_modified_at: Set(Some(now)),
        last_synced_at: Set(Some(now)),
        last_refresh_at: Set(None),
        client_id: Set(None),
        total: Set(rust_decimal::Decimal::new(24400, 2)),
        currency: Set("UAH".into()),
        written_off_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("order");
    let product_id = product(app, account_id, &format!("SKU-{external_id}")).await;
    order_items::ActiveModel {
        order_id: Set(order.id),
        product_id: Set(product_id),
        position: Set(0),
        name: Set("Шкарпетки".into()),
        sku: Set(Some(format!("SKU-{external_id}"))),
        quantity: Set(rust_decimal::Decimal::new(2, 0)),
        price: Set(rust_decimal::Decimal::new(12200, 2)),
        written_off: Set(false),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .expect("item");
    order.id
}

pub async fn roapp_order(app: &TestApp, token: &str) -> Value {
    let (status, body) = app
        .call(Method::POST, "/api/orders", token, Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn employee(app: &TestApp, permissions: &[&str]) -> String {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/employees",
            &app.admin_token,
            Some(json!({"name": "clerk", "permissions": permissions})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_i64().is_some());
    body["token"].as_str().unwrap().to_owned()
}

/// A Standard Webhooks signature of `body` with `key`: (id, timestamp, signature).
pub fn signed(key: &str, body: &[u8]) -> (String, String, String) {
    let key: SigningKey = key.parse().unwrap();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let now = Utc::now().timestamp();
    let signature = key.sign(&id, now, body);
    (id, now.to_string(), signature)
}

/// Posts a thin notification for `shop_id` signed with `secret`; answers the status.
pub async fn post_webhook(app: &TestApp, shop_id: i64, secret: &str) -> u16 {
    let body = br#"{"order_id": 5}"#;
    let (id, ts, sig) = signed(secret, body);
    app.http
        .post(app.webhook_url(shop_id))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts)
        .header("webhook-signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
