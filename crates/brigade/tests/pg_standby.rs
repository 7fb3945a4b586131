//! `brigade up --local-standby`: up makes a streaming standby of the PostgreSQL primary in
//! `DATABASE_URL` (`pg_basebackup -R`), supervises its `postgres` like its other children and
//! points the replicas' `DATABASE_READ_URL` at it. On a private primary cluster, with up run as
//! the cluster's OS user (PostgreSQL refuses root): the standby serves reads, read-your-writes
//! holds, a killed standby costs no request and is restarted, and it never outlives up —
//! neither a clean stop nor a SIGKILL of up.

mod common;
mod pg_cluster;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Running as _, alive, signal, wait_until};
use pg_cluster::{Cluster, DEMO_PASSWORD, shop_names};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// How long each wait in these tests may take.
const LIMIT: Duration = Duration::from_secs(60);

/// `brigade ARGS…` as the cluster's OS user (`setpriv` execs, so the process is brigade's own
/// and signals reach it), with `DATABASE_URL` = `url` and no `BRIGADE_*` from the test's
/// environment.
fn brigade_as_owner(cluster: &Cluster, url: &str, args: &[&str]) -> Command {
    let binary = cluster.brigade_binary();
    let mut command = if pg_cluster::is_root() {
        let mut command = Command::new("/usr/bin/setpriv");
        command
            .args([
                "--reuid",
                "postgres",
                "--regid",
                "postgres",
                "--init-groups",
                "--",
            ])
            .arg(binary);
        command
    } else {
        Command::new(binary)
    };
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BRIGADE_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .current_dir(cluster.dir.path())
        .env("HOME", cluster.dir.path())
        .env("DATABASE_URL", url)
        .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
        .env_remove("DATABASE_READ_URL")
        .env_remove("REDIS_URL");
    command
}

/// The flags of every `up` here: free ports, one replica per pool, no watch or jobs.
fn up_args(data_dir: &Path) -> Vec<String> {
    [
        "up",
        "--port",
        "0",
        "--ops-port",
        "0",
        "--replicas",
        "1",
        "--no-watch",
        "--no-jobs",
        "--local-standby",
        "--log-format",
        "json",
        "--data-dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([data_dir.display().to_string()])
    .collect()
}

/// A running `brigade up --local-standby` as the cluster's user.
struct StandbyUp(common::Up);

impl StandbyUp {
    fn start(cluster: &Cluster, data_dir: &Path) -> Self {
        let args = up_args(data_dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = brigade_as_owner(cluster, &cluster.url(), &args);
        command.stderr(std::process::Stdio::null());
        Self(common::Up::spawn(command))
    }

    /// The standby's status in the ops API.
    fn standby(&self) -> Value {
        self.child_status("standby")
    }

    /// Reads the replicas served from the standby (`brigade_db_reads_total{target="standby"}`
    /// summed over every replica).
    fn standby_reads(&self, client: &Client) -> f64 {
        self.status()["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["service"] == "serve")
            .filter_map(|c| c["address"].as_str())
            .filter_map(|address| {
                client
                    .get(format!("http://{address}/metrics"))
                    .send()
                    .ok()?
                    .text()
                    .ok()
            })
            .flat_map(|text| {
                text.lines()
                    .filter(|line| line.starts_with("brigade_db_reads_total{"))
                    .filter(|line| line.contains("target=\"standby\""))
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }
}

impl common::Running for StandbyUp {
    fn public_address(&self) -> &str {
        &self.0.public
    }

    fn ops_address(&self) -> &str {
        &self.0.ops
    }
}

/// Kills a process the test may leave behind when it fails (a standby that outlived up).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .args(["-QUIT", &self.0.to_string()])
                .status();
        }
    }
}

fn pid_of(child: &Value) -> u32 {
    child["pid"].as_u64().expect("a pid") as u32
}

/// Reads the shop list through the public port until stopped; every status it got (0: no
/// answer).
struct Reader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u16>>,
}

impl Reader {
    fn start(public: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("http://{public}/api/v1/shops");
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut statuses = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let status = client
                    .get(&url)
                    .send()
                    .map_or(0, |response| response.status().as_u16());
                statuses.push(status);
                std::thread::sleep(Duration::from_millis(5));
            }
            statuses
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A user the primary refuses replication to: up exits 2 with pg_basebackup's words and the
/// fix, before anything runs.
fn refused_without_replication(primary: &Cluster) {
    assert_eq!(
        primary.query("CREATE ROLE app LOGIN").as_deref(),
        Some("CREATE ROLE")
    );
    let no_replication = format!("postgres://app@127.0.0.1:{}/postgres", primary.port);
    let args = up_args(&primary.dir.path().join("refused"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = brigade_as_owner(primary, &no_replication, &args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    for words in [
        "--local-standby",
        "pg_basebackup",
        "replication",
        "pg_hba.conf",
    ] {
        assert!(stderr.contains(words), "{words:?} in {stderr}");
    }
    // Without setpriv nothing could stop the standby when up dies: refused the same way.
    let no_setpriv = brigade_as_owner(primary, &primary.url(), &args)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_setpriv.stderr);
    assert_eq!(no_setpriv.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--local-standby") && stderr.contains("setpriv"),
        "{stderr}"
    );
}

/// The standby runs in recovery (checked on its own port) and serves the replicas' reads; a
/// write is read back at once by its writer (its fence) and reaches the standby.
fn reads_come_from_the_standby(bin: &Path, up: &StandbyUp, client: &Client) {
    let standby = up.standby();
    assert_eq!(standby["state"], "ready", "{standby}");
    assert_eq!(standby["service"], "standby", "{standby}");
    let port = standby["address"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let standby_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let in_recovery = Command::new(bin.join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &standby_url,
            "-c",
            "SELECT pg_is_in_recovery()",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&in_recovery.stdout).trim(), "t");
    // `brigade status` lists it among the children.
    let table = Command::new(pg_cluster::BRIGADE)
        .args(["status", "--ops", &up.0.ops])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table
            .lines()
            .any(|line| line.contains("standby") && line.contains("ready")),
        "{table}"
    );

    let admin = common::log_in_at(&up.url(""), "admin@brigade.demo");
    let name = "Standby Test Kitchen";
    let created = client
        .post(up.url("/api/v1/shops"))
        .bearer_auth(&admin)
        .json(&json!({"name": name, "region": "standby-test",
            "location": {"lat": 52.5, "lon": 13.4}, "open": false}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text());
    let fence = created.headers()["brigade-read-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(shop_names(client, &up.url(""), Some(&fence)).contains(&name.to_owned()));
    wait_until("the standby serves the new shop", LIMIT, || {
        shop_names(client, &up.url(""), None).contains(&name.to_owned())
            && up.standby_reads(client) > 0.0
    });
}

/// The standby's postgres is killed: reads go on answering 200, up starts it again and the
/// replicas read from it again. Returns the new process.
fn a_killed_standby_costs_no_read(up: &StandbyUp, client: &Client) -> u32 {
    let first_pid = pid_of(&up.standby());
    let reader = Reader::start(&up.0.public);
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    signal(first_pid, "-KILL");
    wait_until("up restarts the standby", LIMIT, || {
        let standby = up.standby();
        standby["state"] == "ready"
            && standby["pid"]
                .as_u64()
                .is_some_and(|p| p as u32 != first_pid)
    });
    let restarted_in = killed_at.elapsed();
    let standby = up.standby();
    assert!(standby["restarts"].as_u64().unwrap() >= 1, "{standby}");
    let before = up.standby_reads(client);
    wait_until("the restarted standby serves reads again", LIMIT, || {
        up.standby_reads(client) > before
    });
    let statuses = reader.finish();
    assert!(statuses.len() > 20, "{} reads", statuses.len());
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "failed reads: {failed:?} of {}",
        statuses.len()
    );
    eprintln!(
        "standby killed: ready again in {restarted_in:?} after {} restarts (last cause: {}); \
         {} reads meanwhile, all 200",
        standby["restarts"],
        standby["last_error"],
        statuses.len()
    );
    pid_of(&standby)
}

#[test]
fn up_makes_supervises_and_stops_a_local_standby_the_replicas_read_from() {
    let Some(bin) = pg_cluster::postgres_tools() else {
        return;
    };
    let started = Instant::now();
    let primary = Cluster::start(&bin);
    refused_without_replication(&primary);

    // Up: the standby was made by pg_basebackup and runs before the replicas.
    let data_dir = primary.dir.path().join("up-data");
    let up = StandbyUp::start(&primary, &data_dir);
    let standby_dir = data_dir.join("up").join("standby");
    assert!(standby_dir.join("standby.signal").exists());
    let client = Client::new();
    reads_come_from_the_standby(&bin, &up, &client);
    let standby_pid = a_killed_standby_costs_no_read(&up, &client);
    let _orphan = KillOnDrop(standby_pid);

    // Its log lines are in up's central log, as the standby's.
    let logs = std::fs::read_dir(data_dir.join("logs"))
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect::<String>();
    assert!(
        logs.lines().any(
            |line| line.contains("\"service\":\"standby\"") && line.contains("database system")
        ),
        "no standby line in the central log"
    );

    // A clean stop: the standby gets a fast shutdown and is gone when up is.
    let StandbyUp(common::Up { mut process, .. }) = up;
    process.stop();
    assert!(!alive(standby_pid), "the standby outlived up's stop");
    assert!(
        !standby_dir.join("postmaster.pid").exists(),
        "not shut down cleanly"
    );

    // Up again on the same data directory (the standby is reused, not made again), then
    // SIGKILLed: the standby follows it within seconds.
    let marker = standby_dir.join("kept-by-the-test");
    std::fs::write(&marker, "").unwrap();
    let up = StandbyUp::start(&primary, &data_dir);
    assert!(marker.exists(), "the standby's directory was made again");
    let standby_pid = pid_of(&up.standby());
    let _orphan = KillOnDrop(standby_pid);
    assert_eq!(up.standby()["restarts"], 0);
    let StandbyUp(common::Up { process, .. }) = up;
    let killed_at = Instant::now();
    signal(process.pid(), "-KILL");
    wait_until(
        "the standby ends after up was killed",
        Duration::from_secs(20),
        || !alive(standby_pid),
    );
    eprintln!(
        "up killed: the standby ended {:?} later; whole test {:?}",
        killed_at.elapsed(),
        started.elapsed()
    );
    drop(process);
}

/// `brigade up ARGS…` as the test's own user, in `dir`, with `env`.
fn up_output(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(pg_cluster::BRIGADE);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("BRIGADE_") || name.starts_with("DATABASE_") {
            command.env_remove(name);
        }
    }
    command
        .args(["up", "--port", "0", "--ops-port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn local_standby_settings_that_cannot_work_exit_2_naming_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let expect = |output: Output, words: &[&str]| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        for word in words {
            assert!(stderr.contains(word), "{word:?} in {stderr}");
        }
    };
    // SQLite has no standby.
    expect(
        up_output(dir.path(), &["--local-standby"], &[]),
        &["--local-standby", "PostgreSQL"],
    );
    // The same from up.toml, named by its key.
    let config = dir.path().join("up.toml");
    std::fs::write(&config, "[standby]\nlocal = true\n").unwrap();
    expect(
        up_output(dir.path(), &[], &[]),
        &["standby.local", "PostgreSQL"],
    );
    std::fs::write(&config, "[standby]\ndir = \"elsewhere\"\n").unwrap();
    expect(
        up_output(dir.path(), &[], &[]),
        &["standby.dir", "standby.local"],
    );
    std::fs::remove_file(&config).unwrap();
    // A standby of the user's own already.
    let primary = ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres");
    expect(
        up_output(
            dir.path(),
            &["--local-standby"],
            &[
                primary,
                (
                    "DATABASE_READ_URL",
                    "postgres://postgres@127.0.0.1:2/postgres",
                ),
            ],
        ),
        &["--local-standby", "read_url"],
    );
    // Root, which PostgreSQL refuses.
    if pg_cluster::is_root() {
        expect(
            up_output(dir.path(), &["--local-standby"], &[primary]),
            &["--local-standby", "non-root"],
        );
    }
    assert!(!dir.path().join("data").join("up").join("standby").exists());
}
