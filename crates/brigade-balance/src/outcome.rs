//! How one attempt on a backend ended, as passive health, metrics and retries see it.

/// Result of one attempt, as passive health and metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response.
    ServerError,
    /// The TCP connection could not be opened.
    ConnectError,
    /// No response head within the upstream timeout.
    Timeout,
    /// The connection failed after the request was sent.
    Error,
}

impl Outcome {
    /// The `outcome` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ServerError => "server_error",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }

    /// Counts against passive health.
    pub fn is_failure(self) -> bool {
        self != Self::Success
    }
}
