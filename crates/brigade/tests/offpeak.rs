//! Off-peak jobs end to end with the real binary: `brigade up` runs a quiet-condition job by
//! itself, the ops API runs the daily report and the backup on request, the report served
//! through the public port counts the orders placed here, the backup taken while orders keep
//! coming is a valid database holding them, and `brigade restore` refuses while the store is
//! in use and puts the backup back once `brigade up` stopped. Plus the CLI's refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use common::{BRIGADE, PgDatabase, Running, Up, wait_until};

/// `brigade up` with one orders replica, no watch, and `config` as its up.toml.
fn start_up(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> Up {
    let config = config.to_str().expect("a UTF-8 path");
    Up::start_with(
        data_dir,
        &["--replicas", "1", "--no-watch", "--config", config],
        env,
    )
}

/// What the off-peak tests ask of the ops API.
trait Ops {
    fn ops(&self, path: &str) -> String;
    fn events(&self) -> Vec<Value>;
    fn run_job(&self, job: &str) -> (u16, Value);
    fn jobs(&self) -> (Value, Vec<String>);
}

impl Ops for Up {
    fn ops(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops)
    }

    fn events(&self) -> Vec<Value> {
        self.status()["events"].as_array().unwrap().clone()
    }

    /// Runs a job through the ops API; returns the status and the answer.
    fn run_job(&self, job: &str) -> (u16, Value) {
        let response = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .post(self.ops(&format!("/api/jobs/{job}/run")))
            .header("x-brigade-ops-token", common::ops_token(&self.ops))
            .send()
            .unwrap();
        (response.status().as_u16(), response.json().unwrap())
    }

    /// `GET /api/jobs`: the answer and the jobs' names in order.
    fn jobs(&self) -> (Value, Vec<String>) {
        let jobs: Value = reqwest::blocking::get(self.ops("/api/jobs"))
            .unwrap()
            .json()
            .unwrap();
        let names = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["name"].as_str().unwrap().to_owned())
            .collect();
        (jobs, names)
    }
}

fn brigade(args: &[&str]) -> Output {
    Command::new(BRIGADE)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .expect("brigade runs")
}

/// Orders in a SQLite file, read directly (integrity checked first).
fn orders_in(file: &Path) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(file)
            .read_only(true)
            .immutable(true)
            .connect()
            .await
            .unwrap();
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
        let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        orders
    })
}

/// Customers placing orders through the balancer until stopped.
struct Orders {
    stop: Arc<AtomicBool>,
    placed: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Orders {
    fn start(up: &Up, token: &str, body: Value) -> Self {
        let (stop, placed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (url, token) = (up.url("/api/v1/orders"), token.to_owned());
        let thread = {
            let (stop, placed) = (stop.clone(), placed.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = client.post(&url).bearer_auth(&token).json(&body).send();
                    if response.is_ok_and(|r| r.status() == 201) {
                        placed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        Self {
            stop,
            placed,
            thread,
        }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.placed.load(Ordering::SeqCst)
    }
}

#[test]
fn up_runs_the_off_peak_jobs_and_restore_puts_a_backup_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("up.toml");
    // The cache warm-up runs by itself as soon as the replicas are quiet; the others are left
    // to their (distant) defaults and run here through the ops API.
    std::fs::write(
        &config,
        "[jobs]\nsample_interval_ms = 100\n\n[jobs.warm-caches]\n\
         quiet = { below_in_flight = 1000.0, for_secs = 0 }\n",
    )
    .unwrap();
    let mut up = start_up(&data, &config, &[]);

    let (jobs, names) = up.jobs();
    assert_eq!(names, ["warm-caches", "daily-report", "backup"]);
    assert_eq!(jobs["jobs"][2]["schedule"], json!(["0 3 * * *"]));

    wait_until(
        "the warm-up to run when quiet",
        Duration::from_secs(30),
        || {
            up.events().iter().any(|event| {
                event["kind"] == "job"
                    && event["instance"] == "warm-caches"
                    && event["message"].as_str().is_some_and(|m| {
                        m.starts_with("warm-caches succeeded") && m.contains("(quiet)")
                    })
            })
        },
    );

    // Orders through the balancer, at both demo shops.
    let customer = up.log_in("customer@brigade.demo");
    let bodies = order_bodies(&up);
    place(&up, &customer, &[&bodies[0], &bodies[0], &bodies[1]]);

    // The daily report job, then the report through the public port.
    let (status, run) = up.run_job("daily-report");
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["trigger"], "ops");
    let admin = up.log_in("admin@brigade.demo");
    assert_eq!(reported_orders(&up, &admin, &bodies[0]["shop_id"]), 2);
    assert_eq!(reported_orders(&up, &admin, &bodies[1]["shop_id"]), 1);

    // A backup while a customer keeps ordering: a valid file with every order placed before.
    let ordering = Orders::start(&up, &customer, bodies[1].clone());
    wait_until("orders to flow", Duration::from_secs(10), || {
        ordering.placed.load(Ordering::SeqCst) >= 3
    });
    let before = 3 + ordering.placed.load(Ordering::SeqCst);
    let (status, run) = up.run_job("backup");
    let after = 3 + ordering.placed.load(Ordering::SeqCst);
    let total = 3 + ordering.finish();
    assert_eq!(status, 200, "{run}");
    // The continuous backups have a folder of their own in there.
    let backups: Vec<PathBuf> = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = &backups[0];
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("brigade-")
            && name.ends_with("Z.db")
            && name.len() == "brigade-20261122T030000Z.db".len(),
        "{name}"
    );
    assert!(run["detail"].as_str().unwrap().contains(&name), "{run}");
    let in_backup = orders_in(backup) as usize;
    assert!(
        // One more than acknowledged at the end: an order committed whose answer was on its way.
        (before..=after + 1).contains(&in_backup),
        "the backup holds {in_backup} orders; {before} were placed before it started, {after} when it ended"
    );
    assert!(
        up.events().iter().any(|e| e["instance"] == "backup"
            && e["message"]
                .as_str()
                .unwrap()
                .starts_with("backup succeeded in")),
        "the run is a supervisor event"
    );

    // Unknown jobs are named in the answer.
    let (status, problem) = up.run_job("vacuum");
    assert_eq!(status, 404);
    assert!(
        problem["detail"].as_str().unwrap().contains("daily-report"),
        "{problem}"
    );

    // While brigade up runs, restore refuses and changes nothing.
    let data_arg = data.to_str().unwrap();
    let refused = brigade(&["restore", backup.to_str().unwrap(), "--data-dir", data_arg]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("in use by a running brigade process"),
        "{stderr}"
    );

    // Stopped, it restores: the orders placed after the backup are gone, the old file is kept.
    Command::new("kill")
        .args(["-TERM", &up.process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(up.process.child.wait().unwrap().success());
    let restored = brigade(&["restore", backup.to_str().unwrap(), "--data-dir", data_arg]);
    let stdout = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(stdout.contains("restored"), "{stdout}");
    assert_eq!(orders_in(&data.join("brigade.db")) as usize, in_backup);
    let aside: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("brigade.db.before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(orders_in(&aside[0]) as usize, total);
}

/// Customer orders `bodies` (one order each) through the balancer.
fn place(up: &Up, token: &str, bodies: &[&Value]) {
    let client = reqwest::blocking::Client::new();
    for body in bodies {
        let placed = client
            .post(up.url("/api/v1/orders"))
            .bearer_auth(token)
            .json(body)
            .send()
            .unwrap();
        assert_eq!(placed.status(), 201);
    }
}

/// An order body for the first item of each demo shop's menu.
fn order_bodies(up: &Up) -> Vec<Value> {
    let client = reqwest::blocking::Client::new();
    let shops: Value = client
        .get(up.url("/api/v1/shops"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    shops
        .as_array()
        .unwrap()
        .iter()
        .map(|shop| {
            let shop = shop["id"].as_str().unwrap();
            let menu: Value = client
                .get(up.url(&format!("/api/v1/shops/{shop}/menu")))
                .send()
                .unwrap()
                .json()
                .unwrap();
            json!({"shop_id": shop, "items": [{"item_id": menu[0]["item_id"], "quantity": 2}],
                   "delivery": {"lat": 52.51, "lon": 13.40}})
        })
        .collect()
}

/// Today's orders per shop in the daily report read through the public port.
fn reported_orders(up: &Up, admin: &str, shop: &Value) -> i64 {
    let report: Value = reqwest::blocking::Client::new()
        .get(up.url("/api/v1/admin/reports/daily"))
        .bearer_auth(admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let today = chrono::Utc::now().date_naive().to_string();
    report["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .filter(|row| row["shop_id"] == *shop && row["day"] == today.as_str())
        .map(|row| row["orders"].as_i64().unwrap())
        .sum()
}

#[test]
fn up_on_postgresql_refreshes_the_report_and_leaves_backups_to_pgbackrest() {
    let Some(database) = PgDatabase::create("brigade_offpeak") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set: skipping the off-peak jobs on PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.toml");
    std::fs::write(&config, "[jobs]\n").unwrap();
    let up = start_up(
        &dir.path().join("data"),
        &config,
        &[("DATABASE_URL", database.url.as_str())],
    );
    let (_, names) = up.jobs();
    assert_eq!(
        names,
        ["warm-caches", "daily-report"],
        "no backup job on PostgreSQL"
    );
    assert_eq!(up.run_job("backup").0, 404);

    let customer = up.log_in("customer@brigade.demo");
    let bodies = order_bodies(&up);
    place(&up, &customer, &[&bodies[1], &bodies[1]]);
    let (status, run) = up.run_job("daily-report");
    assert_eq!(status, 200, "{run}");
    let admin = up.log_in("admin@brigade.demo");
    assert_eq!(reported_orders(&up, &admin, &bodies[1]["shop_id"]), 2);
    assert_eq!(reported_orders(&up, &admin, &bodies[0]["shop_id"]), 0);
    let (status, run) = up.run_job("warm-caches");
    assert_eq!(status, 200, "{run}");
    assert!(
        run["detail"]
            .as_str()
            .unwrap()
            .starts_with("warmed 3 replica(s)"),
        "{run}"
    );
}

#[test]
fn backup_and_restore_refuse_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    let missing = brigade(&["backup", "--data-dir", data]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database at"));

    assert!(brigade(&["migrate", "--data-dir", data]).status.success());
    let output = dir.path().join("one.db");
    let first = brigade(&[
        "backup",
        "--data-dir",
        data,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("integrity ok"));
    assert!(
        !Path::new(data).join("backups").exists(),
        "--output elsewhere: nothing pruned or made"
    );
    let again = brigade(&[
        "backup",
        "--data-dir",
        data,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--output:"),
        "names the flag"
    );

    let keep = brigade(&["backup", "--data-dir", data, "--keep", "0"]);
    assert_eq!(keep.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&keep.stderr).contains("--keep"));

    // PostgreSQL goes to pgBackRest (tests/pg_pitr.rs); without its settings, or with a
    // SQLite backup FILE, the command names what to fix and never shows the password.
    for (command, names) in [
        (&["backup"][..], "backup.pg_data"),
        (&["restore", output.to_str().unwrap()][..], "FILE"),
    ] {
        let mut args = command.to_vec();
        args.extend([
            "--database-url",
            "postgres://brigade:secret@127.0.0.1:1/brigade",
        ]);
        let refused = brigade(&args);
        assert_eq!(refused.status.code(), Some(2), "{command:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(names) && !stderr.contains("secret"),
            "{stderr}"
        );
    }

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database\n".repeat(100)).unwrap();
    let refused = brigade(&["restore", notes.to_str().unwrap(), "--data-dir", data]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FILE:") && stderr.contains("not a usable brigade database"),
        "{stderr}"
    );

    let restored = brigade(&["restore", output.to_str().unwrap(), "--data-dir", data]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );

    // Without FILE: the newest backup that verifies; a damaged newer one is passed over.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let none = brigade(&[
        "restore",
        "--from",
        empty.to_str().unwrap(),
        "--data-dir",
        data,
    ]);
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr.contains("--from") && stderr.contains("no usable backup"),
        "{stderr}"
    );
    let continuous = Path::new(data).join("backups").join("continuous");
    std::fs::create_dir_all(&continuous).unwrap();
    let good = continuous.join("brigade-20261122T030000Z.db");
    std::fs::copy(&output, &good).unwrap();
    std::fs::write(
        continuous.join("brigade-20261122T030030Z.db"),
        "cut short\n".repeat(100),
    )
    .unwrap();
    let newest = brigade(&["restore", "--data-dir", data]);
    let stdout = String::from_utf8_lossy(&newest.stdout);
    assert!(
        newest.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&newest.stderr)
    );
    assert!(
        stdout.contains(&format!("restored {}", good.display())),
        "{stdout}"
    );
}
