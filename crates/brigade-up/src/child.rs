//! One child process: spawned with its stdin as a lifeline, its output collected, its
//! `listening` line awaited, and its last words kept so a failure can name its real cause.

use std::collections::VecDeque;
use std::net::TcpListener as StdTcpListener;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_core::shutdown::EXIT_WITH_STDIN;
use command_fds::{CommandFdExt as _, FdMapping};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::logs::LogSink;

/// How long a child may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of a child's output kept to explain its failure.
const TAIL_LINES: usize = 4;
/// How long the output of a child that exited may take to be read to its end.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// The first inherited file descriptor (systemd's `SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

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
        /// What happened: its exit status and last output lines.
        reason: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// `serve`, `balance` or `watch`.
    pub service: crate::api::Service,
    /// Unique name, e.g. `serve-orders-2`.
    pub instance: String,
    /// Arguments after the binary.
    pub args: Vec<String>,
    /// Environment set on top of the supervisor's (which the child inherits).
    pub env: Vec<(String, String)>,
    /// Listening sockets the child inherits as file descriptors 3, 4, … with `LISTEN_FDS` set
    /// (systemd socket activation): the supervisor keeps them open across the child's
    /// restarts, so connections wait in the kernel's queue instead of being refused.
    pub listeners: Vec<Arc<StdTcpListener>>,
}

/// What [`Tail`] reads of a child's JSON log line (other fields are not read).
#[derive(serde::Deserialize)]
struct LogLineHead {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
    /// Usually text; any other JSON is not shown.
    #[serde(default)]
    error: Option<Value>,
}

/// The last lines a child wrote, shared with the tasks reading its output.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    /// Keeps what explains a failure: a line that is not JSON (a panic, clap's error), or a
    /// JSON line's message and error at WARN or ERROR.
    fn keep(&self, line: &str) {
        let kept = match serde_json::from_str::<LogLineHead>(line) {
            Ok(head) => {
                if !matches!(head.level.as_str(), "WARN" | "ERROR" | "warn" | "error") {
                    return;
                }
                match head.error.as_ref().and_then(Value::as_str) {
                    Some(error) => format!("{}: {error}", head.message),
                    None => head.message,
                }
            }
            _ if line.trim().is_empty() => return,
            _ => line.trim().to_owned(),
        };
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(kept);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join(" | ")
    }
}

/// The last `count` non-empty lines of `text`, joined: the cause of a failed one-shot command.
pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let tail = Tail::default();
    for line in text.lines() {
        tail.keep(line);
    }
    let kept = tail.text();
    let lines: Vec<&str> = kept.split(" | ").collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

/// The `listening` log line every brigade process writes once its socket is bound (other
/// fields of the line are not read).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Listening {
    /// `listening` (a line with another message is not this one).
    #[serde(default)]
    pub message: String,
    /// Where the process serves.
    #[serde(default)]
    pub address: Option<String>,
}

/// A started child.
pub struct Running {
    child: Child,
    /// Closing it asks the child to stop gracefully.
    stdin: Option<ChildStdin>,
    /// The child's `listening` log line (the address it bound).
    pub listening: Listening,
    /// Its process id.
    pub pid: u32,
    tail: Tail,
    readers: Vec<JoinHandle<()>>,
}

/// Starts `spec` and waits for its `listening` line.
pub async fn spawn(binary: &Path, spec: &ChildSpec, sink: &LogSink) -> Result<Running, ChildError> {
    let spawn_error = |source| ChildError::Spawn {
        binary: binary.display().to_string(),
        source,
    };
    let mut command = Command::new(binary);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .env(EXIT_WITH_STDIN, "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    inherit_listeners(&mut command, &spec.listeners).map_err(spawn_error)?;
    let child = command.spawn().map_err(spawn_error)?;
    // The command holds the child's copies of the inherited sockets: close them here.
    drop(command);
    let (mut running, listening_rx) = collect(child, spec, sink);
    let listening = tokio::select! {
        // An error here means stdout closed without the line: the child is exiting.
        listening = listening_rx => listening.map_err(|_| false),
        () = tokio::time::sleep(START_TIMEOUT) => Err(true),
    };
    match listening {
        Ok(listening) => {
            running.listening = listening;
            Ok(running)
        }
        Err(timed_out) => {
            let status = match tokio::time::timeout(OUTPUT_DRAIN, running.child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    let _ = running.child.start_kill();
                    running.child.wait().await
                }
            };
            let cause = running.cause(status).await;
            let reason = if timed_out {
                format!(
                    "no `listening` line within {} s; {cause}",
                    START_TIMEOUT.as_secs()
                )
            } else {
                cause
            };
            Err(ChildError::NotStarted {
                instance: spec.instance.clone(),
                reason,
            })
        }
    }
}

/// Takes over a spawned child: its stdin (the lifeline), its output read into the central log
/// and its tail; the receiver gets the first `listening` line on stdout.
fn collect(
    mut child: Child,
    spec: &ChildSpec,
    sink: &LogSink,
) -> (Running, oneshot::Receiver<Listening>) {
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let tail = Tail::default();
    let (listening_tx, listening_rx) = oneshot::channel();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(read_output(stdout, spec, sink, &tail, Some(listening_tx)));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(read_output(stderr, spec, sink, &tail, None));
    }
    let running = Running {
        child,
        stdin,
        listening: Listening::default(),
        pid,
        tail,
        readers,
    };
    (running, listening_rx)
}

/// Starts `program` — a server that is not brigade (the local standby's `postgres`), so it
/// neither logs a `listening` line nor treats the end of its stdin as a signal to stop — with
/// `spec`'s arguments and environment, its output collected like a brigade child's. Its lifeline
/// is the parent-death signal instead (see [`crate::tied`], through `setpriv`):
/// `on_parent_death` (e.g. `INT`) reaches it when the supervisor dies, however it dies. It
/// counts as started once spawned; whether it serves is for the caller to find out.
pub async fn spawn_tied(
    setpriv: &Path,
    program: &Path,
    spec: &ChildSpec,
    sink: &LogSink,
    on_parent_death: &str,
) -> Result<Running, ChildError> {
    let mut command = crate::tied::command(setpriv, program, on_parent_death);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = crate::tied::spawn(command)
        .await
        .map_err(|source| ChildError::Spawn {
            binary: program.display().to_string(),
            source,
        })?;
    Ok(collect(child, spec, sink).0)
}

/// Maps `listeners` to descriptors 3, 4, … of the child and says so in `LISTEN_FDS`.
fn inherit_listeners(
    command: &mut Command,
    listeners: &[Arc<StdTcpListener>],
) -> std::io::Result<()> {
    if listeners.is_empty() {
        return Ok(());
    }
    let mut mappings = Vec::with_capacity(listeners.len());
    for (listener, child_fd) in listeners.iter().zip(LISTEN_FDS_START..) {
        mappings.push(FdMapping {
            parent_fd: std::os::fd::OwnedFd::from(listener.try_clone()?),
            child_fd,
        });
    }
    command
        .fd_mappings(mappings)
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    command.env("LISTEN_FDS", listeners.len().to_string());
    command.env_remove("LISTEN_PID");
    command.env_remove("LISTEN_FDNAMES");
    Ok(())
}

/// Copies a child's output into the central log, keeps its tail and (on stdout) hands the
/// `listening` line over.
fn read_output(
    output: impl AsyncRead + Unpin + Send + 'static,
    spec: &ChildSpec,
    sink: &LogSink,
    tail: &Tail,
    mut listening_tx: Option<oneshot::Sender<Listening>>,
) -> JoinHandle<()> {
    let (sink, service, instance) = (sink.clone(), spec.service, spec.instance.clone());
    let tail = tail.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(tx) = listening_tx.take_if(|_| line.contains("\"listening\"")) {
                match serde_json::from_str::<Listening>(&line) {
                    Ok(listening) if listening.message == "listening" => {
                        let _ = tx.send(listening);
                    }
                    _ => listening_tx = Some(tx),
                }
            }
            tail.keep(&line);
            sink.write(service.as_str(), &instance, &line);
        }
    })
}

impl Running {
    /// The address in the `listening` line.
    pub fn address(&self) -> Option<String> {
        self.listening.address.clone()
    }

    /// Waits for the child to exit by itself.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Why the child ended: its exit status and the last lines it wrote (read to their end).
    pub async fn cause(&mut self, status: std::io::Result<ExitStatus>) -> String {
        for reader in std::mem::take(&mut self.readers) {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, reader).await;
        }
        let status = match status {
            Ok(status) => format!("exited with {status}"),
            Err(error) => format!("cannot wait for it: {error}"),
        };
        match self.tail.text() {
            last if last.is_empty() => status,
            last => format!("{status}: {last}"),
        }
    }

    /// Sends `signal` to the child (a server's own way to stop: SIGINT is PostgreSQL's fast
    /// shutdown), waits up to `grace`, then kills it.
    pub async fn interrupt(
        mut self,
        signal: rustix::process::Signal,
        grace: Duration,
    ) -> Option<ExitStatus> {
        // A child already reaped keeps its status; its pid may belong to someone else by now.
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, signal);
        }
        self.wait_or_kill(grace).await
    }

    /// Asks the child to stop (closes its stdin: it drains like on SIGTERM), waits up to
    /// `grace`, then kills it.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        self.wait_or_kill(grace).await
    }

    /// Waits up to `grace` for the child to exit after it was asked to, then kills it.
    async fn wait_or_kill(&mut self, grace: Duration) -> Option<ExitStatus> {
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
