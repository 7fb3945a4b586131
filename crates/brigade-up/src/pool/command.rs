//! What a pool manager is asked to do, and how a rollout can fail: the types the supervisor's
//! shared state and the ops API hold, apart from the manager itself, so that holding them does
//! not tie `shared` to the code that runs a pool.

use std::path::PathBuf;

use tokio::sync::oneshot;

/// What a pool manager is asked to do.
pub enum PoolCommand {
    /// Run this many primary replicas (backups are not scaled).
    Scale {
        /// Primaries wanted.
        replicas: usize,
        /// Why (an event records it).
        reason: String,
    },
    /// Replace every replica, one at a time; with a binary, new replicas run it (an upgrade).
    Rollout {
        /// The binary of the new replicas.
        binary: Option<PathBuf>,
        /// Answered with how many replicas were replaced.
        done: oneshot::Sender<Result<usize, RolloutError>>,
    },
    /// Stop every replica at once — killed, not drained: the store they write to is gone, so
    /// whatever they would still acknowledge is lost — say so on `halted`, and start as many
    /// again once `resume` fires (or is dropped). The store is being put back meanwhile.
    Halt {
        /// Answered when every replica has exited.
        halted: oneshot::Sender<()>,
        /// Fired when the replicas may start again.
        resume: oneshot::Receiver<()>,
    },
}

/// Why a rollout stopped (the ops API answers it as a problem, the event log records it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// A new replica did not start or get ready; the replicas after it were left as they were.
    #[error("{instance} could not be replaced; rollout stopped")]
    NotReplaced {
        /// The replica that is still the old one.
        instance: String,
    },
}
