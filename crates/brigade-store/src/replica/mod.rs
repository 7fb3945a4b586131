//! Read replicas: stale-tolerant reads served by a PostgreSQL streaming standby.
//!
//! Only four reads may go to the standby: menus, shop lists, order lists and reports
//! (`Catalogue::menu`, `Catalogue::list_shops`, `Orders::list_orders`, `Reports::daily_sales`).
//! Everything else — every write and what a write reads in its transaction, accounts and
//! sessions, idempotency keys, payments, single orders — uses the primary. Each of the four
//! is routed per call ([`Replica::route`]):
//!
//! 1. a caller that pinned the primary ([`ReadScope::Primary`], e.g. a cache fill) reads it;
//! 2. a standby that is down, or failed a read less than [`BACKOFF`] ago, is skipped;
//! 3. a standby further behind than `storage.read_max_lag_ms` is skipped (see [`lag`]);
//! 4. a caller that wrote at position *p* ([`ReadScope::After`]) reads the standby only once
//!    its sampled replay position is at or past *p*: it reads its own writes;
//! 5. otherwise the standby serves, and should it fail the call is retried on the primary.
//!
//! Every routed read is counted in `brigade_db_reads_total{target, reason}`; the sampler keeps
//! `brigade_db_replica_lag_seconds`.

mod lag;
mod lsn;
mod sampler;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brigade_core::config::StorageSettings;
use sqlx::{Pool, Postgres};

pub use lsn::{InvalidLsn, Lsn, ReadScope, current_read_scope, with_read_scope};

use crate::StoreError;

/// Reads by where they went and why.
pub const DB_READS: &str = "brigade_db_reads_total";
/// How far the standby is behind the primary.
pub const DB_REPLICA_LAG: &str = "brigade_db_replica_lag_seconds";
/// The lag bound beyond which the standby is skipped (`storage.read_max_lag_ms`), exported so
/// that the alert compares each replica's lag with its own bound.
pub const DB_REPLICA_MAX_LAG: &str = "brigade_db_replica_max_lag_seconds";

/// How long a standby that failed a read is skipped before it is tried again (the sampler may
/// find it healthy sooner or later than that; whichever is later wins).
pub const BACKOFF: Duration = Duration::from_secs(1);

/// Describes the replica metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        DB_READS,
        "Stale-tolerant reads by target (primary, standby) and reason: within_bound (standby \
         served), pinned (caller needs the primary), read_after (standby not yet past the \
         caller's write), lagging, standby_down, standby_error (failed on the standby, retried \
         on the primary)."
    );
    metrics::describe_gauge!(
        DB_REPLICA_LAG,
        metrics::Unit::Seconds,
        "How long ago the primary first stood past the standby's replay position (0 when caught up)."
    );
    metrics::describe_gauge!(
        DB_REPLICA_MAX_LAG,
        metrics::Unit::Seconds,
        "Lag beyond which the standby is skipped and reads go to the primary."
    );
}

/// Where one read goes and why: the `target` and `reason` labels of [`DB_READS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The standby serves it.
    Standby,
    /// The primary serves it.
    Primary(Reason),
}

/// Why a read went to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The caller pinned the primary.
    Pinned,
    /// The standby has not replayed the caller's last write yet.
    ReadAfter,
    /// The standby is further behind than the bound.
    Lagging,
    /// The standby is unreachable (or not sampled yet).
    StandbyDown,
    /// The standby failed this read; it was retried on the primary.
    StandbyError,
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::Pinned,
        Reason::ReadAfter,
        Reason::Lagging,
        Reason::StandbyDown,
        Reason::StandbyError,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::ReadAfter => "read_after",
            Self::Lagging => "lagging",
            Self::StandbyDown => "standby_down",
            Self::StandbyError => "standby_error",
        }
    }
}

/// What the sampler last learnt about the standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Health {
    /// Not sampled yet.
    Unknown = 0,
    /// Reachable and within the lag bound.
    Ready = 1,
    /// Reachable but further behind than the bound.
    Lagging = 2,
    /// Unreachable.
    Down = 3,
}

/// The standby's state, shared by the routers of every call and the sampler.
#[derive(Debug)]
struct Shared {
    /// A [`Health`].
    health: AtomicU8,
    /// The standby's replay position at the last sample. Replay only moves forward, so a
    /// sampled value is at most behind the truth: comparing a fence with it can only send a
    /// read to the primary needlessly, never to a standby that lacks the write.
    replay: AtomicU64,
    /// Milliseconds after `epoch` before which the standby is skipped after a failed read.
    skip_until_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn health(&self) -> Health {
        match self.health.load(Ordering::Acquire) {
            1 => Health::Ready,
            2 => Health::Lagging,
            3 => Health::Down,
            _ => Health::Unknown,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The standby of a [`PostgresStore`](crate::PostgresStore) and what is known about it.
#[derive(Debug)]
pub(crate) struct Replica {
    pub(crate) standby: Pool<Postgres>,
    shared: Arc<Shared>,
    sampler: sampler::Handle,
}

impl Replica {
    /// Opens the standby's pool lazily, so that a standby down at start delays nothing (reads
    /// go to the primary until it answers), and starts sampling it against `primary`.
    pub(crate) fn start(
        read_url: &str,
        settings: &StorageSettings,
        primary: Pool<Postgres>,
    ) -> Result<Self, StoreError> {
        // A read waits at most this long for a standby connection before it is retried on
        // the primary; connection refusals fail at once anyway.
        let acquire = Duration::from_millis(settings.acquire_timeout_ms.min(1_000));
        let standby = crate::pool_options::<Postgres>(settings)
            .min_connections(0)
            .acquire_timeout(acquire)
            .connect_lazy(read_url)
            .map_err(crate::error::classify)?;
        let shared = Arc::new(Shared {
            health: AtomicU8::new(Health::Unknown as u8),
            replay: AtomicU64::new(0),
            skip_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let max_lag = Duration::from_millis(settings.read_max_lag_ms);
        metrics::gauge!(DB_REPLICA_MAX_LAG).set(max_lag.as_secs_f64());
        metrics::gauge!(DB_REPLICA_LAG).set(0.0);
        let sampler = sampler::start(primary, standby.clone(), shared.clone(), max_lag);
        for reason in Reason::ALL {
            metrics::counter!(DB_READS, "target" => "primary", "reason" => reason.as_str())
                .increment(0);
        }
        metrics::counter!(DB_READS, "target" => "standby", "reason" => "within_bound").increment(0);
        Ok(Self {
            standby,
            shared,
            sampler,
        })
    }

    /// Where a read in `scope` goes now.
    pub(crate) fn route(&self, scope: ReadScope) -> Route {
        let shared = &self.shared;
        if scope == ReadScope::Primary {
            return Route::Primary(Reason::Pinned);
        }
        let skipped = shared.elapsed_ms() < shared.skip_until_ms.load(Ordering::Acquire);
        match shared.health() {
            Health::Unknown | Health::Down => return Route::Primary(Reason::StandbyDown),
            _ if skipped => return Route::Primary(Reason::StandbyDown),
            Health::Lagging => return Route::Primary(Reason::Lagging),
            Health::Ready => {}
        }
        match scope {
            ReadScope::After(fence) if Lsn(shared.replay.load(Ordering::Acquire)) < fence => {
                Route::Primary(Reason::ReadAfter)
            }
            _ => Route::Standby,
        }
    }

    /// Counts a read that was served.
    pub(crate) fn count(route: Route) {
        let (target, reason) = match route {
            Route::Standby => ("standby", "within_bound"),
            Route::Primary(reason) => ("primary", reason.as_str()),
        };
        metrics::counter!(DB_READS, "target" => target, "reason" => reason).increment(1);
    }

    /// Notes a read the standby failed. A connection failure skips the standby for
    /// [`BACKOFF`], so the reads that follow do not each wait for it to fail.
    pub(crate) fn failed(&self, error: &StoreError) {
        if matches!(error, StoreError::Unavailable(_)) {
            let until = self.shared.elapsed_ms() + BACKOFF.as_millis() as u64;
            let before = self.shared.skip_until_ms.swap(until, Ordering::AcqRel);
            if before <= self.shared.elapsed_ms() {
                tracing::warn!(error = %error, "the standby failed a read; skipping it for a while");
            }
        } else {
            tracing::warn!(error = %error, "the standby failed a read; retried on the primary");
        }
    }

    /// Stops the sampler and closes the standby's pool.
    pub(crate) async fn close(&self) {
        self.sampler.stop().await;
        self.standby.close().await;
    }
}
