//! The drill's own spans: one trace per drill whose children are its phases (`before`,
//! `fault`, `after`), exported to up's collector, so the Traces view shows when the fault
//! was held beside the requests it hurt. Each request of the load starts a trace of its own
//! (the report names the slowest and the failed ones), not a child of these.

use tracing::Span;

/// The drill as a whole.
pub fn drill(name: &str, clients: usize) -> Span {
    tracing::info_span!(
        "drill",
        otel.name = %format_args!("drill {name}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.drill.name = name,
        brigade.drill.clients = clients,
    )
}

/// One phase, a child of the drill's span (the current one).
pub fn phase(name: &'static str) -> Span {
    tracing::info_span!(
        "drill phase",
        otel.name = name,
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        brigade.drill.phase = name,
    )
}
