//! The supervisor: starts the topology, keeps every replica running, stops it all in order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::Shutdown;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{ChildStatus, EventKind, EventLevel, Service};
use crate::balancer::BalancerAdmin;
use crate::child_state::ChildState;
use crate::kinds::{Balancer, Watch};
use crate::listeners;
use crate::logs::{self, LogSink};
use crate::ops;
use crate::pool::{self, PoolContext, READY_TIMEOUT};
use crate::public::PublicEndpoint;
use crate::shared::{Addresses, Shared};
use crate::supervise::{self, Backoff, Kind, StartFailure};
use crate::tls::TlsFiles;
use crate::topology::UpOptions;

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
    /// A port `up` listens on is taken (after trying again for a few seconds) or invalid.
    #[error("{flag}: cannot listen on {address}: {source}")]
    Bind {
        /// The flag that sets it (`--port`, `--ops-port`).
        flag: &'static str,
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The replicas' database link could not be set up.
    #[error(transparent)]
    DbLink(#[from] crate::db_link::DbLinkError),
    /// The self-signed certificate could not be made.
    #[error(transparent)]
    Tls(#[from] brigade_balance::tls::TlsError),
    /// The local standby could not be made or started; `origin` is the setting that asked
    /// for it.
    #[error("{origin}: {source}")]
    Standby {
        /// `--local-standby` or up.toml's `standby.local`.
        origin: String,
        /// Why.
        #[source]
        source: crate::standby::StandbyError,
    },
    /// A preparation step (`brigade migrate`, `brigade demo-data`) failed.
    #[error("brigade {command} failed ({reason})")]
    Step {
        /// The subcommand.
        command: &'static str,
        /// Why: its exit status or the spawn error.
        reason: String,
    },
}

/// The running supervisor.
pub struct Supervisor {
    options: UpOptions,
    shared: Shared,
    sink: LogSink,
    tls: Option<TlsFiles>,
}

impl Supervisor {
    /// Prepares the data directory, the central log and the certificate of the public port.
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
        let mut shared = Shared::default();
        let (errors, warning) =
            crate::errors::saved::load(&crate::errors::saved::path(&options.data_dir));
        if let Some(warning) = warning {
            tracing::warn!(%warning, "the error groups start empty");
        }
        shared.errors = errors;
        let sink = LogSink::open(&logs_dir)
            .map_err(|source| UpError::Prepare {
                path: logs_dir,
                source,
            })?
            .with_errors(shared.errors.clone());
        let tls = options
            .tls
            .as_ref()
            .map(|tls| tls.files(&options.data_dir))
            .transpose()?;
        let _ = shared.data_dir.set(options.data_dir.clone());
        Ok(Self {
            options,
            shared,
            sink,
            tls,
        })
    }

    /// Runs everything until `shutdown`, then stops it in order: the balancer stops accepting,
    /// replicas leave it and drain, watch stops last.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), UpError> {
        let Self {
            options,
            shared,
            sink,
            tls,
        } = self;
        crate::metrics::describe();
        crate::errors::metrics::register();
        shared.errors.publish_open();
        let errors_saver = crate::errors::saved::Saver::start(&shared.errors, &options.data_dir);
        let sockets = Sockets::bind(&options).await?;
        let at = sockets.at;
        let trace_env = crate::trace_env::TraceEnv::from_env(sockets.watch_address());
        if let Some(collector) = trace_env.collector() {
            tracing::info!(collector, "children export traces to watch");
            // The supervisor's own spans (scaling, rollouts) go to the same place.
            brigade_core::traces::attach_collector(collector);
        }
        let endpoint = PublicEndpoint::new(at.public, tls.as_ref());
        let _ = shared.endpoint.set(endpoint.clone());
        shared.set_addresses(Addresses {
            public: Some(at.public.to_string()),
            balancer_admin: Some(at.balancer_admin.to_string()),
            watch: None,
        });
        let ops_shutdown = Shutdown::new();
        let ops_task = tokio::spawn(ops::serve(
            sockets.ops,
            shared.clone(),
            logs::dir(&options.data_dir),
            ops_shutdown.clone(),
        ));
        let backoff = Backoff {
            base: Duration::from_millis(options.base_backoff_ms),
            max: Duration::from_millis(options.max_backoff_ms),
        };
        let (demo_accounts, replica_env, standby) =
            prepare_data(&options, &shared, &sink, backoff, &shutdown).await?;
        let options = Arc::new(options);
        let start = Start {
            options: &options,
            shared: &shared,
            sink: &sink,
            admin: BalancerAdmin::new(&at.balancer_admin.to_string()),
            at,
            backoff,
            env: &replica_env,
            trace_env: &trace_env,
        };
        let held = (sockets.public, sockets.balancer_admin, sockets.watch);
        let mut running = start.children(held, tls);
        running.standby = standby;
        wait_until_serving(&options, &shared, &shutdown).await;
        let admin_address = at.balancer_admin.to_string();
        let jobs = crate::scheduler::start(
            &options,
            &shared,
            &admin_address,
            &endpoint,
            shutdown.clone(),
        );
        let backups = options.backup.clone().map(|plan| {
            let recovery = crate::backups::Recovery {
                options: options.clone(),
                shared: shared.clone(),
                sink: sink.clone(),
                watch: running.watch.as_ref().map(|watch| watch.replace.clone()),
            };
            tokio::spawn(crate::backups::run(plan, recovery, shutdown.clone()))
        });
        announce(&options, &endpoint, at, &demo_accounts);

        shutdown.wait().await;
        for task in [jobs, backups].into_iter().flatten() {
            let _ = task.await;
        }
        running.stop_in_order(&shared).await;
        errors_saver.stop().await;
        ops_shutdown.trigger();
        let _ = ops_task.await;
        Ok(())
    }
}

/// The sockets `up` binds before any child starts, and their addresses.
struct Sockets {
    /// The public port: the supervisor holds it for as long as it runs, each balancer process
    /// inherits it, and while one restarts connections wait in its queue.
    public: Arc<std::net::TcpListener>,
    /// The balancer's admin API, held the same way.
    balancer_admin: Arc<std::net::TcpListener>,
    /// The ops API and dashboard, served by the supervisor itself.
    ops: tokio::net::TcpListener,
    /// Watch's socket, held too: its address (where every child sends traces) is known before
    /// any child starts and survives watch's restarts.
    watch: Option<Arc<std::net::TcpListener>>,
    at: BoundAddresses,
}

/// Where the sockets `up` bound listen.
#[derive(Clone, Copy)]
struct BoundAddresses {
    public: SocketAddr,
    balancer_admin: SocketAddr,
    ops: SocketAddr,
}

impl Sockets {
    async fn bind(options: &UpOptions) -> Result<Self, UpError> {
        let bind = |flag, address| async move {
            listeners::bind(address, listeners::BIND_RETRY)
                .await
                .map_err(|source| UpError::Bind {
                    flag,
                    address,
                    source,
                })
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let public = bind("--port", options.listen).await?;
        let balancer_admin = bind("--port", loopback).await?;
        let ops = bind("--ops-port", options.ops_listen).await?;
        let watch = match options.watch {
            true => Some(Arc::new(bind("--port", loopback).await?)),
            false => None,
        };
        let local = |listener: &std::net::TcpListener, flag, address| {
            listener.local_addr().map_err(|source| UpError::Bind {
                flag,
                address,
                source,
            })
        };
        let public_address = local(&public, "--port", options.listen)?;
        let admin_address = local(&balancer_admin, "--port", options.listen)?;
        let ops_address = local(&ops, "--ops-port", options.ops_listen)?;
        let ops = ops::from_std(ops).map_err(|source| UpError::Bind {
            flag: "--ops-port",
            address: ops_address,
            source,
        })?;
        Ok(Self {
            public: Arc::new(public),
            balancer_admin: Arc::new(balancer_admin),
            ops,
            watch,
            at: BoundAddresses {
                public: public_address,
                balancer_admin: admin_address,
                ops: ops_address,
            },
        })
    }

    fn watch_address(&self) -> Option<SocketAddr> {
        self.watch
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }
}

/// Readies the store before any replica starts: migrations, the demo data, and the database
/// link the db-outage drill cuts. Returns the demo accounts' text and the replicas' extra
/// environment.
async fn prepare_store(
    options: &UpOptions,
    shared: &Shared,
    sink: &LogSink,
) -> Result<(String, Vec<(String, String)>), UpError> {
    // One process applies the migrations before any replica starts: replicas starting
    // together on a fresh SQLite file would otherwise race to create the same tables
    // (sqlx takes no migration lock on SQLite) and all but one would exit.
    run_once(options, "migrate", sink).await?;
    let demo_accounts = match options.demo {
        true => run_once(options, "demo-data", sink).await?,
        false => String::new(),
    };
    let replica_env = match crate::db_link::DbLink::start(&options.data_dir).await? {
        Some((link, env)) => {
            *shared.db_link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
            env
        }
        None => Vec::new(),
    };
    Ok((demo_accounts, replica_env))
}

/// Readies the data before any replica starts: the local standby first (what keeps it from
/// being made — programs, replication access — is told before anything else is done, and the
/// migrations reach it by streaming), then the store ([`prepare_store`]). Returns the demo
/// accounts' text, the replicas' extra environment (with `DATABASE_READ_URL` when there is a
/// standby) and the standby's child.
async fn prepare_data(
    options: &UpOptions,
    shared: &Shared,
    sink: &LogSink,
    backoff: Backoff,
    shutdown: &Shutdown,
) -> Result<(String, Vec<(String, String)>, Option<Supervised>), UpError> {
    let standby = match &options.standby {
        Some(local) => start_standby(local, shared, sink, backoff, shutdown).await?,
        None => None,
    };
    let (demo_accounts, mut replica_env) = match prepare_store(options, shared, sink).await {
        Ok(prepared) => prepared,
        Err(error) => {
            if let Some((standby, _)) = standby {
                standby.stop().await;
            }
            return Err(error);
        }
    };
    let standby = standby.map(|(supervised, read_url)| {
        replica_env.push(("DATABASE_READ_URL".to_owned(), read_url));
        supervised
    });
    Ok((demo_accounts, replica_env, standby))
}

/// Makes the local standby when needed and supervises it; returns once its first start
/// worked (its child and the replicas' read URL), or `None` when `up` is stopping meanwhile.
async fn start_standby(
    local: &crate::standby::LocalStandby,
    shared: &Shared,
    sink: &LogSink,
    backoff: Backoff,
    shutdown: &Shutdown,
) -> Result<Option<(Supervised, String)>, UpError> {
    // A base backup of a large primary takes a while: Ctrl-C meanwhile stops it.
    let plan = tokio::select! {
        plan = crate::standby::prepare(local, sink) => {
            Arc::new(plan.map_err(|source| standby_error(local, source))?)
        }
        () = shutdown.wait() => return Ok(None),
    };
    let (first_start, started) = tokio::sync::oneshot::channel();
    let kind = crate::standby::Standby {
        plan: plan.clone(),
        sink: sink.clone(),
        first_start: Some(first_start),
    };
    let supervised = Supervised::start(kind, shared, backoff);
    let outcome = tokio::select! {
        outcome = started => outcome.unwrap_or_else(|_| {
            Err(StartFailure::Failed("its supervision ended".into()))
        }),
        () = shutdown.wait() => {
            supervised.stop().await;
            return Ok(None);
        }
    };
    match outcome {
        Ok(()) => Ok(Some((supervised, plan.read_url.clone()))),
        Err(failure) => {
            supervised.stop().await;
            let cause = match failure {
                StartFailure::Failed(cause) => cause,
                StartFailure::Stopped => "brigade up is stopping".into(),
            };
            let source = crate::standby::StandbyError::NotStarted(cause);
            Err(standby_error(local, source))
        }
    }
}

/// `source`, after the setting that asked for the standby.
fn standby_error(
    local: &crate::standby::LocalStandby,
    source: crate::standby::StandbyError,
) -> UpError {
    UpError::Standby {
        origin: local.origin.clone(),
        source,
    }
}

/// The sockets the supervisor holds for its children: the public port, the balancer's admin
/// API, and watch's socket when watch runs.
type HeldSockets = (
    Arc<std::net::TcpListener>,
    Arc<std::net::TcpListener>,
    Option<Arc<std::net::TcpListener>>,
);

/// What the children are started with.
struct Start<'a> {
    options: &'a Arc<UpOptions>,
    shared: &'a Shared,
    sink: &'a LogSink,
    admin: BalancerAdmin,
    at: BoundAddresses,
    backoff: Backoff,
    env: &'a [(String, String)],
    trace_env: &'a crate::trace_env::TraceEnv,
}

impl Start<'_> {
    /// Starts the balancer on the held sockets, every pool, and watch.
    fn children(&self, held: HeldSockets, tls: Option<TlsFiles>) -> Running {
        let (public, admin_listener, watch_listener) = held;
        let balancer = Balancer {
            options: self.options.clone(),
            shared: self.shared.clone(),
            sink: self.sink.clone(),
            public,
            admin_listener,
            admin: self.admin.clone(),
            tls,
            trace_env: self.trace_env.clone(),
        };
        let balance = Supervised::start(balancer, self.shared, self.backoff);
        let (replicas_stop, replicas) = self.pools();
        let watch = self.options.watch.then(|| {
            let watch = Watch {
                options: self.options.clone(),
                shared: self.shared.clone(),
                sink: self.sink.clone(),
                balancer_admin: self.at.balancer_admin,
                ops: self.at.ops,
                listener: watch_listener,
                trace_env: self.trace_env.clone(),
            };
            Supervised::start(watch, self.shared, self.backoff)
        });
        Running {
            balance,
            replicas_stop,
            replicas,
            standby: None,
            watch,
        }
    }

    /// Starts a manager per pool, and an autoscaler where the pool has one. The returned
    /// switch stops them all.
    fn pools(&self) -> (Shutdown, JoinSet<()>) {
        let stop = Shutdown::new();
        let mut tasks = JoinSet::new();
        for plan in &self.options.pools {
            let (sender, commands) = mpsc::channel(8);
            self.shared
                .pools
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(plan.name.clone(), sender.clone());
            let context = PoolContext {
                plan: plan.clone(),
                binary: Arc::new(Mutex::new(self.options.binary.clone())),
                data_dir: self.options.data_dir.clone(),
                admin: self.admin.clone(),
                shared: self.shared.clone(),
                sink: self.sink.clone(),
                base_backoff: self.backoff.base,
                max_backoff: self.backoff.max,
                env: self.env.to_vec(),
                trace_env: self.trace_env.clone(),
                halting: Arc::default(),
            };
            tasks.spawn(pool::manage(context, commands, stop.clone()));
            if let Some(autoscale) = plan.autoscale.clone() {
                tasks.spawn(crate::autoscale::run(
                    plan.name.clone(),
                    autoscale,
                    plan.replicas,
                    self.at.balancer_admin.to_string(),
                    sender,
                    self.shared.clone(),
                    stop.clone(),
                ));
            }
        }
        (stop, tasks)
    }
}

/// The children while `up` runs.
struct Running {
    balance: Supervised,
    replicas_stop: Shutdown,
    replicas: JoinSet<()>,
    /// The local standby (`--local-standby`).
    standby: Option<Supervised>,
    watch: Option<Supervised>,
}

impl Running {
    /// The balancer stops accepting first, then the replicas leave it and drain, then the
    /// local standby they read from, watch last (so it records the others stopping).
    async fn stop_in_order(mut self, shared: &Shared) {
        shared.events.push(
            EventLevel::Info,
            EventKind::Stopping,
            None,
            "stopping: balancer first, then replicas, then watch",
        );
        self.balance.stop().await;
        self.replicas_stop.trigger();
        while self.replicas.join_next().await.is_some() {}
        if let Some(standby) = self.standby {
            standby.stop().await;
        }
        if let Some(watch) = self.watch {
            watch.stop().await;
        }
        shared.events.push(
            EventLevel::Info,
            EventKind::Stopped,
            None,
            "every child stopped",
        );
    }
}

/// Tells people (first, so whoever waits for the log line finds the passwords printed) and
/// the log that brigade is up, with its addresses.
fn announce(
    options: &UpOptions,
    endpoint: &PublicEndpoint,
    at: BoundAddresses,
    demo_accounts: &str,
) {
    brigade_core::telemetry::print_for_people(&banner(
        options,
        endpoint,
        at.ops,
        at.balancer_admin,
        demo_accounts,
    ));
    tracing::info!(
        public = %at.public,
        public_url = %endpoint.url,
        ops = %at.ops,
        balancer_admin = %at.balancer_admin,
        "brigade is up"
    );
}

/// A child kept by [`supervise::keep`] in a task of its own.
struct Supervised {
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
    /// Replaces the child (watch, after its store was restored).
    replace: mpsc::Sender<supervise::Replace>,
}

impl Supervised {
    fn start<K: Kind>(kind: K, shared: &Shared, backoff: Backoff) -> Self {
        let service = match kind.instance() {
            "balance" => Service::Balance,
            "standby" => Service::Standby,
            _ => Service::Watch,
        };
        shared.insert(ChildStatus {
            service,
            instance: kind.instance().to_owned(),
            pool: None,
            backup: false,
            state: ChildState::Starting,
            address: None,
            pid: None,
            restarts: 0,
            last_error: None,
        });
        crate::metrics::pool_started(&kind.metrics_label());
        let stop = Shutdown::new();
        let (replace, replace_rx) = mpsc::channel(1);
        let task = tokio::spawn(supervise::keep(
            kind,
            shared.clone(),
            backoff,
            stop.clone(),
            replace_rx,
        ));
        Self {
            stop,
            task,
            replace,
        }
    }

    async fn stop(self) {
        self.stop.trigger();
        let _ = self.task.await;
    }
}

/// "Up" means serving: waits (bounded) for the balancer and every planned replica's first
/// readiness. The pool managers register their replicas concurrently, so they are counted too:
/// an empty list is not "all ready".
pub(crate) async fn wait_until_serving(options: &UpOptions, shared: &Shared, shutdown: &Shutdown) {
    let planned: usize = options.pools.iter().map(|p| p.replicas + p.backups).sum();
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline && !shutdown.is_triggered() {
        let status = shared.status();
        let ready = |child: &&ChildStatus| child.state == ChildState::Ready;
        let replicas: Vec<_> = status
            .children
            .iter()
            .filter(|child| child.service == Service::Serve)
            .collect();
        let balancer = status
            .children
            .iter()
            .filter(|child| child.service == Service::Balance)
            .any(|child| ready(&child));
        if balancer && replicas.len() >= planned && replicas.iter().all(ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `brigade up` prints for people once it serves.
fn banner(
    options: &UpOptions,
    public: &PublicEndpoint,
    ops: SocketAddr,
    admin: SocketAddr,
    demo_output: &str,
) -> String {
    let accounts = demo_accounts_text(demo_output).map_or_else(
        || {
            format!(
                "demo accounts: {} (new passwords: brigade demo-data --reset-passwords)\n\n",
                crate::demo_accounts::path(&options.data_dir).display()
            )
        },
        |text| format!("{text}\n\n"),
    );
    let certificate = public.ca.as_ref().map_or_else(String::new, |cert| {
        format!("  certificate    {}\n", cert.display())
    });
    let public = &public.url;
    format!(
        "\nbrigade is up\n  ordering page  {public}/\n  ordering API   {public}/api/v1/shops\n  \
         Swagger UI     {public}/swagger-ui/\n{certificate}  ops dashboard  http://{ops}/\n  \
         metrics        http://{admin}/metrics (balancer), each replica's /metrics\n  \
         ops API        http://{ops}/api/status   (or: brigade status --ops {ops})\n  \
         logs           brigade logs --data-dir {} [-f]\n  stop           Ctrl-C\n\n{accounts}",
        options.data_dir.display()
    )
}

/// Runs `brigade <command>` (`migrate`, `demo-data`) to completion against the data
/// directory; both are idempotent, so a restart of `up` changes nothing. Its output goes to
/// the central log (the demo accounts `demo-data` created are among its first lines) and is
/// returned for the terminal.
pub(crate) async fn run_once(
    options: &UpOptions,
    command: &'static str,
    sink: &LogSink,
) -> Result<String, UpError> {
    let failed = |reason: String| UpError::Step { command, reason };
    let output = tokio::process::Command::new(&options.binary)
        .arg(command)
        .arg("--log-format")
        .arg("json")
        .arg("--data-dir")
        .arg(&options.data_dir)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    for line in stdout
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
    {
        sink.write(command, command, line);
    }
    if output.status.success() {
        Ok(stdout)
    } else {
        let last = crate::child::last_lines(&String::from_utf8_lossy(&output.stderr), 3);
        Err(failed(format!("{}: {last}", output.status)))
    }
}

/// The part of `demo-data`'s output people need: the accounts it created (nothing when they
/// existed before).
fn demo_accounts_text(output: &str) -> Option<&str> {
    output
        .find("demo accounts")
        .map(|start| output[start..].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_refusal_names_the_setting_that_asked_for_the_standby() {
        let local = crate::standby::LocalStandby {
            dir: "/data/up/standby".into(),
            primary_url: "postgres://brigade:secret@db/brigade".into(),
            origin: "/etc/brigade/up.toml: standby.local".into(),
        };
        let error = standby_error(&local, crate::standby::StandbyError::NoSetpriv).to_string();
        assert!(
            error.starts_with("/etc/brigade/up.toml: standby.local: setpriv not found"),
            "{error}"
        );
        assert!(!error.contains("secret"));
    }

    #[test]
    fn the_banner_shows_the_public_url_and_the_certificate_in_use() {
        let options = UpOptions::new("brigade".into(), "/data".into());
        let tls = TlsFiles {
            cert: "/data/up/tls/cert.pem".into(),
            key: "/data/up/tls/key.pem".into(),
        };
        let public = PublicEndpoint::new("127.0.0.1:8443".parse().unwrap(), Some(&tls));
        let ops = "127.0.0.1:8081".parse().unwrap();
        let admin = "127.0.0.1:9000".parse().unwrap();
        let text = banner(&options, &public, ops, admin, "");
        assert!(
            text.contains("ordering page  https://127.0.0.1:8443/\n"),
            "{text}"
        );
        assert!(
            text.contains("Swagger UI     https://127.0.0.1:8443/swagger-ui/"),
            "{text}"
        );
        assert!(
            text.contains("certificate    /data/up/tls/cert.pem\n"),
            "{text}"
        );
        assert!(!text.contains("http://127.0.0.1:8443"), "{text}");

        let plain = PublicEndpoint::new("127.0.0.1:8080".parse().unwrap(), None);
        let text = banner(&options, &plain, ops, admin, "");
        assert!(
            text.contains("ordering API   http://127.0.0.1:8080/api/v1/shops"),
            "{text}"
        );
        assert!(!text.contains("certificate"), "{text}");
    }
}
