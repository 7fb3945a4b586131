//! The error groups' metrics on the supervisor's `/metrics` (job `supervisor` in watch):
//! `brigade_error_groups_opened_total{kind}` counts groups created or reopened — its increase
//! is the `BrigadeNewErrorGroup` alert — and `brigade_error_groups_open{kind}` says how many
//! are open now. Both are registered at zero for every kind, so the first new group is an
//! increase Prometheus can see.

use brigade_core::error_event::ErrorKind;
use metrics::{counter, describe_counter, describe_gauge, gauge};

const OPENED: &str = "brigade_error_groups_opened_total";
const OPEN: &str = "brigade_error_groups_open";

/// Describes the metrics and registers them at zero (after the recorder is installed).
pub fn register() {
    describe_counter!(
        OPENED,
        "Error groups created or reopened (a resolved group seen again), by error kind."
    );
    describe_gauge!(OPEN, "Error groups open now, by error kind.");
    for kind in ErrorKind::ALL {
        counter!(OPENED, "kind" => kind.as_str()).increment(0);
        gauge!(OPEN, "kind" => kind.as_str()).set(0.0);
    }
}

/// A group of `kind` was created or reopened.
pub fn opened(kind: ErrorKind) {
    counter!(OPENED, "kind" => kind.as_str()).increment(1);
}

/// The open groups per kind now.
pub fn open_groups(open: &[(ErrorKind, usize)]) {
    for (kind, count) in open {
        gauge!(OPEN, "kind" => kind.as_str()).set(*count as f64);
    }
}
