//! The sampling decision, made once at the edge of a request from the standard variables
//! (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) and given to the SDK as its sampler, so
//! the two always agree.
//!
//! Deciding before the request's span is made lets an unsampled request skip the trace layer
//! altogether: its span is the plain one an untraced process makes (which the trace layer does
//! not see), and no store, cache or provider span is made inside it. Left to the SDK, every
//! span of every request would be built with all its attributes and only then dropped by the
//! sampler — at 1 % sampling nearly all the cost of tracing for 1 % of its use.

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler};

/// How a trace without a sampled parent is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// This share of traces, by trace id (the SDK's `TraceIdRatioBased`).
    Ratio(f64),
}

/// The sampler of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// A trace with a parent follows the parent's decision (`parentbased_*`).
    pub parent_based: bool,
    /// Otherwise.
    pub root: Root,
}

impl Default for Sampling {
    /// `parentbased_always_on`, the standard default.
    fn default() -> Self {
        Self {
            parent_based: true,
            root: Root::AlwaysOn,
        }
    }
}

/// A value of `OTEL_TRACES_SAMPLER` or `_ARG` that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct SamplingError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Sampling {
    /// The sampler the standard variables name.
    pub fn from_env() -> Result<Self, SamplingError> {
        let sampler = std::env::var("OTEL_TRACES_SAMPLER").ok();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Self::parse(sampler.as_deref(), arg.as_deref())
    }

    /// Reads a sampler name and its argument (a ratio for the `traceidratio` samplers).
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, SamplingError> {
        let name = sampler.map(str::trim).filter(|s| !s.is_empty());
        let name = name.unwrap_or("parentbased_always_on").to_ascii_lowercase();
        let (parent_based, root) = match name.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, name.as_str()),
        };
        let root = match root {
            "always_on" => Root::AlwaysOn,
            "always_off" => Root::AlwaysOff,
            "traceidratio" => Root::Ratio(ratio(arg)?),
            _ => {
                return Err(SamplingError {
                    variable: "OTEL_TRACES_SAMPLER",
                    message: format!(
                        "unknown sampler {name:?} (always_on, always_off, traceidratio, or \
                         parentbased_ before one of them)"
                    ),
                });
            }
        };
        Ok(Self { parent_based, root })
    }

    /// Whether the trace `trace_id` (32 hex digits) is sampled, given its parent's decision
    /// when it has a parent.
    pub fn decide(&self, trace_id: &str, parent_sampled: Option<bool>) -> bool {
        if let (true, Some(sampled)) = (self.parent_based, parent_sampled) {
            return sampled;
        }
        match self.root {
            Root::AlwaysOn => true,
            Root::AlwaysOff => false,
            Root::Ratio(ratio) => {
                let id = TraceId::from_hex(trace_id).unwrap_or(TraceId::INVALID);
                ratio_keeps(ratio, id)
            }
        }
    }

    /// The same decision as the SDK's sampler.
    pub fn to_sdk(self) -> Sampler {
        let root = match self.root {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

thread_local! {
    /// The trace id the next root span started on this thread takes.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Makes the next root span started on this thread take `trace_id` (32 hex digits): the id a
/// request was sampled by at its edge, so the SDK decides on the same id.
pub(super) fn next_trace_id(trace_id: &str) {
    if let Ok(id) = TraceId::from_hex(trace_id) {
        NEXT_TRACE_ID.with(|next| next.set(Some(id)));
    }
}

/// Forgets a trace id [`next_trace_id`] named and no span took.
pub(super) fn forget_next_trace_id() {
    NEXT_TRACE_ID.with(|next| next.set(None));
}

/// Span ids at random; trace ids at random unless [`next_trace_id`] named one.
#[derive(Debug, Default)]
pub(super) struct EdgeIds(RandomIdGenerator);

impl IdGenerator for EdgeIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// `OTEL_TRACES_SAMPLER_ARG` as a ratio: 0.0–1.0, 1.0 when unset.
fn ratio(arg: Option<&str>) -> Result<f64, SamplingError> {
    let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(1.0);
    };
    match arg.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(SamplingError {
            variable: "OTEL_TRACES_SAMPLER_ARG",
            message: format!("{arg:?} is not a ratio from 0 to 1"),
        }),
    }
}

/// The SDK's `TraceIdRatioBased` rule: the trace id's low 64 bits, halved, under the ratio of
/// 2^63.
fn ratio_keeps(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    let bytes = trace_id.to_bytes();
    let low = u64::from_be_bytes(bytes[8..].try_into().unwrap_or([0; 8]));
    (low >> 1) < bound
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanKind, TraceContextExt as _};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    use super::*;

    #[test]
    fn a_named_trace_id_is_taken_once() {
        let ids = EdgeIds::default();
        next_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ids.new_trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(
            ids.new_trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn the_standard_names_parse_and_bad_values_name_their_variable() {
        assert_eq!(Sampling::parse(None, None).unwrap(), Sampling::default());
        let one_percent = Sampling::parse(Some("parentbased_traceidratio"), Some("0.01")).unwrap();
        assert_eq!(
            one_percent,
            Sampling {
                parent_based: true,
                root: Root::Ratio(0.01)
            }
        );
        let off = Sampling::parse(Some("always_off"), None).unwrap();
        assert!(!off.parent_based && off.root == Root::AlwaysOff);
        let error = Sampling::parse(Some("sometimes"), None).unwrap_err();
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER");
        let error = Sampling::parse(Some("traceidratio"), Some("2")).unwrap_err();
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER_ARG");
    }

    #[test]
    fn decisions_agree_with_the_sdks_sampler() {
        let context = opentelemetry::Context::new();
        for sampling in [
            Sampling::parse(Some("parentbased_traceidratio"), Some("0.25")).unwrap(),
            Sampling::parse(Some("traceidratio"), Some("0.5")).unwrap(),
            Sampling::default(),
        ] {
            let sdk = sampling.to_sdk();
            let mut kept = 0;
            for n in 0..400u128 {
                let id = TraceId::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834));
                let decision = sdk
                    .should_sample(Some(&context), id, "request", &SpanKind::Server, &[], &[])
                    .decision;
                let ours = sampling.decide(&id.to_string(), None);
                assert_eq!(ours, decision == SamplingDecision::RecordAndSample, "{id}");
                kept += usize::from(ours);
            }
            assert!(kept > 0, "{sampling:?}");
            assert!(!context.has_active_span());
        }
        let parent_based = Sampling::parse(Some("parentbased_always_off"), None).unwrap();
        assert!(parent_based.decide("4bf92f3577b34da6a3ce929d0e0e4736", Some(true)));
        assert!(!parent_based.decide("4bf92f3577b34da6a3ce929d0e0e4736", None));
    }
}
