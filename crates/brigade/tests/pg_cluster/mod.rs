//! Private PostgreSQL clusters for tests that need to own one: made with `initdb` on a free
//! port in a temporary folder, run with `pg_ctl`, as the `postgres` OS user when the tests run
//! as root (PostgreSQL refuses to run as root), killed and deleted afterwards. Also `brigade`
//! run as that user (what `brigade backup` on a database host is), and a `brigade serve`
//! replica to place orders through.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::common::{BRIGADE, DEMO_PASSWORD};
use crate::common::{Logged, Stdout, log_in_at, sample_order_at};

/// PostgreSQL's programs (the newest major version under Debian's layout, else `pg_config`);
/// `None` when they and pgBackRest are not installed, which fails the test under CI=true.
pub fn tools() -> Option<PathBuf> {
    let newest = newest_postgres();
    let pgbackrest = Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (newest, pgbackrest) {
        (Some(bin), true) => Some(bin),
        (bin, pgbackrest) if std::env::var_os("CI").is_some() => panic!(
            "CI needs PostgreSQL's programs ({bin:?}) and pgBackRest ({pgbackrest}); \
             scripts/test installs them"
        ),
        _ => {
            eprintln!("PostgreSQL programs or pgBackRest missing; skipping");
            None
        }
    }
}

/// PostgreSQL's programs alone (no pgBackRest), with the same CI rule as [`tools`].
pub fn postgres_tools() -> Option<PathBuf> {
    match newest_postgres() {
        Some(bin) => Some(bin),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI needs PostgreSQL's programs (initdb, pg_ctl, pg_basebackup)")
        }
        None => {
            eprintln!("PostgreSQL programs missing; skipping");
            None
        }
    }
}

/// The `bin` folder of the newest PostgreSQL under Debian's layout.
fn newest_postgres() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        })
}

/// Whether this process is root (and must hand PostgreSQL's work to the `postgres` user).
pub fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args…` as the cluster's owner: through `runuser -u postgres` when root.
pub fn as_owner(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private cluster.
pub struct Cluster {
    /// PostgreSQL's programs.
    pub bin: PathBuf,
    /// The folder holding everything (owned by the cluster's user).
    pub dir: tempfile::TempDir,
    /// Its port on 127.0.0.1 (the socket is in `dir`).
    pub port: u16,
}

impl Cluster {
    /// `initdb` (trust authentication, superuser `postgres`) and start.
    pub fn start(bin: &Path) -> Self {
        let dir = owned_folder("brigade-pg-");
        let cluster = Self {
            bin: bin.to_path_buf(),
            dir,
            port: free_port(),
        };
        let output = as_owner(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(cluster.data())
            .output()
            .unwrap();
        assert_success("initdb", &output);
        cluster.pg_ctl_start();
        cluster
    }

    /// A streaming standby of `primary`: `pg_basebackup -R` (which writes `standby.signal`
    /// and `primary_conninfo`) into a folder of its own, started on a free port.
    pub fn standby_of(primary: &Cluster) -> Self {
        let dir = owned_folder("brigade-pg-standby-");
        let standby = Self {
            bin: primary.bin.clone(),
            dir,
            port: free_port(),
        };
        let output = as_owner(primary.bin.join("pg_basebackup"))
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user=postgres",
                primary.port
            ))
            .arg("-D")
            .arg(standby.data())
            .output()
            .unwrap();
        assert_success("pg_basebackup", &output);
        standby.pg_ctl_start();
        standby
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The superuser's URL of database `postgres` over TCP.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let output = as_owner(self.bin.join("pg_ctl"))
            .args(["start", "-w", "-t", "120", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert_success("pg_ctl start", &output);
    }

    /// `pg_ctl stop` in `mode` (`fast`, or `immediate`: a crash).
    pub fn pg_ctl_stop(&self, mode: &str) {
        let output = as_owner(self.bin.join("pg_ctl"))
            .args(["stop", "-w", "-m", mode, "-D"])
            .arg(self.data())
            .output()
            .unwrap();
        assert_success("pg_ctl stop", &output);
    }

    /// `pg_ctl promote`: a standby becomes a primary, waiting until it is one.
    pub fn promote(&self) {
        let output = as_owner(self.bin.join("pg_ctl"))
            .args(["promote", "-w", "-t", "120", "-D"])
            .arg(self.data())
            .output()
            .unwrap();
        assert_success("pg_ctl promote", &output);
    }

    /// Waits until the server is out of recovery (a restored cluster replaying WAL).
    pub fn wait_open(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let open = self.query("SELECT NOT pg_is_in_recovery()");
            if open.as_deref() == Some("t") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not open: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One value from `sql` through psql (`None` when the server does not answer).
    pub fn query(&self, sql: &str) -> Option<String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `brigade ARGS…` as the cluster's owner in its folder, with `env`; the binary is linked
    /// into the folder first (the build's target directory may not be readable by that user).
    pub fn brigade(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut command = as_owner(self.brigade_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BRIGADE_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("DATABASE_URL", self.url())
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }
}

impl Cluster {
    /// The binary under test, linked into the cluster's folder (the build's target directory
    /// may not be readable by the cluster's user).
    pub fn brigade_binary(&self) -> PathBuf {
        let binary = self.dir.path().join("brigade");
        if !binary.exists() && std::fs::hard_link(BRIGADE, &binary).is_err() {
            std::fs::copy(BRIGADE, &binary).unwrap();
        }
        binary
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = as_owner(self.bin.join("pg_ctl"))
                .args(["stop", "-m", "immediate", "-D"])
                .arg(self.data())
                .output();
        }
    }
}

/// A temporary folder owned by the cluster's user (PostgreSQL refuses a data directory that
/// belongs to someone else).
fn owned_folder(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

/// Panics with the output unless the command succeeded.
pub fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `brigade serve --demo` on the cluster, on a free port.
pub struct Replica {
    process: Logged,
    /// `http://host:port`.
    pub base: String,
}

impl Replica {
    /// Starts it and waits for its `listening` line.
    pub fn start(database_url: &str, folder: &Path) -> Self {
        Self::start_with(database_url, folder, &[])
    }

    /// [`start`](Self::start) with more environment (settings as `BRIGADE_*` variables).
    pub fn start_with(database_url: &str, folder: &Path, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(BRIGADE);
        command
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .current_dir(folder)
            .env("DATABASE_URL", database_url)
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let process = Logged::spawn(command, Stdout::SkipOther);
        let base = format!("http://{}", process.listening());
        Self { process, base }
    }

    /// Places `n` orders from `clients` threads at once; returns the ids acknowledged (201).
    pub fn place_orders(&self, n: usize, clients: usize) -> Vec<String> {
        let client = reqwest::blocking::Client::new();
        let token = log_in_at(&self.base, "customer@brigade.demo");
        let body = sample_order_at(&self.base);
        let per_client = n.div_ceil(clients);
        let base = self.base.as_str();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..clients)
                .map(|_| {
                    let (client, token, body) = (&client, &token, &body);
                    scope.spawn(move || {
                        (0..per_client)
                            .filter_map(|_| {
                                let response = client
                                    .post(format!("{base}/api/v1/orders"))
                                    .bearer_auth(token)
                                    .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                                    .json(body)
                                    .send()
                                    .ok()?;
                                (response.status() == 201).then(|| {
                                    let placed: Value = response.json().unwrap();
                                    placed["id"].as_str().unwrap().to_owned()
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        })
    }
}

/// Shop names in `GET /api/v1/shops`, sending `fence` as `Brigade-Read-After` when given.
pub fn shop_names(
    client: &reqwest::blocking::Client,
    base: &str,
    fence: Option<&str>,
) -> Vec<String> {
    let mut request = client.get(format!("{base}/api/v1/shops"));
    if let Some(fence) = fence {
        request = request.header("brigade-read-after", fence);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200);
    let shops: Value = response.json().unwrap();
    shops
        .as_array()
        .unwrap()
        .iter()
        .map(|shop| shop["name"].as_str().unwrap().to_owned())
        .collect()
}
