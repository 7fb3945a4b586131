//! The resource drills of `brigade drill` end to end, in short mode, against a real
//! `brigade up`: disk-full on a data directory mounted as a small tmpfs (root only),
//! db-refuse on PostgreSQL (when `BRIGADE_TEST_POSTGRES_URL` is set), cache-outage on a
//! private `redis-server`. Each asserts its report's claims.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{BRIGADE, PgDatabase, Up, assert_drill_holds};

const FAULT_CLAIMS: [&str; 5] = [
    "no acknowledged order lost",
    "the fault was felt",
    "503 + Retry-After problem+json while it lasted",
    "readiness said so",
    "recovered <= 10 s",
];

/// A tmpfs mounted on a directory, unmounted when dropped (also when the test fails).
struct Mounted<'a>(&'a std::path::Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
fn disk_full_answers_503_while_it_lasts_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("disk-full needs a small disk of its own, and mounting one needs root; skipping");
        return;
    }
    let _mounted = Mounted(dir.path());
    let data_dir = dir.path().display().to_string();
    let up = Up::start_with(dir.path(), &["--no-watch"], &[]);
    let env = [("BRIGADE_STORAGE__DATA_DIR", data_dir.as_str())];
    let (report, passed) = up.drill("disk-full", 6, &env);
    assert_drill_holds("disk-full", &report, passed, &FAULT_CLAIMS);
}

#[test]
fn disk_full_refuses_a_big_disk_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BRIGADE)
        .args([
            "drill",
            "disk-full",
            "--ops",
            "127.0.0.1:1",
            "--password",
            "x",
        ])
        .env("BRIGADE_STORAGE__DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("disk of at most"), "{stderr}");
}

#[test]
fn db_refuse_answers_503_while_it_lasts_and_recovers() {
    let Some(database) = PgDatabase::create("brigade_drill_refuse") else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database.url.as_str())];
    let up = Up::start_with(dir.path(), &["--no-watch"], &env);
    // Longer than the balancer waits out `Retry-After` for one request (5 s of waits, plus the
    // attempts themselves): with 6 s, on a loaded machine every request could be held across
    // the whole fault and succeed after it, and the fault was never felt.
    let (report, passed) = up.drill("db-refuse", 10, &env);
    assert_drill_holds("db-refuse", &report, passed, &FAULT_CLAIMS);
}

/// A private `redis-server` on `port`; killed when dropped.
struct PrivateRedis(Child);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cache_outage_costs_no_request_and_little_latency() {
    let port = "38301";
    let Ok(child) = Command::new("redis-server")
        .args(["--port", port, "--bind", "127.0.0.1", "--save", ""])
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("redis-server is not installed; skipping");
        return;
    };
    let _redis = PrivateRedis(child);
    let url = format!("redis://127.0.0.1:{port}");
    common::wait_until("redis answers", Duration::from_secs(10), || {
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
    });
    let dir = tempfile::tempdir().unwrap();
    let env = [("REDIS_URL", url.as_str())];
    let up = Up::start_with(dir.path(), &["--no-watch"], &env);
    let (report, passed) = up.drill("cache-outage", 6, &env);
    assert_drill_holds(
        "cache-outage",
        &report,
        passed,
        &[
            "no request failed",
            "p50 during the outage within 2x",
            "recovered <= 10 s",
        ],
    );
}
