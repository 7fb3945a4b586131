//! The cluster itself, for the restore drill on PostgreSQL: what an operator does around
//! `brigade restore` after a lost disk — stop the server at once, start it again on the
//! restored data directory the way it ran before, wait until it opens for writes.
//!
//! "The way it ran before" is the postmaster's own command line: PostgreSQL writes it to
//! `postmaster.opts` in the data directory at every start, so the drill reads it while the
//! disk is still there. A cluster started with `-p`/`-k` on its command line (or Debian's
//! `-c config_file=…`) comes back on the same port and socket without brigade knowing how it
//! is managed.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::process::Command;

use super::{PitrError, Plan};

/// How the cluster is run: its programs and the postmaster's arguments.
#[derive(Debug, Clone)]
pub struct Server {
    /// PostgreSQL's programs (`pg_ctl`).
    pub bin: PathBuf,
    /// The data directory.
    pub pg_data: PathBuf,
    /// The postmaster's arguments besides `-D`, as it was last started.
    pub arguments: Vec<String>,
    /// Where the server's output goes when the drill starts it.
    pub log: PathBuf,
}

impl Server {
    /// Reads how the cluster of `plan` runs, refusing what would fail once the disk is gone:
    /// another OS user than the cluster's, no `pg_ctl`, no `postmaster.opts`.
    pub fn of(plan: &Plan) -> Result<Self, PitrError> {
        super::same_user_as_cluster(&plan.pg_data)?;
        let bin = programs(plan)?;
        let opts = plan.pg_data.join("postmaster.opts");
        let text = std::fs::read_to_string(&opts).map_err(|e| PitrError::Setting {
            key: "backup.pg_data",
            message: format!(
                "cannot read {} ({e}): is this the data directory of the running cluster?",
                opts.display()
            ),
        })?;
        Ok(Self {
            bin,
            pg_data: plan.pg_data.clone(),
            arguments: without_data_dir(parse_opts(&text)),
            log: plan.scratch_dir.join("brigade-restore-drill-postgres.log"),
        })
    }

    /// `pg_ctl stop -m immediate`: the server ends without a checkpoint, as on power loss.
    pub async fn stop_immediately(&self) -> Result<(), PitrError> {
        self.pg_ctl("stop", &["-w", "-m", "immediate"]).await
    }

    /// `pg_ctl start` of the restored cluster with the recorded arguments and
    /// `hot_standby=off`, waiting until it accepts connections.
    ///
    /// A restored cluster replays the archived WAL before it opens for writes; with hot
    /// standby on it would take read-only connections from the backup's end onwards, and the
    /// replicas, reconnecting as soon as they can, would read the database as it was minutes
    /// ago — a session created since is not there yet, and its customer is told to log in
    /// again. Off, the server refuses connections as "starting up" (a 503 to the customer)
    /// until the replay is done. On a primary the setting changes nothing afterwards.
    pub async fn start(&self) -> Result<(), PitrError> {
        let options = self
            .arguments
            .iter()
            .map(String::as_str)
            .chain(["-c", "hot_standby=off"])
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(folder) = self.log.parent() {
            std::fs::create_dir_all(folder)
                .map_err(PitrError::io(format!("creating {}", folder.display())))?;
        }
        let log = self.log.display().to_string();
        self.pg_ctl("start", &["-w", "-t", "600", "-l", &log, "-o", &options])
            .await
    }

    async fn pg_ctl(&self, command: &str, args: &[&str]) -> Result<(), PitrError> {
        let program = self.bin.join("pg_ctl");
        let output = Command::new(&program)
            .arg(command)
            .args(args)
            .arg("-D")
            .arg(&self.pg_data)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| PitrError::Setting {
                key: "backup.pg_bin_dir",
                message: format!("cannot run {}: {e}", program.display()),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(PitrError::Server {
            command: command.to_owned(),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .trim()
            .to_owned(),
        })
    }
}

/// Deletes everything inside the data directory and keeps the (empty) directory with its
/// owner and mode, as a replaced disk mounted at the same place would be.
pub fn empty_data_dir(pg_data: &Path) -> Result<(), PitrError> {
    let entries = std::fs::read_dir(pg_data)
        .map_err(PitrError::io(format!("reading {}", pg_data.display())))?;
    for entry in entries {
        let entry = entry.map_err(PitrError::io(format!("reading {}", pg_data.display())))?;
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(PitrError::io(format!("deleting {}", path.display())))?;
    }
    Ok(())
}

/// Waits (up to `limit`) until the server at `database_url` answers and is out of recovery:
/// a restored cluster accepts read-only connections while it still replays archived WAL.
pub async fn wait_open(database_url: &str, limit: Duration) -> Result<(), PitrError> {
    let options = PgConnectOptions::from_str(database_url)?;
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match open(&options).await {
            Ok(true) => return Ok(()),
            Ok(false) => last = "still replaying WAL (in recovery)".into(),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(PitrError::Server {
        command: "start".into(),
        status: format!("not open for writes within {} s", limit.as_secs()),
        output: last,
    })
}

async fn open(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut connection = options.connect().await?;
    let (open,): (bool,) = sqlx::query_as("SELECT NOT pg_is_in_recovery()")
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(open)
}

/// PostgreSQL's programs: `backup.pg_bin_dir`, else the cluster's own major version (its
/// `PG_VERSION` file) under Debian's layout, else what `pg_config --bindir` says.
fn programs(plan: &Plan) -> Result<PathBuf, PitrError> {
    let found = match &plan.pg_bin_dir {
        Some(dir) => Some(dir.clone()),
        None => std::fs::read_to_string(plan.pg_data.join("PG_VERSION"))
            .ok()
            .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{}/bin", v.trim())))
            .filter(|dir| dir.join("pg_ctl").exists())
            .or_else(|| {
                std::process::Command::new("pg_config")
                    .arg("--bindir")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            }),
    };
    match found {
        Some(dir) if dir.join("pg_ctl").exists() => Ok(dir),
        other => Err(PitrError::Setting {
            key: "backup.pg_bin_dir",
            message: format!(
                "no pg_ctl in {}: set it to the folder of PostgreSQL's programs",
                other.map_or("-".into(), |d| d.display().to_string())
            ),
        }),
    }
}

/// The arguments of a `postmaster.opts` line: the program, unquoted, then each argument in
/// double quotes (PostgreSQL writes them without escaping).
fn parse_opts(text: &str) -> Vec<String> {
    let line = text.lines().next().unwrap_or("");
    let mut rest = match line.find(" \"") {
        Some(at) => &line[at..],
        None => return Vec::new(),
    };
    let mut arguments = Vec::new();
    while let Some(start) = rest.strip_prefix(" \"") {
        let end = start
            .find("\" \"")
            .unwrap_or_else(|| start.rfind('"').unwrap_or(0));
        arguments.push(start[..end].to_owned());
        rest = &start[(end + 1).min(start.len())..];
    }
    arguments
}

/// The arguments without the data directory (`-D DIR`), which pg_ctl passes itself.
fn without_data_dir(arguments: Vec<String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut iter = arguments.into_iter();
    while let Some(argument) = iter.next() {
        if argument == "-D" {
            iter.next();
        } else if !argument.starts_with("-D") && !argument.starts_with("--pgdata") {
            kept.push(argument);
        }
    }
    kept
}

/// `text` as one word for the shell pg_ctl runs the postmaster through.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_command_line_comes_back_without_the_data_directory() {
        let debian = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/postgresql/15/main\" \
                      \"-c\" \"config_file=/etc/postgresql/15/main/postgresql.conf\"\n";
        assert_eq!(
            without_data_dir(parse_opts(debian)),
            ["-c", "config_file=/etc/postgresql/15/main/postgresql.conf"]
        );
        let private = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/tmp/pg x/data\" \"-p\" \
                       \"5433\" \"-k\" \"/tmp/pg x\" \"-c\" \"listen_addresses=127.0.0.1\"";
        assert_eq!(
            without_data_dir(parse_opts(private)),
            [
                "-p",
                "5433",
                "-k",
                "/tmp/pg x",
                "-c",
                "listen_addresses=127.0.0.1"
            ]
        );
        assert!(parse_opts("/usr/bin/postgres\n").is_empty());
    }

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/tmp/pg x"), "'/tmp/pg x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
