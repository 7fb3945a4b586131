//! brigade's evaluator and promtool agree on the shipped rules.
//!
//! `deploy/prometheus/rules/brigade_test.yml` holds promtool unit tests (input series in
//! promtool's expanding notation, expected alerts with labels and annotations at given times).
//! This test runs `promtool test rules` on it, then replays the same series through brigade's
//! rule engine with promtool's schedule (samples every `interval`, rules evaluated every
//! `evaluation_interval` from time zero) and requires exactly the expected alerts — so both
//! reach the same alerts, labels and annotations from the same input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use brigade_watch::labels::Labels;
use brigade_watch::rules::{self, AlertState, parse_duration_ms};
use brigade_watch::tsdb::{Tsdb, stale_marker};
use serde::Deserialize;

#[derive(Deserialize)]
struct TestFile {
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize, Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// promtool's expanding notation: `a+bxn` (n+1 values), `a-bxn`, `_` (no sample), `_xn`,
/// `stale`, plain numbers.
fn expand(values: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for token in values.split_whitespace() {
        if token == "_" {
            out.push(None);
        } else if token == "stale" {
            out.push(Some(stale_marker()));
        } else if let Some((head, times)) = token.split_once('x') {
            let n: usize = times.parse().expect("repeat count");
            if head == "_" {
                out.extend(std::iter::repeat_n(None, n));
                continue;
            }
            let split = head[1..]
                .find(['+', '-'])
                .map(|i| i + 1)
                .expect("a+b or a-b");
            let start: f64 = head[..split].parse().expect("start");
            let step: f64 = head[split..].parse().expect("step");
            out.extend((0..=n).map(|i| Some(start + step * i as f64)));
        } else {
            out.push(Some(token.parse().expect("number")));
        }
    }
    out
}

fn series_labels(text: &str) -> Labels {
    let parsed = brigade_watch::textformat::parse(&format!("{text} 0")).expect("series");
    parsed[0].labels.clone()
}

fn brigade_results(file: &Path) -> Vec<(String, String, Vec<ExpAlert>, Vec<ExpAlert>)> {
    let test_file: TestFile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let dir = file.parent().unwrap();
    let eval_every =
        parse_duration_ms(test_file.evaluation_interval.as_deref().unwrap_or("1m")).unwrap();
    let mut outcomes = Vec::new();
    for group in &test_file.tests {
        let paths: Vec<PathBuf> = test_file.rule_files.iter().map(|f| dir.join(f)).collect();
        let mut groups = rules::load_files(&paths).unwrap();
        let step = parse_duration_ms(group.interval.as_deref().unwrap_or("1m")).unwrap();
        let mut db = Tsdb::new(i64::MAX / 4, 1_000_000);
        for input in &group.input_series {
            let labels = series_labels(&input.series);
            for (i, value) in expand(&input.values).into_iter().enumerate() {
                if let Some(value) = value {
                    db.append(&labels, i as i64 * step, value);
                }
            }
        }
        let mut checks: Vec<(i64, &AlertTest)> = group
            .alert_rule_test
            .iter()
            .map(|t| (parse_duration_ms(&t.eval_time).unwrap(), t))
            .collect();
        checks.sort_by_key(|(t, _)| *t);
        let end = checks.last().map(|(t, _)| *t).unwrap_or(0);
        let mut t = 0;
        while t <= end {
            for rule_group in &mut groups {
                rule_group.eval(&mut db, t);
            }
            for (_, test) in checks.iter().filter(|(at, _)| *at == t) {
                let mut got: Vec<ExpAlert> = groups
                    .iter()
                    .flat_map(|g| g.alerting_rules())
                    .filter(|r| r.name == test.alertname)
                    .flat_map(|r| r.active.values())
                    .filter(|a| a.state == AlertState::Firing)
                    .map(|a| {
                        let mut labels = a.labels.clone();
                        labels.remove("alertname");
                        ExpAlert {
                            exp_labels: labels,
                            exp_annotations: a.annotations.clone(),
                        }
                    })
                    .collect();
                got.sort();
                let mut expected = test.exp_alerts.clone();
                expected.sort();
                outcomes.push((
                    test.alertname.clone(),
                    test.eval_time.clone(),
                    expected,
                    got,
                ));
            }
            t += eval_every;
        }
    }
    outcomes
}

#[test]
fn brigade_and_promtool_agree_on_the_shipped_rules() {
    let file = repo_root().join("deploy/prometheus/rules/brigade_test.yml");
    match Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "promtool test rules failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("promtool is required under CI=true (scripts/test installs it)")
        }
        Err(_) => eprintln!("promtool not installed; checking brigade's side only"),
    }
    let outcomes = brigade_results(&file);
    assert!(outcomes.len() >= 10, "every alert is tested");
    let mut fired = std::collections::BTreeSet::new();
    for (alert, at, expected, got) in &outcomes {
        assert_eq!(
            got, expected,
            "{alert} at {at}: brigade differs from promtool's expectation"
        );
        if !got.is_empty() {
            fired.insert(alert.clone());
        }
    }
    // Every shipped alert fires in at least one case.
    let shipped =
        rules::load_files(&[repo_root().join("deploy/prometheus/rules/brigade.yml")]).unwrap();
    for rule in shipped.iter().flat_map(|g| g.alerting_rules()) {
        assert!(
            fired.contains(&rule.name),
            "{} never fires in brigade_test.yml",
            rule.name
        );
    }
}

#[test]
fn the_shipped_rules_pass_brigade_watch_rules_check() {
    let groups =
        rules::load_files(&[repo_root().join("deploy/prometheus/rules/brigade.yml")]).unwrap();
    let names: Vec<String> = groups
        .iter()
        .flat_map(|g| g.alerting_rules())
        .map(|r| r.name.clone())
        .collect();
    for expected in [
        "BrigadeHighErrorRate",
        "BrigadeHighCpu",
        "BrigadeSlowResponses",
        "BrigadePaymentsFailing",
        "BrigadeReplicaDown",
        "BrigadeNoHealthyBackends",
        "BrigadeErrorBudgetBurn",
        "BrigadeDatabaseUnavailable",
        "Watchdog",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} is missing");
    }
    for rule in groups.iter().flat_map(|g| g.alerting_rules()) {
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule.annotations.contains_key(key),
                "{}: no {key}",
                rule.name
            );
        }
        assert!(
            rule.labels.contains_key("severity"),
            "{}: no severity",
            rule.name
        );
        let anchor = rule.annotations["runbook_url"]
            .rsplit('#')
            .next()
            .unwrap()
            .to_owned();
        let runbooks =
            std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap_or_default();
        assert!(
            runbooks.to_lowercase().contains(&format!("## {anchor}")),
            "{}: docs/operations.md has no runbook section {anchor}",
            rule.name
        );
    }
}
