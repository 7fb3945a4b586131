//! Continuous backups of the embedded SQLite store, and its restore when it vanishes.
//!
//! ```toml
//! [backup]
//! interval_secs = 30        # 0 turns both off; at most 3600
//! dir = "/mnt/disk2/brigade-backups"   # default <data-dir>/backups/continuous; a second disk in production
//! keep = 20                 # backups kept (the newest)
//! restore_on_loss = true    # put the newest backup back when the store file vanishes
//! ```
//! Every `interval_secs` the supervisor copies the live file with `VACUUM INTO` (one read
//! transaction in WAL mode: replicas keep writing meanwhile), verifies the copy (integrity
//! check, brigade's migrations) and only then renames it into place, then prunes to `keep`
//! ([`brigade_store::sqlite_backup`]). So the newest backup is at most one interval (plus the
//! copy's duration) old: the recovery point.
//!
//! Four times a second it also checks that the store file is still the one the replicas opened
//! (same inode). When it is gone or replaced — deleted, a lost disk remounted empty — the
//! replicas would go on writing into a file nobody can read again, so [`recover`] kills them,
//! puts the newest verified backup in place, starts them again and replaces watch (which keeps
//! its alert state in the same file). `GET /api/backups` on the ops port shows the newest
//! backup, the last failure and every restore with how long each step took; the metrics are
//! in [`crate::metrics`].

use crate::api::{BackupRecord, BackupView};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use brigade_core::Shutdown;
use brigade_store::sqlite_backup;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::api::{EventKind, EventLevel};
use crate::jobs::JobsConfigError;
use crate::shared::Shared;

mod recover;

pub(crate) use recover::Recovery;

/// Default time between backups: half the one-minute recovery point brigade promises.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default number of backups kept.
pub const DEFAULT_KEEP: u16 = 20;
/// How often the store file's identity is checked.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// `[backup]` of up.toml, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Seconds between backups; 0 = off.
    pub interval_secs: Option<u64>,
    /// Where backups go (relative to up.toml's folder).
    pub dir: Option<PathBuf>,
    /// Backups kept.
    pub keep: Option<u16>,
    /// Restore the newest backup when the store file vanishes.
    pub restore_on_loss: Option<bool>,
}

/// Continuous backups of one SQLite file, and what to do when it vanishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuousBackup {
    /// The store file.
    pub database: PathBuf,
    /// Where backups go.
    pub dir: PathBuf,
    /// Time between backups.
    pub interval: Duration,
    /// Backups kept.
    pub keep: u16,
    /// Restore the newest backup when the store file vanishes.
    pub restore_on_loss: bool,
}

impl BackupSection {
    /// The plan for `database` with backups in `dir` (the caller resolved `self.dir` or chose
    /// the default); `None` when `interval_secs = 0`. Errors name the key.
    pub fn plan(
        &self,
        database: PathBuf,
        dir: PathBuf,
    ) -> Result<Option<ContinuousBackup>, JobsConfigError> {
        let invalid = |key: &str, message: &str| JobsConfigError::Invalid {
            key: format!("backup.{key}"),
            message: message.into(),
        };
        let interval = self.interval_secs.unwrap_or(DEFAULT_INTERVAL.as_secs());
        if interval == 0 {
            return Ok(None);
        }
        if interval > 3600 {
            return Err(invalid(
                "interval_secs",
                "must be at most 3600 (0 turns backups off)",
            ));
        }
        let keep = self.keep.unwrap_or(DEFAULT_KEEP);
        if !(1..=10_000).contains(&keep) {
            return Err(invalid("keep", "must be between 1 and 10000"));
        }
        if dir == database.parent().unwrap_or(Path::new("")) {
            return Err(invalid(
                "dir",
                "must not be the store's own directory (a restore moves files there aside)",
            ));
        }
        Ok(Some(ContinuousBackup {
            database,
            dir,
            interval: Duration::from_secs(interval),
            keep,
            restore_on_loss: self.restore_on_loss.unwrap_or(true),
        }))
    }
}

/// The view, shared with the ops API.
pub(crate) type SharedView = Arc<Mutex<BackupView>>;

fn edit<T>(view: &SharedView, change: impl FnOnce(&mut BackupView) -> T) -> T {
    change(&mut view.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `GET /api/backups` on the ops port.
pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/api/backups", get(view))
}

async fn view(State(shared): State<Shared>) -> axum::Json<BackupView> {
    axum::Json(edit(&shared.backups, |view| view.clone()))
}

/// The file's identity: device and inode, `None` when it is not there.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// Takes backups every interval and restores the store when it vanishes, until `stop`.
pub(crate) async fn run(plan: ContinuousBackup, recovery: Recovery, stop: Shutdown) {
    let shared = recovery.shared.clone();
    edit(&shared.backups, |view| {
        view.enabled = true;
        view.database = Some(plan.database.display().to_string());
        view.dir = Some(plan.dir.display().to_string());
        view.interval_secs = plan.interval.as_secs();
        view.keep = plan.keep;
        view.restore_on_loss = plan.restore_on_loss;
    });
    let started = Utc::now();
    let mut newest = sqlite_backup::list(&plan.dir)
        .first()
        .and_then(|path| sqlite_backup::taken_at(path));
    let age = |newest: Option<DateTime<Utc>>| {
        (Utc::now() - newest.unwrap_or(started))
            .as_seconds_f64()
            .max(0.0)
    };
    crate::metrics::backups_started(plan.interval.as_secs_f64(), age(newest));
    let mut known = identity(&plan.database);
    let mut lost_reported = false;
    let mut next = Instant::now();
    let mut running: Option<JoinHandle<()>> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.wait() => break,
        }
        if let Some(at) = edit(&shared.backups, |v| {
            v.last_success.as_ref().map(|b| b.taken_at)
        }) {
            newest = Some(at);
        }
        crate::metrics::backup_age(age(newest));
        let now = identity(&plan.database);
        if known.is_some() && now != known {
            if plan.restore_on_loss {
                if let Some(backup) = running.take() {
                    let _ = backup.await;
                }
                recover::recover(&plan, &recovery, &stop).await;
                known = identity(&plan.database);
                next = Instant::now() + plan.interval;
            } else if !lost_reported {
                lost_reported = true;
                shared.events.push(
                    EventLevel::Error,
                    EventKind::Store,
                    None,
                    format!(
                        "{} is gone or replaced and restore_on_loss is off: stop brigade up and \
                         run `brigade restore`",
                        plan.database.display()
                    ),
                );
            }
            continue;
        }
        known = known.or(now);
        if Instant::now() >= next && running.as_ref().is_none_or(JoinHandle::is_finished) {
            next = Instant::now() + plan.interval;
            running = Some(tokio::spawn(backup_once(plan.clone(), shared.clone())));
        }
    }
    if let Some(backup) = running {
        backup.abort();
    }
}

/// One backup and its pruning, recorded in the view, the metrics and (failures) the events.
async fn backup_once(plan: ContinuousBackup, shared: Shared) {
    let taken_at = Utc::now();
    let output = plan.dir.join(sqlite_backup::default_name(taken_at));
    let started = Instant::now();
    let result = sqlite_backup::backup(&plan.database, &output).await;
    let duration = started.elapsed();
    match result {
        Ok(backup) => {
            let pruned = sqlite_backup::prune(&plan.dir, usize::from(plan.keep));
            crate::metrics::backup_ran(Some((
                taken_at.timestamp_millis() as f64 / 1000.0,
                duration.as_secs_f64(),
                backup.bytes,
            )));
            edit(&shared.backups, |view| {
                view.succeeded += 1;
                view.last_success = Some(BackupRecord {
                    path: backup.path.display().to_string(),
                    taken_at,
                    duration_ms: duration.as_millis() as u64,
                    bytes: backup.bytes,
                });
            });
            if let Err(error) = pruned {
                tracing::warn!(%error, "old backups could not be pruned");
            }
        }
        Err(error) => {
            crate::metrics::backup_ran(None);
            let message = format!(
                "backup to {} failed: {}",
                output.display(),
                brigade_core::telemetry::error_chain(&error)
            );
            let first = edit(&shared.backups, |view| {
                view.failed += 1;
                view.last_failure.replace(message.clone()).as_ref() != Some(&message)
            });
            // A failure repeated every interval is one event, not a flood.
            if first {
                shared
                    .events
                    .push(EventLevel::Error, EventKind::Backup, None, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let plan = BackupSection::default()
            .plan("/data/brigade.db".into(), "/data/backups/continuous".into())
            .unwrap()
            .unwrap();
        assert_eq!(plan.interval, DEFAULT_INTERVAL);
        assert!(plan.interval <= Duration::from_secs(60), "RPO <= 1 minute");
        assert_eq!(plan.keep, DEFAULT_KEEP);
        assert!(plan.restore_on_loss);
        let off = BackupSection {
            interval_secs: Some(0),
            ..BackupSection::default()
        };
        assert_eq!(off.plan("/d/b.db".into(), "/e".into()).unwrap(), None);
        for (section, key) in [
            (
                BackupSection {
                    interval_secs: Some(3601),
                    ..BackupSection::default()
                },
                "backup.interval_secs",
            ),
            (
                BackupSection {
                    keep: Some(0),
                    ..BackupSection::default()
                },
                "backup.keep",
            ),
            (BackupSection::default(), "backup.dir"),
        ] {
            let error = section
                .plan("/d/brigade.db".into(), "/d".into())
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn identity_changes_when_the_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brigade.db");
        assert_eq!(identity(&path), None);
        std::fs::write(&path, b"one").unwrap();
        let first = identity(&path);
        std::fs::write(dir.path().join("other"), b"two").unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        assert_ne!(identity(&path), first);
    }
}
