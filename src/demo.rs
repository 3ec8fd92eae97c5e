//! `promsync demo`: tries the whole exchange on a fresh machine with one command.
//!
//! In one process it starts promsync with every role (HTTP, importer, outbox relay + Prom
//! publisher, poller) on the configured backends — a fresh SQLite file in a temporary
//! directory and the embedded broker unless `PROMSYNC_DATABASE_URL`/`PROMSYNC_BROKER_URL`
//! say otherwise — and the Prom simulator beside it. It connects a shop to the simulator,
//! has "buyers" place orders there, delivers them as signed webhooks over real HTTP to
//! promsync's own listener, waits for the importer, changes statuses through the REST API
//! with the admin token, waits for "Prom" to record the `set_status` calls, and prints a
//! summary with everything needed to look around. It then keeps running until
//! Ctrl-C/SIGTERM, or exits at once with `--exit` (tests). promsync's roles and the demo's
//! story (a finite role) run under one `roles::Supervisor`, as `promsync run`'s do: a
//! role that fails stops the demo and names itself.
//!
//! Everything goes through the same public surfaces a user would use (webhooks, `/api`),
//! so a working demo is also an end-to-end smoke test. Every wait is bounded.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::Args;
use promsync_simulator as simulator;
use serde_json::{json, Value};

use crate::{
    config::{Settings, DEFAULT_DATABASE_URL},
    db,
    domain::{ClientMatching, Language, MatchProductsBy},
    ingress::signature::SigningKey,
    prom::origin::PromOrigin,
    provision,
    roles::Supervisor,
    startup::{self, Application, Backends},
};

/// How long the importer may take to apply every pushed order.
const IMPORT_WAIT: Duration = Duration::from_secs(60);
/// How long the publisher may take to deliver the status changes to the simulator.
const PUBLISH_WAIT: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The simulator is local: no need to spread calls as for the real Prom.
const DEMO_PROM_RATE_PER_S: NonZeroU32 = NonZeroU32::new(50).expect("50 > 0");
/// The simulator accepts any token; this one only has to be non-empty.
const DEMO_PROM_TOKEN: &str = "demo-token";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Orders the simulated buyers place and promsync imports.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub orders: u16,
    /// HTTP address of promsync (default: PROMSYNC_LISTEN or 127.0.0.1:8080; port 0 picks
    /// a free one).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Print the summary and exit instead of running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// A status change the demo makes in RO App, and what Prom should be told.
struct Change {
    /// Kind of the account's RO App status to set.
    kind: &'static str,
    /// The Prom status the publisher sends for it.
    prom_status: &'static str,
    /// `delivered` waits for the goods to be written off (ARCHITECTURE.md,
    /// 'Delivered waits for the write-off').
    write_off: bool,
}

const CHANGES: [Change; 3] = [
    Change {
        kind: "in_progress",
        prom_status: "received",
        write_off: false,
    },
    Change {
        kind: "canceled",
        prom_status: "canceled",
        write_off: false,
    },
    Change {
        kind: "done",
        prom_status: "delivered",
        write_off: true,
    },
];

/// What the summary reports.
struct Outcome {
    imported: usize,
    products: usize,
    categories: usize,
    clients: usize,
    /// (Prom order id, Prom status, RO App status name), as the simulator recorded them.
    sent: Vec<(i64, String, String)>,
}

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    // A database of its own unless one is configured: every run starts from empty books,
    // and the user's `promsync.db` is left alone.
    let scratch = if settings.database.url == DEFAULT_DATABASE_URL {
        let dir = std::env::temp_dir().join(format!("promsync-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the demo directory {}", dir.display()))?;
        settings.database.url = format!("sqlite://{}?mode=rwc", dir.join("promsync.db").display());
        Some(dir)
    } else {
        None
    };
    if let Some(listen) = args.listen {
        settings.http.listen = listen;
    }
    settings.prom.rate_per_s = settings.prom.rate_per_s.max(DEMO_PROM_RATE_PER_S);
    let result = run_in(&settings, &args, scratch.as_ref()).await;
    if let Some(dir) = scratch {
        // Best effort: a leftover directory in the temp dir harms nobody.
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn run_in(
    settings: &Settings,
    args: &DemoArgs,
    scratch: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let sim = simulator::Simulator::build(simulator::SimConfig {
        listen: "127.0.0.1:0".into(),
        // Orders are placed after the shop is connected, as a real shop's new orders are
        // (the poller takes only those).
        orders: 0,
        ..Default::default()
    })
    .context("starting the Prom simulator")?;
    let sim_url = sim.url();
    let prom = sim.handle();
    let sim_server = sim.server_handle();
    let sim_task = tokio::spawn(sim.run_until_stopped());

    // The simulator is local (plain http on loopback): its exact origin is allowed, as
    // `PROMSYNC_PROM_ALLOWED_ORIGINS` would, and nothing else is.
    let mut settings = settings.clone();
    settings
        .prom
        .allowed_origins
        .push(PromOrigin::parse(&sim_url).context("the simulator's origin")?);
    let settings = &settings;
    let backends = Backends::connect(settings)
        .await
        .context("connecting the database and the broker")?;
    if !settings.database.is_sqlite() {
        // `connect` migrates only SQLite; a demo must work on a fresh PostgreSQL too.
        db::migrate(&backends.db).await?;
    }

    let account = provision::create_account(&backends.db, "Demo", "UAH")
        .await
        .context("creating the demo account")?;
    let shop = provision::create_shop(
        &backends.db,
        &backends.keyring,
        provision::NewShop {
            account_id: account.account_id,
            name: "Demo shop".into(),
            prom_url: backends
                .prom_origins
                .vet_url(&sim_url)
                .await
                .context("the simulator's origin")?,
            prom_token: DEMO_PROM_TOKEN.into(),
            language: Language::Uk,
            match_products_by: MatchProductsBy::Sku,
            client_matching: ClientMatching::AlwaysNew,
        },
    )
    .await
    .context("connecting the demo shop to the simulator")?;

    let mut roles = Supervisor::new();
    let app = Application::build_with_roles(settings, &backends, roles.health())
        .await
        .context("starting the HTTP server")?;
    let api = Api::new(
        reachable(settings.http.listen, app.port()),
        account.admin_token,
    )?;
    roles.spawn("http", |stop| app.serve(stop));
    roles.spawn("importer", |stop| {
        startup::importer_role(settings, &backends, settings.import.concurrency.get(), stop)
    });
    roles.spawn("publisher", |stop| {
        startup::publisher_role(
            settings,
            &backends,
            settings.outbound.publish_concurrency.get(),
            stop,
        )
    });
    // Imports are idempotent, so the poller finding the pushed orders again is harmless,
    // and it imports orders placed later through the simulator while the user looks around.
    roles.spawn("poller", |stop| {
        startup::poller_role(settings, &backends, stop)
    });
    let orders = args.orders;
    let exit = args.exit;
    let settings = settings.clone();
    let scratch = scratch.cloned();
    roles.spawn_finite("demo", |stop| async move {
        // Ctrl-C is honoured during the waits too, not only after the summary.
        let outcome = tokio::select! {
            outcome = exchange(&api, &prom, shop.shop_id, &shop.webhook_secret, orders) => outcome?,
            () = stop.cancelled() => bail!("interrupted before the demo finished"),
        };
        print!(
            "{}",
            summary(
                &outcome,
                &api,
                shop.shop_id,
                &sim_url,
                &settings,
                scratch.as_ref()
            )
        );
        if !exit {
            println!("promsync keeps running; Ctrl-C stops it.");
            stop.cancelled().await;
        }
        Ok(())
    });
    roles.stop_on_signal();
    let ended = roles.run().await;
    sim_server.stop(true).await;
    let _ = sim_task.await;
    Ok(ended?)
}

/// Orders in, statuses out: the demo's story, told through promsync's public surfaces.
async fn exchange(
    api: &Api,
    prom: &simulator::SimHandle,
    shop_id: i64,
    webhook_secret: &str,
    orders: u16,
) -> anyhow::Result<Outcome> {
    let count = usize::from(orders);
    let key: SigningKey = webhook_secret
        .parse()
        .context("reading the shop's webhook secret")?;
    for _ in 0..count {
        // New orders, so each status change below is a change on Prom as well.
        let order = prom.create_order(Some("pending"));
        api.push(shop_id, &key, &json!({ "order": order }))
            .await
            .with_context(|| format!("delivering the notification of order {}", order["id"]))?;
    }

    let orders_path = format!("/api/orders?shop_id={shop_id}&per_page=200");
    let deadline = Instant::now() + IMPORT_WAIT;
    // `total` counts them all; the page (the newest 200) is enough to pick from.
    let (imported, orders) = loop {
        let list = api.get(&orders_path).await.context("listing orders")?;
        let imported = list["total"].as_u64().unwrap_or(0) as usize;
        if imported >= count {
            break (
                imported,
                list["orders"].as_array().cloned().unwrap_or_default(),
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "only {imported} of {count} orders were imported within {} s; the reasons \
                 are in GET /api/sync-log",
                IMPORT_WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    };

    let statuses = api.get("/api/statuses").await.context("listing statuses")?;
    let status_of = |kind: &str| {
        statuses["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["kind"] == kind)
            .map(|s| (s["id"].as_i64().unwrap_or_default(), s["name"].to_string()))
            .with_context(|| format!("the account has no `{kind}` status"))
    };
    // By Prom id (the order buyers placed them in), so the summary reads naturally.
    let mut orders = orders;
    orders.sort_by_key(|o| {
        o["external_id"]
            .as_str()
            .and_then(|id| id.parse::<i64>().ok())
    });
    let mut expected = Vec::new();
    for (order, change) in orders.iter().zip(CHANGES.iter()) {
        let id = order["id"].as_i64().context("an order without an id")?;
        let prom_id: i64 = order["external_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("an imported order without its Prom id")?;
        let (status_id, status_name) = status_of(change.kind)?;
        let changed = api
            .post(
                &format!("/api/orders/{id}/status"),
                &json!({ "status_id": status_id }),
            )
            .await
            .with_context(|| format!("changing the status of order {id}"))?;
        let mut outbound = changed["outbound"].clone();
        if change.write_off {
            let written_off = api
                .post(&format!("/api/orders/{id}/write-off"), &json!({}))
                .await
                .with_context(|| format!("writing off the goods of order {id}"))?;
            outbound = written_off["outbound"].clone();
        }
        if outbound != "queued" {
            bail!("order {id}: expected its status to be queued for Prom, got {outbound}");
        }
        let status_name = status_name.trim_matches('"').to_owned();
        expected.push((prom_id, change.prom_status.to_owned(), status_name));
    }

    let deadline = Instant::now() + PUBLISH_WAIT;
    let sent = loop {
        let calls = prom.set_status_calls();
        let delivered = |(prom_id, status, _): &&(i64, String, String)| {
            calls.iter().any(|call| {
                let body = call.body.as_ref();
                call.status == 200
                    && body.is_some_and(|b| {
                        b["status"] == status.as_str()
                            && b["ids"]
                                .as_array()
                                .is_some_and(|ids| ids.iter().any(|i| i.as_i64() == Some(*prom_id)))
                    })
            })
        };
        let missing: Vec<String> = expected
            .iter()
            .filter(|e| !delivered(e))
            .map(|(prom_id, status, _)| format!("{prom_id} → {status}"))
            .collect();
        if missing.is_empty() {
            break expected;
        }
        if Instant::now() >= deadline {
            bail!(
                "the Prom simulator did not receive {} within {} s; see GET /api/sync-log",
                missing.join(", "),
                PUBLISH_WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    };

    let len = |list: Value, field: &str| list[field].as_array().map_or(0, Vec::len);
    Ok(Outcome {
        imported,
        products: len(api.get("/api/products").await?, "products"),
        categories: len(api.get("/api/categories").await?, "categories"),
        clients: len(api.get("/api/clients").await?, "clients"),
        sent,
    })
}

fn summary(
    outcome: &Outcome,
    api: &Api,
    shop_id: i64,
    sim_url: &str,
    settings: &Settings,
    scratch: Option<&PathBuf>,
) -> String {
    let base = &api.base;
    let token = &api.token;
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        out,
        "\npromsync demo: Prom (simulated) → promsync → RO App, and back\n"
    );
    let _ = writeln!(
        out,
        "Orders imported: {} (placed on the Prom simulator, delivered as signed webhooks)",
        outcome.imported
    );
    let _ = writeln!(
        out,
        "Created in RO App: {} products, {} categories, {} clients",
        outcome.products, outcome.categories, outcome.clients
    );
    let _ = writeln!(out, "Statuses sent to Prom: {}", outcome.sent.len());
    for (prom_id, status, name) in &outcome.sent {
        let _ = writeln!(
            out,
            "  order {prom_id} → {status:<9} (RO App status \"{name}\")"
        );
    }
    let database = match scratch {
        Some(dir) => format!("{} (removed on exit)", dir.join("promsync.db").display()),
        None => "as configured (PROMSYNC_DATABASE_URL)".to_owned(),
    };
    let broker = if settings.broker.url.is_some() {
        "RabbitMQ (PROMSYNC_BROKER_URL)"
    } else {
        "embedded"
    };
    let _ = writeln!(out, "\nLook around:");
    let _ = writeln!(
        out,
        "  API             {base}  (OpenAPI: {base}/api/openapi.json)"
    );
    let _ = writeln!(out, "  admin token     {token}");
    let _ = writeln!(
        out,
        "  operator UI     {base}/ui  (sign in with the admin token)"
    );
    let _ = writeln!(out, "  shop id         {shop_id}");
    let _ = writeln!(
        out,
        "  Prom simulator  {sim_url}  (see deploy/SIMULATOR.md)"
    );
    let _ = writeln!(out, "  database        {database}; broker: {broker}");
    let _ = writeln!(
        out,
        "\n  curl -H \"Authorization: Bearer {token}\" {base}/api/orders"
    );
    let _ = writeln!(
        out,
        "  curl -H \"Authorization: Bearer {token}\" {base}/api/sync-log"
    );
    let _ = writeln!(
        out,
        "  curl '{sim_url}/_sim/calls?path=/api/v1/orders/set_status'   # what Prom was told"
    );
    let _ = writeln!(
        out,
        "  curl -X POST {sim_url}/_sim/orders -H 'content-type: application/json' \\\n    \
         -d '{{\"status\": \"pending\"}}'   # a buyer places an order; the poller imports it within a minute"
    );
    let _ = writeln!(out);
    out
}

/// Where this process reaches its own listener: a wildcard address is not a destination.
fn reachable(listen: SocketAddr, port: u16) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, port)
}

/// promsync's HTTP surface as a user (and "Prom") calls it.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(addr: SocketAddr, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building an HTTP client")?;
        Ok(Self {
            http,
            base: format!("http://{addr}"),
            token,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(path, request).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(path, request).await
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("reading the answer of {path}"))?;
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Delivers a notification as Prom's relay would: Standard Webhooks, signed with the
    /// shop's secret.
    async fn push(&self, shop_id: i64, key: &SigningKey, body: &Value) -> anyhow::Result<()> {
        let raw = serde_json::to_vec(body).context("encoding the notification")?;
        let msg_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp();
        let path = format!("/webhooks/prom/{shop_id}");
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", key.sign(&msg_id, now, &raw))
            .body(raw)
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::ACCEPTED {
            let text = response.text().await.unwrap_or_default();
            bail!("{path} answered {status}: {text}");
        }
        Ok(())
    }
}
