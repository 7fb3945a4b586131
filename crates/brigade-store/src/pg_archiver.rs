//! The primary's WAL archiving as metrics, so a broken `archive_command` (a full or unreachable
//! backup repository, a wrong credential) is an alert, not a discovery at restore time: while
//! archiving fails, the point-in-time recovery window stops growing and the RPO grows with it.
//!
//! Every replica serving PostgreSQL reads `pg_stat_archiver` every [`SAMPLE_EVERY`] (one
//! small row, readable by any role) and exports it while `archive_mode` is on; the alert
//! `BrigadeWalArchiveFailing` fires when the last attempt failed and none succeeded since.

use std::time::Duration;

use sqlx::{Pool, Postgres};

/// WAL segments archived (the server's `archived_count`).
pub const WAL_ARCHIVED: &str = "brigade_db_wal_archived_total";
/// Failed attempts to archive a segment (the server's `failed_count`).
pub const WAL_ARCHIVE_FAILURES: &str = "brigade_db_wal_archive_failures_total";
/// When a segment was last archived.
pub const WAL_ARCHIVE_LAST_SUCCESS: &str = "brigade_db_wal_archive_last_success_timestamp_seconds";
/// When an attempt last failed.
pub const WAL_ARCHIVE_LAST_FAILURE: &str = "brigade_db_wal_archive_last_failure_timestamp_seconds";

/// How often the archiver's state is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Registers the help texts.
pub fn describe_metrics() {
    metrics::describe_counter!(
        WAL_ARCHIVED,
        "WAL segments the PostgreSQL primary archived (pg_stat_archiver.archived_count), while archive_mode is on."
    );
    metrics::describe_counter!(
        WAL_ARCHIVE_FAILURES,
        "Failed attempts of the PostgreSQL primary to archive a WAL segment (pg_stat_archiver.failed_count)."
    );
    metrics::describe_gauge!(
        WAL_ARCHIVE_LAST_SUCCESS,
        "Unix time the PostgreSQL primary last archived a WAL segment (0: never since its statistics were reset)."
    );
    metrics::describe_gauge!(
        WAL_ARCHIVE_LAST_FAILURE,
        "Unix time an attempt of the PostgreSQL primary to archive a WAL segment last failed (0: never)."
    );
}

/// One reading of `pg_stat_archiver`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ArchiverState {
    /// `archive_mode` is not `off`.
    pub archiving: bool,
    /// Segments archived.
    pub archived: i64,
    /// Failed attempts.
    pub failed: i64,
    /// Unix time of the last success, 0 for never.
    pub last_success: f64,
    /// Unix time of the last failure, 0 for never.
    pub last_failure: f64,
}

/// Reads the archiver's state from the server behind `pool`.
pub async fn read(pool: &Pool<Postgres>) -> Result<ArchiverState, sqlx::Error> {
    sqlx::query_as(
        "SELECT current_setting('archive_mode') <> 'off' AS archiving, \
                archived_count AS archived, failed_count AS failed, \
                coalesce(extract(epoch FROM last_archived_time), 0)::float8 AS last_success, \
                coalesce(extract(epoch FROM last_failed_time), 0)::float8 AS last_failure \
         FROM pg_stat_archiver",
    )
    .fetch_one(pool)
    .await
}

/// Samples until the pool is closed (the store shut down). A server that does not answer is
/// skipped: the database's own alerts and readiness say so.
pub(crate) fn start(pool: Pool<Postgres>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            ticks.tick().await;
            match read(&pool).await {
                Ok(state) if state.archiving => export(&state),
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "pg_stat_archiver could not be read"),
            }
        }
    });
}

fn export(state: &ArchiverState) {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    metrics::counter!(WAL_ARCHIVED).absolute(count(state.archived));
    metrics::counter!(WAL_ARCHIVE_FAILURES).absolute(count(state.failed));
    metrics::gauge!(WAL_ARCHIVE_LAST_SUCCESS).set(state.last_success);
    metrics::gauge!(WAL_ARCHIVE_LAST_FAILURE).set(state.last_failure);
}
