//! Where JSON log lines go: standard output, one `write` per line by default, or in batches for
//! a server that logs a line per request (`brigade serve`, `brigade balance`).
//!
//! Why batches. At tens of thousands of requests a second, the access log's `write` per line
//! was a system call per request: about a tenth of a cached menu read. Batched, a request only
//! appends its line to a buffer; a flusher thread writes the buffer out [`FLUSH_DELAY`] after
//! the first line arrived in it, or the appending request does when the buffer holds
//! [`HIGH_WATER`] bytes. nginx's `access_log … buffer= flush=` is the same trade.
//!
//! What it costs. A line reaches the pipe up to [`FLUSH_DELAY`] later, and a process killed
//! with SIGKILL loses at most that much of its log. A process that ends normally, and one that
//! panics, writes everything first ([`flush`], called by the binary on its way out and by the
//! panic hook). Memory stays bounded: past [`HIGH_WATER`] the request writes, and a slow reader
//! of standard output slows the writers as before, with no line dropped. Lines never interleave
//! and keep their order: only whole lines are buffered, and writes happen under the buffer's lock.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a line may wait in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(5);
/// A buffer this full is written by the request that filled it.
pub const HIGH_WATER: usize = 64 * 1024;

/// The buffer and whether the flusher sleeps until a line arrives.
struct Pending {
    lines: Vec<u8>,
    flusher_idle: bool,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    lines: Vec::new(),
    flusher_idle: false,
});
static LINE_ARRIVED: Condvar = Condvar::new();
/// Whether [`batch`] was asked for (it starts the flusher once).
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// Whether lines are batched: set once the flusher runs.
static BATCHING: AtomicBool = AtomicBool::new(false);

/// Writes one whole line (it ends in `\n`) to standard output, now or with the next batch.
pub fn write_line(line: &[u8]) {
    if !BATCHING.load(Ordering::Acquire) {
        // One write per line so that lines from concurrent tasks never interleave.
        let _ = std::io::stdout().lock().write_all(line);
        return;
    }
    let mut pending = lock();
    pending.lines.extend_from_slice(line);
    if pending.lines.len() >= HIGH_WATER {
        write_out(&mut pending.lines);
    } else if pending.flusher_idle {
        pending.flusher_idle = false;
        LINE_ARRIVED.notify_one();
    }
}

/// Turns batching on for the rest of the process and starts its flusher thread. Idempotent;
/// a process that cannot start a thread goes on writing line by line.
pub fn batch() {
    if REQUESTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(flush_loop);
    if started.is_ok() {
        BATCHING.store(true, Ordering::Release);
    }
}

/// Writes whatever is buffered. Called on the way out; from a panic hook too, where the lock
/// may be held by the panicking thread itself, so this only tries.
pub fn flush() {
    if let Ok(mut pending) = PENDING.try_lock() {
        write_out(&mut pending.lines);
    }
}

fn flush_loop() {
    loop {
        let mut pending = lock();
        while pending.lines.is_empty() {
            pending.flusher_idle = true;
            pending = LINE_ARRIVED
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(pending);
        // Let the batch gather; the requests meanwhile only append.
        std::thread::sleep(FLUSH_DELAY);
        write_out(&mut lock().lines);
    }
}

/// Writes `lines` to standard output and empties it (keeping its allocation).
fn write_out(lines: &mut Vec<u8>) {
    if !lines.is_empty() {
        let _ = std::io::stdout().lock().write_all(lines);
        lines.clear();
    }
}

fn lock() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batched lines wait in the buffer until the flusher (or `flush`) writes them, whole and in
    /// order; past the high-water mark the appender writes them itself.
    #[test]
    fn lines_gather_and_leave_in_order() {
        {
            let mut pending = lock();
            pending.lines.clear();
            pending.lines.extend_from_slice(b"{\"n\":1}\n{\"n\":2}\n");
        }
        assert_eq!(lock().lines, b"{\"n\":1}\n{\"n\":2}\n");
        flush();
        assert!(lock().lines.is_empty(), "flush empties the buffer");
    }
}
