//! One shutdown signal for the whole process.
//!
//! Modelled on mini-redis: the signal is a value passed to every task that must stop, rather than
//! a global, so tests can trigger it without sending a real signal and each task decides where it
//! is safe to stop.

use tokio::sync::watch;

/// A cloneable handle: `trigger()` starts shutdown, `wait()` resolves once it has started.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Self { sender }
    }

    /// Starts shutdown. Calling it again is harmless.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves when shutdown starts (immediately if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // `wait_for` checks the current value first, so a trigger before the call is not missed.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }

    /// Triggers this handle when the process receives SIGTERM or SIGINT (Ctrl-C).
    ///
    /// Spawned as a task so that the caller keeps one future to await: `wait()`.
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            termination_signal().await;
            tracing::info!("shutdown signal received");
            this.trigger();
        });
    }
}

/// Resolves on the first SIGTERM or SIGINT (only Ctrl-C on platforms without Unix signals).
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
        () = supervisor_gone() => {}
    }
}

/// Set by a supervisor (`brigade up`) on its children: the child then treats the end of its
/// standard input as a termination signal. The supervisor holds the other end of the pipe, so
/// closing it stops the child gracefully, and when the supervisor dies for any reason (even
/// SIGKILL) the kernel closes it and the child stops too: no orphans, and no unsafe
/// `prctl(PR_SET_PDEATHSIG)` in a `pre_exec` hook.
pub const EXIT_WITH_STDIN: &str = "BRIGADE_EXIT_WITH_STDIN";

/// Resolves when standard input reaches its end, if [`EXIT_WITH_STDIN`] is set; never otherwise.
async fn supervisor_gone() {
    if std::env::var_os(EXIT_WITH_STDIN).is_none() {
        return std::future::pending().await;
    }
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buffer = [0_u8; 256];
        // Anything written is ignored; only the end of the stream matters.
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = sender.send(());
    });
    let _ = receiver.await;
    tracing::info!("supervisor closed standard input");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_sees_an_earlier_trigger() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
