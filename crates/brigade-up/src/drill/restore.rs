//! The restore drill (`brigade drill restore`, SQLite; PostgreSQL in [`super::restore_pg`],
//! which reuses the measurement and the claims here): the standard load, then the store file
//! and its WAL deleted mid-run, as a lost disk would — once a backup with some of the load's
//! orders exists, when it is 0.8 intervals old (near the worst case, just before the next
//! backup). `brigade up` notices, kills the replicas,
//! puts the newest verified backup back and starts them again ([`crate::backups`]); the drill
//! measures:
//!
//! - **RTO**: from the deletion until the replicas are ready again and an order is acknowledged;
//! - **RPO**: the acknowledged orders missing after the restore, and the time they span — from
//!   the oldest one acknowledged before the fault to the fault itself. Orders the replicas
//!   acknowledged after the deletion, into a file nobody can read any more, are missing too
//!   and counted apart.
//!
//! Every order a client saw acknowledged is read back; those older than the bound the backup
//! interval promises (two intervals and two seconds, at most the one-minute target) must all be
//! there, and so must every order acknowledged after the restore.

use std::time::{Duration, Instant};

use crate::api::{BackupView, RestoreOutcome, RestoreRecord};

pub use super::checks::RestoreCheck;
use super::client::{self, answer_of};
use super::load::{Load, Phase, Samples, Target};
use super::report::{Claim, Report};
use super::{DrillError, DrillOptions};

/// The drill's name.
pub const NAME: &str = "restore";
/// Recovery time objective: fault to serving again.
pub const RTO_TARGET: Duration = Duration::from_secs(60);
/// Recovery point objective: the span of acknowledged orders a loss may take.
pub const RPO_TARGET: Duration = Duration::from_secs(60);
/// How old the newest backup is when the store is deleted, in backup intervals.
pub(super) const WORST_CASE_SHARE: f64 = 0.8;

impl RestoreCheck {
    /// The two lines scripts read, targets beside them.
    pub fn summary(&self) -> String {
        format!(
            "RTO: {:.1} s   target <= {} s\nRPO: {:.1} s ({} acknowledged orders)   target <= {} s\n",
            self.rto_ms as f64 / 1000.0,
            RTO_TARGET.as_secs(),
            self.rpo_ms as f64 / 1000.0,
            self.rpo_orders,
            RPO_TARGET.as_secs()
        )
    }
}

/// Runs the drill against the `up` at `options.ops`, on SQLite (`restore_pg` runs it on
/// PostgreSQL; `super::run` chooses).
pub async fn run(options: &DrillOptions) -> Result<Report, DrillError> {
    let (
        client::Start {
            status,
            public,
            http,
        },
        token,
    ) = client::start_as_customer(&options.ops, options.password.clone()).await?;
    let backups = restoring_backups(&http, &options.ops).await?;
    let database = backups.database.unwrap_or_default();
    let interval = Duration::from_secs(backups.interval_secs);
    let target = super::resources::target(&http, &public, token.clone()).await?;
    let started_at = chrono::Utc::now();

    let load = Load::start(http.clone(), target.clone(), options.clients);
    tokio::time::sleep(options.phase).await;
    // The drill is about the newest backup, so there must be one with some of its orders; the
    // store is then deleted when that backup is most of an interval old, just before the next
    // one — near the worst case the interval allows.
    let newest = match backup_since(&http, &options.ops, started_at, interval).await {
        Ok(newest) => newest,
        Err(error) => {
            load.stop().await;
            return Err(error);
        }
    };
    let late =
        newest + chrono::Duration::from_std(interval.mul_f64(WORST_CASE_SHARE)).unwrap_or_default();
    if let Ok(wait) = (late - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    load.enter(Phase::During);
    let fault = Instant::now();
    let fault_at = chrono::Utc::now();
    if let Err(error) = delete_store(&database) {
        load.stop().await;
        return Err(error);
    }
    let restored = restored(&http, &options.ops, fault_at).await;
    let serving = restored.is_ok() && serving_again(&http, &target).await;
    let rto = fault.elapsed();
    let back = Instant::now();
    load.enter(Phase::After);
    tokio::time::sleep(options.phase).await;
    let samples = load.stop().await;
    let mut samples = samples.lock().await;
    let record = restored.unwrap_or_else(|missing| RestoreRecord {
        outcome: RestoreOutcome::Failed,
        detail: missing.to_string(),
        ..RestoreRecord::default()
    });

    let orders = client::reconcile(&http, &public, &token, samples.acknowledged.clone()).await;
    let moments = Moments {
        fault,
        fault_at,
        back,
        rto,
    };
    let bound = (2 * interval + Duration::from_secs(2)).min(RPO_TARGET);
    let check = measure(
        database, interval, bound, &record, &samples, &orders, &moments,
    );
    let alerts = client::fired_alerts(&http, status.watch.as_deref(), started_at).await;
    let restored = serving && record.outcome == RestoreOutcome::Succeeded;
    Ok(report(
        &options.name,
        &mut samples,
        &orders,
        rto,
        alerts,
        check,
        restored,
    ))
}

/// The report both restore drills (SQLite and PostgreSQL) end with: the load's numbers with the
/// outage as the fault, the alerts watch fired, the restore's measurements and their claims
/// (`restored`: the store came back and the replicas serve again).
pub(super) fn report(
    drill: &str,
    samples: &mut Samples,
    orders: &client::Reconciled,
    rto: Duration,
    alerts: Vec<String>,
    check: RestoreCheck,
    restored: bool,
) -> Report {
    let mut report = Report::of_load(drill, samples, orders, rto.as_millis(), rto.as_millis());
    report.alerts = alerts;
    report.claims = claims(&report, &check, restored);
    report.restore = Some(check);
    report
}

/// The continuous backups of the `up` at `ops`, refused unless they restore a lost store.
async fn restoring_backups(http: &reqwest::Client, ops: &str) -> Result<BackupView, DrillError> {
    let backups = backups(http, ops).await?;
    if !backups.enabled || !backups.restore_on_loss {
        return Err(DrillError::Setup(
            "restore needs brigade up on SQLite with continuous backups that restore a lost \
             store: up.toml [backup] interval_secs > 0 and restore_on_loss = true (the defaults); \
             for brigade up on PostgreSQL, run the drill with its DATABASE_URL and [backup] \
             settings, as the cluster's OS user"
                .into(),
        ));
    }
    Ok(backups)
}

/// When the drill's events happened.
#[derive(Clone, Copy)]
pub(super) struct Moments {
    /// The store was deleted.
    pub fault: Instant,
    /// The same, on the wall clock (`up`'s records are in UTC).
    pub fault_at: chrono::DateTime<chrono::Utc>,
    /// An order was acknowledged again.
    pub back: Instant,
    /// `back - fault`.
    pub rto: Duration,
}

/// RTO, RPO and the lost orders, from the clients' acknowledgements, the orders read back and
/// the record of the restore. Orders acknowledged more than `bound` before the fault must all
/// be back (what the backup interval, or the WAL archive's coverage, promises).
pub(super) fn measure(
    database: String,
    interval: Duration,
    bound: Duration,
    record: &RestoreRecord,
    samples: &Samples,
    orders: &client::Reconciled,
    moments: &Moments,
) -> RestoreCheck {
    let Moments {
        fault,
        fault_at,
        back,
        rto,
    } = *moments;
    let acknowledged_at = |id: &String| {
        samples
            .acknowledged
            .iter()
            .position(|a| a == id)
            .map(|i| samples.acknowledged_at[i])
    };
    let lost_at: Vec<Instant> = orders.missing.iter().filter_map(acknowledged_at).collect();
    let oldest = lost_at.iter().filter(|at| **at < fault).min();
    RestoreCheck {
        database,
        backup_interval_secs: interval.as_secs(),
        backup: record.backup.clone(),
        backup_age_ms: record
            .backup_taken_at
            .map(|t| (fault_at - t).num_milliseconds()),
        rto_ms: rto.as_millis(),
        detected_ms: (record.detected_at - fault_at).num_milliseconds().max(0) as u128,
        steps_ms: [record.halted_ms, record.restored_ms, record.ready_ms],
        rpo_ms: oldest.map_or(0, |at| fault.duration_since(*at).as_millis()),
        rpo_orders: orders.lost,
        lost_after_fault: lost_at.iter().filter(|at| **at >= fault).count(),
        bound_ms: bound.as_millis(),
        lost_beyond_bound: lost_at
            .iter()
            .filter(|at| fault.duration_since(**at) > bound)
            .count(),
        lost_after_restore: lost_at.iter().filter(|at| **at >= back).count(),
        outcome: record.detail.clone(),
        postgres: None,
    }
}

/// `GET /api/backups` of the ops API.
async fn backups(http: &reqwest::Client, ops: &str) -> Result<BackupView, DrillError> {
    answer_of(http.get(format!("http://{ops}/api/backups")).send().await).await
}

/// Waits (up to three intervals and half a minute) for a backup taken after `since`; when
/// the newest one was taken.
async fn backup_since(
    http: &reqwest::Client,
    ops: &str,
    since: chrono::DateTime<chrono::Utc>,
    interval: Duration,
) -> Result<chrono::DateTime<chrono::Utc>, DrillError> {
    let deadline = Instant::now() + 3 * interval + Duration::from_secs(30);
    while Instant::now() < deadline {
        let view = backups(http, ops).await?;
        let taken = view.last_success.map(|backup| backup.taken_at);
        if let Some(taken) = taken.filter(|t| *t >= since) {
            return Ok(taken);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let view = backups(http, ops).await.unwrap_or_default();
    Err(DrillError::Setup(format!(
        "brigade up took no backup during the load (last failure: {})",
        view.last_failure.as_deref().unwrap_or("none")
    )))
}

/// Deletes the store file and its WAL files, as a lost disk would take them.
fn delete_store(database: &str) -> Result<(), DrillError> {
    if database.is_empty() {
        return Err(DrillError::Setup(
            "brigade up names no store file in /api/backups".into(),
        ));
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{database}{suffix}");
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(e) => return Err(DrillError::Setup(format!("cannot delete {path}: {e}"))),
        }
    }
    Ok(())
}

/// Waits (twice the RTO target at most) for `up`'s record of a restore begun after `fault`
/// that has finished; the record, or why there is none.
async fn restored(
    http: &reqwest::Client,
    ops: &str,
    fault: chrono::DateTime<chrono::Utc>,
) -> Result<RestoreRecord, NotRestored> {
    let deadline = Instant::now() + 2 * RTO_TARGET;
    while Instant::now() < deadline {
        if let Ok(view) = backups(http, ops).await
            && let Some(record) = view.restores.last()
            && record.detected_at >= fault - chrono::Duration::seconds(1)
            && record.outcome != RestoreOutcome::Restoring
        {
            return Ok(record.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(NotRestored {
        within_secs: (2 * RTO_TARGET).as_secs(),
    })
}

/// No finished restore was recorded in time.
#[derive(Debug, thiserror::Error)]
#[error("brigade up did not restore the store within {within_secs} s")]
struct NotRestored {
    /// How long the drill waited.
    within_secs: u64,
}

/// Places orders until one is acknowledged (within the RTO target).
pub(super) async fn serving_again(http: &reqwest::Client, target: &Target) -> bool {
    let deadline = Instant::now() + RTO_TARGET;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let placed = http
            .post(&target.orders_url)
            .bearer_auth(&target.token)
            .header("idempotency-key", format!("{}-back-{n}", target.key_prefix))
            .json(&target.order)
            .send()
            .await;
        if placed.is_ok_and(|r| r.status().as_u16() == 201) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub(super) fn claims(report: &Report, check: &RestoreCheck, restored: bool) -> Vec<Claim> {
    let secs = |ms: u128| ms as f64 / 1000.0;
    let (what, covered) = match &check.postgres {
        Some(pg) => (
            "the cluster was restored from the repository to the end of the archived WAL",
            format!(
                "{} missing; the archive held the WAL up to {:.1} s before the fault ({})",
                check.lost_beyond_bound,
                secs(check.bound_ms),
                pg.archived_wal.as_deref().unwrap_or("no segment")
            ),
        ),
        None => (
            "the store was restored from a verified backup",
            format!(
                "{} missing; the backup restored was {:.1} s old",
                check.lost_beyond_bound,
                check.backup_age_ms.unwrap_or(-1) as f64 / 1000.0
            ),
        ),
    };
    vec![
        Claim::new(
            what,
            restored,
            format!(
                "{} ({})",
                check.backup.as_deref().unwrap_or("no backup"),
                check.outcome
            ),
        ),
        Claim::new(
            format!("RTO <= {} s", RTO_TARGET.as_secs()),
            restored && check.rto_ms <= RTO_TARGET.as_millis(),
            format!(
                "{:.1} s from the deletion to an acknowledged order",
                secs(check.rto_ms)
            ),
        ),
        Claim::new(
            format!("RPO <= {} s", RPO_TARGET.as_secs()),
            check.rpo_ms <= RPO_TARGET.as_millis(),
            format!(
                "{:.1} s of acknowledged orders lost ({} orders, {} of them acknowledged after \
                 the deletion)",
                secs(check.rpo_ms),
                check.rpo_orders,
                check.lost_after_fault
            ),
        ),
        Claim::new(
            format!(
                "every order acknowledged more than {:.0} s before the fault came back",
                secs(check.bound_ms)
            ),
            check.lost_beyond_bound == 0,
            covered,
        ),
        Claim::new(
            "every order acknowledged after the restore is there",
            check.lost_after_restore == 0,
            format!("{} missing", check.lost_after_restore),
        ),
        Claim::new(
            "no order placed twice",
            report.duplicated == 0,
            format!("{} duplicated", report.duplicated),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lines_are_the_ones_scripts_read() {
        let check = RestoreCheck {
            rto_ms: 4_260,
            rpo_ms: 1_049,
            rpo_orders: 17,
            ..RestoreCheck::default()
        };
        let summary = check.summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines[0], "RTO: 4.3 s   target <= 60 s");
        assert_eq!(
            lines[1],
            "RPO: 1.0 s (17 acknowledged orders)   target <= 60 s"
        );
    }
}
