//! Supervisor events: what happened to which child, kept for the ops API and logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How many events the ops API can show.
const KEPT: usize = 200;

/// One thing the supervisor did or saw.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: &'static str,
    /// `started`, `ready`, `exited`, `restarting`, `crash_loop`, `stopping`, …
    pub kind: &'static str,
    /// The child's instance name (e.g. `serve-orders-2`), if about one.
    pub instance: Option<String>,
    /// Words for people.
    pub message: String,
}

/// The recent events, shared between the supervisor's tasks.
#[derive(Debug, Clone, Default)]
pub struct Events(Arc<Mutex<VecDeque<Event>>>);

impl Events {
    /// Records an event and logs it.
    pub fn push(
        &self,
        level: &'static str,
        kind: &'static str,
        instance: Option<&str>,
        message: impl Into<String>,
    ) {
        crate::metrics::event(kind, level);
        let event = Event {
            at: Utc::now(),
            level,
            kind,
            instance: instance.map(str::to_owned),
            message: message.into(),
        };
        match level {
            "error" => tracing::error!(kind, instance, "{}", event.message),
            "warn" => tracing::warn!(kind, instance, "{}", event.message),
            _ => tracing::info!(kind, instance, "{}", event.message),
        }
        let mut events = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        if events.len() == KEPT {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The recent events, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let events = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        events.iter().cloned().collect()
    }
}
