//! The snapshot follows every state change selection depends on, without a walk per request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::Outcome;
use crate::clock::uptime_ms;
use crate::config::{OutlierConfig, PoolConfig, RetryConfig};
use crate::pool::Pool;

fn pool(algorithm: &str, backends: &[(u16, u32, bool)], extra: &str) -> Pool {
    let mut text = format!("name = \"p\"\nalgorithm = \"{algorithm}\"\n{extra}\n");
    for (port, weight, backup) in backends {
        text.push_str(&format!(
            "[[backends]]\naddress = \"127.0.0.1:{port}\"\nweight = {weight}\nbackup = {backup}\n"
        ));
    }
    let config: PoolConfig = toml::from_str(&text).expect("pool config");
    Pool::new(config, &RetryConfig::default(), None)
}

fn counts(pool: &Pool, n: usize) -> HashMap<u16, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let b = pool.pick(None, &[]).expect("a backend");
        *seen.entry(b.address.port()).or_default() += 1;
    }
    seen
}

#[test]
fn draining_and_health_changes_reach_the_next_pick() {
    let p = pool(
        "least_requests",
        &[(1, 1, false), (2, 1, false), (3, 1, false)],
        "",
    );
    assert_eq!(counts(&p, 300).len(), 3);
    p.backend("127.0.0.1:2").unwrap().set_draining(true);
    let seen = counts(&p, 300);
    assert!(!seen.contains_key(&2), "{seen:?}");
    p.backend("127.0.0.1:3").unwrap().set_healthy(false);
    assert_eq!(counts(&p, 100), HashMap::from([(1, 100)]));
    p.backend("127.0.0.1:2").unwrap().set_draining(false);
    assert_eq!(counts(&p, 300).len(), 2);
}

#[test]
fn an_ejected_backend_returns_when_its_ejection_ends() {
    let extra = "[outlier]\nconsecutive_failures = 1\nbase_ejection_ms = 50\nmax_ejection_ms = 50";
    let p = pool("least_requests", &[(1, 1, false), (2, 1, false)], extra);
    let outlier = OutlierConfig {
        consecutive_failures: 1,
        base_ejection_ms: 50,
        max_ejection_ms: 50,
    };
    assert_eq!(counts(&p, 50).len(), 2);
    assert!(
        p.backend("127.0.0.1:1")
            .unwrap()
            .record(Outcome::ConnectError, &outlier)
    );
    assert_eq!(counts(&p, 50), HashMap::from([(2, 50)]));
    let until = uptime_ms() + 60;
    while uptime_ms() < until {
        std::thread::yield_now();
    }
    assert_eq!(counts(&p, 200).len(), 2);
}

#[test]
fn backups_serve_only_while_no_primary_does_and_membership_changes_apply() {
    let p = pool("round_robin", &[(1, 1, false), (9, 1, true)], "");
    assert_eq!(counts(&p, 20), HashMap::from([(1, 20)]));
    p.backend("127.0.0.1:1").unwrap().set_healthy(false);
    assert_eq!(counts(&p, 20), HashMap::from([(9, 20)]));
    p.add(&crate::config::BackendConfig {
        address: "127.0.0.1:3".parse().unwrap(),
        weight: 1,
        backup: false,
    });
    assert_eq!(counts(&p, 20), HashMap::from([(3, 20)]));
    p.remove("127.0.0.1:3");
    assert_eq!(counts(&p, 20), HashMap::from([(9, 20)]));
}

#[test]
fn weighted_draws_follow_the_weights() {
    let p = pool("round_robin", &[(1, 1, false), (2, 3, false)], "");
    let seen = counts(&p, 8_000);
    let share = seen[&2] as f64 / 8_000.0;
    assert!((0.72..0.78).contains(&share), "{seen:?}");
}

#[test]
fn a_large_pool_picks_from_every_member_and_p2c_avoids_the_loaded_one() {
    let backends: Vec<(u16, u32, bool)> = (1..=100).map(|port| (port, 1, false)).collect();
    let p = pool("least_requests", &backends, "");
    assert!(counts(&p, 5_000).len() > 95);
    let small = pool("least_requests", &[(1, 1, false), (2, 1, false)], "");
    let busy = small.backend("127.0.0.1:1").unwrap();
    busy.start_request();
    busy.start_request();
    assert_eq!(counts(&small, 50), HashMap::from([(2, 50)]));
    busy.end_request();
    busy.end_request();
    drop(Arc::clone(&busy));
}

#[test]
fn retries_still_avoid_the_backends_already_tried() {
    let p = pool(
        "peak_ewma",
        &[(1, 1, false), (2, 1, false), (9, 1, true)],
        "",
    );
    let first = p.pick(None, &[]).unwrap();
    let second = p.pick(None, &[Arc::as_ptr(&first) as usize]).unwrap();
    assert_ne!(first.address, second.address);
    let third = p
        .pick(
            None,
            &[Arc::as_ptr(&first) as usize, Arc::as_ptr(&second) as usize],
        )
        .unwrap();
    assert_eq!(third.address.port(), 9);
}
