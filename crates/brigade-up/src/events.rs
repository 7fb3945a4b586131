//! Supervisor events: what happened to which child, kept for the ops API and logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::Utc;

pub use crate::api::{Event, EventKind, EventLevel};

/// How many events the ops API can show.
const KEPT: usize = 200;

/// The recent events, shared between the supervisor's tasks.
#[derive(Debug, Clone, Default)]
pub struct Events(Arc<Mutex<VecDeque<Event>>>);

impl Events {
    /// Records an event and logs it.
    pub fn push(
        &self,
        level: EventLevel,
        kind: EventKind,
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
        let kind = kind.as_str();
        match level {
            EventLevel::Error => tracing::error!(kind, instance, "{}", event.message),
            EventLevel::Warn => tracing::warn!(kind, instance, "{}", event.message),
            EventLevel::Info => tracing::info!(kind, instance, "{}", event.message),
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
