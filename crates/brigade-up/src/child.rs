//! One child process: spawned with its stdin as a lifeline, its output collected, its
//! `listening` line awaited.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use brigade_core::shutdown::EXIT_WITH_STDIN;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::logs::LogSink;

/// How long a child may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The executable could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited or stayed silent before logging `listening`.
    #[error("{instance} did not start: {reason}")]
    NotStarted {
        /// Which child.
        instance: String,
        /// What happened.
        reason: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// `serve`, `balance` or `watch`.
    pub service: &'static str,
    /// Unique name, e.g. `serve-orders-2`.
    pub instance: String,
    /// Arguments after the binary.
    pub args: Vec<String>,
    /// Environment set on top of the supervisor's (which the child inherits).
    pub env: Vec<(String, String)>,
}

/// A started child.
pub struct Running {
    child: Child,
    /// Closing it asks the child to stop gracefully.
    stdin: Option<ChildStdin>,
    /// The child's `listening` log line (addresses it bound).
    pub listening: Value,
    /// Its process id.
    pub pid: u32,
}

/// Starts `spec` and waits for its `listening` line.
pub async fn spawn(binary: &Path, spec: &ChildSpec, sink: &LogSink) -> Result<Running, ChildError> {
    let mut child = Command::new(binary)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .env(EXIT_WITH_STDIN, "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ChildError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let (listening_tx, listening_rx) = oneshot::channel();
    if let Some(stdout) = child.stdout.take() {
        let (sink, service, instance) = (sink.clone(), spec.service, spec.instance.clone());
        tokio::spawn(async move {
            let mut listening_tx = Some(listening_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(tx) = listening_tx.take_if(|_| line.contains("\"listening\"")) {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(value) if value["message"] == "listening" => {
                            let _ = tx.send(value);
                        }
                        _ => listening_tx = Some(tx),
                    }
                }
                sink.write(service, &instance, &line);
            }
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let (sink, service, instance) = (sink.clone(), spec.service, spec.instance.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.write(service, &instance, &line);
            }
        });
    }
    let listening = tokio::select! {
        listening = listening_rx => listening.ok(),
        status = child.wait() => {
            return Err(ChildError::NotStarted {
                instance: spec.instance.clone(),
                reason: match status {
                    Ok(status) => format!("exited with {status}; see `brigade logs --grep {}`", spec.instance),
                    Err(error) => error.to_string(),
                },
            });
        }
        () = tokio::time::sleep(START_TIMEOUT) => None,
    };
    match listening {
        Some(listening) => Ok(Running {
            child,
            stdin,
            listening,
            pid,
        }),
        None => {
            let _ = child.start_kill();
            Err(ChildError::NotStarted {
                instance: spec.instance.clone(),
                reason: "no `listening` line in time".into(),
            })
        }
    }
}

impl Running {
    /// The address in the `listening` line's `field`.
    pub fn address(&self, field: &str) -> Option<String> {
        self.listening[field].as_str().map(str::to_owned)
    }

    /// Waits for the child to exit by itself.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Asks the child to stop (closes its stdin: it drains like on SIGTERM), waits up to
    /// `grace`, then kills it.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(pid = self.pid, "child did not stop in time; killing it");
                let _ = self.child.kill().await;
                self.child.wait().await.ok()
            }
        }
    }
}
