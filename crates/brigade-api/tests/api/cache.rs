//! The shared cache and several replicas on one database.

use std::sync::Arc;

use brigade_core::config::{CacheSettings, StorageSettings};
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, expect_json, spawn_app_with, spawn_on};

fn redis_cache(url: &str) -> CacheSettings {
    CacheSettings {
        redis_url: Some(url.to_owned()),
        // Long enough that only invalidation, not expiry, can make a change visible.
        menu_ttl_ms: 60_000,
        ..CacheSettings::default()
    }
}

/// Settings for a second replica on the first one's database.
fn same_storage(app: &TestApp, postgres_url: Option<String>) -> StorageSettings {
    match app.db.data_dir() {
        Some(dir) => StorageSettings {
            data_dir: dir,
            ..StorageSettings::default()
        },
        None => StorageSettings {
            database_url: postgres_url,
            ..StorageSettings::default()
        },
    }
}

async fn menu_availability(app: &TestApp, shop_id: &str, item_id: &str) -> bool {
    let menu = expect_json(
        app.get(&format!("/api/v1/shops/{shop_id}/menu")).await,
        StatusCode::OK,
    )
    .await;
    menu.as_array()
        .unwrap()
        .iter()
        .find(|m| m["item_id"] == item_id)
        .map(|m| m["available"] == true)
        .expect("item on the menu")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_is_shared_and_invalidated_across_replicas() {
    let Some(redis_url) = brigade_store::test_support::redis_url() else {
        eprintln!("REDIS_URL not set; skipping");
        return;
    };
    let first = spawn_app_with(Backend::Sqlite, redis_cache(&redis_url))
        .await
        .unwrap();
    let second = spawn_on(
        Arc::clone(&first.db),
        same_storage(&first, None),
        redis_cache(&redis_url),
        Backend::Sqlite,
    )
    .await;
    let fixture = first.fixture("Mitte", 52.51, 13.40).await;
    let shop_id = fixture.shop_id();
    assert!(menu_availability(&second, &shop_id, &fixture.pizza).await);

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("brigade:cache:menu:{shop_id}");
    let cached: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(cached.is_some(), "the menu read went through Redis");

    // A change through one replica is visible through the other at once.
    first.set_available(&shop_id, &fixture.pizza, false).await;
    assert!(!menu_availability(&second, &shop_id, &fixture.pizza).await);
    let ready = expect_json(second.get("/health/ready").await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["cache"]["kind"], "redis");
    assert_eq!(ready["checks"]["cache"]["status"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_degrades_to_no_cache() {
    // Nothing listens on port 1: every Redis call fails fast.
    let app = spawn_app_with(Backend::Sqlite, redis_cache("redis://127.0.0.1:1"))
        .await
        .unwrap();
    let fixture = app.fixture("Mitte", 52.51, 13.40).await;
    assert!(menu_availability(&app, &fixture.shop_id(), &fixture.pizza).await);
    app.set_available(&fixture.shop_id(), &fixture.pizza, false)
        .await;
    assert!(!menu_availability(&app, &fixture.shop_id(), &fixture.pizza).await);
    app.order(Some(&fixture.shop_id()), &[(&fixture.bread, 1)])
        .await;
    let ready = expect_json(app.get("/health/ready").await, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready", "the cache never fails readiness");
    assert_eq!(ready["checks"]["cache"]["status"], "down");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("brigade_cache_requests_total{cache=\"redis\",result=\"error\"}"),
        "{metrics}"
    );
}

/// Two replicas writing to one database at once: every order lands exactly once, as with
/// several `brigade serve` processes sharing the SQLite file (WAL, busy timeout).
async fn replicas_share_one_database(backend: Backend) {
    // No load caching: the load read at the end must be the database's own sum.
    let fresh = CacheSettings {
        load_ttl_ms: 0,
        ..CacheSettings::default()
    };
    let Some(first) = spawn_app_with(backend, fresh.clone()).await else {
        eprintln!("PostgreSQL not configured; skipping");
        return;
    };
    let postgres_url = match backend {
        Backend::Postgres => Some(postgres_url_of(&first).await),
        Backend::Sqlite => None,
    };
    let second = spawn_on(
        Arc::clone(&first.db),
        same_storage(&first, postgres_url),
        fresh,
        backend,
    )
    .await;
    let fixture = first.fixture("Mitte", 52.51, 13.40).await;
    let body = crate::helpers::order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &first } else { &second };
        let request = app.client.post(app.url("/api/v1/orders")).json(&body);
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    let page = expect_json(second.get("/api/v1/orders?limit=100").await, StatusCode::OK).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 40);
    let load = expect_json(
        first
            .get(&format!("/api/v1/shops/{}/load", fixture.shop_id()))
            .await,
        StatusCode::OK,
    )
    .await;
    let pizza = load
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["station_id"] == fixture.pizza_station.as_str())
        .unwrap();
    assert_eq!(pizza["queued_work_seconds"], 40 * 600);
}

/// The PostgreSQL URL the first replica uses, read back from the test database name.
async fn postgres_url_of(app: &TestApp) -> String {
    match app.db.as_ref() {
        crate::helpers::TestDb::Postgres { admin_url, name } => {
            crate::helpers::database_url(admin_url, name)
        }
        crate::helpers::TestDb::Sqlite(_) => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replicas_share_one_database() {
    replicas_share_one_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_one_database() {
    replicas_share_one_database(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_hold_while_redis_is_down() {
    let app = spawn_app_with(Backend::Sqlite, redis_cache("redis://127.0.0.1:1"))
        .await
        .unwrap();
    app.log_in_new("kim@example.org").await;
    let wrong = serde_json::json!({"email": "kim@example.org", "password": "not the password"});
    for _ in 0..5 {
        let response = app.post("/api/v1/sessions", &wrong).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = app.post("/api/v1/sessions", &wrong).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "this replica's own counters took over"
    );
}
