//! The real `brigade` binary as a child process: graceful shutdown with a request in flight,
//! several replica processes on one SQLite file, and the command-line contract.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::{BRIGADE, Served};

/// A running `brigade serve` (every line on its standard output must be JSON).
type Replica = Served;

fn get_json(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

/// (shop id, item id) of the demo data.
fn demo_ids(replica: &Replica) -> (String, String) {
    let shops = get_json(&replica.url("/api/v1/shops"));
    let shop = shops[0]["id"].as_str().unwrap().to_owned();
    let menu = get_json(&replica.url(&format!("/api/v1/shops/{shop}/menu")));
    (shop, menu[0]["item_id"].as_str().unwrap().to_owned())
}

/// A token of the demo customer.
fn customer_token(replica: &Replica) -> String {
    token_of(replica, "customer@brigade.demo")
}

/// A token of a demo account.
fn token_of(replica: &Replica, email: &str) -> String {
    common::log_in_at(&replica.url(""), email)
}

fn order_json(shop: &str, item: &str) -> String {
    json!({"shop_id": shop, "items": [{"item_id": item, "quantity": 1}],
           "delivery": {"lat": 52.51, "lon": 13.40}})
    .to_string()
}

#[test]
fn sigterm_drains_and_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Served::replica(dir.path(), &["--demo", "--drain-delay-ms", "200"], &[]);
    let (shop, item) = demo_ids(&replica);
    let token = customer_token(&replica);
    let body = order_json(&shop, &item);
    let (head, tail) = body.split_at(body.len() / 2);

    // Start a request and stop halfway through its body: it is in flight.
    let mut stream = TcpStream::connect(&replica.address).unwrap();
    write!(
        stream,
        "POST /api/v1/orders HTTP/1.1\r\nHost: brigade\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();

    replica.terminate();
    replica.wait_for("draining");
    // Readiness fails at once while the listener still accepts during the drain delay.
    let ready = reqwest::blocking::get(replica.url("/health/ready")).unwrap();
    assert_eq!(ready.status(), 503);
    replica.wait_for("listener closed; finishing in-flight requests");

    stream.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("\"status\":\"placed\""), "{response}");

    replica.wait_for("stopped");
    let status = replica.process.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        TcpStream::connect(&replica.address).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn replica_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = Served::replica(dir.path(), &["--demo"], &[]);
    let second = Served::replica(dir.path(), &[], &[]);
    let (shop, item) = demo_ids(&first);
    let token = customer_token(&first);
    let body = order_json(&shop, &item);
    let workers: Vec<_> = [&first, &second]
        .iter()
        .flat_map(|replica| {
            let url = replica.url("/api/v1/orders");
            let body = body.clone();
            let token = token.clone();
            (0..2).map(move |_| {
                let (url, body, token) = (url.clone(), body.clone(), token.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    for _ in 0..10 {
                        let response = client
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(response.status(), 201, "{}", response.text().unwrap());
                    }
                })
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let page: Value = reqwest::blocking::Client::new()
        .get(second.url("/api/v1/orders?limit=100"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 40);
}

fn brigade(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BRIGADE)
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .expect("brigade runs")
}

#[test]
fn demo_data_is_idempotent_and_migrate_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let migrate = brigade(dir.path(), &["migrate", "--data-dir", data]);
    assert!(migrate.status.success());
    let shipped = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../brigade-store/migrations/sqlite"
    ))
    .unwrap()
    .count();
    let report = String::from_utf8_lossy(&migrate.stdout);
    assert!(
        report.contains(&format!("{shipped} migration(s) applied")),
        "{report}"
    );
    let again = brigade(dir.path(), &["migrate", "--data-dir", data]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 migration(s) applied"));

    let first = brigade(dir.path(), &["demo-data", "--data-dir", data]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.contains("created 2 shop(s), 4 station(s), 5 item(s), 10 menu entr(ies)"),
        "{first}"
    );
    let second = brigade(dir.path(), &["demo-data", "--data-dir", data]);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing changed"));
}

#[test]
fn bad_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BRIGADE)
        .args(["serve"])
        .current_dir(dir.path())
        .env("BRIGADE_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("server.listen"), "{stderr}");

    std::fs::write(
        dir.path().join("brigade.toml"),
        "[storage]\nmax_conections = 3\n",
    )
    .unwrap();
    let output = brigade(dir.path(), &["migrate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_conections"));
    std::fs::remove_file(dir.path().join("brigade.toml")).unwrap();

    let output = brigade(dir.path(), &["--config", "missing.toml", "migrate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));

    let output = brigade(dir.path(), &["serve", "--listen", "nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--listen"));

    let output = brigade(dir.path(), &["migrate", "--database-url", "mysql://x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("storage.database_url"));

    // up's flags and up.toml keys, and watch's config, are checked the same way.
    let output = brigade(dir.path(), &["up", "--replicas", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("replicas"));
    let output = brigade(dir.path(), &["up", "--alert-rules", "no-such-rules.yml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--alert-rules"));
    std::fs::write(dir.path().join("up.toml"), "replicas = 99\n").unwrap();
    let output = brigade(dir.path(), &["up"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("up.toml: replicas"));
    std::fs::remove_file(dir.path().join("up.toml")).unwrap();
    std::fs::write(dir.path().join("watch.toml"), "listn = \"127.0.0.1:0\"\n").unwrap();
    let output = brigade(dir.path(), &["watch"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listn"));
    std::fs::remove_file(dir.path().join("watch.toml")).unwrap();

    // A demo password the accounts would refuse is named before anything starts, by every
    // command that loads the demo accounts; nothing is written.
    for args in [&["serve", "--demo"][..], &["demo-data"], &["up"]] {
        let output = Command::new(BRIGADE)
            .args(args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env("BRIGADE_DEMO_PASSWORD", "short")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("BRIGADE_DEMO_PASSWORD: must be 10 to 128 characters"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("brigade-data").exists(),
        "nothing was written"
    );

    // An unreachable database is a runtime failure (1) that names the database.
    let output = brigade(
        dir.path(),
        &[
            "migrate",
            "--database-url",
            "postgres://brigade:secret@127.0.0.1:1/none",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("postgres://brigade:***@127.0.0.1:1/none"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "passwords never reach the logs");

    // DATABASE_URL overrides the SQLite file of --data-dir (how replicas move to PostgreSQL).
    let output = Command::new(BRIGADE)
        .args(["migrate", "--data-dir", "data"])
        .current_dir(dir.path())
        .env("DATABASE_URL", "postgres://127.0.0.1:1/from-env")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("postgres://127.0.0.1:1/from-env"));
}

#[test]
fn every_subcommand_has_help() {
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["demo-data", "--help"],
    ] {
        let output = Command::new(BRIGADE).args(command).output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: brigade"), "{text}");
    }
    let serve = Command::new(BRIGADE)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--redis-url",
        "--drain-delay-ms",
        "--config",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
}

/// Polls `check` for up to 30 s; panics naming `what` when it never holds.
fn wait_until(what: &str, check: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(30), check);
}

#[test]
fn a_replica_killed_mid_payment_leaves_no_charge_unrecorded() {
    use brigade_payments::fake_stripe::{Endpoint, FakeStripe};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (fake, base_url) = runtime.block_on(FakeStripe::start());
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BRIGADE_PAYMENTS__PROVIDER", "stripe"),
        ("BRIGADE_PAYMENTS__STRIPE__BASE_URL", base_url.as_str()),
        (
            "BRIGADE_PAYMENTS__STRIPE__SECRET_KEY",
            FakeStripe::SECRET_KEY,
        ),
        ("BRIGADE_PAYMENTS__STRIPE__MAX_RETRIES", "10"),
        ("BRIGADE_PAYMENTS__STRIPE__REQUEST_TIMEOUT_MS", "10000"),
        ("BRIGADE_PAYMENTS__TIMEOUT_MS", "60000"),
        ("BRIGADE_PAYMENTS__RECONCILE_AFTER_SECS", "1"),
    ];
    let mut first = Served::replica(dir.path(), &["--demo"], &env);
    let (shop, item) = demo_ids(&first);
    let customer = customer_token(&first);

    // The provider takes 2 s to act on the charge; the replica dies while it waits.
    fake.set_delay(Duration::from_secs(2));
    let url = first.url("/api/v1/orders");
    let body = order_json(&shop, &item);
    let request = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(customer)
            .header("content-type", "application/json")
            .body(body)
            .send()
    });
    wait_until("the authorisation to reach the provider", || {
        fake.calls(Endpoint::Create) == 1
    });
    first.process.child.kill().unwrap();
    first.process.child.wait().unwrap();
    assert!(
        request.join().unwrap().is_err(),
        "the client never got an answer"
    );
    fake.set_delay(Duration::ZERO);

    // Another replica finishes what the dead one started. Nobody was told the order was
    // placed and nobody retried it, so nothing may stay charged: the reconciler gives the
    // order up and releases the authorisation the provider made.
    let second = Served::replica(dir.path(), &[], &env);
    let admin = token_of(&second, "admin@brigade.demo");
    let client = reqwest::blocking::Client::new();
    let orders = || -> Value {
        client
            .get(second.url("/api/v1/orders"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(
        orders()["items"].as_array().unwrap().len(),
        1,
        "the order was recorded before the call"
    );
    wait_until("the reconciler to settle the payment", || {
        orders()["items"][0]["status"] != "awaiting_payment"
    });
    let order = &orders()["items"][0];
    assert_eq!(order["status"], "payment_failed", "{order}");
    wait_until("the authorisation to be released", || {
        fake.intents().len() == 1 && fake.live_intents().is_empty()
    });
    let intents = fake.intents();
    assert_eq!(intents[0].status, "canceled", "{intents:?}");
    assert_eq!(
        intents[0].metadata["order_id"],
        order["id"].as_str().unwrap()
    );
    let audit: Value = client
        .get(second.url("/api/v1/admin/audit?action=payment.voided"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        audit["items"][0]["actor"], "system",
        "released by the reconciler: {audit}"
    );
}

/// A replica that has served nothing yet already exposes its counters, at zero: Prometheus's
/// `increase()` and `rate()` count an event only against an earlier sample, so a counter that
/// appears with its first event hides that event from every alert and chart.
#[test]
fn a_fresh_replica_exposes_its_counters_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Served::replica(dir.path(), &[], &[]);
    let text = reqwest::blocking::get(replica.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let at_zero = |series: &str| {
        text.lines()
            .any(|line| line.starts_with(series) && line.ends_with(" 0"))
    };
    for series in [
        "brigade_orders_placed_total ",
        "brigade_signups_total ",
        "brigade_tickets_completed_total ",
        "brigade_payments_total{provider=\"simulated\",outcome=\"declined\"}",
        "brigade_payments_total{provider=\"simulated\",outcome=\"error\"}",
        "brigade_order_status_changes_total{status=\"cancelled\"}",
        "brigade_cache_requests_total{cache=\"memory\",result=\"hit\"}",
        "brigade_cache_requests_total{cache=\"memory\",result=\"miss\"}",
    ] {
        assert!(at_zero(series), "{series} is not at 0 in\n{text}");
    }
}

/// The replica batches its log lines (one write per batch, not per request): under many
/// requests at once every access-log line still arrives, whole (each line on standard output
/// must parse as JSON, or the channel ends), in time, and the last ones before the process ends.
#[test]
fn every_access_log_line_arrives_whole_under_concurrent_requests() {
    const CLIENTS: usize = 16;
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let replica = Served::replica(dir.path(), &[], &[]);
    let url = replica.url("/api/v1/shops");
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::new();
                for _ in 0..EACH {
                    assert!(client.get(&url).send().unwrap().status().is_success());
                }
            });
        }
    });
    let lines = replica.process.lines();
    let count = |lines: &std::sync::mpsc::Receiver<Value>, limit: Duration, until: &str| {
        let deadline = std::time::Instant::now() + limit;
        let mut completed = 0;
        while let Ok(line) =
            lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line["message"] == "request completed" && line["route"] == "/api/v1/shops" {
                // An untraced request has no span: its ids come from the request's context.
                for id in ["request_id", "trace_id", "span_id"] {
                    assert!(
                        line[id].as_str().is_some_and(|v| !v.is_empty()),
                        "{id}: {line}"
                    );
                }
                completed += 1;
            }
            if line["message"] == until {
                return (completed, true);
            }
        }
        (completed, false)
    };
    // A line waits at most a few milliseconds in the buffer: one more request's line arrives
    // while the process keeps running.
    let (mut completed, _) = count(lines, Duration::from_secs(2), "never said");
    assert_eq!(
        completed,
        CLIENTS * EACH,
        "every line arrives while serving"
    );
    reqwest::blocking::get(&url).unwrap();
    replica.terminate();
    let (after, stopped) = count(lines, Duration::from_secs(30), "stopped");
    completed += after;
    assert!(stopped, "the stop is logged");
    assert_eq!(completed, CLIENTS * EACH + 1);
}
