//! The publish path of the webhook ingress measured raw: a minimal lapin publisher with
//! publisher confirms, `mandatory` and persistent messages, into the same topology the
//! ingress publishes to (promsync's own declaration: the inbound exchange, its quorum
//! work queue and its replay stream), with the same message size and the same number of
//! publishes in flight. `deploy/bench/bench.sh` prints ingress req/s over this rate.
//!
//! ```text
//! cargo run --release --example rawpublish -- --url amqp://guest:guest@127.0.0.1:5672/%2f \
//!     --namespace raw_bench --count 20000 --concurrency 64 --size 3000
//! ```
//!
//! Prints one machine-readable line starting with `rawpublish-json: ` (published,
//! failed, elapsed_s, rate, p50_ms, p99_ms). Deletes the namespace's queues and exchanges
//! afterwards unless `--keep`.

#[path = "common/cpu.rs"]
mod cpu;

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{stream, StreamExt};
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties, Confirmation, Connection, ConnectionProperties,
};
use promsync::broker::{
    rabbitmq::{declare_topology, delete_topology},
    Lane, Topology,
};

#[derive(Parser, Debug)]
#[command(
    name = "rawpublish",
    about = "Raw confirmed publishes into promsync's topology"
)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Broker namespace to declare and publish into (use a fresh one).
    #[arg(long)]
    namespace: String,
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Publishes awaiting their confirm at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 3000)]
    size: usize,
    /// Leave the queues (and the messages) in place.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rawpublish: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.count > 0 && args.concurrency > 0,
        "count and concurrency must be > 0"
    );
    let topology = Topology::new(&args.namespace);
    // The retry tiers are part of the ingress topology too (no traffic goes there).
    let delays = promsync::config::Settings::defaults()?.import.retry_delays;
    let connection = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, &topology, &delays).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let exchange = topology.exchange(Lane::Inbound);
    // JSON-ish filler of the requested size, like the ingress's message.
    let body: Arc<Vec<u8>> = Arc::new(
        format!(
            "{{\"pad\":\"{}\"}}",
            "x".repeat(args.size.saturating_sub(10))
        )
        .into_bytes(),
    );

    let cpu_before = cpu::cpu_seconds();
    let started = Instant::now();
    let results: Vec<Result<Duration, String>> = stream::iter(0..args.count)
        .map(|i| {
            let channel = channel.clone();
            let exchange = exchange.clone();
            let body = Arc::clone(&body);
            async move {
                let t = Instant::now();
                let properties = BasicProperties::default()
                    .with_message_id(format!("raw-{i}").into())
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        Topology::FRESH.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        properties,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                match confirm.await.map_err(|e| e.to_string())? {
                    Confirmation::Ack(None) => Ok(t.elapsed()),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let cpu_s = cpu::cpu_seconds() - cpu_before;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);

    let mut latencies: Vec<Duration> = results.iter().filter_map(|r| r.clone().ok()).collect();
    latencies.sort_unstable();
    let failed = results.len() - latencies.len();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx].as_secs_f64() * 1000.0
    };
    let summary = serde_json::json!({
        "published": latencies.len(),
        "failed": failed,
        "elapsed_s": elapsed,
        "rate": latencies.len() as f64 / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "size": body.len(),
        "concurrency": args.concurrency,
        "cpu_s": cpu_s,
    });
    println!(
        "raw publish: {} confirmed, {} failed, {:.1}/s, p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        failed,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    println!("rawpublish-json: {summary}");
    let _ = connection.close(200, "done".into()).await;
    if !args.keep {
        delete_topology(&args.url, &topology, &delays).await?;
    }
    Ok(())
}
