//! A SQLite store on a disk of its own that fills up or turns read-only, then recovers: writes
//! fail as "unavailable" with the storage fault named while it lasts and succeed again as soon
//! as it is over, on the same store (no restart).

use std::time::{Duration, Instant};

use brigade_core::config::StorageSettings;
use brigade_domain::{Actor, GeoPoint, NewShop};
use brigade_store::test_support::SmallDisk;
use brigade_store::{StorageFault, Store, StoreError};

fn shop(n: usize) -> NewShop {
    NewShop {
        name: format!("Shop {n} {}", "x".repeat(2000)),
        region: "north".into(),
        location: GeoPoint {
            lat: 51.5,
            lon: -0.1,
        },
        open: true,
    }
}

/// A store with its data directory on a fresh 8 MiB disk made by `mount`; `None` (and a
/// note) without root.
async fn store_on_small_disk(
    mount: fn(&std::path::Path, u32) -> Option<SmallDisk>,
) -> Option<(std::sync::Arc<dyn Store>, SmallDisk, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = mount(dir.path(), 8) else {
        eprintln!("mounting a tmpfs needs root; skipping");
        return None;
    };
    let settings = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        max_connections: 4,
        ..StorageSettings::default()
    };
    let store = brigade_store::connect(&settings).await.unwrap();
    Some((store, disk, dir))
}

/// Writes until one fails; the error it failed with.
async fn write_until_refused(store: &dyn Store, from: usize) -> StoreError {
    for n in from..from + 10_000 {
        if let Err(error) = store.create_shop(&shop(n), &Actor::system()).await {
            return error;
        }
    }
    panic!("a full disk never refused a write");
}

/// Writes again until one succeeds, within `limit`; how long it took.
async fn write_again_within(store: &dyn Store, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut n = 1_000_000;
    loop {
        n += 1;
        match store.create_shop(&shop(n), &Actor::system()).await {
            Ok(_) => return started.elapsed(),
            Err(error) if started.elapsed() > limit => {
                panic!("writes did not recover within {limit:?}: {error:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_as_unavailable_and_they_work_again_once_space_is_freed() {
    let Some((store, disk, _dir)) = store_on_small_disk(SmallDisk::tmpfs).await else {
        return;
    };
    store.create_shop(&shop(0), &Actor::system()).await.unwrap();
    disk.fill();
    let refused = write_until_refused(store.as_ref(), 1).await;
    assert!(
        refused.is_retryable(),
        "a full disk is retryable: {refused:?}"
    );
    assert_eq!(refused.storage_fault(), Some(StorageFault::DiskFull));
    // Several failed transactions in a row, on every pooled connection.
    for n in 0..20 {
        let _ = store.create_shop(&shop(100 + n), &Actor::system()).await;
    }
    disk.free();
    let took = write_again_within(store.as_ref(), Duration::from_secs(5)).await;
    // And keep working: every pooled connection is clean, not only the first one tried.
    let writes = (0..16).map(|n| {
        let store = store.clone();
        async move {
            store
                .create_shop(&shop(2_000_000 + n), &Actor::system())
                .await
        }
    });
    for result in futures_join_all(writes).await {
        result.expect("every write after recovery succeeds");
    }
    eprintln!("writes recovered {took:?} after the disk was freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_disk_refuses_writes_as_unavailable_and_they_work_again_once_writable() {
    let Some((store, disk, _dir)) = store_on_small_disk(SmallDisk::ext4).await else {
        return;
    };
    store.create_shop(&shop(0), &Actor::system()).await.unwrap();
    disk.set_read_only(true);
    let refused = write_until_refused(store.as_ref(), 1).await;
    assert!(
        refused.is_retryable(),
        "a read-only disk is retryable: {refused:?}"
    );
    assert!(
        refused.storage_fault().is_some(),
        "the storage fault is named: {refused:?}"
    );
    disk.set_read_only(false);
    write_again_within(store.as_ref(), Duration::from_secs(5)).await;
    for n in 0..8 {
        store
            .create_shop(&shop(3_000_000 + n), &Actor::system())
            .await
            .expect("every write after recovery succeeds");
    }
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}
