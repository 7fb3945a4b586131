//! `GET /api/v1/query_range` of a running watch: Prometheus's answer shape over the samples it
//! scraped, and problem+json naming the parameter for bad input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use brigade_core::Shutdown;
use brigade_core::config::StorageSettings;
use brigade_watch::{Watch, WatchConfig};
use serde_json::Value;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// Percent-encodes a query parameter value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn range_queries_answer_like_prometheus_and_name_bad_parameters() {
    // Two targets exposing a counter that grows by 10 per scrape.
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut targets = Vec::new();
    for _ in 0..2 {
        let counter = counter.clone();
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let n = counter.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
                async move { format!("demo_requests_total {n}\n") }
            }),
        );
        targets.push(format!("\"{}\"", serve(router).await));
    }
    let config = WatchConfig::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\n[scrape]\ninterval = \"200ms\"\n\
         [[scrape.static_configs]]\njob = \"demo\"\ntargets = [{}]\n",
        targets.join(", ")
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let watch = Watch::build(config, &storage).await.unwrap();
    let base = format!("http://{}", watch.local_addr());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(watch.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    let range = |query: &str, start: &str, end: &str, step: &str| {
        format!(
            "{base}/api/v1/query_range?query={}&start={}&end={}&step={}",
            encode(query),
            encode(start),
            encode(end),
            encode(step)
        )
    };

    // Wait until both targets have a few samples, then chart the last two seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let end = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let url = range(
            "sum by (job) (rate(demo_requests_total[1s])) > 0",
            &(end - 2.0).to_string(),
            &end.to_string(),
            "0.5",
        );
        let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        let points = body["data"]["result"][0]["values"]
            .as_array()
            .map_or(0, Vec::len);
        if points >= 3 {
            break body;
        }
        assert!(Instant::now() < deadline, "no range data: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(result[0]["metric"]["job"], "demo");
    let values = result[0]["values"].as_array().unwrap();
    let times: Vec<f64> = values.iter().map(|v| v[0].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| (w[1] - w[0] - 0.5).abs() < 1e-6),
        "one point per step: {times:?}"
    );
    for value in values {
        let rate: f64 = value[1].as_str().unwrap().parse().unwrap();
        assert!(rate > 0.0, "a positive rate as a string: {value}");
    }

    // RFC 3339 times and duration steps work as in Prometheus; instants before any sample
    // give no points rather than an error.
    let now = chrono::Utc::now();
    let url = range(
        "count(up)",
        &(now - chrono::Duration::minutes(15)).to_rfc3339(),
        &now.to_rfc3339(),
        "15s",
    );
    let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    assert!(!values.is_empty() && values.len() <= 61, "{body}");
    assert_eq!(values.last().unwrap()[1], "2", "two targets up");

    // Bad input: 422 problem+json naming the parameter.
    let cases = [
        (
            format!("{base}/api/v1/query_range?start=1&end=2&step=1"),
            "query",
        ),
        (range("up", "yesterday", "2", "1"), "start"),
        (range("up", "1", "2", "0"), "step"),
        (range("up", "1", "2", "soon"), "step"),
        (range("up", "5", "2", "1"), "end"),
        (range("up", "0", "100000", "1"), "step"),
        (range("up[5m]", "1", "2", "1"), "query"),
        (range("predict_linear(up[5m], 60)", "1", "2", "1"), "query"),
    ];
    for (url, field) in cases {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 422, "{url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{url}: {body}");
    }

    shutdown.trigger();
    task.await.unwrap().unwrap();
}
