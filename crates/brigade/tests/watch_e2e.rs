//! brigade watch end to end, over loopback: a real `brigade serve` (every payment declined, a
//! fault switch for 5xx), a real `brigade watch` scraping it every second with the shipped rule
//! file (durations shortened), and small receivers standing in for a webhook, Slack, PagerDuty,
//! a dead man's switch and an SMTP server.
//!
//! One scenario, in order: the Watchdog arrives (after the receiver's first answers failed and
//! were retried); two down targets arrive grouped in one notification; a silenced alert and an
//! inhibited alert never arrive; `BrigadePaymentsFailing` arrives at every receiver in the right
//! shape, not before its `for`; a restart of watch neither loses nor repeats firing alerts;
//! faults switched on bring `BrigadeHighErrorRate`; switched off, its resolution arrives, with
//! PagerDuty's `resolve` using the trigger's `dedup_key`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::clock::now_ms;
use serde_json::{Value, json};

use common::{BRIGADE, DEMO_PASSWORD, Served};

/// `for` of every rule in this test (the shipped file says minutes).
const FOR_MS: i64 = 3_000;
const SCRAPE_MS: i64 = 1_000;

/// A child process whose JSON log lines arrive on a channel, and the address it listens on.
type Process = Served;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: Value,
    at_ms: i64,
}

/// An HTTP server recording JSON posts; answers 503 to the first `fail_first` requests.
struct HttpReceiver {
    address: String,
    log: Arc<Mutex<Vec<Received>>>,
    failed: Arc<AtomicUsize>,
}

impl HttpReceiver {
    fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let (log2, failed2) = (log.clone(), failed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (log, failed) = (log2.clone(), failed2.clone());
                std::thread::spawn(move || serve_http(stream, &log, &failed, fail_first));
            }
        });
        Self {
            address,
            log,
            failed,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    fn all(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Notifications at `path` whose common (or only) alertname is `alertname`.
    fn for_alert(&self, path: &str, alertname: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.path == path && names_alert(&r.body, alertname))
            .collect()
    }

    /// Waits (bounded) until `path` got a notification for `alertname` matching `pred`.
    fn wait(&self, path: &str, alertname: &str, pred: impl Fn(&Value) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = self
                .for_alert(path, alertname)
                .into_iter()
                .find(|r| pred(&r.body))
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {alertname} at {path}; got {:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn names_alert(body: &Value, alertname: &str) -> bool {
    // Webhook: commonLabels; Slack: the text; PagerDuty: the summary (resolve has none).
    body["commonLabels"]["alertname"] == alertname
        || body["text"].as_str().is_some_and(|t| t.contains(alertname))
        || body["payload"]["summary"]
            .as_str()
            .is_some_and(|t| t.contains(alertname))
}

fn serve_http(
    stream: TcpStream,
    log: &Mutex<Vec<Received>>,
    failed: &AtomicUsize,
    fail_first: usize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut stream = stream;
    if failed.fetch_add(1, Ordering::SeqCst) < fail_first {
        let _ = stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    log.lock().unwrap().push(Received {
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at_ms: now_ms(),
    });
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

/// A minimal SMTP server keeping each message's text.
fn start_smtp() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let store = messages.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let _ = writer.write_all(b"220 receiver ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let command = line.trim_end().to_ascii_uppercase();
                    if command.starts_with("EHLO") || command.starts_with("HELO") {
                        let _ = writer.write_all(b"250 receiver\r\n");
                    } else if command == "DATA" {
                        let _ = writer.write_all(b"354 end with .\r\n");
                        let mut message = String::new();
                        let mut data = String::new();
                        while reader.read_line(&mut data).unwrap_or(0) > 0 && data != ".\r\n" {
                            message.push_str(&data);
                            data.clear();
                        }
                        store.lock().unwrap().push(message);
                        let _ = writer.write_all(b"250 queued\r\n");
                    } else if command == "QUIT" {
                        let _ = writer.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        let _ = writer.write_all(b"250 ok\r\n");
                    }
                    line.clear();
                }
            });
        }
    });
    (address, messages)
}

/// The shipped rule file with minutes turned into seconds.
fn fast_rules(dir: &Path) -> std::path::PathBuf {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/rules/brigade.yml");
    let mut text = std::fs::read_to_string(shipped).unwrap();
    for (from, to) in [
        ("for: 10m", "for: 3s"),
        ("for: 5m", "for: 3s"),
        ("for: 2m", "for: 3s"),
        ("for: 1m", "for: 3s"),
        ("[6h]", "[20s]"),
        ("[1h]", "[10s]"),
        ("[30m]", "[10s]"),
        ("[10m]", "[10s]"),
        ("[5m]", "[10s]"),
        ("[2m]", "[10s]"),
    ] {
        text = text.replace(from, to);
    }
    assert!(
        !text.contains("m]") && !text.contains("h]"),
        "every range was shortened"
    );
    let path = dir.join("rules.yml");
    std::fs::write(&path, text).unwrap();
    path
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn watch_config(dir: &Path, serve: &str, hooks: &HttpReceiver, smtp: &str) -> std::path::PathBuf {
    let rules = fast_rules(dir);
    let (ghost_a, ghost_b, ghost_silenced) = (closed_port(), closed_port(), closed_port());
    let text = format!(
        r##"
listen = "127.0.0.1:0"
rule_files = [{rules:?}]

[scrape]
interval = "1s"
timeout = "900ms"
[[scrape.static_configs]]
job = "orders"
targets = ["{serve}"]
[[scrape.static_configs]]
job = "ghost"
targets = ["{ghost_a}", "{ghost_b}"]
[[scrape.static_configs]]
job = "ghost-silenced"
targets = ["{ghost_silenced}"]

[evaluation]
interval = "1s"

[route]
receiver = "team"
group_by = ["alertname", "job"]
group_wait = "1s"
group_interval = "2s"
repeat_interval = "1h"
[[route.routes]]
matchers = ['alertname="Watchdog"']
receiver = "deadman"
[[route.routes]]
matchers = ['severity="critical"']
receiver = "pager"
continue = true
[[route.routes]]
matchers = ['severity=~"critical|warning"']
receiver = "team"

[[inhibit_rules]]
source_matchers = ['alertname="BrigadeReplicaDown"']
target_matchers = ['alertname="BrigadeErrorBudgetBurn"']
equal = []

[[receivers]]
name = "team"
[[receivers.webhook_configs]]
url = "{hook}"
[[receivers.slack_configs]]
api_url = "{slack}"
channel = "#kitchen"
[[receivers.email_configs]]
to = "ops@brigade.test"
from = "watch@brigade.test"
smarthost = "{smtp}"
require_tls = false

[[receivers]]
name = "pager"
[[receivers.pagerduty_configs]]
routing_key = "routing-key-1"
url = "{pagerduty}"

[[receivers]]
name = "deadman"
[[receivers.webhook_configs]]
url = "{deadman}"

[delivery]
initial_backoff = "100ms"
max_backoff = "500ms"
max_attempts = 5
"##,
        hook = hooks.url("/hook"),
        slack = hooks.url("/slack"),
        pagerduty = hooks.url("/pagerduty"),
        deadman = hooks.url("/deadman"),
    );
    let path = dir.join("watch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_watch(config: &Path, data: &Path) -> Process {
    Process::start(
        &[
            "watch",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    )
}

fn login(serve: &Process, email: &str) -> String {
    common::log_in_at(&serve.url(""), email)
}

fn set_faults(serve: &Process, admin: &str, ratio: f64) {
    let response = reqwest::blocking::Client::new()
        .put(serve.url("/api/v1/admin/faults"))
        .bearer_auth(admin)
        .json(&json!({"error_ratio": ratio}))
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "faults switch: {}",
        response.status()
    );
}

/// Traffic until dropped: public reads every 100 ms, an order (declined) every 700 ms.
struct Traffic {
    stop: Arc<AtomicBool>,
    orders: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(serve: &Process, customer: String) -> Self {
        let base = serve.url("");
        let stop = Arc::new(AtomicBool::new(false));
        let orders = Arc::new(AtomicBool::new(true));
        let (stop2, orders2) = (stop.clone(), orders.clone());
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let shops: Value = client
                .get(format!("{base}/api/v1/shops"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let shop = shops[0]["id"].as_str().unwrap().to_owned();
            let menu: Value = client
                .get(format!("{base}/api/v1/shops/{shop}/menu"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let item = menu[0]["item_id"].as_str().unwrap().to_owned();
            let mut tick = 0u64;
            // Bounded: the scenario takes well under this.
            while !stop2.load(Ordering::SeqCst) && tick < 3_000 {
                let _ = client.get(format!("{base}/api/v1/shops")).send();
                if tick.is_multiple_of(7) && orders2.load(Ordering::SeqCst) {
                    let _ = client
                        .post(format!("{base}/api/v1/orders"))
                        .bearer_auth(&customer)
                        .header("idempotency-key", format!("watch-e2e-{tick}"))
                        .json(&json!({"items": [{"item_id": item, "quantity": 1}],
                                      "delivery": {"lat": 52.51, "lon": 13.40}}))
                        .send();
                }
                tick += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            orders,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

fn api_alert(watch: &Process, alertname: &str) -> Vec<Value> {
    get(&watch.url("/api/v1/alerts"))["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .cloned()
        .collect()
}

fn wait_firing(watch: &Process, alertname: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = api_alert(watch, alertname);
        if alerts.iter().any(|a| a["state"] == "firing") {
            return alerts;
        }
        assert!(Instant::now() < deadline, "{alertname} never fired");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn history_at(watch: &Process, alertname: &str, state: &str) -> i64 {
    let history = get(&watch.url("/api/v1/alerts/history?limit=1000"));
    let at = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["alertname"] == alertname && h["state"] == state)
        .map(|h| chrono_ms(h["at"].as_str().unwrap()))
        .min();
    at.unwrap_or_else(|| panic!("no {state} history for {alertname}: {history}"))
}

fn chrono_ms(rfc3339: &str) -> i64 {
    // 2026-11-22T00:26:47.017Z → ms since the epoch, via the date command to stay dependency-free.
    let out = Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s%3N"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn alerts_flow_from_serve_through_watch_to_every_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hooks = HttpReceiver::start(2);
    let (smtp, mails) = start_smtp();
    let mut serve = Process::start(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[
            ("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD),
            ("BRIGADE_PAYMENTS__PROVIDER", "simulated"),
            ("BRIGADE_PAYMENTS__SIMULATED__DECLINE_RATIO", "1.0"),
        ],
    );
    let config = watch_config(dir.path(), &serve.address, &hooks, &smtp);
    let mut watch = start_watch(&config, &data);

    // A silence made through the CLI before the silenced target's alert can fire.
    let silence = Command::new(BRIGADE)
        .args([
            "watch",
            "silence",
            "add",
            "--matcher",
            "job=\"ghost-silenced\"",
            "--duration",
            "1h",
            "--comment",
            "decommissioned",
            "--created-by",
            "test",
            "--url",
            &watch.url(""),
        ])
        .output()
        .unwrap();
    assert!(
        silence.status.success(),
        "{}",
        String::from_utf8_lossy(&silence.stderr)
    );
    let silence_id = String::from_utf8(silence.stdout).unwrap().trim().to_owned();
    assert_eq!(
        get(&watch.url("/api/v1/silences"))["silences"][0]["id"],
        silence_id.as_str()
    );

    let customer = login(&serve, "customer@brigade.demo");
    let admin = login(&serve, "admin@brigade.demo");
    let traffic = Traffic::start(&serve, customer);

    // The dead man's switch arrives, though the receiver refused the first two attempts.
    let watchdog = hooks.wait("/deadman", "Watchdog", |b| b["status"] == "firing");
    assert_eq!(watchdog.body["version"], "4");
    assert_eq!(watchdog.body["receiver"], "deadman");
    let metrics = reqwest::blocking::get(watch.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let retries: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("brigade_watch_notifications_total{") && l.contains("outcome=\"retry\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(retries >= 2.0, "503 answers were retried: {metrics}");

    // Two down targets of one job: one notification with both alerts.
    let down = hooks.wait("/hook", "BrigadeReplicaDown", |b| b["status"] == "firing");
    assert_eq!(
        down.body["groupLabels"],
        json!({"alertname": "BrigadeReplicaDown", "job": "ghost"})
    );
    assert_eq!(
        down.body["alerts"].as_array().unwrap().len(),
        2,
        "grouped: {}",
        down.body
    );

    // Payments: declined → BrigadePaymentsFailing, at every receiver, never before `for`.
    let payments = hooks.wait("/hook", "BrigadePaymentsFailing", |b| {
        b["status"] == "firing"
    });
    let pending_at = history_at(&watch, "BrigadePaymentsFailing", "pending");
    let firing_at = history_at(&watch, "BrigadePaymentsFailing", "firing");
    assert!(
        firing_at - pending_at >= FOR_MS,
        "fired {} ms after pending",
        firing_at - pending_at
    );
    let first_seen = hooks
        .all()
        .iter()
        .filter(|r| names_alert(&r.body, "BrigadePaymentsFailing"))
        .map(|r| r.at_ms)
        .min()
        .unwrap();
    assert!(
        first_seen >= pending_at + FOR_MS,
        "nothing arrives before `for`"
    );
    // Pending → firing (`for`, at the next evaluation) → group_wait (1 s) → delivery: within
    // `for` + 2 scrape intervals + group_wait, with 4 s to spare for a busy CI machine.
    assert!(
        first_seen - pending_at <= FOR_MS + 2 * SCRAPE_MS + 1_000 + 4_000,
        "arrived {} ms after the alert became pending",
        first_seen - pending_at
    );
    let alert = &payments.body["alerts"][0];
    assert_eq!(alert["labels"]["outcome"], "declined");
    assert_eq!(alert["labels"]["provider"], "simulated");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("payments fail (declined at simulated)")
    );
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("#brigadepaymentsfailing")
    );
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    let slack = hooks.wait("/slack", "BrigadePaymentsFailing", |_| true);
    assert!(
        slack.body["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:1] BrigadePaymentsFailing")
    );
    assert_eq!(slack.body["channel"], "#kitchen");
    assert_eq!(slack.body["blocks"][0]["type"], "header");
    let page = hooks.wait("/pagerduty", "BrigadePaymentsFailing", |b| {
        b["event_action"] == "trigger"
    });
    assert_eq!(page.body["routing_key"], "routing-key-1");
    assert_eq!(page.body["payload"]["severity"], "critical");
    assert_eq!(page.body["dedup_key"].as_str().unwrap().len(), 64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mails
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("BrigadePaymentsFailing"))
    {
        assert!(
            Instant::now() < deadline,
            "no e-mail: {:?}",
            mails.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mail = mails
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.contains("BrigadePaymentsFailing"))
        .cloned()
        .unwrap();
    assert!(
        mail.contains("Subject: [FIRING:1] BrigadePaymentsFailing"),
        "{mail}"
    );
    assert!(mail.contains("To: ops@brigade.test"), "{mail}");

    // Restart watch: firing alerts are restored from the database and not notified again.
    let before_restart = api_alert(&watch, "BrigadePaymentsFailing");
    let sent_before = hooks.all().len();
    watch.stop();
    let mut watch = start_watch(&config, &data);
    let restored = api_alert(&watch, "BrigadePaymentsFailing");
    assert_eq!(restored.len(), 1, "restored at start: {restored:?}");
    assert_eq!(restored[0]["state"], "firing");
    assert_eq!(restored[0]["activeAt"], before_restart[0]["activeAt"]);
    // Warm-up (2 scrapes + 1 evaluation), group_wait and two group intervals pass.
    let quiet_until = Instant::now() + Duration::from_millis(8_000);
    while Instant::now() < quiet_until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let repeated: Vec<Received> = hooks.all()[sent_before..].to_vec();
    assert!(
        repeated.is_empty(),
        "re-notified after restart: {repeated:#?}"
    );
    assert_eq!(
        wait_firing(&watch, "BrigadePaymentsFailing")[0]["activeAt"],
        before_restart[0]["activeAt"]
    );

    // Faults on: every /api/ request answers 500 → BrigadeHighErrorRate.
    traffic.orders.store(false, Ordering::SeqCst);
    set_faults(&serve, &admin, 1.0);
    let errors = hooks.wait("/hook", "BrigadeHighErrorRate", |b| b["status"] == "firing");
    assert_eq!(errors.body["commonLabels"]["job"], "orders");
    assert!(
        errors.body["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("of requests fail with 5xx")
    );
    let trigger = hooks.wait("/pagerduty", "BrigadeHighErrorRate", |b| {
        b["event_action"] == "trigger"
    });

    // The burn-rate alert fires too, but is inhibited; the silenced target's alert is silenced.
    let burn = wait_firing(&watch, "BrigadeErrorBudgetBurn");
    assert!(
        !burn[0]["inhibitedBy"].as_array().unwrap().is_empty(),
        "{burn:?}"
    );
    let silenced = wait_firing(&watch, "BrigadeReplicaDown")
        .into_iter()
        .find(|a| a["labels"]["job"] == "ghost-silenced")
        .expect("the silenced target's alert fires");
    assert_eq!(silenced["silencedBy"], json!([silence_id]));

    // Faults off: the error ratio falls, the alert resolves, and the resolution arrives.
    set_faults(&serve, &admin, 0.0);
    let resolved = hooks.wait("/hook", "BrigadeHighErrorRate", |b| {
        b["status"] == "resolved"
    });
    assert_eq!(resolved.body["alerts"][0]["status"], "resolved");
    assert_ne!(resolved.body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let resolve = hooks.all().into_iter().find(|r| {
        r.path == "/pagerduty"
            && r.body["event_action"] == "resolve"
            && r.body["dedup_key"] == trigger.body["dedup_key"]
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resolve = resolve;
    while resolve.is_none() {
        assert!(
            Instant::now() < deadline,
            "PagerDuty got no resolve: {:#?}",
            hooks.all()
        );
        std::thread::sleep(Duration::from_millis(100));
        resolve = hooks.all().into_iter().find(|r| {
            r.path == "/pagerduty"
                && r.body["event_action"] == "resolve"
                && r.body["dedup_key"] == trigger.body["dedup_key"]
        });
    }

    // Never delivered: the inhibited and the silenced alert.
    let all = hooks.all();
    assert!(
        !all.iter()
            .any(|r| names_alert(&r.body, "BrigadeErrorBudgetBurn")),
        "inhibited alert delivered"
    );
    assert!(
        !all.iter()
            .any(|r| r.body["commonLabels"]["job"] == "ghost-silenced"),
        "silenced alert delivered"
    );
    drop(traffic);
    watch.stop();
    serve.stop();
    let _ = hooks.failed.load(Ordering::SeqCst);
}
