//! What the drills measured, as their reports carry it: the types of the report
//! (`report`), filled in by the drills that measure them (`processes`, `restore`,
//! `restore_pg`), kept apart from both so that neither depends on the other.

use serde::Serialize;

/// What a process fault measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessCheck {
    /// The killed child.
    pub instance: String,
    /// From the SIGKILL until the public port (kill-balancer) or watch (kill-watch) answered a
    /// request again.
    pub back_ms: u128,
    /// Probe connections refused meanwhile.
    pub refused: usize,
}

/// What the restore drill measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreCheck {
    /// The store file deleted.
    pub database: String,
    /// `up`'s time between backups.
    pub backup_interval_secs: u64,
    /// The backup `up` restored, and its age when the store was deleted.
    pub backup: Option<String>,
    /// See `backup`.
    pub backup_age_ms: Option<i64>,
    /// Fault → replicas ready and an order acknowledged.
    pub rto_ms: u128,
    /// Fault → the loss noticed, the replicas stopped, the backup in place, every replica
    /// ready (`up`'s own timings, from the moment it noticed).
    pub detected_ms: u128,
    /// See `detected_ms`.
    pub steps_ms: [Option<u64>; 3],
    /// The span of acknowledged orders lost: fault − the oldest lost one's acknowledgement.
    pub rpo_ms: u128,
    /// Acknowledged orders missing after the restore.
    pub rpo_orders: usize,
    /// Of those, acknowledged after the deletion (written into the lost file).
    pub lost_after_fault: usize,
    /// Orders must be back when acknowledged this long before the fault.
    pub bound_ms: u128,
    /// Missing orders acknowledged earlier than `bound_ms` before the fault. Must be 0.
    pub lost_beyond_bound: usize,
    /// Missing orders acknowledged after the restore. Must be 0.
    pub lost_after_restore: usize,
    /// The supervisor's account of the restore.
    pub outcome: String,
    /// On PostgreSQL: the restore's steps and the archive's coverage at the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgSteps>,
}

/// The PostgreSQL restore's steps, milliseconds after the fault, and the archive's coverage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgSteps {
    /// `archive_timeout` brigade set on the server.
    pub archive_timeout_secs: u32,
    /// The newest archived segment covering the load before the fault.
    pub archived_wal: Option<String>,
    /// The server stopped (`pg_ctl stop -m immediate`).
    pub stopped_ms: Option<u64>,
    /// The data directory emptied.
    pub deleted_ms: Option<u64>,
    /// pgBackRest wrote the data directory back.
    pub restored_ms: Option<u64>,
    /// The server accepts connections (`pg_ctl start -w`).
    pub started_ms: Option<u64>,
    /// WAL replayed to the end of the archive; the server is open for writes.
    pub open_ms: Option<u64>,
    /// Replicas that were restarted or replaced meanwhile (none: they reconnected).
    pub replicas_restarted: Vec<String>,
    /// The started server's output.
    pub server_log: String,
}
