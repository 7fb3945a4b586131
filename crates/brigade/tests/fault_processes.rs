//! The process fault matrix: every kind of process under `brigade up` — balancer, replica,
//! watch, the supervisor itself — killed with SIGKILL while many careful clients place keyed
//! orders through the public port. Each row measures how long the public port took to serve
//! again and reconciles every acknowledged order against the API afterwards (none may be
//! lost). `up` runs as users run it: an empty working directory, the default relative data
//! directory, no variables.
//!
//! The rows run one at a time (each starts a whole topology); the numbers are printed. The
//! balancer and replica rows run again with `up` on PostgreSQL (when
//! `BRIGADE_TEST_POSTGRES_URL` is set, as in CI), where a replica killed mid-transaction leaves
//! a server-side session behind instead of a file lock.

mod as_user;
mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use as_user::{OrderLoad, Probe, Running, UserUp, alive, lost_orders, signal, wait_until};
use serde_json::Value;

/// Concurrent order clients.
const CLIENTS: usize = 12;

/// One row at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills `instance` under load; returns (time until the public port served again, connections
/// refused meanwhile, orders acknowledged) after checking that it came back with a new process
/// and that no acknowledged order was lost.
fn kill_under_load(up: &UserUp, instance: &str) -> (Duration, usize, usize) {
    let token = up.log_in("customer@brigade.demo");
    let load = OrderLoad::start(&up.public, &token, &up.sample_order(), CLIENTS);
    load.wait_for(30, Duration::from_secs(60));
    let probe = Probe::start(&up.public);
    load.wait_for(10, Duration::from_secs(30));
    let before = up.child_status(instance);
    let pid = before["pid"].as_u64().unwrap() as u32;
    let restarts = before["restarts"].as_u64().unwrap();
    let killed_at = Instant::now();
    signal(pid, "-KILL");
    wait_until(
        &format!("{instance} restarted"),
        Duration::from_secs(30),
        || {
            let now = up.child_status(instance);
            now["state"] == "ready"
                && now["restarts"].as_u64() == Some(restarts + 1)
                && now["pid"].as_u64().is_some_and(|p| p != u64::from(pid))
        },
    );
    assert!(!alive(pid), "the killed process was reaped");
    load.wait_for(30, Duration::from_secs(60));
    let log = probe.finish();
    let outcome = load.finish();
    let recovery = log
        .recovery_after(killed_at)
        .expect("the public port serves again");
    let lost = lost_orders(&up.public, &token, &outcome.acknowledged);
    eprintln!(
        "{instance} SIGKILL: serving again after {} ms, {} connections refused, {} orders \
         acknowledged, {} retried attempts, {} given up, {} lost",
        recovery.as_millis(),
        log.refused,
        outcome.acknowledged.len(),
        outcome.retried,
        outcome.given_up,
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
    (recovery, log.refused, outcome.acknowledged.len())
}

#[test]
fn a_killed_balancer_is_restarted_and_the_public_port_serves_again_within_a_second() {
    let _serial = serial();
    let cwd = tempfile::tempdir().unwrap();
    let up = UserUp::start(cwd.path(), &["--replicas", "2"]);
    killed_balancer_row(&up);
}

/// The balancer row: back within a second, no connection refused, every replica in the new
/// balancer's pools, and the event names what happened.
fn killed_balancer_row(up: &UserUp) {
    let (recovery, refused, _) = kill_under_load(up, "balance");
    assert!(
        recovery <= Duration::from_secs(1),
        "serving again after {recovery:?}"
    );
    assert_eq!(
        refused, 0,
        "the held socket queues connections, none refused"
    );
    let admin = up.status()["balancer_admin"].as_str().unwrap().to_owned();
    let pools: Value = reqwest::blocking::get(format!("http://{admin}/admin/pools"))
        .unwrap()
        .json()
        .unwrap();
    let backends = pools.to_string().matches("\"address\"").count();
    assert!(backends >= 4, "2 + 1 orders and 1 kitchen replica: {pools}");
    let events = up.status()["events"].to_string();
    assert!(events.contains("exited unexpectedly"), "{events}");
}

#[test]
fn a_killed_replica_costs_no_acknowledged_order() {
    let _serial = serial();
    let cwd = tempfile::tempdir().unwrap();
    let up = UserUp::start(cwd.path(), &["--replicas", "2"]);
    killed_replica_row(&up);
}

/// The replica row: no connection refused, the public port never stops serving for more than
/// a second.
fn killed_replica_row(up: &UserUp) {
    let (recovery, refused, _) = kill_under_load(up, "serve-orders-1");
    assert_eq!(refused, 0);
    assert!(recovery <= Duration::from_secs(1), "{recovery:?}");
}

#[test]
fn on_postgres_a_killed_balancer_and_a_killed_replica_cost_no_acknowledged_order() {
    let Some(database) = common::PgDatabase::create("brigade_fault_processes") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let _serial = serial();
    let cwd = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database.url.as_str())];
    let up = UserUp::start_with_env(cwd.path(), &["--replicas", "2"], &env);
    killed_balancer_row(&up);
    killed_replica_row(&up);
}

/// Longest a killed watch may take to be restarted and answer again.
const WATCH_BACK_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn a_killed_watch_is_restarted_and_evaluates_again() {
    let _serial = serial();
    let cwd = tempfile::tempdir().unwrap();
    let up = UserUp::start(cwd.path(), &["--replicas", "1"]);
    wait_until("watch ready", Duration::from_secs(30), || {
        up.child_status("watch")["state"] == "ready"
    });
    // Watch is off the request path: orders go on while it is gone, none is lost.
    let token = up.log_in("customer@brigade.demo");
    let load = OrderLoad::start(&up.public, &token, &up.sample_order(), CLIENTS);
    load.wait_for(30, Duration::from_secs(60));
    let before = up.child_status("watch");
    let pid = before["pid"].as_u64().unwrap() as u32;
    let killed_at = Instant::now();
    signal(pid, "-KILL");
    let mut answered = None;
    wait_until("watch back and answering", Duration::from_secs(30), || {
        let now = up.child_status("watch");
        let ready = now["state"] == "ready"
            && now["restarts"] == 1
            && now["pid"].as_u64().is_some_and(|p| p != u64::from(pid));
        let address = up.status()["watch"].as_str().map(str::to_owned);
        if let (true, Some(address)) = (ready, address)
            && reqwest::blocking::get(format!("http://{address}/api/v1/rules"))
                .is_ok_and(|r| r.status().is_success())
        {
            answered = Some(killed_at.elapsed());
        }
        answered.is_some()
    });
    load.wait_for(30, Duration::from_secs(60));
    let outcome = load.finish();
    let lost = lost_orders(&up.public, &token, &outcome.acknowledged);
    let answered = answered.unwrap();
    eprintln!(
        "watch SIGKILL: restarted and answering after {} ms; {} orders acknowledged, {} given \
         up, {} lost",
        answered.as_millis(),
        outcome.acknowledged.len(),
        outcome.given_up,
        lost.len()
    );
    assert!(
        answered <= WATCH_BACK_WITHIN,
        "watch back after {answered:?}"
    );
    assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
    assert_eq!(outcome.given_up, 0, "no order failed while watch was gone");
    assert!(!alive(pid));
    assert!(
        up.child_status("watch")["last_error"]
            .as_str()
            .is_some_and(|cause| cause.contains("signal")),
        "the cause names the signal: {}",
        up.child_status("watch")
    );
}

#[test]
fn a_killed_supervisor_leaves_no_process_and_a_new_up_serves_the_same_data() {
    let _serial = serial();
    let cwd = tempfile::tempdir().unwrap();
    let mut up = UserUp::start(cwd.path(), &["--replicas", "2"]);
    let token = up.log_in("customer@brigade.demo");
    let load = OrderLoad::start(&up.public, &token, &up.sample_order(), CLIENTS);
    load.wait_for(30, Duration::from_secs(60));
    let pids = up.child_pids();
    assert_eq!(pids.len(), 6, "balance, 2 + 1 orders, 1 kitchen, watch");
    let killed_at = Instant::now();
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    wait_until("every child to exit", Duration::from_secs(30), || {
        pids.iter().all(|&pid| !alive(pid))
    });
    let gone_after = killed_at.elapsed();
    let outcome = load.finish();
    drop(up);

    // A new `up` on the same directory and data: it comes up, the recorded passwords still
    // work, and every order acknowledged before the kill is there.
    let started = Instant::now();
    let again = UserUp::start(cwd.path(), &["--replicas", "2"]);
    let up_after = started.elapsed();
    let accounts: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(cwd.path().join("brigade-data/demo-accounts.json")).unwrap(),
    )
    .unwrap();
    let password = accounts
        .iter()
        .find(|a| a["email"] == "customer@brigade.demo")
        .and_then(|a| a["password"].as_str())
        .unwrap();
    let token = as_user::token(&again.url(""), "customer@brigade.demo", password).unwrap();
    let lost = lost_orders(&again.public, &token, &outcome.acknowledged);
    eprintln!(
        "supervisor SIGKILL: every child gone after {} ms, a new up serving after {} ms, {} \
         orders acknowledged, {} lost",
        gone_after.as_millis(),
        up_after.as_millis(),
        outcome.acknowledged.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
    // Children notice their supervisor's death at once (their stdin, its lifeline, closes) and
    // drain; a new `up` on the same data comes up without a repair step.
    assert!(
        gone_after <= Duration::from_secs(5),
        "children gone after {gone_after:?}"
    );
    assert!(
        up_after <= Duration::from_secs(30),
        "a new up after {up_after:?}"
    );
}
