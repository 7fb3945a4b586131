//! One timer per client connection, for every deadline its requests meet one after the other:
//! the head read, the body read, the upstream response and the pieces of a streamed response
//! body.
//!
//! Creating a `tokio::time::Sleep` for each wait and dropping it afterwards takes the runtime's
//! timer lock twice per wait (register, deregister): with two waits a request, the largest
//! cost of the fast core after the socket I/O. Here a connection keeps one `Sleep`, the
//! *alarm*, and moves it only forward, which tokio does with a single atomic exchange and no
//! lock. The alarm may ring before the deadline (then it is moved on); it never rings after.
//!
//! The invariant: the alarm is at or before the current deadline. A deadline is at least the
//! *horizon* (the shortest configured timeout) after the moment it is set, so an alarm set no
//! later than `now + horizon` is before any deadline a later request sets, and is rarely
//! moved back (only when a reload shortens a timeout). An alarm that is still at least half a
//! horizon away is left alone: with steady traffic a connection touches its timer about once
//! per half horizon, not once per wait.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::config::Timeouts;

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Elapsed;

/// A connection's deadline and its alarm.
#[derive(Debug)]
pub(super) struct Timer {
    alarm: Pin<Box<Sleep>>,
    /// When the current wait times out.
    due: Instant,
    /// The shortest timeout a wait may be given (see the module's doc).
    horizon: Duration,
}

impl Timer {
    /// A timer for a connection served with `timeouts`; it needs the runtime's time driver.
    pub(super) fn new(timeouts: &Timeouts) -> Self {
        let horizon = horizon(timeouts);
        let now = Instant::now();
        Self {
            alarm: Box::pin(tokio::time::sleep_until(now + horizon)),
            due: now + horizon,
            horizon,
        }
    }

    /// Follows a configuration reload: a shorter timeout shortens the horizon.
    pub(super) fn set_timeouts(&mut self, timeouts: &Timeouts) {
        self.horizon = horizon(timeouts);
    }

    /// Sets the deadline of the next waits to `timeout` from now.
    pub(super) fn expire_in(&mut self, timeout: Duration) {
        let now = Instant::now();
        self.expire_at(now + timeout, now);
    }

    /// Sets the deadline of the next waits to `due` (`now` is the current time).
    pub(super) fn expire_at(&mut self, due: Instant, now: Instant) {
        self.due = due;
        let alarm = self.alarm.deadline();
        if alarm <= due && alarm >= now + self.horizon / 2 {
            return;
        }
        self.alarm.as_mut().reset(due.min(now + self.horizon));
    }

    /// Runs `future` until it finishes or the deadline passes.
    pub(super) async fn run<F: Future>(&mut self, future: F) -> Result<F::Output, Elapsed> {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            // The future first, as `tokio::time::timeout` does: a result that is ready wins.
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            loop {
                if self.alarm.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let now = Instant::now();
                if now >= self.due {
                    return Poll::Ready(Err(Elapsed));
                }
                // Rang early: on to the deadline, or the horizon if that comes first.
                self.alarm.as_mut().reset(self.due.min(now + self.horizon));
            }
        })
        .await
    }

    /// Runs `future` for at most `timeout` from now.
    pub(super) async fn within<F: Future>(
        &mut self,
        timeout: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        self.expire_in(timeout);
        self.run(future).await
    }
}

/// The shortest timeout of a wait the timer serves (never zero: the validated configuration
/// has none, and a zero horizon would only make every wait move the alarm).
fn horizon(timeouts: &Timeouts) -> Duration {
    let shortest = [
        timeouts.header_read_ms,
        timeouts.idle_ms,
        timeouts.body_read_ms,
        timeouts.upstream_response_ms,
    ]
    .into_iter()
    .min()
    .unwrap_or(1)
    .max(1);
    Duration::from_millis(shortest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack for a busy machine: a timeout must not fire early, and not much later.
    const LATE: Duration = Duration::from_millis(400);

    fn timeouts(ms: u64) -> Timeouts {
        Timeouts {
            header_read_ms: ms,
            idle_ms: ms * 2,
            body_read_ms: ms,
            upstream_response_ms: ms,
            ..Timeouts::default()
        }
    }

    async fn times_out(timer: &mut Timer, wait_ms: u64) {
        let wait = Duration::from_millis(wait_ms);
        let start = Instant::now();
        let result = timer.within(wait, std::future::pending::<()>()).await;
        assert_eq!(result, Err(Elapsed));
        let took = start.elapsed();
        assert!(took >= wait && took < wait + LATE, "{wait:?} took {took:?}");
    }

    #[tokio::test]
    async fn a_wait_past_its_deadline_is_elapsed_on_time() {
        let mut timer = Timer::new(&timeouts(60));
        times_out(&mut timer, 150).await;
    }

    #[tokio::test]
    async fn a_ready_future_wins_over_a_passed_deadline() {
        let mut timer = Timer::new(&timeouts(100));
        timer.expire_in(Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(timer.run(async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn later_and_earlier_deadlines_are_both_kept() {
        let mut timer = Timer::new(&timeouts(50));
        for wait in [200, 50, 120, 50] {
            times_out(&mut timer, wait).await;
        }
    }

    #[tokio::test]
    async fn a_shortened_timeout_after_a_reload_still_fires_on_time() {
        let mut timer = Timer::new(&timeouts(10_000));
        timer.expire_in(Duration::from_millis(10_000));
        timer.set_timeouts(&timeouts(30));
        times_out(&mut timer, 30).await;
    }

    #[tokio::test]
    async fn a_future_finishing_in_time_is_not_cut() {
        let mut timer = Timer::new(&timeouts(50));
        let result = timer
            .within(Duration::from_millis(300), async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "done"
            })
            .await;
        assert_eq!(result, Ok("done"));
    }
}
