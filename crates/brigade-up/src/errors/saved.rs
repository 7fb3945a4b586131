//! The error groups on disk, so a restart of `up` (or its crash) does not forget what is open
//! and what was resolved: `<data-dir>/up/error-groups.json`.
//!
//! Recording happens on the log path, as often as children log errors, so it never writes:
//! it bumps a generation, and [`run_saver`] writes the table at most once a second when the
//! generation moved, and once more on shutdown. A write goes to a temporary file that is
//! synced and renamed over the old one, so a crash leaves the previous table or the new one,
//! never half of one. A `kill -9` loses at most the last second of counts. A file that does not
//! parse is moved aside (`.corrupt`) and the table starts empty, with a warning: a bad file
//! must not keep the supervisor from starting.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brigade_core::Shutdown;

use super::file_format::{SavedGroups, VERSION};
use super::groups::ErrorGroups;

/// How often changed groups are written.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Where the groups of the `up` using `data_dir` are kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("up").join("error-groups.json")
}

/// Why the saved groups could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// It does not hold saved groups; it was moved to `aside`.
    #[error("{path} is not a saved error-group table ({reason}); moved to {aside}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
        /// Where it went.
        aside: PathBuf,
    },
}

/// The groups saved at `path`; empty when there is no file. A warning comes back with an
/// empty table when the file could not be used.
pub fn load(path: &Path) -> (ErrorGroups, Option<LoadError>) {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return (ErrorGroups::default(), None);
        }
        Err(source) => {
            let error = LoadError::Read {
                path: path.to_path_buf(),
                source,
            };
            return (ErrorGroups::default(), Some(error));
        }
    };
    let parsed = serde_json::from_slice::<SavedGroups>(&text)
        .map_err(|error| error.to_string())
        .and_then(|saved| match saved.version {
            VERSION => Ok(saved),
            other => Err(format!("version {other}, expected {VERSION}")),
        });
    match parsed {
        Ok(saved) => (ErrorGroups::from_saved(saved), None),
        Err(reason) => {
            let aside = path.with_extension("json.corrupt");
            let _ = std::fs::rename(path, &aside);
            let error = LoadError::Corrupt {
                path: path.to_path_buf(),
                reason,
                aside,
            };
            (ErrorGroups::default(), Some(error))
        }
    }
}

/// Writes `saved` to `path` through a synced temporary file and a rename.
pub(super) fn write(path: &Path, saved: &SavedGroups) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&serde_json::to_vec(saved).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// The running saver of `up`'s groups.
pub struct Saver {
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Saver {
    /// Starts saving `groups` to the file of `data_dir`.
    pub fn start(groups: &ErrorGroups, data_dir: &Path) -> Self {
        let stop = Shutdown::new();
        let task = tokio::spawn(run_saver(groups.clone(), path(data_dir), stop.clone()));
        Self { stop, task }
    }

    /// Saves what changed one last time and stops. Called after the children stopped, so the
    /// errors they logged while stopping are saved too.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

/// Writes the groups to `path` whenever they changed, at most every [`SAVE_INTERVAL`], until
/// `shutdown`, then once more. A failed write (a full disk) is logged and tried again at the
/// next change; the table in memory is unaffected.
pub async fn run_saver(groups: ErrorGroups, path: PathBuf, shutdown: Shutdown) {
    // Generation 0 is the table as loaded: what the file holds (or nothing, with no file).
    let mut saved_generation = 0;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(SAVE_INTERVAL) => false,
            () = shutdown.wait() => true,
        };
        let generation = groups.generation();
        if generation != saved_generation {
            let snapshot = groups.snapshot();
            let target = path.clone();
            let written = tokio::task::spawn_blocking(move || write(&target, &snapshot)).await;
            match written {
                Ok(Ok(())) => saved_generation = generation,
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "cannot save the error groups");
                }
                Err(error) => tracing::warn!(%error, "the error-group save task failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use brigade_core::error_event::{ErrorEvent, ErrorKind};
    use chrono::Utc;

    use super::*;
    use crate::api::ErrorGroupState;

    #[test]
    fn groups_come_back_as_they_were_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error-groups.json");
        let groups = ErrorGroups::default();
        let before = groups.generation();
        groups.record(
            "serve",
            ErrorEvent::new(ErrorKind::Panic, "boom 1"),
            Utc::now(),
        );
        groups.record(
            "serve",
            ErrorEvent::new(ErrorKind::Panic, "boom 2"),
            Utc::now(),
        );
        groups.record(
            "web",
            ErrorEvent::new(ErrorKind::ClientError, "x"),
            Utc::now(),
        );
        assert_ne!(groups.generation(), before);
        let resolved = groups.list(None).groups[0].fingerprint.clone();
        groups.resolve(&resolved, Utc::now()).unwrap();
        write(&path, &groups.snapshot()).unwrap();

        let (loaded, warning) = load(&path);
        assert!(warning.is_none());
        assert_eq!(loaded.list(None), groups.list(None));
        let again = loaded.list(Some(ErrorGroupState::Resolved)).groups[0].clone();
        assert_eq!(again.fingerprint, resolved);
        // A resolved group that comes back after the restart reopens, as before it.
        let event = if again.kind == ErrorKind::Panic {
            ErrorEvent::new(ErrorKind::Panic, "boom 3")
        } else {
            ErrorEvent::new(ErrorKind::ClientError, "x")
        };
        assert_eq!(
            loaded.record("serve", event, Utc::now()),
            super::super::Recorded::Reopened
        );
    }

    #[test]
    fn no_file_is_an_empty_table_and_a_bad_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error-groups.json");
        let (empty, warning) = load(&path);
        assert!(warning.is_none() && empty.list(None).groups.is_empty());

        std::fs::write(&path, b"{\"version\": 1, \"groups\": [tru").unwrap();
        let (empty, warning) = load(&path);
        assert!(empty.list(None).groups.is_empty());
        assert!(
            matches!(warning, Some(LoadError::Corrupt { .. })),
            "{warning:?}"
        );
        assert!(!path.exists());
        assert!(dir.path().join("error-groups.json.corrupt").exists());
    }

    #[tokio::test]
    async fn the_saver_writes_changes_and_a_last_time_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error-groups.json");
        let groups = ErrorGroups::default();
        let shutdown = Shutdown::new();
        let saver = tokio::spawn(run_saver(groups.clone(), path.clone(), shutdown.clone()));
        groups.record(
            "serve",
            ErrorEvent::new(ErrorKind::Panic, "boom"),
            Utc::now(),
        );
        shutdown.trigger();
        saver.await.unwrap();
        let (loaded, _) = load(&path);
        assert_eq!(loaded.list(None), groups.list(None));
    }
}
