//! The steps of a request as spans, read back from watch (the local collector): a replica's
//! `authenticate` and the steps of placing an order under its request span; the balancer's
//! edge decision (no span at all for an unsampled request, on both of its cores, with a `-00`
//! `traceparent` sent on), how a connection began, on its first request's span, and a sampled
//! request's attempts on the fast core, each named by the `traceparent` its backend received.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::{BRIGADE, DEMO_PASSWORD, Logged, Stdout};

/// How long a process has to say what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A `brigade` child with `args` and `env`, exporting to `collector` every 100 ms.
fn exporting(args: &[&str], collector: &str, env: &[(&str, &str)]) -> Logged {
    let endpoint = format!("http://{collector}");
    let mut command = Command::new(BRIGADE);
    command
        .args(args)
        .args(["--log-format", "json"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .envs(env.iter().copied())
        .stderr(Stdio::null());
    Logged::spawn(command, Stdout::SkipOther)
}

/// `brigade serve --demo` exporting to `collector`; returns it and its address.
fn replica(dir: &std::path::Path, collector: &str, env: &[(&str, &str)]) -> (Logged, String) {
    let data = dir.join("replica");
    let process = exporting(
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        collector,
        env,
    );
    let address = process.listening();
    (process, address)
}

/// `brigade balance` in front of `backend` on the HTTP `core` (with `extra` configuration
/// after the pool), exporting to `collector`;
/// returns it and its public address.
fn balancer(
    dir: &std::path::Path,
    backend: &str,
    (core, extra): (&str, &str),
    collector: &str,
    env: &[(&str, &str)],
) -> (Logged, String) {
    let config = dir.join(format!("balance-{core}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n\
             [server]\ncore = \"{core}\"\n\
             [[pools]]\nname = \"orders\"\n[[pools.backends]]\naddress = \"{backend}\"\n{extra}"
        ),
    )
    .unwrap();
    let process = exporting(
        &["balance", "--config", config.to_str().unwrap()],
        collector,
        env,
    );
    let line = process.wait_for("listening", WAIT);
    let public = line["address"].as_str().unwrap().to_owned();
    let admin = line["admin_address"].as_str().unwrap().to_owned();
    common::wait_until("the balancer is ready", WAIT, || {
        reqwest::blocking::get(format!("http://{admin}/health/ready"))
            .is_ok_and(|answer| answer.status() == 200)
    });
    (process, public)
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

fn has(spans: &[Value], names: &[&str]) -> bool {
    names
        .iter()
        .all(|name| spans.iter().any(|s| s["name"] == *name))
}

/// Whether watch knows nothing of `trace`.
fn unknown(watch: &str, trace: &str) -> bool {
    reqwest::blocking::get(format!("http://{watch}/api/v1/traces/{trace}"))
        .unwrap()
        .status()
        == 404
}

fn trace_of(answer: &reqwest::blocking::Response) -> (String, String) {
    let traceparent = answer.headers()["traceparent"].to_str().unwrap().to_owned();
    let trace = traceparent.split('-').nth(1).unwrap().to_owned();
    (traceparent, trace)
}

#[test]
fn an_orders_trace_reads_authenticate_then_place_order_then_settle_payment() {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let (_replica, address) = replica(dir.path(), &collector, &[]);
    let base = format!("http://{address}");
    let token = common::log_in_at(&base, "customer@brigade.demo");
    let client = reqwest::blocking::Client::new();
    let trace = "3af7651916cd43dd8448eb211c80319c";
    let placed = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&common::sample_order_at(&base))
        .send()
        .unwrap();
    assert_eq!(placed.status(), 201);
    let names = [
        "POST /api/v1/orders",
        "authenticate",
        "place order",
        "INSERT orders",
        "settle payment",
        "payments authorize",
    ];
    let spans =
        common::trace_spans_when(&collector, trace, "the order's steps", |s| has(s, &names));
    let request = named(&spans, "POST /api/v1/orders");
    let authenticate = named(&spans, "authenticate");
    let place = named(&spans, "place order");
    let settle = named(&spans, "settle payment");
    for step in [authenticate, place, settle] {
        assert_eq!(step["parent_span_id"], request["span_id"], "{step:#?}");
        assert_eq!(step["kind"], "internal");
        assert_eq!(step["error"], false, "{step:#?}");
    }
    assert_eq!(
        named(&spans, "INSERT orders")["parent_span_id"],
        place["span_id"],
        "the store's write is a step of placing"
    );
    assert_eq!(
        named(&spans, "payments authorize")["parent_span_id"],
        settle["span_id"],
        "the provider's call is a step of settling"
    );
    let end = |s: &Value| s["start_ms"].as_f64().unwrap() + s["duration_ms"].as_f64().unwrap();
    let start = |s: &Value| s["start_ms"].as_f64().unwrap();
    assert!(end(authenticate) <= start(place) + 0.001, "{spans:#?}");
    assert!(end(place) <= start(settle) + 0.001, "{spans:#?}");
    assert_eq!(place["attributes"]["brigade.order.outcome"], "created");
    assert_eq!(settle["attributes"]["brigade.payment.status"], "authorized");
    let cached = &authenticate["attributes"]["brigade.session.cached"];
    assert!(cached == "false" || cached == "true", "{authenticate:#?}");
    assert!(
        authenticate["attributes"]["enduser.id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{authenticate:#?}"
    );
    assert!(
        !authenticate.to_string().contains(&token),
        "the token never leaves the replica"
    );

    // A bad token: 401, and the span says why.
    let refused_trace = "4af7651916cd43dd8448eb211c80319c";
    let refused = client
        .get(format!("{base}/api/v1/orders"))
        .bearer_auth("not-a-token")
        .header(
            "traceparent",
            format!("00-{refused_trace}-b7ad6b7169203331-01"),
        )
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    let spans = common::trace_spans_when(&collector, refused_trace, "the refusal", |s| {
        has(s, &["authenticate", "GET /api/v1/orders"])
    });
    let authenticate = named(&spans, "authenticate");
    assert_eq!(authenticate["error"], true, "{authenticate:#?}");
    assert!(
        authenticate["status_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(authenticate["attributes"].get("enduser.id").is_none());
    // The server span: the caller's span as parent, the id the answer's `traceparent` names,
    // the status code, and a 4xx is the client's mistake, not the server's failure.
    let server = named(&spans, "GET /api/v1/orders");
    assert_eq!(server["kind"], "server", "{server:#?}");
    assert_eq!(server["parent_span_id"], "b7ad6b7169203331", "{server:#?}");
    let answered = refused.headers()["traceparent"].to_str().unwrap();
    assert_eq!(
        answered,
        format!(
            "00-{refused_trace}-{}-01",
            server["span_id"].as_str().unwrap()
        )
    );
    let code = &server["attributes"]["http.response.status_code"];
    assert!(code == 401 || code == "401", "{server:#?}");
    assert_eq!(server["error"], false, "{server:#?}");
    assert_eq!(authenticate["parent_span_id"], server["span_id"]);
}

/// On the fast core (the default): with `parentbased_traceidratio` 0 a new trace is not
/// sampled — no balancer span, no replica span, and the replica was told so (`-00`) — while a
/// client's sampled trace continues on the same keep-alive connection with a balancer span
/// saying it is the connection's second request; a new connection's first request says when
/// it was accepted.
#[test]
fn the_fast_core_sends_no_span_for_an_unsampled_request_and_tells_the_replica() {
    edge_decision("fast");
}

/// The same on the hyper core.
#[test]
fn the_hyper_core_sends_no_span_for_an_unsampled_request_and_tells_the_replica() {
    edge_decision("hyper");
}

fn edge_decision(core: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let sampler = [
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ];
    let (_replica, address) = replica(dir.path(), &collector, &sampler);
    let (_balance, public) = balancer(dir.path(), &address, (core, ""), &collector, &sampler);
    let client = reqwest::blocking::Client::new();
    let shops = format!("http://{public}/api/v1/shops");
    let unsampled = client.get(&shops).send().unwrap();
    assert_eq!(unsampled.status(), 200);
    let (traceparent, unsampled_trace) = trace_of(&unsampled);
    assert!(
        traceparent.ends_with("-00"),
        "the replica followed: {traceparent}"
    );
    unsampled.text().unwrap();

    let trace = "5bf92f3577b34da6a3ce929d0e0e4738";
    let sampled = client
        .get(&shops)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .unwrap();
    assert!(trace_of(&sampled).0.ends_with("-01"));
    sampled.text().unwrap();
    let spans = common::trace_spans_when(
        &collector,
        trace,
        "the balancer's and replica's spans",
        |s| {
            has(
                s,
                &["GET orders", "upstream attempt 1", "GET /api/v1/shops"],
            )
        },
    );
    let server = named(&spans, "GET orders");
    assert_eq!(server["service"], "brigade-balance");
    assert_eq!(server["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(
        server["attributes"]["brigade.balance.connection.request"], "2",
        "the second request of its connection: {server:#?}"
    );
    assert!(
        server["attributes"]
            .get("brigade.balance.accept.wait_ms")
            .is_none()
    );
    assert_eq!(
        named(&spans, "GET /api/v1/shops")["parent_span_id"],
        named(&spans, "upstream attempt 1")["span_id"]
    );
    // Each process sends its spans in the order they ended: the unsampled request's would
    // have come first.
    assert!(
        unknown(&collector, &unsampled_trace),
        "a span of the unsampled trace was sent"
    );

    // A new connection: its first request's span says when it was accepted.
    let trace = "6bf92f3577b34da6a3ce929d0e0e4738";
    let fresh = reqwest::blocking::Client::new()
        .get(&shops)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let spans = common::trace_spans_when(&collector, trace, "the first request's span", |s| {
        has(s, &["GET orders"])
    });
    let server = named(&spans, "GET orders");
    assert_eq!(
        server["attributes"]["brigade.balance.connection.request"],
        "1"
    );
    let waited: f64 = server["attributes"]["brigade.balance.accept.wait_ms"]
        .as_str()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no accept attribute: {server:#?}"));
    assert!((0.0..30_000.0).contains(&waited), "{waited}");
    assert!(
        server["attributes"].get("tls.protocol.version").is_none(),
        "plain HTTP"
    );
}

/// With the default sampler (every trace), a new trace the fast core samples keeps the id it
/// was sampled by: the balancer's span and the replica's answer name one trace.
#[test]
fn a_new_trace_sampled_on_the_fast_core_keeps_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let (_replica, address) = replica(dir.path(), &collector, &[]);
    let (_balance, public) = balancer(dir.path(), &address, ("fast", ""), &collector, &[]);
    let answer = reqwest::blocking::get(format!("http://{public}/api/v1/shops")).unwrap();
    assert_eq!(answer.status(), 200);
    let (traceparent, trace) = trace_of(&answer);
    assert!(traceparent.ends_with("-01"), "{traceparent}");
    let spans = common::trace_spans_when(&collector, &trace, "the new trace", |s| {
        has(
            s,
            &["GET orders", "upstream attempt 1", "GET /api/v1/shops"],
        )
    });
    let server = named(&spans, "GET orders");
    assert!(server["parent_span_id"].is_null(), "a root: {server:#?}");
    assert_eq!(
        named(&spans, "upstream attempt 1")["parent_span_id"],
        server["span_id"]
    );
}

/// A backend answering every request with the `traceparent` it received (empty when none).
fn echo_backend() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut traceparent = String::new();
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("traceparent")
                        {
                            traceparent = value.trim().to_owned();
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{traceparent}",
                        traceparent.len()
                    );
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// What the backend receives from either core at ratio 0: a client's unsampled
/// `traceparent` as the client sent it (no balancer span stands between), a new trace as
/// `-00`, and a client's sampled trace under the balancer's attempt span.
#[test]
fn the_backend_receives_the_edge_decision_from_both_cores() {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let backend = echo_backend();
    let sampler = [
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ];
    for core in ["fast", "hyper"] {
        let (_balance, public) = balancer(dir.path(), &backend, (core, ""), &collector, &sampler);
        let client = reqwest::blocking::Client::new();
        let received = |traceparent: Option<&str>| {
            let mut request = client.get(format!("http://{public}/anything"));
            if let Some(traceparent) = traceparent {
                request = request.header("traceparent", traceparent);
            }
            let answer = request.send().unwrap();
            assert_eq!(answer.status(), 200);
            answer.text().unwrap()
        };
        let client_unsampled = "00-7bf92f3577b34da6a3ce929d0e0e4738-00f067aa0ba902b7-00";
        assert_eq!(received(Some(client_unsampled)), client_unsampled, "{core}");
        let new = received(None);
        let fields: Vec<&str> = new.split('-').collect();
        assert_eq!(fields.len(), 4, "{core}: {new}");
        assert_eq!((fields[0], fields[3]), ("00", "00"), "{core}: {new}");
        assert!(
            fields[1].len() == 32 && fields[2].len() == 16,
            "{core}: {new}"
        );
        let client_sampled = "00-8bf92f3577b34da6a3ce929d0e0e4738-00f067aa0ba902b7-01";
        let sent = received(Some(client_sampled));
        assert!(
            sent.starts_with("00-8bf92f3577b34da6a3ce929d0e0e4738-") && sent.ends_with("-01"),
            "{core}: {sent}"
        );
        assert_ne!(
            sent, client_sampled,
            "{core}: the attempt's span is the parent"
        );
        // Malformed: replaced by a valid unsampled one.
        let repaired = received(Some("00-zz-00f067aa0ba902b7-01"));
        assert!(
            repaired.ends_with("-00") && repaired.len() == 55,
            "{core}: {repaired}"
        );
    }
}

/// Over TLS, the first request's span tells the handshake: its length and protocol.
#[test]
fn a_tls_connections_first_request_tells_its_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let backend = echo_backend();
    let (cert, key) =
        brigade_balance::tls::self_signed(&dir.path().join("tls"), &["127.0.0.1".into()]).unwrap();
    let tls = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (_balance, public) = balancer(dir.path(), &backend, ("fast", &tls), &collector, &[]);
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let trace = "9bf92f3577b34da6a3ce929d0e0e4738";
    let answer = client
        .get(format!("https://{public}/anything"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let spans = common::trace_spans_when(&collector, trace, "the TLS request's span", |s| {
        has(s, &["GET orders"])
    });
    let server = named(&spans, "GET orders");
    let attributes = &server["attributes"];
    assert_eq!(attributes["brigade.balance.connection.request"], "1");
    assert_eq!(attributes["tls.protocol.name"], "tls", "{server:#?}");
    assert!(
        attributes["tls.protocol.version"] == "1.3" || attributes["tls.protocol.version"] == "1.2",
        "{server:#?}"
    );
    let number = |key: &str| -> f64 {
        attributes[key]
            .as_str()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("no {key}: {server:#?}"))
    };
    let (handshake, waited) = (
        number("brigade.balance.tls.handshake_ms"),
        number("brigade.balance.accept.wait_ms"),
    );
    assert!(handshake > 0.0, "{handshake}");
    assert!(
        waited >= handshake,
        "the wait includes the handshake: {waited} < {handshake}"
    );
}

/// What a [`flaky_backends`] server received in one request.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    traceparent: String,
}

/// Two backends (two ports, one shared state) that answer the first request for `/flaky` with
/// a 503 and every other request with 200 and the head they received as the body; each
/// request's path and `traceparent` are recorded.
fn flaky_backends() -> ([String; 2], std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::{Arc, Mutex};
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addresses = [(); 2].map(|()| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (log, failed) = (log.clone(), failed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (log, failed) = (log.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line.trim_end().is_empty() {
                                break;
                            }
                            head.push_str(&line);
                        }
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        let traceparent = head
                            .lines()
                            .filter_map(|line| line.split_once(':'))
                            .find(|(name, _)| name.eq_ignore_ascii_case("traceparent"))
                            .map(|(_, value)| value.trim().to_owned())
                            .unwrap_or_default();
                        let fail = path == "/flaky"
                            && !failed.swap(true, std::sync::atomic::Ordering::SeqCst);
                        log.lock().unwrap().push(Received {
                            path: path.clone(),
                            traceparent,
                        });
                        let answer = if fail {
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                                .to_owned()
                        } else {
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{head}",
                                head.len()
                            )
                        };
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    });
    (addresses, log)
}

/// Sends `request` on `stream` and reads one answer: its status line and body.
fn exchange(
    stream: &mut std::io::BufReader<std::net::TcpStream>,
    request: &str,
) -> (String, String) {
    use std::io::{BufRead, Read, Write};
    stream.get_mut().write_all(request.as_bytes()).unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (
        status.trim_end().to_owned(),
        String::from_utf8(body).unwrap(),
    )
}

/// A sampled request stays on the fast core: a 503 and its retry are two attempt spans, each
/// backend received a `traceparent` naming its own attempt's span, and the next request on the
/// same connection is still forwarded by the fast core (which keeps a field name's case as it
/// arrived; the hyper path would send it in lower case) with its span saying it is the
/// connection's second request.
#[test]
fn a_sampled_request_stays_on_the_fast_core_and_each_attempt_names_its_span() {
    let dir = tempfile::tempdir().unwrap();
    let (_watch, collector) = common::collector_watch(dir.path());
    let ([first, second], received) = flaky_backends();
    let extra = format!("[[pools.backends]]\naddress = \"{second}\"\n");
    let (_balance, public) = balancer(dir.path(), &first, ("fast", &extra), &collector, &[]);
    let stream = std::net::TcpStream::connect(&public).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut stream = std::io::BufReader::new(stream);

    let trace = "9bf92f3577b34da6a3ce929d0e0e4738";
    let (status, _) = exchange(
        &mut stream,
        &format!(
            "GET /flaky HTTP/1.1\r\nHost: brigade.test\r\n\
             traceparent: 00-{trace}-00f067aa0ba902b7-01\r\n\r\n"
        ),
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "the 503 was retried");
    let (status, echoed) = exchange(
        &mut stream,
        "GET /echo HTTP/1.1\r\nHost: brigade.test\r\nX-Mixed-Case: yes\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        echoed.contains("\r\nX-Mixed-Case: yes\r\n"),
        "forwarded by the fast core: {echoed}"
    );

    let spans = common::trace_spans_when(&collector, trace, "both attempts", |s| {
        has(
            s,
            &["GET orders", "upstream attempt 1", "upstream attempt 2"],
        )
    });
    let server = named(&spans, "GET orders");
    let (one, two) = (
        named(&spans, "upstream attempt 1"),
        named(&spans, "upstream attempt 2"),
    );
    assert_eq!(server["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(server["attributes"]["http.response.status_code"], "200");
    assert_eq!(server["attributes"]["brigade.balance.attempts"], "2");
    assert_eq!(
        server["attributes"]["brigade.balance.connection.request"],
        "1"
    );
    assert!(
        server["attributes"]
            .get("brigade.balance.accept.wait_ms")
            .is_some(),
        "{server:#?}"
    );
    for attempt in [one, two] {
        assert_eq!(attempt["parent_span_id"], server["span_id"], "{attempt:#?}");
    }
    assert_eq!(one["attributes"]["http.response.status_code"], "503");
    assert_eq!(one["error"], true, "{one:#?}");
    assert_eq!(
        two["attributes"]["brigade.balance.reason"],
        "retry after server_error"
    );
    assert_eq!(two["error"], false, "{two:#?}");
    assert_eq!(
        two["links"][0],
        format!("{trace}/{}", one["span_id"].as_str().unwrap()),
        "the retry links the first attempt: {two:#?}"
    );
    let flaky: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/flaky")
        .map(|r| r.traceparent.clone())
        .collect();
    let named_by = |span: &Value| format!("00-{trace}-{}-01", span["span_id"].as_str().unwrap());
    assert_eq!(flaky, [named_by(one), named_by(two)]);

    let echo = received
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.path == "/echo")
        .map(|r| r.traceparent.clone())
        .unwrap();
    let echo_trace = echo.split('-').nth(1).unwrap().to_owned();
    let spans = common::trace_spans_when(&collector, &echo_trace, "the second request", |s| {
        has(s, &["GET orders"])
    });
    assert_eq!(
        named(&spans, "GET orders")["attributes"]["brigade.balance.connection.request"],
        "2"
    );
}
