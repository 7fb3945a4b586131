//! Children tied to the supervisor's life by Linux's parent-death signal, for servers that are
//! not brigade and so cannot watch a stdin lifeline (the local standby's `postgres`).
//!
//! The signal is armed by util-linux's `setpriv --pdeathsig SIG -- program…`, which sets it
//! and then execs the program (same process, so its pid is the program's); brigade forbids
//! unsafe code, which arming it between fork and exec itself would take.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process. A
//! tokio worker thread could end while `up` lives on (a blocking section hands it to the
//! blocking pool, which retires idle threads), and the standby would be stopped for nothing. So
//! every tied child is forked by one dedicated thread that lives as long as the process: the
//! signal then means exactly "the supervisor is gone" — a crash, `SIGKILL`, or an exit that
//! skipped the orderly stop.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc as std_mpsc;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The program that arms the signal.
pub(crate) const SETPRIV: &str = "setpriv";

/// A request to the forking thread.
struct Request {
    command: Command,
    answer: oneshot::Sender<io::Result<Child>>,
}

/// The forking thread's inbox; set once, never dropped, so the thread never ends.
static FORKER: OnceLock<std_mpsc::Sender<Request>> = OnceLock::new();

/// `setpriv` on the `PATH`, if there is one.
pub(crate) fn setpriv() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(SETPRIV))
        .find(|candidate| candidate.is_file())
}

/// A command running `program` with `signal` (`INT`, `TERM`, …) as its parent-death signal.
pub(crate) fn command(setpriv: &Path, program: &Path, signal: &str) -> Command {
    let mut command = Command::new(setpriv);
    command
        .arg("--pdeathsig")
        .arg(signal)
        .arg("--")
        .arg(OsStr::new(program));
    command
}

/// Spawns `command` from the forking thread. Must be called within the tokio runtime (the
/// child is reaped by it).
pub(crate) async fn spawn(command: Command) -> io::Result<Child> {
    let forker = match FORKER.get() {
        Some(forker) => forker,
        None => {
            let runtime = tokio::runtime::Handle::current();
            let (sender, inbox) = std_mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("brigade-up-forker".into())
                .spawn(move || forker(runtime, inbox))?;
            // Another task may have set it meanwhile: its thread serves, this one ends with
            // its dropped sender.
            let _ = FORKER.set(sender);
            FORKER
                .get()
                .ok_or_else(|| io::Error::other("no forking thread"))?
        }
    };
    let (answer, answered) = oneshot::channel();
    forker
        .send(Request { command, answer })
        .map_err(|_| io::Error::other("the forking thread is gone"))?;
    answered
        .await
        .map_err(|_| io::Error::other("the forking thread did not answer"))?
}

/// Forks each requested child (inside `runtime`, so tokio reaps it) until every sender is gone.
fn forker(runtime: tokio::runtime::Handle, inbox: std_mpsc::Receiver<Request>) {
    let _entered = runtime.enter();
    for Request {
        mut command,
        answer,
    } in inbox
    {
        let _ = answer.send(command.spawn());
    }
}
