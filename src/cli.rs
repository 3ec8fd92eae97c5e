//! The command line of DESIGN §5 and what each subcommand runs. `main.rs` only parses,
//! sets up telemetry and hands over here.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    db,
    domain::{ClientMatching, Language, MatchProductsBy},
    provision,
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
    /// Every role in one process: HTTP (webhooks + API), the importer and the poller.
    Run(ImportArgs),
    /// HTTP only: webhook ingress, RO App API and probes.
    Serve,
    /// The importer: consumes notifications and applies them to the database.
    Import(ImportArgs),
    /// The poller: sweeps every enabled shop's Prom orders into the inbound lane.
    Poll,
    /// Applies database migrations.
    Migrate,
    /// Accounts (tenants).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Connected Prom shops.
    #[command(subcommand)]
    Shop(ShopCommand),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Messages worked on at once by this process (default: import_concurrency setting).
    #[arg(long)]
    pub concurrency: Option<usize>,
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
        /// Prom origin; promsync appends /api/v1/….
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
            let db = db::connect(&settings).await?;
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
            let db = db::connect(&settings).await?;
            let created = provision::create_shop(
                &db,
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
        Command::Serve => {
            let backends = Backends::connect(&settings).await?;
            let app = Application::build(&settings, &backends).await?;
            app.run_until_stopped().await.context("HTTP server")?;
        }
        Command::Import(args) => {
            let backends = Backends::connect(&settings).await?;
            let shutdown = CancellationToken::new();
            let concurrency = args.concurrency.unwrap_or(settings.import_concurrency);
            let importer =
                startup::spawn_importer(&settings, &backends, concurrency, shutdown.clone());
            startup::shutdown_signal().await;
            shutdown.cancel();
            importer.await.context("importer task")??;
        }
        Command::Poll => {
            let backends = Backends::connect(&settings).await?;
            let shutdown = CancellationToken::new();
            let poller = startup::spawn_poller(&settings, &backends, shutdown.clone());
            startup::shutdown_signal().await;
            shutdown.cancel();
            poller.await.context("poller task")??;
        }
        Command::Run(args) => {
            let backends = Backends::connect(&settings).await?;
            let shutdown = CancellationToken::new();
            let concurrency = args.concurrency.unwrap_or(settings.import_concurrency);
            let importer =
                startup::spawn_importer(&settings, &backends, concurrency, shutdown.clone());
            let poller = startup::spawn_poller(&settings, &backends, shutdown.clone());
            let app = Application::build(&settings, &backends).await?;
            // actix-web handles SIGTERM/Ctrl-C itself and drains requests; the importer
            // and the poller follow once the server has stopped.
            app.run_until_stopped().await.context("HTTP server")?;
            shutdown.cancel();
            poller.await.context("poller task")??;
            importer.await.context("importer task")??;
        }
    }
    Ok(())
}
