//! Rule loading and the pending → firing → resolved state machine.

use super::*;
use crate::labels::labels;

const S: i64 = 1000;

const FILE: &str = r#"
groups:
  - name: g
    rules:
      - alert: High
        expr: m > 10
        for: 30s
        keep_firing_for: 20s
        labels:
          severity: critical
          team: "{{ $labels.job }}-team"
        annotations:
          summary: "{{ $labels.job }} at {{ $value }}"
      - record: job:m:max
        expr: max by (job) (m)
"#;

fn rule(groups: &mut [RuleGroup]) -> &mut AlertingRule {
    groups[0].alerting_rules_mut().next().unwrap()
}

#[test]
fn pending_firing_keep_firing_resolved() {
    let mut groups = parse(FILE, "test.yml").unwrap();
    let mut db = Tsdb::new(3_600 * S, 100);
    let m = labels([("__name__", "m"), ("job", "orders")]);
    let mut states = Vec::new();
    // Above the threshold from 0 s to 60 s, then gone (stale) from 70 s.
    for step in 0..=12 {
        let t = step * 10 * S;
        if step <= 6 {
            db.append_scrape("t", t, &[(m.clone(), 20.0 + step as f64)]);
        } else {
            db.append_scrape("t", t, &[]);
        }
        groups[0].eval(&mut db, t);
        let alert = rule(&mut groups).active.values().next().cloned();
        states.push(alert.map(|a| a.state));
    }
    use AlertState::*;
    assert_eq!(
        states,
        vec![
            Some(Pending),
            Some(Pending),
            Some(Pending), // 0, 10, 20 s: held < 30 s
            Some(Firing),
            Some(Firing),
            Some(Firing),
            Some(Firing), // 30..60 s
            Some(Firing),
            Some(Firing), // 70, 80 s: missing, kept firing for 20 s
            Some(Inactive),
            Some(Inactive),
            Some(Inactive),
            Some(Inactive), // resolved at 90 s
        ]
    );
    let alert = rule(&mut groups).active.values().next().cloned().unwrap();
    assert_eq!(alert.resolved_at, Some(90 * S));
    assert_eq!(alert.fired_at, Some(30 * S));
    assert_eq!(alert.labels["alertname"], "High");
    assert_eq!(alert.labels["team"], "orders-team");
    assert_eq!(alert.labels["severity"], "critical");
    assert!(!alert.labels.contains_key("__name__"));
    assert_eq!(alert.annotations["summary"], "orders at 26");
    // The recording rule wrote its series.
    assert!(db.series_named("job:m:max").next().is_some());
}

#[test]
fn a_pending_alert_that_stops_holding_is_dropped() {
    let mut groups = parse(FILE, "test.yml").unwrap();
    let mut db = Tsdb::new(3_600 * S, 100);
    let m = labels([("__name__", "m"), ("job", "orders")]);
    db.append_scrape("t", 0, &[(m.clone(), 20.0)]);
    groups[0].eval(&mut db, 0);
    db.append_scrape("t", 10 * S, &[(m, 5.0)]);
    let transitions = groups[0].eval(&mut db, 10 * S);
    assert!(transitions.is_empty());
    assert!(rule(&mut groups).active.is_empty());
}

#[test]
fn for_zero_fires_at_once() {
    let text = "groups: [{name: g, rules: [{alert: A, expr: vector(1)}]}]";
    let mut groups = parse(text, "x.yml").unwrap();
    let mut db = Tsdb::new(S, 10);
    let transitions = groups[0].eval(&mut db, 0);
    assert_eq!(transitions.last().unwrap().alert.state, AlertState::Firing);
}

#[test]
fn rejections_name_the_rule_and_the_reason() {
    let check = |text: &str, expected: &str| {
        let error = parse(text, "f.yml").unwrap_err().to_string();
        assert!(
            error.contains(expected),
            "{error} does not contain {expected}"
        );
    };
    check(
        "groups: [{name: g, rules: [{alert: Trend, expr: 'predict_linear(m[1h], 3600) < 0'}]}]",
        r#"f.yml: group "g", rule "Trend": unsupported function predict_linear()"#,
    );
    check(
        "groups: [{name: g, rules: [{alert: A, expr: 'sum(('}]}]",
        r#"rule "A": parse error"#,
    );
    check(
        "groups: [{name: g, rules: [{alert: A, expr: m, for: 5x}]}]",
        "invalid duration",
    );
    check(
        "groups: [{name: g, rules: [{alert: A, expr: m, annotations: {s: '{{ $value | title }}'}}]}]",
        "function title is not supported",
    );
    check(
        "groups: [{name: g, rules: [{alert: A, record: b, expr: m}]}]",
        "exactly one of",
    );
    check(
        "groups: [{name: g, rules: []}, {name: g, rules: []}]",
        "used twice",
    );
    check(
        "groups: [{name: g, rules: [{alert: A, expr: m, unknown: 1}]}]",
        "unknown field",
    );
}

/// A bare number of seconds out of range (`for: -1`) is an error, not a panic in the parser.
#[test]
fn number_durations_out_of_range_are_errors() {
    for text in ["-1", "1e30", "inf", "NaN"] {
        assert!(parse_duration_ms(text).is_err(), "{text}");
    }
    assert_eq!(parse_duration_ms("90"), Ok(90_000));
    assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
}
