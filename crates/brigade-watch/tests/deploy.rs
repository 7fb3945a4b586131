//! The shipped deployment files: `deploy/watch.toml` loads, and routes, groups and inhibits
//! exactly like `deploy/alertmanager/alertmanager.yml`, which amtool accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use brigade_watch::WatchConfig;
use brigade_watch::config::RouteConfig;
use serde_yaml_ng::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// (matchers, receiver, group_by, continue) of one route.
type RouteRow = (Vec<String>, Option<String>, Option<Vec<String>>, bool);

/// Every route's row, depth first.
fn from_watch(route: &RouteConfig, out: &mut Vec<RouteRow>) {
    out.push((
        route.matchers.clone(),
        route.receiver.clone(),
        route.group_by.clone(),
        route.continue_,
    ));
    for child in &route.routes {
        from_watch(child, out);
    }
}

fn from_alertmanager(route: &Value, out: &mut Vec<RouteRow>) {
    out.push((
        strings(&route["matchers"]),
        route["receiver"].as_str().map(str::to_owned),
        route.get("group_by").map(strings),
        route["continue"].as_bool().unwrap_or(false),
    ));
    for child in route["routes"].as_sequence().into_iter().flatten() {
        from_alertmanager(child, out);
    }
}

#[test]
fn watch_toml_routes_like_alertmanager_yml() {
    let watch = WatchConfig::load(&deploy().join("watch.toml")).expect("deploy/watch.toml loads");
    assert!(watch.rule_files[0].ends_with("prometheus/rules/brigade.yml"));
    assert!(watch.rule_files[0].exists());
    let am: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy().join("alertmanager/alertmanager.yml")).unwrap(),
    )
    .unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    from_watch(&watch.route, &mut ours);
    from_alertmanager(&am["route"], &mut theirs);
    assert_eq!(ours, theirs);
    for (key, value) in [
        ("group_wait", &watch.route.group_wait),
        ("group_interval", &watch.route.group_interval),
        ("repeat_interval", &watch.route.repeat_interval),
    ] {
        let theirs = am["route"][key].as_str().map(|text| text.parse().unwrap());
        assert_eq!(*value, theirs, "{key}");
    }
    let inhibit: Vec<(Vec<String>, Vec<String>, Vec<String>)> = watch
        .inhibit_rules
        .iter()
        .map(|r| {
            (
                r.source_matchers.clone(),
                r.target_matchers.clone(),
                r.equal.clone(),
            )
        })
        .collect();
    let am_inhibit: Vec<(Vec<String>, Vec<String>, Vec<String>)> = am["inhibit_rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            (
                strings(&r["source_matchers"]),
                strings(&r["target_matchers"]),
                strings(&r["equal"]),
            )
        })
        .collect();
    assert_eq!(inhibit, am_inhibit);
    let names: Vec<&str> = watch.receivers.iter().map(|r| r.name.as_str()).collect();
    let am_names: Vec<&str> = am["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, am_names);
    let team = &watch.receivers[0];
    assert!(
        !team.slack_configs.is_empty()
            && !team.email_configs.is_empty()
            && !team.webhook_configs.is_empty()
    );
    assert!(!watch.receivers[1].pagerduty_configs.is_empty());
}

#[test]
fn amtool_and_promtool_accept_the_production_configs() {
    for (tool, args) in [
        (
            "amtool",
            vec![
                "check-config".to_owned(),
                deploy()
                    .join("alertmanager/alertmanager.yml")
                    .display()
                    .to_string(),
            ],
        ),
        (
            "promtool",
            vec![
                "check".to_owned(),
                "config".to_owned(),
                deploy()
                    .join("prometheus/prometheus.yml")
                    .display()
                    .to_string(),
            ],
        ),
    ] {
        match Command::new(tool).args(&args).output() {
            Ok(output) => assert!(
                output.status.success(),
                "{tool} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{tool} is required under CI=true (scripts/test installs it)")
            }
            Err(_) => eprintln!("{tool} not installed; skipped"),
        }
    }
}
