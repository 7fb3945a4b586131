//! Idle upstream connections of one worker thread: a LIFO stack per backend, owned by the
//! thread's runtime and touched only by it, so taking and returning a connection costs no lock
//! and no atomic read-modify-write.
//!
//! Entries are keyed by the backend's `Arc` (held, so its address cannot be reused while an
//! entry exists), in a hash map: finding a backend's stack costs the same with 3 backends or
//! 100. A backend's `IdleConnections::generation` moves when the balancer drops its
//! idle connections (ejected, unhealthy, removed); entries of an older generation are closed
//! when next seen. A connection is only returned after its response was read to the end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::clock::uptime_ms;

/// One idle connection.
#[derive(Debug)]
struct Entry {
    stream: TcpStream,
    since_ms: u64,
    generation: u64,
}

/// The idle connections of one backend on this thread.
#[derive(Debug)]
struct Stack {
    backend: Arc<Backend>,
    entries: Vec<Entry>,
}

/// The idle stacks of one thread, by the backend's address in memory.
type Stacks = HashMap<usize, Stack, BuildHasherDefault<AddressHasher>>;

thread_local! {
    static IDLE: RefCell<Stacks> = RefCell::new(Stacks::default());
}

/// Hashes an address with one folded multiplication: the keys are distinct pointers, not
/// chosen by anyone, so SipHash's protection against chosen keys would only cost time.
#[derive(Debug, Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        let product = u128::from(n ^ self.0) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (product >> 64) as u64 ^ product as u64;
    }
}

fn key(backend: *const Backend) -> usize {
    backend as usize
}

/// The most recently returned connection to `backend` that is still open and not idle for
/// more than `max_idle_ms` at `now_ms` (`clock::uptime_ms`'s scale).
pub fn checkout_ptr(backend: &Backend, max_idle_ms: u64, now_ms: u64) -> Option<TcpStream> {
    let generation = backend.idle.generation();
    IDLE.with_borrow_mut(|stacks| {
        let stack = stacks.get_mut(&key(backend))?;
        while let Some(entry) = stack.entries.pop() {
            backend.idle.count_fast(false, 1);
            if entry.generation != generation || now_ms.saturating_sub(entry.since_ms) > max_idle_ms
            {
                // Everything below is older still, or of the same dropped generation.
                backend.idle.count_fast(false, stack.entries.len());
                stack.entries.clear();
                return None;
            }
            if is_open(&entry.stream) {
                return Some(entry.stream);
            }
        }
        None
    })
}

/// An idle connection is open when reading it would block: it has neither been closed by the
/// backend nor received bytes nobody asked for.
fn is_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Returns a connection whose response was read to the end, idle since `now_ms`.
pub fn checkin(backend: &Arc<Backend>, stream: TcpStream, max_idle: usize, now_ms: u64) {
    let generation = backend.idle.generation();
    IDLE.with_borrow_mut(|stacks| {
        let key = key(Arc::as_ptr(backend));
        if !stacks.contains_key(&key) {
            // A backend seen for the first time on this thread; forget stacks of backends that
            // are gone (only this thread still holds them).
            stacks.retain(|_, s| Arc::strong_count(&s.backend) > 1 || !s.entries.is_empty());
        }
        let stack = stacks.entry(key).or_insert_with(|| Stack {
            backend: Arc::clone(backend),
            entries: Vec::new(),
        });
        if stack.entries.len() < max_idle {
            backend.idle.count_fast(true, 1);
            stack.entries.push(Entry {
                stream,
                since_ms: now_ms,
                generation,
            });
        }
    });
}

/// Closes this thread's idle connections unused for more than `max_idle_ms` or of a dropped
/// generation; each worker runs it periodically (`reap_periodically`).
pub fn reap(max_idle_ms: u64) {
    let now = uptime_ms();
    IDLE.with_borrow_mut(|stacks| {
        for stack in stacks.values_mut() {
            let generation = stack.backend.idle.generation();
            let before = stack.entries.len();
            stack.entries.retain(|entry| {
                entry.generation == generation && now.saturating_sub(entry.since_ms) <= max_idle_ms
            });
            stack
                .backend
                .idle
                .count_fast(false, before - stack.entries.len());
        }
        stacks.retain(|_, s| Arc::strong_count(&s.backend) > 1 || !s.entries.is_empty());
    });
}

/// Reaps this thread's idle connections every half `upstream_idle_ms` (at most every second)
/// until shutdown; runs on each worker's runtime, which owns the stacks.
pub async fn reap_periodically(
    state: Arc<crate::state::State>,
    shutdown: brigade_core::shutdown::Shutdown,
) {
    loop {
        let max_idle_ms = state.table().config.timeouts.upstream_idle_ms;
        let every = std::time::Duration::from_millis((max_idle_ms / 2).clamp(10, 1_000));
        tokio::select! {
            () = tokio::time::sleep(every) => reap(max_idle_ms),
            () = shutdown.wait() => {
                reap(0);
                return;
            }
        }
    }
}
