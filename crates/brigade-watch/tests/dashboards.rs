//! Every metric a Grafana dashboard or an alert rule queries is one brigade really exports.
//!
//! Queries are parsed with the PromQL parser (so they are valid PromQL too), and each selected
//! metric name must appear as a string literal in some crate's source (histogram series by
//! their base name): a renamed metric breaks this test instead of a dashboard going blank.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// All Rust source of the workspace's crates, tests excluded.
fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n != "tests" && n != "target")
                {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = String::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let src = krate.path().join("src");
        if src.is_dir() {
            walk(&src, &mut out);
        }
    }
    out
}

fn names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(vs) => out.extend(vs.name.clone()),
        Expr::MatrixSelector(ms) => out.extend(ms.vs.name.clone()),
        Expr::Aggregate(a) => names(&a.expr, out),
        Expr::Unary(u) => names(&u.expr, out),
        Expr::Binary(b) => {
            names(&b.lhs, out);
            names(&b.rhs, out);
        }
        Expr::Paren(p) => names(&p.expr, out),
        Expr::Subquery(s) => names(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| names(a, out)),
        _ => {}
    }
}

/// Grafana's variables replaced by values, so the text is plain PromQL.
fn plain(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$job", ".*")
        .replace("$pool", ".*")
}

fn exported(name: &str, source: &str) -> bool {
    let literal = |n: &str| source.contains(&format!("\"{n}\""));
    literal(name)
        || ["_bucket", "_count", "_sum"]
            .iter()
            .any(|suffix| name.strip_suffix(suffix).is_some_and(literal))
}

fn dashboard_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    ("definition", Value::String(def)) => {
                        // label_values(metric, label)
                        if let Some(inner) = def.strip_prefix("label_values(") {
                            out.push(inner.split(',').next().unwrap().to_owned());
                        }
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_and_rules_query_only_exported_metrics() {
    let source = sources();
    let mut checked = BTreeSet::new();
    let dir = root().join("deploy/grafana/dashboards");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        files += 1;
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
        let mut queries = Vec::new();
        dashboard_queries(&dashboard, &mut queries);
        assert!(queries.len() >= 5, "{}: too few queries", path.display());
        for query in queries {
            let expr = promql_parser::parser::parse(&plain(&query))
                .unwrap_or_else(|e| panic!("{}: {query}: {e}", path.display()));
            let mut found = BTreeSet::new();
            names(&expr, &mut found);
            assert!(!found.is_empty(), "{query} selects no metric");
            for name in found {
                assert!(
                    exported(&name, &source),
                    "{}: {name} is not exported by brigade ({query})",
                    path.display()
                );
                checked.insert(name);
            }
        }
    }
    assert_eq!(files, 3, "service, balancer and machine dashboards");

    let groups =
        brigade_watch::rules::load_files(&[root().join("deploy/prometheus/rules/brigade.yml")])
            .unwrap();
    for rule in groups.iter().flat_map(|g| g.alerting_rules()) {
        let expr = promql_parser::parser::parse(rule.query.text()).unwrap();
        let mut found = BTreeSet::new();
        names(&expr, &mut found);
        for name in found {
            assert!(
                exported(&name, &source),
                "rule {}: {name} is not exported by brigade",
                rule.name
            );
            checked.insert(name);
        }
    }
    // The names the issue promises are among them.
    for name in [
        "brigade_payments_total",
        "brigade_log_events_total",
        "brigade_balance_backend_healthy",
        "up",
    ] {
        assert!(checked.contains(name), "{name} is not used anywhere");
    }
}

#[test]
fn the_check_catches_a_made_up_metric() {
    assert!(!exported("brigade_made_up_total", &sources()));
    assert!(exported(
        "http_server_request_duration_seconds_bucket",
        &sources()
    ));
}
