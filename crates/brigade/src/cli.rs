//! Command-line flags, and how they become the top layer of the settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use brigade_core::Settings;
use brigade_core::config::{ConfigError, LogFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use figment::providers::Serialized;

/// brigade: a food-ordering service with everything needed to run it in production.
///
/// Settings come from, lowest first: built-in defaults, brigade.toml (or --config),
/// BRIGADE_<SECTION>__<KEY> environment variables (e.g. BRIGADE_SERVER__LISTEN), DATABASE_URL
/// and REDIS_URL, then these flags.
#[derive(Debug, Parser)]
#[command(name = "brigade", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Settings file (TOML). Without it, ./brigade.toml is read if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: auto (pretty on a terminal, JSON otherwise), json or pretty.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Log filter, e.g. "info" or "info,brigade_store=debug" (setting log.filter).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_filter: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one replica of the ordering service (REST API, health, metrics, OpenAPI).
    ///
    /// Applies pending migrations, then serves until SIGTERM or Ctrl-C; on shutdown readiness
    /// fails at once, the listener closes after the drain delay and in-flight requests finish.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(StorageArgs),
    /// Load demo data: two shops, each with a pizza and a garlic-bread station, and a menu.
    ///
    /// Idempotent: running it again changes nothing. The accounts it creates and their
    /// passwords are printed and kept in <data-dir>/demo-accounts.json (mode 0600).
    DemoData(DemoDataArgs),
    /// Watch the services: scrape metrics, evaluate alert rules, send notifications.
    ///
    /// Without a subcommand it runs: reads --config (default ./watch.toml), scrapes its targets,
    /// evaluates the rule files (Prometheus format) and notifies webhooks, Slack, PagerDuty and
    /// e-mail; its API listens on 127.0.0.1:8083. `rules check` validates rule files;
    /// `silence` manages silences of a running watch.
    Watch(WatchArgs),
    /// Run the load balancer: pools, health checks, failover, retries, routing, draining.
    ///
    /// `--config balance.toml` for the full configuration (pools, routes, timeouts, limits), or
    /// plain flags for one pool. Logs one `listening` line with the bound public and admin
    /// addresses; SIGHUP reloads the file; SIGTERM stops accepting and finishes in-flight
    /// requests.
    Balance(BalanceArgs),
    /// Run the whole architecture on this machine: balancer, replicas, watch, supervisor.
    ///
    /// Starts `brigade balance` on the public port with an orders and a kitchen pool,
    /// replicas of `brigade serve` (restarted when they crash), `brigade watch`, and the ops API;
    /// loads the demo data on first start. Ctrl-C stops everything in order. Uses DATABASE_URL
    /// and REDIS_URL when set, the SQLite file in --data-dir otherwise. Off-peak jobs (cache
    /// warm-up, daily sales report, SQLite backup) run on the schedules of --config up.toml
    /// (default ./up.toml when present); the API jobs log in as admin@brigade.demo with
    /// BRIGADE_JOBS_ADMIN_PASSWORD or BRIGADE_DEMO_PASSWORD.
    Up(UpArgs),
    /// Show what a running `brigade up` runs (exit 1 when nothing answers).
    Status(StatusArgs),
    /// Search (and follow) the central logs `brigade up` collects from every process.
    Logs(LogsArgs),
    /// Replace a pool's replicas one at a time under `brigade up` (no request is lost).
    ///
    /// `brigade rollout restart [POOL]` restarts them; with `--binary PATH` the new replicas
    /// run that binary (an upgrade). Each new replica is ready and in the balancer before the
    /// old one leaves it and drains.
    Rollout(RolloutArgs),
    /// Set the number of replicas of a pool under `brigade up`.
    Scale(ScaleArgs),
    /// Run a drill against `brigade up`: built-in load while one fault happens, then a report.
    ///
    /// Drills: kill-replica (SIGKILL one replica), rolling-restart, error-burst (one replica
    /// answers 500), slow-replica (one replica answers 400 ms late), payment-outage (the
    /// payment provider fails on every replica), db-outage (the replicas lose their database:
    /// PostgreSQL connections cut, or the SQLite file locked for writes), surge (5 × the
    /// clients, the autoscaler watched), restore (the SQLite store deleted mid-run: brigade up
    /// restores its newest backup; on PostgreSQL — DATABASE_URL and [backup] as for brigade
    /// backup, run as the cluster's OS user — the cluster stopped at once, its data directory
    /// emptied, restored with pgBackRest and started; the report gives RTO and RPO against
    /// their one-minute targets). The report gives requests sent and failed, p50/p99
    /// before, during and after, the time to recover, alerts fired, whether every acknowledged
    /// order is in the store exactly once, and each drill's own claims; the exit code is 1
    /// when a claim does not hold.
    Drill(DrillArgs),
    /// Serve the ops dashboard without `brigade up`, against a balancer and a watch.
    ///
    /// Topology, drain/undrain from the balancer's admin API; charts and alerts (with silence
    /// buttons) from watch; log search when --data-dir names a `brigade up` data directory.
    /// Supervisor-only panels (processes, events, rollout, scale) are hidden.
    Dashboard(DashboardArgs),
    /// Make a self-signed TLS certificate in --dir, or keep the usable one already there.
    ///
    /// Writes cert.pem and key.pem (mode 0600) for each --name (DNS names or IP addresses)
    /// unless the pair in --dir loads, so a certificate a browser was told to trust, or one of
    /// your own put there, survives restarts. deploy/compose.yaml runs it before the balancer.
    Certificate(CertificateArgs),
    /// Copy the live SQLite store to a backup file, consistently, while replicas keep writing.
    ///
    /// Uses SQLite's `VACUUM INTO` (one read transaction: the copy is one instant), checks the
    /// copy (integrity_check, brigade's migrations) before naming it, writes
    /// <data dir>/backups/brigade-YYYYMMDDTHHMMSSZ.db unless --output says otherwise, and keeps
    /// the newest --keep backups there.
    ///
    /// PostgreSQL store: fronts pgBackRest, configured by [backup] of brigade.toml (pg_data,
    /// repo, stanza, retention_full, archive_timeout_secs, …); run it on the database host as
    /// the cluster's OS user. Sets archive_command/archive_timeout on the server (WAL shipped
    /// at least every minute), creates the stanza, takes a --type backup (incr by default),
    /// expires old ones, verifies the repository and restores the new backup into a scratch
    /// cluster to read it back (--no-verify skips that).
    Backup(BackupArgs),
    /// Put a backup in place of the SQLite store; refused while any brigade process uses it.
    ///
    /// Without FILE, the newest backup that verifies in --from DIR (default: brigade up's
    /// continuous backups in <data dir>/backups/continuous, then <data dir>/backups). Checks
    /// the backup is a healthy brigade database (integrity_check, known migrations), refuses
    /// while the store is open anywhere (stop `brigade up` first), moves the current file
    /// aside (brigade.db.before-restore-<time>) and puts the backup in its place. A running
    /// `brigade up` restores a vanished store by itself ([backup] restore_on_loss).
    ///
    /// PostgreSQL store: pgBackRest writes the data directory (backup.pg_data) back from the
    /// repository, set to replay archived WAL to its end or --to TIMESTAMP and then open for
    /// writes; refused while PostgreSQL runs on it. Start PostgreSQL afterwards.
    Restore(RestoreArgs),
}

/// Flags of `brigade backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Write the backup to this file, which must not exist (default:
    /// <data dir>/backups/brigade-YYYYMMDDTHHMMSSZ.db).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Backups to keep in <data dir>/backups; older ones are deleted after a successful backup.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub keep: u16,
    /// PostgreSQL: pgBackRest's backup type (incr becomes full when no full backup exists).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<BackupKindArg>,
    /// PostgreSQL: skip restoring the new backup into a scratch cluster to check it.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// pgBackRest backup types.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackupKindArg {
    /// Every file.
    Full,
    /// Files changed since the last full backup.
    Diff,
    /// Files changed since the last backup.
    Incr,
}

impl From<BackupKindArg> for brigade_store::pg_backup::BackupKind {
    fn from(kind: BackupKindArg) -> Self {
        match kind {
            BackupKindArg::Full => Self::Full,
            BackupKindArg::Diff => Self::Diff,
            BackupKindArg::Incr => Self::Incr,
        }
    }
}

/// Flags of `brigade restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (a file written by `brigade backup` or brigade up's continuous
    /// backups); default: the newest verified one in --from.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Where to look for the newest backup when FILE is not given (up.toml's backup.dir when
    /// it sets one).
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    pub from: Option<PathBuf>,
    /// PostgreSQL: replay archived WAL up to this time (RFC 3339, e.g.
    /// 2026-12-05T21:30:00Z) instead of to the end of the archive.
    #[arg(long, value_name = "TIMESTAMP", conflicts_with_all = ["file", "from"])]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Flags of `brigade dashboard`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// The balancer's admin API (HOST:PORT, as `brigade balance --admin`).
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    pub balancer_admin: String,
    /// The API of `brigade watch` (HOST:PORT); without it, charts and alerts are hidden.
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    pub watch: Option<String>,
    /// Address to serve the dashboard on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Data directory of a `brigade up` whose central logs to search.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `brigade certificate`.
#[derive(Debug, Args)]
pub struct CertificateArgs {
    /// Folder of cert.pem and key.pem (created when missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// A name the certificate is for; repeat for more.
    #[arg(long = "name", value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
    pub names: Vec<String>,
}

/// A `HOST:PORT` address (an `http://` prefix is accepted and dropped): what the dashboard
/// puts after `http://` when it calls the balancer or watch.
fn host_port(text: &str) -> Result<String, String> {
    let address = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(['/', '?', '#', '@', ' '])
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid {
        Ok(address.to_owned())
    } else {
        Err("expected HOST:PORT, e.g. 127.0.0.1:8082".into())
    }
}

/// Flags of `brigade drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// kill-replica, rolling-restart, error-burst, slow-replica, payment-outage, db-outage,
    /// surge, kill-balancer, kill-watch, disk-full, db-refuse, cache-outage or restore.
    pub name: String,
    /// The ops API of `brigade up`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub ops: String,
    /// Password of the demo accounts (default: BRIGADE_DEMO_PASSWORD, else each account's
    /// from demo-accounts.json in the data directory of `brigade up`).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "BRIGADE_DEMO_PASSWORD",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub password: Option<String>,
    /// Seconds of load before and after the fault.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub phase_secs: u64,
    /// Concurrent clients.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub clients: usize,
    /// Seconds the fault is held (error-burst, slow-replica, payment-outage, db-outage,
    /// surge); default: 30 for db-outage, 60 for surge, --phase-secs for the others.
    #[arg(long, value_name = "SECS")]
    pub fault_secs: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub token: OpsTokenArgs,
}

/// Flags of `brigade rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do; only `restart` exists.
    #[arg(value_parser = ["restart"])]
    pub action: String,
    /// The pool (default: every pool, one after the other).
    pub pool: Option<String>,
    /// New replicas run this binary (an upgrade).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The ops API of `brigade up`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub ops: String,
    #[command(flatten)]
    pub token: OpsTokenArgs,
}

/// The ops API's per-start token: by default read from the file the running `brigade up`
/// names (its data directory's ops-token, readable by its user only).
#[derive(Debug, Args)]
pub struct OpsTokenArgs {
    /// The ops token itself, instead of reading the file `brigade up` wrote. A token may
    /// begin with `-` (one in 64 does: URL-safe base64), so the value after the flag is taken
    /// as it is.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BRIGADE_OPS_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub ops_token: Option<String>,
}

/// Flags of `brigade scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The pool.
    pub pool: String,
    /// Replicas wanted (1-64).
    pub replicas: usize,
    /// The ops API of `brigade up`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub ops: String,
    #[command(flatten)]
    pub token: OpsTokenArgs,
}

/// Flags of `brigade up`. Each flag left out is taken from up.toml (`--config FILE`, else
/// ./up.toml when present; the same key without `--`, `[autoscale]` for the `--autoscale-*`
/// flags), then from the default shown.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory: the SQLite file, generated configs, central logs [default: ./brigade-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public port (the balancer), on loopback [default: 8080].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Port of the supervisor's ops API, on loopback [default: 8081].
    #[arg(long, value_name = "PORT")]
    pub ops_port: Option<u16>,
    /// Replicas of the orders pool, plus one backup [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub replicas: Option<u16>,
    /// Replicas of the kitchen pool [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub kitchen_replicas: Option<u16>,
    /// Do not load the demo data.
    #[arg(long)]
    pub no_demo: bool,
    /// Do not run `brigade watch`.
    #[arg(long)]
    pub no_watch: bool,
    /// An alert rule file (Prometheus format) for watch besides brigade's own; repeatable.
    #[arg(long = "alert-rules", value_name = "FILE")]
    pub alert_rules: Vec<PathBuf>,
    /// Autoscale the orders pool up to this many replicas (from --replicas); 0 = off [default: 0].
    #[arg(long, value_name = "N")]
    pub autoscale_max: Option<usize>,
    /// Autoscaling: the per-replica metric to follow [default: in-flight].
    #[arg(long, value_enum, value_name = "METRIC")]
    pub autoscale_metric: Option<AutoscaleMetric>,
    /// Autoscaling target with `--autoscale-metric in-flight`: in-flight requests per replica
    /// [default: 8].
    #[arg(long, value_name = "N")]
    pub autoscale_target_in_flight: Option<f64>,
    /// Autoscaling target with `--autoscale-metric cpu`: percent of one core per replica
    /// [default: 70].
    #[arg(long, value_name = "PERCENT")]
    pub autoscale_target_cpu: Option<f64>,
    /// Autoscaling: scale down only after load stayed low this long [default: 300].
    #[arg(long, value_name = "SECS")]
    pub scale_down_window_secs: Option<u64>,
    /// Autoscaling: how often the load is read [default: 5000].
    #[arg(long, value_name = "MS")]
    pub autoscale_interval_ms: Option<u64>,
    /// Do not run the off-peak jobs (cache warm-up, daily report, backup; `[jobs]` of up.toml).
    #[arg(long)]
    pub no_jobs: bool,
    /// Serve https on the public port with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve https on the public port with a certificate for localhost and 127.0.0.1, made in
    /// <data-dir>/up/tls/ on the first start and kept (browsers warn until it is trusted).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
    /// Make (pg_basebackup, when <data-dir>/up/standby is missing) and run a local streaming
    /// standby of the PostgreSQL primary in DATABASE_URL; the replicas read from it. Needs a
    /// non-root user and PostgreSQL's server programs of the primary's version.
    #[arg(long)]
    pub local_standby: bool,
}

/// What the autoscaler of `brigade up` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoscaleMetric {
    /// In-flight requests per replica, as the balancer counts them.
    InFlight,
    /// CPU use per replica, in percent of one core.
    Cpu,
}

/// Flags of `brigade status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The ops API of `brigade up`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub ops: String,
}

/// Flags of `brigade logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Data directory of `brigade up`.
    #[arg(long, value_name = "DIR", default_value = "./brigade-data")]
    pub data_dir: PathBuf,
    /// Only this service: serve, balance, watch or standby (the local standby's postgres).
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// Only this level and more severe: error, warn, info, debug.
    #[arg(long, value_name = "L")]
    pub level: Option<String>,
    /// Only lines newer than this, e.g. 90s, 10m, 2h.
    #[arg(long, value_name = "AGE")]
    pub since: Option<String>,
    /// Only lines containing this text (e.g. a request id).
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    pub follow: bool,
}

/// Flags of `brigade balance`; with `--config` they override the file's values.
#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// Public address; port 0 picks a free port (default 0.0.0.0:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Admin address (health, metrics, admin API; default 127.0.0.1:8082).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// A backend of the single pool `default` (repeatable); used without --config.
    #[arg(long = "backend", value_name = "ADDR")]
    pub backends: Vec<SocketAddr>,

    /// A backup backend of the pool `default` (repeatable).
    #[arg(long = "backup", value_name = "ADDR")]
    pub backups: Vec<SocketAddr>,

    /// Selection algorithm of the pool `default`.
    #[arg(long, value_name = "NAME", value_parser = ["round_robin", "least_requests", "peak_ewma", "consistent_hash"])]
    pub algorithm: Option<String>,

    /// Active health-check path for the pool `default` (none: passive ejection only).
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,

    /// Worker threads; 0 = one per core.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Serve TLS on the public listener with this PEM certificate chain (with --tls-key;
    /// overrides tls.cert). Reloaded on SIGHUP and `POST /admin/tls/reload`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (overrides tls.key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Flags of `brigade serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (setting server.listen, default
    /// 127.0.0.1:3000).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Milliseconds readiness fails before the listener closes on shutdown
    /// (server.drain_delay_ms, default 1000).
    #[arg(long, value_name = "MS")]
    pub drain_delay_ms: Option<u64>,

    /// Load the demo data before serving (same as running `brigade demo-data` first).
    #[arg(long)]
    pub demo: bool,

    /// Proxies whose X-Forwarded-For names the client, as CIDR blocks separated by commas,
    /// e.g. 10.0.0.0/8 (server.trusted_proxies, default none: the peer is the client).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,

    /// Redis URL for a cache shared by replicas (cache.redis_url; also REDIS_URL).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,

    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Flags of `brigade demo-data`.
#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Give every demo account that exists a new password (BRIGADE_DEMO_PASSWORD, else a
    /// random one), print them and rewrite <data-dir>/demo-accounts.json.
    #[arg(long)]
    pub reset_passwords: bool,

    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where the data lives.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory of the embedded SQLite database (storage.data_dir, default ./brigade-data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// sqlite://PATH or postgres://… ; overrides --data-dir (storage.database_url; also
    /// DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Flags of `brigade watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// What to do; without a subcommand, run the watch.
    #[command(subcommand)]
    pub action: Option<WatchAction>,

    /// API address (overrides `listen` in watch.toml); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Subcommands of `brigade watch`.
#[derive(Debug, Subcommand)]
pub enum WatchAction {
    /// Rule files.
    #[command(subcommand)]
    Rules(WatchRulesAction),
    /// Silences of a running watch.
    #[command(subcommand)]
    Silence(WatchSilenceAction),
}

/// `brigade watch rules …`.
#[derive(Debug, Subcommand)]
pub enum WatchRulesAction {
    /// Check rule files like `promtool check rules`, and that brigade can evaluate every rule.
    Check {
        /// Rule files (Prometheus format).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// `brigade watch silence …`.
#[derive(Debug, Subcommand)]
pub enum WatchSilenceAction {
    /// Create a silence; prints its id.
    Add {
        /// Alertmanager matcher, e.g. 'alertname="BrigadeHighCpu"' (repeatable; all must hold).
        #[arg(long = "matcher", required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long it lasts, e.g. 30m or 2h.
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        duration: String,
        /// Why.
        #[arg(long)]
        comment: String,
        /// Who.
        #[arg(long, env = "USER", default_value = "brigade")]
        created_by: String,
        /// The watch's API.
        #[arg(long, default_value = "http://127.0.0.1:8083", value_name = "URL")]
        url: String,
    },
    /// List silences.
    List {
        /// The watch's API.
        #[arg(long, default_value = "http://127.0.0.1:8083", value_name = "URL")]
        url: String,
    },
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
        /// The watch's API.
        #[arg(long, default_value = "http://127.0.0.1:8083", value_name = "URL")]
        url: String,
    },
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Pretty,
}

impl From<LogFormatArg> for LogFormat {
    fn from(value: LogFormatArg) -> Self {
        match value {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Pretty => LogFormat::Pretty,
        }
    }
}

impl Cli {
    /// Settings with every layer applied, flags last.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        // For `watch`, `balance` and `up`, --config names watch.toml, balance.toml or up.toml;
        // brigade's own settings (storage, logs) then come from ./brigade.toml, the environment
        // and flags.
        let settings_file = match &self.command {
            Command::Watch(_) | Command::Balance(_) | Command::Up(_) => None,
            _ => self.config.as_deref(),
        };
        let mut figment = Settings::figment(settings_file)?;
        let mut set = |key: &str, value: serde_json::Value| {
            figment = std::mem::take(&mut figment).merge(Serialized::default(key, value));
        };
        if let Some(format) = self.log_format {
            set(
                "log.format",
                serde_json::to_value(LogFormat::from(format)).unwrap_or_default(),
            );
        }
        if let Some(filter) = &self.log_filter {
            set("log.filter", filter.clone().into());
        }
        let storage = match &self.command {
            Command::Serve(args) => {
                if let Some(listen) = args.listen {
                    set("server.listen", listen.to_string().into());
                }
                if let Some(delay) = args.drain_delay_ms {
                    set("server.drain_delay_ms", delay.into());
                }
                if let Some(proxies) = &args.trusted_proxies {
                    set("server.trusted_proxies", proxies.clone().into());
                }
                if let Some(url) = &args.redis_url {
                    set("cache.redis_url", url.clone().into());
                }
                Some(&args.storage)
            }
            Command::Migrate(args) => Some(args),
            Command::DemoData(args) => Some(&args.storage),
            Command::Backup(args) => Some(&args.storage),
            Command::Restore(args) => Some(&args.storage),
            Command::Watch(args) => Some(&args.storage),
            Command::Balance(_)
            | Command::Up(_)
            | Command::Status(_)
            | Command::Logs(_)
            | Command::Rollout(_)
            | Command::Scale(_)
            | Command::Drill(_)
            | Command::Dashboard(_)
            | Command::Certificate(_) => None,
        };
        let Some(storage) = storage else {
            return Settings::from_figment(figment);
        };
        if let Some(dir) = &storage.data_dir {
            // DATABASE_URL still wins over the SQLite file in the data directory: a supervisor
            // passes --data-dir to every replica and switches them all to PostgreSQL by
            // setting DATABASE_URL alone.
            set("storage.data_dir", dir.display().to_string().into());
        }
        if let Some(url) = &storage.database_url {
            set("storage.database_url", url.clone().into());
        }
        Settings::from_figment(figment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_complete() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn dashboard_addresses_are_host_and_port() {
        assert_eq!(host_port("127.0.0.1:8082").unwrap(), "127.0.0.1:8082");
        assert_eq!(
            host_port("http://localhost:8083/").unwrap(),
            "localhost:8083"
        );
        for bad in [
            "8082",
            "127.0.0.1",
            "127.0.0.1:0",
            "host:http",
            ":80",
            "a/b:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
        let error = Cli::try_parse_from(["brigade", "dashboard", "--balancer-admin", "nope"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--balancer-admin"), "{error}");
    }

    #[test]
    fn an_ops_token_or_password_that_begins_with_a_dash_is_a_value() {
        let cli = Cli::try_parse_from([
            "brigade",
            "drill",
            "restore",
            "--ops-token",
            "-GkP3x_token",
            "--password",
            "-starts with a dash",
        ])
        .unwrap();
        let Command::Drill(drill) = cli.command else {
            panic!("a drill");
        };
        assert_eq!(drill.token.ops_token.as_deref(), Some("-GkP3x_token"));
        assert_eq!(drill.password.as_deref(), Some("-starts with a dash"));
    }

    #[test]
    fn flags_override_settings() {
        let cli = Cli::parse_from([
            "brigade",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
            "--drain-delay-ms",
            "5",
        ]);
        let settings = cli.settings().unwrap();
        assert_eq!(settings.server.listen.port(), 0);
        assert_eq!(settings.server.drain_delay_ms, 5);
        assert_eq!(
            settings.storage.effective_url(),
            "sqlite:///tmp/x/brigade.db"
        );
    }
}
