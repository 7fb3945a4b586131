//! Trace export with the standard `OTEL_*` variables, against a fake OTLP/HTTP receiver: a
//! replica's request span arrives as a server span of the caller's trace, with
//! semantic-convention attributes and the ids the answer's `traceparent` names; and a receiver
//! that never answers costs requests nothing — spans are dropped and counted instead.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::Value;

use common::{BRIGADE, Logged, Stdout};

/// What the fake receiver got: every span with its resource's service name.
#[derive(Default)]
struct Received(Mutex<Vec<(String, Span)>>);

/// An OTLP/HTTP receiver: answers every `POST /v1/traces` with 200 and keeps the spans.
fn receiver() -> (String, Arc<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Received::default());
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let keep = keep.clone();
            std::thread::spawn(move || serve_otlp(stream, &keep));
        }
    });
    (address, received)
}

fn serve_otlp(stream: TcpStream, received: &Received) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.0.lock().unwrap().push((service.clone(), span));
                }
            }
        }
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

/// `brigade serve --demo` on a free port with `env`; returns it and its address.
fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Logged, String) {
    let mut command = Command::new(BRIGADE);
    command
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .envs(env.iter().copied())
        .stderr(Stdio::null());
    let process = Logged::spawn(command, Stdout::SkipOther);
    let address = process.listening();
    (process, address)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    Some(match value.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_request_span_reaches_the_otlp_receiver_as_a_child_of_the_callers_span() {
    a_request_span_arrives_with_the_log_filter(None);
}

/// A quiet log (`warn`, here with only the replica's start line left for the test to read)
/// does not switch tracing off: the request span is exported all the same.
#[test]
fn a_quiet_log_keeps_the_request_spans() {
    a_request_span_arrives_with_the_log_filter(Some("warn,brigade_api=info"));
}

fn a_request_span_arrives_with_the_log_filter(filter: Option<&str>) {
    let (otlp, received) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{otlp}");
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    if let Some(filter) = filter {
        env.push(("BRIGADE_LOG__FILTER", filter));
    }
    let (_replica, address) = serve(dir.path(), &env);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let answer = reqwest::blocking::Client::new()
        .get(format!("http://{address}/api/v1/shops"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("tracestate", "brigade=t61rcWkgMzE,other=1")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let traceparent = answer.headers()["traceparent"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (service, span) = loop {
        let found = received
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, span)| hex(&span.trace_id) == trace)
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no span of trace {trace} arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(service, "brigade-serve");
    assert_eq!(span.name, "GET /api/v1/shops");
    assert_eq!(
        hex(&span.parent_span_id),
        parent,
        "a child of the caller's span"
    );
    assert_eq!(span.kind, 2, "a server span");
    assert!(
        span.events.is_empty(),
        "the access-log line stays in the log, not copied into the span: {:?}",
        span.events
    );
    assert_eq!(
        span.trace_state, "brigade=t61rcWkgMzE,other=1",
        "the caller's tracestate stays with its trace"
    );
    assert_eq!(
        attribute(&span, "http.route").as_deref(),
        Some("/api/v1/shops")
    );
    assert_eq!(
        attribute(&span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        traceparent,
        format!("00-{trace}-{}-01", hex(&span.span_id)),
        "the answer names the exported span"
    );
}

#[test]
fn a_receiver_that_never_answers_costs_requests_nothing_and_drops_are_counted() {
    // Accepts connections and never answers: every export waits for its timeout.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in black_hole.incoming().map_while(Result::ok) {
            keep.lock().unwrap().push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut replica, address) = serve(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{address}/api/v1/shops");
    let mut slowest = Duration::ZERO;
    for _ in 0..400 {
        let started = Instant::now();
        assert_eq!(client.get(&url).send().unwrap().status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a request waited for the exporter: {slowest:?}"
    );
    let metrics = client
        .get(format!("http://{address}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("brigade_trace_spans_dropped_total "))
        .expect("the drop counter is exported")
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "the full queue dropped spans:\n{metrics}");

    // Nor does it hold the process at exit: the last spans get a bounded wait.
    let stopping = Instant::now();
    replica.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the exit waited for the collector: {:?}",
        stopping.elapsed()
    );
}

#[test]
fn watch_collects_a_replicas_spans_and_finds_them_by_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_collector, watch_address) = common::collector_watch(dir.path());
    let endpoint = format!("http://{watch_address}");
    let data = dir.path().join("replica");
    let (_replica, address) = serve(
        &data,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let answer = client
        .get(format!("http://{address}/api/v1/shops/not-a-uuid"))
        .header("x-request-id", "trace-me-1")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 400);
    let trace_id = answer.headers()["traceparent"].to_str().unwrap()[3..35].to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let found: Value = client
            .get(format!(
                "http://{watch_address}/api/v1/traces?request_id=trace-me-1"
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if found["traces"].as_array().is_some_and(|t| !t.is_empty()) {
            break found;
        }
        assert!(Instant::now() < deadline, "the trace never reached watch");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(found["traces"][0]["trace_id"], trace_id.as_str());
    assert_eq!(found["traces"][0]["services"][0], "brigade-serve");
    let trace: Value = client
        .get(format!("http://{watch_address}/api/v1/traces/{trace_id}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let span = &trace["spans"][0];
    assert_eq!(span["name"], "GET /api/v1/shops/{shop_id}");
    assert_eq!(span["kind"], "server");
    assert_eq!(span["attributes"]["http.response.status_code"], "400");
    let missing = client
        .get(format!(
            "http://{watch_address}/api/v1/traces/{}",
            "ab".repeat(16)
        ))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The all-zero id is invalid in W3C Trace Context: refused, naming the parameter.
    let invalid = client
        .get(format!(
            "http://{watch_address}/api/v1/traces/{}",
            "0".repeat(32)
        ))
        .send()
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let problem: brigade_core::Problem = invalid.json().unwrap();
    assert_eq!(problem.errors[0].field, "trace_id");
}

#[test]
fn an_orders_trace_holds_the_payment_providers_call_as_a_child_span() {
    let traced = Traced::start();
    let (watch_address, base) = (traced.watch.as_str(), traced.base.as_str());
    let token = common::log_in_at(base, "customer@brigade.demo");
    let client = reqwest::blocking::Client::new();
    let order = common::sample_order_at(base);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let placed = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&order)
        .send()
        .unwrap();
    assert_eq!(placed.status(), 201);
    let spans = spans_named(
        watch_address,
        trace,
        &["payments authorize", "POST /api/v1/orders"],
    );
    let request = spans
        .iter()
        .find(|s| s["name"] == "POST /api/v1/orders")
        .unwrap();
    let payment = spans
        .iter()
        .find(|s| s["name"] == "payments authorize")
        .unwrap();
    assert_eq!(payment["kind"], "client");
    assert_eq!(payment["attributes"]["payment.outcome"], "approved");
    assert_eq!(payment["attributes"]["payment.provider"], "simulated");
    assert_eq!(
        payment["trace_id"], request["trace_id"],
        "one trace: {spans:?}"
    );
    // The provider call happens inside the request: its span descends from the request's.
    let mut parent = payment["parent_span_id"].clone();
    let mut hops = 0;
    while parent != request["span_id"] {
        let up = spans
            .iter()
            .find(|s| s["span_id"] == parent)
            .unwrap_or_else(|| {
                panic!("the payment span does not descend from the request span: {spans:?}")
            });
        parent = up["parent_span_id"].clone();
        hops += 1;
        assert!(hops < 10);
    }
}

/// The spans of `trace` from watch's trace API once every one of `names` has arrived.
fn spans_named(watch: &str, trace: &str, names: &[&str]) -> Vec<Value> {
    common::trace_spans_when(watch, trace, &format!("all of {names:?}"), |spans| {
        names
            .iter()
            .all(|name| spans.iter().any(|s| s["name"] == *name))
    })
}

#[test]
fn a_menu_read_shows_whether_the_cache_answered_it() {
    let traced = Traced::start();
    let (watch_address, base) = (traced.watch.as_str(), traced.base.as_str());
    let client = reqwest::blocking::Client::new();
    let shops: Value = client
        .get(format!("{base}/api/v1/shops"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shop = shops[0]["id"].as_str().unwrap();
    let menu = |trace: &str| {
        let answer = client
            .get(format!("{base}/api/v1/shops/{shop}/menu"))
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
    };
    let (cold, warm) = (
        "1af7651916cd43dd8448eb211c80319c",
        "2af7651916cd43dd8448eb211c80319c",
    );
    menu(cold);
    let route = "GET /api/v1/shops/{shop_id}/menu";
    let first = spans_named(watch_address, cold, &[route, "SELECT items"]);
    menu(warm);
    let second = spans_named(watch_address, warm, &[route]);
    // The in-process cache answers in a fraction of a microsecond: no span of its own, an
    // attribute of the request's span instead.
    let hit = |spans: &[Value]| {
        assert!(
            !spans.iter().any(|s| s["name"] == "GET menu"),
            "no span for an in-process cache read: {spans:?}"
        );
        let request = spans.iter().find(|s| s["name"] == route).unwrap();
        assert_eq!(request["kind"], "server");
        let hit = &request["attributes"]["brigade.cache.hit"];
        assert!(hit.is_boolean() || hit.is_string(), "recorded: {request:?}");
        hit == true || hit == "true"
    };
    assert!(!hit(&first), "the first read misses: {first:?}");
    assert!(
        first.iter().any(|s| s["name"] == "SELECT items"),
        "and goes on to the database: {first:?}"
    );
    assert!(
        hit(&second),
        "the second is answered by the cache: {second:?}"
    );
    assert!(
        !second.iter().any(|s| s["name"] == "SELECT items"),
        "without the database: {second:?}"
    );
}

/// A watch collecting the spans of one `brigade serve --demo` that exports every 100 ms; the
/// processes live as long as this does.
struct Traced {
    _dir: tempfile::TempDir,
    _collector: Logged,
    _replica: Logged,
    /// Watch's address.
    watch: String,
    /// `http://` and the replica's address.
    base: String,
}

impl Traced {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (collector, watch) = common::collector_watch(dir.path());
        let endpoint = format!("http://{watch}");
        let (replica, address) = serve(
            &dir.path().join("replica"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ("BRIGADE_DEMO_PASSWORD", common::DEMO_PASSWORD),
            ],
        );
        Self {
            _dir: dir,
            _collector: collector,
            _replica: replica,
            watch,
            base: format!("http://{address}"),
        }
    }
}

/// Sampling is decided at the edge by the standard variables: a new trace at ratio 0 is not
/// sampled (the answer says so, `-00`, and no span is sent), while a caller's sampled trace is
/// followed (parent-based) and exported.
#[test]
fn an_unsampled_request_sends_no_span_and_a_sampled_parent_is_followed() {
    let (otlp, received) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{otlp}");
    let (_replica, address) = serve(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let unsampled = client
        .get(format!("http://{address}/api/v1/shops"))
        .send()
        .unwrap();
    let traceparent = unsampled.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    let unsampled_trace = traceparent.split('-').nth(1).unwrap().to_owned();

    let trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let followed = client
        .get(format!("http://{address}/api/v1/shops"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .unwrap();
    assert!(
        followed.headers()["traceparent"]
            .to_str()
            .unwrap()
            .ends_with("-01")
    );
    // Spans leave in order: once the sampled one is here, an unsampled one sent before it
    // would be too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = received.0.lock().unwrap().clone();
        if spans.iter().any(|(_, span)| hex(&span.trace_id) == trace) {
            assert!(
                spans
                    .iter()
                    .all(|(_, span)| hex(&span.trace_id) != unsampled_trace),
                "a span of the unsampled trace was sent"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the sampled trace never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}
