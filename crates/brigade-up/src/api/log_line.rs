//! A line of the central log as the ops API answers it (`GET /api/logs`, a trace's log
//! lines) and as `brigade logs` reads it.

use serde::{Deserialize, Serialize};

/// One line of the central log: what every brigade process writes (the JSON lines of
/// `tracing-subscriber`), with the service and instance of the child that wrote it added.
/// Fields beyond these are kept as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `serve`, `balance` or `watch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The child's instance name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Everything else: the message, the span, the request id, …
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl LogLine {
    /// The line as a log entry; `None` when it is not a JSON object of that shape.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}
