//! `brigade backup` and `brigade restore`: the embedded SQLite store, copied consistently while
//! replicas write, and put back while nothing runs (the named backup, or the newest one that
//! verifies). A PostgreSQL store goes to `super::pg_backup` (pgBackRest). The work is
//! `brigade_store::sqlite_backup`; this file maps flags and messages (a backup that cannot be
//! used is the user's input to fix: exit 2, naming FILE or --from).

use anyhow::{Context as _, bail};
use brigade_core::Settings;
use brigade_core::config::DatabaseKind;
use brigade_store::sqlite_backup::{self, BackupError};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::commands::BadSetting;

/// Takes a backup and prunes old ones; prints one line saying where it went.
pub async fn backup(settings: Settings, args: BackupArgs) -> anyhow::Result<()> {
    if settings.storage.database_kind() == Some(DatabaseKind::Postgres) {
        return super::pg_backup::backup(settings, args).await;
    }
    if args.kind.is_some() || args.no_verify {
        Err(BadSetting(
            "--type/--no-verify: only for a PostgreSQL store (pgBackRest); SQLite backups are \
             whole copies, always checked"
                .into(),
        ))?;
    }
    let database = sqlite_backup::database_path(&settings.storage)?;
    let backups = sqlite_backup::backups_dir(&database);
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| backups.join(sqlite_backup::default_name(chrono::Utc::now())));
    let backup = match sqlite_backup::backup(&database, &output).await {
        Ok(backup) => backup,
        Err(BackupError::Exists(path)) if args.output.is_some() => {
            bail!(
                "--output: {} already exists (backups never overwrite)",
                path.display()
            )
        }
        Err(BackupError::NoDatabase(path)) => bail!(
            "no database at {} (check --data-dir / --database-url)",
            path.display()
        ),
        Err(error) => return Err(error).context("backup failed"),
    };
    // Only the default directory is pruned: a file written elsewhere is the caller's to keep.
    let pruned = if output.parent() == Some(backups.as_path()) {
        sqlite_backup::prune(&backups, usize::from(args.keep))
            .context("backup written, but pruning old backups failed")?
    } else {
        Vec::new()
    };
    println!(
        "backup written: {} ({} bytes, {} migrations, integrity ok); {} older backup(s) deleted",
        backup.path.display(),
        backup.bytes,
        backup.migrations,
        pruned.len()
    );
    Ok(())
}

/// Verifies the backup and puts it in place of the store, keeping the replaced file.
pub async fn restore(settings: Settings, args: RestoreArgs) -> anyhow::Result<()> {
    if settings.storage.database_kind() == Some(DatabaseKind::Postgres) {
        return super::pg_backup::restore(settings, args).await;
    }
    if args.to.is_some() {
        Err(BadSetting(
            "--to: point-in-time restore needs a PostgreSQL store; SQLite restores a backup \
             file (FILE or the newest in --from)"
                .into(),
        ))?;
    }
    let database = sqlite_backup::database_path(&settings.storage)?;
    let (file, verified) = match &args.file {
        Some(file) => match sqlite_backup::verify(file).await {
            Ok(verified) => (file.clone(), verified),
            Err(error) => Err(BadSetting(format!("FILE: {error}; nothing was changed")))?,
        },
        None => {
            let backups = sqlite_backup::backups_dir(&database);
            let dirs = match &args.from {
                Some(dir) => vec![dir.clone()],
                None => vec![backups.join("continuous"), backups],
            };
            match sqlite_backup::newest_verified(&dirs).await {
                Ok(found) => found,
                Err(error) => Err(BadSetting(format!(
                    "--from: {error}; nothing was changed (name a backup FILE or another --from DIR)"
                )))?,
            }
        }
    };
    let restored = match sqlite_backup::ensure_unused(&database).await {
        Ok(()) => sqlite_backup::put_in_place(&file, &database, verified),
        Err(error) => Err(error),
    };
    let restored = match restored {
        Ok(restored) => restored,
        Err(error @ BackupError::InUse(_)) => bail!("{error}; nothing was changed"),
        Err(error) => return Err(error).context("restore failed"),
    };
    println!(
        "restored {} into {} ({} migrations, integrity ok)",
        file.display(),
        restored.database.display(),
        restored.verified.migrations
    );
    for aside in &restored.moved_aside {
        println!("  the replaced file is kept as {}", aside.display());
    }
    println!("start brigade again (brigade up or brigade serve) to serve the restored data");
    Ok(())
}
