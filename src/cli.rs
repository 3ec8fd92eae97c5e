//! The command line (ARCHITECTURE.md, 'Roles and how each scales') and what each subcommand
//! runs. `main.rs` only parses, sets up telemetry and hands over here. The long-running
//! subcommands are sets of roles under one `roles::Supervisor`: `run` is every role,
//! `serve`, `import`, `poll` and `publish` one each.

mod progress;

use std::{num::NonZeroUsize, path::PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use promsync_simulator as simulator;

use crate::{
    broker::dead_letters,
    broker::{Lane, ReplayRequest},
    config::Settings,
    db, demo,
    domain::{ClientMatching, Language, MatchProductsBy},
    keyring,
    prom::ids::ShopId,
    provision,
    roles::Supervisor,
    startup::{self, Application, Backends},
};

#[derive(Debug, Parser)]
#[command(
    name = "promsync",
    version,
    about = "Order exchange between Prom.ua and RO App"
)]
pub struct Cli {
    /// Optional TOML file with settings; PROMSYNC_* environment variables win over it.
    #[arg(long, global = true, env = "PROMSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process: HTTP (webhooks + API), the importer, the poller, and
    /// the outbox relay with the Prom publisher.
    Run(ImportArgs),
    /// HTTP only: webhook ingress, RO App API and probes.
    Serve,
    /// The importer: consumes notifications and applies them to the database.
    Import(ImportArgs),
    /// The outbox relay and the Prom publisher: RO App status changes to Prom.
    Publish(PublishArgs),
    /// The poller: sweeps every enabled shop's Prom orders into the inbound lane.
    Poll,
    /// Applies database migrations.
    Migrate,
    /// Feeds logged notifications from a point in time back to the importers.
    Replay(ReplayArgs),
    /// Dead letters: list, requeue, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Accounts (tenants).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Connected Prom shops.
    #[command(subcommand)]
    Shop(ShopCommand),
    /// Shops' Prom tokens and webhook secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// A Prom API stand-in for demos, tests and benchmarks (see deploy/SIMULATOR.md).
    SimulateProm(SimulateArgs),
    /// Tries everything on a fresh machine: promsync and the Prom simulator in one
    /// process, orders imported and statuses sent back, then a summary.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Status changes sent to Prom at once by this process (default:
    /// publish_concurrency setting).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to serve the Prom API on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Orders generated at start.
    #[arg(long, default_value_t = 50)]
    pub orders: usize,
    /// Seed of the generated shop (the same seed gives the same orders).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Accepted Bearer token (repeatable); none given accepts any token.
    #[arg(long = "token")]
    pub tokens: Vec<String>,
    /// Share of API calls answered 429 (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub rate_429: f64,
    /// Share of API calls answered 500/502/503 (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub rate_5xx: f64,
    /// Retry-After of injected 429s, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_s: u64,
    /// Latency added to every API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Orders per `orders/list` page at most, whatever `limit` asks (Prom documents no cap).
    #[arg(long)]
    pub max_page: Option<usize>,
    /// Push signed notifications of new and changed orders to this promsync webhook URL.
    #[arg(long, requires = "push_secret")]
    pub push_url: Option<String>,
    /// The shop's webhook secret (whsec_…) used to sign pushes.
    #[arg(long, env = "PROMSYNC_SIM_PUSH_SECRET", hide_env_values = true)]
    pub push_secret: Option<String>,
    /// Notifications pushed per second.
    #[arg(long, default_value_t = 1.0)]
    pub push_rate: f64,
    /// Stop pushing after this many notifications.
    #[arg(long)]
    pub push_count: Option<u64>,
    /// Push thin notifications ({"order_id"}) instead of full orders.
    #[arg(long)]
    pub push_thin: bool,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// A status of the seller's own, `ID=TITLE` (repeatable); none given: the
    /// simulator's two default ones.
    #[arg(long = "custom-status", value_parser = parse_custom_status)]
    pub custom_statuses: Vec<(i64, String)>,
}

/// `137639=Очікує оплату`: a positive id and a non-empty title.
fn parse_custom_status(s: &str) -> Result<(i64, String), String> {
    let (id, title) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not ID=TITLE"))?;
    let id = id
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("`{id}` is not a positive status id"))?;
    let title = title.trim();
    if title.is_empty() {
        return Err("a custom status needs a title".into());
    }
    Ok((id, title.to_owned()))
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Messages worked on at once by this process (default: import_concurrency setting).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Start of the window (RFC 3339, e.g. 2026-11-28T10:00:00Z).
    #[arg(long)]
    pub since: DateTime<Utc>,
    /// End of the window, inclusive, to the stored precision (RFC 3339, fractions of a
    /// second allowed; default: the end of the log when the replay starts).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// Only this shop's notifications.
    #[arg(long)]
    pub shop: Option<i64>,
    /// Re-apply events the importers already applied (orders still only move forward).
    #[arg(long)]
    pub force: bool,
    /// Re-fed notifications awaiting the broker's confirm at once (RabbitMQ), or
    /// re-fed per transaction (embedded).
    #[arg(long, default_value_t = ReplayRequest::DEFAULT_IN_FLIGHT, value_parser = in_flight)]
    pub in_flight: NonZeroUsize,
}

/// `--in-flight`: 1 to 10,000 (more only costs memory, and the prefetch caps at 65,535).
fn in_flight(text: &str) -> Result<NonZeroUsize, String> {
    text.parse::<NonZeroUsize>()
        .ok()
        .filter(|n| n.get() <= 10_000)
        .ok_or_else(|| format!("{text:?}: expected a number from 1 to 10000"))
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Lists every account's dead letters: id, shop, order, attempts, last error, then
    /// lane, message id, account and time of death (JSON lines).
    List {
        /// `inbound` (imports) or `outbound` (the Prom publisher).
        #[arg(long, default_value = "inbound")]
        queue: Lane,
    },
    /// Sends dead letters back to their queue with a fresh attempt count.
    Requeue {
        #[arg(long, default_value = "inbound")]
        queue: Lane,
        /// Dead-letter ids as `dlq list` shows them, or message ids (repeatable).
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Deletes every dead letter of a queue.
    Purge {
        #[arg(long, default_value = "inbound")]
        queue: Lane,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypts every shop's secrets under PROMSYNC_SECRET_KEY (plaintext ones too);
    /// safe while promsync runs, and idempotent. Prints a JSON summary.
    Rotate {
        /// Shops read and rewritten per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Creates an account with default statuses and an admin; prints its id and token.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "UAH")]
        currency: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShopCommand {
    /// Connects a Prom shop; prints its id and webhook secret.
    Create {
        #[arg(long)]
        account: i64,
        #[arg(long)]
        name: String,
        /// Prom origin (https, public addresses, or one PROMSYNC_PROM_ALLOWED_ORIGINS
        /// lists); promsync appends /api/v1/….
        #[arg(long, default_value = "https://my.prom.ua")]
        prom_url: String,
        #[arg(long)]
        prom_token: String,
        #[arg(long, default_value = "uk")]
        language: Language,
        #[arg(long, default_value = "sku")]
        match_products_by: MatchProductsBy,
        #[arg(long, default_value = "always_new")]
        client_matching: ClientMatching,
    },
}

pub async fn execute(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let db = db::connect(&settings).await?;
            db::migrate(&db).await?;
            println!("{}", serde_json::json!({"migrated": true}));
        }
        Command::Account(AccountCommand::Create { name, currency }) => {
            let db = db::connect_ready(&settings).await?;
            let created = provision::create_account(&db, &name, &currency).await?;
            println!("{}", serde_json::to_string(&created)?);
        }
        Command::Shop(ShopCommand::Create {
            account,
            name,
            prom_url,
            prom_token,
            language,
            match_products_by,
            client_matching,
        }) => {
            let keyring = startup::keyring(&settings)?;
            let prom_url = settings.prom.origin_policy().vet_url(&prom_url).await?;
            let db = db::connect_ready(&settings).await?;
            let created = provision::create_shop(
                &db,
                &keyring,
                provision::NewShop {
                    account_id: account,
                    name,
                    prom_url,
                    prom_token,
                    language,
                    match_products_by,
                    client_matching,
                },
            )
            .await?;
            println!("{}", serde_json::to_string(&created)?);
        }
        Command::Secrets(SecretsCommand::Rotate { batch_size }) => {
            let keyring = startup::keyring(&settings)?;
            let db = db::connect_ready(&settings).await?;
            let summary = keyring::rotate::rotate(&db, &keyring, batch_size).await?;
            println!("{}", serde_json::to_string(&summary)?);
            if !summary.failed.is_empty() {
                anyhow::bail!(
                    "{} secret(s) could not be re-encrypted (listed above): keep \
                     PROMSYNC_SECRET_KEY_PREVIOUS until they are fixed",
                    summary.failed.len()
                );
            }
        }
        Command::Replay(args) => replay(&settings, args).await?,
        Command::Dlq(command) => dlq(&settings, command, &mut std::io::stdout()).await?,
        Command::Serve => serve_roles(&settings, Roles::Http).await?,
        Command::Import(args) => {
            let concurrency = args
                .concurrency
                .unwrap_or(settings.import.concurrency.get());
            serve_roles(&settings, Roles::Importer(concurrency)).await?;
        }
        Command::Poll => serve_roles(&settings, Roles::Poller).await?,
        Command::Publish(args) => {
            let concurrency = args
                .concurrency
                .unwrap_or(settings.outbound.publish_concurrency.get());
            serve_roles(&settings, Roles::Publisher(concurrency)).await?;
        }
        Command::Run(args) => {
            let concurrency = args
                .concurrency
                .unwrap_or(settings.import.concurrency.get());
            serve_roles(&settings, Roles::All(concurrency)).await?;
        }
        Command::Demo(args) => demo::run(settings, args).await?,
        Command::SimulateProm(args) => {
            let push = match (args.push_url, args.push_secret) {
                (Some(url), Some(secret)) => Some(simulator::PushConfig {
                    url,
                    secret: secret.into(),
                    rate_per_s: args.push_rate,
                    count: args.push_count,
                    thin: args.push_thin,
                }),
                _ => None,
            };
            let sim = simulator::Simulator::build(simulator::SimConfig {
                listen: args.listen,
                orders: args.orders,
                seed: args.seed,
                tokens: args.tokens,
                faults: simulator::Faults {
                    rate_429: args.rate_429,
                    rate_5xx: args.rate_5xx,
                    latency_ms: args.latency_ms,
                    retry_after_s: args.retry_after_s,
                    max_page: args.max_page,
                },
                push,
                workers: args.workers,
                custom_statuses: if args.custom_statuses.is_empty() {
                    simulator::SimConfig::default().custom_statuses
                } else {
                    args.custom_statuses
                },
            })?;
            println!(
                "{}",
                serde_json::json!({"prom_url": sim.url(), "port": sim.port()})
            );
            sim.run_until_stopped().await.context("Prom simulator")?;
        }
    }
    Ok(())
}

/// Which roles a long-running subcommand runs; the numbers are concurrencies.
enum Roles {
    Http,
    Importer(usize),
    Poller,
    Publisher(usize),
    /// HTTP, the importer (with this concurrency), the publisher and the poller.
    All(usize),
}

/// Connects the backends once and runs `roles` under one supervisor until SIGTERM or
/// Ctrl-C (`Ok`), or until one of them ends unexpectedly (the error names it).
async fn serve_roles(settings: &Settings, roles: Roles) -> anyhow::Result<()> {
    let backends = Backends::connect(settings).await?;
    let mut supervisor = Supervisor::new();
    if let Roles::Http | Roles::All(_) = roles {
        // Bound before any other role starts, so a taken port fails the command with
        // nothing to undo.
        let app = Application::build_with_roles(settings, &backends, supervisor.health()).await?;
        supervisor.spawn("http", |stop| app.serve(stop));
    } else if let Some(metrics) =
        startup::MetricsServer::build(settings, &backends, supervisor.health())?
    {
        supervisor.spawn("metrics", |stop| metrics.serve(stop));
    }
    if let Roles::Importer(concurrency) | Roles::All(concurrency) = roles {
        supervisor.spawn("importer", |stop| {
            startup::importer_role(settings, &backends, concurrency, stop)
        });
    }
    if let Roles::Publisher(concurrency) = roles {
        supervisor.spawn("publisher", |stop| {
            startup::publisher_role(settings, &backends, concurrency, stop)
        });
    }
    if let Roles::All(_) = roles {
        supervisor.spawn("publisher", |stop| {
            startup::publisher_role(
                settings,
                &backends,
                settings.outbound.publish_concurrency.get(),
                stop,
            )
        });
    }
    if let Roles::Poller | Roles::All(_) = roles {
        supervisor.spawn("poller", |stop| {
            startup::poller_role(settings, &backends, stop)
        });
    }
    supervisor.stop_on_signal();
    Ok(supervisor.run().await?)
}

async fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<()> {
    let backends = Backends::connect(settings).await?;
    let request = ReplayRequest {
        since: args.since,
        until: args.until,
        shop: args.shop.map(ShopId::try_from).transpose()?,
        force: args.force,
        in_flight: args.in_flight,
    };
    let progress = progress::ReplayProgress::on_stderr();
    let summary = backends
        .broker
        .replay(&request, &|s| progress.update(s))
        .await
        .context("replay")?;
    progress.finish(summary);
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// `promsync dlq`, for the installation's operator: every account's dead letters, read
/// from the `dead_letters` table after moving in whatever still waits in the broker's
/// dead-letter queue (no drainer may be running). Writes its JSON lines to `out`.
pub async fn dlq(
    settings: &Settings,
    command: DlqCommand,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let backends = Backends::connect(settings).await?;
    let queue = match &command {
        DlqCommand::List { queue }
        | DlqCommand::Requeue { queue, .. }
        | DlqCommand::Purge { queue, .. } => *queue,
    };
    let recorder = dead_letters::Recorder::new(backends.db.clone());
    backends
        .broker
        .drain_dead_once(queue, &recorder)
        .await
        .context("moving the broker's dead letters into the database")?;
    match command {
        DlqCommand::List { queue } => {
            dead_letters::for_each_in_lane(&backends.db, queue, |letter| {
                writeln!(out, "{}", serde_json::to_string(&letter)?)?;
                Ok(())
            })
            .await?;
        }
        DlqCommand::Requeue { queue, ids, all } => {
            let ids = (!all).then_some(ids.as_slice());
            let requeued =
                dead_letters::requeue_in_lane(&backends.db, backends.broker.as_ref(), queue, ids)
                    .await?;
            writeln!(out, "{}", serde_json::json!({ "requeued": requeued }))?;
        }
        DlqCommand::Purge { queue, yes } => {
            if !yes
                && !confirm(&format!(
                    "Delete every dead letter of `{}`?",
                    queue.as_str()
                ))?
            {
                anyhow::bail!("purge not confirmed");
            }
            let purged = dead_letters::purge_lane(&backends.db, queue).await?;
            writeln!(out, "{}", serde_json::json!({ "purged": purged }))?;
        }
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_custom_status_is_an_id_and_a_title() {
        assert_eq!(
            parse_custom_status("137639= Очікує оплату"),
            Ok((137639, "Очікує оплату".to_owned()))
        );
        for bad in ["137639", "0=x", "-1=x", "x=y", "5=  "] {
            assert!(parse_custom_status(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn in_flight_takes_one_to_ten_thousand() {
        assert_eq!(in_flight("1").map(|n| n.get()), Ok(1));
        assert_eq!(in_flight("10000").map(|n| n.get()), Ok(10_000));
        assert!(in_flight("0").is_err());
        assert!(in_flight("10001").is_err());
        assert!(in_flight("-5").is_err());
        assert!(in_flight("many").is_err());
    }
}
