//! Where a supervised child stands: the state the ops API, `brigade status`, the metrics and
//! the supervisor's own decisions read.

use serde::{Deserialize, Serialize};

/// A child's state, as `"starting"`, `"ready"`, … in the ops API's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Spawned, not yet answering its readiness check.
    Starting,
    /// Ready: a replica is in its balancer pool.
    Ready,
    /// Exited; started again after a backoff.
    Restarting,
    /// Exited too often in a short time; started again after a long backoff.
    CrashLoop,
    /// Asked to stop, finishing its work.
    Stopping,
    /// Gone and not coming back.
    Stopped,
}

impl ChildState {
    /// Every state, for metrics that report zero for states nobody is in.
    pub const ALL: [Self; 6] = [
        Self::Starting,
        Self::Ready,
        Self::Restarting,
        Self::CrashLoop,
        Self::Stopping,
        Self::Stopped,
    ];

    /// The word the ops API, the metrics' `state` label and the status table use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Restarting => "restarting",
            Self::CrashLoop => "crash_loop",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_says_the_same_word_as_the_metrics() {
        for state in ChildState::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::from(state.as_str())
            );
        }
    }
}
