//! `brigade up` run the way a user runs it: from an empty working directory with the default
//! relative data directory (`./brigade-data`), no `BRIGADE_*` variable, `DATABASE_URL` or
//! `REDIS_URL`, and the demo passwords read from what `up` printed. Only the ports differ (0:
//! free ports), so tests can run side by side. Also a load of keyed-order clients that behave
//! like a careful client and whose acknowledgements are reconciled against the API afterwards.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[allow(unused_imports)]
pub use crate::common::{BRIGADE, Running, alive, signal, wait_until};

/// A `brigade up` started as a user starts it.
pub struct UserUp {
    /// The supervisor process.
    pub child: Child,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The public address.
    pub public: String,
    /// The ops API address.
    pub ops: String,
    /// Everything it wrote on stderr (what a terminal shows besides the log lines).
    pub stderr: Arc<Mutex<String>>,
}

/// `brigade` in `cwd` with the environment of a user who set nothing.
pub fn brigade(cwd: &Path) -> Command {
    let mut command = Command::new(BRIGADE);
    command.current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("BRIGADE_")
            || ["DATABASE_URL", "REDIS_URL", "LISTEN_FDS", "LISTEN_PID"].contains(&name.as_str())
        {
            command.env_remove(name);
        }
    }
    command
}

impl UserUp {
    /// `brigade up --port 0 --ops-port 0 EXTRA…` in `cwd` (a port in `extra` replaces the 0);
    /// returns once it said it is up.
    pub fn start(cwd: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(cwd, extra, &[])
    }

    /// Like [`UserUp::start`], with the variables a user set on purpose (e.g. `DATABASE_URL`
    /// to run on PostgreSQL).
    pub fn start_with_env(cwd: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = brigade(cwd);
        command.envs(env.iter().copied());
        command.arg("up");
        for flag in ["--port", "--ops-port"] {
            if !extra.contains(&flag) {
                command.args([flag, "0"]);
            }
        }
        let mut child = command
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("brigade up starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut errors = BufReader::new(child.stderr.take().unwrap());
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while errors.read_line(&mut line).is_ok_and(|n| n > 0) {
                collected.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
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
            match lines.recv_timeout(Duration::from_secs(180)) {
                Ok(line) if line["message"] == "brigade is up" => break line,
                Ok(_) => {}
                Err(error) => panic!(
                    "brigade up never came up ({error}); stderr:\n{}",
                    stderr.lock().unwrap()
                ),
            }
        };
        // The banner (with the demo accounts) is written before that line, on stderr, in one
        // write; the reader above hands it over line by line, so wait for the blank line that
        // ends the accounts, not only for their heading.
        wait_until("the banner on stderr", Duration::from_secs(10), || {
            let text = stderr.lock().unwrap();
            text.find("demo accounts")
                .is_some_and(|start| text[start..].contains("\n\n"))
        });
        Self {
            child,
            cwd: cwd.to_path_buf(),
            public: up["public"].as_str().unwrap().to_owned(),
            ops: up["ops"].as_str().unwrap().to_owned(),
            stderr,
        }
    }

    /// The demo accounts and passwords `up` printed: e-mail → password.
    pub fn printed_passwords(&self) -> BTreeMap<String, String> {
        passwords_in(&self.stderr.lock().unwrap())
    }

    /// Logs `email` in with the password `up` printed; its bearer token.
    pub fn log_in(&self, email: &str) -> String {
        let password = self
            .printed_passwords()
            .remove(email)
            .unwrap_or_else(|| panic!("no printed password for {email}"));
        token(&self.url(""), email, &password).unwrap_or_else(|| panic!("{email} cannot log in"))
    }
}

impl Running for UserUp {
    fn public_address(&self) -> &str {
        &self.public
    }

    fn ops_address(&self) -> &str {
        &self.ops
    }
}

impl Drop for UserUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accounts in the `role email password` lines `brigade demo-data` prints.
pub fn passwords_in(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, email, password] if email.ends_with("@brigade.demo") => {
                    Some(((*email).to_owned(), (*password).to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Logs in at `base`; the token, or `None` when refused.
pub fn token(base: &str, email: &str, password: &str) -> Option<String> {
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/sessions"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let session: Value = response.json().ok()?;
    session["token"].as_str().map(str::to_owned)
}

/// What a load of keyed-order clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Orders acknowledged with 201: their ids.
    pub acknowledged: Vec<String>,
    /// Orders given up after every retry (never acknowledged: the client knows it failed).
    pub given_up: usize,
    /// Attempts that failed and were retried (connection errors, 5xx).
    pub retried: usize,
}

/// Clients placing orders through the public port as careful clients do: each order has an
/// Idempotency-Key and is retried with the same key after a connection error or a 5xx, waiting
/// the answer's Retry-After (else a short, growing pause), for up to `GIVE_UP_AFTER`.
pub struct OrderLoad {
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    acknowledged_count: Arc<AtomicUsize>,
}

/// How long one order is retried before the client gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(20);

impl OrderLoad {
    /// `clients` threads placing `order` with `token` at `public`, until [`OrderLoad::finish`].
    pub fn start(public: &str, token: &str, order: &Value, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let acknowledged_count = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|client| {
                let (stop, outcome, count) =
                    (stop.clone(), outcome.clone(), acknowledged_count.clone());
                let url = format!("http://{public}/api/v1/orders");
                let (token, order) = (token.to_owned(), order.clone());
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("matrix-{client}-{n}-{}", uuid_like());
                        let placed = place(&http, &url, &token, &order, &key, &outcome);
                        let mut outcome = outcome.lock().unwrap();
                        match placed {
                            Some(id) => {
                                outcome.acknowledged.push(id);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            None => outcome.given_up += 1,
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcome,
            threads,
            acknowledged_count,
        }
    }

    /// Orders acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged_count.load(Ordering::Relaxed)
    }

    /// Waits until `more` further orders were acknowledged (the load goes on).
    pub fn wait_for(&self, more: usize, limit: Duration) {
        let target = self.acknowledged() + more;
        wait_until("acknowledged orders", limit, || {
            self.acknowledged() >= target
        });
    }

    /// Stops the clients (each finishes its current order) and returns what they saw.
    pub fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.outcome.lock().unwrap())
    }
}

/// Places one order, retrying it with the same key; its id once acknowledged.
fn place(
    http: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    order: &Value,
    key: &str,
    outcome: &Mutex<Outcome>,
) -> Option<String> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    while started.elapsed() < GIVE_UP_AFTER {
        let response = http
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(order)
            .send();
        let wait = match response {
            Ok(response) if response.status() == 201 => {
                let body: Value = response.json().ok()?;
                return body["id"].as_str().map(str::to_owned);
            }
            Ok(response) if response.status().is_server_error() => response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .map_or(pause, Duration::from_secs),
            Ok(_) => return None,
            Err(_) => pause,
        };
        outcome.lock().unwrap().retried += 1;
        std::thread::sleep(wait);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    None
}

/// Acknowledged orders the API does not know (must be none).
pub fn lost_orders(public: &str, token: &str, acknowledged: &[String]) -> Vec<String> {
    let http = reqwest::blocking::Client::new();
    acknowledged
        .iter()
        .filter(|id| {
            let response = http
                .get(format!("http://{public}/api/v1/orders/{id}"))
                .bearer_auth(token)
                .send();
            !matches!(response, Ok(r) if r.status() == 200)
        })
        .cloned()
        .collect()
}

/// A key part that differs between test runs.
fn uuid_like() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:x}", now.as_nanos(), std::process::id())
}

/// How fast the public port serves again after a fault: a probe that opens a new connection
/// every few milliseconds and asks for the shop list.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<ProbeLog>,
}

/// What the probe saw.
#[derive(Debug, Default)]
pub struct ProbeLog {
    /// When each request started and ended, and whether it succeeded.
    pub results: Vec<(Instant, Instant, bool)>,
    /// Connections refused.
    pub refused: usize,
}

impl ProbeLog {
    /// Time from `fault` until the first request sent after it was answered successfully.
    pub fn recovery_after(&self, fault: Instant) -> Option<Duration> {
        self.results
            .iter()
            .find(|(started, _, ok)| *started >= fault && *ok)
            .map(|(_, ended, _)| ended.duration_since(fault))
    }
}

impl Probe {
    /// Starts probing `http://{public}/api/v1/shops`.
    pub fn start(public: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("http://{public}/api/v1/shops");
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut log = ProbeLog::default();
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = http.get(&url).send();
                if let Err(error) = &result
                    && error.is_connect()
                {
                    log.refused += 1;
                }
                let ok = matches!(result, Ok(r) if r.status().is_success());
                log.results.push((started, Instant::now(), ok));
                std::thread::sleep(Duration::from_millis(2));
            }
            log
        });
        Self { stop, thread }
    }

    /// Stops probing; what it saw.
    pub fn finish(self) -> ProbeLog {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
