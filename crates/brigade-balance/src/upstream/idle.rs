//! A backend's idle keep-alive connections (the hyper core's stack; the fast core keeps its
//! own per thread and is counted here).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hyper::client::conn::http1::SendRequest;

use super::request_body::RequestBody;
use crate::clock::uptime_ms;

/// A keep-alive HTTP/1.1 connection to a backend, ready for a request.
pub(crate) type Sender = SendRequest<RequestBody>;

/// Idle keep-alive connections of one backend, newest on top.
#[derive(Debug, Default)]
pub struct IdleConnections {
    stack: Mutex<Vec<(Sender, u64)>>,
    /// Moves on every [`clear`](Self::clear): the fast core's per-thread idle connections of an
    /// older generation are closed instead of reused.
    generation: AtomicU64,
    /// Idle connections the fast core holds in its per-thread stacks, for [`len`](Self::len).
    fast_idle: AtomicUsize,
}

impl IdleConnections {
    /// The most recently used connection that is still open and not older than `max_idle_ms`.
    pub fn checkout(&self, max_idle_ms: u64) -> Option<Sender> {
        let now = uptime_ms();
        let mut stack = self.stack.lock().ok()?;
        while let Some((sender, since)) = stack.pop() {
            if now.saturating_sub(since) > max_idle_ms {
                // Everything below is older still.
                stack.clear();
                return None;
            }
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Returns a connection whose response was read to the end.
    pub fn checkin(&self, sender: Sender, max_idle: usize) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut stack) = self.stack.lock()
            && stack.len() < max_idle
        {
            stack.push((sender, uptime_ms()));
        }
    }

    /// Closes idle connections unused for more than `max_idle_ms`, or closed by the backend.
    pub fn reap(&self, max_idle_ms: u64) {
        let now = uptime_ms();
        if let Ok(mut stack) = self.stack.lock() {
            stack.retain(|(sender, since)| {
                now.saturating_sub(*since) <= max_idle_ms && !sender.is_closed()
            });
        }
    }

    /// Closes every idle connection (the backend was ejected, turned unhealthy or removed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut stack) = self.stack.lock() {
            stack.clear();
        }
    }

    /// The current generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Counts idle connections of the fast core: `delta` more (or fewer).
    pub(crate) fn count_fast(&self, more: bool, n: usize) {
        if more {
            self.fast_idle.fetch_add(n, Ordering::Relaxed);
        } else {
            self.fast_idle.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Idle connections held (by either core).
    pub fn len(&self) -> usize {
        self.stack.lock().map_or(0, |s| s.len()) + self.fast_idle.load(Ordering::Relaxed)
    }

    /// No idle connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
