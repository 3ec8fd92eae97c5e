//! Replay against raw publishing, in one run: logs `--count` notifications (promsync's
//! own message, padded to `--size` bytes) into a fresh namespace of promsync's topology
//! with `--in-flight` confirmed publishes at once — the raw publish rate — then empties the
//! import queue and replays the whole log with the same window through
//! `RabbitBroker::replay` — the replay rate. `deploy/bench/replay.sh` runs it.
//!
//! ```text
//! cargo run --release --example replaybench -- --url amqp://guest:guest@127.0.0.1:5672/%2f \
//!     --namespace replay_bench --count 40000 --in-flight 512 --size 3000
//! ```
//!
//! Prints one machine-readable line starting with `replaybench-json: ` (count, in_flight,
//! raw_per_s, replay_per_s, ratio, CPU seconds of this process in each phase). Deletes the
//! namespace's queues and exchanges afterwards.

#[path = "common/cpu.rs"]
mod cpu;

use std::{num::NonZeroUsize, process::ExitCode, time::Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use futures::{stream::FuturesUnordered, StreamExt};
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions},
    BasicProperties, Confirmation, Connection, ConnectionProperties,
};
use promsync::{
    broker::{
        rabbitmq::{declare_topology, delete_topology, RabbitBroker},
        Broker, InboundMessage, Lane, ReplayRequest, Topology,
    },
    domain::Source,
    prom::ids::{EventId, ShopId},
};
use serde_json::value::RawValue;

#[derive(Parser, Debug)]
#[command(
    name = "replaybench",
    about = "Replay rate against raw confirmed publishing"
)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Broker namespace to declare, fill and delete (use a fresh one).
    #[arg(long)]
    namespace: String,
    #[arg(long, default_value_t = 40_000)]
    count: u64,
    /// Publishes awaiting their confirm at once, in both phases.
    #[arg(long, default_value_t = ReplayRequest::DEFAULT_IN_FLIGHT)]
    in_flight: NonZeroUsize,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 3000)]
    size: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut settings = match promsync::config::Settings::defaults() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("replaybench: {e}");
            return ExitCode::from(2);
        }
    };
    settings.broker.namespace = args.namespace.clone();
    let topology = Topology::new(&args.namespace);
    let result = run(&args, &settings, &topology).await;
    let cleanup = delete_topology(&args.url, &topology, &settings.import.retry_delays).await;
    match result.and(cleanup.map_err(Into::into)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replaybench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A logged notification of about `size` bytes, as the ingress would publish it.
fn notification(i: u64, size: usize) -> anyhow::Result<Vec<u8>> {
    let order = format!(
        "{{\"id\":{i},\"date_modified\":\"2026-11-30T10:00:00+00:00\",\"pad\":\"{}\"}}",
        "x".repeat(size.saturating_sub(250))
    );
    let message = InboundMessage {
        event_id: EventId::random(),
        shop_id: ShopId::try_from(1)?,
        source: Source::Webhook,
        received_at: Utc::now(),
        order_id: i64::try_from(i)?,
        order: Some(RawValue::from_string(order)?),
    };
    Ok(serde_json::to_vec(&message)?)
}

async fn run(
    args: &Args,
    settings: &promsync::config::Settings,
    topology: &Topology,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "count must be > 0");
    let since = Utc::now() - chrono::Duration::seconds(1);
    let connection = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel, topology, &settings.import.retry_delays).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let bodies = (0..args.count)
        .map(|i| notification(i, args.size))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let exchange = topology.exchange(Lane::Inbound);

    // Raw: the same window of confirmed, mandatory, persistent publishes, into the import
    // queue and the log (what the ingress does).
    let cpu_before = cpu::cpu_seconds();
    let started = Instant::now();
    let mut confirms = FuturesUnordered::new();
    for (i, body) in bodies.iter().enumerate() {
        while confirms.len() >= args.in_flight.get() {
            settle(confirms.next().await)?;
        }
        let properties = BasicProperties::default()
            .with_message_id(format!("raw-{i}").into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(Utc::now().timestamp().max(0) as u64);
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                Topology::FRESH.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await?;
        confirms.push(confirm);
    }
    while let Some(confirm) = confirms.next().await {
        settle(Some(confirm))?;
    }
    let raw_s = started.elapsed().as_secs_f64();
    let raw_cpu = cpu::cpu_seconds() - cpu_before;
    channel
        .queue_purge(
            topology.import_queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await
        .context("emptying the import queue")?;
    let _ = connection.close(200, "logged".into()).await;

    // Replay: the whole log, the same window.
    let broker = RabbitBroker::new(&args.url, settings);
    let mut request = ReplayRequest::new(since, None);
    request.in_flight = args.in_flight;
    let cpu_before = cpu::cpu_seconds();
    let started = Instant::now();
    let summary = broker.replay(&request, &|_| {}).await?;
    let replay_s = started.elapsed().as_secs_f64();
    let replay_cpu = cpu::cpu_seconds() - cpu_before;
    anyhow::ensure!(
        summary.requeued == args.count,
        "replayed {summary:?} of {} logged",
        args.count
    );

    let raw_per_s = args.count as f64 / raw_s.max(1e-9);
    let replay_per_s = summary.requeued as f64 / replay_s.max(1e-9);
    println!(
        "raw publish: {} in {raw_s:.2} s = {raw_per_s:.0}/s ({:.0} µs CPU each here)",
        args.count,
        raw_cpu * 1e6 / args.count as f64
    );
    println!(
        "replay:      {} in {replay_s:.2} s = {replay_per_s:.0}/s ({:.0} µs CPU each here); replay/raw {:.2}",
        summary.requeued,
        replay_cpu * 1e6 / args.count as f64,
        replay_per_s / raw_per_s
    );
    let json = serde_json::json!({
        "count": args.count,
        "in_flight": args.in_flight.get(),
        "size": bodies.first().map(Vec::len),
        "raw_s": raw_s,
        "raw_per_s": raw_per_s,
        "raw_cpu_s": raw_cpu,
        "replay_s": replay_s,
        "replay_per_s": replay_per_s,
        "replay_cpu_s": replay_cpu,
        "ratio": replay_per_s / raw_per_s,
    });
    println!("replaybench-json: {json}");
    Ok(())
}

fn settle(confirm: Option<Result<Confirmation, lapin::Error>>) -> anyhow::Result<()> {
    match confirm {
        Some(Ok(Confirmation::Ack(None))) | None => Ok(()),
        Some(Ok(other)) => anyhow::bail!("not confirmed: {other:?}"),
        Some(Err(e)) => Err(e.into()),
    }
}
