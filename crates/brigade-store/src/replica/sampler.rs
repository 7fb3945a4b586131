//! The background task that samples the primary's and the standby's WAL positions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::{Pool, Postgres};
use tokio::sync::watch;

use super::lag::LagTracker;
use super::lsn::Lsn;
use super::{DB_REPLICA_LAG, Health, Shared};

/// How often both servers are sampled: the resolution of the lag, and how soon a standby that
/// came back or caught up serves again. Two one-row queries per interval per process.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A sample that takes longer than this counts as failed (a standby that hangs is down).
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// The primary's flushed position: the standby can replay exactly up to it, so a caught-up
/// standby equals it (the insert position may run ahead by a page header on an idle server).
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint";

/// The standby's replay position. A server that is not in recovery (a standby promoted after a
/// failover, now the primary itself) is as current as its own flushed WAL.
const STANDBY_POSITION: &str = "SELECT (CASE WHEN pg_is_in_recovery() \
     THEN COALESCE(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) \
     ELSE pg_current_wal_flush_lsn() END - '0/0'::pg_lsn)::bigint";

/// Stops the sampler.
#[derive(Debug)]
pub(super) struct Handle {
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Handle {
    /// Asks the task to stop and waits for it.
    pub(super) async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Starts sampling; the task ends when the handle stops it or is dropped.
pub(super) fn start(
    primary: Pool<Postgres>,
    standby: Pool<Postgres>,
    shared: Arc<Shared>,
    max_lag: Duration,
) -> Handle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut tracker = LagTracker::default();
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => return,
            }
            sample(&primary, &standby, &shared, &mut tracker, max_lag).await;
        }
    });
    Handle {
        stop,
        task: std::sync::Mutex::new(Some(task)),
    }
}

/// One sample: updates the standby's health, replay position and lag.
async fn sample(
    primary: &Pool<Postgres>,
    standby: &Pool<Postgres>,
    shared: &Shared,
    tracker: &mut LagTracker,
    max_lag: Duration,
) {
    // The primary first: a standby that has caught up with that position is 0 s behind,
    // even while the primary goes on writing.
    let flushed = position(primary, PRIMARY_POSITION).await;
    let sampled_at = Instant::now();
    let replay = position(standby, STANDBY_POSITION).await;
    if let Ok(replay) = &replay {
        shared.replay.fetch_max(replay.0, Ordering::AcqRel);
    }
    // Without the primary's position the lag is unknown: keep the last judgement. An
    // unreachable standby is judged by the last position it was seen at, so its lag grows
    // while the primary writes (and the lag alert fires for a standby that stays away).
    if let Ok(flushed) = flushed {
        let seen = Lsn(shared.replay.load(Ordering::Acquire));
        let lag = tracker.observe(flushed, seen, sampled_at);
        metrics::gauge!(DB_REPLICA_LAG).set(lag.as_secs_f64());
        if replay.is_ok() {
            judge(shared, lag, max_lag);
        }
    }
    if let Err(error) = replay {
        if shared.health() != Health::Down {
            tracing::warn!(%error, "the standby is unreachable; reads go to the primary");
        }
        shared.health.store(Health::Down as u8, Ordering::Release);
    }
}

/// Marks a reachable standby ready or lagging by `lag`, logging a change.
fn judge(shared: &Shared, lag: Duration, max_lag: Duration) {
    let health = if lag > max_lag {
        Health::Lagging
    } else {
        Health::Ready
    };
    let before = shared.health.swap(health as u8, Ordering::AcqRel);
    if before != health as u8 {
        match health {
            Health::Lagging => tracing::warn!(
                lag_seconds = lag.as_secs_f64(),
                metric = DB_REPLICA_LAG,
                "the standby is behind the bound; reads go to the primary"
            ),
            _ => tracing::info!("the standby serves reads"),
        }
    }
}

/// Why a position could not be read.
#[derive(Debug, thiserror::Error)]
enum Unsampled {
    /// The server refused or failed the query.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Silent(Duration),
}

/// Runs a one-value position query with [`SAMPLE_TIMEOUT`].
async fn position(pool: &Pool<Postgres>, query: &'static str) -> Result<Lsn, Unsampled> {
    let read = tokio::time::timeout(
        SAMPLE_TIMEOUT,
        sqlx::query_scalar::<_, i64>(query).fetch_one(pool),
    );
    match read.await {
        Ok(Ok(position)) => Ok(Lsn(u64::try_from(position).unwrap_or(0))),
        Ok(Err(error)) => Err(Unsampled::Query(error)),
        Err(_) => Err(Unsampled::Silent(SAMPLE_TIMEOUT)),
    }
}
