//! The health latch: one shared answer to "may traffic come here?".
//!
//! Readiness is a latch rather than a probe result so that shutdown can flip it *before* anything
//! else happens: a balancer polling `/health/ready` sees 503 at once and stops sending new
//! requests during the drain delay, while requests already in flight still finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

/// Where a process is in its life, as the health endpoints report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Still starting: migrations or connections not done; `/health/startup` fails.
    Starting,
    /// Serving: startup finished and no shutdown has begun.
    Ready,
    /// Shutting down: readiness fails so balancers stop sending, in-flight work finishes.
    Draining,
}

/// A cheap, cloneable latch shared by the server, the health routes and the shutdown path.
#[derive(Debug, Clone, Default)]
pub struct HealthLatch {
    phase: Arc<AtomicU8>,
}

impl HealthLatch {
    /// A latch in the `Starting` phase.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks startup as finished. Does nothing once draining has begun, so a late startup step
    /// cannot make a stopping process look ready again.
    pub fn set_ready(&self) {
        let _ = self
            .phase
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Starts draining: from now on readiness fails. Irreversible on purpose.
    pub fn set_draining(&self) {
        self.phase.store(DRAINING, Ordering::SeqCst);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            STARTING => Phase::Starting,
            READY => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// True when the process has finished starting (it may be draining since).
    pub fn started(&self) -> bool {
        self.phase() != Phase::Starting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_is_final() {
        let latch = HealthLatch::new();
        assert_eq!(latch.phase(), Phase::Starting);
        latch.set_ready();
        assert_eq!(latch.phase(), Phase::Ready);
        latch.set_draining();
        latch.set_ready();
        assert_eq!(latch.phase(), Phase::Draining);
        assert!(latch.started());
    }
}
