//! What `brigade up` runs: the options a user sets and the plan derived from them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `brigade up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The `brigade` binary children run (normally this very executable).
    pub binary: PathBuf,
    /// Where the SQLite file, generated configs and central logs live.
    pub data_dir: PathBuf,
    /// The public address (the balancer).
    pub listen: SocketAddr,
    /// The ops API of the supervisor.
    pub ops_listen: SocketAddr,
    /// The pools and their replica counts.
    pub pools: Vec<PoolPlan>,
    /// Load the demo data on first start.
    pub demo: bool,
    /// Run `brigade watch` beside the services.
    pub watch: bool,
    /// Alert rule files watch loads besides brigade's own (compiled into the binary).
    pub alert_rules: Vec<PathBuf>,
    /// First delay before restarting a crashed child; doubles per crash up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    /// Longest delay between restarts.
    pub max_backoff_ms: u64,
    /// The off-peak jobs (`[jobs]` of up.toml).
    pub jobs: crate::JobsPlan,
    /// TLS on the public port; `None`: plain http.
    pub tls: Option<crate::PublicTls>,
    /// Continuous backups of the SQLite store (`[backup]` of up.toml); `None`: off, or the
    /// store is PostgreSQL.
    pub backup: Option<crate::ContinuousBackup>,
    /// A local streaming standby for the replicas' stale-tolerant reads (`--local-standby`);
    /// `None`: none, or the user's own `storage.read_url`.
    pub standby: Option<crate::standby::LocalStandby>,
}

impl UpOptions {
    /// The default topology: orders (3 replicas + 1 backup) and kitchen (1 replica) pools.
    pub fn new(binary: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            binary,
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            pools: vec![
                PoolPlan {
                    name: "orders".into(),
                    path_prefix: None,
                    replicas: 3,
                    backups: 1,
                    autoscale: None,
                },
                PoolPlan {
                    name: "kitchen".into(),
                    path_prefix: Some("/api/v1/kitchen".into()),
                    replicas: 1,
                    backups: 0,
                    autoscale: None,
                },
            ],
            demo: true,
            watch: true,
            alert_rules: Vec::new(),
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
            jobs: crate::JobsPlan::default(),
            tls: None,
            backup: None,
            standby: None,
        }
    }
}

/// One pool of replicas behind the balancer.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    /// Pool name (`orders`, `kitchen`).
    pub name: String,
    /// Requests under this prefix go to the pool; `None` makes it the default route.
    pub path_prefix: Option<String>,
    /// Primary replicas.
    pub replicas: usize,
    /// Backup replicas: traffic only while no primary is healthy.
    pub backups: usize,
    /// Scale the primaries with load.
    pub autoscale: Option<Autoscale>,
}

/// Autoscaling of a pool, with Kubernetes HPA semantics:
/// `desired = ceil(current × metric / target)`, no change within `tolerance`, clamped to
/// `min..=max`; up at once, down only to the highest recommendation of the last
/// `scale_down_window` (so a dip in load does not flap replicas away).
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscale {
    /// Fewest primaries.
    pub min: usize,
    /// Most primaries.
    pub max: usize,
    /// What is measured per replica.
    pub metric: ScaleMetric,
    /// The metric's target value per replica: in-flight requests, or CPU percent of one core.
    pub target: f64,
    /// Relative deviation from the target that causes no change (HPA default 0.1).
    pub tolerance: f64,
    /// How often the metric is read.
    pub interval: std::time::Duration,
    /// Scale down only to the highest recommendation within this window (HPA default 5 min).
    pub scale_down_window: std::time::Duration,
}

/// The per-replica metric an autoscaler follows (HPA's resource and pods metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMetric {
    /// Requests the balancer has in flight to the replica: reacts at once to queueing, whatever
    /// the requests cost.
    InFlight,
    /// CPU time the replica's process used over the last interval, in percent of one core
    /// (HPA's CPU utilization, read from the operating system instead of cAdvisor).
    Cpu,
}

impl ScaleMetric {
    /// The name used in flags, events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::InFlight => "in-flight",
            Self::Cpu => "cpu",
        }
    }
}

impl Default for Autoscale {
    fn default() -> Self {
        Self {
            min: 3,
            max: 8,
            metric: ScaleMetric::InFlight,
            target: 8.0,
            tolerance: 0.1,
            interval: std::time::Duration::from_secs(5),
            scale_down_window: std::time::Duration::from_secs(300),
        }
    }
}
