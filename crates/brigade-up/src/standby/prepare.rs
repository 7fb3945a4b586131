//! Everything before the standby's first start: who runs it, which PostgreSQL programs, its
//! data directory (a base backup of the primary when missing) and where it will listen.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection as _;

use super::{LocalStandby, StandbyError};
use crate::logs::LogSink;

/// Where Debian and Ubuntu install each major version's server programs.
const DEBIAN_LAYOUT: &str = "/usr/lib/postgresql";
/// How long the primary may take to answer the version query.
const PRIMARY_TIMEOUT: Duration = Duration::from_secs(10);

/// A standby ready to be run.
#[derive(Debug, Clone)]
pub(crate) struct StandbyPlan {
    /// The folder of `postgres` (of the primary's major version).
    pub bin: PathBuf,
    /// `setpriv`, which ties `postgres` to `up`'s life (see [`crate::tied`]).
    pub setpriv: PathBuf,
    /// Its data directory (also the folder of its Unix socket).
    pub dir: PathBuf,
    /// Its port on 127.0.0.1, kept across restarts so the replicas' read URL stays right.
    pub port: u16,
    /// The replicas' `DATABASE_READ_URL`: the primary's URL with host 127.0.0.1 and the
    /// standby's port (same user, password, database and parameters).
    pub read_url: String,
}

/// Checks the user, finds the programs, makes the data directory when missing and picks a
/// port.
pub(crate) async fn prepare(
    standby: &LocalStandby,
    sink: &LogSink,
) -> Result<StandbyPlan, StandbyError> {
    if super::runs_as_root() {
        return Err(StandbyError::Root);
    }
    let setpriv = crate::tied::setpriv().ok_or(StandbyError::NoSetpriv)?;
    let major = primary_major(&standby.primary_url).await?;
    let bin = programs(major).await?;
    let dir = &standby.dir;
    if dir.exists() {
        if !dir.join("standby.signal").exists() {
            return Err(StandbyError::NotAStandby { dir: dir.clone() });
        }
    } else {
        base_backup(&bin, &standby.primary_url, dir, sink).await?;
    }
    own_config(dir)?;
    let port = free_port()?;
    let read_url = read_url(&standby.primary_url, port)?;
    Ok(StandbyPlan {
        bin,
        setpriv,
        dir: dir.clone(),
        port,
        read_url,
    })
}

/// The primary's major version (`SHOW server_version_num` / 10000: 150020 → 15).
async fn primary_major(url: &str) -> Result<u32, StandbyError> {
    let failed = |error: &dyn std::fmt::Display| StandbyError::Primary(error.to_string());
    let ask = async {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        let number: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&mut connection)
            .await?;
        let _ = connection.close().await;
        Ok::<_, sqlx::Error>(number)
    };
    let number = tokio::time::timeout(PRIMARY_TIMEOUT, ask)
        .await
        .map_err(|_| failed(&"no answer within 10 s"))?
        .map_err(|e| failed(&e))?;
    let number: u32 = number
        .trim()
        .parse()
        .map_err(|_| failed(&format!("server_version_num {number:?}")))?;
    Ok(number / 10_000)
}

/// The folder holding `postgres` and `pg_basebackup` of version `major`: Debian's layout,
/// else `pg_config --bindir` when `pg_config` is of that version.
async fn programs(major: u32) -> Result<PathBuf, StandbyError> {
    let debian = Path::new(DEBIAN_LAYOUT).join(major.to_string()).join("bin");
    let mut candidates = vec![debian];
    if let Some(bindir) = pg_config_bindir(major).await {
        candidates.push(bindir);
    }
    let looked = candidates
        .iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for program in ["postgres", "pg_basebackup"] {
        if !candidates.iter().any(|dir| dir.join(program).is_file()) {
            return Err(StandbyError::Missing {
                program,
                major,
                looked,
            });
        }
    }
    let both =
        |dir: &&PathBuf| dir.join("postgres").is_file() && dir.join("pg_basebackup").is_file();
    candidates
        .iter()
        .find(both)
        .cloned()
        .ok_or(StandbyError::Missing {
            program: "pg_basebackup",
            major,
            looked,
        })
}

/// `pg_config --bindir` when `pg_config --version` is PostgreSQL `major`.
async fn pg_config_bindir(major: u32) -> Option<PathBuf> {
    let run = |arg: &'static str| async move {
        let output = tokio::process::Command::new("pg_config")
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let version = run("--version").await?;
    version
        .strip_prefix("PostgreSQL ")?
        .starts_with(&format!("{major}."))
        .then_some(())?;
    run("--bindir").await.map(PathBuf::from)
}

/// `pg_basebackup -D dir -R -X stream -c fast -w` from the primary; its output goes to the
/// central log. A failure leaves no directory behind (pg_basebackup removes what it made).
async fn base_backup(
    bin: &Path,
    primary_url: &str,
    dir: &Path,
    sink: &LogSink,
) -> Result<(), StandbyError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StandbyError::Io {
            what: format!("cannot make {}", parent.display()),
            source,
        })?;
    }
    tracing::info!(dir = %dir.display(), "making the local standby: pg_basebackup from the primary");
    // Stopped halfway (`up` stopping drops this future, which kills pg_basebackup) or failed,
    // the directory goes: a half-copied one would be refused at the next start.
    let unfinished = Unfinished(dir);
    let output = tokio::process::Command::new(bin.join("pg_basebackup"))
        .args([
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-w",
            "-d",
            primary_url,
            "-D",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| StandbyError::Io {
            what: "cannot run pg_basebackup".into(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines() {
        sink.write("standby", "pg_basebackup", line);
    }
    if !output.status.success() {
        return Err(StandbyError::BaseBackup {
            status: output.status.to_string(),
            stderr: stderr.trim().to_owned(),
        });
    }
    std::mem::forget(unfinished);
    Ok(())
}

/// A standby directory being made: removed when dropped (forgotten once complete).
struct Unfinished<'a>(&'a Path);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
}

/// A primary whose configuration lives outside its data directory (Debian's
/// `/etc/postgresql/…`) gives a base backup without `postgresql.conf`, which `postgres`
/// needs; an empty one is written (the settings `up` needs are on the command line, and
/// `postgresql.auto.conf`, with `primary_conninfo`, is read anyway).
fn own_config(dir: &Path) -> Result<(), StandbyError> {
    let config = dir.join("postgresql.conf");
    if config.exists() {
        return Ok(());
    }
    std::fs::write(
        &config,
        "# Written by brigade up: the primary keeps its configuration elsewhere.\n",
    )
    .map_err(|source| StandbyError::Io {
        what: format!("cannot write {}", config.display()),
        source,
    })
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> Result<u16, StandbyError> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| StandbyError::Io {
            what: "cannot find a free port".into(),
            source,
        })
}

/// The primary's URL with host 127.0.0.1 and `port`.
fn read_url(primary_url: &str, port: u16) -> Result<String, StandbyError> {
    let mut url = reqwest::Url::parse(primary_url)
        .map_err(|e| StandbyError::Primary(format!("DATABASE_URL does not parse: {e}")))?;
    let bad = |what: String| StandbyError::Primary(format!("DATABASE_URL: {what}"));
    url.set_host(Some("127.0.0.1"))
        .map_err(|e| bad(e.to_string()))?;
    url.set_port(Some(port))
        .map_err(|()| bad("cannot carry a port".into()))?;
    // Parameters that name a host or port (a Unix socket folder) would override the above.
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !matches!(key.as_ref(), "host" | "hostaddr" | "port"))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_url_keeps_user_password_database_and_parameters() {
        let url = read_url(
            "postgres://app:secret@db.example:5433/brigade?sslmode=disable",
            54321,
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://app:secret@127.0.0.1:54321/brigade?sslmode=disable"
        );
    }

    #[test]
    fn a_unix_socket_primary_gives_a_tcp_read_url() {
        let url = read_url(
            "postgres:///brigade?host=/var/run/postgresql&port=5432&user=app",
            54321,
        )
        .unwrap();
        assert_eq!(url, "postgres://127.0.0.1:54321/brigade?user=app");
    }
}
