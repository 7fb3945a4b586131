//! One write transaction at a time: within a process, and across the processes sharing a file.
//!
//! SQLite has a single writer. A writer that finds the lock taken sleeps in SQLite's busy
//! handler, whose sleeps grow (1, 2, 5, 10, … up to 100 ms) and are not fair: a writer that
//! has already waited sleeps 100 ms between tries while newcomers of other processes try every
//! millisecond and win. With three replicas writing orders to one file that starved some
//! writers for over a second. The gate replaces that polling with two queues that hand the
//! turn over at once:
//!
//! - **in the process**, a fair async mutex, so a replica's own writers wait in order without
//!   a thread each;
//! - **across processes**, an exclusive `flock` on a file beside the database
//!   (`<database>.write-lock`). A process waiting for it blocks in the kernel and is woken the
//!   moment the holder releases it, so no writer sleeps past a free lock. The kernel releases
//!   it when a process dies, so a killed replica cannot leave the file locked.
//!
//! Handing the file to another process costs more than a turn within one: SQLite discards a
//! connection's page cache when another process has written, and the lock changes threads
//! and processes. A process whose own writers are queued therefore keeps the lock for up to
//! [`MAX_TURNS_IN_A_ROW`] turns (a cohort lock), then lets it go and queues its next turn in
//! the kernel behind the other processes. A process with no writer queued releases the lock
//! at once. Measured with three replicas on one file (docs/benchmarks.md): strict alternation
//! cut the order tail but a third of the throughput; the batches keep most of it.
//!
//! A writer waits for the file at most `storage.busy_timeout_ms`, as long as SQLite would
//! have let it wait, then fails as unavailable (503). The wait in the kernel runs on one
//! thread per process, outside the async runtime (a wait there cannot hold up a shutdown); a
//! writer that gives up leaves its place in the kernel's queue to the next writer of its
//! process, or abandons it when none is queued (the thread then drops the lock as soon as it
//! gets it), so an idle process never holds the file. The busy timeout itself stays: it
//! covers writers that do not come through the gate (a migration, `brigade restore`'s check,
//! the db-outage drill, an operator's `sqlite3` shell). PostgreSQL has row locks and needs no
//! gate.

use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, oneshot};

use crate::{StoreError, StoreResult};

/// The suffix of the file whose lock is the turn to write across processes.
const LOCK_SUFFIX: &str = ".write-lock";

/// How many turns in a row one process may take while its own writers queue, before it lets
/// the other processes' writers have the file. See the module docs for why it batches.
const MAX_TURNS_IN_A_ROW: u32 = 8;

/// Lets one write transaction at a time into the database. See the module docs for why.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    /// The in-process queue and what this process holds across processes; `None` for a
    /// backend that needs no gate.
    turn: Option<Mutex<Holding>>,
    /// Writers of this process waiting in the in-process queue.
    waiting: AtomicUsize,
    /// The lock file shared with the other processes; `None` for an in-memory database or
    /// a directory where the file cannot be created (then SQLite's busy handler alone orders
    /// writers of different processes, as it always did).
    across_processes: Option<LockFile>,
}

/// What this process holds of the cross-process lock between turns.
#[derive(Debug, Default)]
struct Holding {
    /// The lock, while this process has it.
    lock: Option<HeldLock>,
    /// The waiter thread's answer, while it waits in the kernel for the lock.
    pending: Option<oneshot::Receiver<Locked>>,
    /// Where this process asks its waiter thread for the lock; started on first need.
    waiter: Option<WaiterThread>,
    turns_in_a_row: u32,
    /// The last turn let the lock go while this process still had writers queued, so that
    /// the other processes get it: the next turn queues in the kernel behind them instead of
    /// taking the free lock back at once.
    let_others_go: bool,
}

impl Holding {
    /// Gives up the lock and any place in the kernel's queue for it.
    fn release(&mut self, let_others_go: bool) {
        self.lock = None;
        self.pending = None;
        self.turns_in_a_row = 0;
        self.let_others_go = let_others_go;
    }

    /// Starts a run of turns with the lock (or, when it could not be taken, without it).
    fn begin(&mut self, lock: Option<HeldLock>) {
        self.lock = lock;
        self.pending = None;
        self.turns_in_a_row = 0;
        self.let_others_go = false;
    }
}

/// A handle of the lock file with the lock taken, or why it could not be taken.
type Locked = std::io::Result<File>;

/// Requests to a process's waiter thread: where to send the locked handle.
type WaiterThread = std::sync::mpsc::Sender<oneshot::Sender<Locked>>;

/// The waiter thread's loop: for each request still wanted, waits for the lock on a fresh
/// handle and sends it. Ends when the gate (and with it the sender) is gone.
fn wait_for_each(path: &Path, requests: &std::sync::mpsc::Receiver<oneshot::Sender<Locked>>) {
    for reply in requests {
        if reply.is_closed() {
            continue;
        }
        let locked = open(path).and_then(|handle| handle.lock().map(|()| handle));
        // A reply nobody waits for any more is dropped here, and the lock with its handle.
        let _ = reply.send(locked);
    }
}

/// The lock file and the handle this process takes its uncontended turns with.
#[derive(Debug)]
struct LockFile {
    path: Arc<PathBuf>,
    handle: Arc<File>,
    /// How long a writer waits for the lock: `storage.busy_timeout_ms`.
    wait: Duration,
}

/// The cross-process lock, released when dropped.
#[derive(Debug)]
enum HeldLock {
    /// Taken on the gate's own handle without waiting: unlocked explicitly.
    Shared(Arc<File>),
    /// Taken on a handle of its own after waiting: closing the handle releases the lock.
    Own { _handle: File },
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let HeldLock::Shared(file) = self {
            // An unlock error leaves nothing held that the next `try_lock` on this handle
            // could not take back; closing the process releases it in any case.
            let _ = file.unlock();
        }
    }
}

/// This writer's turn; it lasts as long as the value. Dropping it decides whether the
/// process keeps the cross-process lock for its next writer.
#[derive(Debug)]
pub(crate) struct WriteTurn<'a> {
    gate: &'a WriteGate,
    holding: Option<MutexGuard<'a, Holding>>,
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let Some(holding) = self.holding.as_mut() else {
            return;
        };
        holding.turns_in_a_row += 1;
        let queued = self.gate.waiting.load(Ordering::Acquire) > 0;
        if !queued {
            holding.release(false);
        } else if holding.turns_in_a_row >= MAX_TURNS_IN_A_ROW {
            holding.release(true);
        }
    }
}

/// A writer waiting in the in-process queue. When it gives up (its request was cancelled)
/// and nobody else is in the queue, it releases what the last turn kept for it, so an idle
/// process never holds the file.
struct Waiting<'a> {
    gate: &'a WriteGate,
    mutex: &'a Mutex<Holding>,
    lock: Option<Pin<Box<dyn Future<Output = MutexGuard<'a, Holding>> + Send + 'a>>>,
    entered: bool,
}

impl<'a> Waiting<'a> {
    fn new(gate: &'a WriteGate, mutex: &'a Mutex<Holding>) -> Self {
        gate.waiting.fetch_add(1, Ordering::AcqRel);
        Self {
            gate,
            mutex,
            lock: Some(Box::pin(mutex.lock())),
            entered: false,
        }
    }

    async fn enter(mut self) -> MutexGuard<'a, Holding> {
        let guard = self.lock.as_mut().expect("entered once").await;
        self.entered = true;
        guard
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // The queue place goes first, so that a turn assigned to it is handed on.
        self.lock = None;
        self.gate.waiting.fetch_sub(1, Ordering::AcqRel);
        if !self.entered
            && let Ok(mut holding) = self.mutex.try_lock()
        {
            holding.release(false);
        }
    }
}

impl WriteGate {
    /// One writer at a time in this process, and, for a database file, across every process
    /// that opens the same file through brigade, each waiting at most `wait` for the others.
    pub(crate) fn serial(database: Option<&Path>, wait: Duration) -> Self {
        let across_processes = database.and_then(|database| {
            let mut path = database.as_os_str().to_owned();
            path.push(LOCK_SUFFIX);
            let path = PathBuf::from(path);
            match open(&path) {
                Ok(handle) => Some(LockFile {
                    path: Arc::new(path),
                    handle: Arc::new(handle),
                    wait,
                }),
                Err(error) => {
                    tracing::warn!(
                        path = %path.display(),
                        %error,
                        "cannot open the write lock file; writers of different processes wait in SQLite's busy handler"
                    );
                    None
                }
            }
        });
        Self {
            turn: Some(Mutex::new(Holding::default())),
            waiting: AtomicUsize::new(0),
            across_processes,
        }
    }

    /// No gate.
    pub(crate) fn open() -> Self {
        Self::default()
    }

    /// Waits for this writer's turn: first among this process's writers, then among the
    /// processes. Cancel-safe: a writer dropped while it waits leaves no lock behind.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when another process kept the file for longer than
    /// `storage.busy_timeout_ms`.
    pub(crate) async fn enter(&self) -> StoreResult<WriteTurn<'_>> {
        let Some(mutex) = &self.turn else {
            return Ok(WriteTurn {
                gate: self,
                holding: None,
            });
        };
        let holding = Waiting::new(self, mutex).enter().await;
        // The turn exists before the wait across processes, so that giving up there (a
        // timeout, a cancelled request) goes through its drop like any other turn.
        let mut turn = WriteTurn {
            gate: self,
            holding: Some(holding),
        };
        if let (Some(file), Some(holding)) = (&self.across_processes, turn.holding.as_mut())
            && holding.lock.is_none()
        {
            file.acquire(holding).await?;
        }
        Ok(turn)
    }
}

impl LockFile {
    /// Takes the lock for `holding`: at once when it is free (unless the last turn let the
    /// others go), else by waiting in the kernel on the waiter thread, at most `self.wait`.
    /// A wait that times out stays queued in the kernel for the process's next writer.
    /// When the lock cannot be taken at all, the writer goes on under SQLite's busy handler.
    async fn acquire(&self, holding: &mut Holding) -> StoreResult<()> {
        if holding.pending.is_none() {
            if !holding.let_others_go {
                match self.handle.try_lock() {
                    Ok(()) => {
                        holding.begin(Some(HeldLock::Shared(Arc::clone(&self.handle))));
                        return Ok(());
                    }
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Error(error)) => {
                        holding.begin(self.go_on_without_lock(&error));
                        return Ok(());
                    }
                }
            }
            holding.pending = Some(self.wait_in_the_kernel(&mut holding.waiter));
        }
        let pending = holding.pending.as_mut().expect("set above");
        let answer = match tokio::time::timeout(self.wait, pending).await {
            Err(_elapsed) => {
                return Err(StoreError::Unavailable(sqlx::Error::Io(
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "another process held the write lock for longer than storage.busy_timeout_ms",
                    ),
                )));
            }
            Ok(answer) => answer,
        };
        holding.begin(match answer {
            Ok(Ok(handle)) => Some(HeldLock::Own { _handle: handle }),
            Ok(Err(error)) => self.go_on_without_lock(&error),
            Err(_thread_gone) => self.go_on_without_lock(&"the waiting thread ended"),
        });
        Ok(())
    }

    /// Asks this process's waiter thread to wait for the lock on a handle of its own and send
    /// it back; when nobody takes the answer any more, the handle is dropped and the lock with
    /// it. The thread is started on first need and is not part of the async runtime, so a
    /// wait in the kernel never holds up the runtime's shutdown.
    fn wait_in_the_kernel(&self, waiter: &mut Option<WaiterThread>) -> oneshot::Receiver<Locked> {
        let (reply, answer) = oneshot::channel();
        let unsent = match waiter.as_ref() {
            Some(thread) => thread.send(reply).err().map(|returned| returned.0),
            None => Some(reply),
        };
        if let Some(reply) = unsent {
            let (requests, received) = std::sync::mpsc::channel();
            let path = Arc::clone(&self.path);
            let started = std::thread::Builder::new()
                .name("sqlite-write-lock".into())
                .spawn(move || wait_for_each(&path, &received));
            match started {
                Ok(_detached) => {
                    // The thread has just started with its receiver, so the request arrives.
                    let _ = requests.send(reply);
                    *waiter = Some(requests);
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        answer
    }

    /// The lock cannot be taken at all (not merely held by another process): says so, and the
    /// writer goes on under SQLite's busy handler, as writers did before the gate.
    fn go_on_without_lock(&self, error: &dyn std::fmt::Display) -> Option<HeldLock> {
        tracing::warn!(
            path = %self.path.display(),
            %error,
            "cannot take the write lock; this writer waits in SQLite's busy handler"
        );
        None
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The gate's next turn, failing the test with `what` when it does not come in 5 s.
    async fn enter_within<'a>(gate: &'a WriteGate, what: &str) -> WriteTurn<'a> {
        tokio::time::timeout(Duration::from_secs(5), gate.enter())
            .await
            .expect(what)
            .unwrap()
    }

    /// Whether a `flock` on `file` is waiting (a `->` line of `/proc/locks` for its inode).
    fn has_a_blocked_flock(file: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(file).map(|m| m.ino()).unwrap_or(0);
        let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"->")
                && fields.get(6).and_then(|id| id.rsplit(':').next()) == Some(&*inode.to_string())
        })
    }

    fn gate_on(dir: &tempfile::TempDir) -> WriteGate {
        WriteGate::serial(Some(&dir.path().join("brigade.db")), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_second_gate_on_the_same_file_waits_for_the_first_turn_to_end() {
        let dir = tempfile::tempdir().unwrap();
        // Two gates on one file stand for two processes: flock locks of different open files
        // exclude each other within one process too.
        let (first, second) = (gate_on(&dir), gate_on(&dir));
        let turn = first.enter().await.unwrap();
        let waiting = tokio::spawn(async move {
            let _turn = second.enter().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "the second process wrote during the first one's turn"
        );
        drop(turn);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the second process never got its turn")
            .unwrap();
        // The first process can take its turn again without waiting.
        let _again = enter_within(&first, "the lock was not released").await;
    }

    #[tokio::test]
    async fn a_writer_cancelled_while_waiting_leaves_no_lock_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (gate_on(&dir), gate_on(&dir));
        let turn = first.enter().await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(50), second.enter()).await;
        assert!(gave_up.is_err(), "the second process did not have to wait");
        drop(turn);
        let _turn = enter_within(&second, "a cancelled wait kept the lock").await;
        drop(_turn);
        let _turn = enter_within(&first, "the lock was not released").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_with_writers_queued_lets_another_process_in_between_its_batches() {
        const QUEUED: usize = 64;
        let dir = tempfile::tempdir().unwrap();
        let (busy, other) = (Arc::new(gate_on(&dir)), gate_on(&dir));
        let first = busy.enter().await.unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..QUEUED {
            let (busy, done) = (Arc::clone(&busy), Arc::clone(&done));
            writers.spawn(async move {
                let _turn = busy.enter().await.unwrap();
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        while busy.waiting.load(Ordering::SeqCst) < QUEUED {
            tokio::task::yield_now().await;
        }
        let busy_done = Arc::clone(&done);
        let other = tokio::spawn(async move {
            let _turn = other.enter().await.unwrap();
            busy_done.load(Ordering::SeqCst)
        });
        // The other process must be queued in the kernel before the busy one's turn ends: on
        // a loaded machine its waiting thread may not have asked for the lock yet.
        let lock_file = dir.path().join(format!("brigade.db{LOCK_SUFFIX}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !has_a_blocked_flock(&lock_file) {
            assert!(
                std::time::Instant::now() < deadline,
                "no process waits for the lock"
            );
            tokio::task::yield_now().await;
        }
        drop(first);
        let busy_turns_before = tokio::time::timeout(Duration::from_secs(10), other)
            .await
            .expect("the other process never got its turn")
            .unwrap();
        assert!(
            busy_turns_before < QUEUED,
            "the other process waited for all {QUEUED} queued writers of the busy one"
        );
        while writers.join_next().await.is_some() {}
        assert_eq!(done.load(Ordering::SeqCst), QUEUED);
    }

    #[tokio::test]
    async fn a_lock_kept_for_a_writer_that_gives_up_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (gate_on(&dir), gate_on(&dir));
        let turn = first.enter().await.unwrap();
        let mut queued = Box::pin(first.enter());
        let still_queued = tokio::time::timeout(Duration::from_millis(20), &mut queued).await;
        assert!(still_queued.is_err(), "the queued writer did not wait");
        // The turn ends with a writer queued, so the process keeps the file for it …
        drop(turn);
        // … and that writer's request is cancelled before it runs.
        drop(queued);
        let _turn = enter_within(&second, "an idle process kept the file locked").await;
    }

    #[tokio::test]
    async fn a_writer_waits_for_another_process_at_most_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brigade.db");
        let first = WriteGate::serial(Some(&path), Duration::from_secs(5));
        let second = WriteGate::serial(Some(&path), Duration::from_millis(100));
        let turn = first.enter().await.unwrap();
        for _ in 0..2 {
            let refused = tokio::time::timeout(Duration::from_secs(5), second.enter())
                .await
                .expect("the wait was not bounded");
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
        drop(turn);
        let _turn =
            enter_within(&second, "the lock was not handed on after a timed-out wait").await;
    }

    #[test]
    fn a_wait_for_another_process_does_not_hold_up_the_runtime_s_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brigade.db");
        let holder = WriteGate::serial(Some(&path), Duration::from_secs(5));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _turn = runtime.block_on(holder.enter()).unwrap();
        let (stopped, stop) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let waiter = WriteGate::serial(Some(&path), Duration::from_millis(50));
            let refused = runtime.block_on(waiter.enter());
            assert!(refused.is_err(), "the holder's lock was not respected");
            drop(runtime);
            stopped.send(()).unwrap();
        });
        stop.recv_timeout(Duration::from_secs(10))
            .expect("the runtime waited for the lock before it could stop");
    }

    #[tokio::test]
    async fn another_process_holding_the_file_is_waited_for_and_its_death_frees_it() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brigade.db");
        let gate = WriteGate::serial(Some(&path), Duration::from_millis(200));
        // A real second process takes the same lock: util-linux's flock(1), as a replica would.
        // --no-fork: the process that holds the lock is the one killed below.
        let mut holder = std::process::Command::new("flock")
            .arg("--no-fork")
            .arg(dir.path().join("brigade.db.write-lock"))
            .args(["sh", "-c", "echo locked; exec sleep 600"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("flock (util-linux) runs");
        let mut said = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut said)
            .unwrap();
        assert_eq!(said.trim(), "locked");
        let refused = gate.enter().await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "wrote while another process held the file: {refused:?}"
        );
        holder.kill().unwrap();
        holder.wait().unwrap();
        let _turn = enter_within(&gate, "a killed process left the file locked").await;
    }

    #[tokio::test]
    async fn the_lock_file_sits_beside_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let _gate = gate_on(&dir);
        assert!(dir.path().join("brigade.db.write-lock").exists());
    }

    #[tokio::test]
    async fn a_database_without_a_file_is_gated_in_process_only() {
        let gate = WriteGate::serial(None, Duration::from_secs(5));
        assert!(gate.across_processes.is_none());
        let _turn = gate.enter().await.unwrap();
    }
}
