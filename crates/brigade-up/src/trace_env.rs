//! Where `brigade up`'s children send their traces: the `OTEL_*` variables each child gets.
//!
//! Under `up`, watch is the trace collector (see `brigade_watch::traces` for why): the
//! supervisor holds watch's listening socket, so its address is known before the balancer and
//! the replicas start and stays the same across watch restarts, and every child is pointed at
//! it with `OTEL_EXPORTER_OTLP_ENDPOINT`. A user who set their own endpoint (an OpenTelemetry
//! Collector, Tempo, Jaeger) or turned export off with `OTEL_SDK_DISABLED` /
//! `OTEL_TRACES_EXPORTER=none` keeps that: the children inherit the environment unchanged.
//!
//! Every child is named (`OTEL_SERVICE_NAME`, unless the user set one) and told its instance
//! (`service.instance.id` added to `OTEL_RESOURCE_ATTRIBUTES`), so the spans of two replicas
//! are told apart in one trace.
//!
//! Watch itself is not pointed at its own collector: each export it received would make a
//! span of its own to export, a loop that would fill the window with watch's own requests.

use std::net::SocketAddr;

/// The trace settings children are started with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceEnv {
    /// `http://<watch>` when the children export to watch; `None` when the user's own
    /// settings (or no watch) decide.
    collector: Option<String>,
    /// The user set `OTEL_SERVICE_NAME`.
    user_service_name: bool,
    /// The user's `OTEL_RESOURCE_ATTRIBUTES`, extended per child.
    user_resource: Option<String>,
}

impl TraceEnv {
    /// Settings for children of an `up` whose watch listens on `watch` (`None`: no watch),
    /// reading the user's `OTEL_*` variables through `var`.
    pub fn new(watch: Option<SocketAddr>, var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let user_decides = set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            || var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
        Self {
            collector: watch
                .filter(|_| !user_decides)
                .map(|address| format!("http://{address}")),
            user_service_name: set("OTEL_SERVICE_NAME"),
            user_resource: var("OTEL_RESOURCE_ATTRIBUTES").filter(|v| !v.trim().is_empty()),
        }
    }

    /// From the supervisor's own environment.
    pub fn from_env(watch: Option<SocketAddr>) -> Self {
        Self::new(watch, |name| std::env::var(name).ok())
    }

    /// The collector's endpoint, when the children export to watch.
    pub fn collector(&self) -> Option<&str> {
        self.collector.as_deref()
    }

    /// The variables of a child running `service` (`brigade-serve`, …) as `instance`.
    pub fn for_child(&self, service: &str, instance: &str) -> Vec<(String, String)> {
        let mut env = Vec::with_capacity(3);
        if let Some(collector) = &self.collector
            && service != "brigade-watch"
        {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), collector.clone()));
        }
        if !self.user_service_name {
            env.push(("OTEL_SERVICE_NAME".to_owned(), service.to_owned()));
        }
        // Attribute values are percent-encoded by the specification; instance names are plain
        // words and digits, which need none.
        let instance = format!("service.instance.id={instance}");
        let resource = match &self.user_resource {
            Some(user) => format!("{user},{instance}"),
            None => instance,
        };
        env.push(("OTEL_RESOURCE_ATTRIBUTES".to_owned(), resource));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
    }

    fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn children_export_to_watch_by_default() {
        let settings = TraceEnv::new(watch(), |_| None);
        let env = settings.for_child("brigade-serve", "default-1");
        assert_eq!(
            value(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(value(&env, "OTEL_SERVICE_NAME"), Some("brigade-serve"));
        assert_eq!(
            value(&env, "OTEL_RESOURCE_ATTRIBUTES"),
            Some("service.instance.id=default-1")
        );
        let watch_env = settings.for_child("brigade-watch", "watch");
        assert_eq!(value(&watch_env, "OTEL_EXPORTER_OTLP_ENDPOINT"), None);
    }

    #[test]
    fn the_users_settings_win() {
        let user = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_owned()),
            "OTEL_SERVICE_NAME" => Some("shop".to_owned()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("deployment.environment=staging".to_owned()),
            _ => None,
        };
        let env = TraceEnv::new(watch(), user).for_child("brigade-balance", "balance");
        assert_eq!(value(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"), None);
        assert_eq!(value(&env, "OTEL_SERVICE_NAME"), None);
        assert_eq!(
            value(&env, "OTEL_RESOURCE_ATTRIBUTES"),
            Some("deployment.environment=staging,service.instance.id=balance")
        );
        let off = TraceEnv::new(watch(), |name| {
            (name == "OTEL_SDK_DISABLED").then(|| "true".to_owned())
        });
        assert_eq!(off.collector(), None);
        assert_eq!(TraceEnv::new(None, |_| None).collector(), None);
    }
}
