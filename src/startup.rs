//! Wiring: connects the backends once and builds the roles (`roles::Supervisor` runs
//! them), among them the HTTP server, which mounts the routes of `ingress`, `api` and
//! `ui` over one `http::AppState`. `Application` binds its listener before anything else (port 0 works, tests read
//! `port()`), and tests start the same `Application` and `Importer` production runs.

use std::{future::Future, net::TcpListener, sync::Arc, time::Duration};

use actix_web::{dev::Server, middleware, web, App, HttpResponse, HttpServer};
use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::{
    api,
    broker::{
        dead_letters::Recorder, embedded::EmbeddedBroker, rabbitmq::RabbitBroker, Broker, Lane,
    },
    clock::{Clock, SystemClock},
    config::Settings,
    db,
    http::AppState,
    import::{
        batch::{BatchSettings, PausePoint},
        Importer,
    },
    ingress::{self, IngressState},
    keyring::Keyring,
    outbound::{publisher::Publisher, relay::Relay},
    poll::{self, Poller},
    prom::{client::PromClient, origin::OriginPolicy},
    roles::RoleHealth,
    service::Services,
    ui,
};

/// How long an idle HTTP connection stays open. Longer than the idle timeouts of the
/// clients and proxies in front (load balancers' 60 s, HTTP client pools' 30–90 s), so
/// that they, not the server, close an idle connection: a server closing it first races
/// a request the client is just sending on it, which then fails with no answer at all
/// (actix's default of 5 s made a chaos run see two such failures among 9,000 requests).
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// The database, broker and Prom client every role works over.
#[derive(Clone)]
pub struct Backends {
    pub db: DatabaseConnection,
    pub broker: Arc<dyn Broker>,
    /// The process's one Prom client: its per-token throttle only works if every role
    /// (importer, poller, publisher) calls Prom through it.
    pub prom: PromClient,
    /// Encrypts and opens shops' secrets at rest; the Prom client holds the same one.
    pub keyring: Arc<Keyring>,
    /// Where shops' Prom calls may go: checked when a URL is saved and by the Prom
    /// client at every call.
    pub prom_origins: Arc<OriginPolicy>,
}

impl Backends {
    /// Connects to the configured database and broker. The broker connects lazily (and
    /// reconnects by itself), so a broker that is down does not stop a role from starting.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let keyring = keyring(settings)?;
        let db = db::connect_ready(settings).await?;
        let broker: Arc<dyn Broker> = match &settings.broker.url {
            Some(url) => Arc::new(RabbitBroker::new(url, settings)),
            None => {
                tracing::info!("no PROMSYNC_BROKER_URL: using the embedded broker");
                Arc::new(EmbeddedBroker::new(db.clone(), settings))
            }
        };
        let prom_origins = settings.prom.origin_policy();
        let prom = PromClient::try_new(settings.prom.timeout, prom_origins.clone())
            .context("building the Prom HTTP client")?
            .with_rate(settings.prom.rate_per_s)
            .with_keyring(keyring.clone())
            .with_observer(crate::metrics::prom_call);
        Ok(Self {
            db,
            broker,
            prom,
            keyring,
            prom_origins: Arc::new(prom_origins),
        })
    }
}

/// The process's keyring, from the validated settings; says once whether shop secrets
/// are encrypted (by key id, never the key).
pub fn keyring(settings: &Settings) -> anyhow::Result<Arc<Keyring>> {
    let keyring = settings.secrets.keyring()?;
    match keyring.current_id() {
        Some(key_id) => tracing::info!(%key_id, "shop secrets are encrypted at rest"),
        None => tracing::warn!(
            "PROMSYNC_SECRET_KEY is not set: shops' Prom tokens and webhook secrets are \
             stored unencrypted"
        ),
    }
    Ok(Arc::new(keyring))
}

pub struct Application {
    port: u16,
    server: Server,
    /// Warmed up while the server runs (see `run_until_stopped`).
    broker: Arc<dyn Broker>,
    /// `/metrics` on its own listener, when `PROMSYNC_METRICS_LISTEN` asks for one.
    metrics: Option<(u16, Server)>,
}

impl Application {
    pub async fn build(settings: &Settings, backends: &Backends) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, backends, Arc::new(SystemClock)).await
    }

    /// Like `build`, with the time source handlers use (tests move it instead of sleeping).
    pub async fn build_with_clock(
        settings: &Settings,
        backends: &Backends,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::build_with(settings, backends, clock, RoleHealth::default()).await
    }

    /// Like `build`, with `/readyz` reporting the roles a supervisor keeps in `roles`.
    pub async fn build_with_roles(
        settings: &Settings,
        backends: &Backends,
        roles: RoleHealth,
    ) -> anyhow::Result<Self> {
        Self::build_with(settings, backends, Arc::new(SystemClock), roles).await
    }

    async fn build_with(
        settings: &Settings,
        backends: &Backends,
        clock: Arc<dyn Clock>,
        roles: RoleHealth,
    ) -> anyhow::Result<Self> {
        crate::metrics::init();
        let listener = TcpListener::bind(settings.http.listen)
            .with_context(|| format!("binding {}", settings.http.listen))?;
        let port = listener.local_addr()?.port();
        let state = app_state(settings, backends, clock, roles);
        let ingress_state = web::Data::new(IngressState::new(
            backends.keyring.clone(),
            settings.webhook.rate_per_shop_per_s,
        ));
        let metrics_apart = settings.http.metrics_listen;
        // One set of store gauges per installation, whichever listener serves them.
        let gauges = web::Data::new(crate::metrics::StoreGauges::new());
        let main_state = state.clone();
        let main_gauges = gauges.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                // Innermost, so a panic still passes through the request id and the log.
                .wrap(middleware::from_fn(crate::error::catch_panics))
                .wrap(middleware::from_fn(api::metrics::count_webhook_answers))
                .wrap(middleware::from_fn(echo_request_id))
                .wrap(TracingLogger::default())
                .app_data(main_state.clone())
                .app_data(main_gauges.clone())
                .app_data(ingress_state.clone())
                .configure(ingress::routes)
                .configure(api::routes)
                .configure(|cfg| {
                    if metrics_apart.is_none() {
                        api::metrics_routes(cfg);
                    }
                })
                .configure(ui::routes)
                // Unknown paths (and known ones with another method) answer the uniform
                // JSON error, not actix's empty 404.
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(crate::error::ApiError::NotFound)
                }))
        });
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers.get());
        }
        let server = server
            .keep_alive(KEEP_ALIVE)
            .listen(listener)?
            .shutdown_timeout(10)
            // Signals are ours (`stop_on_signal`): every role shuts down the same way.
            .disable_signals()
            .run();
        tracing::info!(port, "HTTP listening");
        let metrics = match metrics_apart {
            Some(addr) => Some(metrics_server(addr, state, gauges)?),
            None => None,
        };
        Ok(Self {
            port,
            server,
            broker: backends.broker.clone(),
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from the same process (`promsync demo --exit`), where no signal
    /// comes.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The port of the separate metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves until the main server stops; the metrics listener stops with it. The
    /// broker's publishing link is opened meanwhile, right away rather than by the first
    /// webhook (`/readyz` answers 503 until it is up); a server that stops first stops
    /// the trying too.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let broker = self.broker;
        let server = self.server;
        let served = async move {
            let Some((_, metrics)) = self.metrics else {
                return server.await;
            };
            let metrics_handle = metrics.handle();
            let metrics = tokio::spawn(metrics);
            let served = server.await;
            metrics_handle.stop(true).await;
            let _ = metrics.await;
            served
        };
        tokio::pin!(served);
        tokio::select! {
            served = &mut served => return served,
            () = broker.warm_up() => {}
        }
        served.await
    }

    /// The HTTP role: serves until `shutdown` fires, then stops gracefully (in-flight
    /// requests finish). A server that stops by itself returns early, which the
    /// supervisor treats as a failure.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        serve_until(handle, self.run_until_stopped(), shutdown)
            .await
            .context("HTTP server")
    }
}

/// Runs `served` until `shutdown` fires, then stops its server gracefully (in-flight
/// requests finish). A server that stops by itself returns early.
async fn serve_until(
    handle: actix_web::dev::ServerHandle,
    served: impl Future<Output = std::io::Result<()>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tokio::pin!(served);
    tokio::select! {
        result = &mut served => return result,
        () = shutdown.cancelled() => {}
    }
    // The server's own future carries out the stop command: poll both together.
    let ((), served) = tokio::join!(handle.stop(true), served);
    served
}

fn app_state(
    settings: &Settings,
    backends: &Backends,
    clock: Arc<dyn Clock>,
    roles: RoleHealth,
) -> web::Data<AppState> {
    web::Data::new(AppState {
        services: Services {
            db: backends.db.clone(),
            broker: backends.broker.clone(),
            keyring: backends.keyring.clone(),
            prom_origins: backends.prom_origins.clone(),
            prom: backends.prom.clone(),
            clock,
        },
        settings: Arc::new(settings.clone()),
        roles,
    })
}

/// A server of `/metrics` alone on `addr`.
fn metrics_server(
    addr: std::net::SocketAddr,
    state: web::Data<AppState>,
    gauges: web::Data<crate::metrics::StoreGauges>,
) -> anyhow::Result<(u16, Server)> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("binding the metrics listener {addr}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(crate::error::catch_panics))
            .app_data(state.clone())
            .app_data(gauges.clone())
            .configure(api::metrics_routes)
    })
    .workers(1)
    .keep_alive(KEEP_ALIVE)
    .listen(listener)?
    .disable_signals()
    .run();
    tracing::info!(port, "metrics listening");
    Ok((port, server))
}

/// `/metrics` for a process without the HTTP role (`promsync import`, `poll`, `publish`)
/// when `PROMSYNC_METRICS_LISTEN` gives it an address: the import lag, the outbound lag
/// and the Prom calls are measured in those processes, and only they can tell.
pub struct MetricsServer {
    port: u16,
    server: Server,
}

impl MetricsServer {
    /// Binds the metrics listener, if the settings ask for one.
    pub fn build(
        settings: &Settings,
        backends: &Backends,
        roles: RoleHealth,
    ) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.http.metrics_listen else {
            return Ok(None);
        };
        crate::metrics::init();
        let state = app_state(settings, backends, Arc::new(SystemClock), roles);
        let gauges = web::Data::new(crate::metrics::StoreGauges::new());
        let (port, server) = metrics_server(addr, state, gauges)?;
        Ok(Some(Self { port, server }))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` fires.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        serve_until(self.server.handle(), self.server, shutdown)
            .await
            .context("metrics server")
    }
}

/// Returns the request id (assigned by `TracingLogger`, present in every log line of the
/// request) to the caller, so a user's report can be matched to the logs.
async fn echo_request_id(
    req: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let request_id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(id) = request_id {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id.to_string()) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                value,
            );
        }
    }
    Ok(response)
}

/// The importer role, with the inbound lane's dead-letter drainer beside it: both stop
/// taking messages when `shutdown` fires, and the role returns once their in-flight
/// messages are settled.
pub fn importer_role(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    importer_role_pausing(settings, backends, concurrency, shutdown, None)
}

fn importer_role_pausing(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
    pause: Option<Arc<PausePoint>>,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    let importer = Arc::new(Importer::with_pause(
        backends.db.clone(),
        backends.prom.clone(),
        BatchSettings::new(&settings.import, settings.database.is_sqlite(), concurrency),
        pause,
    ));
    let broker = backends.broker.clone();
    let recorder = Arc::new(Recorder::new(backends.db.clone()));
    async move {
        // Before consuming, so the first messages find their shops cached.
        match importer.warm_up().await {
            Ok(warmed) => tracing::info!(
                shops = warmed.shops,
                connections = warmed.connections,
                "importer warmed up"
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "importer warm-up failed; starting cold"
            ),
        }
        let (consumed, drained) = tokio::join!(
            broker.consume_inbound(concurrency, importer, shutdown.clone()),
            broker.drain_dead(Lane::Inbound, recorder, shutdown),
        );
        drained.context("inbound dead-letter drainer")?;
        consumed
    }
}

/// Starts the importer role as a task (tests run several beside one `Application`).
pub fn spawn_importer(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(importer_role(settings, backends, concurrency, shutdown))
}

/// Starts the importer role as a task whose batches stop at `pause` after reading their
/// orders (tests force races with it).
#[doc(hidden)]
pub fn spawn_importer_pausing(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
    pause: Arc<PausePoint>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(importer_role_pausing(
        settings,
        backends,
        concurrency,
        shutdown,
        Some(pause),
    ))
}

/// The `promsync publish` role: the outbox relay, the Prom publisher with `concurrency`
/// messages in flight, and the outbound lane's dead-letter drainer. On `shutdown` the
/// relay ends its round, the publisher and the drainer stop taking messages and finish
/// the in-flight ones; the role returns after all three.
pub fn publisher_role(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    let relay = Relay::new(backends.db.clone(), backends.broker.clone(), settings);
    let publisher = Arc::new(Publisher::new(
        backends.db.clone(),
        backends.prom.clone(),
        settings,
    ));
    let broker = backends.broker.clone();
    let recorder = Arc::new(Recorder::new(backends.db.clone()));
    // One role for all three, so they live and die together.
    async move {
        let (relayed, consumed, drained) = tokio::join!(
            relay.run(shutdown.clone()),
            broker.consume(Lane::Outbound, concurrency, publisher, shutdown.clone()),
            broker.drain_dead(Lane::Outbound, recorder, shutdown),
        );
        relayed.context("outbox relay")?;
        drained.context("outbound dead-letter drainer")?;
        consumed.context("Prom publisher")
    }
}

/// Starts the publisher role as a task.
pub fn spawn_publisher(
    settings: &Settings,
    backends: &Backends,
    concurrency: usize,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(publisher_role(settings, backends, concurrency, shutdown))
}

/// The poller role; when `shutdown` fires it finishes the pages it is publishing,
/// releases its leases and returns.
pub fn poller_role(
    settings: &Settings,
    backends: &Backends,
    shutdown: CancellationToken,
) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
    let poller = Poller::new(
        backends.db.clone(),
        backends.broker.clone(),
        backends.prom.clone(),
        settings.poll.clone(),
        poll::new_owner_id(),
    );
    poller.run(shutdown)
}

/// Starts the poller role as a task.
pub fn spawn_poller(
    settings: &Settings,
    backends: &Backends,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(poller_role(settings, backends, shutdown))
}
