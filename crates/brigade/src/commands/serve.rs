//! `brigade serve`.

use brigade_api::Application;
use brigade_core::{Settings, Shutdown};

/// Builds the application, optionally loads demo data, serves until a termination signal.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<()> {
    // A line per request: written in batches, not one system call each (see log_output).
    brigade_core::log_output::batch();
    if demo {
        super::demo_data::demo_password()?;
    }
    let application = Application::build(settings.clone()).await?;
    if demo {
        // Demo data reads what exists before writing what is missing: from the primary, since
        // a standby may not have the rows another replica just wrote.
        let store = application.store();
        let load = super::demo_data::load(store.as_ref(), &settings);
        let report = brigade_store::replica::with_read_scope(
            brigade_store::replica::ReadScope::Primary,
            load,
        )
        .await?;
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
