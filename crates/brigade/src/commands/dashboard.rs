//! `brigade dashboard`: the ops dashboard of `brigade up`, served alone against a balancer's
//! admin API and a watch.

use anyhow::{Context, bail};
use brigade_core::Shutdown;
use brigade_up::Dashboard;
use brigade_up::logs;

use crate::cli::DashboardArgs;

/// Serves the dashboard until SIGTERM or Ctrl-C.
pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let logs_dir = match &args.data_dir {
        Some(dir) => {
            let logs_dir = logs::dir(dir);
            if logs::files(&logs_dir).is_empty() {
                bail!(
                    "--data-dir {}: no central logs under {}",
                    dir.display(),
                    logs_dir.display()
                );
            }
            Some(logs_dir)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        balancer_admin = %args.balancer_admin,
        watch = args.watch.as_deref().unwrap_or("-"),
        "listening"
    );
    let dashboard = Dashboard::standalone(args.balancer_admin, args.watch, logs_dir);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    brigade_up::dashboard::serve(listener, dashboard, shutdown)
        .await
        .context("the dashboard stopped")?;
    Ok(())
}
