//! The README, as a newcomer follows it: its run command started from an empty directory with
//! the default data directory and no `BRIGADE_*` variables, the demo passwords read from what
//! the first start printed, the "Try it" block run as written (only the ports differ), then
//! the promises around it: watch runs and evaluates the alert rules, every process's
//! `/metrics` passes `promtool check metrics` before and after traffic, and an error burst
//! makes an alert fire. When the README changes, this test proves it still works.

mod common;
#[path = "../../../tests/support/promtool.rs"]
mod promtool;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::BRIGADE;

const README: &str = include_str!("../../../README.md");

/// The first fenced block of `language` after the heading `heading`.
fn block_after(heading: &str, language: &str) -> String {
    let section = README
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let fence = format!("```{language}\n");
    let body = section
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no {language} block after {heading:?}"))
        .1;
    body.split_once("\n```")
        .expect("the block is closed")
        .0
        .to_owned()
}

/// The arguments the README's run command gives brigade: `cargo run --release -- up` → `up`.
fn run_command_arguments() -> Vec<String> {
    let command = block_after("## Two commands", "sh");
    let command = command.lines().next().expect("a run command").trim();
    let (cargo, arguments) = command
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("not a `cargo run -- …` command: {command}"));
    assert!(cargo.starts_with("cargo run"), "{command}");
    arguments.split_whitespace().map(str::to_owned).collect()
}

/// `brigade up` as the README runs it, in `dir`, with the environment of a fresh shell.
struct FirstRun {
    child: Child,
    /// Everything it printed before "brigade is up", line by line.
    printed: Vec<String>,
    public: String,
    ops: String,
}

impl FirstRun {
    fn start(dir: &Path) -> Self {
        let mut command = Command::new(BRIGADE);
        command
            .args(run_command_arguments())
            // The only change: free ports, so the test runs beside anything on 8080/8081.
            .args(["--port", "0", "--ops-port", "0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("BRIGADE_")
                || name.starts_with("OTEL_")
                || ["DATABASE_URL", "REDIS_URL", "RUST_LOG"].contains(&name.as_str())
            {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().expect("brigade up starts");
        let (sender, lines) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut printed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        let up = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "brigade up never came up ({e}); it printed:\n{}",
                    printed.join("\n")
                )
            });
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["message"] == "brigade is up"
            {
                break value;
            }
            printed.push(line);
        };
        // The banner goes to stderr just before the log line goes to stdout; the two pipes are
        // read by two threads, so the banner's last lines may still be on their way.
        let banner_end = Instant::now() + Duration::from_secs(10);
        while !printed.iter().any(|line| line.contains("demo accounts"))
            && let Ok(line) =
                lines.recv_timeout(banner_end.saturating_duration_since(Instant::now()))
        {
            printed.push(line);
        }
        while Instant::now() < banner_end
            && let Ok(line) = lines.recv_timeout(Duration::from_millis(300))
        {
            printed.push(line);
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Self {
            child,
            printed,
            public: up["public"].as_str().unwrap().to_owned(),
            ops: up["ops"].as_str().unwrap().to_owned(),
        }
    }

    /// The password printed next to `email`, in a plain line or in a JSON log line's text.
    fn printed_password(&self, email: &str) -> Option<String> {
        self.printed.iter().find_map(|line| {
            let text = match serde_json::from_str::<Value>(line) {
                Ok(value) => value.to_string().replace("\\n", "\n"),
                Err(_) => line.clone(),
            };
            text.lines().find_map(|line| {
                let mut words = line.split_whitespace().map(|w| w.trim_matches(['"', ',']));
                words.find(|word| *word == email)?;
                words.next().map(str::to_owned)
            })
        })
    }

    fn status(&self) -> Value {
        get_json(&format!("http://{}/api/status", self.ops))
    }
}

impl Drop for FirstRun {
    fn drop(&mut self) {
        common::signal(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_json(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The `/metrics` of every process `up` runs: replicas, the balancer's admin port, watch and
/// the supervisor's ops port.
fn every_metrics_url(run: &FirstRun) -> Vec<String> {
    let status = run.status();
    let mut urls: Vec<String> = status["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == "serve")
        .filter_map(|c| c["address"].as_str())
        .map(|address| format!("http://{address}/metrics"))
        .collect();
    for key in ["balancer_admin", "watch"] {
        let address = status[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} address in {status}"));
        urls.push(format!("http://{address}/metrics"));
    }
    urls.push(format!("http://{}/metrics", run.ops));
    urls
}

/// Alerts watch holds, by name, with their state.
fn alerts(watch: &str) -> BTreeMap<String, String> {
    let answer = get_json(&format!("http://{watch}/api/v1/alerts"));
    let list = answer["data"]["alerts"]
        .as_array()
        .or_else(|| answer["alerts"].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter_map(|a| {
            Some((
                a["labels"]["alertname"].as_str()?.to_owned(),
                a["state"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_readme_works_as_written_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run = FirstRun::start(dir.path());

    // The demo passwords were printed, and they are the ones kept for the walk-through.
    let kept: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("brigade-data/demo-accounts.json"))
            .expect("the first start keeps the demo accounts"),
    )
    .unwrap();
    for email in [
        "admin@brigade.demo",
        "customer@brigade.demo",
        "staff.mitte@brigade.demo",
        "courier.kreuzberg@brigade.demo",
    ] {
        let printed = run.printed_password(email).unwrap_or_else(|| {
            panic!(
                "no password printed for {email}:\n{}",
                run.printed.join("\n")
            )
        });
        let account = kept.iter().find(|a| a["email"] == email).unwrap();
        assert_eq!(account["password"], printed.as_str(), "{email}");
    }

    // Watch runs on the default data directory and evaluates the rules (Watchdog always fires).
    let status = run.status();
    let watch = status["watch"]
        .as_str()
        .expect("watch has an address")
        .to_owned();
    wait_for(
        "watch to evaluate its rules",
        Duration::from_secs(60),
        || {
            alerts(&watch)
                .get("Watchdog")
                .is_some_and(|s| s == "firing")
        },
    );
    for url in every_metrics_url(&run) {
        promtool::assert_accepts(&get_text(&url), &url);
    }

    // "Try it", exactly as written, against this run's ports.
    let script = block_after("## Try it", "sh").replace("localhost:8080", &run.public);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env_remove("BRIGADE_DEMO_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Try it block failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "the Try it block complained:\n{stderr}"
    );
    assert!(
        stdout.contains(r#""status":"delivered""#),
        "the order was delivered:\n{stdout}"
    );
    for url in every_metrics_url(&run) {
        promtool::assert_accepts(&get_text(&url), &url);
    }

    // An error burst makes an alert fire (the README's rules, the default evaluation).
    error_burst_fires_an_alert(&run, &watch, &kept);
}

/// Every orders replica answers 500 on purpose while clients keep asking, until watch fires
/// `BrigadeHighErrorRate` (its rule holds for two minutes first).
fn error_burst_fires_an_alert(run: &FirstRun, watch: &str, kept: &[Value]) {
    let admin = kept.iter().find(|a| a["role"] == "admin").unwrap();
    let client = reqwest::blocking::Client::new();
    let session: Value = client
        .post(format!("http://{}/api/v1/sessions", run.public))
        .json(&json!({"email": admin["email"], "password": admin["password"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = session["token"]
        .as_str()
        .expect("the admin logs in")
        .to_owned();
    let replicas: Vec<String> = run.status()["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == "serve" && c["pool"] == "orders")
        .filter_map(|c| c["address"].as_str().map(str::to_owned))
        .collect();
    let set_faults = |body: Value| {
        for replica in &replicas {
            let answer = client
                .put(format!("http://{replica}/api/v1/admin/faults"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .unwrap();
            assert!(
                answer.status().is_success(),
                "{replica}: {}",
                answer.status()
            );
        }
    };
    set_faults(json!({"error_ratio": 1.0}));
    wait_for(
        "BrigadeHighErrorRate to fire",
        Duration::from_secs(300),
        || {
            for _ in 0..20 {
                let _ = client
                    .get(format!("http://{}/api/v1/shops", run.public))
                    .send();
            }
            alerts(watch)
                .get("BrigadeHighErrorRate")
                .is_some_and(|state| state == "firing")
        },
    );
    set_faults(json!({}));
}

fn get_text(url: &str) -> String {
    reqwest::blocking::get(url)
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}
