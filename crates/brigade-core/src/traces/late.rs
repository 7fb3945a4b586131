//! Export whose destination is known only after the process started.
//!
//! `brigade up` learns where watch listens once it has bound watch's socket, well after logging
//! started; a drill learns it from up's status. Watch is itself the collector, so its own spans
//! (scrapes, rule evaluations, notifications) belong in its own window, not on the wire to
//! itself — a span per received export would be a loop. These processes install the trace
//! layer at start with a [`LateExporter`] and say once where spans go: [`attach_collector`]
//! (OTLP/HTTP to an address) or [`attach_local`] (a function of the process's own). Spans that
//! finish before that have nowhere to go and are let go.

use std::sync::{Arc, OnceLock};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::TraceExportError;
use super::http_export::{Destination as Collector, HttpExporter};

/// Receives each exported batch of a process that keeps its own spans, with the process's
/// resource (service name, instance).
pub type LocalCollector = Arc<dyn Fn(Vec<SpanData>, &Resource) + Send + Sync>;

/// Where spans go, said once.
enum Destination {
    /// An OTLP/HTTP collector's base address (`http://127.0.0.1:9464`).
    Collector(String),
    /// A function of the process's own.
    Local(LocalCollector),
}

static DESTINATION: OnceLock<Destination> = OnceLock::new();

/// Sends this process's spans to the OTLP/HTTP collector at `base` (`http://host:port`;
/// `/v1/traces` is appended). Answers whether that took effect: not when the process exports
/// by the standard variables (they win), exports nowhere, or was already attached.
pub fn attach_collector(base: &str) -> bool {
    late_export()
        && DESTINATION
            .set(Destination::Collector(base.to_owned()))
            .is_ok()
}

/// Hands this process's spans to `collector` (watch keeping its own spans in its window).
/// Answers whether that took effect, as [`attach_collector`] does.
pub fn attach_local(collector: LocalCollector) -> bool {
    late_export() && DESTINATION.set(Destination::Local(collector)).is_ok()
}

fn late_export() -> bool {
    LATE.get().is_some()
}

/// Set when a [`LateExporter`] was installed: attaching means nothing otherwise.
static LATE: OnceLock<()> = OnceLock::new();

/// The destination, built on first use in the export thread: the OTLP exporter's blocking
/// HTTP client must not be built (or dropped) on the async runtime.
enum Built {
    /// Boxed: built once, and far larger than the other variant.
    Otlp(Box<HttpExporter>),
    Local(LocalCollector),
}

/// The exporter of a process whose destination comes later; see the module docs.
#[derive(Debug)]
pub(super) struct LateExporter {
    resource: Resource,
    built: OnceLock<Result<Built, TraceExportError>>,
}

impl Default for LateExporter {
    fn default() -> Self {
        let _ = LATE.set(());
        Self {
            resource: Resource::builder_empty().build(),
            built: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Otlp(_) => f.write_str("Otlp"),
            Self::Local(_) => f.write_str("Local"),
        }
    }
}

impl LateExporter {
    fn build(&self, destination: &Destination) -> Result<Built, TraceExportError> {
        match destination {
            Destination::Local(collector) => Ok(Built::Local(collector.clone())),
            Destination::Collector(base) => {
                let mut exporter = HttpExporter::new(Collector::collector(base)?);
                exporter.set_resource(&self.resource);
                Ok(Built::Otlp(Box::new(exporter)))
            }
        }
    }
}

impl SpanExporter for LateExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let Some(destination) = DESTINATION.get() else {
            return Ok(());
        };
        match self.built.get_or_init(|| self.build(destination)) {
            Ok(Built::Otlp(exporter)) => exporter.send(&batch),
            Ok(Built::Local(collector)) => {
                collector(batch, &self.resource);
                Ok(())
            }
            Err(error) => Err(OTelSdkError::InternalFailure(error.to_string())),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}
