//! Point-in-time recovery of a PostgreSQL store with pgBackRest: what `brigade backup` and
//! `brigade restore` do when `storage.database_url` is PostgreSQL.
//!
//! brigade does not copy PostgreSQL itself. It writes pgBackRest's configuration from
//! `[backup]` of brigade.toml ([`conf`]), makes the server ship its WAL into the repository
//! (`archive_command`, `archive_timeout` ≤ 60 s; [`archive`]), and runs pgBackRest's own
//! commands ([`tool`]): `stanza-create`, `check`, `backup` (full, differential or incremental;
//! expiry by `retention_full` follows each backup), `verify`, `restore` (latest, or a time).
//! Every backup is then restored into a scratch cluster on a private socket and read back
//! ([`scratch`]): a backup counts as good only once a server started from it answered.
//! [`server`] stops and starts the cluster itself, for the restore drill.
//!
//! pgBackRest reads the data directory and is reached by the server's `archive_command`, so
//! these commands run on the database host as the cluster's OS user (`postgres`).

mod archive;
mod conf;
mod scratch;
mod server;
mod tool;

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use brigade_core::Settings;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;

pub use scratch::Checked;
pub use server::{Server, empty_data_dir, wait_open};
pub use tool::{BackupInfo, StanzaInfo};

/// Why a PostgreSQL backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    /// A setting is missing or cannot be used; the key is named (the binary exits 2).
    #[error("{key}: {message}")]
    Setting {
        /// Dotted key or flag, e.g. `backup.pg_data`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The pgBackRest (or a PostgreSQL) program could not be started.
    #[error("cannot run {program}: {source} (install pgBackRest, or set backup.pgbackrest)")]
    Program {
        /// The program.
        program: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// A pgBackRest command failed; its own message is kept.
    #[error("pgbackrest {command} failed ({status}): {output}")]
    Tool {
        /// The pgBackRest command (`backup`, `restore`, …).
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (the last lines).
        output: String,
    },
    /// Archiving needed a server setting that only a restart applies; brigade set it.
    #[error(
        "{0} was not set for WAL archiving; brigade set it (ALTER SYSTEM): restart PostgreSQL, then run brigade backup again"
    )]
    RestartNeeded(String),
    /// `pg_ctl` failed, or the started server did not open; what it said is kept.
    #[error("pg_ctl {command} failed ({status}): {output}")]
    Server {
        /// The pg_ctl command (`stop`, `start`).
        command: String,
        /// Its exit status, or what did not happen in time.
        status: String,
        /// What it printed.
        output: String,
    },
    /// The server refused or could not be reached.
    #[error("PostgreSQL at storage.database_url: {0}")]
    Database(#[from] sqlx::Error),
    /// The cluster still runs on the data directory a restore would replace.
    #[error(
        "PostgreSQL still runs on {0} (postmaster.pid names a live process); stop it before restoring"
    )]
    Running(PathBuf),
    /// The restored scratch copy did not start or did not read back.
    #[error("the backup did not pass its check in a scratch cluster: {0}")]
    Check(String),
    /// A file of the repository or the scratch cluster could not be written or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl PitrError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// pgBackRest's backup types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Every file.
    Full,
    /// Files changed since the last full backup.
    Diff,
    /// Files changed since the last backup of any type (a full one when none exists).
    Incr,
}

impl BackupKind {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

/// Everything a backup or restore needs, resolved from the settings.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The store's URL (for archive settings and the check's user and database).
    pub database_url: String,
    /// The cluster's data directory.
    pub pg_data: PathBuf,
    /// The repository.
    pub repo: PathBuf,
    /// The stanza.
    pub stanza: String,
    /// Full backups kept.
    pub retention_full: u32,
    /// `archive_timeout` in seconds.
    pub archive_timeout_secs: u32,
    /// The server's socket directory.
    pub socket_dir: PathBuf,
    /// The server's port.
    pub port: u16,
    /// The superuser pgBackRest connects as.
    pub pg_user: String,
    /// The pgBackRest program.
    pub program: PathBuf,
    /// PostgreSQL's programs, when configured.
    pub pg_bin_dir: Option<PathBuf>,
    /// Where scratch clusters go.
    pub scratch_dir: PathBuf,
}

impl Plan {
    /// The plan for a PostgreSQL store; errors name the key.
    pub fn from_settings(settings: &Settings) -> Result<Self, PitrError> {
        let backup = &settings.backup;
        let database_url = settings.storage.effective_url();
        let options =
            PgConnectOptions::from_str(&database_url).map_err(|e| PitrError::Setting {
                key: "storage.database_url",
                message: e.to_string(),
            })?;
        let pg_data = backup.pg_data.clone().ok_or(PitrError::Setting {
            key: "backup.pg_data",
            message: "is required when the store is PostgreSQL: the cluster's data directory \
                      (e.g. /var/lib/postgresql/15/main), which pgBackRest reads"
                .into(),
        })?;
        let repo = backup
            .repo
            .clone()
            .unwrap_or_else(|| settings.storage.data_dir.join("pgbackrest"));
        let plan = Self {
            database_url,
            pg_data: absolute(pg_data, "backup.pg_data")?,
            repo: absolute(repo, "backup.repo")?,
            stanza: backup.stanza.clone(),
            retention_full: backup.retention_full,
            archive_timeout_secs: backup.archive_timeout_secs,
            socket_dir: absolute(backup.pg_socket_dir.clone(), "backup.pg_socket_dir")?,
            port: backup.pg_port.unwrap_or_else(|| options.get_port()),
            pg_user: backup.pg_user.clone(),
            program: backup.pgbackrest.clone(),
            pg_bin_dir: backup.pg_bin_dir.clone(),
            scratch_dir: backup
                .scratch_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
        };
        for (key, path) in [
            ("backup.repo", &plan.repo),
            ("backup.pg_data", &plan.pg_data),
            ("backup.pgbackrest", &plan.program),
        ] {
            // The paths end up in archive_command, which the server runs through a shell.
            if path.to_string_lossy().contains(['\'', '\n']) {
                return Err(PitrError::Setting {
                    key,
                    message: "must not contain a quote or a line break".into(),
                });
            }
        }
        Ok(plan)
    }

    /// pgBackRest's configuration file, kept in the repository.
    pub fn config_file(&self) -> PathBuf {
        self.repo.join("pgbackrest.conf")
    }
}

/// A path made absolute against the working directory (the server runs archive_command from
/// its data directory, so a relative repository would be looked for there).
fn absolute(path: PathBuf, key: &'static str) -> Result<PathBuf, PitrError> {
    std::path::absolute(&path).map_err(|e| PitrError::Setting {
        key,
        message: format!("{}: {e}", path.display()),
    })
}

/// What `brigade backup` did on PostgreSQL.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    /// The new backup as pgBackRest lists it.
    pub backup: BackupInfo,
    /// Backups in the repository after expiry, oldest first (labels).
    pub kept: Vec<String>,
    /// How long the backup took.
    pub took: Duration,
    /// The check in a scratch cluster, unless skipped.
    pub checked: Option<Checked>,
}

/// Makes the server archive into the repository, takes a backup of `kind`, expires old ones,
/// and unless `verify` is false checks the repository and restores the new backup into a
/// scratch cluster.
pub async fn backup(
    plan: &Plan,
    kind: BackupKind,
    verify: bool,
) -> Result<BackupReport, PitrError> {
    same_user_as_cluster(&plan.pg_data)?;
    conf::write(plan)?;
    let server_major = archive::ensure_archiving(plan).await?;
    tool::run(plan, "stanza-create", &[]).await?;
    tool::run(plan, "check", &[]).await?;
    let started = Instant::now();
    let type_arg = format!("--type={}", kind.as_arg());
    tool::run(plan, "backup", &[&type_arg]).await?;
    let took = started.elapsed();
    let info = tool::info(plan).await?;
    let backup = info.backup.last().cloned().ok_or_else(|| PitrError::Tool {
        command: "info".into(),
        status: "ok".into(),
        output: "no backup listed after a successful backup".into(),
    })?;
    let checked = if verify {
        tool::run(plan, "verify", &[]).await?;
        Some(scratch::check(plan, &backup.label, server_major).await?)
    } else {
        None
    };
    Ok(BackupReport {
        kept: info.backup.iter().map(|b| b.label.clone()).collect(),
        backup,
        took,
        checked,
    })
}

/// Where a restore stops replaying WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// The end of the archived WAL: every transaction whose WAL reached the repository.
    Latest,
    /// The last transaction committed at or before this time.
    Time(DateTime<Utc>),
}

/// What `brigade restore` did on PostgreSQL.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The data directory written.
    pub pg_data: PathBuf,
    /// The newest backup in the repository when the restore ran.
    pub newest_backup: Option<String>,
    /// How long pgBackRest took (the server still replays WAL when it starts).
    pub took: Duration,
}

/// Writes the data directory back from the repository, set up to replay archived WAL up to
/// `target` and then open for writes. Refused while PostgreSQL runs on it; the cluster is
/// started afterwards by whoever runs it (systemd, pg_ctl, Kubernetes).
pub async fn restore(plan: &Plan, target: RestoreTarget) -> Result<RestoreReport, PitrError> {
    same_user_as_cluster(&plan.pg_data)?;
    conf::write(plan)?;
    refuse_running(&plan.pg_data)?;
    let mut args = Vec::new();
    if has_files(&plan.pg_data)? {
        // Only files that differ are copied; without it pgBackRest refuses a non-empty folder.
        args.push("--delta".into());
    }
    match target {
        RestoreTarget::Latest => args.push("--type=default".into()),
        RestoreTarget::Time(time) => {
            args.push("--type=time".into());
            // Open for writes at the target (the default pauses there, read-only).
            args.push("--target-action=promote".into());
            args.push(format!(
                "--target={}",
                time.format("%Y-%m-%d %H:%M:%S%.6f+00")
            ));
        }
    }
    let newest_backup = tool::info(plan)
        .await?
        .backup
        .last()
        .map(|b| b.label.clone());
    let started = Instant::now();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool::run(plan, "restore", &args).await?;
    Ok(RestoreReport {
        pg_data: plan.pg_data.clone(),
        newest_backup,
        took: started.elapsed(),
    })
}

/// Lists the repository (`pgbackrest info`).
pub async fn info(plan: &Plan) -> Result<StanzaInfo, PitrError> {
    conf::write(plan)?;
    tool::info(plan).await
}

/// Refuses to run as another user than the one owning the cluster's data directory (or, when
/// it is gone, its parent): the server runs `archive-push` as its owner, so a repository or
/// data directory written by anyone else (root, typically) breaks archiving or the restored
/// server. The process's own user is read from `/proc/self`, whose owner it is.
fn same_user_as_cluster(pg_data: &Path) -> Result<(), PitrError> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = pg_data
        .ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok())
        .map(|m| m.uid());
    let me = std::fs::metadata("/proc/self").map(|m| m.uid());
    match (owner, me) {
        (Some(owner), Ok(me)) if owner != me => Err(PitrError::Setting {
            key: "backup.pg_data",
            message: format!(
                "{} belongs to uid {owner}, this process runs as uid {me}: run brigade as the \
                 cluster's OS user (e.g. sudo -u postgres brigade …)",
                pg_data.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Refuses when `postmaster.pid` names a live process; removes it when it names none (a
/// crashed server leaves it behind, and pgBackRest would refuse because of it).
fn refuse_running(pg_data: &Path) -> Result<(), PitrError> {
    let pid_file = pg_data.join("postmaster.pid");
    let text = match std::fs::read_to_string(&pid_file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(PitrError::io(format!("reading {}", pid_file.display()))(
                error,
            ));
        }
    };
    let pid = text.lines().next().unwrap_or("").trim();
    if !pid.is_empty() && Path::new("/proc").join(pid).exists() {
        return Err(PitrError::Running(pg_data.to_path_buf()));
    }
    std::fs::remove_file(&pid_file).map_err(PitrError::io(format!(
        "removing the stale {}",
        pid_file.display()
    )))
}

/// Whether `dir` exists with anything in it.
fn has_files(dir: &Path) -> Result<bool, PitrError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(PitrError::io(format!("reading {}", dir.display()))(error)),
    }
}
