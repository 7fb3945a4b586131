//! The status table of `brigade status` and of `brigade up`'s live view on a terminal: every
//! child with its state, the balancer's health and in-flight count for each replica, and what
//! watch measures for it over the last minute (requests/s, p99, 5xx %); then the firing alerts
//! and the recent events. Everything is read over HTTP from the ops API (and through it, the
//! balancer) and from watch, so the same code serves the supervisor and another shell.

use std::collections::HashMap;
use std::time::Duration;

use brigade_balance::api::{BackendView, Pools};
use brigade_watch::contract::{AlertState, AlertsAnswer, QueryAnswer, QueryData};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use crate::api::{ChildStatus, Status};

/// How long each HTTP read may take; the view shows `-` for what did not answer in time.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Recent events shown below the table.
const EVENTS_SHOWN: usize = 8;

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The ops API did not answer: nothing runs there.
    #[error("nothing answers at {url}; is `brigade up` running?")]
    Unreachable {
        /// The status URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// It answered, but not with a status.
    #[error("{url} answered something else than the status of brigade up")]
    Malformed {
        /// The status URL.
        url: String,
    },
}

/// What watch measured for one replica over the last minute.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    rate: Option<f64>,
    p99_ms: Option<f64>,
    errors_percent: Option<f64>,
}

/// One reading of everything the view shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    ops: String,
    status: Status,
    backends: HashMap<String, BackendView>,
    measured: HashMap<String, Measured>,
    alerts: Option<Vec<String>>,
}

/// Reads the status from the ops API at `ops` (`host:port`), the balancer's view through it
/// and the measurements from watch. Only the ops API is required.
pub async fn snapshot(http: &reqwest::Client, ops: &str) -> Result<Snapshot, StatusError> {
    let url = format!("http://{ops}/api/status");
    let response = http
        .get(&url)
        .timeout(READ_TIMEOUT)
        .send()
        .await
        .map_err(|source| StatusError::Unreachable {
            url: url.clone(),
            source,
        })?;
    let status: Status = response
        .json()
        .await
        .map_err(|_| StatusError::Malformed { url: url.clone() })?;
    let balancer: Option<Pools> =
        get_json(http, &format!("http://{ops}/api/dashboard/balancer")).await;
    let backends = balancer
        .into_iter()
        .flat_map(|view| view.pools)
        .flat_map(|pool| pool.backends)
        .map(|backend| (backend.address.clone(), backend))
        .collect();
    let (measured, alerts) = match status.watch.as_deref() {
        Some(watch) => (measure(http, watch).await, firing(http, watch).await),
        None => (HashMap::new(), None),
    };
    Ok(Snapshot {
        ops: ops.to_owned(),
        status,
        backends,
        measured,
        alerts,
    })
}

/// A JSON answer of type `T`; `None` when there was none (or not of that shape).
async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Option<T> {
    let response = http.get(url).timeout(READ_TIMEOUT).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// One PromQL instant query: value per `instance` label.
async fn query(http: &reqwest::Client, watch: &str, promql: &str) -> HashMap<String, f64> {
    let Ok(url) = reqwest::Url::parse_with_params(
        &format!("http://{watch}/api/v1/query"),
        &[("query", promql)],
    ) else {
        return HashMap::new();
    };
    let Some(QueryAnswer {
        data: QueryData::Vector(samples),
        ..
    }) = get_json(http, url.as_str()).await
    else {
        return HashMap::new();
    };
    samples
        .into_iter()
        .filter_map(|sample| {
            let value = sample.number().filter(|v| v.is_finite())?;
            Some((sample.metric.get("instance")?.clone(), value))
        })
        .collect()
}

const RATE: &str = "sum by (instance) (rate(http_server_request_duration_seconds_count[1m]))";
const P99: &str = "histogram_quantile(0.99, sum by (instance, le) (rate(http_server_request_duration_seconds_bucket[1m])))";
const ERRORS: &str = "sum by (instance) (rate(http_server_request_duration_seconds_count{http_response_status_code=~\"5..\"}[1m]))";

async fn measure(http: &reqwest::Client, watch: &str) -> HashMap<String, Measured> {
    let (rates, p99s, errors) = tokio::join!(
        query(http, watch, RATE),
        query(http, watch, P99),
        query(http, watch, ERRORS)
    );
    let mut measured: HashMap<String, Measured> = HashMap::new();
    for (instance, rate) in &rates {
        let entry = measured.entry(instance.clone()).or_default();
        entry.rate = Some(*rate);
        entry.errors_percent = Some(if *rate > 0.0 {
            errors.get(instance).copied().unwrap_or(0.0) / rate * 100.0
        } else {
            0.0
        });
    }
    for (instance, seconds) in p99s {
        measured.entry(instance).or_default().p99_ms = Some(seconds * 1000.0);
    }
    measured
}

/// Firing alerts as `name (label=value, …)`; `None` when watch did not answer.
async fn firing(http: &reqwest::Client, watch: &str) -> Option<Vec<String>> {
    let answer: AlertsAnswer = get_json(http, &format!("http://{watch}/api/v1/alerts")).await?;
    Some(
        answer
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing && a.name() != "Watchdog")
            .map(|a| {
                let detail: Vec<String> = a
                    .labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{} ({})", a.name(), detail.join(", "))
            })
            .collect(),
    )
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

impl Snapshot {
    /// Children of the topology.
    pub fn children(&self) -> &[ChildStatus] {
        &self.status.children
    }

    /// The view as text, `width` columns wide (tables wrap to fit).
    pub fn render(&self, width: u16) -> String {
        let status = &self.status;
        let mut out = format!(
            "public {}   ops dashboard http://{}/\nbalancer admin {}   watch {}\n",
            status
                .public_endpoint()
                .map_or_else(|| "-".to_owned(), |public| public.url),
            self.ops,
            status.balancer_admin.as_deref().unwrap_or("-"),
            status.watch.as_deref().unwrap_or("-"),
        );
        out.push_str(&self.children_table(width));
        out.push_str("\n* = backup replica\n");
        self.write_failures(&mut out);
        self.write_alerts(&mut out);
        self.write_events(&mut out);
        out
    }

    /// One row a child: what it is, its state and health, and its measured load.
    fn children_table(&self, width: u16) -> String {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width)
            .set_header([
                "INSTANCE",
                "SERVICE",
                "POOL",
                "STATE",
                "HEALTH",
                "ADDRESS",
                "PID",
                "RESTARTS",
                "IN FLIGHT",
                "REQ/S",
                "P99 MS",
                "5XX %",
            ]);
        for child in self.children() {
            let pool = match (&child.pool, child.backup) {
                (Some(pool), true) => format!("{pool}*"),
                (Some(pool), false) => pool.clone(),
                (None, _) => "-".to_owned(),
            };
            let address = child.address.as_deref().unwrap_or("-");
            let backend = self.backends.get(address);
            let measured = self.measured.get(address).copied().unwrap_or_default();
            table.add_row([
                child.instance.clone(),
                child.service.as_str().to_owned(),
                pool,
                child.state.as_str().to_owned(),
                backend.map_or("-", |b| b.state.as_str()).to_owned(),
                address.to_owned(),
                child.pid.map_or("-".to_owned(), |p| p.to_string()),
                child.restarts.to_string(),
                number(backend.map(|b| b.in_flight as f64), 0),
                number(measured.rate, 1),
                number(measured.p99_ms, 1),
                number(measured.errors_percent, 1),
            ]);
        }
        for column in 6..12 {
            if let Some(column) = table.column_mut(column) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        table.to_string()
    }

    /// The last failure of each child that failed, if any did.
    fn write_failures(&self, out: &mut String) {
        let failures: Vec<String> = self
            .children()
            .iter()
            .filter_map(|child| {
                let cause = child.last_error.as_deref()?;
                Some(format!("  {}: {cause}\n", child.instance))
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("last failure of each child that failed:\n");
            failures.iter().for_each(|line| out.push_str(line));
        }
    }

    /// The firing alerts, or why there are none to show.
    fn write_alerts(&self, out: &mut String) {
        match &self.alerts {
            None => out.push_str("alerts: watch not reachable\n"),
            Some(alerts) if alerts.is_empty() => out.push_str("alerts: none firing\n"),
            Some(alerts) => {
                out.push_str("alerts firing:\n");
                for alert in alerts {
                    out.push_str(&format!("  {alert}\n"));
                }
            }
        }
    }

    /// The newest supervisor events.
    fn write_events(&self, out: &mut String) {
        let events = &self.status.events;
        if events.is_empty() {
            return;
        }
        out.push_str("recent events:\n");
        for event in &events[events.len().saturating_sub(EVENTS_SHOWN)..] {
            out.push_str(&format!(
                "  {} {:<5} {:<16} {}\n",
                event.at.format("%H:%M:%S"),
                event.level.as_str(),
                event.instance.as_deref().unwrap_or("-"),
                event.message
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_joins_children_balancer_and_measurements() {
        let snapshot = Snapshot {
            ops: "127.0.0.1:8081".to_owned(),
            status: serde_json::from_value(json!({
                "public": "127.0.0.1:8080", "public_url": "https://127.0.0.1:8080",
                "balancer_admin": "127.0.0.1:9000", "watch": "127.0.0.1:9090",
                "children": [
                    {"instance": "serve-orders-1", "service": "serve", "pool": "orders",
                     "backup": false, "state": "ready", "address": "127.0.0.1:4001",
                     "pid": 41, "restarts": 2},
                    {"instance": "serve-orders-3", "service": "serve", "pool": "orders",
                     "backup": true, "state": "ready", "address": "127.0.0.1:4003",
                     "pid": 43, "restarts": 0}
                ],
                "events": [{"at": "2026-11-22T10:04:05.123Z", "level": "warn",
                            "kind": "restarting", "instance": "serve-orders-1",
                            "message": "restarting in 500 ms"}]
            }))
            .unwrap(),
            backends: HashMap::from([(
                "127.0.0.1:4001".to_owned(),
                BackendView {
                    in_flight: 3,
                    ..BackendView::fresh("127.0.0.1:4001")
                },
            )]),
            measured: HashMap::from([(
                "127.0.0.1:4001".to_owned(),
                Measured {
                    rate: Some(123.45),
                    p99_ms: Some(12.5),
                    errors_percent: Some(0.5),
                },
            )]),
            alerts: Some(vec!["BrigadeHighErrorRate (job=orders)".to_owned()]),
        };
        let text = snapshot.render(160);
        let row = text
            .lines()
            .find(|l| l.contains("serve-orders-1"))
            .expect("a row per child");
        for cell in [
            "ready",
            "healthy",
            "127.0.0.1:4001",
            "41",
            "123.5",
            "12.5",
            "0.5",
        ] {
            assert!(row.contains(cell), "{cell} missing from {row}");
        }
        assert!(text.contains("orders*"), "backups are marked:\n{text}");
        assert!(text.contains("BrigadeHighErrorRate (job=orders)"), "{text}");
        assert!(text.contains("10:04:05 warn  serve-orders-1"), "{text}");
        assert!(text.contains("http://127.0.0.1:8081/"), "{text}");
        assert!(text.contains("public https://127.0.0.1:8080 "), "{text}");
    }
}
