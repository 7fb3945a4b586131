//! Read replicas on PostgreSQL, on clusters the test makes itself: a primary and a streaming
//! standby (`pg_basebackup -R`), and two real `brigade serve` processes using both, one with a
//! lag bound of ten minutes (the standby always qualifies) and one of one second.
//!
//! Replay on the standby is paused with `pg_wal_replay_pause()` instead of waiting for lag to
//! happen, so what each read must see is certain: a shop created while replay is paused is
//! absent from a read the standby serves (proof that it served it), present for the client
//! that wrote it (read-your-writes through `Brigade-Read-After`), and present once the lag
//! exceeds the bound (the standby is skipped). A stopped standby costs no failed request.

mod common;
mod pg_cluster;

use std::time::{Duration, Instant};

use pg_cluster::{Cluster, DEMO_PASSWORD, Replica, shop_names};
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// A replica of `primary` reading from `standby` with the lag bound `max_lag_ms`.
fn replica(primary: &Cluster, standby: &Cluster, max_lag_ms: u64) -> (Replica, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_READ_URL", standby.url()),
        ("BRIGADE_STORAGE__READ_MAX_LAG_MS", max_lag_ms.to_string()),
    ];
    (
        Replica::start_with(&primary.url(), folder.path(), &env),
        folder,
    )
}

fn log_in(client: &Client, base: &str, email: &str) -> String {
    let session: Value = client
        .post(format!("{base}/api/v1/sessions"))
        .json(&json!({"email": email, "password": DEMO_PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    session["token"].as_str().expect("log-in").to_owned()
}

/// The sum of `brigade_db_reads_total` samples with `target` (and `reason`, when given).
fn reads(client: &Client, base: &str, target: &str, reason: Option<&str>) -> f64 {
    let text = metrics_text(client, base);
    text.lines()
        .filter(|line| line.starts_with("brigade_db_reads_total{"))
        .filter(|line| line.contains(&format!("target=\"{target}\"")))
        .filter(|line| reason.is_none_or(|r| line.contains(&format!("reason=\"{r}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn lag_seconds(client: &Client, base: &str) -> Option<f64> {
    metrics_text(client, base)
        .lines()
        .find(|line| line.starts_with("brigade_db_replica_lag_seconds "))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn metrics_text(client: &Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Polls `check` every 50 ms until it holds, failing after 30 s with `what`.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a shop as the demo admin; returns its name and the response's fence.
fn create_shop(client: &Client, base: &str, admin: &str, name: &str) -> String {
    let response = client
        .post(format!("{base}/api/v1/shops"))
        .bearer_auth(admin)
        .json(&json!({"name": name, "region": "replica-test",
            "location": {"lat": 52.5, "lon": 13.4}, "open": false}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text());
    let fence = response.headers()["brigade-read-after"].to_str().unwrap();
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("brigade_read_after=")),
        "a write sets the fence cookie"
    );
    fence.to_owned()
}

#[test]
fn a_standby_serves_stale_tolerant_reads_without_costing_freshness_or_availability() {
    let Some(bin) = pg_cluster::postgres_tools() else {
        return;
    };
    let primary = Cluster::start(&bin);
    let standby = Cluster::standby_of(&primary);
    let (tolerant, _a) = replica(&primary, &standby, 600_000);
    let (strict, _b) = replica(&primary, &standby, 1_000);
    let client = Client::new();
    let admin = log_in(&client, &tolerant.base, "admin@brigade.demo");
    let customer = log_in(&client, &tolerant.base, "customer@brigade.demo");

    // 1. Once sampled, the standby serves the shop list.
    wait_until("the standby serves reads", || {
        shop_names(&client, &tolerant.base, None);
        reads(&client, &tolerant.base, "standby", None) > 0.0
    });
    let before = reads(&client, &tolerant.base, "standby", None);
    for _ in 0..20 {
        shop_names(&client, &tolerant.base, None);
    }
    assert!(reads(&client, &tolerant.base, "standby", None) >= before + 20.0);

    // 2. Replay paused: a new shop is absent from what the standby serves, present for the
    // client carrying the write's fence (header or cookie).
    assert_eq!(
        standby.query("SELECT pg_wal_replay_pause()").as_deref(),
        Some("")
    );
    let fence = create_shop(&client, &tolerant.base, &admin, "Replica Test Kitchen");
    let name = "Replica Test Kitchen".to_owned();
    assert!(
        !shop_names(&client, &tolerant.base, None).contains(&name),
        "the paused standby served the list, without the new shop"
    );
    let read_after = reads(&client, &tolerant.base, "primary", Some("read_after"));
    assert!(shop_names(&client, &tolerant.base, Some(&fence)).contains(&name));
    let by_cookie: Value = client
        .get(format!("{}/api/v1/shops", tolerant.base))
        .header("cookie", format!("brigade_read_after={fence}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(by_cookie.to_string().contains(&name));
    assert_eq!(
        reads(&client, &tolerant.base, "primary", Some("read_after")),
        read_after + 2.0
    );

    // 3. Read-your-writes on orders: placed, then listed at once by the same client.
    let shops: Value = client
        .get(format!("{}/api/v1/shops?open=true", tolerant.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shop = shops[0]["id"].as_str().unwrap().to_owned();
    let menu: Value = client
        .get(format!("{}/api/v1/shops/{shop}/menu", tolerant.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let placed = client
        .post(format!("{}/api/v1/orders", tolerant.base))
        .bearer_auth(&customer)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&json!({"shop_id": shop,
            "items": [{"item_id": menu[0]["item_id"], "quantity": 1}],
            "delivery": {"lat": 52.51, "lon": 13.40}}))
        .send()
        .unwrap();
    assert_eq!(placed.status(), 201);
    let order_fence = placed.headers()["brigade-read-after"]
        .to_str()
        .unwrap()
        .to_owned();
    let order: Value = placed.json().unwrap();
    let listed = |fence: Option<&str>| -> bool {
        let mut request = client
            .get(format!("{}/api/v1/orders", tolerant.base))
            .bearer_auth(&customer);
        if let Some(fence) = fence {
            request = request.header("brigade-read-after", fence);
        }
        let page: Value = request.send().unwrap().json().unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == order["id"])
    };
    assert!(listed(Some(&order_fence)), "the client reads its own order");
    assert!(
        !listed(None),
        "without the fence the paused standby answers"
    );

    // 4. Lag beyond the bound: the strict replica skips the standby.
    wait_until("the strict replica sees the lag beyond its bound", || {
        lag_seconds(&client, &strict.base).is_some_and(|lag| lag > 1.0)
    });
    let lagging = reads(&client, &strict.base, "primary", Some("lagging"));
    assert!(shop_names(&client, &strict.base, None).contains(&name));
    assert_eq!(
        reads(&client, &strict.base, "primary", Some("lagging")),
        lagging + 1.0
    );

    // 5. Replay resumed: the standby catches up and serves the new shop to everyone.
    standby.query("SELECT pg_wal_replay_resume()").unwrap();
    wait_until("the standby replays the new shop", || {
        shop_names(&client, &tolerant.base, None).contains(&name)
    });
    wait_until("the strict replica's lag is back within its bound", || {
        lag_seconds(&client, &strict.base).is_some_and(|lag| lag < 1.0)
    });

    // 6. The standby stops: many concurrent reads, every one answered from the primary.
    standby.pg_ctl_stop("fast");
    let skipped = |base: &str| {
        reads(&client, base, "primary", Some("standby_down"))
            + reads(&client, base, "primary", Some("standby_error"))
    };
    let skipped_before = skipped(&tolerant.base) + skipped(&strict.base);
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let (client, customer) = (&client, &customer);
                let base = if worker % 2 == 0 {
                    &tolerant.base
                } else {
                    &strict.base
                };
                scope.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let path = if i % 2 == 0 { "shops" } else { "orders" };
                            client
                                .get(format!("{base}/api/v1/{path}"))
                                .bearer_auth(customer)
                                .send()
                                .unwrap()
                                .status()
                                .as_u16()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let skipped_after = skipped(&tolerant.base) + skipped(&strict.base);
    assert!(skipped_after >= skipped_before + 200.0);
    eprintln!("200 reads with the standby stopped: all 200 OK in {elapsed:?}");

    // 7. The standby comes back: the replicas use it again without a restart.
    standby.pg_ctl_start();
    let back = reads(&client, &tolerant.base, "standby", None);
    wait_until("the restarted standby serves reads again", || {
        shop_names(&client, &tolerant.base, None);
        reads(&client, &tolerant.base, "standby", None) > back
    });

    // 8. The replica's metrics pass promtool, when it is installed.
    let text = metrics_text(&client, &tolerant.base);
    assert!(text.contains("# TYPE brigade_db_replica_lag_seconds gauge"));
    assert!(text.contains("# TYPE brigade_db_reads_total counter"));
    promtool_check(&text);
}

fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = spawned else {
        eprintln!("promtool missing; metrics not checked");
        return;
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
