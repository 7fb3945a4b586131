//! Redis dying under load: the breaker keeps capacity, reads fall through to the database,
//! and the cache is used again once Redis is back.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brigade_core::config::CacheSettings;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::support::readiness;

/// Port of the test's own Redis.
const REDIS_PORT: u16 = 38_201;

/// A `redis-server` of the test's own; killed when dropped.
struct PrivateRedis(Child);

impl PrivateRedis {
    /// Starts it and waits until it answers; `None` when `redis-server` is missing.
    async fn start() -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &REDIS_PORT.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self(child);
        let client = redis::Client::open(url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return Some(redis);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn url() -> String {
    format!("redis://127.0.0.1:{REDIS_PORT}")
}

/// Menu reads completed in `window` by `clients` concurrent clients; every one must be a 200.
async fn capacity(app: &TestApp, shop_id: &str, clients: usize, window: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let path = app.url(&format!("/api/v1/shops/{shop_id}/menu"));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, path, done) = (app.client.clone(), path.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client.get(&path).send().await.expect("answers");
                    assert_eq!(response.status(), StatusCode::OK, "menu reads never fail");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_costs_little_capacity_and_the_cache_returns_with_it() {
    let Some(mut redis) = PrivateRedis::start().await else {
        eprintln!("redis-server is not installed; skipping");
        return;
    };
    let cache = CacheSettings {
        redis_url: Some(url()),
        ..CacheSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, cache).await.unwrap();
    let fixture = app.fixture("Cache Outage Pizza", 52.52, 13.40).await;
    let (window, clients) = (Duration::from_secs(1), 32);
    // The best of three windows each: the machine may be busy with other work for a moment.
    let mut normal = 0;
    for _ in 0..3 {
        normal = normal.max(capacity(&app, &fixture.shop_id(), clients, window).await);
    }
    let errors = "brigade_cache_requests_total{cache=\"redis\",result=\"error\"}";
    let skipped = "brigade_cache_requests_total{cache=\"redis\",result=\"skipped\"}";
    let errors_before = app.metric(errors).await;

    redis.kill();
    let outage_started = Instant::now();
    let mut outage = 0;
    for _ in 0..3 {
        outage = outage.max(capacity(&app, &fixture.shop_id(), clients, window).await);
    }
    let outage_secs = outage_started.elapsed().as_secs_f64();
    let waited = app.metric(errors).await - errors_before;
    let (status, body) = readiness(&app).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a dead cache never fails readiness: {body}"
    );
    assert_eq!(body["checks"]["cache"]["status"], "down", "{body}");
    eprintln!(
        "menu reads per {window:?} with {clients} clients (best of 3): {normal} with Redis, \
         {outage} with Redis dead; {waited} cache calls failed and {} were skipped in {outage_secs:.1} s",
        app.metric(skipped).await
    );
    // The breaker's promise: a dead cache costs the calls in flight when it died (two per
    // client: a menu read is a get and a set) and then one trial a second, not one per request.
    let in_flight = 2.0 * clients as f64;
    assert!(
        waited <= in_flight + 2.0 * (outage_secs + 1.0),
        "{waited} cache calls failed in {outage_secs:.1} s"
    );
    assert!(
        outage * 2 >= normal,
        "capacity with Redis dead ({outage}) is within 2x of normal ({normal})"
    );

    let _redis = PrivateRedis::start().await.expect("redis starts again");
    let started = Instant::now();
    loop {
        let (_, body) = readiness(&app).await;
        if body["checks"]["cache"]["status"] == "up" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the cache is used again within 5 s of Redis returning: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("cache back {:?} after Redis returned", started.elapsed());
    let after = capacity(&app, &fixture.shop_id(), clients, window).await;
    eprintln!("menu reads after Redis returned: {after}");
}
