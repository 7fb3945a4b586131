//! Drills (`brigade drill NAME`): a bounded built-in load against the public port while one
//! fault happens, then a report that checks its own claims.
//!
//! The load is what customers do: menu reads and orders, each order with its own
//! `Idempotency-Key`. Phases: before the fault, during it (until the system recovered), after.
//! The report gives requests sent and failed, p50/p99 per phase, the time to recover, alerts
//! that fired in `brigade watch` during the drill, and whether every acknowledged order is in
//! the store exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Drills brigade knows.
pub const DRILLS: [&str; 3] = ["kill-replica", "rolling-restart", "error-burst"];

/// Why a drill could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// Unknown name.
    #[error("unknown drill {0:?}; drills: kill-replica, rolling-restart, error-burst")]
    Unknown(String),
    /// `brigade up` is not reachable or answered something unexpected.
    #[error("{0}")]
    Setup(String),
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The drill.
    pub name: String,
    /// The ops API of `brigade up`.
    pub ops: String,
    /// Password of the demo accounts.
    pub password: String,
    /// Length of the calm phases before and after the fault.
    pub phase: Duration,
    /// Concurrent clients.
    pub clients: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    During,
    After,
}

#[derive(Default)]
struct Samples {
    latencies: [Vec<Duration>; 3],
    failed: [usize; 3],
    reasons: std::collections::BTreeMap<String, usize>,
    acknowledged: Vec<String>,
}

/// The outcome of a drill.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The drill.
    pub drill: String,
    /// Requests sent.
    pub sent: usize,
    /// Requests that did not succeed.
    pub failed: usize,
    /// p50 and p99 in milliseconds before, during and after the fault.
    pub latency_ms: [(f64, f64); 3],
    /// Failures per phase.
    pub failed_by_phase: [usize; 3],
    /// From the fault until the system was whole again.
    pub recovery_ms: u128,
    /// Orders answered 201.
    pub acknowledged: usize,
    /// Acknowledged orders missing from the store.
    pub lost: usize,
    /// Acknowledged ids seen more than once (a double placement).
    pub duplicated: usize,
    /// Alerts that fired in `brigade watch` during the drill.
    pub alerts: Vec<String>,
    /// What the failed requests got, counted.
    pub failures: std::collections::BTreeMap<String, usize>,
}

impl Report {
    /// Whether the drill's claims hold: nothing failed, lost or duplicated (the error burst is
    /// expected to fail requests on purpose; it must still lose nothing).
    pub fn passed(&self) -> bool {
        let failures_ok = self.drill == "error-burst" || self.failed == 0;
        failures_ok && self.lost == 0 && self.duplicated == 0
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let phase = |i: usize, name: &str| {
            format!(
                "  {name:<8} p50 {:>8.1} ms   p99 {:>8.1} ms   failed {}\n",
                self.latency_ms[i].0, self.latency_ms[i].1, self.failed_by_phase[i]
            )
        };
        format!(
            "drill {}\n  requests {}  failed {}  recovered after {} ms\n{}{}{}  orders acknowledged {}  lost {}  duplicated {}\n  alerts fired: {}\n{}  verdict: {}\n",
            self.drill,
            self.sent,
            self.failed,
            self.recovery_ms,
            phase(0, "before"),
            phase(1, "during"),
            phase(2, "after"),
            self.acknowledged,
            self.lost,
            self.duplicated,
            if self.alerts.is_empty() {
                "none".to_owned()
            } else {
                self.alerts.join(", ")
            },
            self.failures
                .iter()
                .map(|(reason, n)| format!("  failure: {n} × {reason}\n"))
                .collect::<String>(),
            if self.passed() { "PASSED" } else { "FAILED" }
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

async fn json_of(response: reqwest::Result<reqwest::Response>) -> Result<Value, DrillError> {
    let response = response.map_err(|e| DrillError::Setup(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| DrillError::Setup(e.to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(DrillError::Setup(format!("HTTP {status}: {body}")))
    }
}

async fn log_in(
    http: &reqwest::Client,
    public: &str,
    email: &str,
    password: &str,
) -> Result<String, DrillError> {
    let session = json_of(
        http.post(format!("http://{public}/api/v1/sessions"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await,
    )
    .await
    .map_err(|e| {
        DrillError::Setup(format!(
            "cannot log in as {email} (set --password or BRIGADE_DEMO_PASSWORD): {e}"
        ))
    })?;
    Ok(session["token"].as_str().unwrap_or_default().to_owned())
}

/// Runs a drill against a running `brigade up`.
pub async fn run(options: &DrillOptions) -> Result<Report, DrillError> {
    if !DRILLS.contains(&options.name.as_str()) {
        return Err(DrillError::Unknown(options.name.clone()));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| DrillError::Setup(e.to_string()))?;
    let status_url = format!("http://{}/api/status", options.ops);
    let status = json_of(http.get(&status_url).send().await).await?;
    let public = status["public"].as_str().unwrap_or_default().to_owned();
    let watch = status["watch"].as_str().map(str::to_owned);
    let customer = log_in(&http, &public, "customer@brigade.demo", &options.password).await?;
    let shops = json_of(
        http.get(format!("http://{public}/api/v1/shops"))
            .send()
            .await,
    )
    .await?;
    let shop = shops[0]["id"].as_str().unwrap_or_default().to_owned();
    let menu = json_of(
        http.get(format!("http://{public}/api/v1/shops/{shop}/menu"))
            .send()
            .await,
    )
    .await?;
    let order = json!({"shop_id": shop, "items": [{"item_id": menu[0]["item_id"], "quantity": 1}],
                       "delivery": {"lat": 52.51, "lon": 13.40}});
    let started_at = chrono::Utc::now();

    let phase = Arc::new(std::sync::Mutex::new(Phase::Before));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..options.clients {
        let (http, phase, samples, stop) =
            (http.clone(), phase.clone(), samples.clone(), stop.clone());
        let (menu_url, orders_url) = (
            format!("http://{public}/api/v1/shops/{shop}/menu"),
            format!("http://{public}/api/v1/orders"),
        );
        let (customer, order) = (customer.clone(), order.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let now = *phase.lock().unwrap_or_else(|p| p.into_inner());
                let started = Instant::now();
                let (outcome, placed) = if n % 2 == 0 {
                    match http.get(&menu_url).send().await {
                        Ok(r) if r.status().is_success() => (Ok(()), None),
                        Ok(r) => (Err(format!("GET menu: HTTP {}", r.status().as_u16())), None),
                        Err(e) => (Err(format!("GET menu: {}", error_kind(&e))), None),
                    }
                } else {
                    let key = format!("drill-{}-{worker}-{n}", started_at.timestamp_millis());
                    let answer = http
                        .post(&orders_url)
                        .bearer_auth(&customer)
                        .header("idempotency-key", key)
                        .json(&order)
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status().as_u16() == 201 => {
                            let body: Value = response.json().await.unwrap_or_default();
                            (Ok(()), body["id"].as_str().map(str::to_owned))
                        }
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body: Value = response.json().await.unwrap_or_default();
                            let kind = body["type"].as_str().unwrap_or("").to_owned();
                            (Err(format!("POST order: HTTP {status} {kind}")), None)
                        }
                        Err(e) => (Err(format!("POST order: {}", error_kind(&e))), None),
                    }
                };
                let elapsed = started.elapsed();
                let mut samples = samples.lock().await;
                let slot = now as usize;
                samples.latencies[slot].push(elapsed);
                if let Err(reason) = outcome {
                    samples.failed[slot] += 1;
                    *samples.reasons.entry(reason).or_default() += 1;
                }
                samples.acknowledged.extend(placed);
            }
        }));
    }

    tokio::time::sleep(options.phase).await;
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = Phase::During;
    let fault_started = Instant::now();
    inject(
        &options.name,
        &http,
        &options.ops,
        &status,
        &public,
        &options.password,
        options.phase,
    )
    .await?;
    let recovery_ms = fault_started.elapsed().as_millis();
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = Phase::After;
    tokio::time::sleep(options.phase).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }

    let mut samples = samples.lock().await;
    let mut latency_ms = [(0.0, 0.0); 3];
    for (i, latencies) in samples.latencies.iter_mut().enumerate() {
        latencies.sort();
        latency_ms[i] = (percentile(latencies, 0.5), percentile(latencies, 0.99));
    }
    // Every acknowledged order must be in the store, once.
    let mut ids = samples.acknowledged.clone();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    let duplicated = before - ids.len();
    let mut lost = 0;
    for id in &ids {
        let found = http
            .get(format!("http://{public}/api/v1/orders/{id}"))
            .bearer_auth(&customer)
            .send()
            .await;
        if !found.is_ok_and(|r| r.status().is_success()) {
            lost += 1;
        }
    }
    let alerts = match watch {
        Some(watch) => fired_alerts(&http, &watch, started_at).await,
        None => Vec::new(),
    };
    Ok(Report {
        drill: options.name.clone(),
        sent: samples.latencies.iter().map(Vec::len).sum(),
        failed: samples.failed.iter().sum(),
        latency_ms,
        failed_by_phase: samples.failed,
        recovery_ms,
        acknowledged: before,
        lost,
        duplicated,
        alerts,
        failures: samples.reasons.clone(),
    })
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection refused"
    } else {
        "connection error"
    }
}

/// Does the fault and returns once the system is whole again.
async fn inject(
    name: &str,
    http: &reqwest::Client,
    ops: &str,
    status: &Value,
    public: &str,
    password: &str,
    hold: Duration,
) -> Result<(), DrillError> {
    let victim = status["children"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["pool"] == "orders" && c["backup"] == false && c["state"] == "ready")
        .cloned()
        .ok_or_else(|| DrillError::Setup("no ready orders replica".into()))?;
    let instance = victim["instance"].as_str().unwrap_or_default().to_owned();
    match name {
        "kill-replica" => {
            let pid = victim["pid"].as_u64().unwrap_or_default();
            let killed = tokio::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .await
                .map_err(|e| DrillError::Setup(format!("cannot run kill: {e}")))?;
            if !killed.success() {
                return Err(DrillError::Setup(format!("cannot kill {instance} ({pid})")));
            }
            // Recovered when the replica is back in the pool with a new process.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now =
                    json_of(http.get(format!("http://{ops}/api/status")).send().await).await?;
                let back = now["children"].as_array().into_iter().flatten().any(|c| {
                    c["instance"] == instance.as_str()
                        && c["state"] == "ready"
                        && c["pid"].as_u64() != Some(pid)
                });
                if back || Instant::now() > deadline {
                    return Ok(());
                }
            }
        }
        "rolling-restart" => {
            json_of(
                http.post(format!("http://{ops}/api/pools/orders/rollout"))
                    .json(&json!({}))
                    .send()
                    .await,
            )
            .await?;
            Ok(())
        }
        "error-burst" => {
            let admin = log_in(http, public, "admin@brigade.demo", password).await?;
            let address = victim["address"].as_str().unwrap_or_default();
            let url = format!("http://{address}/api/v1/admin/faults");
            json_of(
                http.put(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"error_ratio": 1.0}))
                    .send()
                    .await,
            )
            .await?;
            tokio::time::sleep(hold).await;
            json_of(
                http.put(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"error_ratio": 0.0}))
                    .send()
                    .await,
            )
            .await?;
            Ok(())
        }
        other => Err(DrillError::Unknown(other.to_owned())),
    }
}

/// Names of alerts that were firing in `brigade watch` at some point since `since`.
async fn fired_alerts(
    http: &reqwest::Client,
    watch: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let Ok(Ok(history)) = http
        .get(format!("http://{watch}/api/v1/alerts/history"))
        .send()
        .await
        .map(|r| r.error_for_status())
    else {
        return Vec::new();
    };
    let history: Value = history.json().await.unwrap_or_default();
    let entries = history
        .as_array()
        .cloned()
        .or_else(|| history["items"].as_array().cloned())
        .unwrap_or_default();
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| {
            e["started_at"]
                .as_str()
                .or(e["startsAt"].as_str())
                .or(e["at"].as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t >= since)
        })
        .filter_map(|e| {
            e["labels"]["alertname"]
                .as_str()
                .or(e["alertname"].as_str())
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
