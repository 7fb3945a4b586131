//! Continuous SQLite backups and the restore drill, end to end in short form: a real
//! `brigade up` backing its store up every second, `brigade drill restore` deleting the store
//! mid-run, `up` putting the newest backup back by itself.

mod common;
#[path = "../../../tests/support/promtool.rs"]
mod promtool;

use std::time::Duration;

use common::{Running, Up};
use serde_json::Value;

fn ops_get(up: &Up, path: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(format!("http://{}{path}", up.ops)).unwrap()
}

#[test]
fn restore_drill_brings_the_store_back_within_rto_and_rpo() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.toml");
    std::fs::write(&config, "[backup]\ninterval_secs = 1\nkeep = 5\n").unwrap();
    let data = dir.path().join("data");
    let up = Up::start_with(&data, &["--config", config.to_str().unwrap()], &[]);

    // Backups are taken while nothing else happens, and pruned to `keep`.
    common::wait_until("a backup", Duration::from_secs(20), || {
        ops_get(&up, "/api/backups").json::<Value>().unwrap()["succeeded"]
            .as_u64()
            .unwrap()
            >= 1
    });

    let (report, passed) = up.drill("restore", 1, &[]);
    for claim in [
        "the store was restored from a verified backup",
        "RTO <= 60 s",
        "RPO <= 60 s",
        "every order acknowledged more than",
        "every order acknowledged after the restore is there",
        "no order placed twice",
    ] {
        let found = report["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["claim"].as_str().unwrap().starts_with(claim))
            .unwrap_or_else(|| panic!("claim {claim:?} missing: {report:#}"));
        assert_eq!(found["holds"], true, "{claim}: {report:#}");
    }
    assert!(passed, "{report:#}");
    let check = &report["restore"];
    assert!(check["rto_ms"].as_u64().unwrap() <= 60_000, "{check}");
    assert!(check["rpo_ms"].as_u64().unwrap() <= 60_000, "{check}");
    assert_eq!(check["lost_beyond_bound"], 0, "{check}");
    assert!(check["bound_ms"].as_u64().unwrap() <= 4_000, "{check}");
    assert!(report["acknowledged"].as_u64().unwrap() > 3, "{report}");
    // Writers kept going while backups ran every second.
    assert_eq!(report["failed_by_phase"][0], 0, "{report}");

    // The supervisor says what it did, and its metrics count it.
    let view: Value = ops_get(&up, "/api/backups").json().unwrap();
    let restore = &view["restores"][0];
    assert_eq!(restore["outcome"], "succeeded", "{view:#}");
    assert!(restore["ready_ms"].as_u64().is_some(), "{view:#}");
    let metrics = ops_get(&up, "/metrics").text().unwrap();
    for line in [
        "brigade_store_restores_total{outcome=\"succeeded\"} 1",
        "brigade_backup_interval_seconds 1",
        "brigade_backup_age_seconds ",
        "brigade_backup_last_success_timestamp_seconds ",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    promtool::assert_accepts(&metrics, "the supervisor's /metrics");
    let kept = std::fs::read_dir(data.join("backups").join("continuous"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("brigade-")
        })
        .count();
    assert!((1..=5).contains(&kept), "{kept} backups kept");

    // The restored store serves: the demo shops are there, new orders are taken.
    let shops: Value = reqwest::blocking::get(up.url("/api/v1/shops"))
        .unwrap()
        .json()
        .unwrap();
    assert!(!shops.as_array().unwrap().is_empty(), "{shops}");
}

#[test]
fn a_bad_backup_setting_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.toml");
    std::fs::write(&config, "[backup]\ninterval_secs = 7200\n").unwrap();
    let output = std::process::Command::new(common::BRIGADE)
        .args(["up", "--port", "0", "--ops-port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("backup.interval_secs"), "{stderr}");
}
