//! `brigade up` end to end with the real binary: the topology comes up and serves an order
//! through the balancer, a replica killed with SIGKILL under load costs no request and comes
//! back, the central logs find a request by its id, and no brigade process
//! outlives the supervisor — whether it is stopped or killed; crash loops, the drills,
//! PostgreSQL and the live terminal view. Rollouts and autoscaling: up_scaling.rs.

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::load::Load;
use common::{BRIGADE, DEMO_PASSWORD, PgDatabase, Running, Up, alive, signal, wait_until};

#[test]
fn up_serves_survives_a_killed_replica_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path());
    let client = reqwest::blocking::Client::new();

    // An order through the balancer, with a request id to find in the logs.
    let token = up.log_in("customer@brigade.demo");
    let order = client
        .post(up.url("/api/v1/orders"))
        .bearer_auth(&token)
        .header("x-request-id", "up-e2e-order-1")
        .json(&up.sample_order())
        .send()
        .unwrap();
    assert_eq!(order.status(), 201);

    // The central logs find the request by its id.
    wait_until("the order's log lines", Duration::from_secs(10), || {
        let out = Command::new(BRIGADE)
            .args(["logs", "--grep", "up-e2e-order-1", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // The replica's access line carries the id the client sent through the balancer.
        text.contains("\"service\":\"serve\"") && text.contains("\"instance\":\"serve-orders-")
    });

    // `brigade status` shows every child.
    let status = Command::new(BRIGADE)
        .args(["status", "--ops", &up.ops])
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    for instance in [
        "balance",
        "serve-orders-1",
        "serve-orders-2",
        "serve-orders-3",
        "serve-kitchen-1",
        "watch",
    ] {
        assert!(text.contains(instance), "{instance} missing from:\n{text}");
    }
    the_answers_parse_into_the_contract_types(&up);

    // SIGKILL one replica under load: no request fails, and it comes back.
    let load = Load::start(&up, 4);
    load.run_for(50);
    let victim = up.status()["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["instance"] == "serve-orders-1")
        .unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    signal(victim, "-KILL");
    wait_until(
        "the killed replica to be back",
        Duration::from_secs(30),
        || {
            let status = up.status();
            let child = status["children"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["instance"] == "serve-orders-1")
                .unwrap()
                .clone();
            child["state"] == "ready"
                && child["restarts"] == 1
                && child["pid"].as_u64() != Some(u64::from(victim))
        },
    );
    load.run_for(60);
    let (sent, failed) = load.finish();
    assert!(sent > 100, "the load ran");
    assert_eq!(failed, 0, "failed requests out of {sent}");

    // SIGTERM: everything stops in order, exit 0, no process left.
    let pids = up.child_pids();
    assert_eq!(pids.len(), 6);
    signal(up.process.child.id(), "-TERM");
    let exit = up.process.child.wait().unwrap();
    assert!(exit.success(), "brigade up exited with {exit}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the supervisor");
    }
}

#[test]
fn children_die_with_a_killed_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path());
    // "brigade is up" waits for the balancer and the replicas; watch may still be starting.
    wait_until("every child to run", Duration::from_secs(30), || {
        up.child_pids().len() == 6
    });
    let pids = up.child_pids();
    assert_eq!(
        pids.len(),
        6,
        "balance, 2 + 1 orders replicas, 1 kitchen replica, watch"
    );
    up.process.child.kill().unwrap();
    up.process.child.wait().unwrap();
    wait_until("every child to exit", Duration::from_secs(30), || {
        pids.iter().all(|&pid| !alive(pid))
    });
}

/// The ops API's and watch's answers parse into the types their clients (`brigade status`,
/// `brigade rollout`, the drills) compile against: a field renamed on one side fails here.
fn the_answers_parse_into_the_contract_types(up: &Up) {
    use brigade_up::api::{ChildState, EventKind, Service, Status};
    use brigade_watch::contract::{AlertsAnswer, HistoryAnswer, QueryAnswer, QueryData};
    let get = |url: String| {
        reqwest::blocking::get(url)
            .unwrap()
            .error_for_status()
            .unwrap()
    };
    let status: Status = get(format!("http://{}/api/status", up.ops)).json().unwrap();
    assert_eq!(status.pools(), ["kitchen", "orders"]);
    assert!(status.replicas(Some("orders")).all(|c| c.address.is_some()));
    assert!(status.replicas(None).count() > status.replicas(Some("orders")).count());
    assert!(
        status
            .children
            .iter()
            .any(|c| c.service == Service::Balance && c.state == ChildState::Ready)
    );
    assert!(status.events.iter().any(|e| e.kind == EventKind::Ready));
    assert!(status.public_endpoint().is_some());
    let watch = status.watch.clone().expect("watch's address");
    let _: AlertsAnswer = get(format!("http://{watch}/api/v1/alerts")).json().unwrap();
    let _: HistoryAnswer = get(format!("http://{watch}/api/v1/alerts/history"))
        .json()
        .unwrap();
    let query = |promql: &str| -> QueryAnswer {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{watch}/api/v1/query"),
            &[("query", promql)],
        )
        .unwrap();
        get(url.to_string()).json().unwrap()
    };
    assert!(matches!(query("up").data, QueryData::Vector(_)));
    assert!(matches!(query("1 + 1").data, QueryData::Scalar(_)));
    assert!(matches!(query("up[1m]").data, QueryData::Matrix(_)));
}

#[test]
fn every_drill_runs_in_short_mode_and_its_report_holds() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    for drill in ["kill-replica", "rolling-restart", "error-burst"] {
        let output = Command::new(BRIGADE)
            .args([
                "drill",
                drill,
                "--ops",
                &up.ops,
                "--phase-secs",
                "2",
                "--clients",
                "4",
                "--json",
            ])
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{drill}: no JSON report ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(
            output.status.success(),
            "{drill} failed its claims: {report}"
        );
        assert!(report["sent"].as_u64().unwrap() > 50, "{drill}: {report}");
        assert!(
            report["acknowledged"].as_u64().unwrap() > 10,
            "{drill}: {report}"
        );
        assert_eq!(report["lost"], 0, "{drill}: {report}");
        assert_eq!(report["duplicated"], 0, "{drill}: {report}");
        match drill {
            "error-burst" => {
                assert!(
                    report["failed_by_phase"][1].as_u64().unwrap() > 0,
                    "the burst failed requests: {report}"
                );
                failed_trace_is_kept(&up, &report);
                drill_is_traced(&up);
            }
            _ => assert_eq!(report["failed"], 0, "{drill}: {report}"),
        }
    }
    let unknown = Command::new(BRIGADE)
        .args(["drill", "flood", "--ops", &up.ops, "--password", "x"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("kill-replica"),
        "names the drills"
    );
}

/// A drill is a trace of its own at the ops port (the drill process exports to up's watch):
/// `drill error-burst` with its phases under it, the fault between the calm phases.
fn drill_is_traced(up: &Up) {
    let detail = common::wait_for_trace(
        &up.ops,
        "service=brigade-drill&route=drill%20error-burst",
        Duration::from_secs(20),
        |detail| detail.spans.len() >= 4,
    );
    let drill = common::span_named(&detail, "drill error-burst");
    let phases: Vec<_> = ["before", "fault", "after"]
        .iter()
        .map(|name| common::span_named(&detail, name))
        .collect();
    for phase in &phases {
        assert_eq!(
            phase.span.parent_span_id.as_ref(),
            Some(&drill.span.span_id)
        );
    }
    assert!(phases[0].span.start_ms < phases[1].span.start_ms);
    assert!(phases[1].span.start_ms < phases[2].span.start_ms);
    assert!(phases[1].span.duration_ms >= 1000.0, "{:?}", phases[1].span);
}

/// The report names the traces of the fault's failed requests, and the ops API finds the first
/// as a failed trace through the balancer and a replica (watch keeps failed traces).
fn failed_trace_is_kept(up: &Up, report: &Value) {
    let failed = report["traces"]["failed"][1].as_array().unwrap();
    assert!(!failed.is_empty(), "failed requests' traces: {report}");
    assert!(report["traces"]["slowest"][1].is_string(), "{report}");
    let trace = failed[0].as_str().unwrap();
    let url = format!("http://{}/api/traces/{trace}", up.ops);
    let mut found = None;
    common::wait_until(
        "the failed request's trace",
        Duration::from_secs(20),
        || {
            let answer = reqwest::blocking::get(&url).unwrap();
            if answer.status() != 200 {
                return false;
            }
            let detail: brigade_up::api::TraceDetail = answer.json().unwrap();
            let service = |name: &str| detail.spans.iter().any(|s| s.span.service == name);
            let whole = service("brigade-balance") && service("brigade-serve");
            found = Some(detail);
            whole
        },
    );
    let detail = found.unwrap();
    assert!(
        detail.spans.iter().any(|s| s.span.error),
        "a span of the failed request failed: {:?}",
        detail.spans
    );
}

/// The orders replica `instance`'s pid once it is ready with `restarts` restarts.
fn ready_pid(up: &Up, instance: &str, restarts: u64) -> Option<u32> {
    let status = up.status();
    let child = status["children"]
        .as_array()?
        .iter()
        .find(|c| c["instance"] == instance)?
        .clone();
    (child["state"] == "ready" && child["restarts"] == restarts)
        .then(|| child["pid"].as_u64().map(|p| p as u32))
        .flatten()
}

/// The value of a sample line `name{labels} value` in a Prometheus exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_crash_looping_replica_shows_in_the_metrics_and_fires_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    let metrics = || {
        reqwest::blocking::get(format!("http://{}/metrics", up.ops))
            .unwrap()
            .text()
            .unwrap()
    };
    let text = metrics();
    assert_eq!(
        sample(
            &text,
            r#"brigade_supervisor_children{service="serve",pool="orders",state="ready"}"#
        ),
        Some(3.0),
        "two primaries and a backup are ready:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"brigade_supervisor_crash_loops_total{pool="orders"}"#
        ),
        Some(0.0),
        "registered at zero so that its first increase counts:\n{text}"
    );

    // Three crashes within the crash-loop window.
    for restarts in 0..3 {
        let mut pid = None;
        wait_until("the replica to be ready", Duration::from_secs(30), || {
            pid = ready_pid(&up, "serve-orders-1", restarts);
            pid.is_some()
        });
        signal(pid.unwrap(), "-KILL");
    }
    wait_until("the crash loop event", Duration::from_secs(10), || {
        up.status()["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "crash_loop" && e["instance"] == "serve-orders-1")
    });
    let text = metrics();
    assert_eq!(
        sample(
            &text,
            r#"brigade_supervisor_crash_loops_total{pool="orders"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, r#"brigade_supervisor_restarts_total{pool="orders"}"#)
            .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"brigade_supervisor_events_total{kind="crash_loop",level="error"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Watch scrapes the supervisor and fires the alert from the rules compiled into the binary
    // (the test runs from the crate directory, where deploy/ is not).
    let watch = up.status()["watch"].as_str().unwrap().to_owned();
    wait_until(
        "BrigadeReplicaCrashLooping to fire in watch",
        Duration::from_secs(45),
        || {
            let alerts: Value = reqwest::blocking::get(format!("http://{watch}/api/v1/alerts"))
                .unwrap()
                .json()
                .unwrap();
            alerts["alerts"].as_array().is_some_and(|alerts| {
                alerts.iter().any(|a| {
                    a["labels"]["alertname"] == "BrigadeReplicaCrashLooping"
                        && a["labels"]["pool"] == "orders"
                        && a["state"] == "firing"
                })
            })
        },
    );
}

#[test]
fn up_on_postgresql_and_redis_serves_orders_and_survives_a_killed_replica() {
    let Some(database) = PgDatabase::create("brigade_up") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set: skipping brigade up on PostgreSQL");
        return;
    };
    let redis = brigade_store::test_support::redis_url();
    let mut env = vec![("DATABASE_URL", database.url.as_str())];
    if let Some(redis) = redis.as_deref() {
        env.push(("REDIS_URL", redis));
    }
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start_with(dir.path(), &["--no-watch"], &env);
    assert!(
        !dir.path().join("brigade.db").exists(),
        "no SQLite file in PostgreSQL mode"
    );
    let load = Load::start(&up, 4);
    load.run_for(40);
    let victim = ready_pid(&up, "serve-orders-1", 0).expect("serve-orders-1 runs");
    signal(victim, "-KILL");
    wait_until(
        "the killed replica to be back",
        Duration::from_secs(30),
        || ready_pid(&up, "serve-orders-1", 1).is_some(),
    );
    load.run_for(40);
    let (sent, failed) = load.finish();
    assert!(sent > 50, "the load ran: {sent}");
    assert_eq!(failed, 0, "failed requests out of {sent}");
    let orders = count_orders(&database.url);
    assert!(orders > 0, "the orders are in PostgreSQL");
}

fn count_orders(url: &str) -> i64 {
    common::with_postgres(url, async |connection| {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders")
            .fetch_one(connection)
            .await
            .unwrap();
        count
    })
}

#[test]
fn on_a_terminal_up_shows_the_live_status_table() {
    let dir = tempfile::tempdir().unwrap();
    let ops_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `script` runs brigade up on a pseudo-terminal, as a person would.
    let command = format!(
        "stty cols 160 rows 50; exec {BRIGADE} up --port 0 --ops-port {ops_port} --replicas 1 --no-demo --data-dir {}",
        dir.path().display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let stdout = child.stdout.take().unwrap();
    let (sender, chunks) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdout = stdout;
        let mut buffer = [0_u8; 8192];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0
                || sender
                    .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut screen = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let shown = loop {
        if let Ok(chunk) = chunks.recv_timeout(Duration::from_millis(200)) {
            screen.push_str(&chunk);
        }
        // A table row of a ready, healthy replica, below the header, drawn by the live view
        // (which moves the cursor rather than printing newlines, so rows are found by offset).
        let row = screen.match_indices("│ serve-orders-1").any(|(at, _)| {
            let rest: String = screen[at..].chars().take(100).collect();
            rest.contains("ready") && rest.contains("healthy")
        });
        if screen.contains("REQ/S")
            && screen.contains("P99 MS")
            && row
            && screen.contains("brigade is up")
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    let status = reqwest::blocking::get(format!("http://127.0.0.1:{ops_port}/api/status"))
        .ok()
        .and_then(|r| r.json::<Value>().ok());
    let pids: Vec<u32> = status
        .as_ref()
        .and_then(|s| s["children"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
        .collect();
    // Closing the terminal's input ends `script`, and with it brigade up and its children.
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    let tail: String = screen
        .chars()
        .rev()
        .take(3000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(
        shown,
        "no live table on the terminal; its last output:\n{tail}"
    );
    assert!(screen.contains("brigade is up"), "{screen}");
    wait_until("the children to stop", Duration::from_secs(20), || {
        pids.iter().all(|&pid| !alive(pid))
    });
}

#[test]
fn up_toml_sets_the_topology_and_a_flag_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.toml");
    std::fs::write(
        &config,
        "replicas = 4\nkitchen_replicas = 2\nwatch = false\n\n[autoscale]\nmetric = \"in-flight\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    // `--replicas 2` (from the helper) wins over the file's 4; the rest comes from the file.
    let up = Up::start_with(&data, &["--config", config.to_str().unwrap()], &[]);
    let status = up.status();
    let children = status["children"].as_array().unwrap();
    let count = |pool: &str, backup: bool| {
        children
            .iter()
            .filter(|c| c["pool"] == pool && c["backup"] == backup)
            .count()
    };
    assert_eq!(count("orders", false), 2, "the flag wins: {status}");
    assert_eq!(count("kitchen", false), 2, "from up.toml: {status}");
    assert!(
        children.iter().all(|c| c["service"] != "watch"),
        "watch = false: {status}"
    );
    drop(up);

    for (text, expected) in [
        ("replicas = 0\n", "replicas: 0 is not between 1 and 64"),
        (
            "[autoscale]\nmax = 4\nmetric = \"memory\"\n",
            "autoscale.metric",
        ),
        ("replcias = 2\n", "replcias"),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = Command::new(BRIGADE)
            .args(["up", "--config", config.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("bad"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text}");
        assert!(stderr.contains(expected), "{text:?} → {stderr}");
        assert!(stderr.contains("up.toml"), "names the file: {stderr}");
    }
}
