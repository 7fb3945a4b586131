//! The autoscaler of a pool: Kubernetes HPA's algorithm over a per-replica metric, either the
//! balancer's in-flight counts or the replicas' CPU use read from the operating system.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use brigade_balance::api::{BackendView, PoolView};
use brigade_core::Shutdown;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;

use crate::api::{EventKind, EventLevel};
use crate::pool::PoolCommand;
use crate::shared::Shared;
use crate::topology::{Autoscale, ScaleMetric};

/// HPA's recommendation: `ceil(current × metric / target)`, unchanged within the tolerance,
/// clamped to the bounds.
pub fn recommend(policy: &Autoscale, current: usize, metric_per_replica: f64) -> usize {
    let ratio = metric_per_replica / policy.target;
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

/// CPU use of processes between two readings, in percent of one core.
#[derive(Default)]
pub struct CpuMeter {
    system: Option<System>,
    last: HashMap<u32, (Instant, u64)>,
}

impl CpuMeter {
    /// Percent of one core each process used since this meter last read it. A process read
    /// for the first time has no interval yet and is left out (as HPA leaves out pods without
    /// a complete sample).
    pub fn read(&mut self, pids: &[u32]) -> HashMap<u32, f64> {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        let Some(system) = self.system.as_mut() else {
            return HashMap::new();
        };
        let wanted: Vec<Pid> = pids.iter().map(|&pid| Pid::from_u32(pid)).collect();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&wanted),
            true,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        let now = Instant::now();
        let mut percent = HashMap::new();
        for &pid in pids {
            let Some(process) = system.process(Pid::from_u32(pid)) else {
                self.last.remove(&pid);
                continue;
            };
            let used_ms = process.accumulated_cpu_time();
            if let Some((then, before)) = self.last.insert(pid, (now, used_ms)) {
                let wall_ms = now.duration_since(then).as_secs_f64() * 1000.0;
                if wall_ms > 0.0 {
                    percent.insert(pid, used_ms.saturating_sub(before) as f64 / wall_ms * 100.0);
                }
            }
        }
        self.last.retain(|pid, _| pids.contains(pid));
        percent
    }
}

/// Where a pool's autoscaler reads its metric.
struct Reader {
    pool: String,
    http: reqwest::Client,
    url: String,
    cpu: CpuMeter,
}

/// One reading: the metric summed over the primaries that reported it, and how many did.
struct Reading {
    total: f64,
    replicas: usize,
}

impl Reader {
    async fn read(&mut self, metric: ScaleMetric, shared: &Shared) -> Option<Reading> {
        let view: PoolView = self
            .http
            .get(&self.url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let primaries: Vec<&BackendView> = view.primaries().collect();
        if primaries.is_empty() {
            return None;
        }
        match metric {
            ScaleMetric::InFlight => Some(Reading {
                total: primaries.iter().map(|b| b.in_flight as f64).sum(),
                replicas: primaries.len(),
            }),
            ScaleMetric::Cpu => {
                let addresses: Vec<&str> = primaries.iter().map(|b| b.address.as_str()).collect();
                let pids: Vec<u32> = shared
                    .status()
                    .children
                    .iter()
                    .filter(|c| c.pool.as_deref() == Some(self.pool.as_str()) && !c.backup)
                    .filter(|c| c.address.as_deref().is_some_and(|a| addresses.contains(&a)))
                    .filter_map(|c| c.pid)
                    .collect();
                let percent = self.cpu.read(&pids);
                (!percent.is_empty()).then(|| Reading {
                    total: percent.values().sum(),
                    replicas: percent.len(),
                })
            }
        }
    }
}

/// Reads the pool's metric every `interval` and scales it. Every decision is an event with
/// its inputs.
pub async fn run(
    pool: String,
    policy: Autoscale,
    initial: usize,
    admin_address: String,
    commands: mpsc::Sender<PoolCommand>,
    shared: Shared,
    stop: Shutdown,
) {
    let mut reader = Reader {
        pool: pool.clone(),
        http: reqwest::Client::new(),
        url: format!("http://{admin_address}/admin/pools/{pool}"),
        cpu: CpuMeter::default(),
    };
    let metric = policy.metric;
    let mut current = initial;
    let mut stabilizer = Stabilizer::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(policy.interval) => {}
            () = stop.wait() => return,
        }
        let Some(reading) = reader.read(metric, &shared).await else {
            continue;
        };
        let per_replica = reading.total / reading.replicas as f64;
        let recommended = recommend(&policy, current, per_replica);
        let desired = stabilizer.decide(
            Instant::now(),
            policy.scale_down_window,
            current,
            recommended,
        );
        crate::metrics::autoscaled(&pool, per_replica, current, desired);
        if desired != current {
            let reason = format!(
                "{} {:.0} over {} replicas = {per_replica:.2} per replica, target {}, \
                 recommended {recommended}, stabilized {desired}",
                metric.name(),
                reading.total,
                reading.replicas,
                policy.target
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
                EventLevel::Info,
                EventKind::Autoscale,
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
            target: 4.0,
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

    #[test]
    fn cpu_meter_measures_a_busy_process() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh runs");
        let pid = child.id();
        let mut meter = CpuMeter::default();
        assert!(
            meter.read(&[pid]).is_empty(),
            "the first reading has no interval yet"
        );
        std::thread::sleep(Duration::from_millis(600));
        let busy = meter.read(&[pid]);
        let _ = child.kill();
        let _ = child.wait();
        let percent = busy.get(&pid).copied().expect("a second reading measures");
        // A busy loop uses up to one core; on a loaded machine it gets its share of one.
        assert!(
            percent > 5.0 && percent < 130.0,
            "a busy loop measured {percent:.1} %"
        );
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let idle = sleeper.id();
        meter.read(&[idle]);
        std::thread::sleep(Duration::from_millis(300));
        let measured = meter.read(&[idle]);
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(
            measured[&idle] < 5.0,
            "a sleeping process measured {:.1} %",
            measured[&idle]
        );
    }
}
