//! `brigade balance`: the load balancer, configured by a file or, for one pool, by flags.

use std::path::Path;

use anyhow::{Context, bail};
use brigade_balance::{Algorithm, BackendConfig, Config, PoolConfig};
use brigade_core::shutdown::Shutdown;
use clap::Parser;

use crate::cli::{BalanceArgs, Cli};

/// Runs the balancer until SIGTERM or Ctrl-C.
pub async fn run(args: BalanceArgs) -> anyhow::Result<()> {
    // The global --config flag is parsed by `Cli`; the command only receives its own flags, so
    // read the path from the same command line again.
    let config_path = Cli::try_parse().ok().and_then(|cli| cli.config);
    let config = config(&args, config_path.as_deref())?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let running = brigade_balance::start(config, config_path, shutdown.clone()).await?;
    brigade_balance::reload_on_sighup(running.state.clone(), shutdown);
    running.wait().await;
    Ok(())
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
