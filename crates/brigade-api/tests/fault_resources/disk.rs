//! SQLite on a disk that fills up or turns read-only.

use std::sync::Arc;

use brigade_core::config::{CacheSettings, StorageSettings};
use brigade_store::test_support::SmallDisk;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, TestDb, spawn_configured, test_settings};
use crate::support::{none_lost, place_until_refused, readiness, recover};

/// A replica whose data directory is a fresh disk made by `mount`; `None` without root.
async fn replica_on(
    mount: fn(&std::path::Path, u32) -> Option<SmallDisk>,
) -> Option<(TestApp, SmallDisk)> {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = mount(dir.path(), 16) else {
        eprintln!("mounting a file system needs root; skipping");
        return None;
    };
    let storage = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let settings = test_settings(storage, CacheSettings::default());
    let app = spawn_configured(Arc::new(TestDb::Sqlite(dir)), settings, Backend::Sqlite).await;
    Some((app, disk))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_is_not_ready_and_recovers_once_space_is_freed() {
    let Some((app, disk)) = replica_on(SmallDisk::tmpfs).await else {
        return;
    };
    let fixture = app.fixture("Full Disk Pizza", 52.52, 13.40).await;
    let mut acknowledged = Vec::new();
    assert_eq!(readiness(&app).await.0, StatusCode::OK);

    disk.fill();
    let problem = place_until_refused(&app, &fixture, &mut acknowledged).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("disk-full"),
        "{problem}"
    );
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["writes"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["writes"]["reason"], "disk-full", "{body}");
    // Still not ready a moment later: the probe write fails too.
    tokio::time::sleep(write_probe_interval()).await;
    assert_eq!(readiness(&app).await.0, StatusCode::SERVICE_UNAVAILABLE);

    disk.free();
    let took = recover(&app, &fixture, &mut acknowledged).await;
    eprintln!("disk full: serving and ready again {took:?} after space was freed");
    // Every pooled connection works again, not only the one that recovered first.
    for _ in 0..20 {
        let key = uuid::Uuid::now_v7().to_string();
        match crate::support::place(&app, &fixture, &key).await {
            crate::support::Placed::Acknowledged(id) => acknowledged.push(id),
            crate::support::Placed::Unavailable(problem) => panic!("after recovery: {problem}"),
        }
    }
    none_lost(&app, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_through_a_full_disk_lose_no_acknowledged_order() {
    let Some((app, disk)) = replica_on(SmallDisk::tmpfs).await else {
        return;
    };
    let fixture = app.fixture("Crowded Disk Pizza", 52.52, 13.40).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crowd = crate::support::careful_clients(&app, &fixture, 16, stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    disk.fill();
    // Not ready while it lasts, with the reason.
    let started = std::time::Instant::now();
    loop {
        let (status, body) = readiness(&app).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["checks"]["writes"]["reason"], "disk-full", "{body}");
            break;
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "readiness never said so: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    disk.free();
    let mut acknowledged = Vec::new();
    let fixture_again = fixture.clone();
    let took = recover(&app, &fixture_again, &mut acknowledged).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let crowd = crowd.await.unwrap();
    eprintln!(
        "16 clients through a full disk: {} orders acknowledged, {} answers 503, recovered {took:?} \
         after space was freed",
        crowd.acknowledged.len(),
        crowd.unavailable
    );
    assert!(crowd.unavailable > 0, "the clients met the full disk");
    let mut ids = crowd.acknowledged.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        crowd.acknowledged.len(),
        "no order acknowledged twice"
    );
    acknowledged.extend(ids);
    none_lost(&app, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_answers_503_is_not_ready_and_recovers_once_writable() {
    let Some((app, disk)) = replica_on(SmallDisk::ext4).await else {
        return;
    };
    let fixture = app.fixture("Read Only Pizza", 52.52, 13.40).await;
    let mut acknowledged = Vec::new();

    disk.set_read_only(true);
    place_until_refused(&app, &fixture, &mut acknowledged).await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["writes"]["status"], "down", "{body}");
    assert!(body["checks"]["writes"]["reason"].is_string(), "{body}");

    disk.set_read_only(false);
    let took = recover(&app, &fixture, &mut acknowledged).await;
    eprintln!("read-only data directory: serving and ready again {took:?} after");
    none_lost(&app, &acknowledged).await;
}

/// A little longer than readiness waits between two probe writes.
fn write_probe_interval() -> std::time::Duration {
    std::time::Duration::from_millis(600)
}
