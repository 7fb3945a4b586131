//! Drills (`brigade drill NAME`): a bounded built-in load against the public port while one
//! fault happens, then a report that checks its own claims.
//!
//! The load is what customers do: menu reads and orders, each order with its own
//! `Idempotency-Key` ([`load`]). Phases: before the fault, during it (until the system
//! recovered), after. The fault ([`inject`]) is one of:
//!
//! | drill | fault | claims besides "no acknowledged order lost or duplicated" |
//! |---|---|---|
//! | `kill-replica` | SIGKILL one orders replica | no request fails, it comes back |
//! | `rolling-restart` | replace every orders replica | no request fails |
//! | `error-burst` | one replica answers 500 | failures only during the burst |
//! | `slow-replica` | one replica +400 ms | no request fails, it gets under half an even share |
//! | `payment-outage` | every provider call fails | 502/503 problem answers only, nothing charged for a failed order, breakers close again |
//! | `db-outage` | the replicas' database link is cut | 503 problem answers only and only during, readiness, full recovery |
//! | `surge` | 5 × the clients | the autoscaler adds replicas, no request fails |
//! | `kill-balancer` | SIGKILL the balancer | the public port serves again ≤ 1 s, no connection refused |
//! | `kill-watch` | SIGKILL watch | no request fails, watch answers again ≤ 10 s |
//!
//! `restore` ([`restore`]) deletes the SQLite store mid-run, or loses the PostgreSQL cluster's
//! data directory and restores it with pgBackRest ([`restore_pg`]), and measures RTO and RPO;
//! the resource drills ([`resources`]) fill the disk, refuse database connections or pause Redis.
//!
//! The clients behave like careful ones: after a 5xx, a 429 or a broken connection they wait
//! (the answer's `Retry-After`, else a short pause that doubles), and an order whose connection
//! broke is placed again with the same key. Only the drill's own orders count: they carry its
//! request-id prefix.
//!
//! The report ([`report`]) gives requests sent and failed, p50/p99/max per phase, the time to
//! recover, alerts that fired in `brigade watch`, the drill's own measurements, and each claim
//! with its verdict.

mod checks;
mod claims;
mod client;
mod ctx;
mod inject;
mod load;
mod payments;
mod processes;
mod report;
mod resource_faults;
pub mod resources;
pub mod restore;
pub mod restore_pg;
mod spans;
mod wal_marks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::Instrument as _;

use crate::api::EventKind;

pub use report::{Claim, DatabaseCheck, PaymentCheck, Report, Scaling, TrafficShare};

use load::{Load, Phase, Samples, Target};

/// Drills brigade knows.
pub const DRILLS: [&str; 9] = [
    "kill-replica",
    "rolling-restart",
    "error-burst",
    "slow-replica",
    "payment-outage",
    "db-outage",
    "surge",
    "kill-balancer",
    "kill-watch",
];

/// Why a drill could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// Unknown name.
    #[error(
        "unknown drill {0:?}; drills: kill-replica, rolling-restart, error-burst, slow-replica, \
         payment-outage, db-outage, surge, kill-balancer, kill-watch, disk-full, db-refuse, \
         cache-outage, restore"
    )]
    Unknown(String),
    /// `brigade up` is not reachable or answered something unexpected.
    #[error("{0}")]
    Setup(String),
    /// A setting the drill needs is missing or unusable; the key is named (the binary exits 2).
    #[error("{key}: {message}")]
    Setting {
        /// Dotted key, e.g. `backup.pg_data`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A drill, parsed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    /// SIGKILL one orders replica.
    KillReplica,
    /// Replace every orders replica, one at a time.
    RollingRestart,
    /// One orders replica answers every API request with 500.
    ErrorBurst,
    /// One orders replica answers every API request late.
    SlowReplica,
    /// The payment provider fails on every replica.
    PaymentOutage,
    /// The replicas lose their database.
    DbOutage,
    /// Five times the load, with the autoscaler watching.
    Surge,
    /// SIGKILL the balancer.
    KillBalancer,
    /// SIGKILL watch.
    KillWatch,
}

impl Drill {
    /// The drill called `name`.
    pub fn parse(name: &str) -> Result<Self, DrillError> {
        Ok(match name {
            "kill-replica" => Self::KillReplica,
            "rolling-restart" => Self::RollingRestart,
            "error-burst" => Self::ErrorBurst,
            "slow-replica" => Self::SlowReplica,
            "payment-outage" => Self::PaymentOutage,
            "db-outage" => Self::DbOutage,
            "surge" => Self::Surge,
            "kill-balancer" => Self::KillBalancer,
            "kill-watch" => Self::KillWatch,
            other => return Err(DrillError::Unknown(other.to_owned())),
        })
    }

    /// How long the fault is held unless told: the 30 s for the database, a minute of
    /// surge, one phase otherwise.
    pub fn default_hold(self, phase: Duration) -> Duration {
        match self {
            Self::DbOutage => Duration::from_secs(30),
            Self::Surge => Duration::from_secs(60),
            _ => phase,
        }
    }
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The drill.
    pub name: String,
    /// The ops API of `brigade up`.
    pub ops: String,
    /// Its per-start token ([`crate::ops_guard`]), for the drills that change something there.
    pub ops_token: String,
    /// Password of the demo accounts; without one, each account's from the data directory's
    /// accounts file.
    pub password: Option<String>,
    /// Length of the calm phases before and after the fault.
    pub phase: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// How long the fault is held (error burst, slow replica, outages, surge); `None`: the
    /// drill's default ([`Drill::default_hold`]).
    pub fault: Option<Duration>,
}

/// Checks what a drill needs that can be known without `brigade up`: the name, and a resource
/// drill's setup (a disk-full drill refuses a big disk before anything else is asked for).
pub fn preflight(name: &str) -> Result<(), DrillError> {
    if name == restore::NAME {
        return restore_pg::preflight();
    }
    match resource_faults::Fault::for_drill(name) {
        Some(fault) => fault.map(drop),
        None => Drill::parse(name).map(drop),
    }
}

/// Runs a drill against a running `brigade up`.
pub async fn run(options: &DrillOptions) -> Result<Report, DrillError> {
    if options.name == restore::NAME {
        return match restore_pg::plan()? {
            Some(plan) => restore_pg::run(options, plan).await,
            None => restore::run(options).await,
        };
    }
    if let Some(report) = resources::run(options).await {
        return report;
    }
    let drill = Drill::parse(&options.name)?;
    let Prepared {
        mut ctx,
        target,
        watch,
        started_at,
    } = prepare(options, drill).await?;
    if let Some(watch) = &watch {
        // The drill's own spans (its phases) go to up's collector beside the system's.
        brigade_core::traces::attach_collector(&format!("http://{watch}"));
    }
    let (http, public) = (ctx.http.clone(), ctx.public.clone());
    let (customer, key_prefix) = (target.token.clone(), target.key_prefix.clone());
    let drill_span = spans::drill(&options.name, options.clients);
    let Phases {
        findings,
        counters,
        samples,
        recovery_ms,
    } = run_phases(&mut ctx, target, options)
        .instrument(drill_span.clone())
        .await
        .inspect_err(|error| brigade_core::traces::mark_failed(&drill_span, &error.to_string()))?;
    drop(drill_span);
    let mut samples = samples.lock().await;

    // Every acknowledged order must be in the store, once.
    let orders = client::reconcile(&http, &public, &customer, samples.acknowledged.clone()).await;
    let alerts = client::fired_alerts(&http, watch.as_deref(), started_at).await;
    let traffic = findings
        .slowed
        .as_ref()
        .map(|replica| traffic_share(replica, &counters, &ctx.status));
    let payments = match drill {
        Drill::PaymentOutage => Some(
            payments::check(
                &ctx,
                started_at,
                &orders.ids,
                &key_prefix,
                findings.breakers_closed.unwrap_or(false),
            )
            .await?,
        ),
        _ => None,
    };
    let scaling = match findings.scaling.clone() {
        Some(scaling) => Some(scaling_at_end(&http, &options.ops, scaling, started_at).await?),
        None => None,
    };
    let mut report = Report::of_load(
        &options.name,
        &mut samples,
        &orders,
        findings.fault.as_millis(),
        recovery_ms,
    );
    report.alerts = alerts;
    report.traffic = traffic;
    report.payments = payments;
    report.database = findings.database.clone();
    report.scaling = scaling;
    report.process = findings.process.clone();
    report.claims = claims::claims(drill, &report, &findings, &samples.not_problem);
    Ok(report)
}

/// What the load's three phases (before, during and after the fault) left.
struct Phases {
    /// What the fault did and what was seen while it lasted.
    findings: inject::Findings,
    /// Request counters of the orders pool at each phase boundary (slow-replica's shares).
    counters: Vec<BTreeMap<String, u64>>,
    /// Every request's outcome.
    samples: Arc<Mutex<Samples>>,
    /// Fault start to the fault's end (the system whole again).
    recovery_ms: u128,
}

/// Load before the fault, during it (the fault injected), and after it.
async fn run_phases(
    ctx: &mut inject::Ctx,
    target: Target,
    options: &DrillOptions,
) -> Result<Phases, DrillError> {
    let mut counters = vec![requests_by_backend(ctx).await];
    let mut load = Load::start(ctx.http.clone(), target, options.clients);

    tokio::time::sleep(options.phase)
        .instrument(spans::phase("before"))
        .await;
    load.enter(Phase::During);
    counters.push(requests_by_backend(ctx).await);
    ctx.before_traffic = counters[1]
        .keys()
        .map(|address| {
            (
                address.clone(),
                delta(&counters[0], &counters[1], address).0,
            )
        })
        .collect();
    let fault_started = Instant::now();
    let fault_span = spans::phase("fault");
    let findings = inject::inject(ctx, &mut load)
        .instrument(fault_span.clone())
        .await;
    let recovery_ms = fault_started.elapsed().as_millis();
    load.enter(Phase::After);
    let findings = match findings {
        Ok(findings) => findings,
        Err(error) => {
            brigade_core::traces::mark_failed(&fault_span, &error.to_string());
            load.stop().await;
            return Err(error);
        }
    };
    drop(fault_span);
    counters.push(requests_by_backend(ctx).await);
    tokio::time::sleep(options.phase)
        .instrument(spans::phase("after"))
        .await;
    counters.push(requests_by_backend(ctx).await);
    Ok(Phases {
        findings,
        counters,
        samples: load.stop().await,
        recovery_ms,
    })
}

/// What a drill has before its load starts.
struct Prepared {
    /// What the fault phase needs.
    ctx: inject::Ctx,
    /// The load's target (the demo customer logged in, an order of the first shop's menu).
    target: Target,
    /// Watch's address, for the alerts that fired.
    watch: Option<String>,
    /// When the drill started.
    started_at: chrono::DateTime<chrono::Utc>,
}

/// Reads `up`'s status, logs the demo customer in and picks the order the load places.
async fn prepare(options: &DrillOptions, drill: Drill) -> Result<Prepared, DrillError> {
    let client::Start {
        status,
        public,
        http,
    } = client::start(&options.ops).await?;
    let watch = status.watch.clone();
    let passwords = client::DemoPasswords::new(options.password.clone(), &status);
    let customer = client::log_in(
        &http,
        &public,
        "customer@brigade.demo",
        &passwords.of("customer@brigade.demo")?,
    )
    .await?;
    let started_at = chrono::Utc::now();
    let target = resources::target(&http, &public, customer).await?;
    let ctx = inject::Ctx {
        drill,
        http,
        ops: options.ops.clone(),
        ops_token: options.ops_token.clone(),
        public,
        balancer_admin: status.balancer_admin.clone().unwrap_or_default(),
        passwords,
        hold: options
            .fault
            .unwrap_or_else(|| drill.default_hold(options.phase)),
        clients: options.clients,
        status,
        before_traffic: BTreeMap::new(),
    };
    Ok(Prepared {
        ctx,
        target,
        watch,
        started_at,
    })
}

/// slow-replica: the slowed replica's share of the orders pool's requests in each phase.
fn traffic_share(
    replica: &str,
    counters: &[BTreeMap<String, u64>],
    status: &crate::api::Status,
) -> TrafficShare {
    let mut traffic = TrafficShare {
        replica: replica.to_owned(),
        latency_ms: inject::SLOW_REPLICA_LATENCY_MS,
        fair_share: 1.0 / client::ready_primaries(status).max(1) as f64,
        ..TrafficShare::default()
    };
    for phase in 0..3 {
        let (mine, all) = delta(&counters[phase], &counters[phase + 1], replica);
        traffic.pool_requests[phase] = all;
        traffic.share[phase] = if all == 0 {
            0.0
        } else {
            mine as f64 / all as f64
        };
    }
    traffic
}

/// surge: the ready primaries at the end and the autoscaler's events since the start.
async fn scaling_at_end(
    http: &reqwest::Client,
    ops: &str,
    mut scaling: Scaling,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<Scaling, DrillError> {
    let now = client::status(http, ops).await?;
    scaling.replicas[2] = client::ready_primaries(&now);
    scaling.events = now
        .events
        .into_iter()
        .filter(|e| e.kind == EventKind::Autoscale && e.at >= started_at)
        .map(|e| e.message)
        .collect();
    Ok(scaling)
}

/// Requests the balancer sent to each orders backend so far.
async fn requests_by_backend(ctx: &inject::Ctx) -> BTreeMap<String, u64> {
    client::pool_backends(&ctx.http, &ctx.balancer_admin, "orders")
        .await
        .into_iter()
        .map(|b| (b.address, b.requests_total))
        .collect()
}

/// (requests to `replica`, requests to the pool) between two counter snapshots.
fn delta(from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>, replica: &str) -> (u64, u64) {
    let grown =
        |address: &String, now: &u64| now.saturating_sub(from.get(address).copied().unwrap_or(0));
    let all = to.iter().map(|(a, n)| grown(a, n)).sum();
    let mine = to
        .get_key_value(replica)
        .map(|(a, n)| grown(a, n))
        .unwrap_or(0);
    (mine, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_drill_parses_and_others_are_named_in_the_error() {
        for name in DRILLS {
            assert!(Drill::parse(name).is_ok(), "{name}");
        }
        let error = Drill::parse("flood").unwrap_err().to_string();
        for name in DRILLS {
            assert!(error.contains(name), "{error} names {name}");
        }
    }

    #[test]
    fn shares_are_counted_between_snapshots() {
        let from = BTreeMap::from([("a".to_owned(), 10), ("b".to_owned(), 10)]);
        let to = BTreeMap::from([
            ("a".to_owned(), 12),
            ("b".to_owned(), 28),
            ("c".to_owned(), 10),
        ]);
        assert_eq!(delta(&from, &to, "a"), (2, 30));
        assert_eq!(delta(&from, &to, "c"), (10, 30));
    }
}
