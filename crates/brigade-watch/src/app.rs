//! The running watch: start-up (rules, database, restored state), the scrape, evaluation and
//! notification loops, and the HTTP API — started the same way by `main` and by tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::config::StorageSettings;
use brigade_core::{HealthLatch, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::config::WatchConfig;
use crate::db::Db;
use crate::notify::deliver::Deliverer;
use crate::notify::dispatch::{Dispatcher, LogEntry};
use crate::notify::silence::Silence;
use crate::notify::{Alert, Notification};
use crate::rules::{self, ActiveAlert, AlertState, RuleGroup};
use crate::scrape::{self, Target, TargetHealth};
use crate::shared::lock;
pub use crate::shared::{Shared, now_ms};
use crate::tsdb::Tsdb;

/// Why watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A rule file is invalid.
    #[error(transparent)]
    Rules(#[from] rules::RuleError),
    /// The configuration is invalid.
    #[error("invalid watch config: {0}")]
    Config(String),
    /// A route's or an inhibit rule's matcher is invalid.
    #[error("invalid watch config: {0}")]
    Matcher(#[from] crate::notify::matchers::MatcherError),
    /// The notifications' HTTP client cannot be built.
    #[error("invalid watch config: {0}")]
    Client(#[source] reqwest::Error),
    /// The database cannot be opened.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The listener cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Metric names of watch itself.
pub mod metric_names {
    /// Scrapes by job and outcome (`success`, `failure`).
    pub const SCRAPES: &str = "brigade_watch_scrapes_total";
    /// Series dropped over the per-target or total limit.
    pub const SERIES_DROPPED: &str = "brigade_watch_series_dropped_total";
    /// Series held in memory.
    pub const SERIES: &str = "brigade_watch_series";
    /// Rule group evaluations.
    pub const EVALUATIONS: &str = "brigade_watch_rule_evaluations_total";
    /// Rule evaluations that failed.
    pub const EVALUATION_FAILURES: &str = "brigade_watch_rule_evaluation_failures_total";
    /// Alerts by state (`pending`, `firing`).
    pub const ALERTS: &str = "brigade_watch_alerts";
    /// How long the last evaluation of a rule group took (the same measure as Prometheus's
    /// `prometheus_rule_group_last_duration_seconds`).
    pub const GROUP_DURATION: &str = "brigade_watch_rule_group_last_duration_seconds";
}

/// A built, not yet running watch.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl Watch {
    /// Loads the rules, opens the database, restores alert state, silences and the
    /// notification log, and binds the listener.
    pub async fn build(config: WatchConfig, storage: &StorageSettings) -> Result<Self, WatchError> {
        Self::build_on(config, storage, None).await
    }

    /// As [`Watch::build`], serving on `inherited` (a socket a supervisor holds, so watch's
    /// address outlives its restarts) instead of binding `listen` when one is given.
    pub async fn build_on(
        config: WatchConfig,
        storage: &StorageSettings,
        inherited: Option<std::net::TcpListener>,
    ) -> Result<Self, WatchError> {
        // Install the metrics recorder before anything records (counters made earlier are lost).
        brigade_core::metrics::renderer();
        let mut groups = rules::load_files(&config.rule_files)?;
        let retention = retention_ms(&groups, &config);
        let tsdb = Tsdb::new(retention, config.scrape.max_series);
        let mut dispatcher = Dispatcher::new(&config)?;
        let (listener, address) = listen(inherited, config.listen).await?;
        let external_url = config
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let deliverer = Deliverer::new(&config.receivers, &config.delivery, &external_url)
            .map_err(WatchError::Client)?;
        let db = Db::open(storage).await?;

        restore(&db, &mut groups, &mut dispatcher).await?;

        let http = reqwest::Client::builder()
            .user_agent(concat!("brigade-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WatchError::Config(e.to_string()))?;
        let targets = scrape::static_targets(&config.scrape)
            .into_iter()
            .map(unknown_health)
            .collect();
        describe_metrics();
        let shared = Arc::new(Shared {
            config,
            tsdb: Mutex::new(tsdb),
            groups: Mutex::new(groups),
            dispatcher: Mutex::new(dispatcher),
            targets: Mutex::new(targets),
            db,
            deliverer,
            health: HealthLatch::new(),
            wake: Notify::new(),
            external_url,
            http,
            exemplars: Mutex::default(),
            traces: Mutex::new(crate::traces::TraceStore::new(
                crate::traces::TraceLimits::default(),
            )),
        });
        Ok(Self { shared, listener })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (tests inspect it).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs the loops and the API until `shutdown` triggers.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> std::io::Result<()> {
        let address = self.local_addr();
        let shared = self.shared;
        keep_own_spans(&shared);
        let tasks = vec![
            tokio::spawn(scrape_loop(shared.clone(), shutdown.clone())),
            tokio::spawn(evaluation_loop(shared.clone(), shutdown.clone())),
            tokio::spawn(notify_loop(shared.clone(), shutdown.clone())),
        ];
        shared.health.set_ready();
        tracing::info!(
            %address,
            rules = lock(&shared.groups).iter().map(|g| g.rules.len()).sum::<usize>(),
            targets = lock(&shared.targets).len(),
            "listening"
        );
        let router = crate::api::router(shared.clone());
        let stop = shutdown.clone();
        let health = shared.health.clone();
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                stop.wait().await;
                health.set_draining();
            })
            .await?;
        for task in tasks {
            let _ = task.await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Sends the spans of watch's own work into its own window, when this process collects its
/// spans itself (no `OTEL_*` endpoint; see `brigade_core::traces::attach_local`). Counted
/// like spans received over OTLP.
fn keep_own_spans(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    let collector: brigade_core::traces::LocalCollector = Arc::new(move |spans, resource| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let offered = spans.len();
        let request = crate::traces::own_spans(spans, resource);
        let kept = lock(&shared.traces).ingest(request, now_ms());
        metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => "kept")
            .increment(kept as u64);
        metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => "rejected")
            .increment(offered.saturating_sub(kept) as u64);
    });
    if brigade_core::traces::attach_local(collector) {
        tracing::debug!("watch keeps the spans of its own work in its trace window");
    }
}

/// How long the store keeps samples: the longest range of any rule, the lookback of instant
/// selectors, and the range queries of the ops dashboard's charts, plus two scrapes of slack.
fn retention_ms(groups: &[rules::RuleGroup], config: &WatchConfig) -> i64 {
    let longest = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .map(|r| match r {
            rules::Rule::Alerting(a) => a.query.max_range_ms(),
            rules::Rule::Recording(r) => r.query.max_range_ms(),
        })
        .max()
        .unwrap_or(0);
    longest
        .max(crate::promql::LOOKBACK_MS)
        .max(crate::api::RANGE_QUERY_WINDOW_MS)
        + 2 * config.scrape_interval_ms()
}

/// Serves on `inherited` (a socket a supervisor holds) when given, else binds `listen`.
async fn listen(
    inherited: Option<std::net::TcpListener>,
    listen: SocketAddr,
) -> Result<(TcpListener, SocketAddr), WatchError> {
    let bind_error = |source| WatchError::Bind {
        address: listen,
        source,
    };
    let listener = match inherited {
        Some(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener)),
        None => TcpListener::bind(listen).await,
    }
    .map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    Ok((listener, address))
}

/// Restores what a restart must not forget: the alerts of each rule, the silences, and what
/// was already notified.
async fn restore(
    db: &Db,
    groups: &mut [rules::RuleGroup],
    dispatcher: &mut Dispatcher,
) -> Result<(), WatchError> {
    let mut stored: HashMap<String, String> = db.load_rule_states().await?.into_iter().collect();
    for group in groups {
        let group_name = group.name.clone();
        for rule in group.alerting_rules_mut() {
            if let Some(body) = stored.remove(&rule_key(&group_name, &rule.name))
                && let Ok(active) = serde_json::from_str::<HashMap<String, ActiveAlert>>(&body)
            {
                rule.active = active;
            }
        }
    }
    for (_, body) in db.load_silences(now_ms(), 24 * 3_600_000).await? {
        if let Ok(silence) = serde_json::from_str::<Silence>(&body) {
            let _ = dispatcher.silences.upsert(silence);
        }
    }
    let log = db.load_log().await?.into_iter().filter_map(|(key, body)| {
        serde_json::from_str::<LogEntry>(&body)
            .ok()
            .map(|e| (key, e))
    });
    dispatcher.restore_log(log);
    Ok(())
}

fn describe_metrics() {
    use metric_names::*;
    metrics::describe_counter!(SCRAPES, "Scrapes by job and outcome.");
    metrics::describe_counter!(
        SERIES_DROPPED,
        "Scraped series dropped over the series limits, by job."
    );
    metrics::describe_gauge!(SERIES, "Series held in memory.");
    metrics::describe_counter!(EVALUATIONS, "Rule group evaluations.");
    metrics::describe_counter!(
        EVALUATION_FAILURES,
        "Rule evaluations that failed, by rule."
    );
    metrics::describe_gauge!(ALERTS, "Alerts by state.");
    metrics::describe_gauge!(
        GROUP_DURATION,
        "Duration of the last evaluation of a rule group, in seconds."
    );
    metrics::describe_counter!(
        crate::traces::SPANS_RECEIVED,
        "Spans received over OTLP, by outcome (kept, rejected)."
    );
    metrics::describe_counter!(
        crate::traces::TRACES_EVICTED,
        "Traces dropped from the trace window, by reason (space, age)."
    );
    metrics::describe_gauge!(
        crate::traces::TRACES_HELD,
        "Traces held in the trace window."
    );
    for outcome in ["kept", "rejected"] {
        metrics::counter!(crate::traces::SPANS_RECEIVED, "outcome" => outcome).increment(0);
    }
    for reason in ["space", "age"] {
        metrics::counter!(crate::traces::TRACES_EVICTED, "reason" => reason).increment(0);
    }
    metrics::gauge!(crate::traces::TRACES_HELD).set(0.0);
}

/// The database key of a rule's alerts.
pub fn rule_key(group: &str, rule: &str) -> String {
    format!("{group}/{rule}")
}

fn unknown_health(target: Target) -> TargetHealth {
    TargetHealth {
        target,
        health: scrape::Health::Unknown,
        last_error: None,
        last_scrape_ms: None,
        last_scrape_duration_seconds: None,
        series: 0,
        dropped: 0,
    }
}

/// Sleeps `period`, or returns false at shutdown.
async fn tick(period: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = shutdown.wait() => false,
    }
}

async fn current_targets(shared: &Shared) -> Vec<Target> {
    let mut targets = scrape::static_targets(&shared.config.scrape);
    for balance in &shared.config.scrape.balance_configs {
        match scrape::discover_balance(&shared.http, balance).await {
            Ok(found) => targets.extend(found),
            Err(error) => {
                tracing::warn!(
                    admin_url = balance.admin_url,
                    error,
                    "balancer discovery failed"
                );
                // Keep scraping what was found before.
                let before = lock(&shared.targets);
                targets.extend(
                    before
                        .iter()
                        .filter(|t| {
                            t.target.discovered_by == balance.admin_url.trim_end_matches('/')
                        })
                        .map(|t| t.target.clone()),
                );
            }
        }
    }
    targets
}

async fn scrape_loop(shared: Arc<Shared>, shutdown: Shutdown) {
    let interval = shared.config.scrape.interval.get();
    let timeout = shared.config.scrape.timeout.get().min(interval);
    loop {
        let round = Instant::now();
        let targets = current_targets(&shared).await;
        {
            // Targets that disappeared: their series go stale now.
            let mut health = lock(&shared.targets);
            let now = now_ms();
            let mut tsdb = lock(&shared.tsdb);
            for old in health.iter() {
                if !targets.iter().any(|t| t.url == old.target.url) {
                    tsdb.mark_source_stale(&old.target.url, now);
                    tsdb.mark_source_stale(&report_source(&old.target), now);
                }
            }
            let previous = std::mem::take(&mut *health);
            *health = targets
                .iter()
                .map(|t| {
                    previous
                        .iter()
                        .find(|h| h.target == *t)
                        .cloned()
                        .unwrap_or_else(|| unknown_health(t.clone()))
                })
                .collect();
        }
        let round_span = crate::work_spans::scrape_round(targets.len());
        let mut set = tokio::task::JoinSet::new();
        for target in targets {
            let shared = shared.clone();
            let span = crate::work_spans::scrape_target(&round_span, &target);
            set.spawn(
                async move { scrape_target(&shared, target, timeout).await }.instrument(span),
            );
        }
        while set.join_next().await.is_some() {}
        drop(round_span);
        let sleep = interval.saturating_sub(round.elapsed());
        if !tick(sleep, &shutdown).await {
            return;
        }
    }
}

/// The store's source key of a target's `up` and `scrape_*` series, kept apart from its own
/// series so that a failed scrape marks the latter stale but still writes `up 0`.
fn report_source(target: &Target) -> String {
    format!("{} (report)", target.url)
}

async fn scrape_target(shared: &Shared, target: Target, timeout: Duration) {
    use metric_names::*;
    let started = Instant::now();
    let t = now_ms();
    let config = &shared.config.scrape;
    let outcome = scrape::scrape(
        &shared.http,
        &target,
        timeout,
        config.max_body_bytes,
        config.max_series_per_target,
    )
    .await;
    let (up, scraped, mut dropped, error) = match &outcome {
        Ok(result) => (true, result.samples.len(), result.dropped, None),
        Err(error) => (false, 0, 0, Some(error.to_string())),
    };
    {
        let mut tsdb = lock(&shared.tsdb);
        match outcome {
            Ok(result) => {
                let report = tsdb.append_scrape(&target.url, t, &result.samples);
                dropped += report.dropped;
                lock(&shared.exemplars).append(result.exemplars, t);
            }
            Err(_) => tsdb.mark_source_stale(&target.url, t),
        }
        let report = scrape::report_series(&target, up, started, scraped, dropped);
        tsdb.append_scrape(&report_source(&target), t, &report);
        metrics::gauge!(SERIES).set(tsdb.series_count() as f64);
    }
    // Both outcomes exist from a job's first scrape, so increase() sees its first failure.
    for outcome in ["success", "failure"] {
        let happened = (outcome == "success") == up;
        metrics::counter!(SCRAPES, "job" => target.job.clone(), "outcome" => outcome)
            .increment(u64::from(happened));
    }
    if dropped > 0 {
        metrics::counter!(SERIES_DROPPED, "job" => target.job.clone()).increment(dropped as u64);
        tracing::warn!(
            job = target.job,
            instance = target.instance,
            dropped,
            "series over the limit were dropped"
        );
    }
    let span = tracing::Span::current();
    span.record("brigade.scrape.samples", scraped);
    if let Some(error) = &error {
        brigade_core::traces::mark_failed(&span, error);
        tracing::debug!(
            job = target.job,
            instance = target.instance,
            error,
            "scrape failed"
        );
    }
    let mut health = lock(&shared.targets);
    if let Some(entry) = health.iter_mut().find(|h| h.target == target) {
        entry.health = if up {
            scrape::Health::Up
        } else {
            scrape::Health::Down
        };
        entry.last_error = error;
        entry.last_scrape_ms = Some(t);
        entry.last_scrape_duration_seconds = Some(started.elapsed().as_secs_f64());
        entry.series = scraped;
        entry.dropped = dropped;
    }
}

async fn evaluation_loop(shared: Arc<Shared>, shutdown: Shutdown) {
    let global = shared.config.evaluation_interval_ms();
    let mut next: Vec<i64> = vec![0; lock(&shared.groups).len()];
    let mut saved: HashMap<String, String> = HashMap::new();
    // Until two scrapes have landed, rates have no value: hold restored alerts meanwhile.
    let warm_until = now_ms() + 2 * shared.config.scrape_interval_ms() + global;
    // Wait one scrape interval so the first evaluation sees data.
    let first = Duration::from_millis(shared.config.scrape_interval_ms().min(global) as u64);
    if !tick(first, &shutdown).await {
        return;
    }
    loop {
        let now = now_ms();
        let (transitions, states, alerts) =
            evaluate_due(&shared, now, global, &mut next, now < warm_until);
        // Persist and notify outside the locks.
        for (fingerprint, alert) in &transitions {
            let body = serde_json::to_string(alert).unwrap_or_default();
            let state = serde_json::to_value(alert.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let name = alert.labels.get("alertname").cloned().unwrap_or_default();
            let at = match alert.state {
                AlertState::Pending => alert.active_at,
                AlertState::Firing => alert.fired_at.unwrap_or(now),
                AlertState::Inactive => alert.resolved_at.unwrap_or(now),
            };
            if let Err(error) = shared
                .db
                .append_history(fingerprint, &name, &state, at, &body)
                .await
            {
                tracing::error!(%error, "cannot record alert history");
            }
        }
        for (key, body) in states {
            if saved.get(&key) != Some(&body) {
                match shared.db.save_rule_state(&key, &body, now).await {
                    Ok(()) => {
                        saved.insert(key, body);
                    }
                    Err(error) => tracing::error!(%error, "cannot save alert state"),
                }
            }
        }
        {
            let mut dispatcher = lock(&shared.dispatcher);
            for alert in alerts {
                dispatcher.put(alert, now);
            }
        }
        shared.wake.notify_one();
        let wait = next.iter().min().copied().unwrap_or(now + global) - now_ms();
        if !tick(
            Duration::from_millis(wait.clamp(10, global) as u64),
            &shutdown,
        )
        .await
        {
            return;
        }
    }
}

type Evaluated = (
    Vec<(String, ActiveAlert)>,
    Vec<(String, String)>,
    Vec<Alert>,
);

fn evaluate_due(
    shared: &Shared,
    now: i64,
    global: i64,
    next: &mut [i64],
    warming_up: bool,
) -> Evaluated {
    use metric_names::*;
    let mut transitions = Vec::new();
    let mut states = Vec::new();
    let mut alerts = Vec::new();
    let mut groups = lock(&shared.groups);
    let mut tsdb = lock(&shared.tsdb);
    tsdb.compact(now);
    let (mut pending, mut firing) = (0, 0);
    // A round span only when a group is due: no empty traces between evaluations.
    let round = if next.iter().any(|due| *due <= now) {
        crate::work_spans::evaluation_round()
    } else {
        tracing::Span::none()
    };
    let mut due = 0;
    for (index, group) in groups.iter_mut().enumerate() {
        if next[index] <= now {
            next[index] = now + group.interval_ms.unwrap_or(global);
            due += 1;
            evaluate_group(group, &mut tsdb, now, warming_up, &round, &mut transitions);
        }
        for rule in group.alerting_rules() {
            states.push((
                rule_key(&group.name, &rule.name),
                serde_json::to_string(&rule.active).unwrap_or_default(),
            ));
            for (fingerprint, alert) in &rule.active {
                match alert.state {
                    AlertState::Pending => pending += 1,
                    AlertState::Firing => firing += 1,
                    AlertState::Inactive => {}
                }
                if alert.state == AlertState::Pending {
                    continue;
                }
                alerts.push(Alert {
                    fingerprint: fingerprint.clone(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: alert.fired_at.unwrap_or(alert.active_at),
                    ends_at: alert.resolved_at,
                    generator_url: format!(
                        "{}/api/v1/query?query={}",
                        shared.external_url,
                        form_encode(rule.query.text())
                    ),
                });
            }
        }
    }
    round.record("brigade.rules.groups", due);
    metrics::gauge!(ALERTS, "state" => "pending").set(pending as f64);
    metrics::gauge!(ALERTS, "state" => "firing").set(firing as f64);
    (transitions, states, alerts)
}

/// Evaluates one due group inside its span (a child of the round's), adding its transitions.
fn evaluate_group(
    group: &mut RuleGroup,
    tsdb: &mut crate::tsdb::Tsdb,
    now: i64,
    warming_up: bool,
    round: &tracing::Span,
    transitions: &mut Vec<(String, ActiveAlert)>,
) {
    use metric_names::*;
    let span = crate::work_spans::group_evaluation(round, &group.name, group.rules.len());
    let _in_group = span.enter();
    let started = Instant::now();
    let before = transitions.len();
    for t in group.eval_with(tsdb, now, warming_up) {
        transitions.push((t.fingerprint, t.alert));
    }
    span.record("brigade.alerts.transitions", transitions.len() - before);
    for rule in group.alerting_rules().filter(|r| r.last_error.is_some()) {
        metrics::counter!(EVALUATION_FAILURES, "rule" => rule.name.clone()).increment(1);
        let reason = format!(
            "rule {}: {}",
            rule.name,
            rule.last_error.as_deref().unwrap_or("")
        );
        brigade_core::traces::mark_failed(&span, &reason);
        brigade_core::traces::mark_failed(round, &reason);
    }
    metrics::gauge!(GROUP_DURATION, "group" => group.name.clone())
        .set(started.elapsed().as_secs_f64());
    metrics::counter!(EVALUATIONS, "group" => group.name.clone()).increment(1);
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

async fn notify_loop(shared: Arc<Shared>, shutdown: Shutdown) {
    loop {
        let now = now_ms();
        let notifications = lock(&shared.dispatcher).flush_due(now);
        for notification in notifications {
            let shared = shared.clone();
            tokio::spawn(async move { deliver(&shared, notification).await });
        }
        let next = lock(&shared.dispatcher).next_due();
        let wait = next
            .map(|t| (t - now_ms()).clamp(5, 1_000))
            .unwrap_or(1_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = shared.wake.notified() => {}
            _ = shutdown.wait() => return,
        }
    }
}

async fn deliver(shared: &Shared, notification: Notification) {
    let ok = !notification.send || {
        let span = crate::work_spans::notification(&notification);
        let ok = shared
            .deliverer
            .deliver(&notification)
            .instrument(span.clone())
            .await;
        if !ok {
            brigade_core::traces::mark_failed(&span, "delivery failed; the next flush tries again");
        }
        ok
    };
    if !ok {
        // Not logged as delivered: the group's next flush tries again.
        return;
    }
    tracing::info!(
        receiver = notification.receiver,
        group = notification.group_key,
        status = notification.status(),
        alerts = notification.alerts.len(),
        "notification sent"
    );
    let (key, entry) = lock(&shared.dispatcher).delivered(&notification);
    let body = serde_json::to_string(&entry).unwrap_or_default();
    if let Err(error) = shared.db.save_log_entry(&key, &body, now_ms()).await {
        tracing::error!(%error, "cannot save the notification log");
    }
}
