//! The fast core and the hyper path side by side: the same corpus of requests goes through a
//! balancer on each core, in front of one raw TCP backend that records every byte it receives,
//! and what reaches the backend must be the same request — request line, every field value
//! and the body — and the client must get the same status and body back.
//!
//! Compared after normalisations that carry no meaning (RFC 9110 §5.1, §5.3, §5.5, RFC 9112
//! §7.1): the fast core copies field lines as they arrived while the hyper path lowercases
//! names and trims values (so names are compared in lowercase and values without surrounding
//! spaces), the hyper path groups repeated field names under the first occurrence while the
//! fast core keeps fields where they arrived (so lines are compared sorted by name, stably),
//! and a chunked body is compared by its decoded content. A few requests only the fast core refuses (bare LF,
//! CL+TE) are in `tests/smuggling.rs`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Balancer;

/// A backend on a raw socket that frames requests itself, records each one's bytes, and
/// answers by the request path: `/chunked…` with a chunked body, `/empty…` with 204, anything
/// else with `content-length`.
struct RawBackend {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawBackend {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Self { address, received }
    }

    /// The one request whose request line starts with `line`.
    fn request(&self, line: &str) -> Vec<u8> {
        let found: Vec<Vec<u8>> = self
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(line.as_bytes()))
            .cloned()
            .collect();
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        found.into_iter().next().unwrap()
    }
}

fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(buffer: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    buffer[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at + needle.len())
}

/// The length of the first request in `buffer` (head and body), reading more as needed.
fn next_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let head_end = loop {
        if let Some(end) = find(buffer, 0, b"\r\n\r\n") {
            break end;
        }
        fill(stream, buffer)?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if field("transfer-encoding:").is_some() {
        let mut at = head_end;
        loop {
            let line_end = loop {
                if let Some(end) = find(buffer, at, b"\r\n") {
                    break end;
                }
                fill(stream, buffer)?;
            };
            let size_text = String::from_utf8_lossy(&buffer[at..line_end - 2]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while buffer.len() < line_end + 2 {
                    fill(stream, buffer)?;
                }
                return Some(line_end + 2);
            }
            while buffer.len() < line_end + size + 2 {
                fill(stream, buffer)?;
            }
            at = line_end + size + 2;
        }
    }
    let length: usize = field("content-length:").map_or(Some(0), |v| v.parse().ok())?;
    while buffer.len() < head_end + length {
        fill(stream, buffer)?;
    }
    Some(head_end + length)
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Vec<u8>>>) {
    let mut buffer = Vec::new();
    while let Some(len) = next_request(&mut stream, &mut buffer) {
        let request: Vec<u8> = buffer.drain(..len).collect();
        let path = String::from_utf8_lossy(&request)
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let head = request.starts_with(b"HEAD ");
        log.lock().unwrap().push(request);
        let answer: Vec<u8> = if path.starts_with("/chunked") {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n\
              4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
                .to_vec()
        } else if path.starts_with("/empty") {
            b"HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n".to_vec()
        } else if head {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok".to_vec()
        };
        if stream.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Sends raw bytes on a new connection; what comes back until the balancer closes or is quiet
/// for 300 ms.
fn exchange(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    answer
}

/// A request as received, normalised: request line, field lines sorted by lowercase name
/// (stably), the framing kind, and the decoded body.
fn normalise(request: &[u8]) -> (String, Vec<String>, &'static str, Vec<u8>) {
    let head_end = find(request, 0, b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&request[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap().to_owned();
    let mut fields: Vec<String> = lines
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            format!(
                "{}: {}",
                name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t'])
            )
        })
        .collect();
    fields.sort_by_key(|f| f.split(':').next().unwrap().to_owned());
    let body = &request[head_end..];
    let chunked = fields.iter().any(|f| f.starts_with("transfer-encoding:"));
    if !chunked {
        return (line, fields, "length", body.to_vec());
    }
    let mut decoded = Vec::new();
    let mut at = 0;
    loop {
        let line_end = find(body, at, b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[at..line_end - 2]).unwrap(), 16)
            .unwrap();
        if size == 0 {
            break;
        }
        decoded.extend_from_slice(&body[line_end..line_end + size]);
        at = line_end + size + 2;
    }
    (line, fields, "chunked", decoded)
}

/// A client's answer, normalised: status line, and the body decoded.
fn answer_of(bytes: &[u8]) -> (String, Vec<u8>) {
    let head_end = find(bytes, 0, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let status = head.lines().next().unwrap_or("").to_owned();
    if status.starts_with("http/1.1 1") {
        // An interim answer (100 Continue): the final one follows.
        return answer_of(&bytes[head_end..]);
    }
    let body = &bytes[head_end..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, body.to_vec());
    }
    let mut decoded = Vec::new();
    let mut at = 0;
    while let Some(line_end) = find(body, at, b"\r\n") {
        let Ok(size) =
            usize::from_str_radix(std::str::from_utf8(&body[at..line_end - 2]).unwrap(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        decoded.extend_from_slice(&body[line_end..line_end + size]);
        at = line_end + size + 2;
    }
    (status, decoded)
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The corpus: (case name, request bytes with `{case}` in the path). Each request carries a
/// fixed `X-Request-Id` and `traceparent` unless the case is about them.
fn corpus() -> Vec<(&'static str, String)> {
    let ctx = format!("X-Request-Id: rid\r\ntraceparent: {TRACEPARENT}\r\n");
    let big = "b".repeat(100_000);
    vec![
        (
            "get",
            format!("GET /get?x=1&y=%20 HTTP/1.1\r\nHost: shop\r\n{ctx}\r\n"),
        ),
        (
            "case-and-spaces",
            format!(
                "GET /case-and-spaces HTTP/1.1\r\nHOST: Shop:8080\r\nX-MiXeD:  padded value \t\r\nAccept: */*\r\n{ctx}\r\n"
            ),
        ),
        (
            "post-length",
            format!(
                "POST /post-length HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n{ctx}\r\nhello"
            ),
        ),
        (
            "post-empty",
            format!("POST /post-empty HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n{ctx}\r\n"),
        ),
        (
            "post-streamed",
            format!(
                "POST /post-streamed HTTP/1.1\r\nHost: shop\r\nContent-Length: {}\r\n{ctx}\r\n{big}",
                big.len()
            ),
        ),
        (
            "post-chunked",
            format!(
                "POST /post-chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n{ctx}\r\n5;a=b\r\nhello\r\n00006\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            ),
        ),
        (
            "hop-by-hop",
            format!(
                "GET /hop-by-hop HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Kept: yes\r\n{ctx}\r\n"
            ),
        ),
        (
            // Tokens naming Host and Content-Length drop neither (the body still ends where
            // the client said); the other named field goes.
            "connection-names-framing",
            format!(
                "POST /connection-names-framing HTTP/1.1\r\nConnection: host, content-length, x-secret\r\nHost: shop\r\nX-Secret: 1\r\nContent-Length: 5\r\n{ctx}\r\nhello"
            ),
        ),
        (
            "forwarded",
            format!(
                "GET /forwarded HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-For: 198.51.100.2, 10.0.0.1\r\n{ctx}\r\n"
            ),
        ),
        (
            "repeated",
            format!(
                "GET /repeated HTTP/1.1\r\nHost: shop\r\nCookie: a=1\r\nAccept: x\r\nCookie: b=2\r\nAccept: y\r\n{ctx}\r\n"
            ),
        ),
        (
            "bad-request-id",
            format!(
                "GET /bad-request-id HTTP/1.1\r\nHost: shop\r\nX-Request-Id: {}\r\ntraceparent: {TRACEPARENT}\r\n\r\n",
                "x".repeat(200)
            ),
        ),
        (
            "no-context",
            "GET /no-context HTTP/1.1\r\nHost: shop\r\n\r\n".to_owned(),
        ),
        (
            "head",
            format!("HEAD /head HTTP/1.1\r\nHost: shop\r\n{ctx}\r\n"),
        ),
        (
            "chunked-response",
            format!("GET /chunked-response HTTP/1.1\r\nHost: shop\r\n{ctx}\r\n"),
        ),
        (
            "empty-response",
            format!("GET /empty-response HTTP/1.1\r\nHost: shop\r\n{ctx}\r\n"),
        ),
        (
            "options",
            format!(
                "OPTIONS /options HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n{ctx}\r\n{{}}"
            ),
        ),
        (
            "delete-keyed-post",
            format!(
                "POST /delete-keyed-post HTTP/1.1\r\nHost: shop\r\nIdempotency-Key: k1\r\nContent-Length: 2\r\n{ctx}\r\nok"
            ),
        ),
        (
            "obs-text",
            format!("GET /obs-text HTTP/1.1\r\nHost: shop\r\nX-Latin: caf\u{e9}\r\n{ctx}\r\n"),
        ),
        (
            "absolute-form",
            format!("GET http://menu.example/absolute-form HTTP/1.1\r\nHost: other\r\n{ctx}\r\n"),
        ),
        (
            "http10",
            format!("GET /http10 HTTP/1.0\r\nHost: shop\r\n{ctx}\r\n"),
        ),
        (
            "expect",
            format!(
                "POST /expect HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 2\r\n{ctx}\r\nok"
            ),
        ),
    ]
}

/// Masks the values the balancer generates at random (request id, traceparent).
fn mask(fields: &mut [String], case: &str) {
    if case == "no-context" || case == "bad-request-id" {
        for field in fields.iter_mut() {
            if field.starts_with("x-request-id:") || field.starts_with("traceparent:") {
                *field = format!("{}: *", field.split(':').next().unwrap());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_core_forwards_what_the_hyper_path_forwards() {
    let backend = RawBackend::start();
    let config = |core: &str| {
        format!(
            "[server]\ncore = \"{core}\"\n[limits]\nretry_buffer_bytes = 1024\n\
             [[pools]]\nname = \"raw\"\n[[pools.backends]]\naddress = \"{}\"\n",
            backend.address
        )
    };
    let fast = Balancer::from_toml(&config("fast")).await;
    let hyper = Balancer::from_toml(&config("hyper")).await;
    for (case, text) in corpus() {
        let mut seen = Vec::new();
        let mut answers = Vec::new();
        for (core, balancer) in [("fast", &fast), ("hyper", &hyper)] {
            let bytes = text.replace(&format!("/{case}"), &format!("/{core}/{case}"));
            let address = balancer.public;
            let answer = tokio::task::spawn_blocking(move || exchange(address, bytes.as_bytes()))
                .await
                .unwrap();
            answers.push(answer_of(&answer));
            let method = text.split(' ').next().unwrap();
            let recorded = backend.request(&format!("{method} /{core}/{case}"));
            let recorded = String::from_utf8_lossy(&recorded)
                .replace(&format!("/{core}/"), "/")
                .into_bytes();
            let (line, mut fields, framing, body) = normalise(&recorded);
            mask(&mut fields, case);
            seen.push((line, fields, framing, body));
        }
        assert_eq!(
            seen[0], seen[1],
            "{case}: what the backend received differs"
        );
        assert_eq!(
            answers[0], answers[1],
            "{case}: what the client received differs"
        );
        assert!(
            answers[0]
                .0
                .split(' ')
                .nth(1)
                .is_some_and(|s| s.starts_with('2')),
            "{case}: {:?}",
            answers[0]
        );
    }
    fast.stop().await;
    hyper.stop().await;
}

/// Several requests pipelined on one connection, with bodies of both framings, arrive at the
/// backend the same way through either core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_forwarded_alike() {
    let backend = RawBackend::start();
    let mut answers = Vec::new();
    for core in ["fast", "hyper"] {
        let balancer = Balancer::from_toml(&format!(
            "[server]\ncore = \"{core}\"\n[[pools]]\nname = \"raw\"\n\
             [[pools.backends]]\naddress = \"{}\"\n",
            backend.address
        ))
        .await;
        let ctx = format!("X-Request-Id: rid\r\ntraceparent: {TRACEPARENT}\r\n");
        let bytes = format!(
            "POST /{core}/p1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 3\r\n{ctx}\r\nabc\
             POST /{core}/p2 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n{ctx}\r\n3\r\ndef\r\n0\r\n\r\n\
             GET /{core}/p3 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n{ctx}\r\n"
        );
        let address = balancer.public;
        let answer = tokio::task::spawn_blocking(move || exchange(address, bytes.as_bytes()))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&answer).into_owned();
        answers.push(text.matches("HTTP/1.1 200 OK").count());
        balancer.stop().await;
    }
    assert_eq!(answers, [3, 3]);
    for case in ["p1", "p2", "p3"] {
        let method = if case == "p3" { "GET" } else { "POST" };
        let one = |core: &str| {
            let recorded = backend.request(&format!("{method} /{core}/{case}"));
            normalise(
                &String::from_utf8_lossy(&recorded)
                    .replace(&format!("/{core}/"), "/")
                    .into_bytes(),
            )
        };
        assert_eq!(one("fast"), one("hyper"), "{case}");
    }
}

/// A streamed body (larger than the replay buffer) whose first backend refuses the connection
/// reaches the next backend whole on either core: nothing had been sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_goes_whole_to_the_next_backend_after_a_refused_connect() {
    let backend = RawBackend::start();
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let body = "s".repeat(200_000);
    for core in ["fast", "hyper"] {
        let balancer = Balancer::from_toml(&format!(
            "[server]\ncore = \"{core}\"\n[limits]\nretry_buffer_bytes = 1024\n\
             [[pools]]\nname = \"raw\"\nalgorithm = \"round_robin\"\n\
             [[pools.backends]]\naddress = \"{refused}\"\n\
             [[pools.backends]]\naddress = \"{}\"\n",
            backend.address
        ))
        .await;
        for i in 0..2 {
            let bytes = format!(
                "POST /{core}/streamed-{i} HTTP/1.1\r\nHost: shop\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let address = balancer.public;
            let answer = tokio::task::spawn_blocking(move || exchange(address, bytes.as_bytes()))
                .await
                .unwrap();
            assert_eq!(answer_of(&answer).0, "http/1.1 200 ok", "{core} {i}");
            let recorded = backend.request(&format!("POST /{core}/streamed-{i}"));
            assert!(recorded.ends_with(body.as_bytes()), "{core} {i}: body cut");
        }
        balancer.stop().await;
    }
}
