//! The restore drill on PostgreSQL: the standard load against a `brigade up` whose store is a
//! PostgreSQL cluster backed up with pgBackRest (`brigade backup`), then the cluster's disk
//! lost — the server stopped at once (`pg_ctl stop -m immediate`) and everything in
//! `backup.pg_data` deleted — and the runbook's steps done by the drill itself: pgBackRest
//! restores the newest backup and the archived WAL to its end (`brigade restore`'s code), the
//! server starts as it ran before and opens for writes. The replicas are not touched: they
//! must find the database again by themselves.
//!
//! The fault comes once WAL written during the load has been archived, and then most of
//! `archive_timeout` later (near the worst case, as on SQLite). RTO and RPO are measured as on
//! SQLite ([`super::restore`]); the bound on lost orders is the archive's coverage at the
//! fault ([`super::wal_marks`]): every order acknowledged before the newest archived WAL
//! segment must be back. With `archive_timeout` ≤ 60 s the archive is never more than about a
//! minute behind, so the RPO stays within its target.
//!
//! The drill runs where the cluster runs, as its OS user (the rule of `brigade restore`), with
//! the same `DATABASE_URL` and `[backup]` settings; what is missing is refused before the load
//! starts, naming the key.

use std::time::{Duration, Instant};

use brigade_core::Settings;
use brigade_core::config::DatabaseKind;
use brigade_store::pg_backup::{self, PitrError, Plan, RestoreTarget, Server};

pub use super::checks::PgSteps;
use super::client;
use super::load::{Load, Phase};
use super::report::{Claim, Report};
use super::restore::{self, Moments, RPO_TARGET, RTO_TARGET};
use super::wal_marks::{Mark, WalMarks};
use super::{DrillError, DrillOptions};
use crate::api::{RestoreOutcome, RestoreRecord, Status};

/// The pgBackRest plan when the drill's settings name a PostgreSQL store; `None` on SQLite.
pub fn plan() -> Result<Option<Plan>, DrillError> {
    let settings = Settings::load(None).map_err(|e| DrillError::Setup(format!("settings: {e}")))?;
    if settings.storage.database_kind() != Some(DatabaseKind::Postgres) {
        return Ok(None);
    }
    Plan::from_settings(&settings).map(Some).map_err(pitr_error)
}

/// Refuses, before anything happens, what would make the restore fail once the disk is gone:
/// a missing setting, another OS user than the cluster's, no `pg_ctl`.
pub fn preflight() -> Result<(), DrillError> {
    match plan()? {
        Some(plan) => Server::of(&plan).map(drop).map_err(pitr_error),
        None => Ok(()),
    }
}

/// pgBackRest's and pg_ctl's errors as the drill's: a setting's stays one (exit 2).
fn pitr_error(error: PitrError) -> DrillError {
    match error {
        PitrError::Setting { key, message } => DrillError::Setting { key, message },
        PitrError::Program { .. } => DrillError::Setting {
            key: "backup.pgbackrest",
            message: error.to_string(),
        },
        other => DrillError::Setup(other.to_string()),
    }
}

/// Runs the drill against the `up` at `options.ops`, whose store is the cluster of `plan`.
pub async fn run(options: &DrillOptions, plan: Plan) -> Result<Report, DrillError> {
    let server = Server::of(&plan).map_err(pitr_error)?;
    let (
        client::Start {
            status,
            public,
            http,
        },
        token,
    ) = client::start_as_customer(&options.ops, options.password.clone()).await?;
    let newest = newest_backup(&plan).await?;
    let target = super::resources::target(&http, &public, token.clone()).await?;
    let started_at = chrono::Utc::now();
    let replicas = replica_pids(&status);

    let marks = WalMarks::start(&plan.database_url)?;
    let load_started = Instant::now();
    let load = Load::start(http.clone(), target.clone(), options.clients);
    tokio::time::sleep(options.phase).await;
    let archived = match near_worst_case(&marks, load_started, plan.archive_timeout_secs).await {
        Ok(mark) => mark,
        Err(error) => {
            load.stop().await;
            return Err(error);
        }
    };
    marks.stop();
    load.enter(Phase::During);
    let fault = Instant::now();
    let fault_at = chrono::Utc::now();
    let (mut steps, failure) = lose_and_restore(&plan, &server, fault).await;
    let serving = failure.is_none() && restore::serving_again(&http, &target).await;
    let rto = fault.elapsed();
    let back = Instant::now();
    load.enter(Phase::After);
    tokio::time::sleep(options.phase).await;
    let samples = load.stop().await;
    let mut samples = samples.lock().await;

    steps.archive_timeout_secs = plan.archive_timeout_secs;
    steps.archived_wal = Some(archived.segment.clone());
    steps.replicas_restarted = restarted_since(&http, &options.ops, &replicas).await;
    let record = record(fault_at, newest, &steps, failure);
    let orders = client::reconcile(&http, &public, &token, samples.acknowledged.clone()).await;
    let moments = Moments {
        fault,
        fault_at,
        back,
        rto,
    };
    let mut check = restore::measure(
        plan.pg_data.display().to_string(),
        Duration::ZERO,
        bound(&archived, fault),
        &record,
        &samples,
        &orders,
        &moments,
    );
    check.postgres = Some(steps);
    let alerts = client::fired_alerts(&http, status.watch.as_deref(), started_at).await;
    let restored = serving && record.outcome == RestoreOutcome::Succeeded;
    let reconnected = reconnected(&check);
    let mut report = restore::report(
        &options.name,
        &mut samples,
        &orders,
        rto,
        alerts,
        check,
        restored,
    );
    report.claims.push(reconnected);
    report.claims.push(only_unavailable(&report));
    Ok(report)
}

/// Waits for the moment of the fault; the newest mark the archive covers then.
///
/// The drill is about orders that reached the archive and orders that did not, so it first
/// waits until a segment written during the load was archived; then, as on SQLite, it lets
/// most of `archive_timeout` pass (a forced switch ships the next segment at the latest then),
/// so the fault comes near the worst case the setting allows — unless the load fills a
/// segment sooner, which is what a busy store does.
async fn near_worst_case(
    marks: &WalMarks,
    load_started: Instant,
    archive_timeout_secs: u32,
) -> Result<Mark, DrillError> {
    let archive_timeout = Duration::from_secs(u64::from(archive_timeout_secs));
    let limit = 2 * archive_timeout + Duration::from_secs(30);
    let first = marks
        .wait_archived(load_started, limit)
        .await
        .map_err(|last| {
            DrillError::Setup(format!(
                "no WAL written during the load was archived within {} s ({last}): is \
                 archiving on? brigade backup sets it up",
                limit.as_secs()
            ))
        })?;
    tokio::time::sleep(archive_timeout.mul_f64(restore::WORST_CASE_SHARE)).await;
    Ok(marks.archived().await.ok().flatten().unwrap_or(first))
}

/// Orders acknowledged this long before the fault must be back: the archive covered them
/// (never more than the RPO target).
fn bound(archived: &Mark, fault: Instant) -> Duration {
    fault.duration_since(archived.at).min(RPO_TARGET)
}

/// The newest backup in the repository and when it finished; the drill needs one.
async fn newest_backup(
    plan: &Plan,
) -> Result<(String, Option<chrono::DateTime<chrono::Utc>>), DrillError> {
    let info = pg_backup::info(plan).await.map_err(pitr_error)?;
    let backup = info.backup.last().ok_or_else(|| {
        DrillError::Setup(format!(
            "no backup in {} (stanza {}): take one with brigade backup first",
            plan.repo.display(),
            plan.stanza
        ))
    })?;
    let taken = chrono::DateTime::from_timestamp(backup.timestamp.stop, 0);
    Ok((backup.label.clone(), taken))
}

/// The fault and the runbook: stop the server at once, delete the data directory's contents,
/// restore to the end of the archived WAL, start the server, wait until it opens for writes.
/// The steps done (milliseconds after `fault`) and, when one failed, why.
async fn lose_and_restore(
    plan: &Plan,
    server: &Server,
    fault: Instant,
) -> (PgSteps, Option<String>) {
    let mut steps = PgSteps {
        server_log: server.log.display().to_string(),
        ..PgSteps::default()
    };
    let since = |_: ()| Some(fault.elapsed().as_millis() as u64);
    let outcome = async {
        steps.stopped_ms = server.stop_immediately().await.map(since)?;
        steps.deleted_ms = pg_backup::empty_data_dir(&plan.pg_data).map(since)?;
        pg_backup::restore(plan, RestoreTarget::Latest).await?;
        steps.restored_ms = since(());
        steps.started_ms = server.start().await.map(since)?;
        steps.open_ms = pg_backup::wait_open(&plan.database_url, 2 * RTO_TARGET)
            .await
            .map(since)?;
        Ok::<(), PitrError>(())
    }
    .await;
    (steps, outcome.err().map(|e| e.to_string()))
}

/// The restore in the shape `up` reports its own on SQLite, so the measurement is shared.
fn record(
    fault_at: chrono::DateTime<chrono::Utc>,
    (label, taken): (String, Option<chrono::DateTime<chrono::Utc>>),
    steps: &PgSteps,
    failure: Option<String>,
) -> RestoreRecord {
    let (outcome, detail) = match failure {
        None => (
            RestoreOutcome::Succeeded,
            format!("backup {label} and the archived WAL replayed to its end"),
        ),
        Some(why) => (RestoreOutcome::Failed, why),
    };
    RestoreRecord {
        detected_at: fault_at,
        outcome,
        backup: Some(label),
        backup_taken_at: taken,
        halted_ms: steps.stopped_ms,
        restored_ms: steps.restored_ms,
        ready_ms: steps.open_ms,
        detail,
    }
}

/// Each replica's instance, process and restart count.
fn replica_pids(status: &Status) -> Vec<(String, Option<u32>, u32)> {
    status
        .replicas(None)
        .map(|c| (c.instance.clone(), c.pid, c.restarts))
        .collect()
}

/// The replicas restarted or replaced since `before`, as `up` shows them now.
async fn restarted_since(
    http: &reqwest::Client,
    ops: &str,
    before: &[(String, Option<u32>, u32)],
) -> Vec<String> {
    match client::status(http, ops).await {
        Ok(now) => restarted(before, &replica_pids(&now)),
        Err(error) => vec![format!("status unreadable: {error}")],
    }
}

/// Replicas still there whose process changed (restarted or replaced) since `before`.
fn restarted(
    before: &[(String, Option<u32>, u32)],
    after: &[(String, Option<u32>, u32)],
) -> Vec<String> {
    before
        .iter()
        .filter(|(instance, pid, restarts)| {
            after
                .iter()
                .find(|(i, _, _)| i == instance)
                .is_some_and(|(_, p, r)| p != pid || r != restarts)
        })
        .map(|(instance, _, _)| instance.clone())
        .collect()
}

/// While the database is gone a replica answers 503 (retry later), never 500: a broken
/// connection is the database's absence, not a fault of the request.
fn only_unavailable(report: &Report) -> Claim {
    let other: Vec<String> = report
        .failed_statuses
        .iter()
        .flat_map(|phase| phase.iter())
        .filter(|(status, _)| status.as_str() != "503")
        .map(|(status, n)| format!("{n} × {status}"))
        .collect();
    Claim::new(
        "requests failed only with 503 while the cluster was lost",
        other.is_empty(),
        if other.is_empty() {
            format!("{} failed, all 503", report.failed)
        } else {
            format!("also {}", other.join(", "))
        },
    )
}

fn reconnected(check: &restore::RestoreCheck) -> Claim {
    let restarted = check
        .postgres
        .as_ref()
        .map(|pg| pg.replicas_restarted.clone())
        .unwrap_or_default();
    Claim::new(
        "the replicas reconnected without being restarted",
        restarted.is_empty(),
        if restarted.is_empty() {
            "every replica kept its process".to_owned()
        } else {
            format!("restarted: {}", restarted.join(", "))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_with_a_new_process_counts_as_restarted() {
        let before = vec![
            ("serve-orders-1".to_owned(), Some(10), 0),
            ("serve-orders-2".to_owned(), Some(11), 0),
            ("serve-orders-3".to_owned(), Some(12), 0),
        ];
        let after = vec![
            ("serve-orders-1".to_owned(), Some(10), 0),
            ("serve-orders-2".to_owned(), Some(20), 1),
            ("serve-orders-4".to_owned(), Some(13), 0),
        ];
        assert_eq!(restarted(&before, &after), ["serve-orders-2"]);
        assert!(restarted(&before, &before).is_empty());
    }
}
