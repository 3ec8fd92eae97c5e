//! Connects thousands of shops at once, for the poller benchmark
//! (`deploy/bench/pollers.sh`): one account, `--shops` shops on one Prom origin, each with
//! its own token (`<prefix><n>`, so the simulator tells them apart) and the given poll
//! interval, through promsync's own provisioning, as `promsync shop create` would.
//!
//! Their first sweeps are spread evenly over one interval (`lease_until`), as they are in
//! an installation whose shops were connected over time; a fleet all due at the same
//! instant measures a one-off backlog, not whether a poller keeps up.
//!
//! ```text
//! PROMSYNC_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \
//! PROMSYNC_PROM_ALLOWED_ORIGINS=http://127.0.0.1:9400 \
//! cargo run --release --example manyshops -- --prom-url http://127.0.0.1:9400 --shops 10000
//! ```
//!
//! Prints one line: `manyshops-json: {"account_id","shops","seconds"}`.

use std::{process::ExitCode, time::Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use entity::{
    enums::{ClientMatching, Language, MatchProductsBy},
    shops,
};
use futures::{stream, StreamExt, TryStreamExt};
use promsync::{config::Settings, db, provision, startup};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

#[derive(Parser, Debug)]
#[command(name = "manyshops", about = "Connects many shops for the poller bench")]
struct Args {
    /// The Prom origin every shop uses (allowed through PROMSYNC_PROM_ALLOWED_ORIGINS).
    #[arg(long)]
    prom_url: String,
    #[arg(long, default_value_t = 10_000)]
    shops: u32,
    #[arg(long, default_value_t = 60)]
    interval_s: i32,
    #[arg(long, default_value = "bench-shop-")]
    token_prefix: String,
    /// Shops created at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("manyshops: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::load(None).context("loading settings")?;
    let keyring = startup::keyring(&settings)?;
    let db = db::connect_ready(&settings).await?;
    let prom_url = settings
        .prom
        .origin_policy()
        .vet_url(&args.prom_url)
        .await?;
    let account = provision::create_account(&db, "Poller bench", "UAH").await?;
    let (db, keyring) = (&db, &keyring);
    let ids: Vec<i64> = stream::iter(1..=args.shops)
        .map(|n| {
            let new = provision::NewShop {
                account_id: account.account_id,
                name: format!("Shop {n}"),
                prom_url: prom_url.clone(),
                prom_token: format!("{}{n}", args.token_prefix),
                language: Language::Uk,
                match_products_by: MatchProductsBy::Sku,
                client_matching: ClientMatching::AlwaysNew,
            };
            async move {
                provision::create_shop(db, keyring, new)
                    .await
                    .map(|created| created.shop_id)
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    // Due times spread over one interval, in id order.
    let now = Utc::now();
    let step_ms = i64::from(args.interval_s) * 1000 / i64::from(args.shops.max(1));
    let mut sorted = ids;
    sorted.sort_unstable();
    stream::iter(sorted.iter().enumerate())
        .map(|(i, id)| async move {
            let due = now + chrono::Duration::milliseconds(step_ms * i as i64);
            shops::Entity::update_many()
                .col_expr(shops::Column::LeaseUntil, Expr::value(due))
                .col_expr(shops::Column::PollIntervalS, Expr::value(args.interval_s))
                .filter(shops::Column::Id.eq(*id))
                .exec(db)
                .await
                .context("scheduling a shop")
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    println!(
        "manyshops-json: {}",
        serde_json::json!({
            "account_id": account.account_id,
            "shops": sorted.len(),
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
