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
    /// First delay before restarting a crashed child; doubles per crash up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    /// Longest delay between restarts.
    pub max_backoff_ms: u64,
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
                },
                PoolPlan {
                    name: "kitchen".into(),
                    path_prefix: Some("/api/v1/kitchen".into()),
                    replicas: 1,
                    backups: 0,
                },
            ],
            demo: true,
            watch: true,
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

/// One pool of replicas behind the balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    /// Pool name (`orders`, `kitchen`).
    pub name: String,
    /// Requests under this prefix go to the pool; `None` makes it the default route.
    pub path_prefix: Option<String>,
    /// Primary replicas.
    pub replicas: usize,
    /// Backup replicas: traffic only while no primary is healthy.
    pub backups: usize,
}
