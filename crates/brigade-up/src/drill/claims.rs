//! The claims a fault drill checks against its report: what must hold for the architecture's
//! promise under that fault (no request failed, failures only during the fault, problem+json
//! and never a 500, traffic moved, the port back in time, …).

use super::processes::ProcessCheck;
use super::report::{self, Claim, PaymentCheck, Report, Scaling, TrafficShare};
use super::{Drill, inject, processes};

/// The drill's claims, checked against the report.
pub(super) fn claims(
    drill: Drill,
    report: &Report,
    findings: &inject::Findings,
    not_problem: &[usize; 3],
) -> Vec<Claim> {
    let failed = &report.failed_by_phase;
    let mut claims = report::order_claims(report);
    claims.push(Claim::new(
        "the system was whole again",
        findings.recovered,
        format!("{} after {} ms", findings.recovery, report.recovery_ms),
    ));
    let none_failed = Claim::new(
        "no request failed",
        report.failed == 0,
        format!(
            "{} of {} failed: {:?}",
            report.failed, report.sent, report.failures
        ),
    );
    let only_during = Claim::new(
        "failures only during the fault",
        failed[0] == 0 && failed[2] == 0,
        format!("failed before {}, after {}", failed[0], failed[2]),
    );
    let felt = Claim::new(
        "the fault was felt",
        failed[1] > 0,
        format!("{} requests failed during it", failed[1]),
    );
    let clean = |allowed: &[&str]| only_problems_during(report, not_problem, allowed);
    match drill {
        Drill::KillReplica | Drill::RollingRestart => claims.push(none_failed),
        Drill::ErrorBurst => claims.push(only_during),
        Drill::SlowReplica => {
            claims.push(none_failed);
            claims.extend(report.traffic.as_ref().map(traffic_moved));
        }
        Drill::PaymentOutage => {
            claims.extend([felt, only_during, clean(&["502", "503"])]);
            claims.extend(report.payments.iter().flat_map(payments_settled));
        }
        Drill::DbOutage => {
            // Not "felt": with SQLite the balancer's retries may ride out a short lock.
            claims.extend([only_during, clean(&["503"])]);
            if let Some(database) = &report.database
                && database.mode == crate::api::LinkMode::PostgresRelay
            {
                claims.push(Claim::new(
                    "readiness reflected the outage",
                    database.unready_seen,
                    "the balancer saw orders replicas unready during it",
                ));
            }
        }
        Drill::KillBalancer => claims.extend(report.process.iter().flat_map(port_back)),
        Drill::KillWatch => {
            claims.push(none_failed);
            claims.extend(report.process.as_ref().map(watch_back));
        }
        Drill::Surge => {
            claims.push(none_failed);
            claims.extend(report.scaling.as_ref().map(scaled_up));
        }
    }
    claims
}

/// During the fault every failure was one of the `allowed` statuses as problem+json, never a
/// 500, and nothing hung.
fn only_problems_during(report: &Report, not_problem: &[usize; 3], allowed: &[&str]) -> Claim {
    let during = &report.failed_statuses[1];
    let ok = during
        .keys()
        .all(|status| allowed.contains(&status.as_str()))
        && not_problem[1] == 0;
    Claim::new(
        format!(
            "answered {} problem+json only, never 500, no hang",
            allowed.join("/")
        ),
        ok,
        format!(
            "during: {during:?}, {} not problem+json, slowest {:.0} ms",
            not_problem[1], report.slowest_ms[1]
        ),
    )
}

/// slow-replica: the balancer sent the slow replica at most half its even share.
fn traffic_moved(traffic: &TrafficShare) -> Claim {
    Claim::new(
        "the balancer moved traffic away from the slow replica",
        traffic.pool_requests[1] > 0 && traffic.share[1] <= traffic.fair_share / 2.0,
        format!(
            "share during {:.1} %, at most half the even split {:.1} % (before {:.1} %)",
            traffic.share[1] * 100.0,
            traffic.fair_share * 100.0,
            traffic.share[0] * 100.0
        ),
    )
}

/// payment-outage: no order charged but failed, every hold of a failed order released.
fn payments_settled(payments: &PaymentCheck) -> [Claim; 2] {
    [
        Claim::new(
            "no order left charged but failed",
            payments.charged_but_failed == 0,
            format!(
                "{} charged but failed; payments {:?}",
                payments.charged_but_failed, payments.payments
            ),
        ),
        Claim::new(
            "every hold of a failed order released",
            payments.releasing == 0,
            format!("{} still releasing", payments.releasing),
        ),
    ]
}

/// kill-balancer: the public port served again in time and refused no connection.
fn port_back(process: &ProcessCheck) -> [Claim; 2] {
    [
        Claim::new(
            format!(
                "the public port served again within {} ms",
                processes::SERVING_AGAIN_LIMIT.as_millis()
            ),
            process.back_ms <= processes::SERVING_AGAIN_LIMIT.as_millis(),
            format!("after {} ms", process.back_ms),
        ),
        Claim::new(
            "no connection refused",
            process.refused == 0,
            format!("{} probe connections refused", process.refused),
        ),
    ]
}

/// kill-watch: watch answered again in time.
fn watch_back(process: &ProcessCheck) -> Claim {
    Claim::new(
        format!(
            "watch answered again within {} s",
            processes::WATCH_BACK_LIMIT.as_secs()
        ),
        process.back_ms <= processes::WATCH_BACK_LIMIT.as_millis(),
        format!("after {} ms", process.back_ms),
    )
}

/// surge: the autoscaler added replicas.
fn scaled_up(scaling: &Scaling) -> Claim {
    Claim::new(
        "the autoscaler scaled the orders pool up",
        scaling.replicas[1] > scaling.replicas[0],
        format!(
            "ready replicas before {}, peak {}, after {}",
            scaling.replicas[0], scaling.replicas[1], scaling.replicas[2]
        ),
    )
}
