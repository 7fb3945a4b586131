//! `brigade up`: the whole architecture on this machine.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use brigade_balance::tls::TlsError;
use brigade_core::config::{DatabaseKind, LogFormat};
use brigade_core::{Settings, Shutdown};
use brigade_up::{
    Autoscale, ContinuousBackup, JobKind, JobsPlan, PublicTls, ScaleMetric, Supervisor, UpError,
    UpFile, UpOptions,
};
use clap::Parser as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{AutoscaleMetric, Cli, UpArgs};
use crate::commands::BadSetting;

/// The file read when `--config` is not given (if it exists).
const DEFAULT_UP_CONFIG: &str = "up.toml";

/// Runs the supervisor until SIGTERM or Ctrl-C; on a terminal (and unless JSON logs were asked
/// for) with the live status view below the log lines.
pub async fn run(settings: Settings, args: UpArgs) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find the brigade executable")?;
    // A flag or up.toml key that cannot be used is the user's to fix: exit code 2, named.
    let options =
        options(&settings, &args, binary).map_err(|error| BadSetting(format!("{error:#}")))?;
    // The replicas load the demo accounts with it: refused here, before any child starts.
    super::demo_data::demo_password()?;
    let ops = options.ops_listen;
    let supervisor = Supervisor::new(options)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let interactive = std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
        && settings.log.format != LogFormat::Json;
    if interactive && ops.port() != 0 {
        tokio::spawn(live_view(ops.to_string(), shutdown.clone()));
    }
    supervisor
        .run(shutdown)
        .await
        .map_err(|error| match error {
            // The standby's programs, user and the primary's replication access are the user's to
            // fix, like a flag.
            error @ UpError::Standby { .. } => anyhow::Error::new(BadSetting(error.to_string())),
            other => other.into(),
        })?;
    Ok(())
}

/// The supervisor's options from the flags, up.toml and the settings, every path absolute.
fn options(settings: &Settings, args: &UpArgs, binary: PathBuf) -> anyhow::Result<UpOptions> {
    let (file, path) = up_file()?;
    let jobs = jobs(settings, args, &file)?;
    let context = |key: &str| match &path {
        Some(path) => format!("{}: {key}", path.display()),
        None => key.to_owned(),
    };
    // Every path is made absolute once, here: children run with other working directories and
    // read configs that resolve relative paths against their own folder.
    let from_file = |relative: &PathBuf| in_folder_of(path.as_deref(), relative);
    let data_dir = match (&args.data_dir, &file.data_dir) {
        (Some(flag), _) => absolute(flag, "--data-dir")?,
        (None, Some(in_file)) => absolute(&from_file(in_file), &context("data_dir"))?,
        (None, None) => absolute(Path::new("./brigade-data"), "--data-dir")?,
    };
    let mut options = UpOptions::new(binary, data_dir);
    let port = args.port.or(file.port).unwrap_or(8080);
    let ops_port = args.ops_port.or(file.ops_port).unwrap_or(8081);
    options.listen = SocketAddr::from(([127, 0, 0, 1], port));
    options.ops_listen = SocketAddr::from(([127, 0, 0, 1], ops_port));
    options.demo = !args.no_demo && file.demo.unwrap_or(true);
    options.watch = !args.no_watch && file.watch.unwrap_or(true);
    let replicas = replica_count(args.replicas, file.replicas, 3, &context("replicas"))?;
    let kitchen = replica_count(
        args.kitchen_replicas,
        file.kitchen_replicas,
        1,
        &context("kitchen_replicas"),
    )?;
    options.alert_rules = alert_rules(args, &file, &from_file, &context)?;
    options.tls = public_tls(args, &file, path.as_deref(), &context)?;
    for pool in &mut options.pools {
        pool.replicas = usize::from(if pool.name == "kitchen" {
            kitchen
        } else {
            replicas
        });
    }
    let autoscale = orders_autoscale(args, &file.autoscale, replicas, &context)?;
    if let Some(orders) = options.pools.iter_mut().find(|p| p.name == "orders") {
        orders.autoscale = autoscale;
    }
    options.jobs = jobs;
    options.backup = continuous_backup(settings, &file, path.as_deref(), &options.data_dir)
        .map_err(|error| anyhow::anyhow!("{}", context(&format!("{error:#}"))))?;
    options.standby = local_standby(settings, args, &file, path.as_deref(), &options.data_dir)?;
    Ok(options)
}

/// The local standby: `--local-standby` or `[standby] local = true` (its `dir` relative to
/// up.toml's folder, default `<data-dir>/up/standby`). Only for a PostgreSQL primary without a
/// read URL of the user's, and not as root (PostgreSQL refuses it).
fn local_standby(
    settings: &Settings,
    args: &UpArgs,
    file: &UpFile,
    config: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<Option<brigade_up::standby::LocalStandby>> {
    let context = |key: &str| match config {
        Some(path) => format!("{}: {key}", path.display()),
        None => key.to_owned(),
    };
    let origin = match (args.local_standby, file.standby.local) {
        (true, _) => "--local-standby".to_owned(),
        (false, Some(true)) => context("standby.local"),
        (false, _) => {
            anyhow::ensure!(
                file.standby.dir.is_none(),
                "{}: needs standby.local = true (or --local-standby)",
                context("standby.dir")
            );
            return Ok(None);
        }
    };
    let primary_url = settings.storage.effective_url();
    anyhow::ensure!(
        brigade_core::config::DatabaseKind::is_postgres(&primary_url),
        "{origin}: needs DATABASE_URL to be a PostgreSQL url (postgres://…): only PostgreSQL \
         has standbys"
    );
    anyhow::ensure!(
        settings.storage.read_url.is_none(),
        "{origin}: storage.read_url (DATABASE_READ_URL) names a standby already; unset it to \
         use the local one, or leave out {origin}"
    );
    anyhow::ensure!(
        !brigade_up::standby::runs_as_root(),
        "{origin}: {}",
        brigade_up::standby::StandbyError::Root
    );
    let dir = match &file.standby.dir {
        Some(dir) => absolute(&in_folder_of(config, dir), &context("standby.dir"))?,
        None => data_dir.join("up").join("standby"),
    };
    Ok(Some(brigade_up::standby::LocalStandby {
        dir,
        primary_url,
        origin,
    }))
}

/// Extra alert rule files from `--alert-rules` and up.toml's `alert_rules`, each checked to be
/// a readable file and made absolute.
fn alert_rules(
    args: &UpArgs,
    file: &UpFile,
    from_file: &dyn Fn(&PathBuf) -> PathBuf,
    context: &dyn Fn(&str) -> String,
) -> anyhow::Result<Vec<PathBuf>> {
    let flags = args
        .alert_rules
        .iter()
        .map(|f| (f.clone(), "--alert-rules".to_owned()));
    let in_file = file
        .alert_rules
        .iter()
        .map(|f| (from_file(f), context("alert_rules")));
    flags
        .chain(in_file)
        .map(|(rule_file, origin)| {
            anyhow::ensure!(
                rule_file.is_file(),
                "{origin}: {} is not a readable file",
                rule_file.display()
            );
            absolute(&rule_file, &origin)
        })
        .collect()
}

/// The orders pool's autoscaler from the `--autoscale-*` flags and up.toml's `[autoscale]`;
/// none unless a maximum above zero is set.
fn orders_autoscale(
    args: &UpArgs,
    scaling: &brigade_up::AutoscaleSection,
    replicas: u16,
    context: &dyn Fn(&str) -> String,
) -> anyhow::Result<Option<Autoscale>> {
    let autoscale_max = args.autoscale_max.or(scaling.max).unwrap_or(0);
    if autoscale_max == 0 {
        return Ok(None);
    }
    anyhow::ensure!(
        autoscale_max >= usize::from(replicas),
        "--autoscale-max must be at least --replicas"
    );
    let metric = match (args.autoscale_metric, scaling.metric.as_deref()) {
        (Some(metric), _) => metric,
        (None, None | Some("in-flight")) => AutoscaleMetric::InFlight,
        (None, Some("cpu")) => AutoscaleMetric::Cpu,
        (None, Some(other)) => anyhow::bail!(
            "{}: {other:?} is not a metric; use in-flight or cpu",
            context("autoscale.metric")
        ),
    };
    let (metric, target, flag) = match metric {
        AutoscaleMetric::InFlight => (
            ScaleMetric::InFlight,
            args.autoscale_target_in_flight
                .or(scaling.target_in_flight)
                .unwrap_or(8.0),
            "--autoscale-target-in-flight",
        ),
        AutoscaleMetric::Cpu => (
            ScaleMetric::Cpu,
            args.autoscale_target_cpu
                .or(scaling.target_cpu)
                .unwrap_or(70.0),
            "--autoscale-target-cpu",
        ),
    };
    anyhow::ensure!(
        target.is_finite() && target > 0.0,
        "{flag} must be positive"
    );
    let interval_ms = args
        .autoscale_interval_ms
        .or(scaling.interval_ms)
        .unwrap_or(5000);
    let window_secs = args
        .scale_down_window_secs
        .or(scaling.scale_down_window_secs)
        .unwrap_or(300);
    Ok(Some(Autoscale {
        min: usize::from(replicas),
        max: autoscale_max,
        metric,
        target,
        interval: std::time::Duration::from_millis(interval_ms.max(100)),
        scale_down_window: std::time::Duration::from_secs(window_secs),
        ..Autoscale::default()
    }))
}

/// Continuous backups (`[backup]` of up.toml) of the SQLite file the replicas use — the same
/// file the database link locks — into `backup.dir` (default `<data-dir>/backups/continuous`);
/// none on PostgreSQL, whose own tools back it up.
fn continuous_backup(
    settings: &Settings,
    file: &UpFile,
    config: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<Option<ContinuousBackup>> {
    let database = match settings.storage.database_url.as_deref() {
        Some(_) if settings.storage.database_kind() == Some(DatabaseKind::Postgres) => {
            return Ok(None);
        }
        Some(_) => brigade_store::sqlite_backup::database_path(&settings.storage)
            .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?,
        None => data_dir.join("brigade.db"),
    };
    let dir = match &file.backup.dir {
        Some(dir) => absolute(&in_folder_of(config, dir), "backup.dir")?,
        None => data_dir.join("backups").join("continuous"),
    };
    Ok(file
        .backup
        .plan(absolute(&database, "DATABASE_URL")?, dir)?)
}

/// TLS on the public port: `--tls-cert`/`--tls-key` or `--tls-self-signed`, else up.toml's
/// `tls_cert`/`tls_key`/`tls_self_signed` (a TLS flag wins over all three). The user's files
/// are read here once, so a missing or mismatched pair stops `up` naming the flag or key
/// instead of failing the balancer at every restart.
fn public_tls(
    args: &UpArgs,
    file: &UpFile,
    config: Option<&Path>,
    context: &dyn Fn(&str) -> String,
) -> anyhow::Result<Option<PublicTls>> {
    if args.tls_self_signed {
        return Ok(Some(PublicTls::SelfSigned));
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return user_pair((cert, "--tls-cert".into()), (key, "--tls-key".into())).map(Some);
    }
    let self_signed = file.tls_self_signed.unwrap_or(false);
    match (&file.tls_cert, &file.tls_key) {
        (Some(_), _) | (_, Some(_)) if self_signed => anyhow::bail!(
            "{}: not together with tls_cert and tls_key",
            context("tls_self_signed")
        ),
        (Some(cert), Some(key)) => user_pair(
            (&in_folder_of(config, cert), context("tls_cert")),
            (&in_folder_of(config, key), context("tls_key")),
        )
        .map(Some),
        (Some(_), None) => anyhow::bail!("{}: needs tls_key", context("tls_cert")),
        (None, Some(_)) => anyhow::bail!("{}: needs tls_cert", context("tls_key")),
        (None, None) => Ok(self_signed.then_some(PublicTls::SelfSigned)),
    }
}

/// The user's certificate and key (each with the flag or key that named it), made absolute
/// and checked to load as a pair; an error names the one at fault.
fn user_pair(cert: (&Path, String), key: (&Path, String)) -> anyhow::Result<PublicTls> {
    let (cert_path, key_path) = (absolute(cert.0, &cert.1)?, absolute(key.0, &key.1)?);
    brigade_balance::tls::load_pair(&cert_path, &key_path).map_err(|error| match error {
        TlsError::File {
            key: "tls.cert",
            path,
            message,
        } => {
            anyhow::anyhow!("{} {path}: {message}", cert.1)
        }
        TlsError::File { path, message, .. } | TlsError::Unusable { path, message } => {
            anyhow::anyhow!("{} {path}: {message}", key.1)
        }
        other => anyhow::anyhow!("{}: {other}", key.1),
    })?;
    Ok(PublicTls::Files {
        cert: cert_path,
        key: key_path,
    })
}

/// How often the live view is redrawn.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Redraws the status table (the same as `brigade status`) in place on stderr until shutdown.
/// Log lines are written above it: the view steps aside for each (telemetry's console
/// interlude) and is drawn again below.
async fn live_view(ops: String, shutdown: Shutdown) {
    let view = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(1));
    view.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let hidden = view.clone();
    brigade_core::telemetry::set_console_interlude(move |write| hidden.suspend(write));
    let http = reqwest::Client::new();
    loop {
        if let Ok(snapshot) = brigade_up::status_view::snapshot(&http, &ops).await {
            let (_, columns) = console::Term::stderr().size();
            let width = columns.saturating_sub(1);
            view.set_message(snapshot.render(width).trim_end().to_owned());
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH) => {}
            () = shutdown.wait() => break,
        }
    }
    view.finish_and_clear();
}

/// `path` made absolute against the working directory (without resolving links, so what the
/// user named is what children are told).
fn absolute(path: &Path, origin: &str) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("{origin}: {}", path.display()))
}

/// A path from up.toml: relative to the file's folder, like every path in brigade's config
/// files.
fn in_folder_of(config: Option<&Path>, relative: &Path) -> PathBuf {
    match config.and_then(Path::parent) {
        Some(folder) if relative.is_relative() => folder.join(relative),
        _ => relative.to_path_buf(),
    }
}

/// up.toml: `--config FILE` (which must exist), else ./up.toml when present, else nothing.
fn up_file() -> anyhow::Result<(UpFile, Option<PathBuf>)> {
    // The global --config flag is parsed by `Cli`; the command only receives its own flags.
    let path = Cli::try_parse()
        .ok()
        .and_then(|cli| cli.config)
        .or_else(|| Some(PathBuf::from(DEFAULT_UP_CONFIG)).filter(|path| path.exists()));
    match path {
        Some(path) => {
            let file =
                UpFile::load(&path).with_context(|| format!("--config {}", path.display()))?;
            Ok((file, Some(path)))
        }
        None => Ok((UpFile::default(), None)),
    }
}

/// A replica count from the flag, else up.toml (checked like the flag), else `default`.
fn replica_count(
    flag: Option<u16>,
    file: Option<u16>,
    default: u16,
    key: &str,
) -> anyhow::Result<u16> {
    let count = flag.or(file).unwrap_or(default);
    anyhow::ensure!(
        (1..=64).contains(&count),
        "{key}: {count} is not between 1 and 64"
    );
    Ok(count)
}

/// The off-peak jobs: `[jobs]` of up.toml, the admin password from the environment, no backup
/// job on PostgreSQL (`brigade backup` fronts pgBackRest there, which runs on the database
/// host as the cluster's user, not under `up`).
fn jobs(settings: &Settings, args: &UpArgs, file: &UpFile) -> anyhow::Result<JobsPlan> {
    let mut plan = file.jobs_plan().context("up.toml [jobs]")?;
    if args.no_jobs {
        plan.enabled = false;
    }
    plan.admin_password = ["BRIGADE_JOBS_ADMIN_PASSWORD", "BRIGADE_DEMO_PASSWORD"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()));
    if settings.storage.database_kind() == Some(DatabaseKind::Postgres) {
        tracing::info!(
            "the store is PostgreSQL: no backup job (run brigade backup, pgBackRest, on the database host)"
        );
        plan = plan.without(JobKind::Backup);
    }
    Ok(plan)
}
