//! Health over loopback: a killed backend is ejected and slowly re-admitted, backups are
//! promoted and demoted, passive ejection, the panic threshold, readiness after the first round.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{Balancer, Upstream, backends_toml, spread};

const HEALTH: &str =
    "health = { path = \"/health\", interval_ms = 50, timeout_ms = 200, rise = 2, fall = 1 }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_is_ejected_without_errors_and_slowly_readmitted() {
    let ups = [
        Upstream::start("k1").await,
        Upstream::start("k2").await,
        Upstream::start("k3").await,
    ];
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"kill\"\nalgorithm = \"round_robin\"\nslow_start_ms = 3000\noutlier = {{ consecutive_failures = 5, base_ejection_ms = 100 }}\n{HEALTH}\n{}",
        backends_toml(&[&ups[0], &ups[1], &ups[2]])
    ))
    .await;
    let counts = spread(&balancer, 30).await;
    assert_eq!(counts.len(), 3);

    ups[2].kill().await;
    // Every request still succeeds: connect failures are retried on another backend.
    let counts = spread(&balancer, 60).await;
    assert!(!counts.contains_key("k3"), "{counts:?}");
    balancer
        .wait_state("kill", ups[2].address, "unhealthy")
        .await;

    ups[2].restart().await;
    balancer.wait_state("kill", ups[2].address, "healthy").await;
    let readmitted = Instant::now();
    // Right after re-admission k3 gets a small share (slow start from 10 %).
    let early = spread(&balancer, 90).await;
    let early_share = early.get("k3").copied().unwrap_or(0) as f64 / 90.0;
    assert!(
        readmitted.elapsed() < Duration::from_millis(1500),
        "traffic too slow for this test"
    );
    assert!(
        early_share < 0.2,
        "k3 got {early_share} right after re-admission: {early:?}"
    );
    // After the window it is back to a full third.
    tokio::time::sleep(Duration::from_millis(3000).saturating_sub(readmitted.elapsed())).await;
    let late = spread(&balancer, 90).await;
    assert_eq!(late.get("k3").copied().unwrap_or(0), 30, "{late:?}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_serves_only_while_no_primary_is_healthy() {
    let p1 = Upstream::start("p1").await;
    let p2 = Upstream::start("p2").await;
    let backup = Upstream::start("backup").await;
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"bk\"\n{HEALTH}\n{}[[pools.backends]]\naddress = \"{}\"\nbackup = true\n",
        backends_toml(&[&p1, &p2]),
        backup.address
    ))
    .await;
    let counts = spread(&balancer, 40).await;
    assert!(!counts.contains_key("backup"), "{counts:?}");

    // One primary down: still no backup.
    p1.behaviour.health_status.store(503, Ordering::SeqCst);
    balancer.wait_state("bk", p1.address, "unhealthy").await;
    let counts = spread(&balancer, 20).await;
    assert_eq!(counts.get("p2"), Some(&20), "{counts:?}");

    // Both down: the backup is promoted.
    p2.kill().await;
    balancer.wait_state("bk", p2.address, "unhealthy").await;
    let counts = spread(&balancer, 20).await;
    assert_eq!(counts.get("backup"), Some(&20), "{counts:?}");

    // A primary returns: the backup is demoted at once.
    p1.behaviour.health_status.store(0, Ordering::SeqCst);
    balancer.wait_state("bk", p1.address, "healthy").await;
    let counts = spread(&balancer, 20).await;
    assert_eq!(counts.get("p1"), Some(&20), "{counts:?}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_5xx_eject_a_backend_passively() {
    let good = Upstream::start("good").await;
    let bad = Upstream::start("bad").await;
    bad.behaviour.status.store(500, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"outlier\"\nalgorithm = \"round_robin\"\n\
         outlier = {{ consecutive_failures = 3, base_ejection_ms = 60000 }}\n{}",
        backends_toml(&[&good, &bad])
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(balancer.get("/").await.0);
    }
    // POST-free GETs answered 500 are not retried (only 502/503/504 are); three reach the
    // client, then the backend is out.
    assert_eq!(
        statuses.iter().filter(|&&s| s == 500).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(bad.hits(), 3);
    let view = balancer.backend("outlier", bad.address).await;
    assert_eq!(view["state"], "ejected", "{view}");
    assert_eq!(view["failures_total"], 3, "{view}");
    let metrics = balancer.metrics().await;
    let line = format!(
        "brigade_balance_ejections_total{{pool=\"outlier\",backend=\"{}\"}} 1",
        bad.address
    );
    assert!(metrics.contains(&line), "{line} missing");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_threshold_keeps_sending_when_checks_fail_everywhere() {
    let a = Upstream::start("pa").await;
    let b = Upstream::start("pb").await;
    // Checks fail on both, but the backends do serve: a broken health endpoint must not
    // empty the pool.
    a.behaviour.health_status.store(500, Ordering::SeqCst);
    b.behaviour.health_status.store(500, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"panic\"\npanic_threshold = 0.5\n{HEALTH}\n{}",
        backends_toml(&[&a, &b])
    ))
    .await;
    balancer.wait_state("panic", a.address, "unhealthy").await;
    balancer.wait_state("panic", b.address, "unhealthy").await;
    let counts = spread(&balancer, 20).await;
    assert_eq!(counts.values().sum::<usize>(), 20);
    balancer.stop().await;

    // Without the threshold the same pool answers 503.
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"nopanic\"\npanic_threshold = 0.0\n{HEALTH}\n{}",
        backends_toml(&[&a, &b])
    ))
    .await;
    balancer.wait_state("nopanic", a.address, "unhealthy").await;
    balancer.wait_state("nopanic", b.address, "unhealthy").await;
    assert_eq!(balancer.get("/").await.0, 503);
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_after_the_first_check_round() {
    // A backend that accepts connections but never answers keeps the first round running
    // until its check times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n[[pools]]\nname = \"slowcheck\"\n\
         health = {{ path = \"/health\", interval_ms = 5000, timeout_ms = 800, rise = 1, fall = 1 }}\n\
         [[pools.backends]]\naddress = \"{address}\"\n"
    );
    let config = brigade_balance::Config::parse(&text, "t").unwrap();
    let shutdown = brigade_core::shutdown::Shutdown::new();
    let running = brigade_balance::start(config, None, shutdown.clone())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let ready = format!("http://{}/health/ready", running.admin);
    let live = format!("http://{}/health/live", running.admin);
    assert_eq!(client.get(&live).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&ready).send().await.unwrap().status(), 503);
    let started = Instant::now();
    loop {
        if client.get(&ready).send().await.unwrap().status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "ready before the round ended"
    );
    shutdown.trigger();
    running.wait().await;
    drop(silent);
}

/// Three primaries die at once while health checks are slow to notice: every request whose
/// primaries all refuse the connection goes on to the backup within the same request, for
/// every method (nothing was sent), and no client sees a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_primaries_fall_through_to_the_backup_within_the_request() {
    let primaries = [
        Upstream::start("p1").await,
        Upstream::start("p2").await,
        Upstream::start("p3").await,
    ];
    let backup = Upstream::start("backup").await;
    // Health checks far apart, and passive ejection off: only the request path can save these
    // requests.
    let balancer = Balancer::from_toml(&format!(
        "[retry]\nmin_per_sec = 0.0\nbudget_ratio = 0.0\n\
         [[pools]]\nname = \"fall\"\n\
         health = {{ path = \"/health\", interval_ms = 60000, timeout_ms = 200, rise = 1, fall = 1 }}\n\
         outlier = {{ consecutive_failures = 0 }}\n{}[[pools.backends]]\naddress = \"{}\"\nbackup = true\n",
        backends_toml(&[&primaries[0], &primaries[1], &primaries[2]]),
        backup.address
    ))
    .await;
    // No request before the kill: a pooled connection to a primary that dies can lose a
    // request already written to it (the keep-alive race), which is not what this shows.
    for primary in &primaries {
        primary.kill().await;
    }
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = balancer.client.clone();
        let url = balancer.url("/orders");
        tasks.push(tokio::spawn(async move {
            // A POST without Idempotency-Key is never sent twice, but a refused connect is safe.
            let request = if i % 2 == 0 {
                client.get(&url)
            } else {
                client.post(&url).body("{}")
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let backend = response
                .headers()
                .get("x-backend")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, backend)
        }));
    }
    for task in tasks {
        let (status, backend) = task.await.unwrap();
        assert_eq!(
            (status, backend.as_deref()),
            (200, Some("backup")),
            "a request failed while the backup was alive"
        );
    }
    assert_eq!(backup.hits(), 24);
    // The primaries are still "healthy" for the active checks: the backup was reached by the
    // request path alone.
    assert_eq!(
        balancer.backend("fall", primaries[0].address).await["state"],
        "healthy"
    );
    balancer.stop().await;
}
