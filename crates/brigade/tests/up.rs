//! `brigade up` end to end with the real binary: the topology comes up and serves an order
//! through the balancer, a replica killed with SIGKILL under load costs no request and comes
//! back, the central logs find a request by its id, and no brigade process
//! outlives the supervisor — whether it is stopped or killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BRIGADE: &str = env!("CARGO_BIN_EXE_brigade");
const DEMO_PASSWORD: &str = "demo password 1";

/// A running `brigade up` and the addresses from its `brigade is up` line.
struct Up {
    child: Child,
    public: String,
    ops: String,
}

impl Up {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[], &[])
    }

    fn start_with(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BRIGADE)
            .args([
                "up",
                "--port",
                "0",
                "--ops-port",
                "0",
                "--replicas",
                "2",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("brigade up starts");
        let (sender, lines) = mpsc::channel::<Value>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line)
                    && sender.send(value).is_err()
                {
                    break;
                }
            }
        });
        let up = loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) if line["message"] == "brigade is up" => break line,
                Ok(_) => {}
                Err(error) => panic!("brigade up never came up: {error}"),
            }
        };
        Self {
            child,
            public: up["public"].as_str().unwrap().to_owned(),
            ops: up["ops"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    fn status(&self) -> Value {
        reqwest::blocking::get(format!("http://{}/api/status", self.ops))
            .unwrap()
            .json()
            .unwrap()
    }

    fn child_pids(&self) -> Vec<u32> {
        self.status()["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
            .collect()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.contains(") Z "))
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, name: &str) {
    assert!(
        Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn up_serves_survives_a_killed_replica_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path());
    let client = reqwest::blocking::Client::new();

    // An order through the balancer, with a request id to find in the logs.
    let session: Value = client
        .post(up.url("/api/v1/sessions"))
        .json(&json!({"email": "customer@brigade.demo", "password": DEMO_PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = session["token"]
        .as_str()
        .expect("the demo customer logs in")
        .to_owned();
    let shops: Value = client
        .get(up.url("/api/v1/shops"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shop = shops[0]["id"].as_str().unwrap();
    let menu: Value = client
        .get(up.url(&format!("/api/v1/shops/{shop}/menu")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let order = client
        .post(up.url("/api/v1/orders"))
        .bearer_auth(&token)
        .header("x-request-id", "up-e2e-order-1")
        .json(&json!({"shop_id": shop, "items": [{"item_id": menu[0]["item_id"], "quantity": 1}], "delivery": {"lat": 52.51, "lon": 13.40}}))
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

    // SIGKILL one replica under load: no request fails, and it comes back.
    let load = Load::start(&up, 4);
    std::thread::sleep(Duration::from_millis(500));
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
    std::thread::sleep(Duration::from_millis(500));
    let (sent, failed) = load.finish();
    assert!(sent > 100, "the load ran");
    assert_eq!(failed, 0, "failed requests out of {sent}");

    // SIGTERM: everything stops in order, exit 0, no process left.
    let pids = up.child_pids();
    assert_eq!(pids.len(), 6);
    signal(up.child.id(), "-TERM");
    let exit = up.child.wait().unwrap();
    assert!(exit.success(), "brigade up exited with {exit}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the supervisor");
    }
}

#[test]
fn children_die_with_a_killed_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path());
    let pids = up.child_pids();
    assert_eq!(
        pids.len(),
        6,
        "balance, 2 + 1 orders replicas, 1 kitchen replica, watch"
    );
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    wait_until("every child to exit", Duration::from_secs(30), || {
        pids.iter().all(|&pid| !alive(pid))
    });
}

/// Requests sent by [`Load`] and how many did not succeed.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `threads` clients in a loop: a menu read, then an order with a fresh Idempotency-Key.
    fn start(up: &Up, threads: usize) -> Self {
        let client = reqwest::blocking::Client::new();
        let session: Value = client
            .post(up.url("/api/v1/sessions"))
            .json(&json!({"email": "customer@brigade.demo", "password": DEMO_PASSWORD}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let token = session["token"].as_str().unwrap().to_owned();
        let shops: Value = client
            .get(up.url("/api/v1/shops"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let shop = shops[0]["id"].as_str().unwrap().to_owned();
        let menu: Value = client
            .get(up.url(&format!("/api/v1/shops/{shop}/menu")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let order = json!({"shop_id": shop, "items": [{"item_id": menu[0]["item_id"], "quantity": 1}], "delivery": {"lat": 52.51, "lon": 13.40}});
        let (stop, sent, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads = (0..threads)
            .map(|n| {
                let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
                let (menu_url, orders_url, token, order) = (
                    up.url(&format!("/api/v1/shops/{shop}/menu")),
                    up.url("/api/v1/orders"),
                    token.clone(),
                    order.clone(),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        sent.fetch_add(2, Ordering::Relaxed);
                        if !client
                            .get(&menu_url)
                            .send()
                            .is_ok_and(|r| r.status().is_success())
                        {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let placed = client
                            .post(&orders_url)
                            .bearer_auth(&token)
                            .header("idempotency-key", format!("load-{n}-{i}"))
                            .json(&order)
                            .send();
                        if !placed.is_ok_and(|r| r.status().is_success()) {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            sent,
            failed,
            threads,
        }
    }

    /// Stops the load; returns (sent, failed).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn orders_primaries(up: &Up) -> Vec<Value> {
    up.status()["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pool"] == "orders" && c["backup"] == false)
        .cloned()
        .collect()
}

#[test]
fn rollout_restart_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    let before: Vec<u64> = orders_primaries(&up)
        .iter()
        .filter_map(|c| c["pid"].as_u64())
        .collect();
    let load = Load::start(&up, 4);
    std::thread::sleep(Duration::from_millis(500));
    let rollout = Command::new(BRIGADE)
        .args(["rollout", "restart", "orders", "--ops", &up.ops])
        .output()
        .unwrap();
    assert!(
        rollout.status.success(),
        "{}",
        String::from_utf8_lossy(&rollout.stderr)
    );
    assert!(String::from_utf8_lossy(&rollout.stdout).contains("orders: 3 replicas replaced"));
    std::thread::sleep(Duration::from_millis(300));
    let (sent, failed) = load.finish();
    assert!(sent > 50, "the load ran ({sent})");
    assert_eq!(failed, 0, "failed requests out of {sent}");
    let after: Vec<u64> = orders_primaries(&up)
        .iter()
        .filter_map(|c| c["pid"].as_u64())
        .collect();
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "every replica replaced: {before:?} -> {after:?}"
    );
    for pid in before {
        assert!(!alive(pid as u32), "old replica {pid} still runs");
    }
}

#[test]
fn the_autoscaler_adds_replicas_under_load_and_removes_them_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    // Slow payments keep requests in flight, which is what the autoscaler measures.
    let up = Up::start_with(
        dir.path(),
        &[
            "--no-watch",
            "--autoscale-max",
            "4",
            "--autoscale-target-in-flight",
            "1",
            "--scale-down-window-secs",
            "3",
            "--autoscale-interval-ms",
            "300",
        ],
        &[("BRIGADE_PAYMENTS__SIMULATED__LATENCY_MS", "150")],
    );
    assert_eq!(orders_primaries(&up).len(), 2);
    let load = Load::start(&up, 8);
    wait_until(
        "the autoscaler to add ready replicas",
        Duration::from_secs(30),
        || {
            orders_primaries(&up)
                .iter()
                .filter(|c| c["state"] == "ready")
                .count()
                >= 3
        },
    );
    let (sent, failed) = load.finish();
    assert_eq!(failed, 0, "failed requests out of {sent} while scaling up");
    let events = up.status()["events"].as_array().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "autoscale"
                && e["message"].as_str().unwrap().contains("per replica")),
        "{events:?}"
    );
    wait_until(
        "the autoscaler to scale back down",
        Duration::from_secs(30),
        || orders_primaries(&up).len() == 2,
    );
    // Orders acknowledged during the surge are all there.
    let client = reqwest::blocking::Client::new();
    let health = client.get(up.url("/health/ready")).send().unwrap();
    assert!(health.status().is_success());
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
            "error-burst" => assert!(
                report["failed_by_phase"][1].as_u64().unwrap() > 0,
                "the burst failed requests: {report}"
            ),
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
