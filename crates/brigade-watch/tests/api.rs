//! A watch in this process against fake HTTP targets: balancer discovery, the per-target series
//! limit, the query API, and problem+json answers to bad input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use brigade_balance::api::{BackendView, PoolView, Pools};
use brigade_balance::config::Algorithm;
use brigade_core::Shutdown;
use brigade_core::config::StorageSettings;
use brigade_watch::contract::{NewSilence, SilenceState};
use brigade_watch::{Watch, WatchConfig, client};
use serde_json::{Value, json};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A backend exposing ten series, and a balancer admin API listing it in pool "orders".
async fn fakes() -> SocketAddr {
    let backend = serve(Router::new().route(
        "/metrics",
        get(|| async {
            (0..10)
                .map(|i| format!("fake_series{{n=\"{i}\"}} {i}\n"))
                .collect::<String>()
        }),
    ))
    .await;
    let pools = json!(Pools {
        pools: vec![PoolView {
            name: "orders".into(),
            algorithm: Algorithm::PeakEwma,
            backends: vec![BackendView::fresh(backend.to_string())],
        }],
    });
    serve(
        Router::new()
            .route(
                "/admin/pools",
                get(move || async move { axum::Json(pools.clone()) }),
            )
            .route(
                "/metrics",
                get(|| async {
                    "brigade_balance_backend_healthy{pool=\"orders\",backend=\"b\"} 1\n"
                }),
            ),
    )
    .await
}

struct Running {
    base: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(admin: SocketAddr, data: &std::path::Path) -> Running {
    let config = WatchConfig::from_toml(&format!(
        r#"
        listen = "127.0.0.1:0"
        [scrape]
        interval = "200ms"
        max_series_per_target = 5
        [[scrape.balance_configs]]
        admin_url = "http://{admin}"
        "#
    ))
    .unwrap();
    let storage = StorageSettings {
        data_dir: data.to_path_buf(),
        ..StorageSettings::default()
    };
    let watch = Watch::build(config, &storage).await.unwrap();
    let base = format!("http://{}", watch.local_addr());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(watch.run_until_stopped(shutdown.clone()));
    Running {
        base,
        shutdown,
        task,
    }
}

/// `/api/v1/query?query=…`, percent-encoded.
fn query_url(base: &str, query: &str) -> String {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{base}/api/v1/query?query={encoded}")
}

async fn json_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_limits_queries_and_problems() {
    let admin = fakes().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(admin, dir.path()).await;
    let client = reqwest::Client::new();
    let base = running.base.clone();

    // Discovery: the pool's backend (job = pool name) and the balancer itself are scraped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let targets = loop {
        let body: Value = client
            .get(format!("{base}/api/v1/targets"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let targets = body["targets"].as_array().cloned().unwrap_or_default();
        if targets.len() == 2 && targets.iter().all(|t| t["health"] == "up") {
            break targets;
        }
        assert!(Instant::now() < deadline, "targets never came up: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let orders = targets.iter().find(|t| t["job"] == "orders").unwrap();
    assert_eq!(orders["series"], 5, "limited to 5 series");
    assert_eq!(orders["dropped"], 5, "the rest reported as dropped");
    assert!(targets.iter().any(|t| t["job"] == "balance"));

    let (status, _, body) = json_of(
        client
            .get(query_url(&base, "count(fake_series)"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["result"][0]["value"][1], "5");
    let (_, _, body) = json_of(
        client
            .get(query_url(&base, "up{job=\"orders\"}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "1");

    // Values are written as Prometheus writes them, instant and range alike: `+Inf`, `-Inf`,
    // `NaN` — not Rust's `inf`.
    for (query, text) in [("1/0", "+Inf"), ("-1/0", "-Inf"), ("0/0", "NaN")] {
        let (_, _, body) = json_of(client.get(query_url(&base, query)).send().await.unwrap()).await;
        assert_eq!(body["data"]["result"][1], text, "{query}: {body}");
        let (_, _, body) = json_of(
            client
                .get(query_url(&base, &format!("vector({query})")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            body["data"]["result"][0]["value"][1], text,
            "vector({query}): {body}"
        );
    }

    // Bad input: problem+json naming the field, never a 500.
    let problems = [
        client.get(format!("{base}/api/v1/alerts/history?limit=0")).send().await.unwrap(),
        client.get(format!("{base}/api/v1/query")).send().await.unwrap(),
        client.get(query_url(&base, "predict_linear(up[5m], 60)")).send().await.unwrap(),
        client.post(format!("{base}/api/v1/silences")).body("{not json").send().await.unwrap(),
        client
            .post(format!("{base}/api/v1/silences"))
            .json(&json!({"matchers": ["x=~\".*\""], "duration": "1h", "createdBy": "t", "comment": "c"}))
            .send()
            .await
            .unwrap(),
        client
            .post(format!("{base}/api/v1/silences"))
            .json(&json!({"matchers": ["a=\"b\""], "duration": "soon", "createdBy": "t", "comment": "c"}))
            .send()
            .await
            .unwrap(),
        client.delete(format!("{base}/api/v1/silences/nope")).send().await.unwrap(),
    ];
    let mut seen = Vec::new();
    for response in problems {
        let (status, kind, body) = json_of(response).await;
        assert!(
            kind.starts_with("application/problem+json"),
            "{status} {kind} {body}"
        );
        seen.push((
            status,
            body["errors"][0]["field"].as_str().unwrap_or("").to_owned(),
        ));
        if body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("predict_linear")
        {
            assert_eq!(status, 422);
        }
    }
    assert_eq!(
        seen,
        [
            (422, "limit".to_owned()),
            (422, "query".to_owned()),
            (422, "query".to_owned()),
            (400, String::new()),
            (422, "matchers".to_owned()),
            (422, "duration".to_owned()),
            (404, String::new()),
        ]
    );

    // A silence survives a restart (it lives in the database).
    let (status, _, created) = json_of(
        client
            .post(format!("{base}/api/v1/silences"))
            .json(&json!({"matchers": ["alertname=\"X\""], "duration": "1h", "createdBy": "t", "comment": "c"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    running.shutdown.trigger();
    running.task.await.unwrap().unwrap();
    let again = start(admin, dir.path()).await;
    let body: Value = client
        .get(format!("{}/api/v1/silences", again.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["silences"][0]["id"], created["silenceID"]);
    assert_eq!(body["silences"][0]["status"]["state"], "active");
    let ready = client
        .get(format!("{}/health/ready", again.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The contract: the answers parse into the types `brigade watch silence` reads them as.
    let made = client::add_silence(
        &again.base,
        &NewSilence {
            matchers: vec!["alertname=\"Y\"".into()],
            starts_at: None,
            ends_at: None,
            duration: Some("30m".into()),
            created_by: "contract".into(),
            comment: "c".into(),
        },
    )
    .await
    .unwrap();
    let listed = client::list_silences(&again.base).await.unwrap();
    let mine = listed.iter().find(|s| s.id == made).expect("listed");
    assert_eq!(mine.status.state, SilenceState::Active);
    assert_eq!(mine.created_by, "contract");
    let expired = client::expire_silence(&again.base, &made).await.unwrap();
    assert_eq!(expired.status.state, SilenceState::Expired);
    let refused = client::expire_silence(&again.base, "nope")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, client::ClientError::Rejected { status: 404, ref detail } if detail.contains("nope")),
        "{refused}"
    );
    again.shutdown.trigger();
    again.task.await.unwrap().unwrap();
}
