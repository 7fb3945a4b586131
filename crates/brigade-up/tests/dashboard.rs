//! The standalone dashboard (`brigade dashboard`) over real HTTP: its page and assets, the
//! pass-through to a balancer's admin API and a watch (fakes that record what they were asked),
//! the central-log search, and problem+json when a source is missing or an input is bad.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{StatusCode, Uri};
use axum::routing::{delete, get, post};
use brigade_core::Shutdown;
use brigade_up::Dashboard;
use serde_json::{Value, json};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// What the fakes were asked: "METHOD path?query body".
type Calls = Arc<Mutex<Vec<String>>>;

fn record(calls: &Calls, text: String) {
    calls.lock().unwrap().push(text);
}

/// A balancer admin API with one pool of one backend, accepting drain calls.
async fn fake_balancer(calls: Calls) -> SocketAddr {
    let pools = json!({"pools": [{"name": "orders", "algorithm": "peak_ewma", "backends": [
        {"address": "127.0.0.1:4000", "state": "healthy", "healthy": true, "draining": false,
         "backup": false, "in_flight": 0, "ewma_ms": 1.5, "requests_total": 3, "failures_total": 0}]}]});
    let drained = calls.clone();
    serve(
        Router::new()
            .route(
                "/admin/pools",
                get(move || async move { axum::Json(pools.clone()) }),
            )
            .route(
                "/admin/pools/{pool}/backends/{address}/{action}",
                post(move |uri: Uri| async move {
                    record(&drained, format!("POST {uri}"));
                    axum::Json(json!({"draining": true}))
                }),
            ),
    )
    .await
}

/// A watch API answering the routes the dashboard forwards; a silence without a comment is
/// refused as watch refuses it.
async fn fake_watch(calls: Calls) -> SocketAddr {
    let (ranges, silences, expired) = (calls.clone(), calls.clone(), calls.clone());
    serve(
        Router::new()
            .route(
                "/api/v1/query_range",
                get(move |RawQuery(query): RawQuery| async move {
                    record(&ranges, format!("GET query_range?{}", query.unwrap_or_default()));
                    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": []}}))
                }),
            )
            .route(
                "/api/v1/alerts",
                get(|| async { axum::Json(json!({"alerts": [{"labels": {"alertname": "X"}}]})) }),
            )
            .route(
                "/api/v1/silences",
                post(move |body: Bytes| async move {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    record(&silences, format!("POST silences {text}"));
                    let new: Value = serde_json::from_slice(&body).unwrap_or_default();
                    if new["comment"].as_str().unwrap_or("").is_empty() {
                        return (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            [("content-type", "application/problem+json")],
                            json!({"status": 422, "errors": [{"field": "comment", "message": "must not be empty"}]}).to_string(),
                        );
                    }
                    (
                        StatusCode::CREATED,
                        [("content-type", "application/json")],
                        json!({"silenceID": "s-1"}).to_string(),
                    )
                }),
            )
            .route(
                "/api/v1/silences/{id}",
                delete(move |uri: Uri| async move {
                    record(&expired, format!("DELETE {uri}"));
                    axum::Json(json!({"id": "s-1"}))
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

async fn start(dashboard: Dashboard) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(brigade_up::dashboard::serve(
        listener,
        dashboard,
        shutdown.clone(),
    ));
    Running {
        base,
        shutdown,
        task,
    }
}

async fn get_json(url: &str) -> (u16, String, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let media = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, media, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn standalone_dashboard_serves_the_page_and_forwards_to_balancer_and_watch() {
    let calls: Calls = Arc::default();
    let balancer = fake_balancer(calls.clone()).await;
    let watch = fake_watch(calls.clone()).await;
    let logs = tempfile::tempdir().unwrap();
    let sink = brigade_up::logs::LogSink::open(logs.path()).unwrap();
    for (n, level) in ["ERROR", "INFO", "WARN"].iter().enumerate() {
        sink.write(
            "serve",
            "serve-orders-1",
            &format!(r#"{{"timestamp":"2026-01-01T00:00:0{n}Z","level":"{level}","message":"m{n}","request_id":"r-{n}"}}"#),
        );
    }
    let running = start(Dashboard::standalone(
        balancer.to_string(),
        Some(watch.to_string()),
        Some(logs.path().to_path_buf()),
    ))
    .await;
    let base = &running.base;
    // The page sends this start's token, which it reads from the config, with every change.
    let (_, _, config) = get_json(&format!("{base}/api/dashboard/config")).await;
    let token = config["ops_token"].as_str().unwrap().to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-brigade-ops-token", token.parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    // Another site's page cannot change anything: no token, a foreign Origin or
    // Sec-Fetch-Site, or a rebound Host name are refused, and nothing is forwarded.
    let drain = format!("{base}/api/dashboard/balancer/orders/127.0.0.1:4000/drain");
    let forged = [
        reqwest::Client::new().post(&drain),
        client.post(&drain).header("origin", "http://evil.example"),
        client.post(&drain).header("sec-fetch-site", "cross-site"),
        client.post(&drain).header("host", "evil.example"),
        reqwest::Client::new()
            .post(&drain)
            .header("x-brigade-ops-token", "guessed"),
    ];
    for request in forged {
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert!(
        calls.lock().unwrap().is_empty(),
        "nothing reached the balancer"
    );

    // The page and every asset it names are served from the binary.
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let page = page.text().await.unwrap();
    for asset in [
        "/assets/dashboard.js",
        "/assets/brigade.css",
        "/assets/vendor/uplot/uPlot.iife.min.js",
        "/assets/vendor/uplot/uPlot.min.css",
    ] {
        assert!(page.contains(asset), "the page loads {asset}");
        let response = reqwest::get(format!("{base}{asset}")).await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    let licence = reqwest::get(format!("{base}/assets/vendor/uplot/LICENSE"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(licence.contains("MIT License"));
    // Browsers ask for /favicon.ico on their own; a 404 is a console error on every visit.
    let icon = reqwest::get(format!("{base}/favicon.ico")).await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    // Which panels the page shows; no supervisor behind it.
    let (_, _, config) = get_json(&format!("{base}/api/dashboard/config")).await;
    assert_eq!(config["mode"], "standalone");
    assert_eq!(config["watch"], watch.to_string());
    assert_eq!(config["logs"], true);
    assert_eq!(
        reqwest::get(format!("{base}/api/status"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(format!("{base}/health/live"))
            .await
            .unwrap()
            .status(),
        200
    );

    // The balancer: pools passed through, drain forwarded, unknown actions refused here.
    let (status, _, pools) = get_json(&format!("{base}/api/dashboard/balancer")).await;
    assert_eq!(status, 200);
    assert_eq!(
        pools["pools"][0]["backends"][0]["address"],
        "127.0.0.1:4000"
    );
    let drained = client
        .post(format!(
            "{base}/api/dashboard/balancer/orders/127.0.0.1:4000/drain"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 200);
    let refused = client
        .post(format!(
            "{base}/api/dashboard/balancer/orders/127.0.0.1:4000/explode"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );

    // Watch: the query string unchanged, silences' bodies and answers unchanged both ways.
    let query = "query=sum%28up%29&start=1&end=2&step=15";
    let (status, _, body) =
        get_json(&format!("{base}/api/dashboard/watch/query_range?{query}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["resultType"], "matrix");
    let (_, _, alerts) = get_json(&format!("{base}/api/dashboard/watch/alerts")).await;
    assert_eq!(alerts["alerts"][0]["labels"]["alertname"], "X");
    let silence = json!({"matchers": ["alertname=\"X\""], "duration": "1h", "createdBy": "ops dashboard", "comment": "c"});
    let created = client
        .post(format!("{base}/api/dashboard/watch/silences"))
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let bad = client
        .post(format!("{base}/api/dashboard/watch/silences"))
        .json(&json!({"matchers": [], "duration": "1h", "createdBy": "x", "comment": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422, "watch's refusal reaches the page");
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "comment");
    let expired = client
        .delete(format!("{base}/api/dashboard/watch/silences/s-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    let calls = calls.lock().unwrap().clone();
    assert!(
        calls.contains(&"POST /admin/pools/orders/backends/127.0.0.1:4000/drain".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("GET query_range?{query}")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("POST silences {silence}")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"DELETE /api/v1/silences/s-1".to_owned()),
        "{calls:?}"
    );

    // The central logs: newest first, filtered, limited; bad parameters named.
    let (status, _, body) = get_json(&format!("{base}/api/logs?level=warn")).await;
    assert_eq!(status, 200);
    let messages: Vec<&str> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["m2", "m0"]);
    assert_eq!(body["lines"][0]["instance"], "serve-orders-1");
    let (_, _, body) = get_json(&format!("{base}/api/logs?grep=r-1&limit=1")).await;
    assert_eq!(body["lines"].as_array().unwrap().len(), 1);
    assert_eq!(body["lines"][0]["message"], "m1");
    for (query, field) in [
        ("level=loud", "level"),
        ("limit=0", "limit"),
        ("since=tomorrow", "since"),
    ] {
        let (status, media, body) = get_json(&format!("{base}/api/logs?{query}")).await;
        assert_eq!(
            (status, media.as_str()),
            (422, "application/problem+json"),
            "{query}"
        );
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }

    running.shutdown.trigger();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn missing_sources_are_problems_not_hangs() {
    // Nothing listens at the balancer's address; no watch; no logs.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let running = start(Dashboard::standalone(closed.to_string(), None, None)).await;
    let base = &running.base;
    let (_, _, config) = get_json(&format!("{base}/api/dashboard/config")).await;
    assert_eq!(config["watch"], Value::Null);
    assert_eq!(config["logs"], false);
    for (path, status) in [
        ("/api/dashboard/balancer", 502),
        ("/api/dashboard/watch/alerts", 503),
        ("/api/dashboard/watch/query_range?query=up", 503),
        ("/api/logs", 404),
    ] {
        let (got, media, body) = get_json(&format!("{base}{path}")).await;
        assert_eq!(
            (got, media.as_str()),
            (status, "application/problem+json"),
            "{path}"
        );
        assert!(body["detail"].as_str().is_some(), "{path}: {body}");
    }
    running.shutdown.trigger();
    running.task.await.unwrap().unwrap();
}
