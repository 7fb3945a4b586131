//! Password hashing with Argon2id, under a bound on memory.
//!
//! Each Argon2id hash takes `argon2_memory_kib` of memory for its whole run, so hashes running
//! at once are what sets a replica's memory under a burst of log-ins or sign-ups. They run
//! behind a semaphore sized from `auth.hash_memory_mib`; a bounded number may wait for a slot,
//! and a hash that finds the queue full or waits longer than `auth.hash_wait_ms` is refused with
//! [`HashError::Busy`] (503 with `Retry-After`), never queued without bound.
//!
//! Hashes run on as many dedicated threads as there are slots, not on tokio's blocking pool:
//! the allocator keeps freed memory per thread, so hashes spread over an ever-changing set of
//! pool threads would leave a hash's worth of memory behind on each of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use brigade_core::config::AuthSettings;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a password could not be hashed or checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken and the queue is full, or the wait was too long: retry
    /// after the given time.
    #[error("too many password checks at once")]
    Busy(Duration),
    /// The hashing task failed (a bug): logged by the caller.
    #[error("password hashing failed")]
    Failed,
}

/// Hashes and verifies passwords. Hashing is CPU-heavy by design, so it runs on threads of its
/// own, never on the async workers that serve other requests.
pub struct Passwords {
    params: Params,
    gate: HashGate,
    /// A hash of a random password, verified when an e-mail address is unknown so that a
    /// failed login takes as long whether or not the account exists. Made on first use: hashing
    /// it at start would cost start-up time and Argon2's memory before anyone logs in.
    decoy: tokio::sync::OnceCell<String>,
}

/// The semaphore, its bounded queue and the hashing threads.
struct HashGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    wait: Duration,
    /// Work for the hashing threads; they end when this sender is dropped.
    jobs: std::sync::mpsc::Sender<Job>,
}

/// One hash, with the slot it holds until it ends.
type Job = Box<dyn FnOnce() + Send>;

impl Passwords {
    /// Argon2id with the given memory (KiB) and iterations, one lane, one hash at a time and
    /// a short queue: for tools and tests.
    pub fn new(memory_kib: u32, iterations: u32) -> Self {
        Self::with_gate(memory_kib, iterations, 1, 1024, Duration::from_secs(60))
    }

    /// As configured: cost, parallel hashes from the memory budget, queue and wait.
    pub fn from_settings(settings: &AuthSettings) -> Self {
        Self::with_gate(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            parallel_hashes(settings.hash_memory_mib, settings.argon2_memory_kib),
            settings.hash_queue,
            Duration::from_millis(settings.hash_wait_ms),
        )
    }

    fn with_gate(
        memory_kib: u32,
        iterations: u32,
        slots: usize,
        queue: usize,
        wait: Duration,
    ) -> Self {
        let params = Params::new(memory_kib, iterations, 1, None).unwrap_or_default();
        Self {
            params,
            gate: HashGate {
                slots: Arc::new(Semaphore::new(slots)),
                waiting: AtomicUsize::new(0),
                queue,
                wait,
                jobs: hashing_threads(slots),
            },
            decoy: tokio::sync::OnceCell::new(),
        }
    }

    /// The PHC string of a new password.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.gate
            .run(move || hash_with(&params, &password).ok_or(HashError::Failed))
            .await?
    }

    /// Whether `password` matches `hash`; with `None` (no such account) the decoy is checked
    /// and the answer is always false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => self
                .decoy
                .get_or_try_init(|| self.hash(super::tokens::random_secret()))
                .await?
                .clone(),
        };
        let matched = self
            .gate
            .run(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matched)
    }
}

/// `count` threads taking hashing jobs from one channel. A thread that cannot be started is
/// logged; the others (or none: every hash then fails) go on.
fn hashing_threads(count: usize) -> std::sync::mpsc::Sender<Job> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    for index in 0..count {
        let receiver = Arc::clone(&receiver);
        let started = std::thread::Builder::new()
            .name(format!("password-hash-{index}"))
            .spawn(move || {
                loop {
                    // The lock is held only while taking a job, never while hashing.
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(error) = started {
            tracing::error!(%error, "cannot start a password hashing thread");
        }
    }
    sender
}

impl HashGate {
    /// Runs `work` on a hashing thread once a slot is free. The slot travels with the work,
    /// so a request that gives up (client gone, request timeout) keeps the slot taken until
    /// the hash really ends: the bound holds for memory, not only for requests.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self.acquire().await?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(permit);
        });
        self.jobs.send(job).map_err(|_| HashError::Failed)?;
        result.await.map_err(|_| HashError::Failed)
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let busy = HashError::Busy(self.wait.max(Duration::from_secs(1)));
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy);
        }
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match permit {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy),
        }
    }
}

/// Hashes of `memory_kib` each that fit in `budget_mib`, at least one.
fn parallel_hashes(budget_mib: u32, memory_kib: u32) -> usize {
    let fit = u64::from(budget_mib) * 1024 / u64::from(memory_kib.max(1));
    usize::try_from(fit).unwrap_or(usize::MAX).max(1)
}

fn hash_with(params: &Params, password: &str) -> Option<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .ok()
        .map(|hash| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let passwords = Passwords::new(64, 1);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("correct horse".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn parallel_hashes_follow_the_memory_budget() {
        assert_eq!(parallel_hashes(128, 19_456), 6);
        assert_eq!(parallel_hashes(1, 19_456), 1);
        assert_eq!(parallel_hashes(1, 64), 16);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once() {
        let passwords = Arc::new(Passwords::with_gate(4096, 8, 1, 2, Duration::from_secs(30)));
        let attempts: Vec<_> = (0..10)
            .map(|_| {
                let passwords = Arc::clone(&passwords);
                tokio::spawn(async move { passwords.hash("x".repeat(12)).await })
            })
            .collect();
        let mut busy = 0;
        for attempt in attempts {
            if let Err(HashError::Busy(_)) = attempt.await.unwrap() {
                busy += 1;
            }
        }
        // One runs, two wait, the other seven are refused without waiting.
        assert_eq!(busy, 7);
    }
}
