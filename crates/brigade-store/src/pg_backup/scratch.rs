//! The check of every backup: restore it into a private scratch cluster, start PostgreSQL on
//! it (a socket in the scratch folder, no TCP, archiving off, trust for local connections
//! only), wait until it opens for writes, read brigade's tables, stop it and delete it. A
//! repository whose checksums verify can still hold a backup that does not start (a missing
//! WAL segment, a wrong `--set`); only starting it proves it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::process::Command;

use super::{PitrError, Plan, tool};

/// How long the scratch server may take to replay the backup's WAL and open.
const START_LIMIT: Duration = Duration::from_secs(600);
/// The port that names the scratch server's socket file (no TCP listener is opened, so it
/// cannot clash with anything).
const SCRATCH_PORT: u16 = 5432;

/// What the scratch copy held.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The backup restored.
    pub label: String,
    /// brigade migrations applied in it.
    pub migrations: i64,
    /// Orders in it.
    pub orders: i64,
    /// From the start of the restore to the server answering.
    pub took: Duration,
}

/// Restores backup `label` into a scratch cluster and reads it back.
pub(super) async fn check(
    plan: &Plan,
    label: &str,
    server_major: u32,
) -> Result<Checked, PitrError> {
    let started = Instant::now();
    let bin = bin_dir(plan, server_major).await?;
    std::fs::create_dir_all(&plan.scratch_dir).map_err(PitrError::io(format!(
        "creating backup.scratch_dir {}",
        plan.scratch_dir.display()
    )))?;
    let scratch = tempfile::Builder::new()
        .prefix("brigade-backup-check-")
        .tempdir_in(&plan.scratch_dir)
        .map_err(PitrError::io("creating a scratch folder"))?;
    let data = scratch.path().join("data");
    tool::run(
        plan,
        "restore",
        &[
            &format!("--pg1-path={}", data.display()),
            &format!("--set={label}"),
            "--type=immediate",
            "--target-action=promote",
            "--archive-mode=off",
        ],
    )
    .await?;
    let mut server = Scratch::start(&bin, scratch.path(), &data).await?;
    let outcome = read_back(plan, scratch.path(), &mut server).await;
    server.stop(&bin).await;
    let (migrations, orders) = outcome?;
    Ok(Checked {
        label: label.to_owned(),
        migrations,
        orders,
        took: started.elapsed(),
    })
}

/// PostgreSQL's programs: the setting, the server's own major version under Debian's layout,
/// else what `pg_config --bindir` says.
async fn bin_dir(plan: &Plan, server_major: u32) -> Result<PathBuf, PitrError> {
    if let Some(dir) = &plan.pg_bin_dir {
        return Ok(dir.clone());
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin"));
    if debian.join("postgres").exists() {
        return Ok(debian);
    }
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
        .map_err(|e| PitrError::Setting {
            key: "backup.pg_bin_dir",
            message: format!("not set, and pg_config cannot be run to find it: {e}"),
        })?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A running scratch server.
struct Scratch {
    child: tokio::process::Child,
    data: PathBuf,
    log: PathBuf,
}

impl Scratch {
    async fn start(bin: &Path, folder: &Path, data: &Path) -> Result<Self, PitrError> {
        // Debian keeps postgresql.conf in /etc, outside the data directory a backup holds.
        let conf = data.join("postgresql.conf");
        if !conf.exists() {
            std::fs::write(&conf, "")
                .map_err(PitrError::io("writing the scratch postgresql.conf"))?;
        }
        let hba = folder.join("pg_hba.conf");
        std::fs::write(&hba, "local all all trust\n")
            .map_err(PitrError::io("writing the scratch pg_hba.conf"))?;
        let log = folder.join("postgres.log");
        let log_file =
            std::fs::File::create(&log).map_err(PitrError::io("creating the scratch log"))?;
        let err_file = log_file
            .try_clone()
            .map_err(PitrError::io("creating the scratch log"))?;
        // Hot standby off: with it on, a server in recovery refuses to start when
        // max_connections (or max_worker_processes, max_wal_senders, …) is lower than the
        // primary's, and the scratch server runs with the defaults, not the cluster's
        // configuration (Debian keeps it in /etc): a cluster with max_connections = 200 failed
        // every check. Nothing connects before the check's own read anyway.
        let settings = [
            format!("port={SCRATCH_PORT}"),
            "listen_addresses=".into(),
            format!("unix_socket_directories={}", folder.display()),
            format!("hba_file={}", hba.display()),
            "archive_mode=off".into(),
            "logging_collector=off".into(),
            "hot_standby=off".into(),
        ];
        let mut command = Command::new(bin.join("postgres"));
        command.arg("-D").arg(data);
        for setting in &settings {
            command.arg("-c").arg(setting);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PitrError::Program {
                program: bin.join("postgres").display().to_string(),
                source,
            })?;
        Ok(Self {
            child,
            data: data.to_path_buf(),
            log,
        })
    }

    /// The last lines of the server's log, for an error.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(6).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Immediate shutdown (the copy is thrown away), then reaps the child.
    async fn stop(mut self, bin: &Path) {
        let _ = Command::new(bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Waits until the scratch server is out of recovery, then counts migrations and orders as
/// the store's own user in the store's own database.
async fn read_back(
    plan: &Plan,
    folder: &Path,
    server: &mut Scratch,
) -> Result<(i64, i64), PitrError> {
    let options = PgConnectOptions::from_str(&plan.database_url)?
        .socket(folder)
        .port(SCRATCH_PORT)
        .password("")
        .disable_statement_logging();
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Ok(mut connection) = options.connect().await {
            let open: Result<bool, sqlx::Error> =
                sqlx::query_scalar("SELECT NOT pg_is_in_recovery()")
                    .fetch_one(&mut connection)
                    .await;
            if open.unwrap_or(false) {
                let counts = counts(&mut connection).await;
                let _ = connection.close().await;
                return counts
                    .map_err(|e| PitrError::Check(format!("reading brigade's tables: {e}")));
            }
        }
        if !matches!(server.child.try_wait(), Ok(None)) {
            return Err(PitrError::Check(format!(
                "the restored server stopped: {}",
                server.log_tail()
            )));
        }
        if Instant::now() > deadline {
            return Err(PitrError::Check(format!(
                "the restored server did not open within {} s: {}",
                START_LIMIT.as_secs(),
                server.log_tail()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn counts(connection: &mut sqlx::PgConnection) -> Result<(i64, i64), sqlx::Error> {
    let migrations = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *connection)
        .await?;
    let orders = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut *connection)
        .await?;
    Ok((migrations, orders))
}
