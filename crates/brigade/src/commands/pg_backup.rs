//! `brigade backup` and `brigade restore` on a PostgreSQL store: pgBackRest, configured from
//! `[backup]` of brigade.toml (`brigade_store::pg_backup`). This file maps flags, settings
//! errors (exit 2, naming the key or flag) and prints what happened.

use anyhow::Context as _;
use brigade_core::Settings;
use brigade_store::pg_backup::{self, BackupKind, PitrError, Plan, RestoreTarget};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::commands::BadSetting;

/// A plan from the settings; a missing or unusable key is the user's to fix (exit 2).
fn plan(settings: &Settings) -> anyhow::Result<Plan> {
    Plan::from_settings(settings).map_err(settings_error)
}

/// Settings errors become [`BadSetting`]; the rest stay runtime failures (exit 1).
fn settings_error(error: PitrError) -> anyhow::Error {
    match error {
        PitrError::Setting { .. } => BadSetting(error.to_string()).into(),
        other => anyhow::Error::new(other),
    }
}

/// Takes a pgBackRest backup, expires old ones, checks the new one in a scratch cluster.
pub async fn backup(settings: Settings, args: BackupArgs) -> anyhow::Result<()> {
    if args.output.is_some() {
        Err(BadSetting(
            "--output: the store is PostgreSQL; its backups go to the pgBackRest repository \
             (backup.repo)"
                .into(),
        ))?;
    }
    let plan = plan(&settings)?;
    let kind = args.kind.map_or(BackupKind::Incr, BackupKind::from);
    let report = pg_backup::backup(&plan, kind, !args.no_verify)
        .await
        .map_err(settings_error)
        .context("backup failed")?;
    let backup = &report.backup;
    println!(
        "backup {} ({}) written to {} in {:.1} s: {} bytes of database, {} bytes stored; WAL {} … {}",
        backup.label,
        backup.kind,
        plan.repo.display(),
        report.took.as_secs_f64(),
        backup.info.size,
        backup.info.repository.delta,
        backup.archive.as_ref().map_or("-", |a| a.start.as_str()),
        backup.archive.as_ref().map_or("-", |a| a.stop.as_str()),
    );
    match &report.checked {
        Some(checked) => println!(
            "verified: restored into a scratch cluster and read back in {:.1} s ({} migrations, {} orders)",
            checked.took.as_secs_f64(),
            checked.migrations,
            checked.orders
        ),
        None => println!("not verified (--no-verify)"),
    }
    println!(
        "{} backup(s) kept (backup.retention_full = {} full): {}",
        report.kept.len(),
        plan.retention_full,
        report.kept.join(", ")
    );
    println!(
        "WAL is archived continuously (archive_timeout = {} s)",
        plan.archive_timeout_secs
    );
    Ok(())
}

/// Writes the data directory back from the repository (latest, or `--to` a time).
pub async fn restore(settings: Settings, args: RestoreArgs) -> anyhow::Result<()> {
    if args.file.is_some() || args.from.is_some() {
        Err(BadSetting(
            "FILE/--from: the store is PostgreSQL; it is restored from the pgBackRest \
             repository (backup.repo), to the latest point or --to TIMESTAMP"
                .into(),
        ))?;
    }
    let plan = plan(&settings)?;
    let target = args.to.map_or(RestoreTarget::Latest, RestoreTarget::Time);
    let report = pg_backup::restore(&plan, target)
        .await
        .map_err(settings_error)
        .context("restore failed")?;
    let until = match target {
        RestoreTarget::Latest => "the end of the archived WAL".to_owned(),
        RestoreTarget::Time(time) => time.to_rfc3339(),
    };
    println!(
        "restored {} from backup {} in {:.1} s; on start PostgreSQL replays WAL up to {until}, then opens for writes",
        report.pg_data.display(),
        report.newest_backup.as_deref().unwrap_or("-"),
        report.took.as_secs_f64()
    );
    println!(
        "start PostgreSQL (systemctl start postgresql, or pg_ctl start -D {}), then brigade",
        report.pg_data.display()
    );
    Ok(())
}
