//! `brigade demo-data`.

use anyhow::Context as _;
use brigade_api::auth::Passwords;
use brigade_api::demo::DemoReport;
use brigade_core::Settings;

/// Loads the demo shops, menu and accounts, creating only what is missing.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = brigade_store::redact_url(&settings.storage.effective_url());
    let store = brigade_store::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let report = load(store.as_ref(), &settings).await?;
    store.close().await;
    if report.changed() {
        println!(
            "{url}: created {} shop(s), {} station(s), {} item(s), {} menu entr(ies), {} account(s)",
            report.shops,
            report.stations,
            report.items,
            report.menu_entries,
            report.accounts.len()
        );
        print_accounts(&report, &mut std::io::stdout());
    } else {
        println!("{url}: demo data already present, nothing changed");
    }
    Ok(())
}

/// Loads the demo data with the configured password cost and `BRIGADE_DEMO_PASSWORD`.
pub async fn load(
    store: &dyn brigade_store::Store,
    settings: &Settings,
) -> anyhow::Result<DemoReport> {
    let passwords = Passwords::new(
        settings.auth.argon2_memory_kib,
        settings.auth.argon2_iterations,
    );
    let password = std::env::var("BRIGADE_DEMO_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    brigade_api::demo::load(store, &passwords, password.as_deref())
        .await
        .context("loading demo data")
}

/// Prints the accounts this run created, with their passwords: the only time they are shown.
pub fn print_accounts(report: &DemoReport, out: &mut impl std::io::Write) {
    if report.accounts.is_empty() {
        return;
    }
    let _ = writeln!(out, "demo accounts (passwords are shown only now):");
    for account in &report.accounts {
        let _ = writeln!(
            out,
            "  {:<9} {:<32} {}",
            account.role.as_str(),
            account.email,
            account.password
        );
    }
}
