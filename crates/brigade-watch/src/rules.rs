//! Rule files in Prometheus's format, and the alert state machine.
//!
//! ```yaml
//! groups:
//!   - name: brigade
//!     interval: 15s            # optional, else the global evaluation interval
//!     rules:
//!       - alert: BrigadeHighErrorRate
//!         expr: sum by (job) (rate(...[5m])) / sum by (job) (rate(...[5m])) > 0.2
//!         for: 2m
//!         keep_firing_for: 1m
//!         labels: { severity: critical }
//!         annotations: { summary: "{{ $labels.job }}: {{ $value | humanizePercentage }} 5xx" }
//!       - record: job:requests:rate5m
//!         expr: sum by (job) (rate(http_server_request_duration_seconds_count[5m]))
//! ```
//!
//! Every expression and template is checked when the file loads, so a rule brigade cannot
//! evaluate is rejected with its group, its name and the reason, not discovered at 3 a.m.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::labels::{Labels, METRIC_NAME, fingerprint, without_name};
use crate::promql::{PromqlError, Query};
use crate::template;
use crate::tsdb::Tsdb;

/// Why a rule file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid YAML, or not the rule-file shape.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A rule is invalid or outside the subset.
    #[error("{path}: group {group:?}, rule {rule:?}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The group's name.
        group: String,
        /// The rule's `alert` or `record` name.
        rule: String,
        /// What is wrong (boxed: rule files load once, and the error stays small).
        problem: Box<RuleProblem>,
    },
}

/// What is wrong with a group or a rule of a rule file.
#[derive(Debug, thiserror::Error)]
pub enum RuleProblem {
    /// A group without a name.
    #[error("group name must not be empty")]
    EmptyGroupName,
    /// Two groups with one name.
    #[error("group name is used twice")]
    DuplicateGroup,
    /// `limit`, which brigade does not enforce.
    #[error("group limit is not supported")]
    GroupLimit,
    /// A duration (`interval`, `for`, `keep_firing_for`) that does not parse.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// `expr` that is neither a string nor a number.
    #[error("expr must be a string")]
    ExprNotText,
    /// `expr` outside the PromQL subset.
    #[error("unsupported {0}")]
    Unsupported(String),
    /// `expr` that does not parse or check.
    #[error(transparent)]
    Query(PromqlError),
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}")]
    LabelName(String),
    /// Neither or both of `alert` and `record`.
    #[error("a rule needs exactly one of alert and record")]
    AlertOrRecord,
    /// An `alert` name that is not a valid name.
    #[error("invalid alert name")]
    AlertName,
    /// A recording rule with alerting fields.
    #[error("a recording rule has no for, keep_firing_for or annotations")]
    RecordingExtras,
    /// A `record` name outside `[a-zA-Z0-9_:]+`.
    #[error("invalid recording rule name")]
    RecordName,
    /// A label or annotation template outside the subset.
    #[error("{key}: {source}")]
    Template {
        /// The label or annotation.
        key: String,
        /// What is wrong with it.
        source: template::TemplateError,
    },
}

/// A duration (`30s`, `5m`, `1h30m`, or bare seconds) that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// The parser's reason.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileDef {
    groups: Vec<GroupDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    record: Option<String>,
    expr: serde_yaml_ng::Value,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A loaded group of rules, evaluated together at one interval.
#[derive(Debug)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Its own interval, if set.
    pub interval_ms: Option<i64>,
    /// Its rules, in file order (later rules see earlier recording rules' results).
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug)]
pub enum Rule {
    /// `alert:`.
    Alerting(AlertingRule),
    /// `record:`.
    Recording(RecordingRule),
}

/// `record:` — stores the expression's result as a new series.
#[derive(Debug)]
pub struct RecordingRule {
    /// The new metric name.
    pub record: String,
    /// The expression.
    pub query: Query,
    /// Labels added to every result.
    pub labels: BTreeMap<String, String>,
}

/// `alert:` — an alert per result series, pending until it has held for `for`.
#[derive(Debug)]
pub struct AlertingRule {
    /// The alert name.
    pub name: String,
    /// The group it belongs to.
    pub group: String,
    /// The expression.
    pub query: Query,
    /// How long a result must persist before the alert fires.
    pub for_ms: i64,
    /// How long a firing alert keeps firing after its result disappears.
    pub keep_firing_for_ms: i64,
    /// Labels added to each alert (templated).
    pub labels: BTreeMap<String, String>,
    /// Annotations of each alert (templated).
    pub annotations: BTreeMap<String, String>,
    /// Alerts of this rule that are pending, firing, or resolved recently, by fingerprint.
    pub active: HashMap<String, ActiveAlert>,
    /// The last evaluation's error, if it failed.
    pub last_error: Option<String>,
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, but not yet for `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
    /// It fired and no longer does.
    Inactive,
}

/// One alert of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Final labels: the series' labels, the rule's labels, `alertname`.
    pub labels: Labels,
    /// Rendered annotations.
    pub annotations: BTreeMap<String, String>,
    /// Current state.
    pub state: AlertState,
    /// The expression's value at the last evaluation where it held.
    pub value: f64,
    /// When the condition first held (ms).
    pub active_at: i64,
    /// When it started firing (ms).
    pub fired_at: Option<i64>,
    /// When it resolved (ms).
    pub resolved_at: Option<i64>,
    /// Since when the result has been missing while `keep_firing_for` holds it firing.
    pub keep_firing_since: Option<i64>,
}

/// A change of state, recorded in the alert history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert (after the change).
    pub alert: ActiveAlert,
}

/// How long a resolved alert is kept (and re-sent as resolved), as in Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Parses a Prometheus duration (`30s`, `5m`, `1h30m`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, DurationError> {
    let error = |reason: String| DurationError {
        text: text.to_owned(),
        reason,
    };
    // A bare number is seconds, converted by the parser with `Duration::from_secs_f64`, which
    // panics on a negative, NaN, infinite or huge value (`for: -1`): refused here first.
    if let Ok(seconds) = text.trim().parse::<f64>()
        && !(0.0..=crate::promql::check::MAX_NUMBER_SECONDS).contains(&seconds)
    {
        return Err(error("negative, not finite or too long".to_owned()));
    }
    promql_parser::util::duration::parse_duration(text)
        .map(|d| crate::promql::check::millis(&d))
        .map_err(|e| error(e.to_string()))
}

/// Reads and checks rule files.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<Vec<RuleGroup>, RuleError> {
    let mut groups = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RuleError::Io {
            path: name.clone(),
            source,
        })?;
        groups.extend(parse(&text, &name)?);
    }
    Ok(groups)
}

/// Parses and checks one rule file's text.
pub fn parse(text: &str, path: &str) -> Result<Vec<RuleGroup>, RuleError> {
    let file: RuleFileDef = serde_yaml_ng::from_str(text).map_err(|e| RuleError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    for group in file.groups {
        let invalid = |rule: &str, problem: RuleProblem| RuleError::Invalid {
            path: path.to_owned(),
            group: group.name.clone(),
            rule: rule.to_owned(),
            problem: Box::new(problem),
        };
        if !names.insert(group.name.clone()) {
            return Err(invalid("", RuleProblem::DuplicateGroup));
        }
        let interval_ms = check_group(&group).map_err(|m| invalid("", m))?;
        let mut rules = Vec::new();
        for def in group.rules {
            let rule_name = def.alert.clone().or(def.record.clone()).unwrap_or_default();
            rules.push(
                parse_rule(def, &group.name, &group.labels).map_err(|m| invalid(&rule_name, m))?,
            );
        }
        groups.push(RuleGroup {
            name: group.name,
            file: path.to_owned(),
            interval_ms,
            rules,
        });
    }
    Ok(groups)
}

/// Checks a group's own fields; returns its evaluation interval, if it sets one.
fn check_group(group: &GroupDef) -> Result<Option<i64>, RuleProblem> {
    if group.name.is_empty() {
        return Err(RuleProblem::EmptyGroupName);
    }
    if group.limit.is_some_and(|l| l > 0) {
        return Err(RuleProblem::GroupLimit);
    }
    Ok(group
        .interval
        .as_deref()
        .map(parse_duration_ms)
        .transpose()?)
}

/// Parses and checks one rule of `group`, whose `labels` every rule inherits.
fn parse_rule(
    def: RuleDef,
    group: &str,
    group_labels: &BTreeMap<String, String>,
) -> Result<Rule, RuleProblem> {
    let expr = match &def.expr {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        _ => return Err(RuleProblem::ExprNotText),
    };
    let query = Query::parse(&expr).map_err(|e| match e {
        PromqlError::Unsupported(what) => RuleProblem::Unsupported(what),
        other => RuleProblem::Query(other),
    })?;
    let mut labels = group_labels.clone();
    labels.extend(def.labels.clone());
    if let Some(name) = labels.keys().find(|name| !valid_label_name(name)) {
        return Err(RuleProblem::LabelName(name.clone()));
    }
    match (def.alert.clone(), def.record.clone()) {
        (Some(alert), None) => alerting_rule(def, alert, group, query, labels).map(Rule::Alerting),
        (None, Some(record)) => recording_rule(&def, record, query, labels).map(Rule::Recording),
        _ => Err(RuleProblem::AlertOrRecord),
    }
}

fn alerting_rule(
    def: RuleDef,
    alert: String,
    group: &str,
    query: Query,
    labels: Labels,
) -> Result<AlertingRule, RuleProblem> {
    if !valid_label_name(&alert) && !alert.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(RuleProblem::AlertName);
    }
    let duration = |d: &Option<String>| -> Result<i64, DurationError> {
        d.as_deref()
            .map(parse_duration_ms)
            .transpose()
            .map(|d| d.unwrap_or(0))
    };
    // Templates are checked once at load, so a typo fails the start and not a notification.
    let sample = Labels::new();
    for (key, text) in labels.iter().chain(def.annotations.iter()) {
        template::render(text, &sample, 0.0).map_err(|source| RuleProblem::Template {
            key: key.clone(),
            source,
        })?;
    }
    Ok(AlertingRule {
        name: alert,
        group: group.to_owned(),
        query,
        for_ms: duration(&def.for_)?,
        keep_firing_for_ms: duration(&def.keep_firing_for)?,
        labels,
        annotations: def.annotations,
        active: HashMap::new(),
        last_error: None,
    })
}

fn recording_rule(
    def: &RuleDef,
    record: String,
    query: Query,
    labels: Labels,
) -> Result<RecordingRule, RuleProblem> {
    if def.for_.is_some() || def.keep_firing_for.is_some() || !def.annotations.is_empty() {
        return Err(RuleProblem::RecordingExtras);
    }
    if record.is_empty()
        || !record
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(RuleProblem::RecordName);
    }
    Ok(RecordingRule {
        record,
        query,
        labels,
    })
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RuleGroup {
    /// Evaluates every rule at `t`; returns the alert state changes.
    pub fn eval(&mut self, db: &mut Tsdb, t: i64) -> Vec<Transition> {
        self.eval_with(db, t, false)
    }

    /// Like [`RuleGroup::eval`]; with `warming_up`, alerts whose result is missing keep their
    /// state instead of being dropped or resolved. Right after a restart the sample window is
    /// empty, and a rate over it has no value yet: without this, every restored firing alert
    /// would resolve, and notify, only to fire again a few scrapes later.
    pub fn eval_with(&mut self, db: &mut Tsdb, t: i64, warming_up: bool) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for rule in &mut self.rules {
            match rule {
                Rule::Alerting(rule) => transitions.extend(rule.eval_with(db, t, warming_up)),
                Rule::Recording(rule) => {
                    if let Ok(value) = rule.query.eval(db, t)
                        && let Ok(vector) = value.into_vector()
                    {
                        for sample in vector {
                            let mut labels = sample.labels;
                            labels.extend(rule.labels.clone());
                            labels.insert(METRIC_NAME.to_owned(), rule.record.clone());
                            db.append(&labels, t, sample.value);
                        }
                    }
                }
            }
        }
        transitions
    }

    /// The alerting rules of the group.
    pub fn alerting_rules(&self) -> impl Iterator<Item = &AlertingRule> {
        self.rules.iter().filter_map(|r| match r {
            Rule::Alerting(rule) => Some(rule),
            Rule::Recording(_) => None,
        })
    }

    /// The alerting rules of the group, mutable (to restore persisted state).
    pub fn alerting_rules_mut(&mut self) -> impl Iterator<Item = &mut AlertingRule> {
        self.rules.iter_mut().filter_map(|r| match r {
            Rule::Alerting(rule) => Some(rule),
            Rule::Recording(_) => None,
        })
    }
}

impl AlertingRule {
    /// One evaluation with Prometheus's semantics: new results become pending (or firing at
    /// once when `for` is zero), pending ones fire after `for`, missing ones are dropped when
    /// pending and resolved when firing (after `keep_firing_for`), resolved ones are kept for
    /// 15 minutes so their resolution is delivered.
    pub fn eval(&mut self, db: &Tsdb, t: i64) -> Vec<Transition> {
        self.eval_with(db, t, false)
    }

    /// [`AlertingRule::eval`], optionally holding alerts whose result is missing (see
    /// [`RuleGroup::eval_with`]).
    pub fn eval_with(&mut self, db: &Tsdb, t: i64, warming_up: bool) -> Vec<Transition> {
        let vector = match self.query.eval(db, t).and_then(|v| v.into_vector()) {
            Ok(vector) => {
                self.last_error = None;
                vector
            }
            Err(error) => {
                // Like Prometheus: a failed evaluation changes no alert.
                self.last_error = Some(error.to_string());
                return Vec::new();
            }
        };
        let mut transitions = Vec::new();
        let mut seen = HashSet::new();
        for sample in vector {
            let (labels, annotations) = self.render(&sample.labels, sample.value);
            let id = fingerprint(&labels);
            if !seen.insert(id.clone()) {
                self.last_error = Some(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
                continue;
            }
            match self.active.get_mut(&id) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = sample.value;
                    alert.annotations = annotations;
                    alert.keep_firing_since = None;
                }
                _ => {
                    let alert = ActiveAlert {
                        labels,
                        annotations,
                        state: AlertState::Pending,
                        value: sample.value,
                        active_at: t,
                        fired_at: None,
                        resolved_at: None,
                        keep_firing_since: None,
                    };
                    transitions.push(Transition {
                        fingerprint: id.clone(),
                        alert: alert.clone(),
                    });
                    self.active.insert(id, alert);
                }
            }
        }
        transitions.extend(self.advance(&seen, t, warming_up));
        transitions
    }

    /// The alert's labels and annotations for one sample of its query: the series' labels
    /// (without `__name__`) with the rule's labels rendered over them, and the rendered
    /// annotations. A template that fails to render stays as written.
    fn render(&self, sample_labels: &Labels, value: f64) -> (Labels, Labels) {
        let series_labels = without_name(sample_labels);
        let render = |text: &String| {
            template::render(text, &series_labels, value).unwrap_or_else(|_| text.clone())
        };
        let mut labels = series_labels.clone();
        for (key, text) in &self.labels {
            labels.insert(key.clone(), render(text));
        }
        labels.insert("alertname".to_owned(), self.name.clone());
        labels.retain(|_, v| !v.is_empty());
        let annotations = self
            .annotations
            .iter()
            .map(|(key, text)| (key.clone(), render(text)))
            .collect();
        (labels, annotations)
    }

    /// Moves every active alert along at `t`: pending ones held for `for` fire; ones whose
    /// series is gone (`seen` lacks them) are dropped (pending), resolved after
    /// `keep_firing_for` (firing) or forgotten after a while (resolved) — except while
    /// `warming_up`, when missing series change nothing.
    fn advance(&mut self, seen: &HashSet<String>, t: i64, warming_up: bool) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let mut remove = Vec::new();
        for (id, alert) in &mut self.active {
            let changed = if seen.contains(id) {
                let due = alert.state == AlertState::Pending && t - alert.active_at >= self.for_ms;
                if due {
                    alert.state = AlertState::Firing;
                    alert.fired_at = Some(t);
                }
                due
            } else if warming_up {
                false
            } else {
                match alert.state {
                    AlertState::Pending => {
                        remove.push(id.clone());
                        false
                    }
                    AlertState::Firing => {
                        let since = *alert.keep_firing_since.get_or_insert(t);
                        let resolved = t - since >= self.keep_firing_for_ms;
                        if resolved {
                            alert.state = AlertState::Inactive;
                            alert.resolved_at = Some(t);
                            alert.keep_firing_since = None;
                        }
                        resolved
                    }
                    AlertState::Inactive => {
                        if alert
                            .resolved_at
                            .is_some_and(|r| t - r > RESOLVED_RETENTION_MS)
                        {
                            remove.push(id.clone());
                        }
                        false
                    }
                }
            };
            if changed {
                transitions.push(Transition {
                    fingerprint: id.clone(),
                    alert: alert.clone(),
                });
            }
        }
        for id in remove {
            self.active.remove(&id);
        }
        transitions
    }
}

#[cfg(test)]
mod tests;
