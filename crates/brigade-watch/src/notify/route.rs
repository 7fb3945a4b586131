//! The routing tree: which receivers get an alert, and how its group is formed.

use promql_parser::label::Matcher;

use super::matchers::{self, MatcherError};
use crate::config::RouteConfig;
use crate::duration::ConfigDuration;
use crate::labels::Labels;

/// Alertmanager's defaults.
const GROUP_WAIT_MS: i64 = 30_000;
const GROUP_INTERVAL_MS: i64 = 5 * 60_000;
const REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label, so each alert is its own group.
    All,
    /// These labels (empty: one group for the whole route).
    Labels(Vec<String>),
}

/// A compiled route node (settings already inherited from its parents).
#[derive(Debug, Clone)]
pub struct Route {
    /// Alertmanager's route key: `{}` for the root, `{}/{matchers}` below.
    pub id: String,
    /// Its matchers.
    pub matchers: Vec<Matcher>,
    /// Receiver name.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// Wait before a new group's first notification.
    pub group_wait_ms: i64,
    /// Wait between notifications of a changed group.
    pub group_interval_ms: i64,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval_ms: i64,
    /// Whether siblings after this one are still tried.
    pub continue_: bool,
    /// Children.
    pub routes: Vec<Route>,
}

impl Route {
    /// Compiles the tree from its configuration.
    pub fn compile(config: &RouteConfig) -> Result<Self, MatcherError> {
        let root = Route {
            id: "{}".into(),
            matchers: Vec::new(),
            receiver: config.receiver.clone().unwrap_or_default(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: GROUP_WAIT_MS,
            group_interval_ms: GROUP_INTERVAL_MS,
            repeat_interval_ms: REPEAT_INTERVAL_MS,
            continue_: false,
            routes: Vec::new(),
        };
        Self::child_of(&root, config, true)
    }

    fn child_of(parent: &Route, config: &RouteConfig, is_root: bool) -> Result<Self, MatcherError> {
        let matchers = matchers::parse_all(&config.matchers)?;
        let id = if is_root {
            "{}".to_owned()
        } else {
            let texts: Vec<String> = matchers.iter().map(matchers::to_text).collect();
            format!("{}/{{{}}}", parent.id, texts.join(","))
        };
        // Parsed when the file was read; here only the parent's value is inherited.
        let duration = |value: Option<ConfigDuration>, inherited: i64| {
            value.map_or(inherited, ConfigDuration::as_millis)
        };
        let mut route = Route {
            id,
            matchers,
            receiver: config
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by: match &config.group_by {
                Some(labels) if labels.iter().any(|l| l == "...") => GroupBy::All,
                Some(labels) => GroupBy::Labels(labels.clone()),
                None => parent.group_by.clone(),
            },
            group_wait_ms: duration(config.group_wait, parent.group_wait_ms),
            group_interval_ms: duration(config.group_interval, parent.group_interval_ms),
            repeat_interval_ms: duration(config.repeat_interval, parent.repeat_interval_ms),
            continue_: config.continue_,
            routes: Vec::new(),
        };
        let mut children = Vec::new();
        for child in &config.routes {
            children.push(Self::child_of(&route, child, false)?);
        }
        // Siblings with equal matchers would share a key; number them as Alertmanager does
        // not need to, because its keys include the position in practice through matchers.
        route.routes = children;
        Ok(route)
    }

    /// The routes an alert goes to: the deepest matching nodes, first match wins among
    /// siblings unless `continue` is set; the node itself when no child matches.
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        if !matchers::all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut found = Vec::new();
        for child in &self.routes {
            let matched = child.matching(labels);
            if !matched.is_empty() {
                found.extend(matched);
                if !child.continue_ {
                    break;
                }
            }
        }
        if found.is_empty() {
            found.push(self);
        }
        found
    }

    /// The labels an alert is grouped by on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => labels
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    fn tree() -> Route {
        let config: crate::config::WatchConfig = crate::config::WatchConfig::from_toml(
            r#"
            [route]
            receiver = "default"
            group_by = ["alertname"]
            [[route.routes]]
            matchers = ['severity="critical"']
            receiver = "pager"
            continue = true
            [[route.routes]]
            matchers = ['severity=~"critical|warning"']
            receiver = "slack"
            group_wait = "1s"
            [[route.routes.routes]]
            matchers = ['team="payments"']
            receiver = "payments"
            [[receivers]]
            name = "default"
            [[receivers]]
            name = "pager"
            [[receivers]]
            name = "slack"
            [[receivers]]
            name = "payments"
            "#,
        )
        .unwrap();
        Route::compile(&config.route).unwrap()
    }

    fn receivers(route: &Route, pairs: &[(&str, &str)]) -> Vec<String> {
        route
            .matching(&labels(pairs.iter().copied()))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    #[test]
    fn first_match_continue_and_fallback() {
        let root = tree();
        assert_eq!(
            receivers(&root, &[("severity", "critical")]),
            ["pager", "slack"]
        );
        assert_eq!(receivers(&root, &[("severity", "warning")]), ["slack"]);
        assert_eq!(
            receivers(&root, &[("severity", "warning"), ("team", "payments")]),
            ["payments"]
        );
        assert_eq!(receivers(&root, &[("severity", "none")]), ["default"]);
        let slack = &root.routes[1];
        assert_eq!(slack.group_wait_ms, 1_000);
        assert_eq!(slack.routes[0].group_wait_ms, 1_000, "inherited");
        assert_eq!(slack.group_interval_ms, 300_000, "default");
        assert_eq!(slack.id, r#"{}/{severity=~"critical|warning"}"#);
    }
}
