//! The supervisor: starts the topology, keeps every replica running, stops it all in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::Shutdown;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::balancer::BalancerAdmin;
use crate::child::{self, ChildSpec, Running};
use crate::events::Events;
use crate::logs::{self, LogSink};
use crate::ops::{self, Status};
use crate::pool::{self, PoolCommand, PoolContext, READY_TIMEOUT, STOP_GRACE};
use crate::topology::{PoolPlan, UpOptions};

/// Why `brigade up` could not run.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The data directory or a generated file could not be written.
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        /// What.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The ops port is taken.
    #[error("cannot listen on the ops address {address}: {source}")]
    OpsBind {
        /// `--ops-port`.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A part that everything depends on did not start.
    #[error(transparent)]
    Child(#[from] child::ChildError),
    /// The replicas' database link could not be set up.
    #[error(transparent)]
    DbLink(#[from] crate::db_link::DbLinkError),
    /// A preparation step (`brigade migrate`, `brigade demo-data`) failed.
    #[error("brigade {command} failed ({reason})")]
    Step {
        /// The subcommand.
        command: &'static str,
        /// Why: its exit status or the spawn error.
        reason: String,
    },
}

/// A child as the ops API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChildStatus {
    /// `serve`, `balance` or `watch`.
    pub service: &'static str,
    /// Unique name.
    pub instance: String,
    /// Its pool (replicas only).
    pub pool: Option<String>,
    /// Backup replica.
    pub backup: bool,
    /// `starting`, `ready`, `restarting`, `crash_loop`, `stopping`, `stopped`.
    pub state: &'static str,
    /// Where it listens.
    pub address: Option<String>,
    /// Its process id.
    pub pid: Option<u32>,
    /// How often it was restarted.
    pub restarts: u32,
}

/// Where the public listener, the balancer's admin API and watch are.
type Addresses = (Option<String>, Option<String>, Option<String>);

/// State shared by the supervisor's tasks and the ops API.
#[derive(Clone, Default)]
pub struct Shared {
    children: Arc<Mutex<BTreeMap<String, ChildStatus>>>,
    addresses: Arc<Mutex<Addresses>>,
    pools: Arc<Mutex<BTreeMap<String, mpsc::Sender<PoolCommand>>>>,
    db_link: Arc<Mutex<Option<crate::db_link::DbLink>>>,
    /// Recent events.
    pub events: Events,
    /// The off-peak jobs, for the ops API.
    pub(crate) jobs: crate::scheduler::JobBoard,
}

impl Shared {
    /// The command channel of a pool's manager.
    pub fn pool(&self, name: &str) -> Option<mpsc::Sender<PoolCommand>> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The replicas' database link (cut by the db-outage drill), once set up.
    pub(crate) fn db_link(&self) -> Option<crate::db_link::DbLink> {
        self.db_link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Names of the pools.
    pub fn pool_names(&self) -> Vec<String> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Forgets a child that was scaled away.
    pub(crate) fn remove(&self, instance: &str) {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
    }

    pub(crate) fn update(&self, instance: &str, change: impl FnOnce(&mut ChildStatus)) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = children.get_mut(instance) {
            change(status);
        }
    }

    pub(crate) fn insert(&self, status: ChildStatus) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.insert(status.instance.clone(), status);
    }

    /// A snapshot for the ops API.
    pub fn status(&self) -> Status {
        let (public, balancer_admin, watch) = self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Status {
            public,
            balancer_admin,
            watch,
            children: self
                .children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect(),
            events: self.events.recent(),
        }
    }
}

/// The running supervisor.
pub struct Supervisor {
    options: UpOptions,
    shared: Shared,
    sink: LogSink,
}

impl Supervisor {
    /// Prepares the data directory and the central log.
    pub fn new(options: UpOptions) -> Result<Self, UpError> {
        let prepare = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|source| UpError::Prepare {
                path: path.to_path_buf(),
                source,
            })
        };
        prepare(&options.data_dir)?;
        prepare(&options.data_dir.join("up"))?;
        let logs_dir = logs::dir(&options.data_dir);
        let sink = LogSink::open(&logs_dir).map_err(|source| UpError::Prepare {
            path: logs_dir,
            source,
        })?;
        Ok(Self {
            options,
            shared: Shared::default(),
            sink,
        })
    }

    /// Runs everything until `shutdown`, then stops it in order: the balancer stops accepting,
    /// replicas leave it and drain, watch stops last.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), UpError> {
        let Self {
            options,
            shared,
            sink,
        } = self;
        crate::metrics::describe();
        let ops_listener =
            ops::bind(options.ops_listen)
                .await
                .map_err(|source| UpError::OpsBind {
                    address: options.ops_listen,
                    source,
                })?;
        let ops_address = ops_listener.local_addr().unwrap_or(options.ops_listen);
        let ops_shutdown = Shutdown::new();
        let ops_task = tokio::spawn(ops::serve(
            ops_listener,
            shared.clone(),
            logs::dir(&options.data_dir),
            ops_shutdown.clone(),
        ));
        // One process applies the migrations before any replica starts: replicas starting
        // together on a fresh SQLite file would otherwise race to create the same tables
        // (sqlx takes no migration lock on SQLite) and all but one would exit.
        run_once(&options, "migrate").await?;
        if options.demo {
            run_once(&options, "demo-data").await?;
        }
        let replica_env = match crate::db_link::DbLink::start(&options.data_dir).await? {
            Some((link, env)) => {
                *shared.db_link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
                env
            }
            None => Vec::new(),
        };

        let balance_config = write_balance_config(&options)?;
        let balance_spec = ChildSpec {
            service: "balance",
            instance: "balance".into(),
            args: args(
                &["balance", "--log-format", "json", "--config"],
                &balance_config,
            ),
            env: Vec::new(),
        };
        shared.insert(status_of(&balance_spec, None, false));
        let balance = child::spawn(&options.binary, &balance_spec, &sink).await?;
        let public = balance.address("address");
        let admin_address = balance.address("admin_address").unwrap_or_default();
        shared.update("balance", |s| {
            s.state = "ready";
            s.pid = Some(balance.pid);
            s.address.clone_from(&public);
        });
        shared.events.push(
            "info",
            "ready",
            Some("balance"),
            format!("balancer listening on {}", public.as_deref().unwrap_or("?")),
        );
        let admin = BalancerAdmin::new(&admin_address);

        let replicas_stop = Shutdown::new();
        let mut replicas = JoinSet::new();
        for plan in &options.pools {
            let (sender, commands) = mpsc::channel(8);
            shared
                .pools
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(plan.name.clone(), sender.clone());
            let context = PoolContext {
                plan: plan.clone(),
                binary: Arc::new(Mutex::new(options.binary.clone())),
                data_dir: options.data_dir.clone(),
                admin: admin.clone(),
                shared: shared.clone(),
                sink: sink.clone(),
                base_backoff: Duration::from_millis(options.base_backoff_ms),
                max_backoff: Duration::from_millis(options.max_backoff_ms),
                env: replica_env.clone(),
            };
            replicas.spawn(pool::manage(context, commands, replicas_stop.clone()));
            if let Some(autoscale) = plan.autoscale.clone() {
                replicas.spawn(crate::autoscale::run(
                    plan.name.clone(),
                    autoscale,
                    plan.replicas,
                    admin_address.clone(),
                    sender,
                    shared.clone(),
                    replicas_stop.clone(),
                ));
            }
        }

        let watch = if options.watch {
            start_watch(&options, &admin_address, ops_address, &shared, &sink).await
        } else {
            None
        };
        {
            let mut addresses = shared.addresses.lock().unwrap_or_else(|p| p.into_inner());
            *addresses = (
                public.clone(),
                Some(admin_address.clone()),
                watch.as_ref().and_then(|w| w.address("address")),
            );
        }
        // "Up" means serving: wait (bounded) for every planned replica's first readiness. The
        // pool managers register their replicas concurrently, so count them too: an empty list
        // is not "all ready".
        let planned: usize = options.pools.iter().map(|p| p.replicas + p.backups).sum();
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline && !shutdown.is_triggered() {
            let status = shared.status();
            let replicas: Vec<_> = status
                .children
                .iter()
                .filter(|child| child.service == "serve")
                .collect();
            if replicas.len() >= planned && replicas.iter().all(|child| child.state == "ready") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let jobs = crate::scheduler::start(&options, &shared, &admin_address, shutdown.clone());
        let public = public.unwrap_or_default();
        tracing::info!(
            public = %public,
            ops = %ops_address,
            balancer_admin = %admin_address,
            "brigade is up"
        );
        brigade_core::telemetry::print_for_people(&format!(
            "\nbrigade is up\n  ordering page  http://{public}/\n  ordering API   http://{public}/api/v1/shops\n  \
             Swagger UI     http://{public}/swagger-ui/\n  ops dashboard  http://{ops_address}/\n  \
             metrics        http://{admin_address}/metrics (balancer), each replica's /metrics\n  \
             ops API        http://{ops_address}/api/status   (or: brigade status --ops {ops_address})\n  \
             logs           brigade logs --data-dir {} [-f]\n  stop           Ctrl-C\n\n",
            options.data_dir.display()
        ));

        shutdown.wait().await;
        if let Some(jobs) = jobs {
            let _ = jobs.await;
        }
        shared.events.push(
            "info",
            "stopping",
            None,
            "stopping: balancer first, then replicas, then watch",
        );
        shared.update("balance", |s| s.state = "stopping");
        balance.stop(STOP_GRACE).await;
        shared.update("balance", |s| s.state = "stopped");
        replicas_stop.trigger();
        while replicas.join_next().await.is_some() {}
        if let Some(watch) = watch {
            shared.update("watch", |s| s.state = "stopping");
            watch.stop(STOP_GRACE).await;
            shared.update("watch", |s| s.state = "stopped");
        }
        shared
            .events
            .push("info", "stopped", None, "every child stopped");
        ops_shutdown.trigger();
        let _ = ops_task.await;
        Ok(())
    }
}

fn args(head: &[&str], path: &Path) -> Vec<String> {
    head.iter()
        .map(|s| (*s).to_owned())
        .chain(std::iter::once(path.display().to_string()))
        .collect()
}

fn status_of(spec: &ChildSpec, pool: Option<&PoolPlan>, backup: bool) -> ChildStatus {
    ChildStatus {
        service: spec.service,
        instance: spec.instance.clone(),
        pool: pool.map(|p| p.name.clone()),
        backup,
        state: "starting",
        address: None,
        pid: None,
        restarts: 0,
    }
}

/// Runs `brigade <command>` (`migrate`, `demo-data`) to completion against the data
/// directory; both are idempotent, so a restart of `up` changes nothing.
async fn run_once(options: &UpOptions, command: &'static str) -> Result<(), UpError> {
    let failed = |reason: String| UpError::Step { command, reason };
    let status = tokio::process::Command::new(&options.binary)
        .arg(command)
        .arg("--log-format")
        .arg("json")
        .arg("--data-dir")
        .arg(&options.data_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(status.to_string()))
    }
}

/// The balancer's config: every pool empty (replicas join through the admin API once ready),
/// path routes, the default route last.
fn write_balance_config(options: &UpOptions) -> Result<PathBuf, UpError> {
    use std::fmt::Write as _;
    let mut toml = format!(
        "# Written by brigade up; replicas are added through the admin API.\n\
         listen = \"{}\"\nadmin = \"127.0.0.1:0\"\n\n",
        options.listen
    );
    for pool in &options.pools {
        let _ = write!(
            toml,
            "[[pools]]\nname = \"{}\"\nalgorithm = \"peak_ewma\"\nslow_start_ms = 5000\n\
             health = {{ path = \"/health/ready\", interval_ms = 1000, timeout_ms = 1000, rise = 1, fall = 2 }}\n\n",
            pool.name
        );
    }
    let mut routes: Vec<&PoolPlan> = options
        .pools
        .iter()
        .filter(|p| p.path_prefix.is_some())
        .collect();
    routes.extend(options.pools.iter().filter(|p| p.path_prefix.is_none()));
    for pool in routes {
        match &pool.path_prefix {
            Some(prefix) => {
                let _ = write!(
                    toml,
                    "[[routes]]\npath_prefix = \"{prefix}\"\npool = \"{}\"\n\n",
                    pool.name
                );
            }
            None => {
                let _ = write!(toml, "[[routes]]\npool = \"{}\"\n\n", pool.name);
            }
        }
    }
    let path = options.data_dir.join("up").join("balance.toml");
    std::fs::write(&path, toml).map_err(|source| UpError::Prepare {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// brigade's alert rules (the same file Prometheus loads in Kubernetes).
const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/rules/brigade.yml");

/// Starts `brigade watch` scraping the balancer and every replica it lists. Watch is an
/// observer: when it cannot start, the services still run (an event says so).
async fn start_watch(
    options: &UpOptions,
    admin_address: &str,
    ops_address: std::net::SocketAddr,
    shared: &Shared,
    sink: &LogSink,
) -> Option<Running> {
    // The alert rules are compiled into the binary, so `brigade up` alerts from any working
    // directory; they are written next to the generated watch.toml for watch to load.
    let rules = options.data_dir.join("up").join("rules.yml");
    if let Err(error) = std::fs::write(&rules, ALERT_RULES) {
        shared.events.push(
            "error",
            "failed",
            Some("watch"),
            format!("cannot write {}: {error}", rules.display()),
        );
        return None;
    }
    let files: Vec<String> = std::iter::once(&rules)
        .chain(&options.alert_rules)
        .map(|path| format!("{:?}", path.display().to_string()))
        .collect();
    let rule_files = format!("rule_files = [{}]\n", files.join(", "));
    let toml = format!(
        "# Written by brigade up.\nlisten = \"127.0.0.1:0\"\n{rule_files}\n[scrape]\ninterval = \"5s\"\ntimeout = \"4s\"\n\n\
         [[scrape.static_configs]]\njob = \"balance\"\ntargets = [\"{admin_address}\"]\n\n\
         [[scrape.static_configs]]\njob = \"supervisor\"\ntargets = [\"{ops_address}\"]\n\n\
         [[scrape.balance_configs]]\nadmin_url = \"http://{admin_address}\"\n\n[evaluation]\ninterval = \"5s\"\n"
    );
    let path = options.data_dir.join("up").join("watch.toml");
    if let Err(error) = std::fs::write(&path, toml) {
        shared.events.push(
            "error",
            "failed",
            Some("watch"),
            format!("cannot write {}: {error}", path.display()),
        );
        return None;
    }
    let mut watch_args = args(&["watch", "--log-format", "json", "--config"], &path);
    watch_args.push("--data-dir".into());
    watch_args.push(options.data_dir.display().to_string());
    let spec = ChildSpec {
        service: "watch",
        instance: "watch".into(),
        args: watch_args,
        env: Vec::new(),
    };
    shared.insert(status_of(&spec, None, false));
    match child::spawn(&options.binary, &spec, sink).await {
        Ok(watch) => {
            shared.update("watch", |s| {
                s.state = "ready";
                s.pid = Some(watch.pid);
                s.address = watch.address("address");
            });
            Some(watch)
        }
        Err(error) => {
            shared.update("watch", |s| s.state = "stopped");
            shared
                .events
                .push("error", "failed", Some("watch"), error.to_string());
            None
        }
    }
}
