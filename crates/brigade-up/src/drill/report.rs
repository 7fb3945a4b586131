//! The drill's report: what the clients saw, what the drill measured, and the claims checked
//! against both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::client::Reconciled;
use super::load::{Phase, Samples};

/// One claim of a drill and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// What is claimed, in words.
    pub claim: String,
    /// Whether it held.
    pub holds: bool,
    /// The numbers behind the verdict.
    pub detail: String,
}

impl Claim {
    /// A claim with its verdict and evidence.
    pub fn new(claim: impl Into<String>, holds: bool, detail: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
            holds,
            detail: detail.into(),
        }
    }
}

/// slow-replica: how much of the orders pool's traffic the slow replica got, from the
/// balancer's per-backend request counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrafficShare {
    /// The slowed replica's address.
    pub replica: String,
    /// The latency injected on it.
    pub latency_ms: u64,
    /// Its share of the pool's requests before, during and after the fault (0.0–1.0).
    pub share: [f64; 3],
    /// Its share if the primaries split the requests evenly (1 / primaries).
    pub fair_share: f64,
    /// Requests the pool got per phase.
    pub pool_requests: [u64; 3],
}

/// payment-outage: what the payment rows say, read back from the audit trail.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PaymentCheck {
    /// Orders placed during the drill (acknowledged or not).
    pub orders: usize,
    /// Their payments by last status (`authorized`, `failed`, `voided`, …).
    pub payments: BTreeMap<String, usize>,
    /// Payments held or taken (`authorized`, `capturing`, `captured`) for orders the customer
    /// was told failed. Must be 0.
    pub charged_but_failed: usize,
    /// Payments of failed orders still being released (`voiding`) when the drill ended.
    pub releasing: usize,
    /// Whether every orders replica's payment circuit breaker was closed again.
    pub breakers_closed: bool,
}

/// db-outage: the database link and readiness.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatabaseCheck {
    /// Connections cut (PostgreSQL) or writes locked out (SQLite).
    pub mode: crate::api::LinkMode,
    /// Whether the balancer saw an orders replica unready during the outage.
    pub unready_seen: bool,
    /// Whether every orders replica was ready again after.
    pub ready_after: bool,
}

/// surge: the orders pool's replicas and the autoscaler's decisions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scaling {
    /// Clients during the surge (5 × the usual).
    pub clients: usize,
    /// Ready primaries before, at the peak and at the end.
    pub replicas: [usize; 3],
    /// The autoscaler's events during the drill.
    pub events: Vec<String>,
}

/// Per phase (before, during, after the fault): the trace id of the slowest request and of the
/// first failed ones (see [`super::load::FAILED_TRACES_KEPT`]). Each request of the load
/// started its own trace, so these open in the ops dashboard's Traces view
/// (`http://OPS/#trace=<id>`) or `GET /api/traces/<id>` while watch keeps them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTraces {
    /// The slowest request's trace id per phase (`None` for a phase without requests).
    pub slowest: [Option<String>; 3],
    /// The first failed requests' trace ids per phase.
    pub failed: [Vec<String>; 3],
}

/// The outcome of a drill.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The drill.
    pub drill: String,
    /// Requests sent.
    pub sent: usize,
    /// Requests that did not succeed.
    pub failed: usize,
    /// p50 and p99 in milliseconds before, during and after the fault.
    pub latency_ms: [(f64, f64); 3],
    /// The slowest answer per phase in milliseconds.
    pub slowest_ms: [f64; 3],
    /// Failures per phase.
    pub failed_by_phase: [usize; 3],
    /// Failures per phase by HTTP status or transport error.
    pub failed_statuses: [BTreeMap<String, usize>; 3],
    /// Failed HTTP answers that were not `application/problem+json`.
    pub not_problem_json: usize,
    /// How long the fault was held.
    pub fault_ms: u128,
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
    pub failures: BTreeMap<String, usize>,
    /// Trace ids of the requests worth opening, per phase.
    pub traces: PhaseTraces,
    /// slow-replica's measurements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficShare>,
    /// payment-outage's measurements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments: Option<PaymentCheck>,
    /// db-outage's measurements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseCheck>,
    /// surge's measurements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// kill-balancer's and kill-watch's measurements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<super::checks::ProcessCheck>,
    /// restore's measurements: RTO and RPO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<super::checks::RestoreCheck>,
    /// The drill's claims and whether each held.
    pub claims: Vec<Claim>,
}

impl Report {
    /// What every drill reports alike: what the load's clients saw (latencies summarised in
    /// place) and what became of their acknowledged orders. The drill's own measurements,
    /// alerts and claims are left empty for it to fill.
    pub fn of_load(
        drill: &str,
        samples: &mut Samples,
        orders: &Reconciled,
        fault_ms: u128,
        recovery_ms: u128,
    ) -> Self {
        let (latency_ms, slowest_ms) = latency_summary(&mut samples.latencies);
        Self {
            drill: drill.to_owned(),
            sent: samples.latencies.iter().map(Vec::len).sum(),
            failed: samples.failed.iter().sum(),
            latency_ms,
            slowest_ms,
            failed_by_phase: samples.failed,
            failed_statuses: std::mem::take(&mut samples.statuses),
            not_problem_json: samples.not_problem.iter().sum(),
            fault_ms,
            recovery_ms,
            acknowledged: orders.acknowledged,
            lost: orders.lost,
            duplicated: orders.duplicated,
            alerts: Vec::new(),
            failures: samples.reasons.clone(),
            traces: PhaseTraces {
                slowest: std::mem::take(&mut samples.slowest_trace).map(|t| t.map(|(_, id)| id)),
                failed: std::mem::take(&mut samples.failed_traces),
            },
            traffic: None,
            payments: None,
            database: None,
            scaling: None,
            process: None,
            restore: None,
            claims: Vec::new(),
        }
    }

    /// The fault phase's traces worth opening (the slowest request, the first failed ones).
    fn write_traces(&self, out: &mut String) {
        let during = Phase::During as usize;
        if let Some(slowest) = &self.traces.slowest[during] {
            let _ = writeln!(
                out,
                "  trace of the slowest request during the fault: {slowest} ({:.0} ms)",
                self.slowest_ms[during]
            );
        }
        if !self.traces.failed[during].is_empty() {
            let _ = writeln!(
                out,
                "  traces of failed requests during the fault: {}",
                self.traces.failed[during].join(", ")
            );
        }
    }

    /// Whether every claim of the drill holds.
    pub fn passed(&self) -> bool {
        self.claims.iter().all(|claim| claim.holds)
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let mut out = format!(
            "drill {}\n  requests {}  failed {}  fault held {} ms  recovered after {} ms\n",
            self.drill, self.sent, self.failed, self.fault_ms, self.recovery_ms
        );
        for (i, name) in ["before", "during", "after"].iter().enumerate() {
            let _ = writeln!(
                out,
                "  {name:<8} p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms   failed {}",
                self.latency_ms[i].0,
                self.latency_ms[i].1,
                self.slowest_ms[i],
                self.failed_by_phase[i]
            );
        }
        let _ = writeln!(
            out,
            "  orders acknowledged {}  lost {}  duplicated {}",
            self.acknowledged, self.lost, self.duplicated
        );
        self.write_findings(&mut out);
        let _ = writeln!(
            out,
            "  alerts fired: {}",
            if self.alerts.is_empty() {
                "none".to_owned()
            } else {
                self.alerts.join(", ")
            }
        );
        for (reason, n) in &self.failures {
            let _ = writeln!(out, "  failure: {n} × {reason}");
        }
        self.write_traces(&mut out);
        for claim in &self.claims {
            let _ = writeln!(
                out,
                "  [{}] {} ({})",
                if claim.holds { "ok" } else { "NO" },
                claim.claim,
                claim.detail
            );
        }
        let _ = writeln!(
            out,
            "  verdict: {}",
            if self.passed() { "PASSED" } else { "FAILED" }
        );
        if let Some(restore) = &self.restore {
            out.push_str(&restore.summary());
        }
        out
    }

    /// The lines of what the drill's own fault found: the slow replica's share, the payments,
    /// the database link, the surge, the restore, the killed process.
    fn write_findings(&self, out: &mut String) {
        if let Some(t) = &self.traffic {
            let _ = writeln!(
                out,
                "  slow replica {} (+{} ms): share of the pool before {:.1} %, during {:.1} %, after {:.1} % (even split {:.1} %)",
                t.replica,
                t.latency_ms,
                t.share[0] * 100.0,
                t.share[1] * 100.0,
                t.share[2] * 100.0,
                t.fair_share * 100.0
            );
        }
        if let Some(p) = &self.payments {
            let _ = writeln!(
                out,
                "  payments of {} orders: {:?}; charged but failed {}; releasing {}; breakers closed {}",
                p.orders, p.payments, p.charged_but_failed, p.releasing, p.breakers_closed
            );
        }
        if let Some(d) = &self.database {
            let _ = writeln!(
                out,
                "  database link {}: unready seen {}, ready after {}",
                d.mode.as_str(),
                d.unready_seen,
                d.ready_after
            );
        }
        if let Some(s) = &self.scaling {
            let _ = writeln!(
                out,
                "  surge of {} clients: orders replicas before {}, peak {}, after {}",
                s.clients, s.replicas[0], s.replicas[1], s.replicas[2]
            );
            for event in &s.events {
                let _ = writeln!(out, "  autoscaler: {event}");
            }
        }
        if let Some(pg) = self.restore.as_ref().and_then(|r| r.postgres.as_ref()) {
            let at = |ms: Option<u64>| ms.map_or("-".to_owned(), |ms| format!("+{ms} ms"));
            let _ = writeln!(
                out,
                "  cluster lost (archive covered {}); stopped {}, data directory deleted {}, \
                 restored {}, started {}, open for writes {}",
                pg.archived_wal.as_deref().unwrap_or("nothing"),
                at(pg.stopped_ms),
                at(pg.deleted_ms),
                at(pg.restored_ms),
                at(pg.started_ms),
                at(pg.open_ms)
            );
        } else if let Some(r) = &self.restore {
            let _ = writeln!(
                out,
                "  store {} deleted; up noticed after {} ms, replicas stopped +{} ms, backup {} \
                 ({} ms old) in place +{} ms, replicas ready +{} ms",
                r.database,
                r.detected_ms,
                r.steps_ms[0].unwrap_or_default(),
                r.backup.as_deref().unwrap_or("none"),
                r.backup_age_ms.unwrap_or_default(),
                r.steps_ms[1].unwrap_or_default(),
                r.steps_ms[2].unwrap_or_default()
            );
        }
        if let Some(p) = &self.process {
            let _ = writeln!(
                out,
                "  {} killed: answering again after {} ms, {} probe connections refused",
                p.instance, p.back_ms, p.refused
            );
        }
    }
}

/// Median and p99, and the slowest request, of each phase's latencies (sorted in place).
pub fn latency_summary(latencies: &mut [Vec<Duration>; 3]) -> ([(f64, f64); 3], [f64; 3]) {
    let mut latency_ms = [(0.0, 0.0); 3];
    let mut slowest_ms = [0.0; 3];
    for (i, latencies) in latencies.iter_mut().enumerate() {
        latencies.sort();
        latency_ms[i] = (percentile(latencies, 0.5), percentile(latencies, 0.99));
        slowest_ms[i] = percentile(latencies, 1.0);
    }
    (latency_ms, slowest_ms)
}

/// The claims every drill makes about the orders it saw acknowledged.
pub fn order_claims(report: &Report) -> Vec<Claim> {
    vec![
        Claim::new(
            "no acknowledged order lost",
            report.lost == 0,
            format!("{} of {} missing", report.lost, report.acknowledged),
        ),
        Claim::new(
            "no order placed twice",
            report.duplicated == 0,
            format!("{} duplicated", report.duplicated),
        ),
    ]
}

/// The `p` quantile of `sorted` in milliseconds (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
