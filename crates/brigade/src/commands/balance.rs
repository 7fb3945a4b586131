//! `brigade balance`: the load balancer, configured by a file or, for one pool, by flags.

use std::path::Path;

use anyhow::{Context, bail};
use brigade_balance::tls::TlsConfig;
use brigade_balance::{Algorithm, BackendConfig, Config, PoolConfig, StartError};
use brigade_core::shutdown::Shutdown;
use clap::Parser;

use crate::cli::{BalanceArgs, Cli};
use crate::commands::BadSetting;

/// Runs the balancer until SIGTERM or Ctrl-C.
pub async fn run(args: BalanceArgs) -> anyhow::Result<()> {
    // The global --config flag is parsed by `Cli`; the command only receives its own flags, so
    // read the path from the same command line again.
    let config_path = Cli::try_parse().ok().and_then(|cli| cli.config);
    let config =
        config(&args, config_path.as_deref()).map_err(|error| BadSetting(format!("{error:#}")))?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let running = brigade_balance::start_with(config, config_path, shutdown.clone(), inherited()?)
        .await
        .map_err(|error| match error {
            // An address that cannot be bound is a bad `listen` or `admin.listen` setting.
            StartError::Bind { .. } | StartError::Tls(_) => {
                anyhow::Error::new(BadSetting(error.to_string()))
            }
            other => anyhow::Error::new(other),
        })?;
    brigade_balance::reload_on_sighup(running.state.clone(), shutdown);
    running.wait().await;
    Ok(())
}

/// Listening sockets handed over as descriptors 3 (public) and 4 (admin) under systemd's
/// `LISTEN_FDS` protocol — how `brigade up` keeps the public port accepting across balancer
/// restarts.
fn inherited() -> anyhow::Result<brigade_balance::Inherited> {
    let mut fds = listenfd::ListenFd::from_env();
    Ok(brigade_balance::Inherited {
        public: fds
            .take_tcp_listener(0)
            .context("LISTEN_FDS: descriptor 3 is not a TCP listener")?,
        admin: fds
            .take_tcp_listener(1)
            .context("LISTEN_FDS: descriptor 4 is not a TCP listener")?,
    })
}

/// The configuration from the file (if any) with the flags applied on top.
fn config(args: &BalanceArgs, path: Option<&Path>) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => {
            if args.backends.is_empty() && args.backups.is_empty() {
                bail!("give --config FILE or at least one --backend ADDR");
            }
            Config::default()
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(admin) = args.admin {
        config.admin.listen = admin;
    }
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let mut tls = config
            .tls
            .take()
            .unwrap_or_else(|| TlsConfig::new(cert.clone(), key.clone()));
        tls.cert = cert.clone();
        tls.key = key.clone();
        config.tls = Some(tls);
    }
    if !args.backends.is_empty() || !args.backups.is_empty() {
        let algorithm = match &args.algorithm {
            Some(name) => Algorithm::parse(name).with_context(|| format!("--algorithm {name}"))?,
            None => Algorithm::default(),
        };
        let backends = args
            .backends
            .iter()
            .map(|&address| (address, false))
            .chain(args.backups.iter().map(|&address| (address, true)))
            .map(|(address, backup)| BackendConfig {
                address,
                weight: 1,
                backup,
            })
            .collect();
        let mut pool = PoolConfig::new("default", algorithm, backends);
        if algorithm == Algorithm::ConsistentHash {
            bail!("--algorithm consistent_hash needs a hash key; configure it in a --config file");
        }
        if let Some(path) = &args.health_path {
            pool.health = Some(brigade_balance::config::HealthConfig {
                path: path.clone(),
                ..Default::default()
            });
        }
        config.pools = vec![pool];
        config.routes.clear();
    } else if args.algorithm.is_some() || args.health_path.is_some() {
        bail!(
            "--algorithm and --health-path apply to --backend pools; set them per pool in the file"
        );
    }
    config
        .validate()
        .context("invalid balancer configuration")?;
    Ok(config)
}
