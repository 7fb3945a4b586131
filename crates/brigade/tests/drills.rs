//! The fault drills of `brigade drill` end to end, in short mode, against a real `brigade up`:
//! slow-replica, payment-outage and db-outage (SQLite) one after the other on one supervisor,
//! surge on one with the autoscaler, and db-outage on PostgreSQL when
//! `BRIGADE_TEST_POSTGRES_URL` is set; kill-balancer and kill-watch as a user runs them. Each
//! asserts its report's claims.

mod as_user;
mod common;

use std::process::Command;

use serde_json::{Value, json};

use common::{BRIGADE, PgDatabase, Running, Up, assert_drill_holds};

/// `brigade up` for the drills: two orders replicas, no watch.
fn start_up(data_dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Up {
    let mut flags = vec!["--no-watch"];
    flags.extend_from_slice(extra);
    Up::start_with(data_dir, &flags, env)
}

/// The SQLite db-outage: writes fail fast (1 s busy timeout) while the supervisor holds the
/// file's write lock; reads and readiness stay up.
fn sqlite_db_outage(up: &Up) {
    let (report, passed) = up.drill("db-outage", 5, &[]);
    assert_drill_holds(
        "db-outage",
        &report,
        passed,
        &[
            "failures only during the fault",
            "answered 503 problem+json only",
            "the system was whole again",
        ],
    );
    assert_eq!(report["database"]["mode"], "sqlite-lock");
    assert_eq!(report["database"]["ready_after"], true);
    // Writes waited for the lock at least the busy timeout, then failed or (after the
    // balancer's retries) went through once it was released.
    assert!(
        report["slowest_ms"][1].as_f64().unwrap() >= 1000.0,
        "{report}"
    );
}

#[test]
fn slow_replica_payment_outage_and_sqlite_db_outage_hold_their_claims() {
    let dir = tempfile::tempdir().unwrap();
    let up = start_up(
        dir.path(),
        &[],
        &[
            ("BRIGADE_PAYMENTS__BREAKER_FAILURES", "3"),
            ("BRIGADE_PAYMENTS__BREAKER_OPEN_MS", "1000"),
            ("BRIGADE_PAYMENTS__RECONCILE_AFTER_SECS", "2"),
            ("BRIGADE_STORAGE__BUSY_TIMEOUT_MS", "1000"),
        ],
    );

    let (report, passed) = up.drill("slow-replica", 3, &[]);
    assert_drill_holds(
        "slow-replica",
        &report,
        passed,
        &[
            "no request failed",
            "the balancer moved traffic away from the slow replica",
        ],
    );
    let traffic = &report["traffic"];
    assert!(
        traffic["share"][1].as_f64().unwrap() <= traffic["fair_share"].as_f64().unwrap() / 2.0,
        "{report}"
    );

    // Another customer orders meanwhile, outside the drill: the drill counts only its own
    // orders (their request-id prefix), so the orders of this customer, told 201 and charged,
    // are none of its business.
    let other = OtherCustomer::start(&up);
    let (report, passed) = up.drill("payment-outage", 3, &[]);
    let others_placed = other.finish();
    assert!(
        others_placed > 0,
        "the other customer ordered during the drill"
    );
    assert_drill_holds(
        "payment-outage",
        &report,
        passed,
        &[
            "the fault was felt",
            "failures only during the fault",
            "answered 502/503 problem+json only",
            "no order left charged but failed",
            "every hold of a failed order released",
            "the system was whole again",
        ],
    );
    assert_eq!(report["payments"]["breakers_closed"], true);
    assert_eq!(report["payments"]["charged_but_failed"], 0);
    // The open breaker's 503 carries `Retry-After: 1`, which the balancer waits out and
    // retries (the order is keyed, and a 503 does not pin its key): clients may see only the
    // 502s of the first failures.
    let statuses = &report["failed_statuses"][1];
    assert!(statuses.get("500").is_none(), "{report}");

    sqlite_db_outage(&up);

    // Bad settings of a replica's fault switch name their field.
    let client = reqwest::blocking::Client::new();
    let replica = up.replica_in("orders");
    let admin = common::log_in_at(&replica, "admin@brigade.demo");
    for (body, field) in [
        (json!({"latency_ms": 60_001}), "latency_ms"),
        (
            json!({"latency_ms": 10, "latency_ratio": 2.0}),
            "latency_ratio",
        ),
    ] {
        let bad = client
            .put(format!("{replica}/api/v1/admin/faults"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(bad.status(), 422);
        let problem: Value = bad.json().unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    // The ops switch of the database link names its field; the CLI names every drill.
    let bad = client
        .put(format!("http://{}/api/db-link", up.ops))
        .header("x-brigade-ops-token", common::ops_token(&up.ops))
        .json(&json!({"cutt": true}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().unwrap().contains("cut"));
    let unknown = Command::new(BRIGADE)
        .args(["drill", "flood", "--ops", &up.ops, "--password", "x"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    for drill in ["slow-replica", "payment-outage", "db-outage", "surge"] {
        assert!(stderr.contains(drill), "{stderr} names {drill}");
    }
    let help = Command::new(BRIGADE)
        .args(["drill", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--fault-secs") && help.contains("payment-outage"),
        "{help}"
    );
}

/// A customer placing orders in a loop, not part of any drill.
struct OtherCustomer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl OtherCustomer {
    fn start(up: &Up) -> Self {
        let token = up.log_in("customer@brigade.demo");
        let order = up.sample_order();
        let url = up.url("/api/v1/orders");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut placed = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                    .json(&order)
                    .send();
                if answer.is_ok_and(|a| a.status() == 201) {
                    placed += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            placed
        });
        Self { stop, thread }
    }

    /// Stops; how many orders were acknowledged.
    fn finish(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn kill_balancer_and_kill_watch_hold_their_claims_with_the_recorded_passwords() {
    // As a user runs them: an empty directory, no password given anywhere; the drill reads the
    // accounts `up` recorded in its data directory.
    let cwd = tempfile::tempdir().unwrap();
    let up = as_user::UserUp::start(cwd.path(), &["--replicas", "2"]);
    for (name, claims) in [
        (
            "kill-balancer",
            &[
                "the public port served again within 1000 ms",
                "no connection refused",
                "the system was whole again",
            ][..],
        ),
        (
            "kill-watch",
            &[
                "no request failed",
                "watch answered again within 10 s",
                "the system was whole again",
            ][..],
        ),
    ] {
        let output = as_user::brigade(cwd.path())
            .args(["drill", name, "--ops", &up.ops, "--phase-secs", "2"])
            .args(["--clients", "4", "--json"])
            .output()
            .unwrap();
        let report = common::drill_report(name, &output);
        assert_drill_holds(name, &report, output.status.success(), claims);
    }
}

#[test]
fn surge_makes_the_autoscaler_add_replicas_and_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Slow payments keep orders in flight, which is what the autoscaler measures: 2 clients
    // stay under the target, 10 do not.
    let up = start_up(
        dir.path(),
        &[
            "--autoscale-max",
            "4",
            "--autoscale-target-in-flight",
            "1.5",
            "--autoscale-interval-ms",
            "300",
            "--scale-down-window-secs",
            "600",
        ],
        &[("BRIGADE_PAYMENTS__SIMULATED__LATENCY_MS", "150")],
    );
    let (report, passed) = up.drill("surge", 8, &[]);
    assert_drill_holds(
        "surge",
        &report,
        passed,
        &[
            "no request failed",
            "the autoscaler scaled the orders pool up",
        ],
    );
    let scaling = &report["scaling"];
    assert_eq!(scaling["clients"], 10);
    assert_eq!(scaling["replicas"][0], 2, "{report}");
    assert!(scaling["replicas"][1].as_u64().unwrap() >= 3, "{report}");
    assert!(
        !scaling["events"].as_array().unwrap().is_empty(),
        "the autoscaler's decisions are reported: {report}"
    );
}

#[test]
fn db_outage_on_postgres_cuts_the_relay_and_recovers() {
    let Some(database) = PgDatabase::create("brigade_drill") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set: PostgreSQL db-outage skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let up = start_up(
        dir.path(),
        &[],
        &[
            ("DATABASE_URL", database.url.as_str()),
            ("BRIGADE_STORAGE__ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    );
    let link: Value = reqwest::blocking::get(format!("http://{}/api/db-link", up.ops))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(link["mode"], "postgres-relay", "{link}");
    assert!(
        link["connections"].as_u64().unwrap() > 0,
        "replicas connect through it: {link}"
    );

    let (report, passed) = up.drill("db-outage", 4, &[]);
    assert_drill_holds(
        "db-outage",
        &report,
        passed,
        &[
            "failures only during the fault",
            "answered 503 problem+json only",
            "readiness reflected the outage",
            "the system was whole again",
        ],
    );
    assert_eq!(report["database"]["mode"], "postgres-relay");
    // A replica's 503 carries `Retry-After: 1`, which the balancer waits out (up to 5 s a
    // request): the cut made requests fail or wait.
    assert!(
        report["failed_statuses"][1]["503"].as_u64().unwrap_or(0) > 0
            || report["slowest_ms"][1].as_f64().unwrap() >= 1000.0,
        "the cut was felt: {report}"
    );
    drop(up);
}
