//! The spans of watch's own work: a scrape round and each target's scrape, a rule evaluation
//! round and each group's, a notification and each delivery attempt. Each round is a trace of
//! its own, so a slow scrape or a failing webhook shows in the Traces view beside the requests
//! it concerns; a scrape carries `traceparent`, so the scraped process's `GET /metrics` span is
//! the scrape's child.
//!
//! Attribute names follow OpenTelemetry's semantic conventions where one exists (`url.full`,
//! `server.address`); watch's own are under `brigade.`. A failure sets the span's status to
//! error with the reason as its description.

use tracing::Span;

use crate::notify::Notification;
use crate::scrape::Target;

/// One round over every target; the parent of each target's scrape.
pub fn scrape_round(targets: usize) -> Span {
    tracing::info_span!(
        "scrape round",
        otel.kind = "internal",
        brigade.scrape.targets = targets,
    )
}

/// One target's scrape: an HTTP client span under `round`.
pub fn scrape_target(round: &Span, target: &Target) -> Span {
    tracing::info_span!(
        parent: round,
        "scrape",
        otel.name = %format_args!("scrape {}", target.job),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        http.request.method = "GET",
        url.full = %target.url,
        server.address = %target.instance,
        brigade.scrape.job = %target.job,
        brigade.scrape.samples = tracing::field::Empty,
    )
}

/// One evaluation round: the groups that were due.
pub fn evaluation_round() -> Span {
    tracing::info_span!(
        "evaluate rules",
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.rules.groups = tracing::field::Empty,
    )
}

/// One group's evaluation under `round`.
pub fn group_evaluation(round: &Span, group: &str, rules: usize) -> Span {
    tracing::info_span!(
        parent: round,
        "evaluate group",
        otel.name = %format_args!("evaluate {group}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.rules.group = group,
        brigade.rules.count = rules,
        brigade.alerts.transitions = tracing::field::Empty,
    )
}

/// One notification to one receiver; the parent of its delivery attempts.
pub fn notification(notification: &Notification) -> Span {
    tracing::info_span!(
        "notify",
        otel.name = %format_args!("notify {}", notification.receiver),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.notification.receiver = %notification.receiver,
        brigade.notification.group = %notification.group_key,
        brigade.notification.status = notification.status(),
        brigade.notification.alerts = notification.alerts.len(),
    )
}

/// One attempt to deliver through one integration (webhook, Slack, PagerDuty, email).
pub fn delivery_attempt(integration: &'static str, attempt: u32) -> Span {
    tracing::info_span!(
        "deliver",
        otel.name = %format_args!("deliver {integration}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.notification.integration = integration,
        brigade.notification.attempt = attempt,
    )
}
