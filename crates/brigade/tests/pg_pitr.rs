//! Point-in-time recovery of a PostgreSQL store through `brigade backup` / `brigade restore`
//! (pgBackRest), on clusters the tests make themselves: a backup, orders placed through a real
//! replica after it, the data directory lost, restore to the latest point → every order
//! acknowledged before the last archived WAL segment is back; restore to a time → orders
//! placed after it are absent. Settings errors name the key and exit 2. And the restore drill
//! on PostgreSQL: a real `brigade up` on the cluster, `brigade drill restore` losing the data
//! directory under load and restoring it by the runbook, RTO and RPO within their targets.

mod common;
mod pg_cluster;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{DEMO_PASSWORD, Running as _, Up};
use pg_cluster::{Cluster, Replica, assert_success};
use serde_json::Value;

/// brigade's `[backup]` settings for `cluster`, as environment variables.
fn backup_env(cluster: &Cluster) -> Vec<(&'static str, String)> {
    let dir = cluster.dir.path();
    vec![
        (
            "BRIGADE_BACKUP__PG_DATA",
            cluster.data().display().to_string(),
        ),
        (
            "BRIGADE_BACKUP__REPO",
            dir.join("repo").display().to_string(),
        ),
        ("BRIGADE_BACKUP__PG_SOCKET_DIR", dir.display().to_string()),
        (
            "BRIGADE_BACKUP__PG_BIN_DIR",
            cluster.bin.display().to_string(),
        ),
        (
            "BRIGADE_BACKUP__SCRATCH_DIR",
            dir.join("scratch").display().to_string(),
        ),
        // The shortest archive_timeout, so the test waits one second, not one minute, for a
        // segment with its orders to be shipped.
        ("BRIGADE_BACKUP__ARCHIVE_TIMEOUT_SECS", "1".into()),
    ]
}

/// A cluster with brigade's schema, WAL archiving set up by `brigade backup` as an operator
/// meets it (the first run sets archive_mode and asks for a restart), and a verified backup.
fn backed_up_cluster(bin: &std::path::Path) -> Cluster {
    let cluster = Cluster::start(bin);
    let env = backup_env(&cluster);
    assert_success("migrate", &cluster.brigade(&["migrate"], &env));

    let first = cluster.brigade(&["backup"], &env);
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("archive_mode") && stderr.contains("restart PostgreSQL"),
        "{stderr}"
    );
    cluster.pg_ctl_stop("fast");
    cluster.pg_ctl_start();

    let backup = cluster.brigade(&["backup", "--type", "full"], &env);
    assert_success("backup", &backup);
    let stdout = String::from_utf8_lossy(&backup.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("(full) written to"), "{stdout}");
    assert!(
        stdout.contains("verified: restored into a scratch cluster"),
        "{stdout}"
    );
    assert!(stdout.contains("archive_timeout = 1 s"), "{stdout}");
    assert_eq!(cluster.query("SHOW archive_timeout").as_deref(), Some("1s"));
    cluster
}

/// Waits until the WAL segment holding everything committed so far is in the repository.
fn wait_archived(cluster: &Cluster) {
    let segment = cluster
        .query("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let archived = cluster
            .query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            .unwrap_or_default();
        if archived.len() >= 24 && archived[..24] >= segment[..] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "segment {segment} not archived within 30 s (last: {archived:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Order ids in the store.
fn stored_orders(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .query("SELECT string_agg(id::text, ',') FROM orders")
        .unwrap()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn restore_to_latest_brings_back_every_archived_acknowledged_order() {
    let Some(bin) = pg_cluster::tools() else {
        return;
    };
    let cluster = backed_up_cluster(&bin);
    let env = backup_env(&cluster);
    let replica = Replica::start(&cluster.url(), cluster.dir.path());
    let acknowledged = replica.place_orders(60, 6);
    assert_eq!(acknowledged.len(), 60, "every order is acknowledged");
    wait_archived(&cluster);

    // A restore over a running cluster is refused and changes nothing.
    let refused = cluster.brigade(&["restore"], &env);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop it before restoring"),
        "{refused:?}"
    );

    // The disk is lost: the server dies and its data directory is gone.
    drop(replica);
    cluster.pg_ctl_stop("immediate");
    std::fs::remove_dir_all(cluster.data()).unwrap();

    let started = Instant::now();
    let restored = cluster.brigade(&["restore"], &env);
    assert_success("restore", &restored);
    assert!(
        String::from_utf8_lossy(&restored.stdout).contains("end of the archived WAL"),
        "{restored:?}"
    );
    let written = started.elapsed();
    cluster.pg_ctl_start();
    cluster.wait_open();
    // The figures docs/benchmarks.md quotes (run with --nocapture).
    eprintln!(
        "restore: data directory written in {:.2} s, open for writes {:.2} s after the restore began",
        written.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let stored = stored_orders(&cluster);
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(missing.is_empty(), "acknowledged orders lost: {missing:?}");

    // The restored store serves, and archiving goes on: the next backup works.
    let replica = Replica::start(&cluster.url(), cluster.dir.path());
    assert_eq!(replica.place_orders(5, 1).len(), 5);
    drop(replica);
    let next = cluster.brigade(&["backup", "--no-verify"], &env);
    assert_success("backup after restore", &next);
    assert!(
        String::from_utf8_lossy(&next.stdout).contains("(incr)"),
        "{next:?}"
    );
}

#[test]
fn restore_to_a_time_leaves_out_what_came_later() {
    let Some(bin) = pg_cluster::tools() else {
        return;
    };
    let cluster = backed_up_cluster(&bin);
    let env = backup_env(&cluster);
    let replica = Replica::start(&cluster.url(), cluster.dir.path());
    let before = replica.place_orders(20, 4);
    assert_eq!(before.len(), 20);
    let target = cluster
        .query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        .unwrap();
    let after = replica.place_orders(20, 4);
    assert_eq!(after.len(), 20);
    wait_archived(&cluster);
    drop(replica);

    // A mistake to undo rather than a lost disk: the data directory is still there.
    cluster.pg_ctl_stop("fast");
    let restored = cluster.brigade(&["restore", "--to", &target], &env);
    assert_success("restore --to", &restored);
    cluster.pg_ctl_start();
    cluster.wait_open();
    let stored = stored_orders(&cluster);
    for id in &before {
        assert!(
            stored.contains(id),
            "order {id} placed before {target} is missing"
        );
    }
    for id in &after {
        assert!(
            !stored.contains(id),
            "order {id} placed after {target} came back"
        );
    }
}

/// Arguments, settings, and the key or flag the error must name.
type Case<'a> = (&'a [&'a str], Vec<(&'a str, String)>, &'a str);

#[test]
fn backup_settings_errors_name_the_key_and_exit_2() {
    let Some(bin) = pg_cluster::tools() else {
        return;
    };
    let cluster = Cluster::start(&bin);
    let cases: [Case; 5] = [
        (&["backup"], vec![], "backup.pg_data"),
        (
            &["backup"],
            vec![("BRIGADE_BACKUP__ARCHIVE_TIMEOUT_SECS", "120".into())],
            "backup.archive_timeout_secs",
        ),
        (&["restore", "--to", "yesterday"], vec![], "--to"),
        (
            &["backup", "--output", "x.db"],
            backup_env(&cluster),
            "--output",
        ),
        (&["restore", "some.db"], backup_env(&cluster), "FILE"),
    ];
    for (args, env, key) in cases {
        let output = cluster.brigade(args, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?} should name {key}: {stderr}");
    }
    // Run as another user than the cluster's (root here), pgBackRest would write a repository
    // the server's archive-push cannot use: refused before anything is written.
    if pg_cluster::is_root() {
        let output = std::process::Command::new(pg_cluster::BRIGADE)
            .arg("backup")
            .current_dir(cluster.dir.path())
            .env("DATABASE_URL", cluster.url())
            .envs(backup_env(&cluster))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("backup.pg_data") && stderr.contains("sudo -u postgres"),
            "{stderr}"
        );
        assert!(!cluster.dir.path().join("repo").exists(), "nothing written");
    }
    // SQLite has no point-in-time restore.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(pg_cluster::BRIGADE)
        .args(["restore", "--to", "2026-01-01T00:00:00Z", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--to"));
}

/// Each orders replica's instance and process.
fn replica_processes(up: &Up) -> Vec<(String, u64)> {
    up.status()["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == "serve")
        .map(|c| {
            (
                c["instance"].as_str().unwrap().to_owned(),
                c["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn restore_drill_loses_the_cluster_and_restores_it_within_rto_and_rpo() {
    let Some(bin) = pg_cluster::tools() else {
        return;
    };
    let cluster = backed_up_cluster(&bin);
    let url = cluster.url();
    let data = tempfile::tempdir().unwrap();
    let up = Up::start_with(data.path(), &["--no-watch"], &[("DATABASE_URL", &url)]);
    let replicas = replica_processes(&up);
    assert!(replicas.len() >= 2, "{replicas:?}");
    let ops_token = common::ops_token(&up.ops);
    let drill = [
        "drill",
        "restore",
        "--ops",
        &up.ops,
        "--phase-secs",
        "2",
        "--clients",
        "2",
        "--ops-token",
        &ops_token,
        "--json",
    ];
    let mut env = backup_env(&cluster);
    env.push(("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD.into()));

    // What would fail once the disk is gone is refused first: a missing setting, and another
    // OS user than the cluster's (root here); both exit 2 naming the key.
    let unset = cluster.brigade(&drill, &[("BRIGADE_DEMO_PASSWORD", DEMO_PASSWORD.into())]);
    assert_eq!(unset.status.code(), Some(2), "{unset:?}");
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("backup.pg_data"),
        "{unset:?}"
    );
    if pg_cluster::is_root() {
        let output = std::process::Command::new(pg_cluster::BRIGADE)
            .args(drill)
            .current_dir(cluster.dir.path())
            .env("DATABASE_URL", &url)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("backup.pg_data") && stderr.contains("sudo -u postgres"),
            "{stderr}"
        );
    }
    assert_eq!(cluster.query("SELECT 1").as_deref(), Some("1"), "untouched");

    let output = cluster.brigade(&drill, &env);
    let report = common::drill_report("restore", &output);
    for claim in [
        "the cluster was restored from the repository to the end of the archived WAL",
        "RTO <= 60 s",
        "RPO <= 60 s",
        "every order acknowledged more than",
        "every order acknowledged after the restore is there",
        "no order placed twice",
        "the replicas reconnected without being restarted",
        "requests failed only with 503 while the cluster was lost",
    ] {
        let found = report["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["claim"].as_str().unwrap().starts_with(claim))
            .unwrap_or_else(|| panic!("claim {claim:?} missing: {report:#}"));
        assert_eq!(found["holds"], true, "{claim}: {report:#}");
    }
    assert!(output.status.success(), "{report:#}");
    let check = &report["restore"];
    let steps = &check["postgres"];
    // The figures docs/benchmarks.md and docs/operations.md quote (run with --nocapture).
    eprintln!("restore drill on PostgreSQL: {check:#}");
    assert!(check["rto_ms"].as_u64().unwrap() <= 60_000, "{check}");
    assert!(check["rpo_ms"].as_u64().unwrap() <= 60_000, "{check}");
    // Every order acknowledged before the archive's last segment came back; with
    // archive_timeout = 1 s that segment is seconds behind the fault.
    assert_eq!(check["lost_beyond_bound"], 0, "{check}");
    assert_eq!(check["lost_after_restore"], 0, "{check}");
    assert!(check["bound_ms"].as_u64().unwrap() <= 10_000, "{check}");
    for step in [
        "stopped_ms",
        "deleted_ms",
        "restored_ms",
        "started_ms",
        "open_ms",
    ] {
        assert!(steps[step].as_u64().is_some(), "{step}: {steps}");
    }
    assert!(report["acknowledged"].as_u64().unwrap() > 3, "{report}");

    // The replicas found the restored cluster by themselves: the same processes serve.
    assert_eq!(replica_processes(&up), replicas);
    let orders: Value = reqwest::blocking::get(up.url("/api/v1/shops"))
        .unwrap()
        .json()
        .unwrap();
    assert!(!orders.as_array().unwrap().is_empty(), "{orders}");
    // The restored cluster is a primary that archives again: the next backup works.
    assert_eq!(
        cluster.query("SELECT pg_is_in_recovery()").as_deref(),
        Some("f")
    );
    let next = cluster.brigade(&["backup", "--no-verify"], &backup_env(&cluster));
    assert_success("backup after the drill", &next);
}
