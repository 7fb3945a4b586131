//! The one supervision loop every child of `brigade up` runs under — replicas, the balancer,
//! watch: start it, keep it, restart it with exponential backoff when it exits, report crash
//! loops, and show its real state, process id, restarts and last cause in the status.
//!
//! What differs between kinds of child (how one is started and made to serve, what happens when
//! one exits, how one is stopped) is a [`Kind`]; everything else is here, once.

use std::future::Future;
use std::time::{Duration, Instant};

use brigade_core::Shutdown;
use tokio::sync::{mpsc, oneshot};

use crate::api::{EventKind, EventLevel};
use crate::child::Running;
use crate::child_state::ChildState;
use crate::shared::Shared;

/// Crashes within this window that make a crash loop.
const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(120);
/// Crashes within [`CRASH_LOOP_WINDOW`] reported as a crash loop.
const CRASH_LOOP_CRASHES: usize = 3;
/// A child up this long has its backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Why a start did not produce a serving child.
#[derive(Debug, Clone)]
pub(crate) enum StartFailure {
    /// The supervisor is stopping.
    Stopped,
    /// It failed; the cause as people should read it.
    Failed(String),
}

/// How one kind of child is started, kept and stopped.
pub(crate) trait Kind: Send + 'static {
    /// The instance name (status and events).
    fn instance(&self) -> &str;
    /// The label of its restart metrics: the pool of a replica, the service otherwise.
    fn metrics_label(&self) -> String;
    /// Starts the child and makes it serve (ready, registered where it must be).
    fn start(
        &mut self,
        stop: &Shutdown,
    ) -> impl Future<Output = Result<Running, StartFailure>> + Send;
    /// The address shown in the status.
    fn address(&self, running: &Running) -> Option<String>;
    /// The child exited by itself: clean up what refers to it (before it is restarted).
    fn exited(&mut self, running: &Running) -> impl Future<Output = ()> + Send;
    /// Stops a serving child gracefully.
    fn retire(&mut self, running: Running) -> impl Future<Output = ()> + Send;
}

/// Restart delays.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// First delay before a restart.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

/// A request to replace the child (surge one: the new one serves before the old one leaves);
/// answered with whether it worked.
pub(crate) type Replace = oneshot::Sender<bool>;

/// Keeps the child of `kind` running until `stop`; replaces it when asked on `replace`.
pub(crate) async fn keep<K: Kind>(
    mut kind: K,
    shared: Shared,
    backoff: Backoff,
    stop: Shutdown,
    mut replace: mpsc::Receiver<Replace>,
) {
    let instance = kind.instance().to_owned();
    let mut crashes: Vec<Instant> = Vec::new();
    // The first restart is at once (a killed balancer is the public port's outage); each
    // further crash in a row waits longer.
    let mut delay = Duration::ZERO;
    loop {
        if stop.is_triggered() {
            break;
        }
        shared.update(&instance, |s| s.state = ChildState::Starting);
        let started = Instant::now();
        match kind.start(&stop).await {
            Ok(running) => {
                mark_ready(&shared, &kind, &running);
                if let Served::Stopped =
                    serve(&mut kind, &shared, &stop, &mut replace, running).await
                {
                    shared.update(&instance, |s| s.state = ChildState::Stopped);
                    return;
                }
            }
            Err(StartFailure::Stopped) => break,
            Err(StartFailure::Failed(cause)) => {
                failed(&shared, &instance, EventKind::Failed, &cause);
            }
        }
        // It exited (or never started): back off, then start it again.
        if started.elapsed() >= STABLE_AFTER {
            delay = Duration::ZERO;
        }
        record_restart(&kind, &shared, &mut crashes, delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.wait() => {}
        }
        delay = if delay.is_zero() {
            backoff.base
        } else {
            (delay * 2).min(backoff.max)
        };
    }
    shared.update(&instance, |s| s.state = ChildState::Stopped);
}

/// How serving one process of a child ended.
enum Served {
    /// It exited on its own: start it again.
    Exited,
    /// The supervisor is stopping; it was retired.
    Stopped,
}

/// Serves with `running` until it exits or the supervisor stops, replacing it (surge: the new
/// one serves before the old one leaves) each time one is asked on `replace`.
async fn serve<K: Kind>(
    kind: &mut K,
    shared: &Shared,
    stop: &Shutdown,
    replace: &mut mpsc::Receiver<Replace>,
    mut running: Running,
) -> Served {
    let instance = kind.instance().to_owned();
    loop {
        tokio::select! {
            status = running.exited() => {
                let cause = running.cause(status).await;
                failed(shared, &instance, EventKind::Exited, &format!("exited unexpectedly ({cause})"));
                kind.exited(&running).await;
                return Served::Exited;
            }
            () = stop.wait() => {
                shared.update(&instance, |s| s.state = ChildState::Stopping);
                kind.retire(running).await;
                return Served::Stopped;
            }
            Some(done) = replace.recv() => {
                let replaced = match kind.start(stop).await {
                    Ok(new) => {
                        mark_ready(shared, kind, &new);
                        let old = std::mem::replace(&mut running, new);
                        kind.retire(old).await;
                        true
                    }
                    Err(failure) => {
                        if let StartFailure::Failed(cause) = failure {
                            failed(shared, &instance, EventKind::Failed, &cause);
                        }
                        mark_ready(shared, kind, &running);
                        false
                    }
                };
                let _ = done.send(replaced);
            }
        }
    }
}

/// Counts a restart of `kind`'s child, `delay` from now: its state (restarting, or crash loop
/// after [`CRASH_LOOP_CRASHES`] within [`CRASH_LOOP_WINDOW`]), the metric and the event.
fn record_restart<K: Kind>(kind: &K, shared: &Shared, crashes: &mut Vec<Instant>, delay: Duration) {
    let instance = kind.instance();
    let now = Instant::now();
    crashes.retain(|at| now.duration_since(*at) < CRASH_LOOP_WINDOW);
    crashes.push(now);
    let looping = crashes.len() >= CRASH_LOOP_CRASHES;
    crate::metrics::restarted(&kind.metrics_label(), looping);
    shared.update(instance, |s| {
        s.restarts += 1;
        s.state = if looping {
            ChildState::CrashLoop
        } else {
            ChildState::Restarting
        };
        s.pid = None;
    });
    let (level, event, message) = if looping {
        (
            EventLevel::Error,
            EventKind::CrashLoop,
            format!(
                "{} crashes within {} s; restarting in {} ms",
                crashes.len(),
                CRASH_LOOP_WINDOW.as_secs(),
                delay.as_millis()
            ),
        )
    } else {
        (
            EventLevel::Warn,
            EventKind::Restarting,
            format!("restarting in {} ms", delay.as_millis()),
        )
    };
    shared.events.push(level, event, Some(instance), message);
}

fn mark_ready<K: Kind>(shared: &Shared, kind: &K, running: &Running) {
    let address = kind.address(running);
    shared.update(kind.instance(), |s| {
        s.state = ChildState::Ready;
        s.pid = Some(running.pid);
        s.address = address;
    });
}

/// Records why a child failed: an event and its status's `last_error`.
fn failed(shared: &Shared, instance: &str, kind: EventKind, cause: &str) {
    shared
        .events
        .push(EventLevel::Error, kind, Some(instance), cause.to_owned());
    shared.update(instance, |s| s.last_error = Some(cause.to_owned()));
}
