//! Traces under a real `brigade up`: an order placed through the balancer with the caller's
//! `traceparent` is one trace at the ops port's `GET /api/traces/{id}`, holding the balancer's,
//! the replica's, the store's and the payment provider's spans in the right parent order, with
//! the replica's log lines under its span; the search finds it by request id and by duration,
//! and refuses bad parameters naming them; the order's duration carries its trace as an
//! exemplar; and a replica killed with requests in flight leaves traces whose retry links the
//! failed attempt.

mod common;

use std::time::{Duration, Instant};

use brigade_up::api::{SpanDetail, TraceDetail};
use brigade_watch::contract::{ExemplarsAnswer, SpanKind, TraceSearchAnswer};
use common::{Running, Up};

const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const CALLER_SPAN: &str = "10f067aa0ba902b8";
const REQUEST_ID: &str = "traces-up-order-1";

/// Whether `span` descends from the span `ancestor` (through the trace's spans).
fn descends(spans: &[SpanDetail], span: &SpanDetail, ancestor: &str) -> bool {
    let mut parent = span.span.parent_span_id.clone();
    for _ in 0..spans.len() {
        match parent {
            Some(id) if id == ancestor => return true,
            Some(id) => {
                parent = spans
                    .iter()
                    .find(|s| s.span.span_id == id)
                    .and_then(|s| s.span.parent_span_id.clone());
            }
            None => return false,
        }
    }
    false
}

/// Polls the ops port until the trace holds a store span and the payment span.
fn complete_trace(client: &reqwest::blocking::Client, ops: &str) -> TraceDetail {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .get(format!("http://{ops}/api/traces/{TRACE}"))
            .send()
            .unwrap();
        if answer.status() == 200 {
            let detail: TraceDetail = answer.json().unwrap();
            let has = |test: &dyn Fn(&SpanDetail) -> bool| detail.spans.iter().any(test);
            if has(&|s| s.span.service == "brigade-balance")
                && has(&|s| s.span.name == "payments authorize")
                && has(&|s| s.span.attributes.contains_key("db.system.name"))
                && has(&|s| !s.logs.is_empty())
            {
                return detail;
            }
        } else {
            assert_eq!(answer.status(), 404, "{}", answer.text().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "trace {TRACE} never became whole"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_order_through_the_balancer_is_one_trace_across_processes_at_the_ops_port() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start_with(dir.path(), &[], &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    let token = up.log_in("customer@brigade.demo");
    let order = up.sample_order();
    let client = reqwest::blocking::Client::new();
    let placed = client
        .post(up.url("/api/v1/orders"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", REQUEST_ID)
        .json(&order)
        .send()
        .unwrap();
    assert_eq!(placed.status(), 201);

    let detail = complete_trace(&client, &up.ops);
    let spans = &detail.spans;
    let find = |test: &dyn Fn(&SpanDetail) -> bool, what: &str| -> &SpanDetail {
        spans
            .iter()
            .find(|s| test(s))
            .unwrap_or_else(|| panic!("no {what} span in {spans:#?}"))
    };
    let balancer = find(
        &|s| s.span.service == "brigade-balance" && s.span.kind == SpanKind::Server,
        "balancer server",
    );
    assert_eq!(balancer.span.parent_span_id.as_deref(), Some(CALLER_SPAN));
    let replica = find(
        &|s| s.span.service == "brigade-serve" && s.span.name == "POST /api/v1/orders",
        "replica server",
    );
    assert!(
        descends(spans, replica, &balancer.span.span_id),
        "the replica's span descends from the balancer's"
    );
    let store = find(
        &|s| {
            s.span
                .attributes
                .get("db.query.summary")
                .map(String::as_str)
                == Some("INSERT orders")
        },
        "store insert",
    );
    assert_eq!(store.span.kind, SpanKind::Client);
    assert_eq!(store.span.attributes["db.system.name"], "sqlite");
    assert_eq!(store.span.attributes["db.operation.name"], "INSERT");
    assert!(descends(spans, store, &replica.span.span_id));
    let payment = find(&|s| s.span.name == "payments authorize", "payment");
    assert!(descends(spans, payment, &replica.span.span_id));
    assert!(
        replica
            .logs
            .iter()
            .any(|line| line.fields.get("message").and_then(|m| m.as_str())
                == Some("request completed")),
        "the replica's access log line sits under its span: {:#?}",
        replica.logs
    );

    watch_traces_its_scrapes(&up);
    the_order_is_its_latency_buckets_exemplar(&client, &up);

    // The search finds it by request id and by duration, newest first.
    let search = |query: &str| -> TraceSearchAnswer {
        let answer = client
            .get(format!("http://{}/api/traces?{query}", up.ops))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200, "{query}");
        answer.json().unwrap()
    };
    let found = search(&format!("request_id={REQUEST_ID}"));
    assert_eq!(found.traces.len(), 1);
    assert_eq!(found.traces[0].trace_id, TRACE);
    assert!(
        found.traces[0]
            .services
            .contains(&"brigade-balance".to_owned())
    );
    let duration = found.traces[0].duration_ms;
    let at_least = search(&format!(
        "request_id={REQUEST_ID}&min_duration_ms={}",
        (duration - 0.5).max(0.0)
    ));
    assert_eq!(at_least.traces.len(), 1);
    let longer = search(&format!(
        "request_id={REQUEST_ID}&min_duration_ms={}",
        duration + 1000.0
    ));
    assert!(longer.traces.is_empty());

    // Bad input is a problem naming the field; an unknown trace is a 404.
    for (path, status, field) in [
        ("/api/traces?status=maybe", 400, Some("status")),
        ("/api/traces?since=yesterday", 400, Some("since")),
        ("/api/traces/xyz", 400, Some("trace_id")),
        ("/api/traces/0123456789abcdef0123456789abcdef", 404, None),
    ] {
        let answer = client
            .get(format!("http://{}{path}", up.ops))
            .send()
            .unwrap();
        assert_eq!(answer.status(), status, "{path}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: brigade_core::Problem = answer.json().unwrap();
        assert_eq!(
            problem.errors.first().map(|e| e.field.as_str()),
            field,
            "{path}"
        );
    }

    a_killed_replicas_requests_are_retried_and_linked(&up);
}

/// Both replicas slowed down, requests in flight on each, one replica SIGKILLed: the balancer
/// retries the GETs it held on the other, and each such trace shows the failed attempt and the
/// retry, the retry linking the first attempt.
fn a_killed_replicas_requests_are_retried_and_linked(up: &Up) {
    let status = up.status();
    let replicas: Vec<(String, u32)> = status["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pool"] == "orders" && c["backup"] == false)
        .map(|c| {
            let address = format!("http://{}", c["address"].as_str().unwrap());
            (address, c["pid"].as_u64().unwrap() as u32)
        })
        .collect();
    assert_eq!(replicas.len(), 2, "{status}");
    let slow = |base: &str, latency_ms: u64| {
        let admin = common::log_in_at(base, "admin@brigade.demo");
        let answer = reqwest::blocking::Client::new()
            .put(format!("{base}/api/v1/admin/faults"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"latency_ms": latency_ms}))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
    };
    for (base, _) in &replicas {
        slow(base, 3000);
    }
    let traces: Vec<String> = (0..6).map(|i| format!("{:032x}", 0xabc0 + i)).collect();
    let requests: Vec<_> = traces
        .iter()
        .map(|trace| {
            let url = up.url("/api/v1/shops");
            let traceparent = format!("00-{trace}-{CALLER_SPAN}-01");
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .get(url)
                    .header("traceparent", traceparent)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .map(|answer| answer.status().as_u16())
            })
        })
        .collect();
    // The victim holds requests when it dies: its in-flight gauge says so. The scrape is a GET
    // in flight itself, so one of the test's requests makes it 2.
    let (victim, pid) = &replicas[0];
    common::wait_until(
        "requests in flight on the victim",
        Duration::from_secs(10),
        || {
            reqwest::blocking::get(format!("{victim}/metrics"))
                .and_then(|answer| answer.text())
                .is_ok_and(|text| {
                    text.lines().any(|line| {
                        line.starts_with("http_server_active_requests{http_request_method=\"GET\"}")
                            && line.split(' ').nth(1).and_then(|v| v.parse::<f64>().ok())
                                >= Some(2.0)
                    })
                })
        },
    );
    common::signal(*pid, "-KILL");
    for request in requests {
        assert_eq!(request.join().unwrap().unwrap(), 200, "a GET was retried");
    }
    slow(&replicas[1].0, 0);

    let client = reqwest::blocking::Client::new();
    let find_retried = || {
        traces.iter().find_map(|trace| {
            let answer = client
                .get(format!("http://{}/api/traces/{trace}", up.ops))
                .send()
                .ok()?;
            let detail: TraceDetail = answer.json().ok()?;
            let attempts: Vec<&SpanDetail> = detail
                .spans
                .iter()
                .filter(|s| s.span.name.starts_with("upstream attempt"))
                .collect();
            (attempts.len() >= 2).then(|| (trace.clone(), detail.clone()))
        })
    };
    // The spans reach watch a moment after the answers.
    let mut retried = None;
    common::wait_until(
        "a trace with a failed attempt and its retry",
        Duration::from_secs(15),
        || {
            retried = find_retried();
            retried.is_some()
        },
    );
    let (trace, detail) = retried.unwrap();
    let first = common::span_named(&detail, "upstream attempt 1");
    let second = common::span_named(&detail, "upstream attempt 2");
    assert!(
        first.span.error,
        "the attempt on the killed replica failed: {first:?}"
    );
    assert!(!second.span.error, "{second:?}");
    assert_eq!(
        second.span.links,
        [format!("{trace}/{}", first.span.span_id)],
        "the retry links the first attempt"
    );
}

/// The order's duration carries its trace as an exemplar: the replica's OpenMetrics bucket
/// holds it, watch scrapes it, and the dashboard's exemplar query (what the latency chart's
/// dots and links read) finds it in the bucket the request's duration fell in.
fn the_order_is_its_latency_buckets_exemplar(client: &reqwest::blocking::Client, up: &Up) {
    let now = chrono::Utc::now().timestamp();
    let query = [
        (
            "query",
            "http_server_request_duration_seconds_bucket{http_route=\"/api/v1/orders\",http_request_method=\"POST\"}".to_owned(),
        ),
        ("start", (now - 600).to_string()),
        ("end", (now + 600).to_string()),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (series, exemplar) = loop {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/api/dashboard/watch/query_exemplars", up.ops),
            &query,
        )
        .unwrap();
        let answer = client.get(url).send().unwrap();
        assert_eq!(answer.status(), 200);
        let answer: ExemplarsAnswer = answer.json().unwrap();
        let found = answer.data.into_iter().find_map(|series| {
            let exemplar = series
                .exemplars
                .iter()
                .find(|e| e.labels.get("trace_id").map(String::as_str) == Some(TRACE))
                .cloned()?;
            Some((series.series_labels, exemplar))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no exemplar names {TRACE}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(series["job"], "orders", "{series:?}");
    assert_eq!(series["http_response_status_code"], "201");
    let value: f64 = exemplar.value.parse().unwrap();
    let le: f64 = match series["le"].as_str() {
        "+Inf" => f64::INFINITY,
        le => le.parse().unwrap(),
    };
    assert!(value > 0.0 && value <= le, "{value} in the bucket le={le}");
    let refused = client
        .get(format!(
            "http://{}/api/dashboard/watch/query_exemplars?query=rate(&start=0&end=1",
            up.ops
        ))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 422, "a query that does not parse");
    let problem: brigade_core::Problem = refused.json().unwrap();
    assert_eq!(problem.errors[0].field, "query");
}

/// Watch's own work is traced too: a scrape round holds each target's scrape, and the
/// scrape's `traceparent` makes the scraped replica's `GET /metrics` span its child.
fn watch_traces_its_scrapes(up: &Up) {
    let scraped_replica = |detail: &TraceDetail| {
        detail.spans.iter().any(|s| {
            s.span.service == "brigade-serve"
                && s.span.name.ends_with("/metrics")
                && detail.spans.iter().any(|parent| {
                    Some(&parent.span.span_id) == s.span.parent_span_id.as_ref()
                        && parent.span.service == "brigade-watch"
                        && parent.span.kind == SpanKind::Client
                })
        })
    };
    let detail = common::wait_for_trace(
        &up.ops,
        "service=brigade-watch&route=scrape%20round",
        Duration::from_secs(30),
        scraped_replica,
    );
    let round = common::span_named(&detail, "scrape round");
    assert!(
        round.span.parent_span_id.is_none(),
        "a round is a trace of its own"
    );
    assert!(
        detail
            .spans
            .iter()
            .filter(|s| s.span.service == "brigade-watch" && s.span.kind == SpanKind::Client)
            .all(
                |s| s.span.parent_span_id.as_ref() == Some(&round.span.span_id)
                    && s.span.attributes.contains_key("url.full")
            ),
        "{:#?}",
        detail.spans
    );
}
