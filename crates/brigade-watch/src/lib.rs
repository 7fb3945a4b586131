//! brigade-watch: the kitchen's thermometers, timers and fire alarm.
//!
//! `brigade watch --config watch.toml` scrapes Prometheus text endpoints (static targets and
//! the backends a `brigade balance` admin API lists), keeps a bounded window of samples in
//! memory, evaluates alerting rules written in Prometheus's own rule-file format over them,
//! and sends notifications with Alertmanager's semantics (routing tree, grouping, inhibition,
//! silences, resolved notices) to webhooks, Slack, PagerDuty and e-mail. Alert state, history
//! and silences live in brigade's database, so a restart neither forgets nor repeats an alert.
//!
//! In production the very same rule file runs in Prometheus and Alertmanager
//! (`deploy/prometheus/rules/brigade.yml`, `deploy/alertmanager/alertmanager.yml`).

pub mod api;
pub mod app;
pub mod client;
pub mod config;
pub mod contract;
pub mod db;
pub mod duration;
pub mod exemplars;
pub mod labels;
pub mod notify;
pub mod promql;
pub mod rules;
pub mod scrape;
pub mod shared;
pub mod template;
pub mod textformat;
pub mod traces;
pub mod tsdb;
pub mod work_spans;

pub use app::{Watch, WatchError};
pub use config::WatchConfig;

pub(crate) use brigade_core::telemetry::error_chain;
