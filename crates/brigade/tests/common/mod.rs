//! What the end-to-end tests of the `brigade` binary share: a running `brigade up` read from
//! its "brigade is up" line, process checks, waiting with a deadline, and a fresh PostgreSQL
//! database per test. Each test file uses a part of it.
#![allow(dead_code)]

pub mod load;
pub mod logged;
pub mod served;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use logged::{Logged, Stdout};
#[allow(unused_imports)] // not every test file starts its processes this way
pub use served::Served;

/// The binary under test.
pub const BRIGADE: &str = env!("CARGO_BIN_EXE_brigade");
/// Password of the demo accounts `brigade up` creates.
pub const DEMO_PASSWORD: &str = "demo password 1";

/// `brigade ARGS --log-format json` without the environment's `DATABASE_URL` and `REDIS_URL`:
/// each test's store is its own, whatever the machine running the tests has set.
pub fn brigade_json(args: &[&str]) -> Command {
    let mut command = Command::new(BRIGADE);
    command
        .args(args)
        .args(["--log-format", "json"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    command
}

/// Logs the demo account `email` in at `base` (`http://host:port` of a replica or a
/// balancer); returns its bearer token.
pub fn log_in_at(base: &str, email: &str) -> String {
    let session: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/sessions"))
        .json(&serde_json::json!({"email": email, "password": DEMO_PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    session["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{email} cannot log in: {session}"))
        .to_owned()
}

/// The per-start token of the ops API at `ops`, read from the file it names (as the CLI does).
pub fn ops_token(ops: &str) -> String {
    let file: Value = reqwest::blocking::get(format!("http://{ops}/api/ops-token-file"))
        .unwrap()
        .json()
        .unwrap();
    std::fs::read_to_string(file["path"].as_str().unwrap())
        .unwrap()
        .trim()
        .to_owned()
}

/// An order body at `base` (`http://host:port`): one of the first shop's first menu item,
/// delivered nearby.
pub fn sample_order_at(base: &str) -> Value {
    let get = |path: &str| -> Value {
        reqwest::blocking::get(format!("{base}{path}"))
            .unwrap()
            .json()
            .unwrap()
    };
    let shops = get("/api/v1/shops");
    let shop = shops[0]["id"].as_str().unwrap();
    let menu = get(&format!("/api/v1/shops/{shop}/menu"));
    serde_json::json!({"shop_id": shop, "items": [{"item_id": menu[0]["item_id"], "quantity": 1}],
        "delivery": {"lat": 52.51, "lon": 13.40}})
}

/// A running `brigade up` and the addresses from its `brigade is up` line.
pub struct Up {
    /// The supervisor process and its log lines.
    pub process: Logged,
    /// The public address (the balancer).
    pub public: String,
    /// The ops API address.
    pub ops: String,
}

impl Up {
    /// `brigade up` with two orders replicas and the defaults.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[], &[])
    }

    /// `brigade up` with `extra` flags (two orders replicas unless they say `--replicas`) and
    /// `env`.
    pub fn start_with(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let replicas: &[&str] = if extra.contains(&"--replicas") {
            &[]
        } else {
            &["--replicas", "2"]
        };
        let mut command = Command::new(BRIGADE);
        command
            .args(["up", "--port", "0", "--ops-port", "0"])
            .args(replicas)
            .args(["--log-format", "json", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("BRIGADE_JOBS_ADMIN_PASSWORD")
            .envs(env.iter().copied())
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .stderr(Stdio::null());
        Self::spawn(command)
    }

    /// Runs `command` (a `brigade up … --log-format json`) and returns once it is up.
    pub fn spawn(command: Command) -> Self {
        let process = Logged::spawn(command, Stdout::SkipOther);
        let up = process.wait_for("brigade is up", Duration::from_secs(120));
        Self {
            public: up["public"].as_str().unwrap().to_owned(),
            ops: up["ops"].as_str().unwrap().to_owned(),
            process,
        }
    }

    /// Logs `email` in with the demo password; returns its bearer token.
    pub fn log_in(&self, email: &str) -> String {
        log_in_at(&self.url(""), email)
    }
}

impl Running for Up {
    fn public_address(&self) -> &str {
        &self.public
    }

    fn ops_address(&self) -> &str {
        &self.ops
    }
}

/// What a running `brigade up` answers, however the test started it (with the test's
/// settings, [`Up`], or as a user would, `as_user::UserUp`).
pub trait Running {
    /// The public address (the balancer), `host:port`.
    fn public_address(&self) -> &str;

    /// The ops API address, `host:port`.
    fn ops_address(&self) -> &str;

    /// A URL on the public port.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public_address())
    }

    /// `GET /api/status` of the ops API.
    fn status(&self) -> Value {
        reqwest::blocking::get(format!("http://{}/api/status", self.ops_address()))
            .unwrap()
            .json()
            .unwrap()
    }

    /// An order body: one of the first shop's first menu item, delivered nearby.
    fn sample_order(&self) -> Value {
        sample_order_at(&self.url(""))
    }

    /// Process ids of every child.
    fn child_pids(&self) -> Vec<u32> {
        self.status()["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["pid"].as_u64().map(|p| p as u32))
            .collect()
    }

    /// `http://host:port` of the first replica of `pool` (e.g. `orders`).
    fn replica_in(&self, pool: &str) -> String {
        let status = self.status();
        let address = status["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["pool"] == pool)
            .unwrap_or_else(|| panic!("no replica of pool {pool}: {status}"))["address"]
            .as_str()
            .unwrap()
            .to_owned();
        format!("http://{address}")
    }

    /// One child's status (`Null` when there is no such instance).
    fn child_status(&self, instance: &str) -> Value {
        self.status()["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["instance"] == instance)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// Polls the ops API at `ops` until one of the traces `query` finds (`/api/traces?{query}`,
/// newest first) satisfies `whole`, and answers it; fails the test after `limit`.
pub fn wait_for_trace(
    ops: &str,
    query: &str,
    limit: Duration,
    whole: impl Fn(&brigade_up::api::TraceDetail) -> bool,
) -> brigade_up::api::TraceDetail {
    let client = reqwest::blocking::Client::new();
    let mut found = None;
    wait_until(&format!("a trace of {query}"), limit, || {
        let answer = client
            .get(format!("http://{ops}/api/traces?{query}"))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200, "{query}");
        let search: brigade_watch::contract::TraceSearchAnswer = answer.json().unwrap();
        found = search.traces.iter().find_map(|summary| {
            let detail: brigade_up::api::TraceDetail = client
                .get(format!("http://{ops}/api/traces/{}", summary.trace_id))
                .send()
                .ok()?
                .json()
                .ok()?;
            whole(&detail).then_some(detail)
        });
        found.is_some()
    });
    found.unwrap()
}

/// The span of `detail` named `name` (panics naming the spans there are).
pub fn span_named<'a>(
    detail: &'a brigade_up::api::TraceDetail,
    name: &str,
) -> &'a brigade_up::api::SpanDetail {
    detail
        .spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {:#?}", detail.spans))
}

/// The process runs (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.contains(") Z "))
}

/// Polls `check` until it holds; fails the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends signal `name` (e.g. `-KILL`) to `pid`.
pub fn signal(pid: u32, name: &str) {
    assert!(
        Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl PgDatabase {
    /// `None` when `BRIGADE_TEST_POSTGRES_URL` is not set (outside CI).
    pub fn create(prefix: &str) -> Option<Self> {
        let admin_url = brigade_store::test_support::postgres_url()?;
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        run_sql(&admin_url, &format!("CREATE DATABASE \"{name}\""));
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("a database URL has a path");
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        run_sql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Runs `work` on a connection to the PostgreSQL at `url`, from a synchronous test.
pub fn with_postgres<T>(url: &str, work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> T) -> T {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .expect("BRIGADE_TEST_POSTGRES_URL points at a reachable PostgreSQL");
        let result = work(&mut connection).await;
        let _ = connection.close().await;
        result
    })
}

/// Runs `sql` on the PostgreSQL at `url`.
pub fn run_sql(url: &str, sql: &str) {
    with_postgres(url, async |connection| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(connection)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// The JSON report `brigade drill … --json` printed first on stdout (log lines may follow it);
/// panics with the output when there is none.
pub fn drill_report(name: &str, output: &std::process::Output) -> Value {
    let report = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "{name}: no JSON report: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
    eprintln!("{name}: {report}");
    report
}

impl Up {
    /// Runs `brigade drill NAME` in short mode with `env` (the settings this `up` runs with);
    /// the JSON report and whether it passed.
    pub fn drill(&self, name: &str, fault_secs: u64, env: &[(&str, &str)]) -> (Value, bool) {
        let output = Command::new(BRIGADE)
            .args(["drill", name, "--ops", &self.ops, "--phase-secs", "2"])
            .args(["--clients", "2", "--fault-secs", &fault_secs.to_string()])
            .arg("--json")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .output()
            .unwrap();
        (drill_report(name, &output), output.status.success())
    }
}

/// Asserts what every drill claims (every claim held, some orders acknowledged, none lost or
/// placed twice), and that the named claims were among the report's.
pub fn assert_drill_holds(name: &str, report: &Value, passed: bool, claims: &[&str]) {
    let listed: Vec<&str> = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["claim"].as_str().unwrap())
        .collect();
    for claim in claims {
        assert!(
            listed.iter().any(|l| l.starts_with(claim)),
            "{name}: claim {claim:?} missing from {listed:?}"
        );
    }
    assert!(passed, "{name} failed its claims: {report:#}");
    let claims = report["claims"].as_array().unwrap();
    assert!(claims.iter().all(|c| c["holds"] == true), "{report:#}");
    assert!(
        report["acknowledged"].as_u64().unwrap() > 3,
        "{name}: {report}"
    );
    assert_eq!(report["lost"], 0, "{name}: {report}");
    assert_eq!(report["duplicated"], 0, "{name}: {report}");
}

/// `brigade watch` with no rules and no targets, on a free port, keeping its data in `dir`: the
/// local trace collector of the tracing tests. Returns the process and its address.
pub fn collector_watch(dir: &Path) -> (Logged, String) {
    let config = dir.join("watch.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let mut command = Command::new(BRIGADE);
    command
        .args(["watch", "--log-format", "json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("DATABASE_URL")
        .stderr(Stdio::null());
    let process = Logged::spawn(command, Stdout::SkipOther);
    let address = process.listening();
    (process, address)
}

/// The spans of `trace` in watch's trace API at `watch` once `done` holds for them (a parent
/// span ends after its children, so it may come in a later export); `what` names them in the
/// failure after 30 s.
pub fn trace_spans_when(
    watch: &str,
    trace: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .get(format!("http://{watch}/api/v1/traces/{trace}"))
            .send()
            .unwrap();
        if answer.status() == 200 {
            let body: Value = answer.json().unwrap();
            let spans = body["spans"].as_array().cloned().unwrap_or_default();
            if done(&spans) {
                return spans;
            }
        }
        assert!(Instant::now() < deadline, "{what}: not in trace {trace}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
