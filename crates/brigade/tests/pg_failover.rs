//! Failover of the primary, and failing WAL archiving, on clusters the test makes itself.
//!
//! Failover: a primary and a streaming
//! standby, and a real `brigade serve` using the primary's address. The primary crashes; while
//! no database answers, the replica says 503 with `Retry-After`, never 500; the standby is
//! promoted and takes over the primary's address (what a Kubernetes Service, a Patroni
//! endpoint or RDS Multi-AZ's DNS name does); the replica places orders again **without a
//! restart**, and every order acknowledged before the crash (and replayed by the standby) is
//! there.

mod common;
mod pg_cluster;
#[path = "../../../tests/support/promtool.rs"]
mod promtool;

use std::time::{Duration, Instant};

use pg_cluster::{Cluster, Replica};
use reqwest::blocking::Client;

/// Polls `check` every 100 ms until it holds, failing after `limit` with `what`.
fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `standby` has replayed everything `primary` has written so far.
fn caught_up(primary: &Cluster, standby: &Cluster) {
    let written = primary
        .query("SELECT pg_current_wal_lsn()")
        .expect("the primary answers");
    wait_until(
        "the standby replays the primary's writes",
        Duration::from_secs(30),
        || {
            standby.query(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"
            )) == Some("t".to_owned())
        },
    );
}

#[test]
fn replicas_follow_a_promoted_standby_to_the_primarys_address_without_a_restart() {
    let Some(bin) = pg_cluster::postgres_tools() else {
        return;
    };
    let primary = Cluster::start(&bin);
    let mut standby = Cluster::standby_of(&primary);
    let folder = tempfile::tempdir().unwrap();
    let replica = Replica::start(&primary.url(), folder.path());
    let client = Client::new();
    let token = common::log_in_at(&replica.base, "customer@brigade.demo");
    let order = common::sample_order_at(&replica.base);
    let before = replica.place_orders(20, 4);
    assert_eq!(
        before.len(),
        20,
        "every order before the crash is acknowledged"
    );
    caught_up(&primary, &standby);

    primary.pg_ctl_stop("immediate");
    let place = || {
        client
            .post(format!("{}/api/v1/orders", replica.base))
            .bearer_auth(&token)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&order)
            .send()
            .unwrap()
    };
    let refused = place();
    assert_eq!(refused.status(), 503, "no database: {:?}", refused.text());
    assert!(refused.headers().contains_key("retry-after"));

    // Failover: promote the standby and give it the primary's address.
    standby.promote();
    standby.pg_ctl_stop("fast");
    standby.port = primary.port;
    standby.pg_ctl_start();
    standby.wait_open();
    let opened = Instant::now();

    let mut statuses = Vec::new();
    wait_until(
        "the replica places orders on the new primary",
        Duration::from_secs(60),
        || {
            let status = place().status().as_u16();
            statuses.push(status);
            status == 201
        },
    );
    eprintln!(
        "first order on the new primary {} ms after it opened, answers meanwhile {statuses:?}",
        opened.elapsed().as_millis()
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "only 503 until the new primary answered, never a 500: {statuses:?}"
    );
    for id in &before {
        let read = client
            .get(format!("{}/api/v1/orders/{id}", replica.base))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(
            read.status(),
            200,
            "order {id} acknowledged before the crash"
        );
    }
    let ready = client
        .get(format!("{}/health/ready", replica.base))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200, "ready again on the new primary");
}

/// The value of the sample `name` (without labels) in a metrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.split(' ').next() == Some(name))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// A primary whose `archive_command` fails: every replica's `/metrics` says so (the alert
/// BrigadeWalArchiveFailing fires on it: last failure after the last success).
#[test]
fn failing_wal_archiving_shows_in_the_replicas_metrics() {
    let Some(bin) = pg_cluster::postgres_tools() else {
        return;
    };
    let primary = Cluster::start(&bin);
    for setting in [
        "ALTER SYSTEM SET archive_mode = on",
        "ALTER SYSTEM SET archive_command = 'false'",
        "ALTER SYSTEM SET wal_level = replica",
    ] {
        assert!(primary.query(setting).is_some(), "{setting}");
    }
    primary.pg_ctl_stop("fast");
    primary.pg_ctl_start();
    primary.query("CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n");
    primary.query("SELECT pg_switch_wal()");
    wait_until("the archiver fails", Duration::from_secs(30), || {
        primary
            .query("SELECT failed_count FROM pg_stat_archiver")
            .as_deref()
            > Some("0")
    });

    let folder = tempfile::tempdir().unwrap();
    let replica = Replica::start(&primary.url(), folder.path());
    let client = Client::new();
    let mut text = String::new();
    wait_until(
        "the replica exports the archiver's failures",
        Duration::from_secs(30),
        || {
            text = client
                .get(format!("{}/metrics", replica.base))
                .send()
                .unwrap()
                .text()
                .unwrap();
            sample(&text, "brigade_db_wal_archive_failures_total").is_some_and(|n| n >= 1.0)
        },
    );
    let failed_at = sample(
        &text,
        "brigade_db_wal_archive_last_failure_timestamp_seconds",
    )
    .unwrap();
    let archived_at = sample(
        &text,
        "brigade_db_wal_archive_last_success_timestamp_seconds",
    )
    .unwrap();
    assert!(
        failed_at > archived_at,
        "the last attempt failed, none succeeded since:\n{text}"
    );
    assert_eq!(sample(&text, "brigade_db_wal_archived_total"), Some(0.0));
    promtool::assert_accepts(&text, "a replica's /metrics with WAL archiving");
}
