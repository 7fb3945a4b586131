//! Rate limits at the edge over loopback: a rule's burst passes, the next request is 429
//! problem+json with `Retry-After` and the IETF `RateLimit-Policy`/`RateLimit` headers, other
//! methods and paths are untouched, `X-Forwarded-For` counts only behind a trusted proxy, and
//! refusals are counted in `/metrics`.

mod support;

use support::{Balancer, Upstream, backends_toml};

const SESSIONS: &str = "[[rate_limits]]\nname = \"sessions\"\npath_prefix = \"/api/v1/sessions\"\n\
     methods = [\"POST\"]\nrequests = 3\nper_seconds = 60\n";

async fn post(balancer: &Balancer, path: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = balancer.client.post(balancer.url(path)).body("{}");
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_is_429_with_retry_after_and_ratelimit_headers() {
    let up = Upstream::start("rl").await;
    let balancer = Balancer::from_toml(&format!(
        "{SESSIONS}[[pools]]\nname = \"edge-429\"\n{}",
        backends_toml(&[&up])
    ))
    .await;
    for remaining in [2, 1, 0] {
        let response = post(&balancer, "/api/v1/sessions", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"sessions\";q=3;w=60"
        );
        let value = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            value.starts_with(&format!("\"sessions\";r={remaining};t=")),
            "{value}"
        );
    }
    // A spoofed X-Forwarded-For from an untrusted peer does not buy a new bucket.
    let response = post(&balancer, "/api/v1/sessions", Some("203.0.113.9")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"sessions\";q=3;w=60"
    );
    assert_eq!(
        response.headers()["ratelimit"],
        format!("\"sessions\";r=0;t={retry_after}").as_str()
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert!(
        body["detail"].as_str().unwrap().contains("sessions"),
        "{body}"
    );
    assert_eq!(
        up.hits(),
        3,
        "the refused request never reached the backend"
    );

    // Other methods and paths are not limited by the rule.
    let response = balancer
        .client
        .get(balancer.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("ratelimit"));
    assert_eq!(post(&balancer, "/api/v1/orders", None).await.status(), 200);

    let metrics = balancer.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("brigade_balance_rate_limited_total")
                && l.contains("rule=\"sessions\"")
                && l.contains("pool=\"edge-429\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(metrics.contains("# HELP brigade_balance_rate_limited_total"));
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_keys_clients_only_behind_trusted_proxies() {
    let up = Upstream::start("xff").await;
    // The test connects from loopback, which stands for a proxy only because it is listed.
    let balancer = Balancer::from_toml(&format!(
        "trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n{SESSIONS}[[pools]]\nname = \"edge-xff\"\n{}",
        backends_toml(&[&up])
    ))
    .await;
    for _ in 0..3 {
        let response = post(&balancer, "/api/v1/sessions", Some("203.0.113.1")).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        post(&balancer, "/api/v1/sessions", Some("203.0.113.1"))
            .await
            .status(),
        429
    );
    // Whatever the client writes to the left of the address the proxy saw is not believed;
    // trusted hops to the right are skipped.
    assert_eq!(
        post(
            &balancer,
            "/api/v1/sessions",
            Some("198.51.100.7, 203.0.113.1, 10.2.3.4")
        )
        .await
        .status(),
        429
    );
    // Another client behind the same proxy has its own bucket.
    assert_eq!(
        post(&balancer, "/api/v1/sessions", Some("203.0.113.2"))
            .await
            .status(),
        200
    );
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_can_key_buckets_by_a_header() {
    let up = Upstream::start("hdr").await;
    let balancer = Balancer::from_toml(&format!(
        "[[rate_limits]]\nname = \"orders\"\npath_prefix = \"/api/v1/orders\"\nrequests = 2\n\
         per_seconds = 60\nburst = 1\nkey = {{ header = \"authorization\" }}\n\
         [[pools]]\nname = \"edge-hdr\"\n{}",
        backends_toml(&[&up])
    ))
    .await;
    let send = |token: &'static str| {
        balancer
            .client
            .get(balancer.url("/api/v1/orders"))
            .header("authorization", token)
            .send()
    };
    assert_eq!(send("Bearer a").await.unwrap().status(), 200);
    assert_eq!(send("Bearer a").await.unwrap().status(), 429);
    assert_eq!(send("Bearer b").await.unwrap().status(), 200);
    balancer.stop().await;
}
