//! The HTTP calls a drill makes besides its load: the ops API, the balancer's admin API, the
//! replicas' fault switches and the audit trail.

use brigade_balance::api::{BackendView, PoolView};
use std::time::Duration;

use serde_json::Value;

use super::DrillError;
use crate::PublicEndpoint;
use crate::api::Status;
use brigade_api::faults::{FaultState, FaultSwitch};
use brigade_api::routes::accounts::Session;
use brigade_api::routes::audit::AuditPage;
use brigade_domain::{AuditEvent, Credentials};
use brigade_watch::contract::HistoryAnswer;

/// How long any one request of a drill (besides the probes) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a drill starts from: `up`'s status, its public port, and one client for both and for
/// everything else (over TLS it trusts the public port's certificate).
pub struct Start {
    /// `GET /api/status` of the ops API.
    pub status: Status,
    /// The public port.
    pub public: PublicEndpoint,
    /// The client.
    pub http: reqwest::Client,
}

/// Reads `up`'s status at `ops` and makes the drill's client from it.
pub async fn start(ops: &str) -> Result<Start, DrillError> {
    let setup = |error: &dyn std::fmt::Display| DrillError::Setup(error.to_string());
    let plain = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| setup(&e))?;
    let status = status(&plain, ops).await?;
    let public = status
        .public_endpoint()
        .ok_or_else(|| setup(&"the status of brigade up names no public port"))?;
    let http = public
        .client(reqwest::Client::builder().timeout(REQUEST_TIMEOUT))
        .map_err(|e| setup(&e))?;
    Ok(Start {
        status,
        public,
        http,
    })
}

/// [`start`], then the demo customer logged in (the password given, else the accounts file):
/// where the drills that only need the customer's load begin.
pub async fn start_as_customer(
    ops: &str,
    password: Option<String>,
) -> Result<(Start, String), DrillError> {
    const CUSTOMER: &str = "customer@brigade.demo";
    let start = start(ops).await?;
    let passwords = DemoPasswords::new(password, &start.status);
    let token = log_in(
        &start.http,
        &start.public,
        CUSTOMER,
        &passwords.of(CUSTOMER)?,
    )
    .await?;
    Ok((start, token))
}

/// The body of a successful answer as a `T`; anything else is a setup error.
pub async fn answer_of<T: serde::de::DeserializeOwned>(
    response: reqwest::Result<reqwest::Response>,
) -> Result<T, DrillError> {
    serde_json::from_value(json_of(response).await?)
        .map_err(|e| DrillError::Setup(format!("unexpected answer: {e}")))
}

/// The JSON body of a successful answer; anything else is a setup error naming the status.
pub async fn json_of(response: reqwest::Result<reqwest::Response>) -> Result<Value, DrillError> {
    let response = response.map_err(|e| DrillError::Setup(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| DrillError::Setup(e.to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(DrillError::Setup(format!("HTTP {status}: {body}")))
    }
}

/// Passwords of the demo accounts: the one given (`--password`, `BRIGADE_DEMO_PASSWORD`), else
/// each account's own from the accounts file in the data directory `brigade up` reports.
#[derive(Clone)]
pub struct DemoPasswords {
    given: Option<String>,
    data_dir: Option<std::path::PathBuf>,
}

impl DemoPasswords {
    /// From the password given, if any, and `up`'s status.
    pub fn new(given: Option<String>, status: &Status) -> Self {
        Self {
            given: given.filter(|p| !p.is_empty()),
            data_dir: status.data_dir.clone(),
        }
    }

    /// The password of `email`.
    pub fn of(&self, email: &str) -> Result<String, DrillError> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        self.data_dir
            .as_deref()
            .and_then(|dir| crate::demo_accounts::password_of(dir, email))
            .ok_or_else(|| {
                DrillError::Setup(format!(
                    "no password for {email}: give --password (or BRIGADE_DEMO_PASSWORD), or \
                     run the drill where {} of brigade up is readable",
                    crate::demo_accounts::FILE_NAME
                ))
            })
    }
}

/// Logs a demo account in and returns its token.
pub async fn log_in(
    http: &reqwest::Client,
    public: &PublicEndpoint,
    email: &str,
    password: &str,
) -> Result<String, DrillError> {
    let session: Session = answer_of(
        http.post(public.url("/api/v1/sessions"))
            .json(&Credentials {
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .send()
            .await,
    )
    .await
    .map_err(|e| {
        DrillError::Setup(format!(
            "cannot log in as {email} (give --password, set BRIGADE_DEMO_PASSWORD or \
             `brigade demo-data --reset-passwords`): {e}"
        ))
    })?;
    Ok(session.token)
}

/// `GET /api/status` of the ops API.
pub async fn status(http: &reqwest::Client, ops: &str) -> Result<Status, DrillError> {
    let answer = json_of(http.get(format!("http://{ops}/api/status")).send().await).await?;
    serde_json::from_value(answer).map_err(|e| {
        DrillError::Setup(format!(
            "{ops} answered something else than the status of brigade up: {e}"
        ))
    })
}

/// Ready primary replicas of the orders pool.
pub fn ready_primaries(status: &Status) -> usize {
    status
        .replicas(Some("orders"))
        .filter(|c| c.is_ready_primary())
        .count()
}

/// The backends of a balancer pool (`GET /admin/pools/{pool}`); empty when unreachable.
pub async fn pool_backends(http: &reqwest::Client, admin: &str, pool: &str) -> Vec<BackendView> {
    let Ok(response) = http
        .get(format!("http://{admin}/admin/pools/{pool}"))
        .send()
        .await
    else {
        return Vec::new();
    };
    match response.error_for_status() {
        Ok(response) => response
            .json::<PoolView>()
            .await
            .map(|view| view.backends)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Sets a replica's fault switch (`PUT /api/v1/admin/faults`; fields left out are off).
pub async fn set_faults(
    http: &reqwest::Client,
    replica: &str,
    admin_token: &str,
    switch: &FaultSwitch,
) -> Result<FaultState, DrillError> {
    answer_of(
        http.put(format!("http://{replica}/api/v1/admin/faults"))
            .bearer_auth(admin_token)
            .json(switch)
            .send()
            .await,
    )
    .await
}

/// A replica's fault switch and payment breaker (`GET /api/v1/admin/faults`).
pub async fn faults_of(
    http: &reqwest::Client,
    replica: &str,
    admin_token: &str,
) -> Result<FaultState, DrillError> {
    answer_of(
        http.get(format!("http://{replica}/api/v1/admin/faults"))
            .bearer_auth(admin_token)
            .send()
            .await,
    )
    .await
}

/// Every audit event matching `filter` since `since`, newest first (all pages).
pub async fn audit(
    http: &reqwest::Client,
    public: &PublicEndpoint,
    admin_token: &str,
    filter: &[(&str, &str)],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<AuditEvent>, DrillError> {
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, &str)> = filter.to_vec();
        query.push(("since", &since));
        query.push(("limit", "100"));
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor));
        }
        let url = reqwest::Url::parse_with_params(&public.url("/api/v1/admin/audit"), &query)
            .map_err(|e| DrillError::Setup(e.to_string()))?;
        let page: AuditPage =
            answer_of(http.get(url).bearer_auth(admin_token).send().await).await?;
        events.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(events),
        }
    }
}

/// Names of alerts that were firing in `brigade watch` at some point since `since`; none when
/// `up` runs without watch.
pub async fn fired_alerts(
    http: &reqwest::Client,
    watch: Option<&str>,
    since: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let Some(watch) = watch else {
        return Vec::new();
    };
    let Ok(Ok(history)) = http
        .get(format!("http://{watch}/api/v1/alerts/history"))
        .send()
        .await
        .map(|r| r.error_for_status())
    else {
        return Vec::new();
    };
    let Ok(history) = history.json::<HistoryAnswer>().await else {
        return Vec::new();
    };
    let mut names: Vec<String> = history
        .history
        .into_iter()
        .filter(|e| e.state == "firing")
        .filter(|e| chrono::DateTime::parse_from_rfc3339(&e.at).is_ok_and(|at| at >= since))
        .map(|e| e.alertname)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What became of the orders a drill saw acknowledged.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// The acknowledged order ids, sorted and without repeats (for binary search).
    pub ids: Vec<String>,
    /// Acknowledgements received (an order acknowledged twice counts twice).
    pub acknowledged: usize,
    /// Orders acknowledged more than once.
    pub duplicated: usize,
    /// Acknowledged orders that cannot be read back.
    pub lost: usize,
    /// Their ids.
    pub missing: Vec<String>,
}

/// Reads every acknowledged order back through the public port: each must be there, once.
pub async fn reconcile(
    http: &reqwest::Client,
    public: &PublicEndpoint,
    token: &str,
    mut ids: Vec<String>,
) -> Reconciled {
    ids.sort();
    let acknowledged = ids.len();
    ids.dedup();
    let mut missing = Vec::new();
    for id in &ids {
        let found = http
            .get(public.url(&format!("/api/v1/orders/{id}")))
            .bearer_auth(token)
            .send()
            .await;
        if !found.is_ok_and(|r| r.status().is_success()) {
            missing.push(id.clone());
        }
    }
    Reconciled {
        duplicated: acknowledged - ids.len(),
        ids,
        acknowledged,
        lost: missing.len(),
        missing,
    }
}
