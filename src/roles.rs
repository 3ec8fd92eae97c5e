//! Supervision of a process's roles (HTTP, importer, poller, publisher, …).
//!
//! Every long-running subcommand is a [`Supervisor`] holding named roles over one shared
//! shutdown token. Roles run until that token fires; a role that ends otherwise (returns
//! an error, panics, or returns `Ok` while nobody asked it to stop) stops the whole
//! process: the supervisor logs which role ended and why, cancels the token so the other
//! roles finish their in-flight work, and reports the failure, which makes the process
//! exit non-zero.
//!
//! Stopping rather than restarting in place is deliberate: a role that died may have died
//! of its own broken state (a poisoned connection, a bug), and the orchestrator
//! (systemd, Kubernetes, Compose) already restarts a process with backoff and counts the
//! restarts where operators look. Half a process that looks alive would hide the failure;
//! a process that exits makes it visible, and the work it held is redelivered or
//! re-leased to the restarted one.
//!
//! [`RoleHealth`] is what the roles' states look like from outside: `/readyz` answers 503
//! naming a role that failed. The signals that stop a process (SIGTERM, Ctrl-C) are
//! awaited here too ([`shutdown_signal`]), so every role shuts down the same way.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// Why a role ended when it should not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The role returned an error.
    Error,
    /// The role panicked.
    Panic,
    /// The role returned `Ok` before shutdown was asked: its work silently stopped.
    EndedEarly,
}

impl Failure {
    /// How `/readyz` names the failure.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "failed",
            Self::Panic => "panicked",
            Self::EndedEarly => "ended_early",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Error => "returned an error",
            Self::Panic => "panicked",
            Self::EndedEarly => "ended before shutdown was asked",
        })
    }
}

/// Where a role stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleState {
    Running,
    /// Finished after shutdown was asked (or, for a finite role, its work was done).
    Stopped,
    Failed(Failure),
}

impl RoleState {
    /// How `/readyz` shows the state: `ok`, `stopped`, or the failure's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "ok",
            Self::Stopped => "stopped",
            Self::Failed(failure) => failure.as_str(),
        }
    }
}

/// The roles of this process and their states, shared by the supervisor (which writes)
/// and the HTTP state (which `/readyz` reads). A process without roles (tests building an
/// `Application` alone) has an empty registry, which is healthy.
#[derive(Debug, Clone, Default)]
pub struct RoleHealth {
    roles: Arc<Mutex<BTreeMap<&'static str, RoleState>>>,
}

impl RoleHealth {
    pub fn set(&self, role: &'static str, state: RoleState) {
        // The map stays consistent whatever panicked while holding the lock: one insert.
        self.roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(role, state);
    }

    /// Every role and its state, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, RoleState> {
        self.roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The role that stopped the process, and how. The details (the error, the panic
/// message) are in the log line the supervisor wrote when it happened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the {role} role {failure}; the other roles were stopped")]
pub struct RoleFailure {
    pub role: &'static str,
    pub failure: Failure,
}

/// Whether a role's `Ok` end is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Runs until shutdown; ending earlier is a failure.
    Service,
    /// Has a job to finish (the demo's story): when it returns `Ok`, the process is done
    /// and the other roles are asked to stop.
    Finite,
}

/// A set of named roles over one shutdown token; see the module documentation.
pub struct Supervisor {
    shutdown: CancellationToken,
    health: RoleHealth,
    tasks: JoinSet<anyhow::Result<()>>,
    roles: HashMap<Id, (&'static str, Kind)>,
    signals: Option<AbortHandle>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            shutdown: CancellationToken::new(),
            health: RoleHealth::default(),
            tasks: JoinSet::new(),
            roles: HashMap::new(),
            signals: None,
        }
    }

    /// The registry the roles' states are kept in, for the HTTP state's `/readyz`.
    pub fn health(&self) -> RoleHealth {
        self.health.clone()
    }

    /// The token every role stops on; cancelling it shuts the set down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts a role that runs until the shutdown token (which `start` is handed) fires.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.start(name, Kind::Service, start);
    }

    /// Starts a role with a job to finish: its `Ok` end shuts the other roles down and
    /// the set succeeds. It still gets the token, to give up when the process stops.
    pub fn spawn_finite<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.start(name, Kind::Finite, start);
    }

    fn start<F, Fut>(&mut self, name: &'static str, kind: Kind, start: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let task = self.tasks.spawn(start(self.shutdown.clone()));
        self.roles.insert(task.id(), (name, kind));
        self.health.set(name, RoleState::Running);
    }

    /// Shuts the set down gracefully on SIGTERM or Ctrl-C. From the first signal on, or
    /// once a failing role started the shutdown, another signal exits at once (130).
    pub fn stop_on_signal(&mut self) {
        let shutdown = self.shutdown.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = shutdown_signal() => shutdown.cancel(),
                () = shutdown.cancelled() => exit_on_signal().await,
            }
        });
        self.signals = Some(task.abort_handle());
    }

    /// Waits until every role has ended. `Ok` when they all ended after shutdown was
    /// asked (or a finite role finished); otherwise the first role that ended unexpectedly.
    /// Later failures while the others drain are logged and recorded too.
    pub async fn run(mut self) -> Result<(), RoleFailure> {
        let mut first = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let (id, ended) = match joined {
                Ok((id, result)) => (id, result.map_err(Ended::Error)),
                Err(e) => (e.id(), Err(Ended::from(e))),
            };
            let Some((role, kind)) = self.roles.remove(&id) else {
                continue;
            };
            let stopping = self.shutdown.is_cancelled();
            let failure = match ended {
                Ok(()) if stopping => None,
                Ok(()) if kind == Kind::Finite => {
                    tracing::info!(role, "role finished: stopping the other roles");
                    None
                }
                Ok(()) => {
                    tracing::error!(role, "role ended before shutdown was asked: stopping");
                    Some(Failure::EndedEarly)
                }
                Err(Ended::Error(e)) => {
                    tracing::error!(role, error = format!("{e:#}"), "role failed: stopping");
                    Some(Failure::Error)
                }
                Err(Ended::Panic(message)) => {
                    tracing::error!(role, panic = message, "role panicked: stopping");
                    Some(Failure::Panic)
                }
            };
            match failure {
                None => self.health.set(role, RoleState::Stopped),
                Some(failure) => {
                    self.health.set(role, RoleState::Failed(failure));
                    first.get_or_insert(RoleFailure { role, failure });
                }
            }
            // Whatever ended first, the others now finish their in-flight work and stop.
            self.shutdown.cancel();
        }
        if let Some(signals) = self.signals.take() {
            signals.abort();
        }
        first.map_or(Ok(()), Err)
    }
}

/// How a role's task ended, before deciding whether that was expected.
enum Ended {
    Error(anyhow::Error),
    Panic(String),
}

impl From<JoinError> for Ended {
    fn from(e: JoinError) -> Self {
        match e.try_into_panic() {
            Ok(payload) => Self::Panic(
                payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic payload".to_owned()),
            ),
            // Only the supervisor could abort a task, and it does not.
            Err(e) => Self::Error(anyhow::Error::new(e).context("the task was cancelled")),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C; a second signal exits at once.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight work (signal again to exit now)");
    tokio::spawn(exit_on_signal());
}

/// For a process already shutting down: a signal exits at once (130), without waiting
/// for the in-flight work.
pub async fn exit_on_signal() {
    wait_for_signal().await;
    tracing::warn!("signal during shutdown: exiting now");
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::BoxFuture;

    use super::*;

    /// A role that runs until shutdown and counts that it saw it.
    fn patient(
        saw_shutdown: &Arc<AtomicUsize>,
    ) -> impl FnOnce(CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        let saw_shutdown = saw_shutdown.clone();
        move |stop| {
            Box::pin(async move {
                stop.cancelled().await;
                saw_shutdown.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn buggy() -> anyhow::Result<()> {
        panic!("a bug in the poller")
    }

    /// Runs two patient roles beside `culprit` and returns how the set ended, how many
    /// patient roles saw the shutdown, and the registry.
    async fn run_beside<Fut>(
        culprit: impl FnOnce(CancellationToken) -> Fut,
    ) -> (Result<(), RoleFailure>, usize, RoleHealth)
    where
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let saw_shutdown = Arc::new(AtomicUsize::new(0));
        let mut roles = Supervisor::new();
        roles.spawn("importer", patient(&saw_shutdown));
        roles.spawn("poller", culprit);
        roles.spawn("publisher", patient(&saw_shutdown));
        let health = roles.health();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), roles.run())
            .await
            .expect("the set stops by itself");
        (ended, saw_shutdown.load(Ordering::SeqCst), health)
    }

    #[tokio::test]
    async fn a_role_returning_an_error_stops_the_set_and_is_named() {
        let (ended, saw_shutdown, health) =
            run_beside(|_| async { Err(anyhow::anyhow!("database gone")) }).await;

        assert_eq!(
            ended,
            Err(RoleFailure {
                role: "poller",
                failure: Failure::Error
            })
        );
        assert_eq!(saw_shutdown, 2);
        let states = health.snapshot();
        assert_eq!(states["poller"], RoleState::Failed(Failure::Error));
        assert_eq!(states["importer"], RoleState::Stopped);
        assert_eq!(states["publisher"], RoleState::Stopped);
    }

    #[tokio::test]
    async fn a_role_that_panics_stops_the_set_and_is_named() {
        let (ended, saw_shutdown, health) = run_beside(|_| async { buggy() }).await;

        assert_eq!(
            ended,
            Err(RoleFailure {
                role: "poller",
                failure: Failure::Panic
            })
        );
        assert_eq!(saw_shutdown, 2);
        assert_eq!(
            health.snapshot()["poller"],
            RoleState::Failed(Failure::Panic)
        );
    }

    #[tokio::test]
    async fn a_role_returning_early_stops_the_set_and_is_named() {
        let (ended, saw_shutdown, health) = run_beside(|_| async { Ok(()) }).await;

        assert_eq!(
            ended,
            Err(RoleFailure {
                role: "poller",
                failure: Failure::EndedEarly
            })
        );
        assert_eq!(saw_shutdown, 2);
        assert_eq!(
            health.snapshot()["poller"],
            RoleState::Failed(Failure::EndedEarly)
        );
    }

    #[tokio::test]
    async fn shutdown_asked_from_outside_ends_every_role_and_the_set_succeeds() {
        let saw_shutdown = Arc::new(AtomicUsize::new(0));
        let mut roles = Supervisor::new();
        roles.spawn("importer", patient(&saw_shutdown));
        roles.spawn("poller", patient(&saw_shutdown));
        let health = roles.health();
        assert!(health
            .snapshot()
            .values()
            .all(|state| *state == RoleState::Running));

        roles.shutdown_token().cancel();

        assert_eq!(roles.run().await, Ok(()));
        assert_eq!(saw_shutdown.load(Ordering::SeqCst), 2);
        assert!(health
            .snapshot()
            .values()
            .all(|state| *state == RoleState::Stopped));
    }

    #[tokio::test]
    async fn a_finite_role_that_finishes_stops_the_others_and_the_set_succeeds() {
        let saw_shutdown = Arc::new(AtomicUsize::new(0));
        let mut roles = Supervisor::new();
        roles.spawn("importer", patient(&saw_shutdown));
        roles.spawn_finite("demo", |_| async { Ok(()) });

        assert_eq!(roles.run().await, Ok(()));
        assert_eq!(saw_shutdown.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_role_failing_while_the_others_drain_is_recorded_but_the_first_is_reported() {
        let mut roles = Supervisor::new();
        roles.spawn("importer", |_| async {
            Err(anyhow::anyhow!("broker gone"))
        });
        roles.spawn("publisher", |stop: CancellationToken| async move {
            stop.cancelled().await;
            Err(anyhow::anyhow!("could not settle"))
        });
        let health = roles.health();

        let ended = roles.run().await;

        assert_eq!(
            ended,
            Err(RoleFailure {
                role: "importer",
                failure: Failure::Error
            })
        );
        assert_eq!(
            health.snapshot()["publisher"],
            RoleState::Failed(Failure::Error)
        );
    }
}
