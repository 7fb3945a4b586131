//! What the fuzz targets share: an in-process balancer in front of a loopback backend, fed one
//! client connection's raw bytes at a time.
//!
//! The bytes go through the same code as a socket accepted by `brigade balance`
//! ([`brigade_balance::server::serve_connection`]: hyper's HTTP/1.1 parser with the configured
//! limits, the head checks, routing, rate limits, header rewriting, the request body streamed or
//! kept for replay, retries), over an in-memory pipe, so one run costs no client socket. The
//! property is the absence of panics: libFuzzer's panic hook aborts the process on any panic,
//! in any task or thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use brigade_balance::Config;
use brigade_balance::server::serve_connection;
use brigade_balance::state::State;
use brigade_core::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// The balancer under test and the runtime its tasks (and the backend's) live on.
struct Harness {
    runtime: Runtime,
    state: Arc<State>,
    shutdown: Shutdown,
}

/// The client's address as the balancer sees it: inside `trusted_proxies`, so the branch that
/// believes a client's `X-Forwarded-*` is reached too.
const PEER: &str = "10.1.2.3:40000";

/// Short timeouts: an input that stalls (a body shorter than its length) must not hold the
/// fuzzer for long. Two pools, a route with a header condition, consistent hashing by cookie
/// and by path segment, and rate limits generous enough never to refuse, so that routing,
/// hashing and the limiter's key extraction all see the fuzzed head.
fn config(backend: SocketAddr) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
trusted_proxies = ["10.0.0.0/8"]

[timeouts]
connect_ms = 200
header_read_ms = 200
body_read_ms = 200
upstream_response_ms = 500
idle_ms = 1000

[limits]
max_header_bytes = 4096
max_headers = 32
max_body_bytes = 65536
retry_buffer_bytes = 1024

[retry]
max_attempts = 2
deadline_ms = 1000

[[rate_limits]]
name = "writes"
methods = ["POST", "PUT", "PATCH", "DELETE"]
requests = 1000000000
per_seconds = 1
key = {{ header = "authorization" }}
max_clients = 64

[[rate_limits]]
name = "all"
requests = 1000000000
per_seconds = 1
max_clients = 64

[[pools]]
name = "orders"
algorithm = "consistent_hash"
hash_key = {{ cookie = "session" }}
[[pools.backends]]
address = "{backend}"

[[pools]]
name = "kitchen"
algorithm = "consistent_hash"
hash_key = {{ path_segment = 3 }}
[[pools.backends]]
address = "{backend}"

[[pools]]
name = "beta"
algorithm = "peak_ewma"
[[pools.backends]]
address = "{backend}"

[[routes]]
path_prefix = "/api/v1/kitchen"
pool = "kitchen"

[[routes]]
header = {{ name = "x-beta", value = "1" }}
pool = "beta"

[[routes]]
pool = "orders"
"#
    )
}

/// The backend: reads the whole body (up to 64 KiB) and answers with its length. A request
/// header `x-fuzz-status: 502` makes it answer 502, so the retry path runs as well.
async fn backend(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = request
        .headers()
        .get("x-fuzz-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|code| !code.is_informational())
        .unwrap_or(StatusCode::OK);
    let length = match Limited::new(request.into_body(), 1 << 16).collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    let mut response = Response::new(Full::new(Bytes::from(length.to_string())));
    *response.status_mut() = status;
    Ok(response)
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port for the backend");
        let address = listener.local_addr().expect("the backend's address");
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(backend)),
                );
            }
        });
        let config = Config::parse(&config(address), "fuzz").expect("the harness's config");
        Harness {
            runtime,
            state: Arc::new(State::new(config, None)),
            shutdown: Shutdown::new(),
        }
    })
}

/// Sends `bytes` as one client connection (then closes the client's sending side) and returns
/// what the balancer answered. Gives up after two seconds: every timeout of the configuration
/// is shorter, so an answer that takes longer is left to libFuzzer's own hang detection.
pub fn exchange(bytes: &[u8]) -> Vec<u8> {
    let harness = harness();
    let peer: SocketAddr = PEER.parse().expect("a socket address");
    harness.runtime.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let connection = tokio::spawn(serve_connection(
            server,
            peer,
            Arc::clone(&harness.state),
            harness.shutdown.clone(),
            false,
        ));
        let (mut reader, mut writer) = tokio::io::split(client);
        let send = async {
            // The balancer may close before reading everything (a refused head): not an error.
            let _ = writer.write_all(bytes).await;
            let _ = writer.shutdown().await;
        };
        let mut answer = Vec::new();
        let receive = reader.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let ((), _) = tokio::join!(send, receive);
        })
        .await;
        connection.abort();
        if let Err(error) = connection.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
        answer
    })
}
