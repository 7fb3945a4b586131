//! Alert state, history, silences and the notification log round-trip through both backends.
//! The PostgreSQL case runs when BRIGADE_TEST_POSTGRES_URL is set (always under CI=true).

use brigade_core::config::{DatabaseKind, StorageSettings};
use brigade_watch::db::Db;

async fn round_trip(db: &Db, prefix: &str) {
    let rule = format!("{prefix}/group/Rule");
    db.save_rule_state(&rule, r#"{"a":1}"#, 1).await.unwrap();
    db.save_rule_state(&rule, r#"{"a":2}"#, 2).await.unwrap();
    let states = db.load_rule_states().await.unwrap();
    let mine: Vec<_> = states.iter().filter(|(k, _)| *k == rule).collect();
    assert_eq!(mine.len(), 1, "upserted, not duplicated");
    assert_eq!(mine[0].1, r#"{"a":2}"#);

    let name = format!("{prefix}Alert");
    for (state, at) in [("pending", 10), ("firing", 20), ("inactive", 30)] {
        db.append_history("fp", &name, state, at, r#"{"state":"x"}"#)
            .await
            .unwrap();
    }
    let history: Vec<_> = db
        .history(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.alertname == name)
        .collect();
    let states: Vec<&str> = history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(states, ["inactive", "firing", "pending"], "newest first");
    assert_eq!(history[0].alert["state"], "x");

    let silence = format!("{prefix}-silence");
    db.save_silence(&silence, "{}", 1_000).await.unwrap();
    db.save_silence(&silence, r#"{"x":1}"#, 5_000)
        .await
        .unwrap();
    let live = db.load_silences(4_000, 0).await.unwrap();
    assert!(
        live.iter()
            .any(|(id, body)| *id == silence && body == r#"{"x":1}"#)
    );
    let later = db.load_silences(10_000, 0).await.unwrap();
    assert!(
        !later.iter().any(|(id, _)| *id == silence),
        "ended silences are not loaded"
    );

    let key = format!("{prefix}/team/{{}}:{{}}");
    db.save_log_entry(&key, r#"{"at":1}"#, 1).await.unwrap();
    db.save_log_entry(&key, r#"{"at":2}"#, 2).await.unwrap();
    let log = db.load_log().await.unwrap();
    assert_eq!(log.iter().filter(|(k, _)| *k == key).count(), 1);
    assert!(log.iter().any(|(k, v)| *k == key && v == r#"{"at":2}"#));
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let db = Db::open(&settings).await.unwrap();
    assert_eq!(db.kind(), DatabaseKind::Sqlite);
    round_trip(&db, "sqlite").await;
}

/// Watch writes to the replicas' SQLite file through the same write gate: while another
/// process holds the file's write lock (as a replica does during an order), watch's write
/// waits for it instead of competing in SQLite's busy handler, and goes through once it is
/// released.
#[tokio::test]
async fn sqlite_writes_queue_at_the_replicas_write_gate() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let db = Db::open(&settings).await.unwrap();
    let database = settings.effective_url();
    let file = database
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let lock_path = format!("{}.write-lock", file.split('?').next().unwrap());
    // Another process's turn: `flock` from a child, held until we tell it to stop.
    let mut holder = std::process::Command::new("flock")
        .args(["--exclusive", &lock_path, "sleep", "1.5"])
        .spawn()
        .unwrap();
    // Wait until the child holds it (a non-blocking try fails).
    let lock = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&lock_path)
        .unwrap();
    while lock.try_lock().is_ok() {
        lock.unlock().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    db.save_rule_state("gate/Rule", "{}", 1).await.unwrap();
    let waited = started.elapsed();
    holder.wait().unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(800),
        "the write did not wait for the lock's holder ({waited:?})"
    );
    let states = db.load_rule_states().await.unwrap();
    assert!(states.iter().any(|(key, _)| key == "gate/Rule"));
}

#[tokio::test]
async fn postgres_round_trip() {
    let Some(url) = brigade_store::test_support::postgres_url() else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let settings = StorageSettings {
        database_url: Some(url),
        ..StorageSettings::default()
    };
    let db = Db::open(&settings).await.unwrap();
    assert_eq!(db.kind(), DatabaseKind::Postgres);
    round_trip(&db, &uuid::Uuid::now_v7().to_string()).await;
}
