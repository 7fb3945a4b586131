//! `brigade demo-data`.

use anyhow::Context as _;
use brigade_core::Settings;

/// Loads the demo shops and menu, creating only what is missing.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = brigade_store::redact_url(&settings.storage.effective_url());
    let store = brigade_store::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let report = brigade_api::demo::load(store.as_ref())
        .await
        .context("loading demo data")?;
    store.close().await;
    if report.changed() {
        println!(
            "{url}: created {} shop(s), {} station(s), {} item(s), {} menu entr(ies)",
            report.shops, report.stations, report.items, report.menu_entries
        );
    } else {
        println!("{url}: demo data already present, nothing changed");
    }
    Ok(())
}
