//! `watch.toml`: what to scrape, which rules to evaluate, where notifications go.
//!
//! The notification part uses Alertmanager's names (`route`, `group_by`, `group_wait`,
//! `receivers`, `webhook_configs`, `inhibit_rules`, …) so that `deploy/alertmanager/alertmanager.yml`
//! and a `watch.toml` read alike; durations are Prometheus durations (`30s`, `5m`, `4h`).
//! Loaded with figment, so an error names the key; then every duration and matcher is checked.
//!
//! ```toml
//! listen = "127.0.0.1:8083"
//! rule_files = ["deploy/prometheus/rules/brigade.yml"]
//! [scrape]
//! interval = "15s"
//! [[scrape.static_configs]]
//! job = "orders"
//! targets = ["127.0.0.1:3000"]
//! [[scrape.balance_configs]]
//! admin_url = "http://127.0.0.1:8082"
//! [route]
//! receiver = "team"
//! group_by = ["alertname", "job"]
//! [[receivers]]
//! name = "team"
//! [[receivers.webhook_configs]]
//! url = "http://127.0.0.1:9000/hook"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("watch config {0} does not exist")]
    Missing(PathBuf),
    /// Wrong type, unknown key, bad TOML (the message names the key).
    #[error("invalid watch config: {0}")]
    Parse(Box<figment::Error>),
    /// A value parsed but is not usable.
    #[error("invalid watch config: {key}: {message}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// The HTTP API's address (port 0 picks one; the `listening` log line says which).
    pub listen: SocketAddr,
    /// URL of this watch as seen by people, put into notifications (`externalURL`).
    pub external_url: Option<String>,
    /// Rule files, relative to the config file's directory.
    pub rule_files: Vec<PathBuf>,
    /// Scraping.
    pub scrape: ScrapeConfig,
    /// Rule evaluation.
    pub evaluation: EvaluationConfig,
    /// The routing tree's root.
    pub route: RouteConfig,
    /// Receivers, by name.
    pub receivers: Vec<ReceiverConfig>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Delivery retries.
    pub delivery: DeliveryConfig,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            external_url: None,
            rule_files: Vec::new(),
            scrape: ScrapeConfig::default(),
            evaluation: EvaluationConfig::default(),
            route: RouteConfig::default(),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// Scraping settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Time between scrapes of a target.
    pub interval: ConfigDuration,
    /// Longest a scrape may take (at most the interval).
    pub timeout: ConfigDuration,
    /// Series kept per target; the rest of a scrape is dropped and counted.
    pub max_series_per_target: usize,
    /// Series kept in all.
    pub max_series: usize,
    /// Largest accepted scrape body, in bytes.
    pub max_body_bytes: usize,
    /// Fixed targets.
    pub static_configs: Vec<StaticConfig>,
    /// Balancer admin APIs whose pools' backends are scraped.
    pub balance_configs: Vec<BalanceConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(15),
            timeout: ConfigDuration::from_secs(10),
            max_series_per_target: 5_000,
            max_series: 100_000,
            max_body_bytes: 16 * 1024 * 1024,
            static_configs: Vec::new(),
            balance_configs: Vec::new(),
        }
    }
}

/// Fixed targets of one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The `job` label.
    pub job: String,
    /// `host:port` of each target (the `instance` label).
    pub targets: Vec<String>,
    /// Path of the metrics endpoint.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Extra labels for every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

/// Discovery through a `brigade balance` admin API (`GET /admin/pools`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceConfig {
    /// Base URL of the admin API, e.g. `http://127.0.0.1:8082`.
    pub admin_url: String,
    /// Also scrape the balancer's own `/metrics` (job `balance`).
    #[serde(default = "yes")]
    pub scrape_balancer: bool,
    /// Path of each backend's metrics endpoint.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
}

fn yes() -> bool {
    true
}

/// Rule evaluation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Time between evaluations of a group without its own interval.
    pub interval: ConfigDuration,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(15),
        }
    }
}

/// A node of the routing tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver of alerts this node takes (inherited when empty).
    pub receiver: Option<String>,
    /// Labels that group alerts into one notification (`"..."` means all labels).
    pub group_by: Option<Vec<String>>,
    /// Alertmanager matchers, e.g. `severity="critical"`, `alertname=~"Brigade.*"`.
    pub matchers: Vec<String>,
    /// Keep matching later siblings after this node matched.
    #[serde(rename = "continue")]
    pub continue_: bool,
    /// Wait before the first notification of a new group.
    pub group_wait: Option<ConfigDuration>,
    /// Wait before notifying about changes of a group.
    pub group_interval: Option<ConfigDuration>,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Option<ConfigDuration>,
    /// Child routes, tried in order.
    pub routes: Vec<RouteConfig>,
}

/// Where notifications go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Name used by routes.
    pub name: String,
    /// Also notify when the alerts of a group resolve.
    pub send_resolved: Option<bool>,
    /// Generic webhooks (Alertmanager's webhook JSON, version 4).
    pub webhook_configs: Vec<WebhookConfig>,
    /// Slack incoming webhooks.
    pub slack_configs: Vec<SlackConfig>,
    /// PagerDuty Events API v2.
    pub pagerduty_configs: Vec<PagerDutyConfig>,
    /// E-mail over SMTP.
    pub email_configs: Vec<EmailConfig>,
}

/// A webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL posted to.
    pub url: String,
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret; never logged).
    pub api_url: String,
    /// Channel override.
    #[serde(default)]
    pub channel: Option<String>,
}

/// PagerDuty Events API v2.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key (a secret; never logged).
    pub routing_key: String,
    /// The events endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// E-mail over SMTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Recipient.
    pub to: String,
    /// Sender.
    pub from: String,
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    /// SMTP user, if the server wants one.
    #[serde(default)]
    pub auth_username: Option<String>,
    /// SMTP password (a secret; never logged).
    #[serde(default)]
    pub auth_password: Option<String>,
    /// Require STARTTLS (Alertmanager's default is true; plain SMTP on loopback needs false).
    #[serde(default = "yes")]
    pub require_tls: bool,
}

/// An inhibition rule: a firing source alert mutes matching target alerts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers of the muting alert.
    pub source_matchers: Vec<String>,
    /// Matchers of the muted alert.
    pub target_matchers: Vec<String>,
    /// Labels that must be equal on both.
    pub equal: Vec<String>,
}

/// Delivery retries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Timeout of one attempt.
    pub timeout: ConfigDuration,
    /// Wait before the first retry; doubles each time.
    pub initial_backoff: ConfigDuration,
    /// Longest wait between retries.
    pub max_backoff: ConfigDuration,
    /// Attempts in all before a notification is given up.
    pub max_attempts: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: ConfigDuration::from_secs(10),
            initial_backoff: ConfigDuration::from_millis(500),
            max_backoff: ConfigDuration::from_secs(30),
            max_attempts: 8,
        }
    }
}

impl WatchConfig {
    /// Reads `path`; rule file paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        let mut config: WatchConfig = Figment::new()
            .merge(Toml::file_exact(path))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in &mut config.rule_files {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (tests and `brigade up`, which generates the file).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: WatchConfig = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks durations, matchers and receiver names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        if self.scrape.interval.as_millis() <= 0 {
            return Err(invalid("scrape.interval", "must be positive".into()));
        }
        if self.evaluation.interval.as_millis() <= 0 {
            return Err(invalid("evaluation.interval", "must be positive".into()));
        }
        if self.delivery.timeout.as_millis() <= 0 {
            return Err(invalid("delivery.timeout", "must be positive".into()));
        }
        for (i, target) in self.scrape.static_configs.iter().enumerate() {
            if !matches!(target.scheme.as_str(), "http" | "https") {
                return Err(invalid(
                    &format!("scrape.static_configs[{i}].scheme"),
                    "must be http or https".into(),
                ));
            }
        }
        let names: Vec<&str> = self.receivers.iter().map(|r| r.name.as_str()).collect();
        for (i, receiver) in self.receivers.iter().enumerate() {
            if receiver.name.is_empty() {
                return Err(invalid(
                    &format!("receivers[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if names.iter().filter(|n| **n == receiver.name).count() > 1 {
                return Err(invalid(
                    &format!("receivers[{i}].name"),
                    format!("{} is defined twice", receiver.name),
                ));
            }
        }
        if !self.receivers.is_empty() && self.route.receiver.is_none() {
            return Err(invalid(
                "route.receiver",
                "the root route needs a receiver".into(),
            ));
        }
        check_route(&self.route, "route", &names)?;
        for (i, rule) in self.inhibit_rules.iter().enumerate() {
            for (field, list) in [
                ("source_matchers", &rule.source_matchers),
                ("target_matchers", &rule.target_matchers),
            ] {
                for text in list {
                    crate::notify::matchers::parse(text).map_err(|m| {
                        invalid(&format!("inhibit_rules[{i}].{field}"), m.to_string())
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The scrape interval in milliseconds.
    pub fn scrape_interval_ms(&self) -> i64 {
        self.scrape.interval.as_millis()
    }

    /// The evaluation interval in milliseconds.
    pub fn evaluation_interval_ms(&self) -> i64 {
        self.evaluation.interval.as_millis()
    }
}

fn check_route(route: &RouteConfig, key: &str, receivers: &[&str]) -> Result<(), ConfigError> {
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        key: format!("{key}.{field}"),
        message,
    };
    if let Some(receiver) = &route.receiver
        && !receivers.contains(&receiver.as_str())
    {
        return Err(invalid(
            "receiver",
            format!("no receiver is named {receiver:?}"),
        ));
    }
    for text in &route.matchers {
        crate::notify::matchers::parse(text).map_err(|m| invalid("matchers", m.to_string()))?;
    }
    for (i, child) in route.routes.iter().enumerate() {
        check_route(child, &format!("{key}.routes[{i}]"), receivers)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_duration_is_parsed_at_load_and_a_bad_one_names_its_key() {
        let config = WatchConfig::from_toml(
            "[route]\ngroup_wait = \"1m30s\"\n[[route.routes]]\nrepeat_interval = \"2h\"\n",
        )
        .unwrap();
        assert_eq!(config.route.group_wait, Some(ConfigDuration::from_secs(90)));
        assert_eq!(
            config.route.routes[0].repeat_interval,
            Some(ConfigDuration::from_secs(7200))
        );
        let error = WatchConfig::from_toml("[route]\ngroup_interval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("group_interval"), "{error}");
        assert!(error.contains("soon"), "{error}");
    }
}
