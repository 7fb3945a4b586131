//! What every fault test does: place keyed orders like a careful client, check the answers
//! while the fault lasts, wait for recovery and check that nothing acknowledged was lost.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Fixture, TestApp, expect_problem, order_body};

/// Longest a replica may take to serve again once its fault is over.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(10);

/// What one order request got.
#[derive(Debug)]
pub enum Placed {
    /// 201: the order, acknowledged.
    Acknowledged(String),
    /// 503 with `Retry-After` and problem+json: try again later.
    Unavailable(Value),
}

/// Places one order with `key`; anything but 201 or a well-formed 503 fails the test.
pub async fn place(app: &TestApp, fixture: &Fixture, key: &str) -> Placed {
    let response = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("Idempotency-Key", key)
        .json(&order_body(
            Some(&fixture.shop_id()),
            &[(&fixture.pizza, 1)],
        ))
        .send()
        .await
        .expect("the replica answers");
    match response.status() {
        StatusCode::CREATED => {
            let order: Value = response.json().await.unwrap();
            Placed::Acknowledged(order["id"].as_str().unwrap().to_owned())
        }
        _ => Placed::Unavailable(expect_unavailable(response).await),
    }
}

/// Asserts a 503 problem+json with a `Retry-After` of at least a second; returns the problem.
pub async fn expect_unavailable(response: reqwest::Response) -> Value {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        retry_after.is_some_and(|seconds| seconds >= 1),
        "a 503 says when to retry: {problem}"
    );
    problem
}

/// `/health/ready` as a balancer asks it (no credentials): its status and body; a 503 must
/// carry `Retry-After`.
pub async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .anonymous()
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("the replica answers");
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            response.headers().contains_key("retry-after"),
            "a not-ready answer says when to ask again"
        );
    }
    (status, response.json().await.unwrap())
}

/// Places orders (new keys) until one is refused with a 503; returns the problem. Orders
/// acknowledged on the way are added to `acknowledged`.
pub async fn place_until_refused(
    app: &TestApp,
    fixture: &Fixture,
    acknowledged: &mut Vec<String>,
) -> Value {
    for _ in 0..500 {
        match place(app, fixture, &uuid::Uuid::now_v7().to_string()).await {
            Placed::Acknowledged(id) => acknowledged.push(id),
            Placed::Unavailable(problem) => return problem,
        }
    }
    panic!("the fault never refused an order");
}

/// Retries one order with the same key, as a careful client does (honouring `Retry-After`,
/// capped at 200 ms here), until it is acknowledged and the replica is ready again; returns
/// how long that took after the fault ended.
pub async fn recover(app: &TestApp, fixture: &Fixture, acknowledged: &mut Vec<String>) -> Duration {
    let started = Instant::now();
    let key = uuid::Uuid::now_v7().to_string();
    loop {
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "no recovery within {RECOVERY_LIMIT:?}"
        );
        if let Placed::Acknowledged(id) = place(app, fixture, &key).await {
            acknowledged.push(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let (status, body) = readiness(app).await;
        if status == StatusCode::OK {
            assert_eq!(body["checks"]["writes"]["status"], "up", "{body}");
            break;
        }
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "not ready within {RECOVERY_LIMIT:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Every acknowledged order can be read back.
pub async fn none_lost(app: &TestApp, acknowledged: &[String]) {
    for id in acknowledged {
        let response = app.get(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "acknowledged order {id} is kept"
        );
    }
}

/// What a crowd of careful clients saw.
#[derive(Debug, Default)]
pub struct Crowd {
    /// Order ids acknowledged, one per key.
    pub acknowledged: Vec<String>,
    /// 503 answers (each with `Retry-After` and problem+json).
    pub unavailable: usize,
}

/// `clients` careful clients placing keyed orders until `stop`: each retries its key after a
/// 503 (waiting its `Retry-After`, capped at 200 ms here) until it is acknowledged, then takes
/// a new key. Anything but 201 or a well-formed 503 fails the test.
pub fn careful_clients(
    app: &TestApp,
    fixture: &Fixture,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Crowd> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/v1/orders"));
            let body = order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut crowd = Crowd::default();
                let mut key = uuid::Uuid::now_v7().to_string();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = client
                        .post(&url)
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await
                        .expect("the replica answers");
                    if response.status() == StatusCode::CREATED {
                        let order: Value = response.json().await.unwrap();
                        crowd
                            .acknowledged
                            .push(order["id"].as_str().unwrap().to_owned());
                        key = uuid::Uuid::now_v7().to_string();
                    } else {
                        expect_unavailable(response).await;
                        crowd.unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                crowd
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Crowd::default();
        for task in tasks {
            let crowd = task.await.expect("a client failed");
            all.acknowledged.extend(crowd.acknowledged);
            all.unavailable += crowd.unavailable;
        }
        all
    })
}
