//! Error tracking end to end on a real `brigade up`: browser error reports through the
//! balancer and a replica's injected 500 become error groups on the ops API (repeats counted
//! in one group, ids masked), a resolved group that comes back reopens and counts as opened
//! again on `/metrics`, bad reports are answered with a problem naming the field, and a client
//! that keeps reporting gets 429 with `Retry-After`; watch fires `BrigadeNewErrorGroup`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use brigade_up::api::{ErrorGroup, ErrorGroupList, ErrorGroupState, ErrorKind};
use brigade_watch::contract::{AlertState, AlertsAnswer, QueryAnswer, QueryData};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use common::{Running, Up, wait_until};

/// `GET /api/errors` of the ops API.
fn groups(up: &Up, query: &str) -> Vec<ErrorGroup> {
    let list: ErrorGroupList =
        reqwest::blocking::get(format!("http://{}/api/errors{query}", up.ops))
            .unwrap()
            .json()
            .unwrap();
    list.groups
}

/// The groups of `kind`, waiting until there are `count` of them.
fn wait_for_groups(up: &Up, kind: ErrorKind, count: usize) -> Vec<ErrorGroup> {
    let mut found = Vec::new();
    wait_until(
        &format!("{count} {kind:?} groups"),
        Duration::from_secs(15),
        || {
            found = groups(up, "")
                .into_iter()
                .filter(|g| g.kind == kind)
                .collect();
            found.len() == count
        },
    );
    found
}

/// A report of an error thrown on the ordering page.
fn thrown(message: &str, line: u32) -> Value {
    json!({"kind": "error", "message": message, "page": "/?from=mail#top",
           "frames": [format!("at placeOrder (http://127.0.0.1/assets/ordering.js?v=1:{line}:7)"),
                      "at HTMLFormElement.<anonymous> (http://127.0.0.1/assets/ordering.js:90:3)"]})
}

fn report(client: &Client, base: &str, body: &Value) -> reqwest::blocking::Response {
    client
        .post(format!("{base}/api/v1/client-errors"))
        .json(body)
        .send()
        .unwrap()
}

#[test]
fn errors_are_grouped_resolved_reopened_validated_and_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path());
    let client = Client::new();
    let public = up.url("");
    let watch = watch_with_the_counter_at_zero(&up, &client);

    // The same error twice (other numbers), and another one, through the balancer.
    for body in [
        thrown("cart 17 is empty", 12),
        thrown("cart 18 is empty", 14),
        thrown("menu is not an array", 12),
    ] {
        assert_eq!(report(&client, &public, &body).status(), 202);
    }
    let mut thrown_groups = wait_for_groups(&up, ErrorKind::ClientError, 2);
    thrown_groups.sort_by_key(|g| g.count);
    let (menu, cart) = (&thrown_groups[0], &thrown_groups[1]);
    assert_eq!((cart.count, menu.count), (2, 1));
    assert_eq!(cart.title, "cart <n> is empty");
    assert_eq!(cart.route.as_deref(), Some("/"), "no query or fragment");
    assert_eq!(cart.frames[0], "at placeOrder (/assets/ordering.js:14:7)");
    assert_eq!(cart.release, env!("CARGO_PKG_VERSION"));
    assert_eq!(cart.service, "serve");
    assert_eq!(cart.state, ErrorGroupState::Open);
    assert_eq!(cart.trace_ids.len(), 2, "each report's trace is a sample");
    assert!(cart.first_seen <= cart.last_seen);

    // A server 5xx with its internal cause: one replica's fault switch fails every request.
    let replica = up.replica_in("orders");
    fail_three_requests(&client, &replica);
    let injected = wait_for_groups(&up, ErrorKind::InjectedFault, 1);
    assert_eq!(injected[0].count, 3);
    assert_eq!(injected[0].route.as_deref(), Some("/api/v1/shops"));
    assert_eq!(injected[0].trace_ids.len(), 3);

    // Resolved, then seen again: open again, counted as opened on /metrics.
    resolve_through_the_ops_api(&up, &client, &cart.fingerprint);
    assert_eq!(
        report(&client, &public, &thrown("cart 19 is empty", 20)).status(),
        202
    );
    wait_until("the group to reopen", Duration::from_secs(15), || {
        groups(&up, "?state=open")
            .iter()
            .any(|g| g.fingerprint == cart.fingerprint && g.reopened == 1 && g.count == 3)
    });
    let metrics = client
        .get(format!("http://{}/metrics", up.ops))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("brigade_error_groups_opened_total{kind=\"client-error\"} 3"),
        "two new groups and one reopened:\n{metrics}"
    );
    assert!(metrics.contains("brigade_error_groups_open{kind=\"injected-fault\"} 1"));
    promtool_accepts(&metrics);

    bad_reports_name_their_field(&client, &public);

    // A client that keeps reporting to one replica is told to wait.
    let limited = (0..40)
        .map(|n| report(&client, &replica, &thrown(&format!("flood {n}"), 1)))
        .find(|answer| answer.status() == 429)
        .expect("the rate limit refuses a flood");
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );

    the_alert_fires(&client, &watch);
    groups_outlive_a_killed_supervisor(up, dir.path());
}

/// The supervisor killed with SIGKILL, and a new `up` on the same data directory: every group
/// is there again, counts, states and samples as they were.
fn groups_outlive_a_killed_supervisor(up: Up, data_dir: &std::path::Path) {
    let by_fingerprint = |mut list: Vec<ErrorGroup>| {
        list.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        list
    };
    let before = by_fingerprint(groups(&up, ""));
    let saved = data_dir.join("up/error-groups.json");
    // The saver writes at most a second after a change: wait until the file holds them all.
    wait_until("the groups to be saved", Duration::from_secs(15), || {
        let file = std::fs::read(&saved).ok();
        let file: Option<Value> = file.and_then(|text| serde_json::from_slice(&text).ok());
        let held = file.and_then(|file| serde_json::from_value(file["groups"].clone()).ok());
        held.map(by_fingerprint).as_ref() == Some(&before)
    });
    drop(up); // SIGKILL, as `Logged` stops its process
    let again = Up::start(data_dir);
    let after = by_fingerprint(groups(&again, ""));
    assert_eq!(after, before);
    assert!(after.iter().any(|g| g.reopened == 1));
}

/// `promtool check metrics` finds no problem in the exposition.
fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed; skipping its check");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Turns the replica's fault switch on, has it answer three requests with 500, turns it off.
fn fail_three_requests(client: &Client, replica: &str) {
    let admin = common::log_in_at(replica, "admin@brigade.demo");
    let faults = |ratio: f64| {
        let answer = client
            .put(format!("{replica}/api/v1/admin/faults"))
            .bearer_auth(&admin)
            .json(&json!({"error_ratio": ratio}))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
    };
    faults(1.0);
    for _ in 0..3 {
        let failed = client
            .get(format!("{replica}/api/v1/shops"))
            .send()
            .unwrap();
        assert_eq!(failed.status(), 500);
    }
    faults(0.0);
}

/// Invalid, malformed, mistyped and oversized reports are refused with a problem.
fn bad_reports_name_their_field(client: &Client, public: &str) {
    for (body, field) in [
        (
            json!({"kind": "error", "message": " ", "page": "/"}),
            "message",
        ),
        (json!({"kind": "oops", "message": "x", "page": "/"}), "kind"),
        (
            json!({"kind": "error", "message": "x", "page": "javascript:1"}),
            "page",
        ),
        (
            json!({"kind": "error", "message": "x", "page": "/", "trace_id": "XY"}),
            "trace_id",
        ),
        (
            json!({"kind": "error", "message": "x", "page": "/", "user": "ann"}),
            "user",
        ),
    ] {
        let answer = report(client, public, &body);
        assert_eq!(answer.status(), 422, "{body}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let problem: Value = answer.json().unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let post = |content_type: &str, body: Vec<u8>| {
        client
            .post(format!("{public}/api/v1/client-errors"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post("application/json", b"{not json".to_vec()), 400);
    assert_eq!(post("text/plain", b"{}".to_vec()), 415);
    let huge = serde_json::to_vec(&thrown(&"x".repeat(20_000), 1)).unwrap();
    assert_eq!(post("application/json", huge), 413);
}

/// Resolves the group through the ops API (with the ops token); an unknown group is 404 and a
/// bad `state` filter a 422 naming it.
fn resolve_through_the_ops_api(up: &Up, client: &Client, fingerprint: &str) {
    let token = common::ops_token(&up.ops);
    let resolve = |fingerprint: &str| {
        client
            .post(format!(
                "http://{}/api/errors/{fingerprint}/resolve",
                up.ops
            ))
            .header("x-brigade-ops-token", &token)
            .send()
            .unwrap()
    };
    let resolved: ErrorGroup = resolve(fingerprint).json().unwrap();
    assert_eq!(resolved.state, ErrorGroupState::Resolved);
    assert!(
        groups(up, "?state=resolved")
            .iter()
            .any(|g| g.fingerprint == fingerprint)
    );
    assert_eq!(resolve("0123456789abcdef").status(), 404);
    let bad_state = client
        .get(format!("http://{}/api/errors?state=gone", up.ops))
        .send()
        .unwrap();
    assert_eq!(bad_state.status(), 422);
    assert_eq!(
        bad_state.json::<Value>().unwrap()["errors"][0]["field"],
        "state"
    );
}

/// Watch's address, once watch has scraped the error-group counter at 0: the first group is
/// then an increase it can see.
fn watch_with_the_counter_at_zero(up: &Up, client: &Client) -> String {
    let mut watch = String::new();
    wait_until("watch to run", Duration::from_secs(30), || {
        watch = up.status()["watch"].as_str().unwrap_or_default().to_owned();
        !watch.is_empty()
    });
    wait_until(
        "watch to scrape the error-group counter",
        Duration::from_secs(30),
        || {
            let mut url = reqwest::Url::parse(&format!("http://{watch}/api/v1/query")).unwrap();
            url.query_pairs_mut().append_pair(
                "query",
                "brigade_error_groups_opened_total{kind=\"client-error\"}",
            );
            let answer = client.get(url).send().unwrap().json::<QueryAnswer>();
            matches!(answer, Ok(QueryAnswer { data: QueryData::Vector(samples), .. }) if !samples.is_empty())
        },
    );

    watch
}

/// `BrigadeNewErrorGroup` fires in watch for the client errors, from the rules compiled into
/// the binary.
fn the_alert_fires(client: &Client, watch: &str) {
    wait_until(
        "BrigadeNewErrorGroup to fire in watch",
        Duration::from_secs(45),
        || {
            let alerts: AlertsAnswer = client
                .get(format!("http://{watch}/api/v1/alerts"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            alerts.alerts.iter().any(|alert| {
                alert.name() == "BrigadeNewErrorGroup"
                    && alert.labels.get("kind").map(String::as_str) == Some("client-error")
                    && alert.state == AlertState::Firing
            })
        },
    );
}
