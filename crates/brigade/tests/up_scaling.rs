//! `brigade up` changing its topology under load: a rolling restart and the autoscaler (by
//! request rate and by CPU) add and remove replicas without failing a request.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::load::Load;
use common::{BRIGADE, Running, Up, alive, wait_until};

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
    // Another site's page, or a client without this start's token, cannot start a rollout.
    let rollout_url = format!("http://{}/api/pools/orders/rollout", up.ops);
    let token = common::ops_token(&up.ops);
    let http = reqwest::blocking::Client::new();
    let forged = [
        http.post(&rollout_url),
        http.post(&rollout_url)
            .header("x-brigade-ops-token", "guessed"),
        http.post(&rollout_url)
            .header("x-brigade-ops-token", &token)
            .header("origin", "http://evil.example"),
        http.post(&rollout_url)
            .header("x-brigade-ops-token", &token)
            .header("sec-fetch-site", "cross-site"),
    ];
    for request in forged {
        let refused = request.send().unwrap();
        assert_eq!(refused.status(), 403);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
    }
    let load = Load::start(&up, 4);
    load.run_for(40);
    let untouched: Vec<u64> = orders_primaries(&up)
        .iter()
        .filter_map(|c| c["pid"].as_u64())
        .collect();
    assert_eq!(untouched, before, "a refused rollout replaced nothing");
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
    rollout_is_traced(&up);
    load.run_for(20);
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

/// Runs `clients` of load from two orders primaries until a third is ready; no request may
/// fail meanwhile. Returns the supervisor's events.
fn scales_up_under_load(up: &Up, clients: usize) -> Vec<Value> {
    assert_eq!(orders_primaries(up).len(), 2);
    let load = Load::start(up, clients);
    wait_until(
        "the autoscaler to add a ready replica",
        Duration::from_secs(30),
        || {
            orders_primaries(up)
                .iter()
                .filter(|c| c["state"] == "ready")
                .count()
                >= 3
        },
    );
    let (sent, failed) = load.finish();
    assert_eq!(failed, 0, "failed requests out of {sent} while scaling up");
    up.status()["events"].as_array().unwrap().clone()
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
    let events = scales_up_under_load(&up, 8);
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
fn the_autoscaler_follows_cpu_use() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start_with(
        dir.path(),
        &[
            "--no-watch",
            "--autoscale-max",
            "3",
            "--autoscale-metric",
            "cpu",
            "--autoscale-target-cpu",
            "2",
            "--autoscale-interval-ms",
            "500",
        ],
        &[],
    );
    let events = scales_up_under_load(&up, 6);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "autoscale" && e["message"].as_str().unwrap().contains("cpu ")),
        "the decision names its metric: {events:?}"
    );
    let bad = Command::new(BRIGADE)
        .args([
            "up",
            "--autoscale-max",
            "3",
            "--autoscale-metric",
            "cpu",
            "--autoscale-target-cpu",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--autoscale-target-cpu"),
        "the error names the flag: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// The supervisor's rollout is a trace at the ops port (up exports to watch without any
/// `OTEL_*` variable): a `rollout orders` span with each replica's replacement under it.
fn rollout_is_traced(up: &Up) {
    let detail = common::wait_for_trace(
        &up.ops,
        "service=brigade-up&route=rollout",
        Duration::from_secs(20),
        |detail| {
            detail
                .spans
                .iter()
                .filter(|s| s.span.name.starts_with("replace "))
                .count()
                == 3
        },
    );
    let rollout = common::span_named(&detail, "rollout orders");
    assert!(!rollout.span.error, "{rollout:?}");
    for replace in detail
        .spans
        .iter()
        .filter(|s| s.span.name.starts_with("replace serve-orders-"))
    {
        assert_eq!(
            replace.span.parent_span_id.as_ref(),
            Some(&rollout.span.span_id)
        );
        assert_eq!(replace.span.service, "brigade-up");
    }
}
