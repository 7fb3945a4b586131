//! The balancer's own answers (problem+json with the request id), slow and hostile clients,
//! and the admin API contract.

#[path = "../../../tests/support/promtool.rs"]
mod promtool;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{Balancer, Upstream, backends_toml};

/// Sends raw bytes and returns everything the balancer answers until it closes.
fn raw(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

async fn raw_async(address: SocketAddr, bytes: Vec<u8>) -> String {
    tokio::task::spawn_blocking(move || raw(address, &bytes))
        .await
        .unwrap()
}

async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(
        body["instance"],
        format!("urn:brigade:request:{request_id}")
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_answers_are_problem_json() {
    let slow = Upstream::start("slow").await;
    slow.behaviour.delay_ms.store(2_000, Ordering::SeqCst);
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let balancer = Balancer::from_toml(&format!(
        "[timeouts]\nupstream_response_ms = 300\nconnect_ms = 200\n\
         [limits]\nmax_header_bytes = 2048\nmax_body_bytes = 1000\n\
         [retry]\nmax_attempts = 1\n\
         [[pools]]\nname = \"slow\"\n{}\
         [[pools]]\nname = \"down\"\n[[pools.backends]]\naddress = \"{down}\"\n\
         [[pools]]\nname = \"none\"\npanic_threshold = 0.0\n\
         health = {{ path = \"/health\", interval_ms = 50, timeout_ms = 100, rise = 1, fall = 1 }}\n\
         [[pools.backends]]\naddress = \"{down}\"\n\
         [[routes]]\npath_prefix = \"/down\"\npool = \"down\"\n\
         [[routes]]\npath_prefix = \"/none\"\npool = \"none\"\n\
         [[routes]]\npool = \"slow\"\n",
        backends_toml(&[&slow])
    ))
    .await;
    let client = &balancer.client;

    let response = client.get(balancer.url("/slow")).send().await.unwrap();
    let body = assert_problem(response, 504).await;
    assert_eq!(body["type"], "urn:brigade:problem:gateway-timeout");

    let response = client.get(balancer.url("/down")).send().await.unwrap();
    assert_problem(response, 502).await;

    let response = client
        .get(balancer.url("/none"))
        .header("x-request-id", "rid-503")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let body = assert_problem(response, 503).await;
    assert_eq!(body["instance"], "urn:brigade:request:rid-503");

    let response = client
        .get(balancer.url("/"))
        .header("x-big", "x".repeat(3000))
        .send()
        .await
        .unwrap();
    assert_problem(response, 431).await;

    let response = client
        .post(balancer.url("/"))
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();
    assert_problem(response, 413).await;

    // Chunked body that grows past the limit while streaming.
    let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(format!("{:x}\r\n", 600).as_bytes());
        request.extend_from_slice(&[b'y'; 600]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    slow.behaviour.delay_ms.store(0, Ordering::SeqCst);
    let answer = raw_async(balancer.public, request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // No Host header in HTTP/1.1.
    let answer = raw_async(
        balancer.public,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // Garbage: the parser's 400, and the balancer keeps serving.
    for garbage in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET /\xff HTTP/9.9\r\n\r\n",
    ] {
        let answer = raw_async(balancer.public, garbage.to_vec()).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }
    assert_eq!(balancer.get("/").await.0, 200);

    // Every answer above that the balancer gave, its own included, is counted by pool and
    // status code (what the HTTP parser refused never reached it).
    let metrics = balancer.metrics().await;
    for (pool, code, count) in [
        ("slow", 504, 1),
        ("down", 502, 1),
        ("none", 503, 1),
        ("slow", 431, 1),
        ("slow", 413, 2),
        ("slow", 400, 1),
        ("slow", 200, 1),
    ] {
        let series =
            format!("brigade_balance_requests_total{{pool=\"{pool}\",code=\"{code}\"}} {count}");
        assert!(
            metrics.lines().any(|line| line == series),
            "{series} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("brigade_balance_request_duration_seconds_count{pool=\"slow\"} 6"),
        "{metrics}"
    );
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_connections() {
    let a = Upstream::start("sc").await;
    let balancer = Balancer::from_toml(&format!(
        "[timeouts]\nheader_read_ms = 300\nidle_ms = 400\n[[pools]]\nname = \"sc\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    let address = balancer.public;
    // A head that never ends is cut off after header_read_ms.
    let started = Instant::now();
    let answer = raw_async(address, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec()).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?} {answer}"
    );
    // An idle keep-alive connection is closed after idle_ms.
    let took = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let closed = stream.read(&mut buffer).unwrap_or(0);
        assert_eq!(closed, 0);
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_with_more_fields_than_max_headers_gets_431() {
    let a = Upstream::start("fields").await;
    let balancer = Balancer::from_toml(&format!(
        "[limits]\nmax_headers = 20\n[[pools]]\nname = \"fields\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    let head = |fields: usize| {
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        for i in 2..fields {
            head.extend_from_slice(format!("X-Field-{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    };
    let answer = raw_async(balancer.public, head(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_async(balancer.public, head(21)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(
        a.hits(),
        1,
        "only the head within the limit reached the backend"
    );
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_half_way_gets_408_after_body_read_ms() {
    let a = Upstream::start("slow-body").await;
    let balancer = Balancer::from_toml(&format!(
        "[timeouts]\nbody_read_ms = 300\n[[pools]]\nname = \"sb\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    let started = Instant::now();
    // Ten bytes announced, two sent, and the connection kept open.
    let answer = raw_async(
        balancer.public,
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}".to_vec(),
    )
    .await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("within 300 ms"), "{answer}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(a.hits(), 0, "nothing reached the backend");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_contract() {
    let a = Upstream::start("adm-a").await;
    let b = Upstream::start("adm-b").await;
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"orders\"\nalgorithm = \"peak_ewma\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    let client = &balancer.client;
    balancer.get("/").await;
    let pools = balancer.pools().await;
    let pool = &pools["pools"][0];
    assert_eq!(pool["name"], "orders");
    assert_eq!(pool["algorithm"], "peak_ewma");
    let backend = &pool["backends"][0];
    for key in [
        "address",
        "weight",
        "backup",
        "state",
        "healthy",
        "draining",
        "in_flight",
        "ewma_ms",
        "requests_total",
        "failures_total",
    ] {
        assert!(!backend[key].is_null(), "{key} missing in {backend}");
    }
    assert_eq!(backend["address"], a.address.to_string());
    assert_eq!(backend["state"], "healthy");
    assert_eq!(backend["requests_total"], 1);

    let add = |body: serde_json::Value| {
        client
            .post(balancer.admin_url("/admin/pools/orders/backends"))
            .json(&body)
            .send()
    };
    let response =
        add(serde_json::json!({"address": b.address.to_string(), "weight": 1, "backup": false}))
            .await
            .unwrap();
    assert_eq!(response.status(), 201);
    let response = add(serde_json::json!({"address": b.address.to_string()}))
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = add(serde_json::json!({"address": "nonsense"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let response = add(serde_json::json!({"adress": "x"})).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        client
            .get(balancer.admin_url("/admin/pools/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    for _ in 0..20 {
        balancer.get("/").await;
    }
    assert!(b.hits() > 0, "an added backend takes traffic");
    let response = client
        .delete(balancer.admin_url(&format!("/admin/pools/orders/backends/{}", b.address)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let hits = b.hits();
    for _ in 0..10 {
        balancer.get("/").await;
    }
    assert_eq!(b.hits(), hits);
    assert_eq!(
        balancer.pools().await["pools"][0]["backends"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let live = client
        .get(balancer.admin_url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let metrics = balancer.metrics().await;
    for name in [
        "brigade_balance_upstream_requests_total{pool=\"orders\"",
        "brigade_balance_upstream_request_duration_seconds_bucket{pool=\"orders\"",
        "brigade_balance_backend_healthy{pool=\"orders\"",
        "brigade_balance_backend_in_flight{pool=\"orders\"",
        "brigade_balance_no_healthy_backends_total{pool=\"orders\"}",
        "brigade_balance_retry_budget_exhausted_total{pool=\"orders\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    promtool::assert_accepts(&metrics, "the balancer's /metrics");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_required_when_configured() {
    let a = Upstream::start("tok").await;
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"tok\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    balancer.stop().await;
    let text = format!(
        "listen = \"127.0.0.1:0\"\nworkers = 1\nadmin = {{ listen = \"0.0.0.0:0\", token = \"s3cret-admin-token-0001\" }}\n[[pools]]\nname = \"tok\"\n{}",
        backends_toml(&[&a])
    );
    let config = brigade_balance::Config::parse(&text, "t").unwrap();
    let shutdown = brigade_core::shutdown::Shutdown::new();
    let running = brigade_balance::start(config, None, shutdown.clone())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/admin/pools", running.admin.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = client.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(&url)
        .bearer_auth("s3cret-admin-token-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Probes stay open.
    let live = format!("http://127.0.0.1:{}/health/live", running.admin.port());
    assert_eq!(client.get(&live).send().await.unwrap().status(), 200);
    shutdown.trigger();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let a = Upstream::start("mc").await;
    let balancer = Balancer::from_toml(&format!(
        "[limits]\nmax_connections = 2\n[[pools]]\nname = \"mc\"\n{}",
        backends_toml(&[&a])
    ))
    .await;
    let address = balancer.public;
    let outcome = tokio::task::spawn_blocking(move || {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buffer = [0u8; 1024];
        // Two keep-alive connections take both slots.
        let mut held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(address).unwrap();
                s.write_all(request).unwrap();
                let n = s.read(&mut buffer).unwrap();
                assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
                s
            })
            .collect();
        // A third is not served while they are open…
        let mut third = TcpStream::connect(address).unwrap();
        third.write_all(request).unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let waited = third.read(&mut buffer).is_err();
        // …and is served as soon as one closes.
        held.pop();
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = third.read(&mut buffer).unwrap();
        (waited, buffer[..n].starts_with(b"HTTP/1.1 200"))
    })
    .await
    .unwrap();
    assert_eq!(outcome, (true, true));
    balancer.stop().await;
}

/// The value of the in-flight gauge of pool `pool`'s only backend in a `/metrics` text.
fn in_flight_gauge(metrics: &str, pool: &str) -> f64 {
    let selector = format!("brigade_balance_backend_in_flight{{pool=\"{pool}\"");
    let line = metrics
        .lines()
        .find(|line| line.starts_with(&selector))
        .unwrap_or_else(|| panic!("no in-flight gauge for {pool} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_gauge_counts_the_requests_in_progress_when_scraped() {
    let slow = Upstream::start("inflight").await;
    slow.behaviour.delay_ms.store(2_000, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"inflight\"\n{}",
        backends_toml(&[&slow])
    ))
    .await;
    let url = balancer.url("/slow");
    let request = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
    // The upstream counts a request when it arrives, before its delay.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = in_flight_gauge(&balancer.metrics().await, "inflight");
    assert_eq!(request.await.unwrap(), 200);
    let after = in_flight_gauge(&balancer.metrics().await, "inflight");
    assert_eq!((during, after), (1.0, 0.0));
    balancer.stop().await;
}
