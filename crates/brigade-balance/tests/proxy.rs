//! Forwarding over loopback: retries and their budget, draining, hot reload, headers,
//! streaming, and every answer the balancer gives itself.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{Balancer, Upstream, backends_toml, spread};

fn rr_pool(name: &str, upstreams: &[&Upstream]) -> String {
    format!(
        "[[pools]]\nname = \"{name}\"\nalgorithm = \"round_robin\"\noutlier = {{ consecutive_failures = 0 }}\n{}",
        backends_toml(upstreams)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_idempotency_key_is_retried_and_without_it_is_not() {
    let dies = Upstream::start("dies").await;
    let ok = Upstream::start("ok").await;
    dies.behaviour.die_mid_request.store(true, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&rr_pool("post", &[&dies, &ok])).await;

    // Round robin starts at the first backend: the one that dies mid-request.
    let response = balancer.post_order(None).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        (dies.hits(), ok.hits()),
        (1, 0),
        "a POST without a key was retried"
    );

    // Next turn is `ok`; skip it so the keyed POST meets `dies` first again.
    assert_eq!(balancer.get("/").await, (200, "ok".into()));
    let response = balancer.post_order(Some("order-1")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backend"], "ok");
    assert_eq!((dies.hits(), ok.hits()), (2, 2));

    // GET is idempotent: retried too.
    assert_eq!(balancer.get("/").await, (200, "ok".into()));
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries() {
    let a = Upstream::start("b503a").await;
    let b = Upstream::start("b503b").await;
    a.behaviour.status.store(503, Ordering::SeqCst);
    b.behaviour.status.store(503, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&format!(
        "[retry]\nmax_attempts = 3\nbudget_ratio = 0.2\nmin_per_sec = 1.0\n{}",
        rr_pool("budget", &[&a, &b])
    ))
    .await;
    let started = Instant::now();
    let n = 200u64;
    for _ in 0..n {
        // The backend's own 503 comes back when retries are spent.
        assert_eq!(balancer.get("/").await.0, 503);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let attempts = a.hits() + b.hits();
    let retries = attempts - n;
    // Budget: 20 % of requests, the initial floor (1), the floor refill, and the bucket cap.
    let allowed = (n as f64 * 0.2 + 1.0 + elapsed * 1.0 + 1.0).ceil() as u64;
    assert!(retries >= 20, "retries did happen: {retries}");
    assert!(
        retries <= allowed,
        "{retries} retries for {n} requests (allowed {allowed})"
    );
    let metrics = balancer.metrics().await;
    let exhausted = metrics
        .lines()
        .find(|l| l.starts_with("brigade_balance_retry_budget_exhausted_total{pool=\"budget\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(exhausted >= 100.0, "budget exhaustion counted: {exhausted}");
    assert!(
        metrics.contains("brigade_balance_retries_total{pool=\"budget\",reason=\"server_error\"}")
    );
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_finishes_in_flight_and_takes_no_new_requests() {
    let a = Upstream::start("da").await;
    let b = Upstream::start("db").await;
    let balancer = Balancer::from_toml(&rr_pool("drain", &[&a, &b])).await;
    a.behaviour.delay_ms.store(400, Ordering::SeqCst);
    // Round robin: the first request goes to `da` and stays in flight for 400 ms.
    let slow = tokio::spawn({
        let client = balancer.client.clone();
        let url = balancer.url("/");
        async move { client.get(&url).send().await.unwrap() }
    });
    for _ in 0..100 {
        if balancer.backend("drain", a.address).await["in_flight"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained: serde_json::Value = balancer
        .admin_post(&format!("/admin/pools/drain/backends/{}/drain", a.address))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(drained["state"], "draining");
    assert_eq!(drained["draining"], true);
    assert_eq!(drained["in_flight"], 1);
    let counts = spread(&balancer, 10).await;
    assert_eq!(counts.get("db"), Some(&10), "{counts:?}");
    let response = slow.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "da");

    a.behaviour.delay_ms.store(0, Ordering::SeqCst);
    let undrained = balancer
        .admin_post(&format!(
            "/admin/pools/drain/backends/{}/undrain",
            a.address
        ))
        .await;
    assert_eq!(undrained.status(), 200);
    let counts = spread(&balancer, 10).await;
    assert_eq!(counts.get("da"), Some(&5), "{counts:?}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_mid_traffic_loses_no_request() {
    let a = Upstream::start("ra").await;
    let b = Upstream::start("rb").await;
    let c = Upstream::start("rc").await;
    for u in [&a, &b, &c] {
        u.behaviour.delay_ms.store(5, Ordering::SeqCst);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("balance.toml");
    let head = "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 2\n";
    std::fs::write(&path, format!("{head}{}", rr_pool("reload", &[&a, &b]))).unwrap();
    let config = brigade_balance::Config::load(&path).unwrap();
    let balancer = Balancer::start(config, Some(path.clone())).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = balancer.client.clone();
        let url = balancer.url("/");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                statuses.push(
                    client
                        .get(&url)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0),
                );
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, format!("{head}{}", rr_pool("reload", &[&a, &c]))).unwrap();
    let response = balancer.admin_post("/admin/reload").await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_after = b.hits();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for task in tasks {
        for status in task.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "a request failed during reload");
        }
    }
    assert!(total > 50, "{total}");
    assert!(c.hits() > 0, "the new backend gets traffic");
    assert_eq!(b.hits(), b_after, "the removed backend gets none");

    // A bad file is refused with the key named, and the running configuration stays.
    std::fs::write(
        &path,
        format!("{head}{}\nbogus_key = 1\n", rr_pool("reload", &[&a])),
    )
    .unwrap();
    let response = balancer.admin_post("/admin/reload").await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("bogus_key") && detail.contains("line"),
        "{detail}"
    );
    let counts = spread(&balancer, 10).await;
    assert_eq!(counts.get("rc"), Some(&5), "{counts:?}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_removed() {
    let a = Upstream::start("hdr").await;
    let balancer = Balancer::from_toml(&rr_pool("hdr", &[&a])).await;
    let response = balancer
        .client
        .get(balancer.url("/"))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen = a.last_headers.lock().unwrap().clone();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], balancer.public.to_string());
    assert_eq!(seen["x-request-id"], request_id);
    assert_eq!(seen["traceparent"].len(), 55);
    assert!(!seen.contains_key("x-private"), "{seen:?}");

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    balancer
        .client
        .get(balancer.url("/"))
        .header("traceparent", traceparent)
        .header("x-request-id", "given-id")
        .send()
        .await
        .unwrap();
    let seen = a.last_headers.lock().unwrap().clone();
    assert_eq!(seen["traceparent"], traceparent);
    assert_eq!(seen["x-request-id"], "given-id");
    // Without one from the client, the connection's own address is the whole list.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let a = Upstream::start("echo").await;
    let balancer = Balancer::from_toml(&format!(
        "[limits]\nretry_buffer_bytes = 1024\nmax_body_bytes = 4194304\n{}",
        rr_pool("echo", &[&a])
    ))
    .await;
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let response = balancer
        .client
        .post(balancer.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), body.as_slice());
    // Chunked (no length) too, written by hand: 4 chunks of 300 KB.
    let address = balancer.public;
    let echoed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
        for i in 0..4u8 {
            write!(stream, "{:x}\r\n", 300_000).unwrap();
            stream.write_all(&vec![b'a' + i; 300_000]).unwrap();
            stream.write_all(b"\r\n").unwrap();
        }
        stream.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&echoed);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..100.min(text.len())]
    );
    for i in 0..4u8 {
        assert!(
            echoed
                .windows(1000)
                .any(|w| w.iter().all(|&c| c == b'a' + i))
        );
    }
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_reaped_when_idle() {
    let a = Upstream::start("pool").await;
    let balancer = Balancer::from_toml(&format!(
        "[timeouts]\nupstream_idle_ms = 300\n{}",
        rr_pool("keepalive", &[&a])
    ))
    .await;
    for _ in 0..20 {
        assert_eq!(balancer.get("/").await.0, 200);
    }
    let table = balancer.running.as_ref().unwrap().state.table_full();
    let backend = table.pool("keepalive").unwrap().backends()[0].clone();
    // Sequential requests share one pooled connection.
    assert_eq!(backend.idle.len(), 1);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(backend.idle.len(), 0, "the idle connection was reaped");
    assert_eq!(balancer.get("/").await.0, 200);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_post_answered_409_with_retry_after_is_retried_after_the_wait() {
    let a = Upstream::start("c409a").await;
    let b = Upstream::start("c409b").await;
    let balancer = Balancer::from_toml(&rr_pool("conflict", &[&a, &b])).await;
    a.behaviour.conflicts.store(1, Ordering::SeqCst);
    let started = Instant::now();
    let response = balancer.post_order(Some("k-409")).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was waited out"
    );
    assert_eq!((a.hits(), b.hits()), (1, 1));
    let metrics = balancer.metrics().await;
    assert!(
        metrics
            .contains("brigade_balance_retries_total{pool=\"conflict\",reason=\"retry_after\"} 1")
    );

    // Without a key the 409 goes to the client as it is.
    a.behaviour.conflicts.store(1, Ordering::SeqCst);
    let response = balancer.post_order(None).await;
    assert_eq!(response.status(), 409);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_waits_do_not_use_up_attempts() {
    let a = Upstream::start("w409a").await;
    let b = Upstream::start("w409b").await;
    let balancer = Balancer::from_toml(&format!(
        "[retry]\nmax_attempts = 2\n{}",
        rr_pool("wait", &[&a, &b])
    ))
    .await;
    a.behaviour.conflicts.store(1, Ordering::SeqCst);
    b.behaviour.conflicts.store(1, Ordering::SeqCst);
    let response = balancer
        .client
        .put(balancer.url("/orders/1"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(a.hits() + b.hits(), 3);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_starts_after_the_retry_deadline() {
    let a = Upstream::start("slow503a").await;
    let b = Upstream::start("slow503b").await;
    let balancer = Balancer::from_toml(&format!(
        "[retry]\nmax_attempts = 5\ndeadline_ms = 500\n{}",
        rr_pool("deadline", &[&a, &b])
    ))
    .await;
    for upstream in [&a, &b] {
        upstream.behaviour.status.store(503, Ordering::SeqCst);
        upstream.behaviour.delay_ms.store(400, Ordering::SeqCst);
    }
    let started = std::time::Instant::now();
    let response = balancer
        .client
        .get(balancer.url("/menu"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503, "the last answer is passed on");
    // 400 ms: a retry (still within 500 ms); 800 ms: past the deadline, no third attempt.
    assert_eq!(
        a.hits() + b.hits(),
        2,
        "five attempts allowed, the deadline stopped at two"
    );
    assert!(took < std::time::Duration::from_millis(1500), "{took:?}");
    balancer.stop().await;
}

/// A backend that answers one request per connection as if it kept the connection alive, then
/// closes it shortly after: every pooled connection goes stale while idle.
async fn closing_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = b"ok";
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(body).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            });
        }
    });
    (address, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_backend_closed_is_not_used() {
    let (address, connections) = closing_backend().await;
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"closing\"\n[[pools.backends]]\naddress = \"{address}\"\n"
    ))
    .await;
    for round in 0..5 {
        // A POST without Idempotency-Key is never retried: it only succeeds when the stale
        // connection is noticed before the request is written to it.
        let response = balancer.post_order(None).await;
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(response.text().await.unwrap(), "ok");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        5,
        "a new connection each time"
    );
    let metrics = balancer.metrics().await;
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("pool=\"closing\"") && l.contains("outcome=\"error\""))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(failed.is_empty(), "no attempt failed: {failed:?}");
    balancer.stop().await;
}
