//! The open-file limit. Shells and service managers commonly start programs with a soft limit
//! of 1,024 descriptors while allowing far more (the hard limit), so a server that keeps its
//! soft limit cannot hold the connections its own settings allow (`server.max_connections`
//! defaults to 10,000): past 1,024 `accept` fails with EMFILE and new clients wait in the
//! backlog while the cap says there is room. Every brigade process therefore raises its soft
//! limit to the hard limit at start, as Go's runtime and nginx's `worker_rlimit_nofile` do.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Used when the hard limit is unlimited: more than any brigade process needs, and small
/// enough that nothing sizes a table by it.
const CEILING: u64 = 1 << 20;

/// What [`raise_soft_limit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFiles {
    /// The soft limit was raised from the first value to the second.
    Raised(u64, u64),
    /// The soft limit already was the hard limit (or above the ceiling).
    Unchanged(u64),
    /// The kernel refused; the process keeps its limit (the first value).
    Refused(u64, rustix::io::Errno),
}

/// Raises this process's soft open-file limit to its hard limit. Child processes inherit it.
pub fn raise_soft_limit() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let target = limit.maximum.unwrap_or(u64::MAX).min(CEILING);
    if soft >= target {
        return OpenFiles::Unchanged(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => OpenFiles::Raised(soft, target),
        Err(error) => OpenFiles::Refused(soft, error),
    }
}

/// The soft open-file limit now.
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        if let OpenFiles::Refused(_, error) = raise_soft_limit() {
            panic!("raising the soft limit to the hard limit is always allowed: {error}");
        }
        assert!(soft_limit().unwrap_or(u64::MAX) >= hard.min(CEILING));
        assert!(
            matches!(raise_soft_limit(), OpenFiles::Unchanged(_)),
            "idempotent"
        );
    }
}
