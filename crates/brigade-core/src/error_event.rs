//! Error events: one structured log line per error worth tracking, so that whoever reads the
//! logs (the supervisor's central log, a log shipper) can group errors without parsing prose.
//!
//! An error event is an `error` line whose fields are those of [`ErrorEvent`]: `error_kind`,
//! the message, `error_route` (a route template or a page path), `error_frames` (the top
//! frames, one per line), `release` and, when a browser reported it, `error_trace_id` (the
//! trace of the request that failed in the browser). The line's `trace_id` comes from the
//! request span it was written in. [`ErrorEvent::log`] writes one and the same type reads it
//! back, so writer and reader cannot drift apart (a test renders one through [`JsonLayer`] and
//! parses it again).
//!
//! Server errors reach the log in two ways:
//! - a handler's error site attaches a [`ServerError`] to the 5xx response it builds (its
//!   internal cause, never sent to the client); the request middleware
//!   ([`crate::request::observe`]), which knows the route template and is inside the request's
//!   span, logs it as an event;
//! - a panic is seen by the hook [`install_panic_hook`] puts in place: inside a request the
//!   panic's location is kept for the layer that turns the panic into a 500 ([`take_panic`]),
//!   anywhere else (a background task, a thread) the hook logs the event itself.
//!
//! [`JsonLayer`]: crate::telemetry::JsonLayer

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

/// The version of the brigade binary: the `release` of every error event it writes.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The longest message an event keeps (characters); longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// The most frames an event keeps: the top of the stack is what tells errors apart.
pub const MAX_FRAMES: usize = 5;
/// The longest frame an event keeps (characters).
pub const MAX_FRAME_CHARS: usize = 200;

/// What kind of error an event reports: the first part of its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A panic (a handler's, caught and answered 500, or a task's).
    Panic,
    /// The store failed in a way that is no outage (a query error, corrupt data): 500.
    Store,
    /// A 500 injected on purpose by the fault switch (drills).
    InjectedFault,
    /// Any other 500 with an internal cause (a broken invariant, a failed dependency call
    /// that is no outage).
    Internal,
    /// An error thrown and not caught on a page (`window.onerror`).
    ClientError,
    /// A promise rejected and never handled on a page (`unhandledrejection`).
    ClientRejection,
    /// A page's call to the API failed (network error or a 5xx answer).
    ClientFetch,
}

impl ErrorKind {
    /// Every kind, for metrics registered at zero.
    pub const ALL: [Self; 7] = [
        Self::Panic,
        Self::Store,
        Self::InjectedFault,
        Self::Internal,
        Self::ClientError,
        Self::ClientRejection,
        Self::ClientFetch,
    ];

    /// The word in logs, metrics and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Store => "store",
            Self::InjectedFault => "injected-fault",
            Self::Internal => "internal",
            Self::ClientError => "client-error",
            Self::ClientRejection => "client-rejection",
            Self::ClientFetch => "client-fetch",
        }
    }

    /// Whether a browser reported it.
    pub fn is_client(self) -> bool {
        matches!(
            self,
            Self::ClientError | Self::ClientRejection | Self::ClientFetch
        )
    }
}

/// One error event: what [`ErrorEvent::log`] writes and what a reader of the JSON log line
/// deserializes (other fields of the line are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// What kind of error.
    #[serde(rename = "error_kind")]
    pub kind: ErrorKind,
    /// What went wrong (the line's `message`), at most [`MAX_MESSAGE_CHARS`].
    pub message: String,
    /// The route template of the failed request, or the path of the page that failed.
    #[serde(
        rename = "error_route",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub route: Option<String>,
    /// The top frames, innermost first (a panic's location, a script's stack).
    #[serde(
        rename = "error_frames",
        default,
        with = "frames_as_lines",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub frames: Vec<String>,
    /// The version of the binary that wrote it.
    #[serde(default)]
    pub release: String,
    /// The trace the line was written in (from the request span).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The trace a browser named: the failed API call's, from its `traceparent` answer.
    #[serde(
        rename = "error_trace_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reported_trace_id: Option<String>,
}

/// Frames travel as one string field, one frame per line: a log field is a scalar.
mod frames_as_lines {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(frames: &[String], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&frames.join("\n"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

impl ErrorEvent {
    /// An event of this binary's release, the message and frames cut to their limits.
    pub fn new(kind: ErrorKind, message: &str) -> Self {
        Self {
            kind,
            message: truncate(message, MAX_MESSAGE_CHARS),
            route: None,
            frames: Vec::new(),
            release: RELEASE.to_owned(),
            trace_id: None,
            reported_trace_id: None,
        }
    }

    /// With these frames (the first [`MAX_FRAMES`], each cut to [`MAX_FRAME_CHARS`]).
    pub fn with_frames(mut self, frames: impl IntoIterator<Item = String>) -> Self {
        self.frames = frames
            .into_iter()
            .filter(|frame| !frame.trim().is_empty())
            .take(MAX_FRAMES)
            .map(|frame| truncate(frame.trim(), MAX_FRAME_CHARS))
            .collect();
        self
    }

    /// With the route or page path it happened on.
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Writes the event as an `error` line in the current span (whose `trace_id` the line
    /// carries). `trace_id` is not written here: the span's is the line's.
    pub fn log(&self) {
        let frames = (!self.frames.is_empty()).then(|| self.frames.join("\n"));
        tracing::error!(
            target: "brigade::errors",
            error_kind = self.kind.as_str(),
            error_route = self.route.as_deref(),
            error_frames = frames.as_deref(),
            error_trace_id = self.reported_trace_id.as_deref(),
            release = self.release.as_str(),
            "{}",
            self.message
        );
    }

    /// The event in a JSON log line, if the line is one (a cheap look for its marker first).
    pub fn from_log_line(line: &str) -> Option<Self> {
        if !line.contains("\"error_kind\"") {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

/// `text` cut to at most `max` characters (on a character boundary), `…` marking a cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut cut = text[..end].to_owned();
            cut.pop();
            cut.push('…');
            cut
        }
    }
}

/// A 5xx answer's internal cause, attached to the response by the code that built it and
/// logged by the request middleware as an [`ErrorEvent`] with the request's route. Never sent
/// to the client: extensions do not leave the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// What kind.
    pub kind: ErrorKind,
    /// The internal cause.
    pub message: String,
    /// Where, when known (a panic's location).
    pub frames: Vec<String>,
}

impl ServerError {
    /// A cause without frames.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            frames: Vec::new(),
        }
    }

    /// Attaches the cause to `response`.
    pub fn attach(self, response: &mut axum::response::Response) {
        response.extensions_mut().insert(self);
    }

    /// The event to log for a request of `route`.
    pub fn event(self, route: &str) -> ErrorEvent {
        ErrorEvent::new(self.kind, &self.message)
            .with_frames(self.frames)
            .with_route(route)
    }
}

thread_local! {
    /// The last panic inside a request on this thread: (message, location), for the layer that
    /// answers it with a 500 and catches it on the same thread.
    static REQUEST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// The panic the hook saw inside a request on this thread, as a [`ServerError`] (message and
/// location), if any; taken, so a later panic is not confused with it.
pub fn take_panic() -> Option<ServerError> {
    REQUEST_PANIC
        .with(|slot| slot.borrow_mut().take())
        .map(|(message, location)| ServerError {
            kind: ErrorKind::Panic,
            message,
            frames: vec![location],
        })
}

/// Installs a panic hook (before the one already there, which still runs: the supervisor
/// reads panics from standard error) that turns every panic into an error event. Inside a
/// request the event is left to the layer that catches the panic ([`take_panic`]), which
/// knows the route; anywhere else it is logged at once.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-text payload".to_owned());
        let location = info
            .location()
            .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()))
            .unwrap_or_default();
        if crate::request_context::current().is_some() {
            REQUEST_PANIC.with(|slot| *slot.borrow_mut() = Some((message, location)));
        } else {
            ErrorEvent::new(ErrorKind::Panic, &message)
                .with_frames([location])
                .log();
        }
        // A panic may end the process: the batched log lines, this one's too, go out first.
        crate::log_output::flush();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters_and_marks_the_cut() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("héllo", 5), "héllo");
    }

    #[test]
    fn events_round_trip_through_a_log_line() {
        let event = ErrorEvent::new(ErrorKind::ClientError, "x is not a function")
            .with_frames(["at place (/assets/ordering.js:1:2)".to_owned(), " ".into()])
            .with_route("/");
        let line = serde_json::to_string(&event).unwrap();
        assert!(line.contains("\"error_kind\":\"client-error\""), "{line}");
        let back = ErrorEvent::from_log_line(&line).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.frames.len(), 1, "blank frames are dropped");
        assert!(ErrorEvent::from_log_line(r#"{"message":"plain"}"#).is_none());
    }
}
