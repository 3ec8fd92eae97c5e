//! The fault-injection suite (ARCHITECTURE.md, 'How it is tested'): real `promsync`
//! processes against private PostgreSQL and RabbitMQ instances that each scenario breaks on
//! purpose — importers SIGKILLed under load, the broker stopped mid-ingress, the broker
//! and the database each made silent (a partition: a TCP proxy that stops forwarding),
//! the database crashed mid-import, the publisher killed while Prom fails a fifth of its
//! calls (statuses and waybills), a poison message.
//!
//! It is not part of `cargo test --all-targets` (the `[[test]]` entry says `test =
//! false`): `deploy/test.sh` runs it last and serially with
//! `cargo test --test chaos -- --test-threads=1 --nocapture`. It needs root and
//! PostgreSQL + RabbitMQ installed, and fails (never skips) without them. Each scenario
//! prints one `chaos: <name> sent=… accepted=… imported=… duplicates=… lost=… seconds=…`
//! line. A failing scenario keeps its directory (service and process logs) under /tmp.

mod chaos {
    pub mod cluster;
    // The integration suite's proxy; this suite only silences and restores.
    #[path = "../it/support/proxy.rs"]
    #[allow(dead_code)]
    pub mod proxy;
    pub mod services;
}

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

use chaos::cluster::{
    accepted_ids, document_notification, order_notification, Cluster, Notification, Proc, Report,
    Tally,
};
use futures::{stream, StreamExt};
use promsync::broker::{Lane, Topology};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

/// How often one of the two importers is SIGKILLed (they take turns).
const KILL_EVERY: Duration = Duration::from_secs(3);

/// `orders` orders in `total` notifications: versions 1..=k of each order (90% of
/// `total`), plus 10% exact resends of some of them, all shuffled, so versions arrive
/// out of order and duplicates arrive at any time.
fn versioned_load(base_id: i64, orders: usize, total: usize, seed: u64) -> Vec<Notification> {
    let distinct = total - total / 10;
    let mut notes = Vec::with_capacity(total);
    for i in 0..orders {
        let versions = distinct / orders + usize::from(i < distinct % orders);
        for version in 1..=versions as i64 {
            notes.push(order_notification(base_id + i as i64, version));
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..total - distinct {
        let resend = notes[rng.random_range(0..distinct)].clone();
        notes.push(resend);
    }
    notes.shuffle(&mut rng);
    notes
}

/// The newest accepted version of each order: what the database must end up with.
fn newest_accepted(notes: &[Notification], results: &[Result<u16, String>]) -> HashMap<i64, i64> {
    let mut newest = HashMap::new();
    for (note, result) in notes.iter().zip(results) {
        if matches!(result, Ok(202)) {
            let v = newest.entry(note.order_id).or_insert(note.version);
            *v = (*v).max(note.version);
        }
    }
    newest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn importers_sigkilled_every_few_seconds_import_every_order_once_at_its_newest_version() {
    let started = Instant::now();
    let cluster = Cluster::start("importer-sigkill", &["--orders", "0"]).await;
    let notes = versioned_load(700_000_000, 5_000, 20_000, 1);
    let mut importers = [
        cluster.spawn("import-a", &["import"]),
        cluster.spawn("import-b", &["import"]),
    ];
    let finished = AtomicBool::new(false);

    let work = async {
        let results = cluster.send_all(&notes, 32).await;
        let expected = newest_accepted(&notes, &results);
        let events = accepted_ids(&notes, &results).len();
        let tally = cluster
            .settle(&expected, events, Duration::from_secs(360))
            .await;
        finished.store(true, Ordering::SeqCst);
        (results, expected, tally)
    };
    let killer = async {
        let mut kills = 0;
        while !finished.load(Ordering::SeqCst) {
            tokio::time::sleep(KILL_EVERY).await;
            if finished.load(Ordering::SeqCst) {
                break;
            }
            let slot = kills % importers.len();
            importers[slot].kill().await;
            importers[slot] = cluster.spawn(&format!("import-{kills}"), &["import"]);
            kills += 1;
        }
        kills
    };
    let ((results, expected, tally), kills) = tokio::join!(work, killer);

    let accepted = results.iter().filter(|r| matches!(r, Ok(202))).count();
    let dead = cluster.dead_letters().await;
    Report {
        name: "importer-sigkill",
        sent: notes.len(),
        accepted,
        imported: tally.imported,
        duplicates: tally.duplicates,
        lost: tally.lost,
        started,
        extra: format!(" kills={kills} dead_letters={}", dead.len()),
    }
    .print();
    assert_eq!(accepted, notes.len(), "the ingress refused notifications");
    assert!(kills >= 4, "only {kills} importer kills happened");
    assert_eq!(
        tally.lost, 0,
        "orders missing or not at their newest version"
    );
    assert_eq!(tally.duplicates, 0, "orders imported more than once");
    assert_eq!(tally.imported, expected.len());
    assert!(dead.is_empty(), "dead letters: {dead:?}");
}

/// One request of a paced load: its index, when it was due, what it sent, the answer
/// (status or transport error) and how long the answer took.
struct Paced {
    i: usize,
    at: tokio::time::Instant,
    note: Notification,
    result: Result<u16, String>,
    took: Duration,
}

/// Paced load of fresh orders from `base_id`: request i leaves at i / `rate_per_s`
/// seconds, whatever the answers do, until the instant `load_end` is set to (however
/// slow breaking and mending the service was). Answers in request order.
async fn paced_load(
    cluster: &Cluster,
    rate_per_s: u64,
    base_id: i64,
    load_end: &OnceLock<tokio::time::Instant>,
) -> Vec<Paced> {
    let load_start = tokio::time::Instant::now();
    let mut answers = stream::iter(0..rate_per_s as usize * 120)
        .map(|i| async move {
            let at = load_start + Duration::from_millis(i as u64 * 1000 / rate_per_s);
            if load_end.get().is_some_and(|end| at > *end) {
                return None;
            }
            tokio::time::sleep_until(at).await;
            if load_end.get().is_some_and(|end| at > *end) {
                return None;
            }
            let note = order_notification(base_id + i as i64, 1);
            let sent = Instant::now();
            let result = cluster.send(&note).await;
            let took = sent.elapsed();
            Some(Paced {
                i,
                at,
                note,
                result,
                took,
            })
        })
        .buffer_unordered(1024)
        .filter_map(|answer| async move { answer })
        .collect::<Vec<_>>()
        .await;
    answers.sort_by_key(|a| a.i);
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_stopped_for_ten_seconds_mid_ingress_imports_every_accepted_notification() {
    const RATE_PER_S: u64 = 200;
    let started = Instant::now();
    let cluster = Cluster::start("rabbitmq-outage", &["--orders", "0"]).await;
    let importer = cluster.spawn("import", &["import"]);

    let load_end: OnceLock<tokio::time::Instant> = OnceLock::new();
    let load = paced_load(&cluster, RATE_PER_S, 800_000_000, &load_end);
    // The outage itself: ten seconds without a broker.
    let outage = fault_window(
        &load_end,
        Duration::from_secs(10),
        cluster.rabbit.stop_app(),
        cluster.rabbit.start_app(),
    );
    let (answers, (stopped, restarted)) = tokio::join!(load, outage);
    let settled = settle_paced(&cluster, &answers).await;
    let reconnects = cluster.log_lines("import", "consumer lost its broker connection");
    settled.report(
        "rabbitmq-outage",
        &answers,
        started,
        format!(
            " outage_s={:.1} importer_reconnects={reconnects}",
            (restarted - stopped).as_secs_f64()
        ),
    );
    assert!(reconnects > 0, "the importer never noticed the outage");
    assert_paced_recovery(
        &answers,
        restarted,
        "the broker came back",
        &[&cluster.serve, &importer],
        &settled,
    );
}

/// Breaks a service (`fault`) 8 s into a paced load, mends it (`mend`) `lasting` later,
/// and ends the load 10 s past the mending (the recovery window), however long breaking
/// and mending took. Answers when the fault began and when the service was mended.
async fn fault_window(
    load_end: &OnceLock<tokio::time::Instant>,
    lasting: Duration,
    fault: impl std::future::Future<Output = ()>,
    mend: impl std::future::Future<Output = ()>,
) -> (tokio::time::Instant, tokio::time::Instant) {
    tokio::time::sleep(Duration::from_secs(8)).await;
    fault.await;
    let broken = tokio::time::Instant::now();
    tokio::time::sleep(lasting).await;
    mend.await;
    let mended = tokio::time::Instant::now();
    load_end
        .set(mended + Duration::from_secs(10))
        .expect("set once");
    (broken, mended)
}

/// What a paced load left behind once the importers caught up.
struct Settled {
    accepted: usize,
    refused: usize,
    tally: Tally,
    dead: Vec<serde_json::Value>,
}

impl Settled {
    /// Prints the scenario's `chaos:` line, with the 503s and `extra`.
    fn report(&self, name: &'static str, answers: &[Paced], started: Instant, extra: String) {
        Report {
            name,
            sent: answers.len(),
            accepted: self.accepted,
            imported: self.tally.imported,
            duplicates: self.tally.duplicates,
            lost: self.tally.lost,
            started,
            extra: format!(
                " refused_503={} slowest_answer_s={:.2} deadline_s={:.1}{extra}",
                self.refused,
                slowest(answers).as_secs_f64(),
                publish_timeout().as_secs_f64()
            ),
        }
        .print();
    }
}

/// Waits until every accepted notification of `answers` is imported (or three minutes
/// passed) and counts what the load got.
async fn settle_paced(cluster: &Cluster, answers: &[Paced]) -> Settled {
    let notes: Vec<Notification> = answers.iter().map(|a| a.note.clone()).collect();
    let results: Vec<Result<u16, String>> = answers.iter().map(|a| a.result.clone()).collect();
    let accepted = results.iter().filter(|r| matches!(r, Ok(202))).count();
    let refused = results.iter().filter(|r| matches!(r, Ok(503))).count();
    let expected = newest_accepted(&notes, &results);
    let tally = cluster
        .settle(&expected, accepted, Duration::from_secs(180))
        .await;
    Settled {
        accepted,
        refused,
        tally,
        dead: cluster.dead_letters().await,
    }
}

/// The longest any request of `answers` waited for its answer.
fn slowest(answers: &[Paced]) -> Duration {
    answers.iter().map(|a| a.took).max().unwrap_or_default()
}

/// `PROMSYNC_PUBLISH_TIMEOUT_MS` of the scenarios (the default).
fn publish_timeout() -> Duration {
    promsync::config::Settings::defaults()
        .expect("defaults")
        .broker
        .publish_timeout
}

/// What a paced scenario proves once its fault was mended at `mended`: every answer 202
/// or 503, within the publish timeout and a second, and some 503; from 5 s after,
/// everything 202 again from the same (never restarted) `processes`; every accepted
/// notification imported once; no dead letter.
fn assert_paced_recovery(
    answers: &[Paced],
    mended: tokio::time::Instant,
    what: &str,
    processes: &[&Proc],
    Settled { tally, dead, .. }: &Settled,
) {
    let other: Vec<_> = answers
        .iter()
        .map(|a| &a.result)
        .filter(|r| !matches!(r, Ok(202) | Ok(503)))
        .take(5)
        .collect();
    assert!(other.is_empty(), "answers other than 202/503: {other:?}");
    let bound = publish_timeout() + Duration::from_secs(1);
    let late_answers: Vec<_> = answers
        .iter()
        .filter(|a| a.took > bound)
        .map(|a| (a.note.order_id, a.took))
        .take(5)
        .collect();
    assert!(
        late_answers.is_empty(),
        "answered after the publish timeout and a second: {late_answers:?}"
    );
    assert!(
        answers.iter().any(|a| matches!(a.result, Ok(503))),
        "no request saw the fault"
    );
    let late: Vec<_> = answers
        .iter()
        .filter(|a| a.at > mended + Duration::from_secs(5))
        .collect();
    assert!(!late.is_empty(), "the load ended before {what}");
    assert!(
        late.iter().all(|a| matches!(a.result, Ok(202))),
        "the ingress still refused requests 5 s after {what}"
    );
    for process in processes {
        process.assert_running();
    }
    assert_eq!(tally.lost, 0, "accepted notifications not imported");
    assert_eq!(tally.duplicates, 0, "orders imported more than once");
    assert!(dead.is_empty(), "dead letters: {dead:?}");
}

/// Which service a partition scenario silences.
#[derive(Clone, Copy)]
enum Silenced {
    RabbitMq,
    PostgreSql,
}

/// A service made silent (its connections stay open, nothing gets through: a network
/// partition, not a stop) for fifteen seconds under paced load, then reachable again.
/// Every request must be answered 202 or 503 within the publish timeout and a second,
/// with no transport error; everything accepted is imported once; the same processes
/// recover without a restart.
async fn silent_for_fifteen_seconds(name: &'static str, silenced: Silenced, base_id: i64) {
    const RATE_PER_S: u64 = 100;
    const SILENCE: Duration = Duration::from_secs(15);
    let started = Instant::now();
    let cluster = Cluster::start_behind_proxies(name, &["--orders", "0"]).await;
    let proxies = cluster.proxies.as_ref().expect("proxies");
    let proxy = match silenced {
        Silenced::RabbitMq => &proxies.rabbit,
        Silenced::PostgreSql => &proxies.pg,
    };
    let importer = cluster.spawn("import", &["import"]);

    let load_end: OnceLock<tokio::time::Instant> = OnceLock::new();
    let load = paced_load(&cluster, RATE_PER_S, base_id, &load_end);
    let partition = fault_window(&load_end, SILENCE, async { proxy.silence() }, async {
        proxy.restore()
    });
    let (answers, (silenced_at, healed)) = tokio::join!(load, partition);
    let settled = settle_paced(&cluster, &answers).await;
    settled.report(
        name,
        &answers,
        started,
        format!(" silent_s={:.1}", (healed - silenced_at).as_secs_f64()),
    );
    assert_paced_recovery(
        &answers,
        healed,
        "the partition healed",
        &[&cluster.serve, &importer],
        &settled,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_silent_for_fifteen_seconds_answers_every_request_in_time_and_loses_nothing() {
    silent_for_fifteen_seconds("rabbitmq-silent", Silenced::RabbitMq, 820_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_silent_for_fifteen_seconds_answers_every_request_in_time_and_loses_nothing() {
    silent_for_fifteen_seconds("postgres-silent", Silenced::PostgreSql, 840_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_crashed_and_restarted_mid_import_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let cluster = Cluster::start("postgres-restart", &["--orders", "0"]).await;
    let notes = versioned_load(900_000_000, 1_500, 6_000, 3);
    let results = cluster.send_all(&notes, 32).await;
    let accepted = results.iter().filter(|r| matches!(r, Ok(202))).count();
    assert_eq!(accepted, notes.len(), "the ingress refused notifications");
    let events = accepted_ids(&notes, &results).len();

    let importers = [
        cluster.spawn("import-a", &["import"]),
        cluster.spawn("import-b", &["import"]),
    ];
    // The crash comes once importing is under way, early: with group commit the
    // importers drain the rest in a couple of seconds, so waiting for a quarter let a
    // quiet machine finish before the crash and the crash hit nothing in flight.
    chaos::cluster::eventually(
        "the first notifications imported",
        Duration::from_secs(120),
        || async {
            let n = cluster.count("SELECT count(*) FROM inbound_events").await?;
            (n as usize >= events / 20).then_some(())
        },
    )
    .await;
    tokio::task::block_in_place(|| cluster.pg.crash());
    // The outage itself: the database stays away for three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| cluster.pg.start_again());

    let expected = newest_accepted(&notes, &results);
    let tally = cluster
        .settle(&expected, events, Duration::from_secs(240))
        .await;
    let dead = cluster.dead_letters().await;
    // Messages the crash sent back to a retry tier: proof it hit work in flight.
    let retried = cluster.log_lines("import", "will retry");
    Report {
        name: "postgres-restart",
        sent: notes.len(),
        accepted,
        imported: tally.imported,
        duplicates: tally.duplicates,
        lost: tally.lost,
        started,
        extra: format!(" retried={retried} dead_letters={}", dead.len()),
    }
    .print();
    assert!(retried > 0, "the database crash hit no import in flight");
    for importer in &importers {
        importer.assert_running();
    }
    cluster.serve.assert_running();
    assert_eq!(
        tally.lost, 0,
        "orders missing or not at their newest version"
    );
    assert_eq!(tally.duplicates, 0, "orders imported more than once");
    assert_eq!(tally.imported, expected.len());
    assert!(dead.is_empty(), "dead letters: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publisher_killed_mid_batch_while_prom_fails_a_fifth_of_calls_leaves_prom_in_step() {
    const ORDERS: usize = 300;
    let started = Instant::now();
    let cluster = Cluster::start("publisher-kill", &["--orders", "300"]).await;
    let sim = |path: &str| format!("{}{path}", cluster.sim_url);

    // "Prom"'s orders imported into RO App first, while Prom still behaves.
    let documents = cluster.get_json(&sim("/_sim/orders")).await;
    let notes: Vec<Notification> = documents["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(document_notification)
        .collect();
    assert_eq!(notes.len(), ORDERS);
    let importer = cluster.spawn("import", &["import"]);
    let results = cluster.send_all(&notes, 16).await;
    assert!(results.iter().all(|r| matches!(r, Ok(202))), "{results:?}");
    chaos::cluster::eventually("the orders imported", Duration::from_secs(120), || async {
        let n = cluster.count("SELECT count(*) FROM inbound_events").await?;
        (n as usize >= notes.len()).then_some(())
    })
    .await;
    importer.kill().await;
    let shop = cluster.shop_id;
    let orders: Vec<(String, String)> = cluster
        .rows(&format!(
            "SELECT id::text, external_id FROM orders WHERE shop_id = {shop} ORDER BY id"
        ))
        .await
        .expect("orders");
    let outbound: HashMap<String, String> = cluster
        .rows(&format!(
            "SELECT prom_status, status_id::text FROM status_mappings \
             WHERE shop_id = {shop} AND direction = 'outbound'"
        ))
        .await
        .expect("mapping")
        .into_iter()
        .collect();
    // Statuses Prom takes without a write-off first.
    let targets = [&outbound["received"], &outbound["canceled"]];

    // From now on a fifth of Prom's answers are 500/502/503.
    cluster
        .http
        .put(sim("/_sim/faults"))
        .json(&serde_json::json!({"rate_429": 0.0, "rate_5xx": 0.2, "latency_ms": 0, "retry_after_s": 1}))
        .send()
        .await
        .expect("faults")
        .error_for_status()
        .expect("faults accepted");
    cluster
        .http
        .delete(sim("/_sim/calls"))
        .send()
        .await
        .expect("forget calls");
    let mut publisher = cluster.spawn("publish-0", &["publish"]);

    // Every order changes status in RO App and gets a waybill; every fifth one both
    // twice in quick succession.
    let mut rng = StdRng::seed_from_u64(4);
    let plans: Vec<(String, Vec<String>, Vec<String>)> = orders
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let pick = rng.random_range(0..2);
            let mut steps = vec![targets[pick].clone()];
            let mut waybills = vec![format!("2045{:010}", 2 * i)];
            if i % 5 == 0 {
                steps.insert(0, targets[1 - pick].clone());
                waybills.push(format!("2045{:010}", 2 * i + 1));
            }
            (id.clone(), steps, waybills)
        })
        .collect();
    let changes: usize = plans.iter().map(|(_, steps, _)| steps.len()).sum();
    let waybills: usize = plans.iter().map(|(_, _, w)| w.len()).sum();
    let finished = AtomicBool::new(false);
    let change = async {
        let answers: Vec<u16> = stream::iter(&plans)
            .map(|(id, steps, waybills)| {
                let cluster = &cluster;
                async move {
                    let mut codes = Vec::new();
                    for number in waybills {
                        let response = cluster
                            .http
                            .post(format!("{}/api/orders/{id}/waybill", cluster.serve_url))
                            .bearer_auth(&cluster.admin_token)
                            .json(&serde_json::json!({"number": number, "carrier": "nova_poshta"}))
                            .send()
                            .await
                            .expect("waybill");
                        codes.push(response.status().as_u16());
                    }
                    for status_id in steps {
                        let response = cluster
                            .http
                            .post(format!("{}/api/orders/{id}/status", cluster.serve_url))
                            .bearer_auth(&cluster.admin_token)
                            .json(&serde_json::json!({ "status_id": status_id.parse::<i64>().expect("id") }))
                            .send()
                            .await
                            .expect("status change");
                        codes.push(response.status().as_u16());
                    }
                    codes
                }
            })
            .buffer_unordered(8)
            .flat_map(stream::iter)
            .collect()
            .await;
        answers
    };
    // The publisher is SIGKILLed each time another quarter of the orders reached Prom.
    let killer = async {
        let mut kills = 0;
        while kills < 3 && !finished.load(Ordering::SeqCst) {
            let stats = cluster.get_json(&sim("/_sim/stats")).await;
            let calls = stats["calls"].as_u64().unwrap_or_default() as usize;
            if calls >= (kills + 1) * ORDERS / 4 {
                publisher.kill().await;
                kills += 1;
                publisher = cluster.spawn(&format!("publish-{kills}"), &["publish"]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        kills
    };
    let converge = async {
        let answers = change.await;
        // Until Prom agrees or the deadline: the mismatches left are the result.
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut mismatches = Vec::new();
        while Instant::now() < deadline {
            if let Some(now) = prom_mismatches(&cluster, &outbound, &sim("/_sim/orders")).await {
                mismatches = now;
                if mismatches.is_empty() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        finished.store(true, Ordering::SeqCst);
        (answers, mismatches)
    };
    let ((answers, mismatches), kills) = tokio::join!(converge, killer);
    let calls = cluster
        .get_json(&sim("/_sim/calls?path=/api/v1/orders/set_status"))
        .await;
    let calls = calls["calls"].as_array().expect("calls");
    let failed = calls.iter().filter(|c| c["status"] != 200).count();
    let resent = resent_statuses(calls);
    let waybill_calls = cluster
        .get_json(&sim(
            "/_sim/calls?path=/api/v1/delivery/save_declaration_id",
        ))
        .await;
    let waybill_calls = waybill_calls["calls"].as_array().expect("calls").len();
    Report {
        name: "publisher-kill",
        sent: changes + waybills,
        accepted: answers.iter().filter(|c| **c == 200 || **c == 202).count(),
        imported: orders.len() - mismatches.len(),
        duplicates: resent,
        lost: mismatches.len(),
        started,
        extra: format!(
            " kills={kills} prom_calls={} prom_failed={failed} waybills={waybills} waybill_calls={waybill_calls}",
            calls.len()
        ),
    }
    .print();
    assert_eq!(answers.len(), changes + waybills);
    assert_eq!(
        answers.iter().filter(|c| **c == 202).count(),
        waybills,
        "waybills refused: {answers:?}"
    );
    assert!(
        answers.iter().all(|c| *c == 200 || *c == 202),
        "status changes refused: {answers:?}"
    );
    assert_eq!(kills, 3, "the publisher was not killed mid-batch");
    assert!(failed > 0, "Prom never failed a call");
    // A status Prom already has is sent again only by a publisher killed between Prom's
    // answer and its commit: at most once per message in flight at a kill.
    let in_flight = promsync::config::Settings::defaults()
        .expect("defaults")
        .outbound
        .publish_concurrency
        .get();
    assert!(
        resent <= kills * in_flight,
        "{resent} statuses re-sent to Prom after {kills} kills"
    );
    assert!(
        mismatches.is_empty(),
        "(order, RO App's status and waybill, Prom's): {:?}",
        &mismatches[..mismatches.len().min(10)]
    );
}

/// Orders whose status on "Prom" is not what RO App's status maps to, or whose waybill
/// is not RO App's, as `(prom id, RO App's mapped status and waybill, Prom's)`.
async fn prom_mismatches(
    cluster: &Cluster,
    outbound: &HashMap<String, String>,
    sim_orders: &str,
) -> Option<Vec<(String, String, String)>> {
    let by_status: HashMap<&String, &String> = outbound.iter().map(|(p, s)| (s, p)).collect();
    let ro_app = cluster
        .rows(&format!(
            "SELECT external_id, status_id::text || ' ' || COALESCE(delivery_declaration_number, '-') \
             FROM orders WHERE shop_id = {}",
            cluster.shop_id
        ))
        .await?;
    let prom = cluster.get_json(sim_orders).await;
    let prom: HashMap<String, String> = prom["orders"]
        .as_array()?
        .iter()
        .map(|o| {
            (
                o["id"].to_string(),
                format!(
                    "{} {}",
                    o["status"].as_str().unwrap_or(""),
                    o["delivery_provider_data"]["declaration_number"]
                        .as_str()
                        .unwrap_or("-")
                ),
            )
        })
        .collect();
    Some(
        ro_app
            .into_iter()
            .filter_map(|(id, state)| {
                let (status, waybill) = state.split_once(' ').unwrap_or((&state, "-"));
                let want = format!(
                    "{} {waybill}",
                    by_status
                        .get(&status.to_owned())
                        .map(|s| s.as_str())
                        .unwrap_or("?")
                );
                let has = prom.get(&id).map(String::as_str).unwrap_or("missing");
                (want != has).then(|| (id, want, has.to_owned()))
            })
            .collect(),
    )
}

/// Successful `set_status` calls that sent an order the status Prom already had from
/// the previous successful call (a resend after a kill between Prom's answer and the ack).
fn resent_statuses(calls: &[serde_json::Value]) -> usize {
    let mut last: HashMap<String, String> = HashMap::new();
    let mut resent = 0;
    for call in calls.iter().filter(|c| c["status"] == 200) {
        let status = call["body"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for id in call["body"]["ids"].as_array().into_iter().flatten() {
            if last.insert(id.to_string(), status.clone()).as_ref() == Some(&status) {
                resent += 1;
            }
        }
    }
    resent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_among_a_thousand_good_ones_is_one_dead_letter() {
    let started = Instant::now();
    let cluster = Cluster::start("poison-message", &["--orders", "0"]).await;
    let _importer = cluster.spawn("import", &["import"]);
    let notes: Vec<Notification> = (0..1_000)
        .map(|i| order_notification(950_000_000 + i, 1))
        .collect();
    let mut results = cluster.send_all(&notes[..500], 32).await;
    publish_poison(&cluster.rabbit.url()).await;
    results.extend(cluster.send_all(&notes[500..], 32).await);
    let accepted = results.iter().filter(|r| matches!(r, Ok(202))).count();

    let expected = newest_accepted(&notes, &results);
    let tally = cluster
        .settle(&expected, accepted, Duration::from_secs(120))
        .await;
    let dead = chaos::cluster::eventually(
        "the poison message in the dead letters",
        Duration::from_secs(60),
        || async {
            let dead = cluster.dead_letters().await;
            (!dead.is_empty()).then_some(dead)
        },
    )
    .await;
    Report {
        name: "poison-message",
        sent: notes.len() + 1,
        accepted: accepted + 1,
        imported: tally.imported,
        duplicates: tally.duplicates,
        lost: tally.lost,
        started,
        extra: format!(" dead_letters={}", dead.len()),
    }
    .print();
    assert_eq!(accepted, notes.len(), "the ingress refused notifications");
    assert_eq!(dead.len(), 1, "dead letters: {dead:?}");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("undecodable")),
        "{dead:?}"
    );
    assert_eq!(tally.imported, 1_000);
    assert_eq!(tally.lost, 0);
    assert_eq!(tally.duplicates, 0);
}

/// Publishes a message no importer can decode straight into the inbound exchange, as a
/// buggy producer (or a hand-made `rabbitmqadmin publish`) would.
async fn publish_poison(url: &str) {
    use lapin::{
        options::{BasicPublishOptions, ConfirmSelectOptions},
        BasicProperties, Connection, ConnectionProperties,
    };
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("private broker");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let topology = Topology::new("promsync");
    let confirm = channel
        .basic_publish(
            topology.exchange(Lane::Inbound).as_str().into(),
            Topology::FRESH.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"{\"this is\": \"not a notification\"}",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id("poison-1".into()),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "the broker refused the poison message");
    let _ = conn.close(200, "bye".into()).await;
}
