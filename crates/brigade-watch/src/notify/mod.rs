//! Notifications with Alertmanager's semantics.
//!
//! [`route`] picks the receivers of an alert from a tree of label matchers; [`dispatch`] groups
//! alerts per route and group labels, waits (`group_wait`, `group_interval`,
//! `repeat_interval`), drops muted alerts (inhibition, [`silence`]s) and decides, from a
//! notification log, whether anything new needs sending; [`payload`] renders the bodies of
//! webhooks, Slack, PagerDuty and e-mail, and [`deliver`] sends them with retries.

pub mod deliver;
pub mod dispatch;
pub mod matchers;
pub mod payload;
pub mod route;
pub mod silence;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// An alert as the notifier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Fingerprint of the labels.
    pub fingerprint: String,
    /// Labels, `alertname` included.
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (ms since the epoch).
    pub starts_at: i64,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<i64>,
    /// Link to the expression that produced it.
    pub generator_url: String,
}

impl Alert {
    /// Whether it has resolved by `now`.
    pub fn resolved(&self, now: i64) -> bool {
        self.ends_at.is_some_and(|end| end <= now)
    }
}

/// One notification to send: a group's alerts for one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Receiver name.
    pub receiver: String,
    /// Alertmanager-style group key, e.g. `{}/{severity="critical"}:{alertname="X"}`.
    pub group_key: String,
    /// The labels the group is formed by.
    pub group_labels: Labels,
    /// The alerts, firing first.
    pub alerts: Vec<Alert>,
    /// Fingerprints of the firing alerts in it.
    pub firing: Vec<String>,
    /// Fingerprints of the resolved alerts in it.
    pub resolved: Vec<String>,
    /// False when only the notification log needs updating (all resolved, resolved
    /// notifications switched off).
    pub send: bool,
    /// The moment the notification was made (ms).
    pub at: i64,
}

impl Notification {
    /// `firing` if any alert fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self.firing.is_empty() {
            "resolved"
        } else {
            "firing"
        }
    }
}
