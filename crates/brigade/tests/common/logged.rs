//! A child `brigade` process started with `--log-format json`, whose log lines arrive on a
//! channel: tests wait for what the process says (`listening`, `reloaded`, …) instead of
//! sleeping, and read the fields of the line they waited for.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How the lines on standard output are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Every line must be JSON: one that is not ends the channel, so the next wait fails
    /// naming it (for the tests of the log format itself).
    JsonOnly,
    /// Lines that are not JSON (a banner, a child's plain text) are passed over.
    SkipOther,
}

/// A running child whose JSON log lines arrive in order; killed when dropped.
pub struct Logged {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Logged {
    /// Spawns `command` with standard output piped (standard error as the command set it,
    /// inherited by default) and forwards each line.
    pub fn spawn(mut command: Command, stdout: Stdout) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("brigade starts");
        let (sender, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let value = match serde_json::from_str::<Value>(&line) {
                    Ok(value) => value,
                    Err(_) if stdout == Stdout::SkipOther => continue,
                    Err(error) => panic!("log line is not JSON ({error}): {line}"),
                };
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line whose `message` is `message`, waiting up to `limit`; fails the test
    /// naming the message when none comes (or the process ended).
    pub fn wait_for(&self, message: &str, limit: Duration) -> Value {
        loop {
            match self.lines.recv_timeout(limit) {
                Ok(line) if line["message"] == message => return line,
                Ok(_) => {}
                Err(error) => panic!("no {message:?} log line: {error}"),
            }
        }
    }

    /// The address of the `listening` line (waits up to 60 s: a cold debug build is slow).
    pub fn listening(&self) -> String {
        let line = self.wait_for("listening", Duration::from_secs(60));
        line["address"]
            .as_str()
            .expect("the listening line has an address")
            .to_owned()
    }

    /// The lines not yet waited for.
    pub fn lines(&self) -> &mpsc::Receiver<Value> {
        &self.lines
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `name` (`TERM`, `HUP`, `KILL`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// SIGTERM, then waits for the exit, which must be clean (status 0).
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.child.wait().expect("the process is waited for");
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
