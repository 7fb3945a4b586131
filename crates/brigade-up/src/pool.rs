//! One pool of replicas: its slots (one supervised replica each), scaling, and rolling
//! replacement.
//!
//! A slot keeps one replica running (restart with backoff on crashes). A rollout replaces the
//! slots one at a time — start the new process, wait until ready, put it into the balancer,
//! take the old one out (draining it), stop the old one — so capacity never drops
//! (maxUnavailable 0, maxSurge 1). Scaling adds slots or stops the newest ones, each stop
//! draining its replica out of the balancer first.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::Shutdown;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::balancer::{BalancerAdmin, wait_ready};
use crate::child::{self, ChildSpec, Running};
use crate::logs::LogSink;
use crate::supervisor::{ChildStatus, Shared};
use crate::topology::PoolPlan;

/// How long a replica may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping child may drain before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// Crashes within this window that make a crash loop.
const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(120);
/// Crashes within [`CRASH_LOOP_WINDOW`] reported as a crash loop.
const CRASH_LOOP_CRASHES: usize = 3;
/// A child up this long has its backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What a pool manager is asked to do.
pub enum PoolCommand {
    /// Run this many primary replicas (backups are not scaled).
    Scale {
        /// Primaries wanted.
        replicas: usize,
        /// Why (an event records it).
        reason: String,
    },
    /// Replace every replica, one at a time; with a binary, new replicas run it (an upgrade).
    Rollout {
        /// The binary of the new replicas.
        binary: Option<PathBuf>,
        /// Answered with how many replicas were replaced.
        done: oneshot::Sender<Result<usize, String>>,
    },
}

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
    let mut next = 0;
    let mut slots: Vec<Slot> = Vec::new();
    let plan = context.plan.clone();
    crate::metrics::pool_started(&plan.name);
    for n in 0..plan.replicas + plan.backups {
        next += 1;
        slots.push(start_slot(&context, next, n >= plan.replicas));
    }
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            () = stop.wait() => None,
        };
        match command {
            None => break,
            Some(PoolCommand::Scale { replicas, reason }) => {
                let primaries = slots.iter().filter(|s| !s.backup).count();
                if replicas == primaries {
                    continue;
                }
                context.shared.events.push(
                    "info",
                    "scale",
                    None,
                    format!(
                        "pool {}: {primaries} → {replicas} replicas ({reason})",
                        plan.name
                    ),
                );
                for _ in primaries..replicas {
                    next += 1;
                    slots.push(start_slot(&context, next, false));
                }
                let mut surplus = primaries.saturating_sub(replicas);
                while surplus > 0 {
                    // The newest primary goes first.
                    let Some(index) = slots.iter().rposition(|s| !s.backup) else {
                        break;
                    };
                    let slot = slots.remove(index);
                    slot.stop.trigger();
                    let _ = slot.task.await;
                    context.shared.remove(&slot.instance);
                    surplus -= 1;
                }
            }
            Some(PoolCommand::Rollout { binary, done }) => {
                if let Some(binary) = binary {
                    *context.binary.lock().unwrap_or_else(|p| p.into_inner()) = binary;
                }
                context.shared.events.push(
                    "info",
                    "rollout",
                    None,
                    format!(
                        "pool {}: rolling restart of {} replicas",
                        plan.name,
                        slots.len()
                    ),
                );
                let mut replaced = 0;
                let mut failure = None;
                for slot in &slots {
                    let (tx, rx) = oneshot::channel();
                    if slot.replace.send(tx).await.is_err() || !rx.await.unwrap_or(false) {
                        failure = Some(format!(
                            "{} could not be replaced; rollout stopped",
                            slot.instance
                        ));
                        break;
                    }
                    replaced += 1;
                }
                match &failure {
                    Some(reason) => {
                        context
                            .shared
                            .events
                            .push("error", "rollout", None, reason.clone())
                    }
                    None => context.shared.events.push(
                        "info",
                        "rollout",
                        None,
                        format!("pool {}: {replaced} replicas replaced", plan.name),
                    ),
                }
                let _ = done.send(failure.map_or(Ok(replaced), Err));
            }
        }
    }
    for slot in &slots {
        slot.stop.trigger();
    }
    for slot in slots {
        let _ = slot.task.await;
    }
}

fn start_slot(context: &PoolContext, index: usize, backup: bool) -> Slot {
    let instance = format!("serve-{}-{index}", context.plan.name);
    context.shared.insert(ChildStatus {
        service: "serve",
        instance: instance.clone(),
        pool: Some(context.plan.name.clone()),
        backup,
        state: "starting",
        address: None,
        pid: None,
        restarts: 0,
    });
    let stop = Shutdown::new();
    let (replace, replace_rx) = mpsc::channel(1);
    let task = tokio::spawn(keep_replica(
        context.clone(),
        instance.clone(),
        backup,
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

/// A replica in the balancer.
struct Serving {
    running: Running,
    address: String,
}

/// Keeps one replica running until `stop`.
async fn keep_replica(
    context: PoolContext,
    instance: String,
    backup: bool,
    stop: Shutdown,
    mut replace: mpsc::Receiver<oneshot::Sender<bool>>,
) {
    let shared = &context.shared;
    let mut crashes: Vec<Instant> = Vec::new();
    let mut backoff = context.base_backoff;
    loop {
        if stop.is_triggered() {
            shared.update(&instance, |s| s.state = "stopped");
            return;
        }
        shared.update(&instance, |s| s.state = "starting");
        let started = Instant::now();
        let mut serving = match start_ready(&context, &instance, backup, &stop).await {
            Ok(serving) => Some(serving),
            Err(Start::Stopped) => {
                shared.update(&instance, |s| s.state = "stopped");
                return;
            }
            Err(Start::Failed) => None,
        };
        // Serve until it crashes or we are told to stop; replace it when asked.
        while let Some(current) = serving.as_mut() {
            tokio::select! {
                status = current.running.exited() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    shared.events.push("error", "exited", Some(&instance), format!("exited unexpectedly ({status})"));
                    let _ = context.admin.remove(&context.plan.name, &current.address).await;
                    serving = None;
                }
                () = stop.wait() => {
                    if let Some(old) = serving.take() {
                        shared.update(&instance, |s| s.state = "stopping");
                        retire(&context, old).await;
                    }
                    shared.update(&instance, |s| s.state = "stopped");
                    return;
                }
                Some(done) = replace.recv() => {
                    // Surge one: the new replica is ready and in the balancer before the old
                    // one leaves it.
                    match start_ready(&context, &instance, backup, &stop).await {
                        Ok(new) => {
                            if let Some(old) = serving.replace(new) {
                                retire(&context, old).await;
                            }
                            let _ = done.send(true);
                        }
                        Err(_) => {
                            if let Some(current) = serving.as_ref() {
                                shared.update(&instance, |s| {
                                    s.state = "ready";
                                    s.pid = Some(current.running.pid);
                                    s.address = Some(current.address.clone());
                                });
                            }
                            let _ = done.send(false);
                        }
                    }
                }
            }
        }
        // It crashed (or never became ready): back off, then start it again.
        if started.elapsed() >= STABLE_AFTER {
            backoff = context.base_backoff;
        }
        let now = Instant::now();
        crashes.retain(|at| now.duration_since(*at) < CRASH_LOOP_WINDOW);
        crashes.push(now);
        let looping = crashes.len() >= CRASH_LOOP_CRASHES;
        crate::metrics::restarted(&context.plan.name, looping);
        shared.update(&instance, |s| {
            s.restarts += 1;
            s.state = if looping { "crash_loop" } else { "restarting" };
            s.pid = None;
        });
        if looping {
            shared.events.push(
                "error",
                "crash_loop",
                Some(&instance),
                format!(
                    "{} crashes within {} s; restarting in {} ms",
                    crashes.len(),
                    CRASH_LOOP_WINDOW.as_secs(),
                    backoff.as_millis()
                ),
            );
        } else {
            shared.events.push(
                "warn",
                "restarting",
                Some(&instance),
                format!("restarting in {} ms", backoff.as_millis()),
            );
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.wait() => {}
        }
        backoff = (backoff * 2).min(context.max_backoff);
    }
}

enum Start {
    Failed,
    Stopped,
}

/// Starts a replica, waits until it is ready and puts it into the balancer.
async fn start_ready(
    context: &PoolContext,
    instance: &str,
    backup: bool,
    stop: &Shutdown,
) -> Result<Serving, Start> {
    let shared = &context.shared;
    let spec = ChildSpec {
        service: "serve",
        instance: instance.to_owned(),
        args: vec![
            "serve".into(),
            "--log-format".into(),
            "json".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            context.data_dir.display().to_string(),
        ],
        env: context.env.clone(),
    };
    let mut running = match child::spawn(&context.binary(), &spec, &context.sink).await {
        Ok(running) => running,
        Err(error) => {
            shared
                .events
                .push("error", "failed", Some(instance), error.to_string());
            return Err(Start::Failed);
        }
    };
    let Some(address) = running.address("address") else {
        shared.events.push(
            "error",
            "failed",
            Some(instance),
            "no address in its listening line",
        );
        running.stop(STOP_GRACE).await;
        return Err(Start::Failed);
    };
    let ready = tokio::select! {
        ready = wait_ready(&address, "/health/ready", READY_TIMEOUT) => ready,
        _ = running.exited() => false,
        () = stop.wait() => {
            running.stop(STOP_GRACE).await;
            return Err(Start::Stopped);
        }
    };
    if !ready {
        shared
            .events
            .push("error", "failed", Some(instance), "never became ready");
        running.stop(STOP_GRACE).await;
        return Err(Start::Failed);
    }
    if let Err(error) = context
        .admin
        .add(&context.plan.name, &address, backup)
        .await
    {
        shared.events.push(
            "error",
            "failed",
            Some(instance),
            format!("cannot join the balancer: {error}"),
        );
        running.stop(STOP_GRACE).await;
        return Err(Start::Failed);
    }
    shared.update(instance, |s| {
        s.state = "ready";
        s.pid = Some(running.pid);
        s.address = Some(address.clone());
    });
    shared.events.push(
        "info",
        "ready",
        Some(instance),
        format!(
            "serving on {address} in pool {}{}",
            context.plan.name,
            if backup { " (backup)" } else { "" }
        ),
    );
    Ok(Serving { running, address })
}

/// Takes a replica out of the balancer (its requests finish there), then stops it.
async fn retire(context: &PoolContext, old: Serving) {
    if let Err(error) = context.admin.remove(&context.plan.name, &old.address).await {
        tracing::debug!(%error, "balancer already gone");
    }
    old.running.stop(STOP_GRACE).await;
}
