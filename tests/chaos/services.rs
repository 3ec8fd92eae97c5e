//! Private PostgreSQL and RabbitMQ instances for the chaos suite.
//!
//! The shared services on a CI or developer machine serve other people's tests, so the
//! suite never stops them: each scenario starts its own PostgreSQL cluster (initdb in a
//! scratch directory, its own port) and its own RabbitMQ node (its own node name, ports,
//! Mnesia and log directories, no plugins), breaks those, and tears them down on drop,
//! also when the scenario panics.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt;

/// Where Debian puts RabbitMQ's own scripts (the `/usr/sbin` ones only re-exec these as
/// the `rabbitmq` user, and always against the system node's settings).
const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";
/// The `rabbitmq` user's home, which holds the Erlang cookie the CLI tools must share
/// with the node.
const RABBIT_HOME: &str = "/var/lib/rabbitmq";
/// Bound of every external command, so a hung tool fails the scenario instead of CI.
const COMMAND_TIMEOUT_S: u64 = 90;

/// A port free right now on 127.0.0.1 (the kernel picks it; the listener is dropped).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The newest PostgreSQL server binaries installed (`PROMSYNC_CHAOS_PG_BIN` overrides).
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PROMSYNC_CHAOS_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// Fails loudly (never skips) when this machine cannot host private instances.
pub fn require_tooling() {
    let mut missing = Vec::new();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        missing.push(
            "root (the suite runs initdb and rabbitmq-server as their own users through runuser)"
                .to_owned(),
        );
    }
    for tool in [
        pg_bin().join("initdb"),
        pg_bin().join("pg_ctl"),
        PathBuf::from(RABBIT_BIN).join("rabbitmq-server"),
        PathBuf::from(RABBIT_BIN).join("rabbitmqctl"),
        PathBuf::from(RABBIT_HOME).join(".erlang.cookie"),
    ] {
        if !tool.exists() {
            missing.push(tool.display().to_string());
        }
    }
    for user in ["postgres", "rabbitmq"] {
        if !Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            missing.push(format!("system user `{user}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "the chaos suite needs PostgreSQL and RabbitMQ installed (deploy/test.sh installs \
         them) and root; missing: {}",
        missing.join(", ")
    );
}

/// Runs `program args…` bounded by `timeout`, optionally as another user; panics with
/// the output when it fails.
pub fn run(user: Option<&str>, envs: &[(&str, String)], program: &Path, args: &[&str]) -> Output {
    let output = command(user, envs, program, args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{}{}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn command(user: Option<&str>, envs: &[(&str, String)], program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(COMMAND_TIMEOUT_S.to_string());
    if let Some(user) = user {
        cmd.args(["runuser", "-u", user, "--"]);
    }
    cmd.arg("env");
    for (key, value) in envs {
        cmd.arg(format!("{key}={value}"));
    }
    cmd.arg(program).args(args).stdin(Stdio::null());
    cmd
}

/// A scratch directory under /tmp that the service users can enter; removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "promsync-chaos-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        chmod(&dir, 0o755);
        Self(dir)
    }

    /// A subdirectory owned by `user` (the services refuse to run as root).
    pub fn owned_by(&self, name: &str, user: &str) -> PathBuf {
        let dir = self.0.join(name);
        std::fs::create_dir_all(&dir).expect("service directory");
        run(
            None,
            &[],
            Path::new("chown"),
            &["-R", &format!("{user}:"), &dir.display().to_string()],
        );
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("chaos: logs kept in {}", self.0.display());
        } else {
            // A server process may still be closing files: try again for a moment.
            for _ in 0..50 {
                if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("chaos: could not remove {}", self.0.display());
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A PostgreSQL cluster of its own: trust auth, one port, sockets in its directory.
pub struct PrivatePostgres {
    dir: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start(scratch: &Scratch) -> Self {
        let dir = scratch.owned_by("pg", "postgres");
        let data = dir.join("data").display().to_string();
        run(
            Some("postgres"),
            &[],
            &pg_bin().join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let pg = Self {
            dir,
            port: free_port(),
        };
        pg.ctl(&["start"]);
        pg
    }

    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// The URL as seen through something listening on `port` that forwards here.
    pub fn url_via(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn ctl(&self, action: &[&str]) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        // fsync off: a killed server still recovers from the OS page cache, which is all
        // these scenarios break; only a machine crash would need the flushes.
        let options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.dir.display(),
            self.port
        );
        let mut args = vec!["-D", &data, "-l", &log, "-w", "-t", "60"];
        args.extend_from_slice(action);
        if action[0] == "start" {
            args.extend_from_slice(&["-o", &options]);
        }
        run(Some("postgres"), &[], &pg_bin().join("pg_ctl"), &args);
    }

    /// Kills the server the hard way (no checkpoint, clients cut off mid-transaction).
    pub fn crash(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
    }

    /// Starts it again (crash recovery first) and waits until it takes connections.
    pub fn start_again(&self) {
        self.ctl(&["start"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = command(
            Some("postgres"),
            &[],
            &pg_bin().join("pg_ctl"),
            &["-D", &data, "-w", "-t", "30", "stop", "-m", "immediate"],
        )
        .output();
    }
}

/// A RabbitMQ node of its own (`promsync-chaos-…@localhost`), started as a child.
pub struct PrivateRabbit {
    dir: PathBuf,
    pub node: String,
    pub port: u16,
    child: Child,
}

impl PrivateRabbit {
    pub fn start(scratch: &Scratch) -> Self {
        let dir = scratch.owned_by("rabbit", "rabbitmq");
        // An empty env file keeps /etc/rabbitmq/rabbitmq-env.conf (the system node's
        // name and ports) out; an empty plugin list keeps the management port free.
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("env file");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(dir.join("rabbitmq.conf"), "log.console = false\n").expect("config");
        run(
            None,
            &[],
            Path::new("chown"),
            &["-R", "rabbitmq:", &dir.display().to_string()],
        );
        let node = format!(
            "promsync-chaos-{}@localhost",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("stdout.log")).expect("log file");
        let mut envs = Self::cli_env(&dir);
        envs.extend([
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", free_port().to_string()),
            (
                "RABBITMQ_MNESIA_BASE",
                dir.join("mnesia").display().to_string(),
            ),
            ("RABBITMQ_LOG_BASE", dir.join("log").display().to_string()),
            (
                "RABBITMQ_PID_FILE",
                dir.join("node.pid").display().to_string(),
            ),
            (
                "RABBITMQ_CONFIG_FILE",
                dir.join("rabbitmq.conf").display().to_string(),
            ),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                dir.join("enabled_plugins").display().to_string(),
            ),
        ]);
        // Not under `timeout`: the node lives as long as the scenario. Its own process
        // group, so teardown can kill the whole tree if the polite stop fails.
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "rabbitmq", "--", "env"]);
        for (key, value) in &envs {
            cmd.arg(format!("{key}={value}"));
        }
        cmd.arg(Path::new(RABBIT_BIN).join("rabbitmq-server"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().expect("starting rabbitmq-server");
        let mut rabbit = Self {
            dir,
            node,
            port,
            child,
        };
        rabbit.await_startup(Duration::from_secs(120));
        rabbit
    }

    fn cli_env(dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", RABBIT_HOME.to_owned()),
            (
                "RABBITMQ_CONF_ENV_FILE",
                dir.join("rabbitmq-env.conf").display().to_string(),
            ),
        ]
    }

    pub fn url(&self) -> String {
        self.url_via(self.port)
    }

    /// The URL as seen through something listening on `port` that forwards here.
    pub fn url_via(&self, port: u16) -> String {
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
    }

    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut full = vec!["-n", self.node.as_str()];
        full.extend_from_slice(args);
        command(
            Some("rabbitmq"),
            &Self::cli_env(&self.dir),
            &Path::new(RABBIT_BIN).join("rabbitmqctl"),
            &full,
        )
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_command(args)
            .output()
            .expect("running rabbitmqctl")
    }

    /// Waits until the node runs the broker and its AMQP port takes connections.
    fn await_startup(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the private RabbitMQ node exited ({status}) during startup:\n{}",
                    self.log_tail()
                );
            }
            // `await_startup` fails at once while the node is not registered yet.
            let ok = self
                .ctl(&["await_startup", "--timeout", "20"])
                .status
                .success()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private RabbitMQ node did not start within {within:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("stdout.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text.chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// Stops the broker application (every connection dropped, the port closed); the
    /// Erlang node stays up so `start_app` brings the same broker back.
    pub async fn stop_app(&self) {
        let out = self.ctl_async(&["stop_app"]).await;
        assert!(out.status.success(), "rabbitmqctl stop_app: {out:?}");
    }

    /// Starts the broker application again and waits until AMQP takes connections.
    pub async fn start_app(&self) {
        let out = self.ctl_async(&["start_app"]).await;
        assert!(out.status.success(), "rabbitmqctl start_app: {out:?}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the private RabbitMQ did not listen again within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `rabbitmqctl` without blocking the runtime, so load keeps flowing meanwhile.
    async fn ctl_async(&self, args: &[&str]) -> Output {
        tokio::process::Command::from(self.ctl_command(args))
            .output()
            .await
            .expect("running rabbitmqctl")
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        // Whatever is left of the tree (the shell wrapper, a node that ignored the
        // stop): its own process group, signalled with killpg. (Not the `kill` CLI:
        // procps reads `kill -KILL -15000` as signal to pid -1, that is everything.)
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            if pgid > 1 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.child.wait();
    }
}
