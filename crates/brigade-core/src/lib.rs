//! brigade-core: the pieces every brigade component shares.
//!
//! Every process brigade starts (`serve`, and later `balance`, `watch`, `up`) loads its settings,
//! logs, reports health, shuts down and answers errors the same way. Keeping those rules in one
//! crate is what lets an operator learn them once: one config layering, one log line shape, one
//! problem+json body, one set of metric names.

pub mod clock;
pub mod config;
pub mod error_event;
pub mod health;
pub mod http_metrics;
pub mod ids;
pub mod log_output;
pub mod log_time;
pub mod metrics;
pub mod net;
pub mod open_files;
pub mod openmetrics;
pub mod problem;
pub mod request;
pub mod request_context;
pub mod security_headers;
pub mod shutdown;
pub mod telemetry;
pub mod traces;

pub use config::{ConfigError, Settings};
pub use health::HealthLatch;
pub use problem::{FieldError, Problem};
pub use shutdown::Shutdown;
