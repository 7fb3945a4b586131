//! The balancer's clock: one origin for every time it keeps in atomics (latency estimates in
//! nanoseconds, ejections, slow start and idle connections in milliseconds).

use std::sync::LazyLock;
use std::time::Instant;

/// The origin of [`now`] and [`uptime_ms`].
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the process's clock origin (what `ewma::Ewma` keeps times in).
pub fn now() -> u64 {
    since_epoch(Instant::now())
}

/// `at` in nanoseconds since the process's clock origin.
pub fn since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds since the process's first call, never 0 (0 means "never" in the atomics here).
pub fn uptime_ms() -> u64 {
    ms_at(Instant::now())
}

/// `at` on the scale of [`uptime_ms`], for a caller that has already read the clock.
pub fn ms_at(at: Instant) -> u64 {
    since_epoch(at) / 1_000_000 + 1
}
