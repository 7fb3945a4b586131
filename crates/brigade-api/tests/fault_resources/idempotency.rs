//! Idempotency keys under retryable failures: a "try again" answer (5xx) does not pin its key,
//! a retry with it can succeed, money moves exactly once, and an order whose client only ever
//! saw a 5xx is never charged behind its back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brigade_core::config::{CacheSettings, StorageSettings};
use brigade_payments::fake_stripe::{Endpoint, FakeStripe};
use brigade_store::test_support::SmallDisk;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Fixture, TestApp, TestDb, order_body, spawn_app, spawn_configured, test_settings,
};

/// POSTs the fixture's order with `key`.
async fn send(app: &TestApp, fixture: &Fixture, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/orders"))
        .header("Idempotency-Key", key)
        .json(&order_body(
            Some(&fixture.shop_id()),
            &[(&fixture.pizza, 1)],
        ))
        .send()
        .await
        .expect("the replica answers")
}

/// Turns the replica's payment outage switch on or off.
async fn set_outage(app: &TestApp, on: bool) {
    let response = app
        .put("/api/v1/admin/faults", &json!({"payments_outage": on}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Waits (bounded) until `check` holds.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_unavailable_answer_does_not_pin_its_key_and_a_retry_with_it_succeeds() {
    payment_unavailable_then_retry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_payment_unavailable_answer_does_not_pin_its_key() {
    payment_unavailable_then_retry(Backend::Postgres).await;
}

/// PostgreSQL claims the key in its single-statement placement: the release must free it
/// there too.
async fn payment_unavailable_then_retry(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let app = app
        .replica_with(|settings| {
            settings.payments.breaker_failures = 1;
            settings.payments.breaker_open_ms = 300;
        })
        .await;
    let fixture = app.fixture("Outage Pizza", 52.52, 13.40).await;
    set_outage(&app, true).await;
    // The first failure opens the breaker; from then on payments are "unavailable" (503).
    let key = loop {
        let key = uuid::Uuid::now_v7().to_string();
        let response = send(&app, &fixture, &key).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            let problem = crate::support::expect_unavailable(response).await;
            assert_eq!(problem["type"], "urn:brigade:problem:payment-unavailable");
            break key;
        }
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    };
    // The replica itself is well: readiness stays 200, or every replica would be taken out
    // and a payments outage would become a whole outage (menus and order tracking included).
    let ready = app.get("/health/ready").await;
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "ready while the provider is down"
    );
    set_outage(&app, false).await;

    // The careful client retries the same key, honouring Retry-After.
    let mut placed: Option<Value> = None;
    let started = Instant::now();
    while placed.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the retry never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let response = send(&app, &fixture, &key).await;
        if response.status() == StatusCode::CREATED {
            placed = Some(response.json().await.unwrap());
        } else {
            crate::support::expect_unavailable(response).await;
        }
    }
    let placed = placed.unwrap();
    assert_eq!(placed["status"], "placed", "{placed}");
    // Now the key is pinned to the order: another retry replays it, placing nothing.
    let again = send(&app, &fixture, &key).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], placed["id"]);
    let page: Value = app
        .get("/api/v1/orders?status=placed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "one order placed: {page}"
    );
}

/// How a test takes the database's writes away for a moment.
enum Cut {
    /// Fill the SQLite data directory's disk.
    Disk(SmallDisk),
    /// Make the PostgreSQL database refuse connections (and end the open ones).
    Refuse { admin_url: String, name: String },
}

impl Cut {
    async fn start(&self) {
        match self {
            Self::Disk(disk) => {
                disk.fill();
            }
            Self::Refuse { admin_url, name } => {
                crate::postgres::execute(
                    admin_url,
                    format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
                )
                .await;
                crate::postgres::execute(
                    admin_url,
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ),
                )
                .await;
            }
        }
    }

    async fn end(&self) {
        match self {
            Self::Disk(disk) => disk.free(),
            Self::Refuse { admin_url, name } => {
                crate::postgres::execute(
                    admin_url,
                    format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_answer_could_not_be_recorded_is_never_charged_unless_retried() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::tmpfs(dir.path(), 16) else {
        eprintln!("mounting a file system needs root; skipping");
        return;
    };
    let (fake, _) = FakeStripe::start().await;
    let storage = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let mut settings = test_settings(storage, CacheSettings::default());
    settings.payments = fake.payment_settings();
    settings.payments.reconcile_after_secs = 1;
    let app = spawn_configured(Arc::new(TestDb::Sqlite(dir)), settings, Backend::Sqlite).await;
    abandoned_order(&app, &fake, Cut::Disk(disk)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_order_whose_answer_could_not_be_recorded_is_never_charged() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let (fake, _) = FakeStripe::start().await;
    let app = app
        .replica_with(|settings| {
            settings.payments = fake.payment_settings();
            settings.payments.reconcile_after_secs = 1;
        })
        .await;
    let TestDb::Postgres { admin_url, name } = app.db.as_ref() else {
        unreachable!("a PostgreSQL app has a PostgreSQL database")
    };
    let cut = Cut::Refuse {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    abandoned_order(&app, &fake, cut).await;
}

/// The order is written, the provider takes a second to authorise, and meanwhile `cut` takes
/// the database away: the authorisation cannot be recorded and the client gets a 503 and gives
/// up. The reconciler must not charge it; a late retry with its key places and pays it once.
async fn abandoned_order(app: &TestApp, fake: &FakeStripe, cut: Cut) {
    let fixture = app.fixture("Abandoned Pizza", 52.52, 13.40).await;
    fake.set_delay(Duration::from_secs(1));
    let first = {
        let (client, url) = (app.client.clone(), app.url("/api/v1/orders"));
        let body = order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
        tokio::spawn(async move {
            client
                .post(url)
                .header("Idempotency-Key", "abandoned")
                .json(&body)
                .send()
                .await
        })
    };
    eventually(
        "the authorisation to reach the provider",
        Duration::from_secs(10),
        || async { fake.calls(Endpoint::Create) == 1 },
    )
    .await;
    cut.start().await;
    let answer = first.await.unwrap().expect("answered");
    crate::support::expect_unavailable(answer).await;
    fake.set_delay(Duration::ZERO);
    cut.end().await;

    // The order ends payment_failed and the one authorisation the provider made is released.
    let failed_orders = || async {
        let page: Value = app
            .get("/api/v1/orders?status=payment_failed")
            .await
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().len()
    };
    eventually(
        "the reconciler to give the order up",
        Duration::from_secs(20),
        || async {
            failed_orders().await == 1
                && fake.intents().len() == 1
                && fake.live_intents().is_empty()
        },
    )
    .await;

    let retry = send(app, &fixture, "abandoned").await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    let live = fake.live_intents();
    assert_eq!(live.len(), 1, "exactly one hold: {live:?}");
}
