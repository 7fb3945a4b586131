//! How far a standby is behind, in seconds, measured so that an idle primary reads as no lag.
//!
//! `now() - pg_last_xact_replay_timestamp()` on the standby grows while nothing is written
//! (the last replayed transaction gets older), so an idle pair would look lagging. Instead the
//! sampler compares positions: it notes when it first saw the primary's flushed WAL reach each
//! new position, and the standby's lag is how long ago the primary first stood past the
//! standby's replay position. A standby that has replayed everything the primary flushed is
//! 0 s behind however old the last write is; one whose replay is paused falls behind from the
//! moment the primary writes past it. The resolution is the sampling interval.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::lsn::Lsn;

/// Primary positions not yet replayed by the standby are kept up to this many; further ones
/// are not noted, which keeps the earliest (the one lag is measured from) and bounds memory.
const MAX_PENDING: usize = 4096;

/// Primary positions the standby has not replayed yet, each with when it was first seen.
#[derive(Debug, Default)]
pub(super) struct LagTracker {
    pending: VecDeque<(Lsn, Instant)>,
}

impl LagTracker {
    /// Records one sample (the primary's flushed position and the standby's replay position,
    /// both read at about `now`) and answers the standby's lag.
    pub(super) fn observe(&mut self, primary: Lsn, standby: Lsn, now: Instant) -> Duration {
        while self.pending.front().is_some_and(|(lsn, _)| *lsn <= standby) {
            self.pending.pop_front();
        }
        let newer = self.pending.back().is_none_or(|(lsn, _)| *lsn < primary);
        if primary > standby && newer && self.pending.len() < MAX_PENDING {
            self.pending.push_back((primary, now));
        }
        self.pending.front().map_or(Duration::ZERO, |(_, since)| {
            now.saturating_duration_since(*since)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_caught_up_standby_has_no_lag() {
        let mut lag = LagTracker::default();
        let start = Instant::now();
        for second in 0..100 {
            let now = start + Duration::from_secs(second);
            assert_eq!(lag.observe(Lsn(500), Lsn(500), now), Duration::ZERO);
        }
    }

    #[test]
    fn lag_counts_from_when_the_primary_first_passed_the_standby() {
        let mut lag = LagTracker::default();
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(lag.observe(Lsn(100), Lsn(100), at(0)), Duration::ZERO);
        // Replay paused at 100 while the primary writes on.
        assert_eq!(lag.observe(Lsn(200), Lsn(100), at(1)), Duration::ZERO);
        assert_eq!(
            lag.observe(Lsn(300), Lsn(100), at(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            lag.observe(Lsn(300), Lsn(100), at(6)),
            Duration::from_secs(5)
        );
        // Replay resumes: past 200 but not yet at 300, seen first at 2 s.
        assert_eq!(
            lag.observe(Lsn(300), Lsn(250), at(7)),
            Duration::from_secs(5)
        );
        assert_eq!(lag.observe(Lsn(300), Lsn(300), at(8)), Duration::ZERO);
    }

    #[test]
    fn pending_positions_stay_bounded() {
        let mut lag = LagTracker::default();
        let start = Instant::now();
        for step in 1..=(MAX_PENDING as u64 * 2) {
            let now = start + Duration::from_millis(step);
            lag.observe(Lsn(step), Lsn(0), now);
        }
        assert_eq!(lag.pending.len(), MAX_PENDING);
        let now = start + Duration::from_secs(60);
        assert_eq!(
            lag.observe(Lsn(u64::MAX), Lsn(0), now),
            now - (start + Duration::from_millis(1))
        );
    }
}
