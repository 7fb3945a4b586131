//! The table of error groups: every error event of the central log lands in the group of its
//! fingerprint, which counts it, remembers when it was first and last seen, its release and a
//! few trace ids, and is open or resolved. A resolved group that sees its error again opens
//! again.
//!
//! Bounded: at most [`CAPACITY`] groups. A new group beyond that pushes out the group seen
//! longest ago, resolved groups first (an open group is one somebody still has to look at).
//! Kept in memory and saved to the data directory by [`super::saved`], so a restart of `up`
//! finds them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use brigade_core::error_event::{ErrorEvent, ErrorKind};
use chrono::{DateTime, Utc};

use super::file_format::SavedGroups;
use super::fingerprint::{fingerprint, normalize_message};
use crate::api::{ErrorGroup, ErrorGroupList, ErrorGroupState};

/// The most groups kept.
pub const CAPACITY: usize = 500;
/// Trace ids kept per group.
pub const SAMPLE_TRACES: usize = 5;

/// What recording an event did to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A group was created.
    New,
    /// A resolved group saw its error again and is open again.
    Reopened,
    /// An open group counted one more.
    Repeated,
}

/// The groups; cheap to clone, shared by the log sink (which records) and the ops API.
#[derive(Clone, Default)]
pub struct ErrorGroups(Arc<Mutex<Table>>);

#[derive(Default)]
struct Table {
    groups: HashMap<String, ErrorGroup>,
    evicted: u64,
    /// Moves on every change, so the saver knows whether there is anything to write; 0 for a
    /// table as loaded.
    generation: u64,
}

impl ErrorGroups {
    /// Records `line` of `service` if it is an error event (any other line costs one substring
    /// search).
    pub fn observe(&self, service: &str, line: &str) {
        if let Some(event) = ErrorEvent::from_log_line(line) {
            self.record(service, event, Utc::now());
        }
    }

    /// Records one event seen `at`.
    pub fn record(&self, service: &str, event: ErrorEvent, at: DateTime<Utc>) -> Recorded {
        let key = fingerprint(&event);
        let trace = event.reported_trace_id.clone().or(event.trace_id.clone());
        let mut table = self.lock();
        table.generation += 1;
        let outcome = match table.groups.get_mut(&key) {
            Some(group) => {
                let reopened = group.state == ErrorGroupState::Resolved;
                group.count += 1;
                group.last_seen = group.last_seen.max(at);
                group.message.clone_from(&event.message);
                group.route.clone_from(&event.route);
                group.frames.clone_from(&event.frames);
                group.service = service.to_owned();
                group.release.clone_from(&event.release);
                if reopened {
                    group.state = ErrorGroupState::Open;
                    group.reopened += 1;
                    Recorded::Reopened
                } else {
                    Recorded::Repeated
                }
            }
            None => {
                table.make_room();
                let group = ErrorGroup {
                    fingerprint: key.clone(),
                    kind: event.kind,
                    title: normalize_message(&event.message),
                    message: event.message,
                    route: event.route,
                    frames: event.frames,
                    service: service.to_owned(),
                    count: 1,
                    first_seen: at,
                    last_seen: at,
                    release: event.release,
                    trace_ids: Vec::new(),
                    state: ErrorGroupState::Open,
                    resolved_at: None,
                    reopened: 0,
                };
                table.groups.insert(key.clone(), group);
                Recorded::New
            }
        };
        if let (Some(trace), Some(group)) = (trace, table.groups.get_mut(&key))
            && !group.trace_ids.contains(&trace)
        {
            if group.trace_ids.len() == SAMPLE_TRACES {
                group.trace_ids.remove(0);
            }
            group.trace_ids.push(trace);
        }
        if outcome != Recorded::Repeated {
            super::metrics::opened(event.kind);
            super::metrics::open_groups(&table.open_by_kind());
        }
        outcome
    }

    /// Marks a group resolved; `None` when there is no such group.
    pub fn resolve(&self, fingerprint: &str, at: DateTime<Utc>) -> Option<ErrorGroup> {
        let mut table = self.lock();
        table.generation += 1;
        let group = table.groups.get_mut(fingerprint)?;
        group.state = ErrorGroupState::Resolved;
        group.resolved_at = Some(at);
        let answer = group.clone();
        super::metrics::open_groups(&table.open_by_kind());
        Some(answer)
    }

    /// The groups in `state` (all without), most recently seen first.
    pub fn list(&self, state: Option<ErrorGroupState>) -> ErrorGroupList {
        let table = self.lock();
        let mut groups: Vec<ErrorGroup> = table
            .groups
            .values()
            .filter(|group| state.is_none_or(|state| group.state == state))
            .cloned()
            .collect();
        groups.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        ErrorGroupList {
            groups,
            capacity: CAPACITY,
            evicted: table.evicted,
        }
    }

    /// The groups saved earlier ([`super::saved`]).
    pub(super) fn from_saved(saved: SavedGroups) -> Self {
        let table = Table {
            groups: saved
                .groups
                .into_iter()
                .map(|group| (group.fingerprint.clone(), group))
                .collect(),
            evicted: saved.evicted,
            generation: 0,
        };
        Self(Arc::new(Mutex::new(table)))
    }

    /// Everything, to be saved.
    pub(super) fn snapshot(&self) -> SavedGroups {
        let table = self.lock();
        SavedGroups {
            version: super::file_format::VERSION,
            evicted: table.evicted,
            groups: table.groups.values().cloned().collect(),
        }
    }

    /// A number that moves on every change.
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Sets the open-groups gauge from the table (after loading saved groups).
    pub fn publish_open(&self) {
        super::metrics::open_groups(&self.lock().open_by_kind());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Table {
    /// Drops groups until one more fits: resolved ones first, then the one seen longest ago.
    fn make_room(&mut self) {
        while self.groups.len() >= CAPACITY {
            let victim = self
                .groups
                .values()
                .min_by_key(|group| (group.state == ErrorGroupState::Open, group.last_seen))
                .map(|group| group.fingerprint.clone());
            let Some(victim) = victim else {
                return;
            };
            self.groups.remove(&victim);
            self.evicted += 1;
        }
    }

    /// Open groups per kind (every kind, zeros included).
    fn open_by_kind(&self) -> Vec<(ErrorKind, usize)> {
        ErrorKind::ALL
            .iter()
            .map(|kind| {
                let open = self
                    .groups
                    .values()
                    .filter(|group| group.kind == *kind && group.state == ErrorGroupState::Open)
                    .count();
                (*kind, open)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn thrown(message: &str, trace: &str) -> ErrorEvent {
        let mut event = ErrorEvent::new(ErrorKind::ClientError, message)
            .with_frames(["at place (/assets/ordering.js:3:9)".to_owned()])
            .with_route("/");
        event.trace_id = Some(trace.to_owned());
        event
    }

    #[test]
    fn repeats_are_counted_in_one_group_and_others_get_their_own() {
        let groups = ErrorGroups::default();
        let t0 = Utc::now();
        assert_eq!(
            groups.record("serve", thrown("cart 1 is empty", "a"), t0),
            Recorded::New
        );
        assert_eq!(
            groups.record(
                "serve",
                thrown("cart 2 is empty", "b"),
                t0 + Duration::seconds(5)
            ),
            Recorded::Repeated
        );
        groups.record("serve", thrown("menu failed", "c"), t0);
        let list = groups.list(None);
        assert_eq!(list.groups.len(), 2);
        let cart = &list.groups[0];
        assert_eq!(cart.count, 2);
        assert_eq!(cart.title, "cart <n> is empty");
        assert_eq!(cart.message, "cart 2 is empty");
        assert_eq!(
            (cart.first_seen, cart.last_seen),
            (t0, t0 + Duration::seconds(5))
        );
        assert_eq!(cart.trace_ids, ["a", "b"]);
        assert_eq!(list.groups[1].count, 1);
    }

    #[test]
    fn a_resolved_group_reopens_when_its_error_comes_back() {
        let groups = ErrorGroups::default();
        let t0 = Utc::now();
        groups.record("serve", thrown("boom", "a"), t0);
        let key = groups.list(None).groups[0].fingerprint.clone();
        let resolved = groups.resolve(&key, t0).unwrap();
        assert_eq!(resolved.state, ErrorGroupState::Resolved);
        assert!(groups.list(Some(ErrorGroupState::Open)).groups.is_empty());
        assert_eq!(groups.list(Some(ErrorGroupState::Resolved)).groups.len(), 1);
        assert_eq!(
            groups.record("serve", thrown("boom", "b"), t0),
            Recorded::Reopened
        );
        let group = &groups.list(Some(ErrorGroupState::Open)).groups[0];
        assert_eq!((group.count, group.reopened), (2, 1));
        assert!(groups.resolve("0000000000000000", t0).is_none());
    }

    #[test]
    fn sample_traces_and_the_table_stay_bounded() {
        let groups = ErrorGroups::default();
        let t0 = Utc::now();
        for n in 0..8 {
            groups.record("serve", thrown("boom", &format!("t{n}")), t0);
        }
        assert_eq!(
            groups.list(None).groups[0].trace_ids,
            ["t3", "t4", "t5", "t6", "t7"]
        );
        let first = groups.list(None).groups[0].fingerprint.clone();
        groups.resolve(&first, t0);
        for n in 0..CAPACITY {
            let event = ErrorEvent::new(ErrorKind::Panic, "boom")
                .with_frames([format!("src/lib.rs:{n}:1")]);
            groups.record("serve", event, t0 + Duration::seconds(n as i64 + 1));
        }
        let list = groups.list(None);
        assert_eq!(list.groups.len(), CAPACITY);
        assert_eq!(list.evicted, 1);
        assert!(
            list.groups.iter().all(|g| g.fingerprint != first),
            "the resolved group went first"
        );
    }
}
