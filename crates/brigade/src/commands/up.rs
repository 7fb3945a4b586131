//! `brigade up`: the whole architecture on this machine.

use std::net::SocketAddr;

use anyhow::Context;
use brigade_core::Shutdown;
use brigade_up::{Autoscale, Supervisor, UpOptions};

use crate::cli::UpArgs;

/// Runs the supervisor until SIGTERM or Ctrl-C.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find the brigade executable")?;
    let mut options = UpOptions::new(binary, args.data_dir);
    options.listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    options.ops_listen = SocketAddr::from(([127, 0, 0, 1], args.ops_port));
    options.demo = !args.no_demo;
    options.watch = !args.no_watch;
    for pool in &mut options.pools {
        pool.replicas = usize::from(if pool.name == "kitchen" {
            args.kitchen_replicas
        } else {
            args.replicas
        });
    }
    if args.autoscale_max > 0 {
        anyhow::ensure!(
            args.autoscale_max >= usize::from(args.replicas),
            "--autoscale-max must be at least --replicas"
        );
        anyhow::ensure!(
            args.autoscale_target_in_flight > 0.0,
            "--autoscale-target-in-flight must be positive"
        );
        let orders = options.pools.iter_mut().find(|p| p.name == "orders");
        if let Some(orders) = orders {
            orders.autoscale = Some(Autoscale {
                min: usize::from(args.replicas),
                max: args.autoscale_max,
                target_in_flight: args.autoscale_target_in_flight,
                interval: std::time::Duration::from_millis(args.autoscale_interval_ms.max(100)),
                scale_down_window: std::time::Duration::from_secs(args.scale_down_window_secs),
                ..Autoscale::default()
            });
        }
    }
    let supervisor = Supervisor::new(options)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    supervisor.run(shutdown).await?;
    Ok(())
}
