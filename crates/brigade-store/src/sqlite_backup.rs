//! Backup and restore of the embedded SQLite store, for `brigade backup` / `brigade restore`
//! and the supervisor's nightly backup job.
//!
//! A backup is taken with `VACUUM INTO` on a connection to the live file: SQLite runs it inside
//! one read transaction, so the copy is the database as of one instant while replicas keep
//! writing (WAL mode lets the writers proceed), and the result is compact and self-contained.
//! It is written under a temporary name, switched to a single-file journal mode, checked
//! (`PRAGMA integrity_check` and brigade's migration table) and only then renamed into place,
//! so a file named `brigade-*.db` is always a complete, valid backup.
//!
//! Restoring refuses while any process has the store open: every brigade process keeps a
//! connection to the file, and a WAL-mode connection holds a shared lock on it for as long as
//! it is open, so a probe connection in exclusive locking mode fails at once when anything
//! else uses the database (tested with a real `brigade serve`). The old file is moved aside,
//! never deleted.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use brigade_core::config::StorageSettings;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store is PostgreSQL: pgBackRest backs it up ([`crate::pg_backup`]).
    #[error(
        "the store is PostgreSQL ({url}); this copies the embedded SQLite file only: a \
         PostgreSQL store is backed up by `brigade backup` through pgBackRest ([backup] of \
         brigade.toml), on the database host"
    )]
    Postgres {
        /// The URL, password redacted.
        url: String,
    },
    /// There is no database file to back up.
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    /// The output file is there already; backups never overwrite.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// A file operation failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed on the live database.
    #[error("{path}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: sqlx::Error,
    },
    /// The file is not a (healthy) brigade database.
    #[error("{path} is not a usable brigade database: {reason}")]
    NotBrigade {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No file in the backup directories passed [`verify`].
    #[error("no usable backup in {dirs}{rejected}")]
    NoBackup {
        /// The directories searched, as written.
        dirs: String,
        /// Why the backups found were refused (empty when there were none).
        rejected: String,
    },
    /// A brigade process has the store open.
    #[error(
        "{0} is in use by a running brigade process: stop `brigade up` (or every `brigade serve` \
         and `brigade watch` on it) first"
    )]
    InUse(PathBuf),
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The backup file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Migrations recorded in it.
    pub migrations: usize,
}

/// What a file passed by [`verify`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Applied migrations.
    pub migrations: usize,
    /// The newest applied migration's version.
    pub latest: i64,
}

/// A finished restore.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The database file now in place.
    pub database: PathBuf,
    /// Where the files it replaced went (the database and its WAL files), if there were any.
    pub moved_aside: Vec<PathBuf>,
    /// What the restored file holds.
    pub verified: Verified,
}

/// The SQLite file of the configured store; PostgreSQL is refused.
pub fn database_path(settings: &StorageSettings) -> Result<PathBuf, BackupError> {
    let url = settings.effective_url();
    if brigade_core::config::DatabaseKind::is_postgres(&url) {
        return Err(BackupError::Postgres {
            url: crate::redact_url(&url),
        });
    }
    let options = SqliteConnectOptions::from_str(&url).map_err(|source| BackupError::Sqlite {
        path: PathBuf::from(&url),
        source,
    })?;
    let path = options.get_filename().to_path_buf();
    if path.as_os_str() == ":memory:" {
        return Err(BackupError::NoDatabase(path));
    }
    Ok(path)
}

/// Where backups of `database` go: `backups/` beside it.
pub fn backups_dir(database: &Path) -> PathBuf {
    database
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("backups")
}

/// The default name of a backup taken at `at`: `brigade-YYYYMMDDTHHMMSSZ.db` (names sort by
/// time, which is what [`prune`] relies on).
pub fn default_name(at: DateTime<Utc>) -> String {
    format!("brigade-{}.db", at.format("%Y%m%dT%H%M%SZ"))
}

/// Whether `name` is one of [`default_name`]'s.
fn is_backup_name(name: &str) -> bool {
    name.strip_prefix("brigade-")
        .and_then(|rest| rest.strip_suffix("Z.db"))
        .is_some_and(|stamp| {
            stamp.len() == 15
                && stamp.char_indices().all(
                    |(i, c)| {
                        if i == 8 { c == 'T' } else { c.is_ascii_digit() }
                    },
                )
        })
}

/// Copies the live `database` to `output` (which must not exist), consistently while other
/// processes write, and checks the copy before giving it its name.
pub async fn backup(database: &Path, output: &Path) -> Result<Backup, BackupError> {
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database.to_path_buf()));
    }
    if output.exists() {
        return Err(BackupError::Exists(output.to_path_buf()));
    }
    let dir = output
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file_name = output
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "brigade.db".into());
    let partial = dir.join(format!(".{file_name}.partial"));
    let _ = std::fs::remove_file(&partial);
    let result = copy_and_check(database, &partial).await;
    let verified = match result {
        Ok(verified) => verified,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    if output.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::Exists(output.to_path_buf()));
    }
    std::fs::rename(&partial, output).map_err(io(output))?;
    sync_dir(dir);
    let bytes = std::fs::metadata(output).map_err(io(output))?.len();
    Ok(Backup {
        path: output.to_path_buf(),
        bytes,
        migrations: verified.migrations,
    })
}

/// `VACUUM INTO` the partial file, make it a single self-contained file, verify it, sync it.
async fn copy_and_check(database: &Path, partial: &Path) -> Result<Verified, BackupError> {
    let target = partial.to_str().ok_or_else(|| BackupError::Io {
        path: partial.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the backup path must be valid UTF-8",
        ),
    })?;
    let sqlite = |source| BackupError::Sqlite {
        path: database.to_path_buf(),
        source,
    };
    let mut live = SqliteConnectOptions::new()
        .filename(database)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(sqlite)?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut live)
        .await
        .map_err(sqlite);
    let _ = live.close().await;
    copied?;
    // The copy keeps the live file's WAL flag; a backup should be one file that opens as is.
    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await
        .map_err(|source| BackupError::Sqlite {
            path: partial.to_path_buf(),
            source,
        })?;
    let verified = check(&mut copy, partial).await;
    let _ = copy.close().await;
    let verified = verified?;
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(io(partial))?;
    Ok(verified)
}

/// Checks that `file` is a healthy brigade database this version can run: SQLite opens it,
/// `PRAGMA integrity_check` says ok, and every migration it records is one of brigade's with
/// the same checksum. Opens it read-only without touching it.
pub async fn verify(file: &Path) -> Result<Verified, BackupError> {
    if !file.is_file() {
        return Err(BackupError::NotBrigade {
            path: file.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        return Err(BackupError::NotBrigade {
            path: file.to_path_buf(),
            reason: "a write-ahead log lies beside it (a copy of a live database?); \
                     use a file made by brigade backup"
                .into(),
        });
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|source| not_brigade(file, &source))?;
    let verified = check(&mut conn, file).await;
    let _ = conn.close().await;
    verified
}

/// The checks of [`verify`] on an open connection.
async fn check(conn: &mut SqliteConnection, path: &Path) -> Result<Verified, BackupError> {
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|source| not_brigade(path, &source))?;
    if integrity != ["ok"] {
        return Err(BackupError::NotBrigade {
            path: path.to_path_buf(),
            reason: format!("integrity_check: {}", integrity.join("; ")),
        });
    }
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|source| not_brigade(path, &source))?;
    if table.is_none() {
        return Err(BackupError::NotBrigade {
            path: path.to_path_buf(),
            reason: "it has no migrations table".into(),
        });
    }
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(|source| not_brigade(path, &source))?;
    let refuse = |reason: String| BackupError::NotBrigade {
        path: path.to_path_buf(),
        reason,
    };
    if applied.is_empty() {
        return Err(refuse("no migration was ever applied to it".into()));
    }
    for (version, checksum, success) in &applied {
        let Some(known) = crate::sqlite::MIGRATOR
            .iter()
            .find(|migration| migration.version == *version)
        else {
            return Err(refuse(format!(
                "migration {version} is unknown here (made by a newer brigade?)"
            )));
        };
        if known.checksum.as_ref() != checksum.as_slice() {
            return Err(refuse(format!(
                "migration {version} ({}) differs from this brigade's",
                known.description
            )));
        }
        if !success {
            return Err(refuse(format!("migration {version} did not finish")));
        }
    }
    Ok(Verified {
        migrations: applied.len(),
        latest: applied.last().map_or(0, |(version, _, _)| *version),
    })
}

/// Deletes the oldest backups in `dir` (files named like [`default_name`]) so that `keep`
/// remain; returns what was deleted. Other files are never touched.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    std::fs::metadata(dir).map_err(io(dir))?;
    let mut removed = Vec::new();
    for path in list(dir).into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&path).map_err(io(&path))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Fails with [`BackupError::InUse`] when another connection — any brigade process — has
/// `database` open. Returns at once when the file does not exist.
pub async fn ensure_unused(database: &Path) -> Result<(), BackupError> {
    if !database.exists() {
        return Ok(());
    }
    let probe = SqliteConnectOptions::new()
        .filename(database)
        .create_if_missing(false)
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::from_millis(250))
        .connect()
        .await;
    let mut conn = match probe {
        Ok(conn) => conn,
        Err(error) if is_locked(&error) => return Err(BackupError::InUse(database.into())),
        Err(source) => {
            return Err(BackupError::Sqlite {
                path: database.into(),
                source,
            });
        }
    };
    // Reading takes the file lock; an exclusive transaction must win it against every other
    // connection's shared lock.
    let mut taken = sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&mut conn)
        .await
        .map(drop);
    if taken.is_ok() {
        taken = sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .map(drop);
        if taken.is_ok() {
            taken = sqlx::query("COMMIT").execute(&mut conn).await.map(drop);
        }
    }
    // Closing the last connection also checkpoints the WAL into the file and removes it.
    let _ = conn.close().await;
    match taken {
        Ok(()) => Ok(()),
        Err(error) if is_locked(&error) => Err(BackupError::InUse(database.into())),
        Err(source) => Err(BackupError::Sqlite {
            path: database.into(),
            source,
        }),
    }
}

/// The backups in `dir` (named like [`default_name`]), newest first; none when `dir` does not
/// exist.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_backup_name(name))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    names.into_iter().map(|name| dir.join(name)).collect()
}

/// When the backup at `path` was taken, from its name (`None` for another name).
pub fn taken_at(path: &Path) -> Option<DateTime<Utc>> {
    let name = path.file_name()?.to_str()?;
    if !is_backup_name(name) {
        return None;
    }
    let stamp = &name["brigade-".len()..name.len() - ".db".len()];
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|at| at.and_utc())
}

/// The newest backup over `dirs` that passes [`verify`] — a newer one that does not (cut short
/// by a full disk, damaged) is passed over, and the reason kept for the error when none does.
pub async fn newest_verified(dirs: &[PathBuf]) -> Result<(PathBuf, Verified), BackupError> {
    let mut candidates: Vec<PathBuf> = dirs.iter().flat_map(|dir| list(dir)).collect();
    candidates.sort_by_key(|path| std::cmp::Reverse(taken_at(path)));
    let mut rejected = Vec::new();
    for candidate in candidates {
        match verify(&candidate).await {
            Ok(verified) => return Ok((candidate, verified)),
            Err(error) => rejected.push(error.to_string()),
        }
    }
    Err(BackupError::NoBackup {
        dirs: dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        rejected: if rejected.is_empty() {
            String::new()
        } else {
            format!(" ({})", rejected.join("; "))
        },
    })
}

/// Puts the backup `file` in place of `database`: checks the file ([`verify`]), refuses while
/// the store is in use ([`ensure_unused`]), moves the current database (and any WAL files)
/// aside with a `.before-restore-<time>` suffix, then copies the backup in under a temporary
/// name and renames it, so `database` is never a half-written file.
pub async fn restore(file: &Path, database: &Path) -> Result<Restored, BackupError> {
    let verified = verify(file).await?;
    ensure_unused(database).await?;
    put_in_place(file, database, verified)
}

/// The second half of [`restore`], for a caller that verified `file` and stopped every process
/// that writes to `database` itself: `brigade up`'s supervisor, restoring a store that vanished
/// under its replicas (a process still holding the lost file open cannot be probed for).
pub fn put_in_place(
    file: &Path,
    database: &Path,
    verified: Verified,
) -> Result<Restored, BackupError> {
    let dir = database
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut moved_aside = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut current = database.as_os_str().to_owned();
        current.push(suffix);
        let current = PathBuf::from(current);
        if current.exists() {
            let mut aside = current.as_os_str().to_owned();
            aside.push(format!(".before-restore-{stamp}"));
            let aside = PathBuf::from(aside);
            std::fs::rename(&current, &aside).map_err(io(&current))?;
            moved_aside.push(aside);
        }
    }
    let mut incoming = database.as_os_str().to_owned();
    incoming.push(".restoring");
    let incoming = PathBuf::from(incoming);
    std::fs::copy(file, &incoming).map_err(io(&incoming))?;
    std::fs::File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    std::fs::rename(&incoming, database).map_err(io(database))?;
    sync_dir(dir);
    Ok(Restored {
        database: database.to_path_buf(),
        moved_aside,
        verified,
    })
}

/// SQLITE_BUSY / SQLITE_LOCKED (and their extended codes): someone else holds the lock.
fn is_locked(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

fn not_brigade(path: &Path, error: &sqlx::Error) -> BackupError {
    let reason = match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    BackupError::NotBrigade {
        path: path.to_path_buf(),
        reason,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a rename durable (best effort: not every filesystem lets a directory be synced).
fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_are_recognised() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T03:00:07Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = default_name(at);
        assert_eq!(name, "brigade-20261122T030007Z.db");
        assert!(is_backup_name(&name));
        assert_eq!(taken_at(Path::new(&name)), Some(at));
        assert_eq!(taken_at(Path::new("brigade.db")), None);
        for other in [
            "brigade.db",
            "brigade-20261122T030007Z.db.partial",
            ".brigade-20261122T030007Z.db.partial",
            "brigade-2026112XT030007Z.db",
            "brigade-20261122-030007Z.db",
        ] {
            assert!(!is_backup_name(other), "{other}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "brigade-20261120T030000Z.db",
            "brigade-20261121T030000Z.db",
            "brigade-20261122T030000Z.db",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed, [dir.path().join("brigade-20261120T030000Z.db")]);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "brigade-20261121T030000Z.db",
                "brigade-20261122T030000Z.db",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn postgres_is_refused_with_a_pointer_to_pgbackrest() {
        let settings = StorageSettings {
            database_url: Some("postgres://app:secret@db/brigade".into()),
            ..StorageSettings::default()
        };
        let error = database_path(&settings).unwrap_err().to_string();
        assert!(error.contains("pgBackRest"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }
}
