//! `promsync demo` end to end: the real binary on a fresh machine (no database or broker
//! configured), as a user would first run it.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A directory of its own, so the demo proves it needs nothing from the current one.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("promsync-demo-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    dir
}

/// The number after `label` on the summary line that starts with it.
fn count_after(summary: &str, label: &str) -> Option<usize> {
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[test]
fn the_demo_imports_the_pushed_orders_and_sends_statuses_back_to_prom_on_a_fresh_machine() {
    let dir = scratch_dir();
    let stdout_path = dir.join("stdout.txt");
    let stderr_path = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_promsync"))
        .args(["demo", "--exit", "--orders", "5", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env_remove("PROMSYNC_DATABASE_URL")
        .env_remove("PROMSYNC_BROKER_URL")
        .env_remove("PROMSYNC_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("starting promsync demo");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for promsync demo") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let wrote_cwd_db = dir.join("promsync.db").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}");

    let status = status.unwrap_or_else(|| panic!("demo still running after {TIMEOUT:?}\n{report}"));
    assert!(status.success(), "demo exited with {status}\n{report}");
    assert_eq!(
        count_after(&stdout, "Orders imported:"),
        Some(5),
        "5 imported orders expected\n{report}"
    );
    let sent = count_after(&stdout, "Statuses sent to Prom:").unwrap_or(0);
    assert!(
        sent >= 2,
        "at least 2 statuses sent to Prom expected\n{report}"
    );
    assert!(
        stdout.contains("→ received") && stdout.contains("→ canceled"),
        "the summary names the Prom statuses sent\n{report}"
    );
    assert!(
        stdout.contains("Authorization: Bearer ps_") && stdout.contains("/api/orders"),
        "the summary shows how to call the API\n{report}"
    );
    assert!(
        stdout.contains("operator UI") && stdout.contains("/ui  (sign in"),
        "the summary points at the operator UI\n{report}"
    );
    assert!(
        !wrote_cwd_db,
        "the demo must not write promsync.db into the current directory"
    );
}
