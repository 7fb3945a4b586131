//! `brigade watch` on the command line: `rules check` like promtool, and config errors that
//! name the file or key.

use std::path::Path;
use std::process::Command;

const BRIGADE: &str = env!("CARGO_BIN_EXE_brigade");

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BRIGADE).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn rules_check_accepts_the_shipped_rules() {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/rules/brigade.yml");
    let (ok, stdout, _) = run(&["watch", "rules", "check", shipped.to_str().unwrap()]);
    assert!(ok, "{stdout}");
    // Every alerting and recording rule of the file is counted.
    let text = std::fs::read_to_string(&shipped).unwrap();
    let rules = text
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("- alert:") || line.starts_with("- record:"))
        .count();
    assert!(rules >= 11, "{rules} rules in {}", shipped.display());
    assert!(
        stdout.contains(&format!("SUCCESS: {rules} rules found")),
        "{stdout}"
    );
}

#[test]
fn rules_check_names_the_rule_and_the_unsupported_function() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: capacity\n    rules:\n      - alert: DiskFillsUp\n        expr: predict_linear(free_bytes[1h], 4 * 3600) < 0\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run(&["watch", "rules", "check", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains(
            r#"group "capacity", rule "DiskFillsUp": unsupported function predict_linear()"#
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 rule file(s) failed the check"),
        "{stderr}"
    );
}

#[test]
fn config_errors_name_the_file_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (ok, _, stderr) = run(&["watch", "--config", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("missing.toml does not exist"), "{stderr}");

    let bad = dir.path().join("watch.toml");
    std::fs::write(&bad, "[scrape]\ninterval = \"soon\"\n").unwrap();
    let (ok, _, stderr) = run(&["watch", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("scrape.interval"), "{stderr}");

    std::fs::write(
        &bad,
        "[route]\nreceiver = \"nobody\"\n[[receivers]]\nname = \"team\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&["watch", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("route.receiver") && stderr.contains("nobody"),
        "{stderr}"
    );
}
