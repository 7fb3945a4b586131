//! `brigade serve`.

use anyhow::Context as _;
use brigade_api::Application;
use brigade_core::{Settings, Shutdown};

/// Builds the application, optionally loads demo data, serves until a termination signal.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    if demo {
        let report = brigade_api::demo::load(application.store().as_ref())
            .await
            .context("loading demo data")?;
        tracing::info!(?report, "demo data loaded");
    }
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    application.run_until_stopped(shutdown).await?;
    Ok(())
}
