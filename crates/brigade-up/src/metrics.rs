//! The supervisor's own metrics, served at the ops API's `/metrics` and scraped by
//! `brigade watch` as job `supervisor`: how many children run in which state, restarts and
//! crash loops per pool, events by kind, and the autoscaler's inputs and decisions. The
//! `BrigadeReplicaCrashLooping` alert (deploy/prometheus/rules/brigade.yml) reads them.
//!
//! Counters that alerts take `increase()` of are registered at zero when a pool starts: a
//! counter that first appears at 1 has no increase in Prometheus's eyes, so the first crash
//! loop would otherwise never alert.

use std::collections::BTreeMap;

use metrics::{counter, describe_counter, describe_gauge, gauge};

use crate::child_state::ChildState;
use crate::supervisor::ChildStatus;

/// Installs the process's recorder (before anything is counted) and describes the metrics, so
/// that `/metrics` carries HELP lines. Called once when the supervisor starts.
pub fn describe() {
    let _ = brigade_core::metrics::renderer();
    describe_gauge!(
        "brigade_supervisor_children",
        "Children of brigade up by service, pool and state."
    );
    describe_counter!(
        "brigade_supervisor_restarts_total",
        "Replicas restarted after they exited or failed to become ready."
    );
    describe_counter!(
        "brigade_supervisor_crash_loops_total",
        "Times a replica crashed often enough within the crash-loop window to be reported."
    );
    describe_counter!(
        "brigade_supervisor_events_total",
        "Supervisor events by kind and level."
    );
    describe_gauge!(
        "brigade_autoscaler_metric_per_replica",
        "The autoscaler's last reading of its target metric, per primary replica."
    );
    describe_gauge!(
        "brigade_autoscaler_desired_replicas",
        "Primary replicas the autoscaler last asked for."
    );
    describe_counter!(
        "brigade_autoscaler_decisions_total",
        "Scaling decisions of the autoscaler by direction (up, down)."
    );
}

/// Registers a pool's counters at zero (see the module documentation).
pub fn pool_started(pool: &str) {
    counter!("brigade_supervisor_restarts_total", "pool" => pool.to_owned()).increment(0);
    counter!("brigade_supervisor_crash_loops_total", "pool" => pool.to_owned()).increment(0);
}

/// A replica of `pool` is being restarted; `looping` when this crash makes it a crash loop.
pub fn restarted(pool: &str, looping: bool) {
    counter!("brigade_supervisor_restarts_total", "pool" => pool.to_owned()).increment(1);
    if looping {
        counter!("brigade_supervisor_crash_loops_total", "pool" => pool.to_owned()).increment(1);
    }
}

/// Counts an event.
pub fn event(kind: &'static str, level: &'static str) {
    counter!("brigade_supervisor_events_total", "kind" => kind, "level" => level).increment(1);
}

/// The autoscaler read `per_replica` and wants `desired` replicas (from `current`).
pub fn autoscaled(pool: &str, per_replica: f64, current: usize, desired: usize) {
    gauge!("brigade_autoscaler_metric_per_replica", "pool" => pool.to_owned()).set(per_replica);
    gauge!("brigade_autoscaler_desired_replicas", "pool" => pool.to_owned()).set(desired as f64);
    if desired != current {
        let direction = if desired > current { "up" } else { "down" };
        counter!("brigade_autoscaler_decisions_total", "pool" => pool.to_owned(), "direction" => direction)
            .increment(1);
    }
}

/// Sets `brigade_supervisor_children` from the current children: every (service, pool) seen
/// gets a value for every state, so a state nobody is in any more reads 0 rather than its
/// last count.
pub fn children(children: &[ChildStatus]) {
    let mut counts: BTreeMap<(&str, String), BTreeMap<&str, u32>> = BTreeMap::new();
    for child in children {
        let pool = child.pool.clone().unwrap_or_default();
        *counts
            .entry((child.service, pool))
            .or_default()
            .entry(child.state.as_str())
            .or_default() += 1;
    }
    for ((service, pool), by_state) in counts {
        for state in ChildState::ALL.map(ChildState::as_str) {
            gauge!(
                "brigade_supervisor_children",
                "service" => service.to_owned(),
                "pool" => pool.clone(),
                "state" => state
            )
            .set(f64::from(by_state.get(state).copied().unwrap_or(0)));
        }
    }
}

/// The exposition for `GET /metrics`.
pub fn render(children_now: &[ChildStatus]) -> String {
    children(children_now);
    brigade_core::metrics::renderer().render()
}
