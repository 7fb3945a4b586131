//! Notification bodies, each in the shape its receiver expects.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Alert, Notification};
use crate::labels::Labels;

/// RFC 3339 UTC time of milliseconds since the epoch, as Alertmanager writes it.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// Go's zero time: Alertmanager's `endsAt` of an alert that has not ended.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn common<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut maps = maps.peekable();
    let Some(first) = maps.peek().map(|m| (*m).clone()) else {
        return BTreeMap::new();
    };
    maps.fold(first, |mut acc, m| {
        acc.retain(|k, v| m.get(k) == Some(v));
        acc
    })
}

/// Labels shared by every alert of the notification.
pub fn common_labels(n: &Notification) -> Labels {
    common(n.alerts.iter().map(|a| &a.labels))
}

/// Annotations shared by every alert of the notification.
pub fn common_annotations(n: &Notification) -> BTreeMap<String, String> {
    common(n.alerts.iter().map(|a| &a.annotations))
}

fn alert_json(alert: &Alert, at: i64) -> Value {
    json!({
        "status": if alert.resolved(at) { "resolved" } else { "firing" },
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": alert.ends_at.map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_owned()),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    })
}

/// Alertmanager's webhook body, version 4.
pub fn webhook(n: &Notification, external_url: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status(),
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common_labels(n),
        "commonAnnotations": common_annotations(n),
        "externalURL": external_url,
        "alerts": n.alerts.iter().map(|a| alert_json(a, n.at)).collect::<Vec<_>>(),
    })
}

/// A one-line title: `[FIRING:2] BrigadeHighErrorRate (job="orders")`.
pub fn title(n: &Notification) -> String {
    let mut title = match n.status() {
        "firing" => format!("[FIRING:{}]", n.firing.len()),
        _ => "[RESOLVED]".to_owned(),
    };
    let labels = common_labels(n);
    if let Some(name) = labels.get("alertname") {
        title.push(' ');
        title.push_str(name);
    }
    let rest: Vec<String> = n
        .group_labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !rest.is_empty() {
        title.push_str(&format!(" ({})", rest.join(" ")));
    }
    title
}

fn alert_lines(alert: &Alert, at: i64) -> String {
    let state = if alert.resolved(at) {
        "resolved"
    } else {
        "firing"
    };
    let summary = alert
        .annotations
        .get("summary")
        .cloned()
        .unwrap_or_else(|| alert.labels.get("alertname").cloned().unwrap_or_default());
    let mut text = format!("[{state}] {summary}");
    if let Some(description) = alert.annotations.get("description") {
        text.push('\n');
        text.push_str(description);
    }
    if let Some(runbook) = alert.annotations.get("runbook_url") {
        text.push_str(&format!("\nRunbook: {runbook}"));
    }
    text
}

/// Slack incoming-webhook body: `text` (the fallback and notification line) and `blocks`.
pub fn slack(n: &Notification, channel: Option<&str>) -> Value {
    let title = title(n);
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&title, 150) },
    })];
    // Slack allows 50 blocks; keep room for the header and the overflow note.
    for alert in n.alerts.iter().take(45) {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&alert_lines(alert, n.at), 3000) },
        }));
    }
    if n.alerts.len() > 45 {
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": format!("and {} more", n.alerts.len() - 45) }],
        }));
    }
    let mut body = json!({ "text": title, "blocks": blocks });
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    body
}

/// The PagerDuty dedup key of a group: stable across notifications and restarts, so the
/// resolve closes the incident the trigger opened (SHA-256 of the group key, as Alertmanager).
pub fn pagerduty_dedup_key(n: &Notification) -> String {
    let digest = Sha256::digest(format!("{}/{}", n.receiver, n.group_key).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// PagerDuty Events API v2 body: `trigger` while any alert fires, `resolve` after.
pub fn pagerduty(n: &Notification, routing_key: &str, external_url: &str) -> Value {
    let dedup_key = pagerduty_dedup_key(n);
    if n.status() == "resolved" {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let severity = match common_labels(n).get("severity").map(String::as_str) {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("info") | Some("none") => "info",
        _ => "error",
    };
    let details: Vec<String> = n.alerts.iter().map(|a| alert_lines(a, n.at)).collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "brigade watch",
        "client_url": external_url,
        "payload": {
            "summary": truncate(&title(n), 1024),
            "source": "brigade watch",
            "severity": severity,
            "custom_details": {
                "firing": details.join("\n\n"),
                "num_firing": n.firing.len(),
                "num_resolved": n.resolved.len(),
            },
        },
    })
}

/// Plain-text e-mail body.
pub fn email_body(n: &Notification, external_url: &str) -> String {
    let mut body = format!("{}\n\n", title(n));
    for alert in &n.alerts {
        body.push_str(&alert_lines(alert, n.at));
        body.push_str("\nLabels:");
        for (k, v) in &alert.labels {
            body.push_str(&format!(" {k}={v}"));
        }
        body.push_str(&format!("\nSince: {}\n\n", rfc3339(alert.starts_at)));
    }
    if !external_url.is_empty() {
        body.push_str(&format!("Alerts: {external_url}/api/v1/alerts\n"));
    }
    body
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{fingerprint, labels};

    fn notification(resolved: bool) -> Notification {
        let l = labels([
            ("alertname", "BrigadeHighErrorRate"),
            ("job", "orders"),
            ("severity", "critical"),
        ]);
        let alert = Alert {
            fingerprint: fingerprint(&l),
            labels: l,
            annotations: [("summary".to_owned(), "orders: 33% fail".to_owned())].into(),
            starts_at: 1_700_000_000_000,
            ends_at: resolved.then_some(1_700_000_060_000),
            generator_url: "http://w/q".into(),
        };
        Notification {
            receiver: "team".into(),
            group_key: r#"{}:{alertname="BrigadeHighErrorRate"}"#.into(),
            group_labels: labels([("alertname", "BrigadeHighErrorRate")]),
            firing: if resolved {
                vec![]
            } else {
                vec![alert.fingerprint.clone()]
            },
            resolved: if resolved {
                vec![alert.fingerprint.clone()]
            } else {
                vec![]
            },
            alerts: vec![alert],
            send: true,
            at: 1_700_000_100_000,
        }
    }

    #[test]
    fn webhook_is_alertmanager_v4() {
        let body = webhook(&notification(false), "http://watch");
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["commonLabels"]["job"], "orders");
        assert_eq!(body["alerts"][0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
        let resolved = webhook(&notification(true), "http://watch");
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "2023-11-14T22:14:20Z");
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_a_dedup_key() {
        let trigger = pagerduty(&notification(false), "key", "http://watch");
        let resolve = pagerduty(&notification(true), "key", "http://watch");
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(
            trigger["payload"]["summary"],
            "[FIRING:1] BrigadeHighErrorRate"
        );
    }

    #[test]
    fn slack_has_text_and_blocks() {
        let body = slack(&notification(false), Some("#ops"));
        assert_eq!(body["text"], "[FIRING:1] BrigadeHighErrorRate");
        assert_eq!(body["blocks"][0]["type"], "header");
        assert!(
            body["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("orders: 33% fail")
        );
        assert_eq!(body["channel"], "#ops");
    }
}
