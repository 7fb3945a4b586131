//! The ops API's contract: the answers and requests of `brigade up`'s ops port (default
//! 127.0.0.1:8081) as serde types that the server ([`crate::ops`]) and every client —
//! `brigade status`, `brigade rollout`/`scale`, the drills — compile against.
//!
//! Why a module of `brigade-up` and not a crate of its own: every client already links
//! `brigade-up` (the CLI runs its status view and drills from it), so one public module gives
//! one definition without another crate to keep in step; the balancer's admin API does the same
//! in `brigade_balance::api` and watch's in `brigade_watch::contract`. A field renamed here
//! fails to compile in every reader instead of reading as absent at run time.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::child_state::ChildState;
pub use crate::public::PublicEndpoint;
pub use log_line::LogLine;
pub use traces::{SpanDetail, TraceDetail};

mod log_line;
pub mod traces;

/// `GET /api/status`: what runs, where, in which state, and the recent events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The public address (the balancer).
    pub public: Option<String>,
    /// The public URL (`https://…` when the port speaks TLS) and the certificate it serves:
    /// `public_url` and `public_ca`, what `brigade drill` in another process needs to reach it.
    #[serde(flatten)]
    pub endpoint: Option<PublicEndpoint>,
    /// The balancer's admin address.
    pub balancer_admin: Option<String>,
    /// The watch API address.
    pub watch: Option<String>,
    /// The data directory (absolute): its `demo-accounts.json` is how a local `brigade drill`
    /// logs in without being given a password.
    pub data_dir: Option<PathBuf>,
    /// Every child.
    pub children: Vec<ChildStatus>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
}

impl Status {
    /// The public port as a client reaches it: the endpoint, else plain http at `public`
    /// (an `up` from before TLS).
    pub fn public_endpoint(&self) -> Option<PublicEndpoint> {
        self.endpoint.clone().or_else(|| {
            self.public.as_ref().map(|address| PublicEndpoint {
                url: format!("http://{address}"),
                ca: None,
            })
        })
    }

    /// The replicas of `pool` (`None`: of every pool).
    pub fn replicas<'a>(&'a self, pool: Option<&'a str>) -> impl Iterator<Item = &'a ChildStatus> {
        self.children.iter().filter(move |child| {
            child.service == Service::Serve && pool.is_none_or(|p| child.pool.as_deref() == Some(p))
        })
    }

    /// The child called `instance`.
    pub fn child(&self, instance: &str) -> Option<&ChildStatus> {
        self.children
            .iter()
            .find(|child| child.instance == instance)
    }

    /// The names of the replica pools, sorted, without repeats.
    pub fn pools(&self) -> Vec<String> {
        let mut pools: Vec<String> = self
            .children
            .iter()
            .filter_map(|child| child.pool.clone())
            .collect();
        pools.sort();
        pools.dedup();
        pools
    }
}

/// Which brigade command a child runs (or `postgres`, for the local standby).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// `brigade serve`: a replica.
    Serve,
    /// `brigade balance`: the load balancer.
    Balance,
    /// `brigade watch`: metrics and alerts.
    Watch,
    /// `postgres`: the local streaming standby of `--local-standby`.
    Standby,
}

impl Service {
    /// The subcommand's name, as logs and metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Balance => "balance",
            Self::Watch => "watch",
            Self::Standby => "standby",
        }
    }
}

/// A child as the ops API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildStatus {
    /// What it runs.
    pub service: Service,
    /// Unique name.
    pub instance: String,
    /// Its pool (replicas only).
    pub pool: Option<String>,
    /// Backup replica.
    pub backup: bool,
    /// Where it stands.
    pub state: ChildState,
    /// Where it listens.
    pub address: Option<String>,
    /// Its process id.
    pub pid: Option<u32>,
    /// How often it was restarted.
    pub restarts: u32,
    /// Why it last failed to start or exited: its exit status and last output lines.
    pub last_error: Option<String>,
}

impl ChildStatus {
    /// A primary (not backup) replica that is ready.
    pub fn is_ready_primary(&self) -> bool {
        !self.backup && self.state == ChildState::Ready
    }
}

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    /// Something done as planned.
    Info,
    /// Something went wrong and is being handled.
    Warn,
    /// Something failed.
    Error,
}

impl EventLevel {
    /// The word in the JSON and in the metrics' `level` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// `Info` when `succeeded`, else `Error`.
    pub fn of_outcome(succeeded: bool) -> Self {
        if succeeded { Self::Info } else { Self::Error }
    }
}

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A child answered its readiness check.
    Ready,
    /// A child failed to start.
    Failed,
    /// A child exited unexpectedly.
    Exited,
    /// A child is being started again after a backoff.
    Restarting,
    /// A child exited too often in a short time.
    CrashLoop,
    /// The supervisor is stopping its children.
    Stopping,
    /// Every child stopped.
    Stopped,
    /// A pool was scaled.
    Scale,
    /// A pool's replicas were replaced one at a time.
    Rollout,
    /// The autoscaler changed a pool's size.
    Autoscale,
    /// The link to the database (`brigade drill db-outage`'s proxy) changed.
    DbLink,
    /// The store was lost, restored or could not be.
    Store,
    /// A continuous backup failed.
    Backup,
    /// The off-peak job schedule.
    Jobs,
    /// One off-peak job ran.
    Job,
}

impl EventKind {
    /// The word in the JSON and in the metrics' `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Exited => "exited",
            Self::Restarting => "restarting",
            Self::CrashLoop => "crash_loop",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Scale => "scale",
            Self::Rollout => "rollout",
            Self::Autoscale => "autoscale",
            Self::DbLink => "db_link",
            Self::Store => "store",
            Self::Backup => "backup",
            Self::Jobs => "jobs",
            Self::Job => "job",
        }
    }
}

/// One thing the supervisor did or saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// How much it matters.
    pub level: EventLevel,
    /// What it is about.
    pub kind: EventKind,
    /// The child's instance name (e.g. `serve-orders-2`), if about one.
    pub instance: Option<String>,
    /// Words for people.
    pub message: String,
}

/// Body of `PUT /api/db-link`: cut the database link (true) or mend it (false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Whether the link is cut.
    pub cut: bool,
}

/// The database link of `brigade drill db-outage` as the ops API shows it
/// (`GET`/`PUT /api/db-link`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkView {
    /// How the link cuts the database off.
    pub mode: LinkMode,
    /// The database host:port (relay) or file (lock).
    pub target: String,
    /// Where the replicas connect (relay only).
    pub relay: Option<String>,
    /// Whether the link is cut now.
    pub cut: bool,
    /// Relayed connections open now (relay only).
    pub connections: usize,
    /// Connections accepted since start (relay only).
    pub connections_total: u64,
}

/// How the db-outage link cuts the database off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkMode {
    /// A TCP relay in front of PostgreSQL that stops relaying.
    #[default]
    PostgresRelay,
    /// A transaction that holds the SQLite file's write lock.
    SqliteLock,
}

impl LinkMode {
    /// The word in the JSON and the drill's report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostgresRelay => "postgres-relay",
            Self::SqliteLock => "sqlite-lock",
        }
    }
}

/// The newest backup taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Its file.
    pub path: String,
    /// When the copy was made.
    pub taken_at: DateTime<Utc>,
    /// Copy, verification and rename.
    pub duration_ms: u64,
    /// Its size.
    pub bytes: u64,
}

/// One restore of a lost store, step by step (milliseconds from the moment the loss was seen).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// When the store file was seen gone or replaced.
    pub detected_at: DateTime<Utc>,
    /// Where it stands.
    pub outcome: RestoreOutcome,
    /// The backup put back.
    pub backup: Option<String>,
    /// When that backup was taken.
    pub backup_taken_at: Option<DateTime<Utc>>,
    /// Every replica stopped.
    pub halted_ms: Option<u64>,
    /// The backup verified and in place.
    pub restored_ms: Option<u64>,
    /// Every replica ready again.
    pub ready_ms: Option<u64>,
    /// What happened, in words.
    pub detail: String,
}

/// `GET /api/backups`: the configuration, the newest backup and the restores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackupView {
    /// Continuous backups run.
    pub enabled: bool,
    /// The store file.
    pub database: Option<String>,
    /// Where backups go.
    pub dir: Option<String>,
    /// Seconds between backups.
    pub interval_secs: u64,
    /// Backups kept.
    pub keep: u16,
    /// A lost store is restored.
    pub restore_on_loss: bool,
    /// Backups that succeeded and failed since `up` started.
    pub succeeded: u64,
    /// See `succeeded`.
    pub failed: u64,
    /// The newest backup taken since `up` started.
    pub last_success: Option<BackupRecord>,
    /// Why the last failed backup failed.
    pub last_failure: Option<String>,
    /// Restores since `up` started, oldest first.
    pub restores: Vec<RestoreRecord>,
}

/// Where a restore of a lost store stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// Under way.
    #[default]
    Restoring,
    /// The store is back and every replica ready.
    Succeeded,
    /// It could not be restored; the record's `detail` says why.
    Failed,
}

/// Body of `POST /api/pools/{pool}/rollout`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutRequest {
    /// New replicas run this binary (an upgrade); absent: the current one (a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
}

/// Answer of `POST /api/pools/{pool}/rollout`, once every replica was replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutAnswer {
    /// The pool.
    pub pool: String,
    /// How many replicas were replaced.
    pub replaced: usize,
}

/// Body of `POST /api/pools/{pool}/scale`, and its answer (202: the pool is being scaled).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The number of primary replicas wanted (1 to 64).
    pub replicas: usize,
}

/// Answer of `POST /api/pools/{pool}/scale`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleAnswer {
    /// The pool.
    pub pool: String,
    /// The number of primary replicas it is being scaled to.
    pub replicas: usize,
}

pub use brigade_core::error_event::ErrorKind;

/// Whether an error group needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorGroupState {
    /// Seen and not resolved (or seen again since it was resolved).
    Open,
    /// Marked resolved; seeing it again reopens it.
    Resolved,
}

impl ErrorGroupState {
    /// The word in the JSON and the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// Errors of one cause, grouped by fingerprint (`GET /api/errors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorGroup {
    /// 16 hex digits from the kind, the normalized message and the top frames (or the route).
    pub fingerprint: String,
    /// What kind of error.
    pub kind: ErrorKind,
    /// The message with numbers, ids and UUIDs masked: what every error of the group says.
    pub title: String,
    /// The latest error's message as it was logged.
    pub message: String,
    /// The route template or page path of the latest error, if any.
    pub route: Option<String>,
    /// The top frames of the latest error, innermost first.
    pub frames: Vec<String>,
    /// The service that logged the latest error (`serve`, `balance`, `watch`).
    pub service: String,
    /// Errors seen since the group was created.
    pub count: u64,
    /// When the first was seen.
    pub first_seen: DateTime<Utc>,
    /// When the latest was seen.
    pub last_seen: DateTime<Utc>,
    /// The release (binary version) of the latest error.
    pub release: String,
    /// Trace ids of the latest errors (at most 5, newest last).
    pub trace_ids: Vec<String>,
    /// Open or resolved.
    pub state: ErrorGroupState,
    /// When it was last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Times it came back after being resolved.
    pub reopened: u32,
}

/// Answer of `GET /api/errors[?state=open|resolved]`: groups, most recently seen first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorGroupList {
    /// The groups.
    pub groups: Vec<ErrorGroup>,
    /// The most groups kept; beyond it the group seen longest ago (resolved ones first) goes.
    pub capacity: usize,
    /// Groups dropped to stay within `capacity` since `up` started.
    pub evicted: u64,
}
