//! `brigade migrate`.

use anyhow::Context as _;
use brigade_core::Settings;

/// Applies pending migrations and reports how many ran.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = brigade_store::redact_url(&settings.storage.effective_url());
    let store = brigade_store::connect_without_migrating(&settings.storage)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let applied = store.migrate().await.context("applying migrations")?;
    store.close().await;
    println!("{url}: {applied} migration(s) applied, schema up to date");
    Ok(())
}
