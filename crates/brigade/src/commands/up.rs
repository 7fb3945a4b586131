//! `brigade up`: the whole architecture on this machine.

use std::net::SocketAddr;

use anyhow::Context;
use brigade_core::Shutdown;
use brigade_up::{Supervisor, UpOptions};

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
    let supervisor = Supervisor::new(options)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    supervisor.run(shutdown).await?;
    Ok(())
}
