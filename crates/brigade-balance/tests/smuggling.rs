//! Request smuggling and malformed input through a real balancer in front of a raw TCP backend
//! that records every byte it receives: each hostile request is refused with a 4xx or forwarded
//! in exactly one framing, and a client's broken body is never counted against a backend.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Balancer;

/// A backend on a raw socket: it frames requests itself (Content-Length or chunked), keeps
/// each one's exact bytes, and answers `200 ok`.
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

    /// The requests received whose request line starts with `line`.
    fn requests(&self, line: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .filter(|r| r.starts_with(line))
            .collect()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// Reads from `stream` into `buffer` until `buffer[from..]` contains `needle`; returns the
/// index just past it, or `None` when the peer closed.
fn read_until(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    from: usize,
    needle: &[u8],
) -> Option<usize> {
    loop {
        if let Some(at) = buffer[from..]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            return Some(from + at + needle.len());
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn read_exactly(stream: &mut TcpStream, buffer: &mut Vec<u8>, len: usize) -> Option<()> {
    while buffer.len() < len {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    Some(())
}

/// One request's length in `buffer` (head and body), reading more as needed.
fn next_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let head_end = read_until(stream, buffer, 0, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if field("transfer-encoding:").is_some_and(|v| v.ends_with("chunked")) {
        let mut at = head_end;
        loop {
            let line_end = read_until(stream, buffer, at, b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buffer[at..line_end - 2]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                return read_until(stream, buffer, line_end, b"\r\n").map(|end| {
                    // Trailer section: empty in everything the balancer sends.
                    end.max(line_end + 2)
                });
            }
            read_exactly(stream, buffer, line_end + size + 2)?;
            at = line_end + size + 2;
        }
    }
    let length: usize = field("content-length:").map_or(Some(0), |v| v.parse().ok())?;
    read_exactly(stream, buffer, head_end + length)?;
    Some(head_end + length)
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Vec<u8>>>) {
    let mut buffer = Vec::new();
    while let Some(len) = next_request(&mut stream, &mut buffer) {
        log.lock().unwrap().push(buffer.drain(..len).collect());
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Sends raw bytes on a new connection and returns what comes back within a short time
/// (everything until the balancer closes, or until it has been quiet for 300 ms).
fn exchange(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn exchange_async(address: SocketAddr, bytes: &[u8]) -> String {
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || exchange(address, &bytes))
        .await
        .unwrap()
}

/// The fixed request context every corpus request carries, so what the backend receives is
/// predictable byte for byte.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A request head for case `name`: `POST /case/{name}` with the fixed context and `fields`.
fn request(name: &str, fields: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /case/{name} HTTP/1.1\r\nHost: shop\r\nX-Request-Id: {name}\r\n\
         traceparent: {TRACEPARENT}\r\n{fields}\r\n{body}"
    )
    .into_bytes()
}

/// How the backend receives a body: a client's single valid `Content-Length` is kept where it
/// was; a chunked body is re-chunked by the upstream connection, which adds its own
/// `transfer-encoding` last.
enum Framing {
    Length(usize),
    Chunked,
}

/// What the backend must receive for case `name`: the same head with the balancer's
/// `X-Forwarded-*`, exactly one framing field, and `body` encoded in that framing.
fn forwarded(name: &str, framing: Framing, body: &str) -> String {
    let (kept, added) = match framing {
        Framing::Length(n) => (format!("content-length: {n}\r\n"), String::new()),
        Framing::Chunked => (String::new(), "transfer-encoding: chunked\r\n".to_owned()),
    };
    format!(
        "POST /case/{name} HTTP/1.1\r\nhost: shop\r\nx-request-id: {name}\r\n\
         traceparent: {TRACEPARENT}\r\n{kept}x-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: shop\r\n{added}\r\n{body}"
    )
}

/// `request` with its field names in lowercase: the fast core forwards the names as the client
/// wrote them, the hyper path in lowercase; either is the same field (RFC 9110 §5.1).
fn lowercase_names(request: &str) -> String {
    let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
    let mut lines = head.split("\r\n");
    let mut out = lines.next().unwrap_or("").to_owned();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        out.push_str(&format!("\r\n{}:{value}", name.to_ascii_lowercase()));
    }
    format!("{out}\r\n\r\n{body}")
}

async fn balancer_for(backend: &RawBackend) -> Balancer {
    balancer_on(backend, "fast").await
}

/// A balancer in front of `backend` serving clients on `core` (`fast` or `hyper`).
async fn balancer_on(backend: &RawBackend, core: &str) -> Balancer {
    Balancer::from_toml(&format!(
        "[server]\ncore = \"{core}\"\n[[pools]]\nname = \"raw\"\n\
         [[pools.backends]]\naddress = \"{}\"\n",
        backend.address
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus_is_refused_or_forwarded_in_one_framing_on_the_fast_core() {
    smuggling_corpus("fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus_is_refused_or_forwarded_in_one_framing_on_the_hyper_core() {
    smuggling_corpus("hyper").await;
}

/// Requests both cores keep unambiguous, but differently: the hyper path frames CL+TE by the
/// chunked coding (and closes), reads `chunked` twice as once and accepts bare LF line ends;
/// the fast core refuses them all with 400, as nginx and HAProxy refuse some of them.
fn stricter_on_the_fast_core() -> Vec<(&'static str, Vec<u8>, String)> {
    vec![
        // CL.TE: the chunked coding frames the (empty) body; the length and the trailing `G`
        // that a length-framing backend would have taken as the next request are dropped.
        (
            "cl-te",
            request(
                "cl-te",
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\nG",
            ),
            forwarded("cl-te", Framing::Chunked, "0\r\n\r\n"),
        ),
        // TE.CL: the body is the chunked one, forwarded chunked; the stale length is gone.
        (
            "te-cl",
            request(
                "te-cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                "8\r\nSMUGGLED\r\n0\r\n\r\n",
            ),
            forwarded("te-cl", Framing::Chunked, "8\r\nSMUGGLED\r\n0\r\n\r\n"),
        ),
        (
            "te-twice",
            request(
                "te-twice",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            forwarded("te-twice", Framing::Chunked, "3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "bare-lf",
            format!(
                "POST /case/bare-lf HTTP/1.1\nHost: shop\nX-Request-Id: bare-lf\n\
                 traceparent: {TRACEPARENT}\nContent-Length: 3\n\nabc"
            )
            .into_bytes(),
            forwarded("bare-lf", Framing::Length(3), "abc"),
        ),
    ]
}

async fn smuggling_corpus(core: &str) {
    let backend = RawBackend::start();
    let balancer = balancer_on(&backend, core).await;
    let address = balancer.public;
    let fast = core == "fast";

    // Refused with a 4xx before anything reaches the backend.
    let mut refused: Vec<(&str, Vec<u8>)> = vec![
        (
            "te-xchunked",
            request("te-xchunked", "Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "te-chunked-identity",
            request("te-chunked-identity", "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
        ),
        (
            "te-identity",
            request("te-identity", "Transfer-Encoding: identity\r\nContent-Length: 1\r\n", "x"),
        ),
        (
            "te-space-before-colon",
            request("te-space-before-colon", "Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "te-obs-fold",
            request("te-obs-fold", "X-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 1\r\n", "x"),
        ),
        (
            "te-folded-value",
            request("te-folded-value", "Transfer-Encoding:\r\n chunked\r\nContent-Length: 1\r\n", "x"),
        ),
        (
            "cl-differing",
            request("cl-differing", "Content-Length: 1\r\nContent-Length: 2\r\n", "xy"),
        ),
        (
            "cl-list-differing",
            request("cl-list-differing", "Content-Length: 1, 2\r\n", "xy"),
        ),
        ("cl-plus-sign", request("cl-plus-sign", "Content-Length: +1\r\n", "x")),
        (
            "nul-in-field",
            request("nul-in-field", "X-Evil: a\0b\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "te-http10",
            b"POST /case/te-http10 HTTP/1.0\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "duplicate-host",
            b"GET /case/duplicate-host HTTP/1.1\r\nHost: shop\r\nHost: admin.internal\r\n\r\n".to_vec(),
        ),
        (
            "authority-form",
            b"GET shop:80 HTTP/1.1\r\nHost: shop\r\n\r\n".to_vec(),
        ),
        (
            "bad-chunk-size",
            request("bad-chunk-size", "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"),
        ),
    ];
    if fast {
        refused.extend(
            stricter_on_the_fast_core()
                .into_iter()
                .map(|(name, bytes, _)| (name, bytes)),
        );
    }
    for (name, bytes) in &refused {
        let answer = exchange_async(address, bytes).await;
        let status: u16 = answer
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no status line in {answer:?}"));
        assert!(
            (400..500).contains(&status),
            "{name}: answered {status}: {answer}"
        );
        assert!(
            backend.requests(&format!("POST /case/{name}")).is_empty()
                && backend.requests(&format!("GET /case/{name}")).is_empty(),
            "{name} reached the backend"
        );
    }
    assert_eq!(backend.count(), 0, "{:?}", backend.requests(""));

    // Forwarded, each in exactly one framing the backend cannot read another way.
    let mut cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "te-tab",
            request(
                "te-tab",
                "Transfer-Encoding:\tchunked\r\n",
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            forwarded("te-tab", Framing::Chunked, "3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "te-upper-padded",
            request(
                "te-upper-padded",
                "Transfer-Encoding:  CHUNKED \r\n",
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            forwarded("te-upper-padded", Framing::Chunked, "3\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "cl-repeated",
            request(
                "cl-repeated",
                "Content-Length: 3\r\nContent-Length: 3\r\n",
                "abc",
            ),
            forwarded("cl-repeated", Framing::Length(3), "abc"),
        ),
    ];
    if !fast {
        cases.extend(stricter_on_the_fast_core());
    }
    for (name, bytes, expected) in &cases {
        let answer = exchange_async(address, bytes).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(
            !answer[12..].contains("HTTP/1.1"),
            "{name}: a second answer came back: {answer}"
        );
        let seen: Vec<String> = backend
            .requests(&format!("POST /case/{name}"))
            .iter()
            .map(|r| lowercase_names(r))
            .collect();
        assert_eq!(seen, [lowercase_names(expected)], "{name}");
    }
    // Nothing but the cases above arrived: no smuggled `G…` request.
    assert_eq!(backend.count(), cases.len(), "{:?}", backend.requests(""));

    // Absolute form: forwarded in origin form, Host taken from the target.
    let answer = exchange_async(
        address,
        format!(
            "GET http://shop.example/case/absolute?x=1 HTTP/1.1\r\nHost: other\r\n\
             X-Request-Id: absolute\r\ntraceparent: {TRACEPARENT}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        backend.requests("GET /case/absolute"),
        [format!(
            "GET /case/absolute?x=1 HTTP/1.1\r\nhost: shop.example\r\nx-request-id: absolute\r\n\
             traceparent: {TRACEPARENT}\r\nx-forwarded-for: 127.0.0.1\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: shop.example\r\n\r\n"
        )]
    );
    balancer.stop().await;
}

/// A malformed chunked body is the client's fault: 400 problem+json, and however many of them
/// arrive, the backend is neither blamed nor ejected (five backend failures would eject it).
/// The same for a client that disconnects mid-body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_client_bodies_are_answered_400_and_never_blamed_on_the_backend() {
    let backend = RawBackend::start();
    let balancer = balancer_for(&backend).await;
    let address = balancer.public;
    for i in 0..8 {
        let answer = exchange_async(
            address,
            &request(
                &format!("zz-{i}"),
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains("x-request-id: zz-"), "{answer}");
    }
    // A client that goes away in the middle of a streamed body.
    for _ in 0..8 {
        let address = balancer.public;
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .write_all(
                    b"POST /case/cut HTTP/1.1\r\nHost: shop\r\nContent-Length: 1000000\r\n\r\n",
                )
                .unwrap();
            stream.write_all(&[b'x'; 70_000]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(stream);
        })
        .await
        .unwrap();
    }
    // Wait until every cut request has been seen to its end by the balancer.
    let view = loop {
        let view = balancer.backend("raw", backend.address).await;
        if view["in_flight"] == 0 {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(view["failures_total"], 0, "{view}");
    assert_eq!(view["state"], "healthy", "{view}");
    assert!(
        !balancer
            .metrics()
            .await
            .lines()
            .any(|l| l.starts_with("brigade_balance_ejections_total") && !l.ends_with(" 0")),
        "a backend was ejected"
    );
    let answer = exchange_async(address, &request("after", "Content-Length: 2\r\n", "ok")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    balancer.stop().await;
}
