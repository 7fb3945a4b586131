//! The registered jobs and what their runs report: the state the supervisor's shared state and
//! the ops API hold, apart from the scheduler's loop (`super`), so that holding them does not
//! tie `shared` to the code that runs jobs.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::jobs::{AdminSession, JobPlan};

/// Why a job started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its cron time came.
    Schedule,
    /// Its cron time came and the replicas then were quiet long enough.
    ScheduleWhenQuiet,
    /// A quiet spell began (a job with a quiet condition and no schedule).
    Quiet,
    /// Someone asked through the ops API.
    Ops,
}

impl Trigger {
    /// As the ops API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::ScheduleWhenQuiet => "schedule_when_quiet",
            Self::Quiet => "quiet",
            Self::Ops => "ops",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// It did its work.
    Succeeded,
    /// It failed; the run's detail says why.
    Failed,
}

impl JobOutcome {
    /// As the ops API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// One run of a job, as the ops API and events report it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    /// The job.
    pub job: &'static str,
    /// Why it ran.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it did its work.
    pub outcome: JobOutcome,
    /// What it did, or why it failed.
    pub detail: String,
}

/// A job's quiet condition as `GET /api/jobs` shows it.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct QuietView {
    /// In-flight requests per primary replica must stay below this…
    pub(crate) below_in_flight: f64,
    /// …for this many seconds.
    pub(crate) for_secs: u64,
}

/// A job as `GET /api/jobs` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobView {
    pub(crate) name: &'static str,
    pub(crate) schedule: Vec<String>,
    pub(crate) quiet: Option<QuietView>,
    /// False when the job only runs on request (e.g. no admin password for an API job).
    pub(crate) scheduled: bool,
    pub(crate) note: Option<String>,
    pub(crate) next_run: Option<DateTime<Utc>>,
    pub(crate) running: bool,
    pub(crate) last_run: Option<JobRun>,
}

/// One registered job.
pub(crate) struct JobState {
    pub(crate) plan: JobPlan,
    /// Held while the job runs: one run of a job at a time.
    pub(crate) running: Arc<tokio::sync::Mutex<()>>,
    pub(crate) view: Mutex<JobView>,
}

/// What every run needs besides its job.
pub(crate) struct Runner {
    pub(crate) admin: AdminSession,
    pub(crate) binary: std::path::PathBuf,
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) backup_keep: u16,
}

/// The registered jobs, shared with the ops API (empty when the scheduler is off).
#[derive(Clone, Default)]
pub struct JobBoard(pub(crate) Arc<Mutex<Option<Board>>>);

#[derive(Clone)]
pub(crate) struct Board {
    pub(crate) jobs: Vec<Arc<JobState>>,
    pub(crate) runner: Arc<Runner>,
}

impl JobBoard {
    pub(crate) fn board(&self) -> Option<Board> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn job(&self, name: &str) -> Option<(Arc<JobState>, Arc<Runner>)> {
        let board = self.board()?;
        let job = board.jobs.iter().find(|j| j.plan.kind.name() == name)?;
        Some((job.clone(), board.runner))
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.board()
            .map(|b| b.jobs.iter().map(|j| j.plan.kind.name()).collect())
            .unwrap_or_default()
    }
}
