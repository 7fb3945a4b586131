//! `brigade demo-data`.

use anyhow::Context as _;
use brigade_api::auth::Passwords;
use brigade_api::demo::{DemoAccount, DemoReport};
use brigade_core::Settings;
use brigade_domain::account::{MAX_PASSWORD, MIN_PASSWORD};
use brigade_up::demo_accounts::{self, DemoAccountEntry};

use super::BadSetting;

/// Loads the demo shops, menu and accounts, creating only what is missing; with
/// `reset_passwords`, gives the demo accounts that exist new passwords instead.
pub async fn run(settings: Settings, reset_passwords: bool) -> anyhow::Result<()> {
    demo_password()?;
    let url = brigade_store::redact_url(&settings.storage.effective_url());
    let store = brigade_store::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let outcome = if reset_passwords {
        reset(store.as_ref(), &settings).await
    } else {
        load(store.as_ref(), &settings).await.map(|report| {
            print_report(&url, &report);
        })
    };
    store.close().await;
    outcome
}

fn print_report(url: &str, report: &DemoReport) {
    if report.changed() {
        println!(
            "{url}: created {} shop(s), {} station(s), {} item(s), {} menu entr(ies), {} account(s)",
            report.shops,
            report.stations,
            report.items,
            report.menu_entries,
            report.accounts.len()
        );
        print_accounts(&report.accounts, &mut std::io::stdout());
    } else {
        println!("{url}: demo data already present, nothing changed");
    }
}

/// New passwords for the demo accounts that exist: printed and recorded in the accounts file.
async fn reset(store: &dyn brigade_store::Store, settings: &Settings) -> anyhow::Result<()> {
    let accounts = brigade_api::demo::reset_passwords(
        store,
        &passwords(settings),
        demo_password()?.as_deref(),
    )
    .await
    .context("resetting the demo passwords")?;
    anyhow::ensure!(
        !accounts.is_empty(),
        "no demo account exists; run `brigade demo-data` first"
    );
    record(settings, &accounts)?;
    print_accounts(&accounts, &mut std::io::stdout());
    Ok(())
}

/// Loads the demo data with the configured password cost and `BRIGADE_DEMO_PASSWORD`, and
/// records the accounts it created in `<data-dir>/demo-accounts.json`.
pub async fn load(
    store: &dyn brigade_store::Store,
    settings: &Settings,
) -> anyhow::Result<DemoReport> {
    let report = brigade_api::demo::load(store, &passwords(settings), demo_password()?.as_deref())
        .await
        .context("loading demo data")?;
    record(settings, &report.accounts)?;
    Ok(report)
}

fn passwords(settings: &Settings) -> Passwords {
    Passwords::new(
        settings.auth.argon2_memory_kib,
        settings.auth.argon2_iterations,
    )
}

/// `BRIGADE_DEMO_PASSWORD` when it is set and not empty. A password the accounts would refuse
/// is the user's to fix before anything is written: exit code 2, naming the variable (not a
/// "request is not valid" from deep inside the account rules).
pub fn demo_password() -> Result<Option<String>, BadSetting> {
    let Some(password) = std::env::var("BRIGADE_DEMO_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let length = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        Ok(Some(password))
    } else {
        Err(BadSetting(format!(
            "BRIGADE_DEMO_PASSWORD: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters, \
             like every account's password (it has {length})"
        )))
    }
}

fn record(settings: &Settings, accounts: &[DemoAccount]) -> anyhow::Result<()> {
    let entries: Vec<DemoAccountEntry> = accounts
        .iter()
        .map(|account| DemoAccountEntry {
            role: account.role.as_str().to_owned(),
            email: account.email.clone(),
            password: account.password.clone(),
        })
        .collect();
    demo_accounts::record(&settings.storage.data_dir, &entries)
        .context("cannot record the demo accounts")
}

/// Prints accounts with their passwords (they are also kept in `<data-dir>/demo-accounts.json`).
pub fn print_accounts(accounts: &[DemoAccount], out: &mut impl std::io::Write) {
    if accounts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "demo accounts (also in demo-accounts.json in the data directory; \
         `brigade demo-data --reset-passwords` sets new ones):"
    );
    for account in accounts {
        let _ = writeln!(
            out,
            "  {:<9} {:<32} {}",
            account.role.as_str(),
            account.email,
            account.password
        );
    }
}
