//! The autoscaler of a pool: Kubernetes HPA's algorithm over the balancer's in-flight counts.

use std::collections::VecDeque;
use std::time::Instant;

use brigade_core::Shutdown;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::pool::PoolCommand;
use crate::supervisor::Shared;
use crate::topology::Autoscale;

/// HPA's recommendation: `ceil(current × metric / target)`, unchanged within the tolerance,
/// clamped to the bounds.
pub fn recommend(policy: &Autoscale, current: usize, metric_per_replica: f64) -> usize {
    let ratio = metric_per_replica / policy.target_in_flight;
    let desired = if (ratio - 1.0).abs() <= policy.tolerance {
        current
    } else {
        (current as f64 * ratio).ceil() as usize
    };
    desired.clamp(policy.min, policy.max)
}

/// Recommendations of the scale-down window; the highest one wins (HPA's stabilization).
#[derive(Debug, Default)]
pub struct Stabilizer {
    recent: VecDeque<(Instant, usize)>,
}

impl Stabilizer {
    /// Records a recommendation and returns the replicas to run: up at once, down only as far
    /// as every recommendation within `window` allows.
    pub fn decide(
        &mut self,
        now: Instant,
        window: std::time::Duration,
        current: usize,
        recommended: usize,
    ) -> usize {
        self.recent.push_back((now, recommended));
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            self.recent.pop_front();
        }
        if recommended >= current {
            return recommended;
        }
        self.recent
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(current)
            .min(current)
    }
}

/// Reads the pool's in-flight requests every `interval` and scales it. Every decision is an
/// event with its inputs.
pub async fn run(
    pool: String,
    policy: Autoscale,
    initial: usize,
    admin_address: String,
    commands: mpsc::Sender<PoolCommand>,
    shared: Shared,
    stop: Shutdown,
) {
    let http = reqwest::Client::new();
    let url = format!("http://{admin_address}/admin/pools/{pool}");
    let mut current = initial;
    let mut stabilizer = Stabilizer::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(policy.interval) => {}
            () = stop.wait() => return,
        }
        let Ok(response) = http.get(&url).send().await else {
            continue;
        };
        let Ok(view) = response.json::<Value>().await else {
            continue;
        };
        let primaries: Vec<&Value> = view["backends"]
            .as_array()
            .map(|backends| backends.iter().filter(|b| b["backup"] != true).collect())
            .unwrap_or_default();
        if primaries.is_empty() {
            continue;
        }
        let in_flight: f64 = primaries
            .iter()
            .filter_map(|b| b["in_flight"].as_f64())
            .sum();
        let per_replica = in_flight / primaries.len() as f64;
        let recommended = recommend(&policy, current, per_replica);
        let desired = stabilizer.decide(
            Instant::now(),
            policy.scale_down_window,
            current,
            recommended,
        );
        if desired != current {
            let reason = format!(
                "in-flight {in_flight:.0} over {} replicas = {per_replica:.2} per replica, target {}, \
                 recommended {recommended}, stabilized {desired}",
                primaries.len(),
                policy.target_in_flight
            );
            if commands
                .send(PoolCommand::Scale {
                    replicas: desired,
                    reason: reason.clone(),
                })
                .await
                .is_err()
            {
                return;
            }
            shared.events.push(
                "info",
                "autoscale",
                None,
                format!("pool {pool}: {current} → {desired}: {reason}"),
            );
            current = desired;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> Autoscale {
        Autoscale {
            min: 2,
            max: 10,
            target_in_flight: 4.0,
            ..Autoscale::default()
        }
    }

    #[test]
    fn recommendations_follow_the_hpa_formula() {
        assert_eq!(
            recommend(&policy(), 2, 8.0),
            4,
            "double the load, double the replicas"
        );
        assert_eq!(recommend(&policy(), 3, 4.3), 3, "within the 10 % tolerance");
        assert_eq!(recommend(&policy(), 3, 5.0), 4, "ceil(3 × 1.25)");
        assert_eq!(recommend(&policy(), 4, 0.0), 2, "never below min");
        assert_eq!(recommend(&policy(), 4, 100.0), 10, "never above max");
    }

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut stabilizer = Stabilizer::default();
        let window = Duration::from_secs(60);
        let start = Instant::now();
        assert_eq!(stabilizer.decide(start, window, 2, 6), 6, "up at once");
        assert_eq!(
            stabilizer.decide(start + Duration::from_secs(10), window, 6, 2),
            6,
            "high recommendation still in the window"
        );
        assert_eq!(
            stabilizer.decide(start + Duration::from_secs(50), window, 6, 2),
            6
        );
        assert_eq!(
            stabilizer.decide(start + Duration::from_secs(71), window, 6, 2),
            2,
            "the peak left the window"
        );
    }
}
