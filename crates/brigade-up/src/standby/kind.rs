//! The standby's `postgres` as a supervised child: how it is started, found ready and stopped.
//! Restarts, backoff and crash loops are [`crate::supervise`]'s, as for every child.

use std::sync::Arc;
use std::time::Duration;

use brigade_core::Shutdown;
use rustix::process::Signal;
use sqlx::Connection as _;
use tokio::sync::oneshot;

use super::StandbyPlan;
use crate::api::Service;
use crate::child::{self, ChildSpec, Running};
use crate::logs::LogSink;
use crate::supervise::{Kind, StartFailure};

/// How long `postgres` may take to accept connections in recovery (crash recovery after a
/// kill included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often readiness is asked: PostgreSQL has no readiness signal but answering.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long one readiness question may take (a server that accepts and never answers).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fast shutdown may take before the standby is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The local standby's `postgres`.
pub(crate) struct Standby {
    /// Programs, data directory, port and read URL.
    pub plan: Arc<StandbyPlan>,
    /// Central logs (its stderr lines go there).
    pub sink: LogSink,
    /// Told the outcome of the first start: `up` starts the replicas only after it.
    pub first_start: Option<oneshot::Sender<Result<(), StartFailure>>>,
}

impl Standby {
    fn spec(&self) -> ChildSpec {
        let plan = &self.plan;
        let dir = plan.dir.display().to_string();
        ChildSpec {
            service: Service::Standby,
            instance: "standby".into(),
            args: vec![
                "-D".into(),
                dir.clone(),
                "-p".into(),
                plan.port.to_string(),
                "-k".into(),
                dir,
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "hot_standby=on".into(),
            ],
            env: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// Starts `postgres` and waits until it answers in recovery, or exits, or `up` stops.
    async fn start_once(&self, stop: &Shutdown) -> Result<Running, StartFailure> {
        let failed = |cause: String| StartFailure::Failed(cause);
        let program = self.plan.bin.join("postgres");
        // SIGINT is PostgreSQL's fast shutdown: when `up` dies, the standby stops cleanly.
        let mut running = child::spawn_tied(
            &self.plan.setpriv,
            &program,
            &self.spec(),
            &self.sink,
            "INT",
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        let ready = tokio::select! {
            status = running.exited() => Err(running.cause(status).await),
            ready = in_recovery(&self.plan.read_url) => ready.map_err(|cause| cause.to_string()),
            () = stop.wait() => {
                running.interrupt(Signal::INT, STOP_GRACE).await;
                return Err(StartFailure::Stopped);
            }
        };
        match ready {
            Ok(()) => Ok(running),
            Err(cause) => {
                running.interrupt(Signal::INT, STOP_GRACE).await;
                Err(failed(cause))
            }
        }
    }
}

impl Kind for Standby {
    fn instance(&self) -> &str {
        "standby"
    }

    fn metrics_label(&self) -> String {
        "standby".into()
    }

    async fn start(&mut self, stop: &Shutdown) -> Result<Running, StartFailure> {
        let started = self.start_once(stop).await;
        if let Some(first) = self.first_start.take() {
            let _ = first.send(started.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if started.is_ok() {
            tracing::info!(port = self.plan.port, "the local standby accepts reads");
        }
        started
    }

    fn address(&self, _running: &Running) -> Option<String> {
        Some(format!("127.0.0.1:{}", self.plan.port))
    }

    async fn exited(&mut self, _running: &Running) {}

    async fn retire(&mut self, running: Running) {
        running.interrupt(Signal::INT, STOP_GRACE).await;
    }
}

/// Why a started standby is not serving reads.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    /// It answers as a primary: it was promoted.
    #[error(
        "it answers but is not in recovery (was it promoted?); remove its data \
         directory to make it again"
    )]
    Promoted,
    /// It did not accept a connection in time.
    #[error("not accepting connections within {secs} s: {last}")]
    Silent {
        /// The time it had.
        secs: u64,
        /// The last connection error.
        last: String,
    },
}

/// Waits until the standby at `url` accepts a connection and is in recovery (a standby, not a
/// server that was promoted); the last reason it was not, after [`READY_TIMEOUT`].
async fn in_recovery(url: &str) -> Result<(), NotReady> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut last;
    loop {
        match tokio::time::timeout(ASK_TIMEOUT, recovery_state(url)).await {
            Ok(Ok(true)) => return Ok(()),
            // Not a standby any more; restarts will not change that, so the cause says how.
            Ok(Ok(false)) => return Err(NotReady::Promoted),
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = format!("no answer within {} s", ASK_TIMEOUT.as_secs()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NotReady::Silent {
                secs: READY_TIMEOUT.as_secs(),
                last,
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// `SELECT pg_is_in_recovery()` on a fresh connection.
async fn recovery_state(url: &str) -> Result<bool, sqlx::Error> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(in_recovery)
}
