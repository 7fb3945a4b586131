//! Resource drills: `disk-full`, `db-refuse`, `cache-outage` ([`resource_faults`]). The
//! shared load runs before, during and after the fault, like every drill; besides it a prober
//! places one keyed order at a time and reads every replica's readiness, to check what each
//! drill claims:
//!
//! | drill | claims besides "no acknowledged order lost or duplicated" |
//! |---|---|
//! | `disk-full` | only 503 + `Retry-After` problem+json while it lasts, never 500; readiness said so; recovered ≤ 10 s |
//! | `db-refuse` | the same, for a PostgreSQL database refusing connections |
//! | `cache-outage` | no request failed; p50 during within 2 × before (+5 ms); the cache is used again |
//!
//! [`resource_faults`]: super::resource_faults

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use super::client::{self, answer_of};
use super::load::{Load, Phase, Target};
use super::report::{self, Claim, Report};
use super::resource_faults::Fault;
use super::{DrillError, DrillOptions};
use crate::PublicEndpoint;
use brigade_domain::{GeoPoint, MenuItem, NewOrder, NewOrderLine, Shop};

/// Resource drills.
pub const DRILLS: [&str; 3] = ["disk-full", "db-refuse", "cache-outage"];

/// Longest a replica may take to serve orders again once a resource is back.
pub const RECOVERY_CLAIM: Duration = Duration::from_secs(10);

/// What the prober saw while the fault lasted, and after it.
#[derive(Debug, Default)]
struct Probes {
    /// Answers by status during the fault.
    statuses: std::collections::BTreeMap<u16, usize>,
    /// 503 answers without `Retry-After` or not problem+json.
    bare_503: usize,
    /// A replica reported not-ready (the reason, as its checks said).
    unready: Option<String>,
    /// Orders the prober saw acknowledged.
    acknowledged: Vec<String>,
}

/// Runs `options.name` if it is a resource drill (`None` otherwise).
pub async fn run(options: &DrillOptions) -> Option<Result<Report, DrillError>> {
    let fault = Fault::for_drill(&options.name)?;
    Some(match fault {
        Ok(fault) => run_fault(options, fault).await,
        Err(error) => Err(error),
    })
}

async fn run_fault(options: &DrillOptions, fault: Fault) -> Result<Report, DrillError> {
    let (
        client::Start {
            status,
            public,
            http,
        },
        token,
    ) = client::start_as_customer(&options.ops, options.password.clone()).await?;
    let target = target(&http, &public, token.clone()).await?;
    let replicas: Vec<String> = status
        .replicas(Some("orders"))
        .filter_map(|c| c.address.clone())
        .collect();
    let hold = options.fault.unwrap_or(options.phase);

    let load = Load::start(http.clone(), target.clone(), options.clients);
    tokio::time::sleep(options.phase).await;
    load.enter(Phase::During);
    let probes = Arc::new(Mutex::new(Probes::default()));
    let fault_started = Instant::now();
    let made = fault.make(hold).await;
    let prober = tokio::spawn(probe(
        http.clone(),
        target.clone(),
        replicas,
        probes.clone(),
    ));
    if made.is_ok() {
        tokio::time::sleep(hold).await;
    }
    let undone = fault.undo().await;
    prober.abort();
    let fault_ms = fault_started.elapsed().as_millis();
    let ended = Instant::now();
    let recovered = recover(&http, &target, &probes).await;
    let recovery = ended.elapsed();
    load.enter(Phase::After);
    if let Err(error) = made.and(undone) {
        load.stop().await;
        return Err(error);
    }
    tokio::time::sleep(options.phase).await;
    let samples = load.stop().await;
    let mut samples = samples.lock().await;
    let probes = probes.lock().await;

    let mut ids = samples.acknowledged.clone();
    ids.extend(probes.acknowledged.iter().cloned());
    let orders = client::reconcile(&http, &public, &token, ids).await;
    let mut report = Report::of_load(
        &options.name,
        &mut samples,
        &orders,
        fault_ms,
        recovery.as_millis(),
    );
    report.claims = claims(&fault, &report, &probes, recovered, recovery);
    Ok(report)
}

/// The load's target: the first shop's menu and an order of its first item.
pub(super) async fn target(
    http: &reqwest::Client,
    public: &PublicEndpoint,
    token: String,
) -> Result<Target, DrillError> {
    let shops: Vec<Shop> = answer_of(http.get(public.url("/api/v1/shops")).send().await).await?;
    let shop = shops
        .first()
        .ok_or_else(|| DrillError::Setup("no shop to order from".into()))?
        .id;
    let menu_url = public.url(&format!("/api/v1/shops/{shop}/menu"));
    let menu: Vec<MenuItem> = answer_of(http.get(&menu_url).send().await).await?;
    let item = menu
        .iter()
        .find(|item| item.available)
        .ok_or_else(|| DrillError::Setup(format!("nothing available on the menu of {shop}")))?;
    Ok(Target {
        menu_url,
        orders_url: public.url("/api/v1/orders"),
        token,
        order: NewOrder {
            shop_id: Some(shop),
            items: vec![NewOrderLine {
                item_id: item.item_id,
                quantity: 1,
            }],
            delivery: GeoPoint {
                lat: 52.51,
                lon: 13.40,
            },
        },
        key_prefix: format!("drill-{}", chrono::Utc::now().timestamp_millis()),
    })
}

/// Places one keyed order; its status and, for a 201, the order id. A 503 is checked for
/// `Retry-After` and problem+json.
async fn place(http: &reqwest::Client, target: &Target, probes: &Mutex<Probes>) -> Option<u16> {
    let key = format!("{}-probe-{}", target.key_prefix, uuid_like());
    let response = http
        .post(&target.orders_url)
        .bearer_auth(&target.token)
        .header("idempotency-key", key)
        .json(&target.order)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let order: Option<brigade_domain::Order> = response.json().await.ok();
    let mut probes = probes.lock().await;
    if status == 201
        && let Some(order) = order
    {
        probes.acknowledged.push(order.id.to_string());
    }
    if status == 503 && !(retry_after && problem) {
        probes.bare_503 += 1;
    }
    Some(status)
}

/// A key suffix unique enough for one drill.
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// While the fault lasts: an order every 100 ms and, beside it (an order may be held up to
/// the balancer's retry waits), every replica's readiness every 250 ms.
async fn probe(
    http: reqwest::Client,
    target: Target,
    replicas: Vec<String>,
    probes: Arc<Mutex<Probes>>,
) {
    let orders = async {
        loop {
            if let Some(status) = place(&http, &target, &probes).await {
                *probes.lock().await.statuses.entry(status).or_default() += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let readiness = async {
        loop {
            for replica in &replicas {
                let ready = http
                    .get(format!("http://{replica}/health/ready"))
                    .send()
                    .await;
                if let Ok(ready) = ready
                    && ready.status().as_u16() == 503
                {
                    let body: Unready = ready.json().await.unwrap_or_default();
                    probes.lock().await.unready = Some(body.checks.to_string());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::join!(orders, readiness);
}

/// After the fault: orders until one is acknowledged (within twice the claimed limit).
async fn recover(http: &reqwest::Client, target: &Target, probes: &Mutex<Probes>) -> bool {
    let deadline = Instant::now() + 2 * RECOVERY_CLAIM;
    while Instant::now() < deadline {
        if place(http, target, probes).await == Some(201) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn claims(
    fault: &Fault,
    report: &Report,
    probes: &Probes,
    recovered: bool,
    recovery: Duration,
) -> Vec<Claim> {
    let mut claims = report::order_claims(report);
    let during = &report.failed_statuses[1];
    if let Fault::CacheOutage { .. } = fault {
        let (before, outage) = (report.latency_ms[0].0, report.latency_ms[1].0);
        claims.extend([
            Claim::new(
                "no request failed",
                report.failed == 0,
                format!(
                    "{} of {} failed: {:?}",
                    report.failed, report.sent, report.failures
                ),
            ),
            Claim::new(
                "p50 during the outage within 2x of before (+5 ms)",
                outage <= 2.0 * before + 5.0,
                format!("p50 before {before:.1} ms, during {outage:.1} ms"),
            ),
        ]);
    } else {
        let only_503 = during.keys().all(|status| status == "503")
            && report.failed_by_phase[2] == 0
            && probes.bare_503 == 0;
        claims.extend([
            Claim::new(
                "the fault was felt",
                probes.statuses.contains_key(&503),
                format!("probe answers during it: {:?}", probes.statuses),
            ),
            Claim::new(
                "503 + Retry-After problem+json while it lasted, never 500",
                only_503 && !probes.statuses.keys().any(|s| *s >= 500 && *s != 503),
                format!(
                    "load failures during: {during:?}, after: {}; probe 503s without Retry-After or problem+json: {}",
                    report.failed_by_phase[2], probes.bare_503
                ),
            ),
            Claim::new(
                "readiness said so",
                probes.unready.is_some(),
                probes.unready.clone().unwrap_or_else(|| "every replica stayed ready".into()),
            ),
        ]);
    }
    claims.push(Claim::new(
        format!("recovered <= {} s", RECOVERY_CLAIM.as_secs()),
        recovered && recovery <= RECOVERY_CLAIM,
        format!(
            "an order was acknowledged {} ms after the fault ended",
            recovery.as_millis()
        ),
    ));
    claims
}

/// The part of a replica's 503 readiness answer the drill reports: its checks, as sent.
#[derive(Debug, Default, serde::Deserialize)]
struct Unready {
    #[serde(default)]
    checks: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resource_drills_are_taken() {
        assert!(Fault::for_drill("kill-replica").is_none());
        for name in DRILLS {
            assert!(Fault::for_drill(name).is_some(), "{name}");
        }
    }
}
