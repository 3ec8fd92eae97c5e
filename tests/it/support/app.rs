//! `TestApp`: one test's promsync, started through [`TestApp::builder`] exactly as
//! production starts it (the real `Application`, importers and publishers), with its own
//! database, broker namespace and Prom stand-ins; and removed again when dropped.
//!
//! The drop is the cleanup guarantee: it runs when a test passes, fails an assertion or
//! panics, so no test leaves a database or queues behind. It needs no async context:
//! it stops the test's tasks, then drops the database and deletes the namespace's queues
//! and exchanges from a thread of its own with a small runtime, and waits for it.

use std::{
    num::{NonZeroU32, NonZeroUsize},
    sync::Arc,
    time::Duration,
};

use promsync::{
    broker::{rabbitmq::delete_topology, Broker, Topology},
    clock::ManualClock,
    config::Settings,
    domain::{ClientMatching, Language, MatchProductsBy},
    import::batch::PausePoint,
    prom::origin::{PromOrigin, VettedOrigin},
    provision::{self, CreatedShop, NewShop},
    startup::{spawn_importer, spawn_importer_pausing, spawn_publisher, Application, Backends},
};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

use super::{
    db::TestDatabase,
    logs::{self, LogCapture},
    services::{backend, broker_url, ensure_broker, Backend},
};

/// A role's task and the token that stops it gracefully.
type Role = (CancellationToken, JoinHandle<anyhow::Result<()>>);

/// How a test wants its app: [`TestApp::builder`], then `spawn`.
pub struct TestAppBuilder {
    importers: usize,
    match_products_by: MatchProductsBy,
    client_matching: ClientMatching,
    currency: &'static str,
    broker_url: Option<String>,
    max_attempts: u32,
    webhook_rate_per_shop_per_s: u32,
    secret_key: Option<String>,
    extra_proms: usize,
    prom_products_missing: bool,
    capture_logs: bool,
    publish_timeout: Option<Duration>,
}

impl TestAppBuilder {
    /// How many importers start with the app (default one; zero leaves messages queued
    /// until the test starts one).
    pub fn importers(mut self, n: usize) -> Self {
        self.importers = n;
        self
    }

    pub fn match_products_by(mut self, by: MatchProductsBy) -> Self {
        self.match_products_by = by;
        self
    }

    pub fn client_matching(mut self, matching: ClientMatching) -> Self {
        self.client_matching = matching;
        self
    }

    /// The test account's currency (default UAH).
    pub fn currency(mut self, currency: &'static str) -> Self {
        self.currency = currency;
        self
    }

    /// Another broker than the suite's (a proxy, or an address where nothing listens).
    pub fn broker_url(mut self, url: impl Into<String>) -> Self {
        self.broker_url = Some(url.into());
        self
    }

    /// Import attempts before a message is dead-lettered (default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Per-shop webhook limit of the test's ingress (default none).
    pub fn webhook_rate_per_shop_per_s(mut self, rate: u32) -> Self {
        self.webhook_rate_per_shop_per_s = rate;
        self
    }

    /// `PROMSYNC_SECRET_KEY` of the test's processes (default none: secrets stored as
    /// plaintext).
    pub fn secret_key(mut self, key: &str) -> Self {
        self.secret_key = Some(key.to_owned());
        self
    }

    /// More Prom stand-ins (wiremock), their origins allowed like `prom`'s, for tests
    /// that connect more shops.
    pub fn extra_proms(mut self, n: usize) -> Self {
        self.extra_proms = n;
        self
    }

    /// Every Prom product lookup answered 404, so imports never wait on a product fetch.
    pub fn prom_products_missing(mut self) -> Self {
        self.prom_products_missing = true;
        self
    }

    /// Captures every log line while the app lives (see `logs`), for tests that check
    /// nothing secret is logged.
    pub fn capture_logs(mut self) -> Self {
        self.capture_logs = true;
        self
    }

    /// `PROMSYNC_PUBLISH_TIMEOUT_MS` of the test's processes (default: the default).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = Some(timeout);
        self
    }

    pub async fn spawn(self) -> TestApp {
        logs::init();
        let logs = self.capture_logs.then(logs::capture_logs);
        let backend = backend();
        let broker = match (&self.broker_url, backend) {
            (Some(url), _) => Some(url.clone()),
            (None, Backend::Embedded) => None,
            (None, Backend::RabbitMq) => {
                let url = broker_url();
                ensure_broker(&url).await;
                Some(url)
            }
        };
        let database = TestDatabase::create(backend).await;
        let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
        // The stand-ins are plain http on loopback: the app allows exactly their origins,
        // as a deployment lists its simulator in PROMSYNC_PROM_ALLOWED_ORIGINS.
        let prom = MockServer::start().await;
        let mut extra_proms = Vec::new();
        for _ in 0..self.extra_proms {
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
        settings.database.url = database.url();
        settings.broker.url = broker;
        settings.broker.namespace = namespace.clone();
        if let Some(timeout) = self.publish_timeout {
            settings.broker.publish_timeout = timeout;
        }
        settings.http.listen = "127.0.0.1:0".parse().expect("a listen address");
        settings.import.retry_delays = [50, 100, 200].map(Duration::from_millis).to_vec();
        settings.import.max_attempts =
            NonZeroU32::new(self.max_attempts).expect("max_attempts above 0");
        settings.import.concurrency = NonZeroUsize::new(4).expect("non-zero");
        settings.database.max_connections = NonZeroU32::new(10).expect("non-zero");
        settings.prom.timeout = Duration::from_secs(5);
        // Tests send bursts on purpose; the per-shop limit has its own test.
        settings.webhook.rate_per_shop_per_s = NonZeroU32::new(self.webhook_rate_per_shop_per_s);
        // Tests call one stand-in with one token far faster than a real shop would.
        settings.prom.rate_per_s = NonZeroU32::new(100).expect("non-zero");
        settings.outbound.outbox_poll_interval = Duration::from_millis(20);
        settings.outbound.publish_concurrency = NonZeroUsize::new(4).expect("non-zero");
        settings.secrets.key = self.secret_key.map(Into::into);
        settings.secrets.previous = Vec::new();
        settings.secrets.keyring().expect("the test's secret keys");

        let backends = Backends::connect(&settings).await.expect("backends");
        // The copy of the template is migrated already: this only checks it, as
        // `promsync migrate` on an up-to-date database does.
        promsync::db::migrate(&backends.db)
            .await
            .expect("migrations");
        let account = provision::create_account(&backends.db, "Test", self.currency)
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
                match_products_by: self.match_products_by,
                client_matching: self.client_matching,
            },
        )
        .await
        .expect("shop");

        let mut app = TestApp {
            topology: Topology::new(&namespace),
            db: backends.db.clone(),
            settings,
            address: String::new(),
            metrics_address: None,
            http: reqwest::Client::new(),
            prom,
            extra_proms,
            sim_listener: Some(sim_listener),
            backend,
            database: Some(database),
            account_id: account.account_id,
            admin_token: account.admin_token,
            shop,
            clock: Arc::new(ManualClock::default()),
            backends,
            servers: Vec::new(),
            importers: Vec::new(),
            publishers: Vec::new(),
            _logs: logs,
        };
        app.start_server().await;
        if self.prom_products_missing {
            app.prom_products_missing().await;
        }
        for _ in 0..self.importers {
            app.start_importer();
        }
        app
    }
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
    pub address: String,
    /// `/metrics` on its own listener, when the settings ask for one.
    pub metrics_address: Option<String>,
    pub http: reqwest::Client,
    pub prom: MockServer,
    /// `TestAppBuilder::extra_proms` more stand-ins, each an allowed Prom origin.
    pub extra_proms: Vec<MockServer>,
    /// Where `start_simulator` will listen, bound at spawn so that its origin could be
    /// allowed before the app started.
    pub(super) sim_listener: Option<std::net::TcpListener>,
    pub backend: Backend,
    /// Taken by the drop, which removes it.
    database: Option<TestDatabase>,
    pub account_id: i64,
    /// The token of the account's admin (every permission), as `account create` prints it.
    pub admin_token: String,
    pub shop: CreatedShop,
    pub topology: Topology,
    /// The time API handlers see; tests advance it instead of sleeping.
    pub clock: Arc<ManualClock>,
    backends: Backends,
    /// Every HTTP server started (a restart leaves the old one running, unaddressed).
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    importers: Vec<Role>,
    publishers: Vec<Role>,
    _logs: Option<LogCapture>,
}

async fn vet(backends: &Backends, url: &str) -> VettedOrigin {
    backends
        .prom_origins
        .vet_url(url)
        .await
        .unwrap_or_else(|e| panic!("{url} as a Prom URL: {e}"))
}

impl TestApp {
    /// The test database's name (PostgreSQL; empty on SQLite).
    pub fn db_name(&self) -> &str {
        match &self.database {
            Some(TestDatabase::Postgres { name, .. }) => name,
            _ => "",
        }
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            importers: 1,
            match_products_by: MatchProductsBy::Sku,
            client_matching: ClientMatching::AlwaysNew,
            currency: "UAH",
            broker_url: None,
            max_attempts: 3,
            webhook_rate_per_shop_per_s: 0,
            secret_key: None,
            extra_proms: 0,
            prom_products_missing: false,
            capture_logs: false,
            publish_timeout: None,
        }
    }

    /// Starts the HTTP server (API, UI, webhooks) as `promsync serve` does, and addresses
    /// it from now on.
    async fn start_server(&mut self) {
        let app = Application::build_with_clock(&self.settings, &self.backends, self.clock.clone())
            .await
            .expect("application");
        self.address = format!("http://127.0.0.1:{}", app.port());
        self.metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        self.servers.push(tokio::spawn(app.run_until_stopped()));
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

    /// Starts an importer whose every batch stops after reading its orders, until the
    /// test releases it through the returned pause point (to force a race).
    pub fn start_importer_pausing(&mut self) -> Arc<PausePoint> {
        let token = CancellationToken::new();
        let pause = Arc::new(PausePoint::default());
        let handle = spawn_importer_pausing(
            &self.settings,
            &self.backends,
            self.settings.import.concurrency.get(),
            token.clone(),
            pause.clone(),
        );
        self.importers.push((token, handle));
        pause
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

    /// Stops every importer gracefully (in-flight messages settle first).
    pub async fn stop_importers(&mut self) {
        for (token, handle) in self.importers.drain(..) {
            token.cancel();
            handle.await.expect("importer task").expect("importer");
        }
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
        self.start_server().await;
        for _ in 0..importers {
            self.start_importer();
        }
        for _ in 0..publishers {
            self.start_publisher();
        }
    }

    /// Starts a poller as `promsync poll` does, with this test's settings and the given
    /// owner id. Cancel the token to stop it gracefully; abort the handle to kill it.
    pub fn spawn_poller(&self, owner: &str) -> Role {
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

    /// `url` as a shop's Prom URL, vetted by the app's policy (a stand-in of the app's
    /// passes).
    pub async fn vet(&self, url: &str) -> VettedOrigin {
        vet(&self.backends, url).await
    }

    /// The keyring the test's processes seal and open shop secrets with.
    /// `PROMSYNC_PROM_ALLOWED_ORIGINS` for a `promsync` process started beside the app: the
    /// Prom stand-ins are plain http on loopback, allowed as the in-process app allows them.
    pub fn prom_allowed_origins(&self) -> String {
        self.settings
            .prom
            .allowed_origins
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn keyring(&self) -> Arc<promsync::keyring::Keyring> {
        self.backends.keyring.clone()
    }

    pub fn broker(&self) -> Arc<dyn Broker> {
        self.backends.broker.clone()
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
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Nothing of the test's may touch the database or the queues while they go; the
        // aborted tasks end when the test's runtime next runs them (or shuts down), and
        // the forced drop below closes whatever connections they still hold.
        for (token, handle) in self.importers.drain(..).chain(self.publishers.drain(..)) {
            token.cancel();
            handle.abort();
        }
        for server in self.servers.drain(..) {
            server.abort();
        }
        let Some(database) = self.database.take() else {
            return;
        };
        // A test that pointed the app at another broker (a proxy, a dead address) still
        // declared its queues on the suite's, if anywhere.
        let topology = self.settings.broker.url.is_some().then(|| {
            (
                self.topology.clone(),
                self.settings.import.retry_delays.clone(),
            )
        });
        // The test's own runtime may be the one blocked in this drop (a current-thread
        // runtime always is): the cleanup gets a thread and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async {
                if let Some((topology, delays)) = topology {
                    if let Err(e) = delete_topology(&broker_url(), &topology, &delays).await {
                        eprintln!("test cleanup: deleting the broker namespace: {e}");
                    }
                }
                database.remove().await;
            });
        });
        // A panic here, during a failing test's unwinding, would abort the whole binary.
        if cleanup.join().is_err() {
            eprintln!("test cleanup: the cleanup thread panicked");
        }
    }
}
