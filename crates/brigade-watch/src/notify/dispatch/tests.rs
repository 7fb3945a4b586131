//! Grouping, timing, inhibition, silences and the notification log, at exact times.

use super::*;
use crate::labels::{fingerprint, labels};
use crate::notify::silence::Silence;

const S: i64 = 1000;

fn config() -> WatchConfig {
    WatchConfig::from_toml(
        r#"
        [route]
        receiver = "team"
        group_by = ["alertname", "job"]
        group_wait = "30s"
        group_interval = "5m"
        repeat_interval = "1h"
        [[receivers]]
        name = "team"
        [[inhibit_rules]]
        source_matchers = ['severity="critical"']
        target_matchers = ['severity="warning"']
        equal = ["job"]
        "#,
    )
    .unwrap()
}

fn alert(pairs: &[(&str, &str)], starts_at: i64) -> Alert {
    let labels = labels(pairs.iter().copied());
    Alert {
        fingerprint: fingerprint(&labels),
        labels,
        annotations: Default::default(),
        starts_at,
        ends_at: None,
        generator_url: String::new(),
    }
}

fn deliver_all(d: &mut Dispatcher, now: i64) -> Vec<Notification> {
    let notifications = d.flush_due(now);
    for n in &notifications {
        d.delivered(n);
    }
    notifications
}

#[test]
fn group_wait_merges_then_interval_then_repeat() {
    let mut d = Dispatcher::new(&config()).unwrap();
    d.put(alert(&[("alertname", "A"), ("job", "j"), ("i", "1")], 0), 0);
    d.put(alert(&[("alertname", "A"), ("job", "j"), ("i", "2")], S), S);
    assert!(
        deliver_all(&mut d, 29 * S).is_empty(),
        "group_wait not over"
    );
    let first = deliver_all(&mut d, 30 * S);
    assert_eq!(first.len(), 1, "one notification for the group");
    assert_eq!(first[0].alerts.len(), 2, "grouped");
    assert_eq!(first[0].group_key, r#"{}:{alertname="A", job="j"}"#);
    // Nothing new at the next group_interval: nothing sent.
    assert!(deliver_all(&mut d, 330 * S).is_empty());
    // A third alert joins: sent at the next interval, not before.
    d.put(
        alert(&[("alertname", "A"), ("job", "j"), ("i", "3")], 400 * S),
        400 * S,
    );
    assert!(deliver_all(&mut d, 500 * S).is_empty());
    assert_eq!(deliver_all(&mut d, 630 * S)[0].alerts.len(), 3);
    // Unchanged for repeat_interval (1 h after the last notification): repeated.
    assert!(deliver_all(&mut d, 3_930 * S).is_empty());
    assert_eq!(deliver_all(&mut d, 4_230 * S).len(), 1);
}

#[test]
fn resolved_is_sent_once_and_clears_the_group() {
    let mut d = Dispatcher::new(&config()).unwrap();
    let mut a = alert(&[("alertname", "A"), ("job", "j")], 0);
    d.put(a.clone(), 0);
    assert_eq!(deliver_all(&mut d, 30 * S)[0].status(), "firing");
    a.ends_at = Some(100 * S);
    d.put(a, 100 * S);
    let resolved = deliver_all(&mut d, 330 * S);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].status(), "resolved");
    assert_eq!(resolved[0].alerts.len(), 1);
    assert_eq!(d.next_due(), None, "group dropped");
}

#[test]
fn critical_inhibits_warning_with_equal_labels() {
    let mut d = Dispatcher::new(&config()).unwrap();
    d.put(
        alert(
            &[
                ("alertname", "Crit"),
                ("job", "j"),
                ("severity", "critical"),
            ],
            0,
        ),
        0,
    );
    d.put(
        alert(
            &[("alertname", "Warn"), ("job", "j"), ("severity", "warning")],
            0,
        ),
        0,
    );
    d.put(
        alert(
            &[("alertname", "Warn"), ("job", "k"), ("severity", "warning")],
            0,
        ),
        0,
    );
    let sent = deliver_all(&mut d, 30 * S);
    let names: BTreeSet<String> = sent
        .iter()
        .flat_map(|n| {
            n.alerts
                .iter()
                .map(|a| format!("{}/{}", a.labels["alertname"], a.labels["job"]))
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Crit/j".to_owned(), "Warn/k".to_owned()])
    );
}

#[test]
fn a_silence_suppresses_until_it_expires() {
    let mut d = Dispatcher::new(&config()).unwrap();
    d.silences
        .upsert(Silence {
            id: "s".into(),
            matchers: vec!["alertname=\"A\"".into()],
            starts_at: 0,
            ends_at: 3_600 * S,
            created_by: "t".into(),
            comment: "t".into(),
        })
        .unwrap();
    d.put(alert(&[("alertname", "A"), ("job", "j")], 0), 0);
    assert!(deliver_all(&mut d, 30 * S).is_empty());
    d.silences.expire("s", 100 * S);
    assert_eq!(
        deliver_all(&mut d, 330 * S).len(),
        1,
        "sent at the next interval"
    );
}

#[test]
fn a_restored_log_prevents_renotification_after_restart() {
    let mut before = Dispatcher::new(&config()).unwrap();
    let a = alert(&[("alertname", "A"), ("job", "j")], 0);
    before.put(a.clone(), 0);
    let mut log = Vec::new();
    for n in before.flush_due(30 * S) {
        log.push(before.delivered(&n));
    }
    // A new process: same alert restored, log restored.
    let mut after = Dispatcher::new(&config()).unwrap();
    after.restore_log(log);
    after.put(a.clone(), 60 * S);
    assert_eq!(after.next_due(), Some(60 * S), "old alert: no group_wait");
    assert!(after.flush_due(60 * S).is_empty(), "already notified");
    // Without the log it would have been sent again.
    let mut forgetful = Dispatcher::new(&config()).unwrap();
    forgetful.put(a, 60 * S);
    assert_eq!(forgetful.flush_due(60 * S).len(), 1);
}
