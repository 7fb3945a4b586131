//! `brigade serve`.

use brigade_api::Application;
use brigade_core::{Settings, Shutdown};

/// Builds the application, optionally loads demo data, serves until a termination signal.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let application = Application::build(settings.clone()).await?;
    if demo {
        let report = super::demo_data::load(application.store().as_ref(), &settings).await?;
        tracing::info!(
            shops = report.shops,
            items = report.items,
            accounts = report.accounts.len(),
            "demo data loaded"
        );
        // Passwords go to the terminal, never into the log stream.
        super::demo_data::print_accounts(&report.accounts, &mut std::io::stderr());
    }
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    application.run_until_stopped(shutdown).await?;
    Ok(())
}
