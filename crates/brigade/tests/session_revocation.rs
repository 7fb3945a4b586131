//! Two real `brigade serve` replicas on one database, each with its session cache: a log-out or
//! role change made through one replica takes effect on the other within the cache's bound
//! (`auth.session_cache.max_staleness_ms`, 250 ms), many concurrent requests share one epoch
//! read per interval, and a locked or unreachable database never lets a revoked session through.
//! On SQLite always, on PostgreSQL when `BRIGADE_TEST_POSTGRES_URL` is set.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BRIGADE, DEMO_PASSWORD, PgDatabase, log_in_at};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The default bound, which these replicas run with.
const BOUND: Duration = Duration::from_millis(250);

/// A `brigade serve` child, ready once it logged `listening`.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Self {
        let mut command = Command::new(BRIGADE);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            // A database that stops answering fails a request within half a second.
            .env("BRIGADE_STORAGE__ACQUIRE_TIMEOUT_MS", "500")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("brigade starts");
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
        let address = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("a listening log line");
            if line["message"] == "listening" {
                break line["address"].as_str().unwrap().to_owned();
            }
        };
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /api/v1/accounts/me` with `token`: the status and the body.
    fn me(&self, token: &str) -> (StatusCode, Value) {
        let response = Client::new()
            .get(self.url("/api/v1/accounts/me"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// The value of one sample of `/metrics` (0 when absent).
    fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn cache_hits(&self) -> f64 {
        self.metric("brigade_session_cache_requests_total{result=\"hit\"}")
    }

    fn epoch_checks(&self) -> f64 {
        self.metric("brigade_session_cache_epoch_checks_total")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two replicas on one database: the first created the demo data.
struct Pair {
    a: Serve,
    b: Serve,
    dir: tempfile::TempDir,
}

fn pair(database_url: Option<&str>) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let a = Serve::start(dir.path(), database_url, &["--demo"]);
    let b = Serve::start(dir.path(), database_url, &[]);
    Pair { a, b, dir }
}

/// Polls `probe` on replica B until it reports the change; every answer that still showed the
/// old state must come from a request started within [`BOUND`] of the moment the change was
/// acknowledged (it committed before that).
fn within_the_bound(what: &str, acknowledged: Instant, mut probe: impl FnMut() -> bool) {
    loop {
        let started = Instant::now();
        if probe() {
            eprintln!(
                "{what}: seen {:?} after it was acknowledged",
                started.duration_since(acknowledged)
            );
            return;
        }
        let late = started.duration_since(acknowledged);
        assert!(
            late <= BOUND,
            "{what}: a request {late:?} after the change still saw the old state"
        );
    }
}

/// Signs up a customer at `base` and logs it in; its token and account id.
fn new_customer(base: &Serve, email: &str) -> (String, String) {
    let credentials = json!({"email": email, "password": "correct horse battery"});
    let client = Client::new();
    let signed_up = client
        .post(base.url("/api/v1/accounts"))
        .json(&credentials)
        .send()
        .unwrap();
    assert_eq!(signed_up.status(), StatusCode::ACCEPTED);
    let session: Value = client
        .post(base.url("/api/v1/sessions"))
        .json(&credentials)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let id = session["account"]["id"].as_str().unwrap().to_owned();
    (token, id)
}

/// Makes sure replica B holds `token`'s session in its cache: a request after the first is a hit.
fn warm(pair: &Pair, token: &str) {
    assert_eq!(pair.a.me(token).0, StatusCode::OK);
    let hits = pair.b.cache_hits();
    assert_eq!(pair.b.me(token).0, StatusCode::OK);
    assert_eq!(pair.b.me(token).0, StatusCode::OK);
    assert!(
        pair.b.cache_hits() > hits,
        "B served the session from memory"
    );
}

fn log_out_reaches_the_other_replica_within_the_bound(pair: &Pair) {
    let token = log_in_at(&pair.a.base, "customer@brigade.demo");
    warm(pair, &token);
    let logout = Client::new()
        .delete(pair.a.url("/api/v1/sessions/current"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let acknowledged = Instant::now();
    assert_eq!(
        pair.a.me(&token).0,
        StatusCode::UNAUTHORIZED,
        "the replica that logged out: at once"
    );
    within_the_bound("log-out", acknowledged, || {
        pair.b.me(&token).0 == StatusCode::UNAUTHORIZED
    });
    // And it stays refused.
    assert_eq!(pair.b.me(&token).0, StatusCode::UNAUTHORIZED);
}

fn role_change_reaches_the_other_replica_within_the_bound(pair: &Pair) {
    let admin = log_in_at(&pair.a.base, "admin@brigade.demo");
    let (token, id) = new_customer(&pair.a, "role-change@example.org");
    warm(pair, &token);
    let shops: Value = reqwest::blocking::get(pair.a.url("/api/v1/shops"))
        .unwrap()
        .json()
        .unwrap();
    let change = json!({"role": "courier", "shop_id": shops[0]["id"]});
    let changed = Client::new()
        .patch(pair.a.url(&format!("/api/v1/admin/accounts/{id}")))
        .bearer_auth(&admin)
        .json(&change)
        .send()
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let acknowledged = Instant::now();
    within_the_bound("role change", acknowledged, || {
        let (status, me) = pair.b.me(&token);
        assert_eq!(status, StatusCode::OK);
        me["role"] == "courier"
    });
}

/// Many clients hammering replica B for a second: about one epoch read per bound, however many
/// requests there were.
fn concurrent_requests_share_the_epoch_reads(pair: &Pair) {
    let (token, _) = new_customer(&pair.a, "concurrent@example.org");
    warm(pair, &token);
    let (checks, hits) = (pair.b.epoch_checks(), pair.b.cache_hits());
    let period = Duration::from_secs(1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let client = Client::new();
                while started.elapsed() < period {
                    let status = client
                        .get(pair.b.url("/api/v1/accounts/me"))
                        .bearer_auth(&token)
                        .send()
                        .unwrap()
                        .status();
                    assert_eq!(status, StatusCode::OK);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let checks = pair.b.epoch_checks() - checks;
    let hits = pair.b.cache_hits() - hits;
    let most = (elapsed.as_secs_f64() / BOUND.as_secs_f64()).ceil() + 2.0;
    assert!(
        checks <= most,
        "{checks} epoch reads in {elapsed:?} for {hits} hits; at most {most} expected"
    );
    assert!(hits > 10.0 * checks, "{hits} hits for {checks} epoch reads");
}

/// A writer holding SQLite's write lock does not stop authentication: the epoch is a read.
/// A revoked token stays refused and a live one accepted while it is held.
fn a_locked_database_keeps_answers_correct(pair: &Pair, data_dir: &Path) {
    let live = log_in_at(&pair.a.base, "customer@brigade.demo");
    let (revoked, _) = new_customer(&pair.a, "locked@example.org");
    warm(pair, &live);
    warm(pair, &revoked);
    let logout = Client::new()
        .delete(pair.a.url("/api/v1/sessions/current"))
        .bearer_auth(&revoked)
        .send()
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let acknowledged = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", data_dir.join("brigade.db").display());
    let mut lock = runtime.block_on(async {
        use sqlx::Connection;
        let mut lock = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut lock)
            .await
            .unwrap();
        lock
    });
    within_the_bound("log-out under a write lock", acknowledged, || {
        pair.b.me(&revoked).0 == StatusCode::UNAUTHORIZED
    });
    for _ in 0..20 {
        assert_eq!(pair.b.me(&live).0, StatusCode::OK);
        assert_eq!(pair.b.me(&revoked).0, StatusCode::UNAUTHORIZED);
    }
    runtime.block_on(async {
        sqlx::raw_sql("ROLLBACK").execute(&mut lock).await.unwrap();
    });
}

/// PostgreSQL refusing every connection: no request is answered from memory any more (the
/// epoch cannot be confirmed), so none succeeds — a revoked session least of all — and answers
/// come back once the database does.
fn an_unreachable_database_never_serves_from_memory(pair: &Pair, name: &str) {
    let token = log_in_at(&pair.a.base, "customer@brigade.demo");
    warm(pair, &token);
    let admin = brigade_store::test_support::postgres_url().unwrap();
    common::run_sql(
        &admin,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
    );
    common::run_sql(
        &admin,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    );
    let acknowledged = Instant::now();
    within_the_bound("database unreachable", acknowledged, || {
        pair.b.me(&token).0 != StatusCode::OK
    });
    for _ in 0..5 {
        let (status, _) = pair.b.me(&token);
        assert!(
            status.is_server_error(),
            "{status} while the database refuses connections"
        );
    }
    common::run_sql(
        &admin,
        &format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
    );
    common::wait_until(
        "the database to answer again",
        Duration::from_secs(30),
        || pair.b.me(&token).0 == StatusCode::OK,
    );
}

#[test]
fn revocation_reaches_every_replica_within_the_bound_on_sqlite() {
    let pair = pair(None);
    log_out_reaches_the_other_replica_within_the_bound(&pair);
    role_change_reaches_the_other_replica_within_the_bound(&pair);
    concurrent_requests_share_the_epoch_reads(&pair);
    a_locked_database_keeps_answers_correct(&pair, pair.dir.path());
}

#[test]
fn revocation_reaches_every_replica_within_the_bound_on_postgres() {
    let Some(db) = PgDatabase::create("brigade_session_revocation") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let pair = pair(Some(&db.url));
    log_out_reaches_the_other_replica_within_the_bound(&pair);
    role_change_reaches_the_other_replica_within_the_bound(&pair);
    concurrent_requests_share_the_epoch_reads(&pair);
    an_unreachable_database_never_serves_from_memory(&pair, &name);
    drop(pair);
}
