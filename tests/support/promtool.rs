//! `promtool check metrics` for the tests of every crate that serves `/metrics`, included by
//! path (`#[path = ".../tests/support/promtool.rs"] mod promtool;`) so each test binary
//! compiles the one copy. promtool comes from Debian's `prometheus` package, installed by
//! scripts/test; under `CI=true` its absence fails the test, elsewhere the lint is skipped.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Asserts that promtool accepts `exposition`; `what` names it in the failure.
pub fn assert_accepts(exposition: &str, what: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required under CI (scripts/test installs it): {error}"
            );
            eprintln!("promtool not installed; skipping the exposition lint of {what}");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("promtool's stdin is piped")
        .write_all(exposition.as_bytes())
        .expect("promtool reads its stdin");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics {what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
