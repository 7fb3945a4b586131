//! brigade-up: the supervisor behind `brigade up`, which runs the whole architecture on one
//! machine the way Kubernetes keeps a Deployment running.
//!
//! ```text
//! brigade up [--data-dir DIR] [--port 8080] [--ops-port 8081] [--replicas 3] [--no-demo]
//!            [--tls-cert FILE --tls-key FILE | --tls-self-signed] [--local-standby]
//! ```
//! It starts, as child processes of itself: `brigade balance` on the public port with an
//! `orders` and a `kitchen` pool (path-routed), replicas of `brigade serve` per pool (plus one
//! backup replica for orders), and `brigade watch` scraping all of them; it serves its own ops
//! API. Children listen on free loopback ports (they bind port 0 and report the address in
//! their `listening` log line), join the balancer through its admin API only once ready, leave
//! it before they stop, are restarted with exponential backoff when they crash, and stop with
//! the supervisor — even when it is killed, because each child treats the end of its standard
//! input (a pipe the supervisor holds) as a termination signal. Its scheduler runs off-peak
//! jobs (cache warm-up, the daily sales report, SQLite backups) on cron schedules and when the
//! replicas are quiet. With `--local-standby` and a PostgreSQL store it also makes and runs a
//! streaming standby of the primary the replicas read from ([`standby`]).

pub mod api;
mod autoscale;
mod backups;
mod balancer;
mod child;
mod child_state;
mod configs;
pub mod dashboard;
mod db_link;
pub mod demo_accounts;
pub mod drill;
pub mod errors;
mod events;
pub mod jobs;
mod kinds;
mod listeners;
pub mod logs;
mod metrics;
mod ops;
pub mod ops_guard;
mod pool;
mod problem;
mod public;
mod scheduler;
mod shared;
pub mod standby;
pub mod status_view;
mod supervise;
mod supervisor;
mod tied;
mod tls;
mod topology;
mod trace_env;

pub use backups::{BackupSection, ContinuousBackup};
pub use dashboard::Dashboard;
pub use events::{Event, Events};
pub use jobs::{AutoscaleSection, JobKind, JobsConfigError, JobsPlan, UpFile};
pub use pool::PoolCommand;
pub use public::{PublicEndpoint, PublicError};
pub use supervisor::{Supervisor, UpError};
pub use tls::PublicTls;
pub use topology::{Autoscale, PoolPlan, ScaleMetric, UpOptions};
