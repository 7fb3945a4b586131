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

use crate::api::ChildStatus;
use crate::child_state::ChildState;

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
    describe_gauge!(
        "brigade_backup_interval_seconds",
        "How often the SQLite store is backed up (the BrigadeBackupStale alert allows 3 of them)."
    );
    describe_gauge!(
        "brigade_backup_last_success_timestamp_seconds",
        "When the newest verified backup of the SQLite store was taken (Unix time)."
    );
    describe_gauge!(
        "brigade_backup_age_seconds",
        "Age of the newest verified backup: the data a lost store would take with it."
    );
    describe_gauge!(
        "brigade_backup_duration_seconds",
        "How long the last successful backup took (copy and verification)."
    );
    describe_gauge!(
        "brigade_backup_size_bytes",
        "Size of the newest verified backup."
    );
    describe_counter!(
        "brigade_backup_runs_total",
        "Backups of the SQLite store by outcome (succeeded, failed)."
    );
    describe_counter!(
        "brigade_store_restores_total",
        "Restores of a lost SQLite store from its newest backup, by outcome."
    );
}

/// Registers the backup metrics at zero: the interval, the age so far (`age` since `up`
/// started or the newest backup already there) and the run counters.
pub fn backups_started(interval_secs: f64, age_secs: f64) {
    gauge!("brigade_backup_interval_seconds").set(interval_secs);
    gauge!("brigade_backup_age_seconds").set(age_secs);
    for outcome in ["succeeded", "failed"] {
        counter!("brigade_backup_runs_total", "outcome" => outcome).increment(0);
        counter!("brigade_store_restores_total", "outcome" => outcome).increment(0);
    }
}

/// A backup finished: `Some((taken at, seconds it took, bytes))` when it succeeded.
pub fn backup_ran(success: Option<(f64, f64, u64)>) {
    let outcome = if success.is_some() {
        "succeeded"
    } else {
        "failed"
    };
    counter!("brigade_backup_runs_total", "outcome" => outcome).increment(1);
    if let Some((at, seconds, bytes)) = success {
        gauge!("brigade_backup_last_success_timestamp_seconds").set(at);
        gauge!("brigade_backup_duration_seconds").set(seconds);
        gauge!("brigade_backup_size_bytes").set(bytes as f64);
    }
}

/// The newest verified backup is `secs` old.
pub fn backup_age(secs: f64) {
    gauge!("brigade_backup_age_seconds").set(secs);
}

/// A lost store was restored (`true`) or could not be.
pub fn store_restored(succeeded: bool) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    counter!("brigade_store_restores_total", "outcome" => outcome).increment(1);
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
pub fn event(kind: crate::api::EventKind, level: crate::api::EventLevel) {
    counter!("brigade_supervisor_events_total", "kind" => kind.as_str(), "level" => level.as_str())
        .increment(1);
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
            .entry((child.service.as_str(), pool))
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
