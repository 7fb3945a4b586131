//! Grouping, timing, muting and the notification log.
//!
//! This is the synchronous heart of the notifier, driven with explicit times so its rules can
//! be tested exactly: [`Dispatcher::put`] files an alert into the groups of the routes it
//! matches; [`Dispatcher::flush_due`] returns the notifications whose group is due; after a
//! delivery, [`Dispatcher::delivered`] records it in the notification log. The log (which
//! alerts of a group were last notified as firing and resolved, and when) is what makes
//! notifications idempotent: a group is only notified again when a new alert fires, an alert
//! resolves, or `repeat_interval` has passed — also after a restart, because the log is
//! persisted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use promql_parser::label::Matcher;
use serde::{Deserialize, Serialize};

use super::matchers::MatcherError;
use super::route::Route;
use super::silence::Silences;
use super::{Alert, Notification, matchers};
use crate::config::{InhibitRuleConfig, WatchConfig};
use crate::labels::Labels;

/// How long a resolved alert is remembered (for inhibition and the API).
const RESOLVED_GC_MS: i64 = 15 * 60_000;

/// What the log remembers of a group's last notification to a receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Firing fingerprints notified.
    pub firing: BTreeSet<String>,
    /// Resolved fingerprints notified.
    pub resolved: BTreeSet<String>,
    /// When (ms).
    pub at: i64,
}

/// A compiled inhibition rule.
#[derive(Debug)]
struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

#[derive(Debug)]
struct Group {
    route: usize,
    receiver: String,
    labels: Labels,
    alerts: BTreeMap<String, Alert>,
    next_flush: i64,
    has_flushed: bool,
}

/// Why an alert is not notified.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteStatus {
    /// Ids of the active silences matching it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// The notifier's state.
#[derive(Debug)]
pub struct Dispatcher {
    routes: Vec<Route>,
    root: Route,
    inhibit: Vec<InhibitRule>,
    send_resolved: HashMap<String, bool>,
    alerts: HashMap<String, Alert>,
    groups: BTreeMap<String, Group>,
    log: HashMap<String, LogEntry>,
    /// The silences.
    pub silences: Silences,
}

impl Dispatcher {
    /// Builds the dispatcher of a configuration.
    pub fn new(config: &WatchConfig) -> Result<Self, MatcherError> {
        let root = Route::compile(&config.route)?;
        let mut routes = Vec::new();
        flatten(&root, &mut routes);
        let inhibit = config
            .inhibit_rules
            .iter()
            .map(|rule: &InhibitRuleConfig| {
                Ok(InhibitRule {
                    source: matchers::parse_all(&rule.source_matchers)?,
                    target: matchers::parse_all(&rule.target_matchers)?,
                    equal: rule.equal.clone(),
                })
            })
            .collect::<Result<_, MatcherError>>()?;
        let send_resolved = config
            .receivers
            .iter()
            .map(|r| (r.name.clone(), r.send_resolved.unwrap_or(true)))
            .collect();
        Ok(Self {
            routes,
            root,
            inhibit,
            send_resolved,
            alerts: HashMap::new(),
            groups: BTreeMap::new(),
            log: HashMap::new(),
            silences: Silences::default(),
        })
    }

    /// Restores notification-log entries (at start, from the database).
    pub fn restore_log(&mut self, entries: impl IntoIterator<Item = (String, LogEntry)>) {
        self.log.extend(entries);
    }

    /// Files an alert (new or updated) into its groups.
    pub fn put(&mut self, alert: Alert, now: i64) {
        let matched: Vec<usize> = self
            .root
            .matching(&alert.labels)
            .into_iter()
            .filter_map(|route| {
                self.routes
                    .iter()
                    .position(|r| r.id == route.id && r.receiver == route.receiver)
            })
            .collect();
        for index in matched {
            let route = &self.routes[index];
            let labels = route.group_labels(&alert.labels);
            let key = format!("{}:{}", route.id, render_labels(&labels));
            let group = self.groups.entry(key).or_insert_with(|| Group {
                route: index,
                receiver: route.receiver.clone(),
                labels,
                alerts: BTreeMap::new(),
                next_flush: now + route.group_wait_ms,
                has_flushed: false,
            });
            // An alert older than group_wait (e.g. restored after a restart) does not wait.
            if !group.has_flushed && alert.starts_at + route.group_wait_ms <= now {
                group.next_flush = group.next_flush.min(now);
            }
            group
                .alerts
                .insert(alert.fingerprint.clone(), alert.clone());
        }
        self.alerts.insert(alert.fingerprint.clone(), alert);
    }

    /// When the next group is due (ms), if any.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Whether and why an alert is muted at `now`.
    pub fn mute_status(&self, alert: &Alert, now: i64) -> MuteStatus {
        let mut status = MuteStatus {
            silenced_by: self.silences.silencing(&alert.labels, now),
            inhibited_by: Vec::new(),
        };
        for rule in &self.inhibit {
            if !matchers::all_match(&rule.target, &alert.labels) {
                continue;
            }
            for source in self.alerts.values() {
                if source.fingerprint != alert.fingerprint
                    && !source.resolved(now)
                    && matchers::all_match(&rule.source, &source.labels)
                    && rule
                        .equal
                        .iter()
                        .all(|l| source.labels.get(l) == alert.labels.get(l))
                {
                    status.inhibited_by.push(source.fingerprint.clone());
                }
            }
        }
        status
    }

    /// Every known alert with its mute status (for the API).
    pub fn alerts(&self, now: i64) -> Vec<(Alert, MuteStatus)> {
        let mut list: Vec<(Alert, MuteStatus)> = self
            .alerts
            .values()
            .map(|a| (a.clone(), self.mute_status(a, now)))
            .collect();
        list.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        list
    }

    /// The notifications of every due group. Each due group is rescheduled
    /// `group_interval` later whether or not it had anything new.
    pub fn flush_due(&mut self, now: i64) -> Vec<Notification> {
        self.alerts
            .retain(|_, a| a.ends_at.is_none_or(|end| now - end <= RESOLVED_GC_MS));
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            let (alerts, receiver, labels, route, all_resolved) = {
                let group = &self.groups[&key];
                (
                    group.alerts.values().cloned().collect::<Vec<_>>(),
                    group.receiver.clone(),
                    group.labels.clone(),
                    group.route,
                    group.alerts.values().all(|a| a.resolved(now)),
                )
            };
            let unmuted: Vec<Alert> = alerts
                .into_iter()
                .filter(|a| {
                    let status = self.mute_status(a, now);
                    status.silenced_by.is_empty() && status.inhibited_by.is_empty()
                })
                .collect();
            let group = self.groups.get_mut(&key).expect("due group exists");
            group.has_flushed = true;
            group.next_flush = now + self.routes[route].group_interval_ms;
            let (resolved, firing): (Vec<Alert>, Vec<Alert>) =
                unmuted.into_iter().partition(|a| a.resolved(now));
            let firing_set: BTreeSet<String> =
                firing.iter().map(|a| a.fingerprint.clone()).collect();
            let resolved_set: BTreeSet<String> =
                resolved.iter().map(|a| a.fingerprint.clone()).collect();
            let send_resolved = self.send_resolved.get(&receiver).copied().unwrap_or(true);
            let log_key = format!("{receiver}/{key}");
            let needed = needs_notifying(
                self.log.get(&log_key),
                &firing_set,
                &resolved_set,
                send_resolved,
                self.routes[route].repeat_interval_ms,
                now,
            );
            if !needed {
                if all_resolved {
                    // Only resolved alerts that were already told (or never fired here).
                    self.groups.remove(&key);
                }
                continue;
            }
            let send = !firing_set.is_empty() || send_resolved;
            let mut alerts = firing;
            if send_resolved {
                alerts.extend(resolved);
            }
            out.push(Notification {
                receiver,
                group_key: key.clone(),
                group_labels: labels,
                alerts,
                firing: firing_set.into_iter().collect(),
                resolved: resolved_set.into_iter().collect(),
                send,
                at: now,
            });
        }
        out
    }

    /// Records a delivered notification; returns the log entry to persist under its key.
    /// Resolved alerts that were delivered leave the group, and empty groups are dropped.
    pub fn delivered(&mut self, notification: &Notification) -> (String, LogEntry) {
        let key = format!("{}/{}", notification.receiver, notification.group_key);
        let entry = LogEntry {
            firing: notification.firing.iter().cloned().collect(),
            resolved: notification.resolved.iter().cloned().collect(),
            at: notification.at,
        };
        self.log.insert(key.clone(), entry.clone());
        if let Some(group) = self.groups.get_mut(&notification.group_key) {
            for fingerprint in &notification.resolved {
                if group
                    .alerts
                    .get(fingerprint)
                    .is_some_and(|a| a.resolved(notification.at))
                {
                    group.alerts.remove(fingerprint);
                }
            }
            if group.alerts.is_empty() {
                self.groups.remove(&notification.group_key);
            }
        }
        (key, entry)
    }
}

/// Whether a due group is told again, given what its receiver was last told (`entry`): a new
/// firing alert, everything resolved since, a newly resolved alert (when resolved alerts are
/// sent), or `repeat` passed since the last notification.
fn needs_notifying(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    send_resolved: bool,
    repeat: i64,
    now: i64,
) -> bool {
    match entry {
        None => !firing.is_empty(),
        Some(entry) => {
            if !firing.is_subset(&entry.firing) {
                true
            } else if firing.is_empty() {
                // Everything resolved: tell once (or just clear the log).
                !entry.firing.is_empty()
            } else if send_resolved && !resolved.is_subset(&entry.resolved) {
                true
            } else {
                entry.at + repeat <= now
            }
        }
    }
}

fn flatten(route: &Route, out: &mut Vec<Route>) {
    out.push(route.clone());
    for child in &route.routes {
        flatten(child, out);
    }
}

/// `{a="1", b="2"}` as Alertmanager writes group keys.
pub fn render_labels(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests;
