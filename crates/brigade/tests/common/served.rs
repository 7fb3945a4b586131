//! A child `brigade` that serves HTTP (`serve`, `watch`, `balance`), and the address its
//! `listening` line names: the one shape every end-to-end test starts its processes in.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::logged::{Logged, Stdout};
use super::{DEMO_PASSWORD, brigade_json};

/// A running child and the address it listens on; killed when dropped.
pub struct Served {
    /// The process and its log lines.
    pub process: Logged,
    /// `host:port` of its `listening` line.
    pub address: String,
}

impl Served {
    /// Spawns `command` and returns once it logs `listening`.
    pub fn spawn(command: Command, stdout: Stdout) -> Self {
        let process = Logged::spawn(command, stdout);
        let address = process.listening();
        Self { process, address }
    }

    /// `brigade ARGS` with extra environment variables (settings), lines that are not JSON
    /// passed over.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = brigade_json(args);
        command.envs(env.iter().copied());
        Self::spawn(command, Stdout::SkipOther)
    }

    /// `brigade serve` on a free port over `data_dir`, with the tests' demo password; every
    /// line it writes must be JSON.
    pub fn replica(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = brigade_json(&["serve", "--listen", "127.0.0.1:0"]);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
            .envs(env.iter().copied());
        Self::spawn(command, Stdout::JsonOnly)
    }

    /// `http://address` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Waits (up to 30 s) for a log line with this message and returns it.
    pub fn wait_for(&self, message: &str) -> Value {
        self.process.wait_for(message, Duration::from_secs(30))
    }

    /// Sends SIGTERM: a graceful stop.
    pub fn terminate(&self) {
        self.process.signal("TERM");
    }

    /// Stops the process and waits for it.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
