//! Backup and restore of the SQLite store on real files: a backup taken while writes go on is
//! a valid database holding every row committed before it started; a restore puts it back and
//! keeps the replaced file; files that are not brigade databases and a store in use are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brigade_core::config::StorageSettings;
use brigade_domain::{Actor, GeoPoint, NewShop};
use brigade_store::sqlite_backup::{self, BackupError};
use brigade_store::{ShopFilter, Store};

fn settings(dir: &Path) -> StorageSettings {
    StorageSettings {
        data_dir: dir.to_path_buf(),
        ..StorageSettings::default()
    }
}

async fn add_shop(store: &dyn Store, name: &str) {
    store
        .create_shop(
            &NewShop {
                name: name.into(),
                region: "test".into(),
                location: GeoPoint {
                    lat: 52.5,
                    lon: 13.4,
                },
                open: true,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
}

async fn shop_names(store: &dyn Store) -> Vec<String> {
    store
        .list_shops(&ShopFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|shop| shop.name)
        .collect()
}

/// A store on a copy of `file` in a fresh directory (the copy is migrated like any start).
async fn open_copy(file: &Path) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file, dir.path().join("brigade.db")).unwrap();
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_writes_is_consistent_and_holds_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    for n in 0..20 {
        add_shop(store.as_ref(), &format!("before-{n:03}")).await;
    }
    let database = sqlite_backup::database_path(&settings(dir.path())).unwrap();
    assert_eq!(database, dir.path().join("brigade.db"));

    // A writer keeps committing while the backup runs.
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let store = store.clone();
        let written = written.clone();
        tokio::spawn(async move {
            for n in 0..400 {
                add_shop(store.as_ref(), &format!("during-{n:03}")).await;
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while written.load(Ordering::SeqCst) < 5 {
        tokio::task::yield_now().await;
    }
    let at_start = written.load(Ordering::SeqCst);
    let output =
        sqlite_backup::backups_dir(&database).join(sqlite_backup::default_name(chrono::Utc::now()));
    let backup = sqlite_backup::backup(&database, &output).await.unwrap();
    let at_end = written.load(Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        at_end > at_start,
        "writes went on while the backup ran ({at_start} → {at_end})"
    );

    assert_eq!(backup.path, output);
    assert!(output.starts_with(dir.path().join("backups")));
    assert!(backup.bytes > 0);
    let verified = sqlite_backup::verify(&output).await.unwrap();
    assert_eq!(verified.migrations, backup.migrations);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| *path != output)
        .collect();
    assert!(leftovers.is_empty(), "only the backup file: {leftovers:?}");

    let (_copy_dir, copy) = open_copy(&output).await;
    let names = shop_names(copy.as_ref()).await;
    let during = names.iter().filter(|n| n.starts_with("during-")).count();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("before-")).count(),
        20
    );
    assert!(
        (at_start..=at_end).contains(&during),
        "the copy is one instant between the backup's start and end: {during} not in {at_start}..={at_end}"
    );
    // A consistent snapshot is a prefix of the writer's sequence, never a gap.
    for n in 0..during {
        assert!(
            names.contains(&format!("during-{n:03}")),
            "during-{n:03} missing"
        );
    }

    // Backups never overwrite.
    assert!(matches!(
        sqlite_backup::backup(&database, &output).await,
        Err(BackupError::Exists(_))
    ));
    copy.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_round_trip_keeps_the_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("brigade.db");
    let output = dir.path().join("elsewhere").join("snapshot.db");
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    add_shop(store.as_ref(), "kept").await;
    sqlite_backup::backup(&database, &output).await.unwrap();
    add_shop(store.as_ref(), "after the backup").await;

    // While the store is open, restoring is refused and nothing changes.
    let refused = sqlite_backup::restore(&output, &database).await;
    assert!(matches!(refused, Err(BackupError::InUse(_))), "{refused:?}");
    assert_eq!(
        shop_names(store.as_ref()).await,
        ["after the backup", "kept"]
    );
    store.close().await;

    let restored = sqlite_backup::restore(&output, &database).await.unwrap();
    assert_eq!(restored.database, database);
    assert!(!restored.moved_aside.is_empty());
    let aside = &restored.moved_aside[0];
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("brigade.db.before-restore-"),
        "{aside:?}"
    );
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    assert_eq!(shop_names(store.as_ref()).await, ["kept"]);
    add_shop(store.as_ref(), "after the restore").await;
    store.close().await;

    // The replaced database is intact beside it.
    let (_old_dir, old) = open_copy(aside).await;
    assert_eq!(shop_names(old.as_ref()).await, ["after the backup", "kept"]);
    old.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_files_that_are_not_brigade_databases() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("brigade.db");
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    add_shop(store.as_ref(), "live").await;
    let good = dir.path().join("good.db");
    sqlite_backup::backup(&database, &good).await.unwrap();
    store.close().await;

    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "these are not the rows you are looking for\n".repeat(200),
    )
    .unwrap();

    let foreign = dir.path().join("foreign.db");
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&foreign)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE things (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    // A backup with a page scribbled over.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&good).unwrap();
    let page = 4096;
    assert!(bytes.len() > 3 * page);
    for byte in &mut bytes[2 * page + 16..3 * page] {
        *byte = 0x5a;
    }
    std::fs::write(&damaged, bytes).unwrap();

    for (file, expected) in [
        (&text, "not a database"),
        (&foreign, "no migrations table"),
        (&damaged, ""),
        (&dir.path().join("missing.db"), "no such file"),
    ] {
        let result = sqlite_backup::restore(file, &database).await;
        match result {
            Err(BackupError::NotBrigade { path, reason }) => {
                assert_eq!(&path, file);
                assert!(reason.contains(expected), "{file:?}: {reason}");
            }
            other => panic!("{file:?} was not refused: {other:?}"),
        }
    }
    // The live database was never touched.
    let store = brigade_store::connect(&settings(dir.path())).await.unwrap();
    assert_eq!(shop_names(store.as_ref()).await, ["live"]);
    store.close().await;
    let only_db: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("before-restore"))
        .collect();
    assert!(only_db.is_empty(), "{only_db:?}");

    // The good one restores.
    sqlite_backup::restore(&good, &database).await.unwrap();
}
