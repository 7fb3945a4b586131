//! Putting a lost SQLite store back while `brigade up` runs: kill the replicas, restore the
//! newest verified backup, start them again, replace watch — each step timed in the view.
//!
//! The supervisor does it rather than a person or the drill because it is the one process that
//! can stop every writer at once and knows when they are all ready again; the runbook's manual
//! path (`brigade restore` with `up` stopped) does the same steps by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_core::Shutdown;
use brigade_store::sqlite_backup;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use brigade_core::telemetry::error_chain as chain;

use super::{ContinuousBackup, edit};
use crate::api::{EventKind, EventLevel};
use crate::api::{RestoreOutcome, RestoreRecord};
use crate::logs::LogSink;
use crate::pool::PoolCommand;
use crate::shared::Shared;
use crate::supervise::Replace;
use crate::topology::UpOptions;

/// Longest a pool may take to stop its replicas (they are killed, so this is generous).
const HALT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a restore needs of the supervisor.
#[derive(Clone)]
pub(crate) struct Recovery {
    /// The topology (for "every replica ready" and `brigade migrate`).
    pub options: Arc<UpOptions>,
    /// Pools, status and events.
    pub shared: Shared,
    /// Central logs (of `brigade migrate`).
    pub sink: LogSink,
    /// Replaces watch, whose alert state lives in the store too.
    pub watch: Option<mpsc::Sender<Replace>>,
}

/// Restores the store after it vanished; the outcome is in the view, the events and metrics.
pub(super) async fn recover(plan: &ContinuousBackup, recovery: &Recovery, stop: &Shutdown) {
    let shared = &recovery.shared;
    let detected = Instant::now();
    let since = |at: Instant| Some(at.duration_since(detected).as_millis() as u64);
    edit(&shared.backups, |view| {
        view.restores.push(RestoreRecord {
            detected_at: Utc::now(),
            outcome: RestoreOutcome::Restoring,
            ..RestoreRecord::default()
        });
    });
    let step = |change: &dyn Fn(&mut RestoreRecord)| {
        edit(&shared.backups, |view| {
            if let Some(record) = view.restores.last_mut() {
                change(record);
            }
        });
    };
    shared.events.push(
        EventLevel::Error,
        EventKind::Store,
        None,
        format!(
            "{} is gone or replaced: stopping the replicas and restoring the newest backup \
             from {}",
            plan.database.display(),
            plan.dir.display()
        ),
    );
    let resumes = halt_pools(shared).await;
    let halted = since(Instant::now());
    step(&|r| r.halted_ms = halted);

    let restored = put_back(plan).await;
    let restored_ms = since(Instant::now());
    match &restored {
        Ok((backup, _)) => {
            let path = backup.display().to_string();
            let taken = taken_at(shared, backup);
            step(&|r| {
                r.backup = Some(path.clone());
                r.backup_taken_at = taken;
                r.restored_ms = restored_ms;
            });
        }
        Err(error) => {
            // Nothing to put back: the replicas start on a new, empty store rather than not at
            // all; its tables are made by one process first, as at start.
            let _ = crate::supervisor::run_once(&recovery.options, "migrate", &recovery.sink).await;
            let detail = chain(error);
            step(&|r| r.detail = detail.clone());
        }
    }
    resume(resumes, recovery).await;
    crate::supervisor::wait_until_serving(&recovery.options, shared, stop).await;
    let ready = since(Instant::now());
    let succeeded = restored.is_ok();
    crate::metrics::store_restored(succeeded);
    let message = summary(&restored, restored_ms, ready);
    let detail = message.clone();
    step(&|r| {
        r.ready_ms = ready;
        r.outcome = if succeeded {
            RestoreOutcome::Succeeded
        } else {
            RestoreOutcome::Failed
        };
        r.detail = detail.clone();
    });
    shared.events.push(
        EventLevel::of_outcome(succeeded),
        EventKind::Store,
        None,
        message,
    );
}

/// When `backup` was taken: the exact time when it is the newest backup taken since start,
/// else its name's (whole seconds).
fn taken_at(shared: &Shared, backup: &std::path::Path) -> Option<DateTime<Utc>> {
    edit(&shared.backups, |view| {
        view.last_success
            .as_ref()
            .filter(|newest| std::path::Path::new(&newest.path) == backup)
            .map(|newest| newest.taken_at)
    })
    .or_else(|| sqlite_backup::taken_at(backup))
}

/// Lets the halted pools start their replicas again, then replaces watch, whose alert state
/// was in the store that was put back.
async fn resume(resumes: Vec<oneshot::Sender<()>>, recovery: &Recovery) {
    for resume in resumes {
        let _ = resume.send(());
    }
    if let Some(watch) = &recovery.watch {
        let (done, _) = oneshot::channel();
        let _ = watch.send(done).await;
    }
}

/// The restore in one line, for the event and the record.
fn summary(restored: &Restored, restored_ms: Option<u64>, ready_ms: Option<u64>) -> String {
    match restored {
        Ok((backup, verified)) => format!(
            "restored {} ({} migrations, integrity ok) in {} ms; every replica ready after {} ms",
            backup.display(),
            verified.migrations,
            restored_ms.unwrap_or_default(),
            ready_ms.unwrap_or_default()
        ),
        Err(error) => format!(
            "no backup restored ({}); the replicas run on an empty store, ready after {} ms",
            chain(error),
            ready_ms.unwrap_or_default()
        ),
    }
}

/// Asks every pool to halt and waits until each has; the senders that start them again.
async fn halt_pools(shared: &Shared) -> Vec<oneshot::Sender<()>> {
    let mut resumes = Vec::new();
    let mut halts = Vec::new();
    for name in shared.pool_names() {
        let Some(pool) = shared.pool(&name) else {
            continue;
        };
        let (halted, halted_rx) = oneshot::channel();
        let (resume, resume_rx) = oneshot::channel();
        let command = PoolCommand::Halt {
            halted,
            resume: resume_rx,
        };
        if pool.send(command).await.is_ok() {
            resumes.push(resume);
            halts.push(halted_rx);
        }
    }
    for halted in halts {
        let _ = tokio::time::timeout(HALT_TIMEOUT, halted).await;
    }
    resumes
}

/// The newest verified backup, put in place of the store.
async fn put_back(plan: &ContinuousBackup) -> Restored {
    let (backup, verified) =
        sqlite_backup::newest_verified(std::slice::from_ref(&plan.dir)).await?;
    sqlite_backup::put_in_place(&backup, &plan.database, verified)?;
    Ok((backup, verified))
}

/// The backup put in place and what it holds, or why none could be.
type Restored = Result<(std::path::PathBuf, sqlite_backup::Verified), sqlite_backup::BackupError>;
