//! One pool of replicas: its slots (one supervised replica each), scaling, and rolling
//! replacement.
//!
//! A slot keeps one replica running (restart with backoff on crashes). A rollout replaces the
//! slots one at a time — start the new process, wait until ready, put it into the balancer,
//! take the old one out (draining it), stop the old one — so capacity never drops
//! (maxUnavailable 0, maxSurge 1). Scaling adds slots or stops the newest ones, each stop
//! draining its replica out of the balancer first.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_core::Shutdown;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::api::{ChildStatus, EventKind, EventLevel, Service};
use crate::balancer::{BalancerAdmin, wait_ready};
use crate::child::{self, ChildSpec, Running};
use crate::child_state::ChildState;
use crate::logs::LogSink;
use crate::shared::Shared;
use crate::supervise::{self, Backoff, Kind, StartFailure};
use crate::topology::PoolPlan;

pub(crate) mod command;

pub use command::{PoolCommand, RolloutError};

/// How long a replica may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping child may drain before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// What every slot of a pool shares.
#[derive(Clone)]
pub struct PoolContext {
    /// The pool.
    pub plan: PoolPlan,
    /// The binary new replicas run (changed by an upgrade).
    pub binary: Arc<Mutex<PathBuf>>,
    /// `--data-dir` of every replica.
    pub data_dir: PathBuf,
    /// The balancer's admin API.
    pub admin: BalancerAdmin,
    /// Status and events.
    pub shared: Shared,
    /// Central logs.
    pub sink: LogSink,
    /// First restart delay.
    pub base_backoff: Duration,
    /// Longest restart delay.
    pub max_backoff: Duration,
    /// Environment of every replica (`DATABASE_URL` of the database relay).
    pub env: Vec<(String, String)>,
    /// Where replicas send their traces.
    pub trace_env: crate::trace_env::TraceEnv,
    /// Set while the pool halts: retiring replicas are killed instead of drained.
    pub halting: Arc<AtomicBool>,
}

impl PoolContext {
    fn binary(&self) -> PathBuf {
        self.binary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A slot's handle.
struct Slot {
    instance: String,
    backup: bool,
    stop: Shutdown,
    replace: mpsc::Sender<oneshot::Sender<bool>>,
    task: JoinHandle<()>,
}

/// Manages a pool until `stop`, then stops every replica (each leaves the balancer first).
pub async fn manage(
    context: PoolContext,
    mut commands: mpsc::Receiver<PoolCommand>,
    stop: Shutdown,
) {
    crate::metrics::pool_started(&context.plan.name);
    let mut manager = Manager {
        context,
        slots: Vec::new(),
        next: 0,
    };
    let (replicas, backups) = (manager.context.plan.replicas, manager.context.plan.backups);
    manager.start_slots(replicas, backups);
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = stop.wait() => None,
        };
        match command {
            None => break,
            Some(PoolCommand::Scale { replicas, reason }) => manager.scale(replicas, &reason).await,
            Some(PoolCommand::Rollout { binary, done }) => {
                let _ = done.send(manager.rollout(binary).await);
            }
            Some(PoolCommand::Halt { halted, resume }) => {
                let (primaries, backups) = manager.halt().await;
                let _ = halted.send(());
                tokio::select! {
                    _ = resume => {}
                    () = stop.wait() => break,
                }
                manager.start_slots(primaries, backups);
            }
        }
    }
    manager.stop_all().await;
}

/// A pool's replicas and what starts more.
struct Manager {
    context: PoolContext,
    slots: Vec<Slot>,
    /// The number of the next replica started: instance names are never reused.
    next: usize,
}

impl Manager {
    fn start_slots(&mut self, primaries: usize, backups: usize) {
        for n in 0..primaries + backups {
            self.next += 1;
            self.slots
                .push(start_slot(&self.context, self.next, n >= primaries));
        }
    }

    fn event(&self, level: EventLevel, kind: EventKind, message: String) {
        self.context.shared.events.push(level, kind, None, message);
    }

    /// Starts or stops primaries until there are `replicas`; the newest go first.
    async fn scale(&mut self, replicas: usize, reason: &str) {
        let primaries = self.slots.iter().filter(|s| !s.backup).count();
        if replicas == primaries {
            return;
        }
        let pool = &self.context.plan.name;
        let span = tracing::info_span!(
            "scale",
            otel.name = %format_args!("scale {pool}"),
            otel.kind = "internal",
            brigade.pool = %pool,
            brigade.scale.from = primaries,
            brigade.scale.to = replicas,
            brigade.scale.reason = reason,
        );
        let _in_scale = span.enter();
        let message = format!("pool {pool}: {primaries} → {replicas} replicas ({reason})");
        self.event(EventLevel::Info, EventKind::Scale, message);
        self.start_slots(replicas.saturating_sub(primaries), 0);
        drop(_in_scale);
        for _ in replicas..primaries {
            let Some(index) = self.slots.iter().rposition(|s| !s.backup) else {
                break;
            };
            let slot = self.slots.remove(index);
            slot.stop.trigger();
            let _ = slot.task.instrument(span.clone()).await;
            self.context.shared.remove(&slot.instance);
        }
    }

    /// Replaces every replica in turn with `binary` (or the same one), stopping at the first
    /// that cannot be replaced. Answers how many were replaced, or why it stopped.
    async fn rollout(&mut self, binary: Option<PathBuf>) -> Result<usize, RolloutError> {
        if let Some(binary) = binary {
            *self
                .context
                .binary
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = binary;
        }
        let pool = &self.context.plan.name;
        let message = format!(
            "pool {pool}: rolling restart of {} replicas",
            self.slots.len()
        );
        self.event(EventLevel::Info, EventKind::Rollout, message);
        let rollout = rollout_span(pool, self.slots.len());
        let mut replaced = 0;
        for slot in &self.slots {
            let step = replace_span(&rollout, &slot.instance);
            let (tx, rx) = oneshot::channel();
            let done = async { slot.replace.send(tx).await.is_ok() && rx.await.unwrap_or(false) };
            if !done.instrument(step.clone()).await {
                let error = RolloutError::NotReplaced {
                    instance: slot.instance.clone(),
                };
                let reason = error.to_string();
                for span in [&step, &rollout] {
                    brigade_core::traces::mark_failed(span, &reason);
                }
                self.event(EventLevel::Error, EventKind::Rollout, reason);
                return Err(error);
            }
            replaced += 1;
        }
        let message = format!("pool {pool}: {replaced} replicas replaced");
        self.event(EventLevel::Info, EventKind::Rollout, message);
        Ok(replaced)
    }

    /// Stops every replica at once (the restore drill's halt); answers how many primaries and
    /// backups there were, to start again on resume.
    async fn halt(&mut self) -> (usize, usize) {
        let backups = self.slots.iter().filter(|s| s.backup).count();
        let primaries = self.slots.len() - backups;
        self.context.halting.store(true, Ordering::Relaxed);
        for slot in &self.slots {
            slot.stop.trigger();
        }
        for slot in self.slots.drain(..) {
            let _ = slot.task.await;
            self.context.shared.remove(&slot.instance);
        }
        self.context.halting.store(false, Ordering::Relaxed);
        (primaries, backups)
    }

    async fn stop_all(self) {
        for slot in &self.slots {
            slot.stop.trigger();
        }
        for slot in self.slots {
            let _ = slot.task.await;
        }
    }
}

/// A rollout of `pool`: a trace of its own whose children are the replicas' replacements.
fn rollout_span(pool: &str, replicas: usize) -> tracing::Span {
    tracing::info_span!(
        "rollout",
        otel.name = %format_args!("rollout {pool}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.pool = pool,
        brigade.rollout.replicas = replicas,
    )
}

/// One replica replaced (new one started and ready, old one drained) under `rollout`.
fn replace_span(rollout: &tracing::Span, instance: &str) -> tracing::Span {
    tracing::info_span!(
        parent: rollout,
        "replace",
        otel.name = %format_args!("replace {instance}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        service.instance.id = instance,
    )
}

fn start_slot(context: &PoolContext, index: usize, backup: bool) -> Slot {
    let instance = format!("serve-{}-{index}", context.plan.name);
    context.shared.insert(ChildStatus {
        service: Service::Serve,
        instance: instance.clone(),
        pool: Some(context.plan.name.clone()),
        backup,
        state: ChildState::Starting,
        address: None,
        pid: None,
        restarts: 0,
        last_error: None,
    });
    let stop = Shutdown::new();
    let (replace, replace_rx) = mpsc::channel(1);
    let replica = Replica {
        context: context.clone(),
        instance: instance.clone(),
        backup,
    };
    let backoff = Backoff {
        base: context.base_backoff,
        max: context.max_backoff,
    };
    let task = tokio::spawn(supervise::keep(
        replica,
        context.shared.clone(),
        backoff,
        stop.clone(),
        replace_rx,
    ));
    Slot {
        instance,
        backup,
        stop,
        replace,
        task,
    }
}

/// A replica of a pool as the supervision loop runs it.
struct Replica {
    context: PoolContext,
    instance: String,
    backup: bool,
}

impl Replica {
    /// The replica's command line and environment: JSON logs, a free port, the store under
    /// `data_dir`, and the balancer's address trusted for the client's address.
    fn spec(&self) -> ChildSpec {
        let context = &self.context;
        ChildSpec {
            service: Service::Serve,
            instance: self.instance.clone(),
            args: vec![
                "serve".into(),
                "--log-format".into(),
                "json".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                context.data_dir.display().to_string(),
                // The balancer runs on this machine: its X-Forwarded-For names the client for
                // the replicas' log-in and sign-up limits.
                "--trusted-proxies".into(),
                "127.0.0.1/32,::1/128".into(),
            ],
            env: context
                .env
                .iter()
                .cloned()
                .chain(context.trace_env.for_child("brigade-serve", &self.instance))
                .collect(),
            listeners: Vec::new(),
        }
    }
}

impl Kind for Replica {
    fn instance(&self) -> &str {
        &self.instance
    }

    fn metrics_label(&self) -> String {
        self.context.plan.name.clone()
    }

    /// Starts a replica, waits until it is ready and puts it into the balancer.
    async fn start(&mut self, stop: &Shutdown) -> Result<Running, StartFailure> {
        let spec = self.spec();
        let context = &self.context;
        let mut running = child::spawn(&context.binary(), &spec, &context.sink)
            .await
            .map_err(|error| StartFailure::Failed(error.to_string()))?;
        let Some(address) = running.address() else {
            running.stop(STOP_GRACE).await;
            return Err(StartFailure::Failed(
                "no address in its listening line".into(),
            ));
        };
        let ready = tokio::select! {
            ready = wait_ready(&address, "/health/ready", READY_TIMEOUT) => Ok(ready),
            status = running.exited() => Err(status),
            () = stop.wait() => {
                running.stop(STOP_GRACE).await;
                return Err(StartFailure::Stopped);
            }
        };
        match ready {
            Ok(true) => {}
            Ok(false) => {
                running.stop(STOP_GRACE).await;
                return Err(StartFailure::Failed(format!(
                    "not ready within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            Err(status) => {
                let cause = running.cause(status).await;
                return Err(StartFailure::Failed(format!(
                    "exited before it was ready ({cause})"
                )));
            }
        }
        if let Err(error) = context
            .admin
            .add(&context.plan.name, &address, self.backup)
            .await
        {
            running.stop(STOP_GRACE).await;
            return Err(StartFailure::Failed(format!(
                "cannot join the balancer: {error}"
            )));
        }
        context.shared.events.push(
            EventLevel::Info,
            EventKind::Ready,
            Some(&self.instance),
            format!(
                "serving on {address} in pool {}{}",
                context.plan.name,
                if self.backup { " (backup)" } else { "" }
            ),
        );
        Ok(running)
    }

    fn address(&self, running: &Running) -> Option<String> {
        running.address()
    }

    async fn exited(&mut self, running: &Running) {
        if let Some(address) = running.address() {
            let _ = self
                .context
                .admin
                .remove(&self.context.plan.name, &address)
                .await;
        }
    }

    /// Takes the replica out of the balancer (its requests finish there), then stops it; kills
    /// it while the pool halts.
    async fn retire(&mut self, running: Running) {
        if let Some(address) = running.address()
            && let Err(error) = self
                .context
                .admin
                .remove(&self.context.plan.name, &address)
                .await
        {
            tracing::debug!(%error, "balancer already gone");
        }
        let grace = if self.context.halting.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            STOP_GRACE
        };
        running.stop(grace).await;
    }
}
