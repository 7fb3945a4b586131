//! RED metrics for HTTP servers, named by the OpenTelemetry HTTP semantic conventions.
//!
//! `http_server_request_duration_seconds{http_request_method, http_route,
//! http_response_status_code}` (a histogram, so rate, errors and duration all come from it) and
//! `http_server_active_requests{http_request_method}`. The route label is the matched template
//! (`/api/v1/orders/{order_id}`), never the raw path, so ids cannot explode the series count.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode};

use crate::openmetrics::{BucketExemplars, Exemplar};

/// Histogram of request durations.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Gauge of requests being served.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Registers help texts; call once at start so `/metrics` passes `promtool check metrics`.
pub fn describe() {
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Duration of HTTP server requests."
    );
    metrics::describe_gauge!(
        ACTIVE_REQUESTS,
        "Number of HTTP server requests currently being served."
    );
}

/// A request being served: counted in `http_server_active_requests` until it is finished or
/// dropped (a client that goes away mid-request must not leave the gauge raised).
pub struct InFlight {
    method: &'static str,
    active: metrics::Gauge,
    started: Instant,
}

impl InFlight {
    /// Starts counting a request.
    pub fn start(method: &Method) -> Self {
        let method = method_label(method);
        let active = cached(
            &ACTIVE_GAUGES,
            method,
            || metrics::gauge!(ACTIVE_REQUESTS, "http_request_method" => method),
        );
        active.increment(1.0);
        Self {
            method,
            active,
            started: Instant::now(),
        }
    }

    /// Records the duration under the route template and status; `trace_id`, the sampled
    /// trace of the request when traces are exported, becomes its bucket's exemplar.
    pub fn finish(self, route: &str, status: StatusCode, trace_id: Option<&str>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let series = series(self.method, route, status);
        series.histogram.record(seconds);
        if let Some(exemplar) = trace_id.and_then(|id| Exemplar::now(id, seconds)) {
            series.exemplars.observe(exemplar);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.active.decrement(1.0);
    }
}

/// Metric handles by label values. Looking a handle up in the recorder costs a label vector,
/// two string copies and a hash of all of it per request; the handles themselves are cheap
/// `Arc`s. Label values are bounded (methods, route templates, status codes), so are these maps.
type HandleCache<K, V> = LazyLock<RwLock<HashMap<K, V>>>;

static ACTIVE_GAUGES: HandleCache<&'static str, metrics::Gauge> = LazyLock::new(Default::default);
/// Route template → (method, status) → histogram and its exemplars; keyed by route first so
/// that a lookup borrows the route instead of copying it.
static HISTOGRAMS: HandleCache<String, HashMap<(&'static str, u16), Series>> =
    LazyLock::new(Default::default);

/// One series of the request-duration histogram.
#[derive(Clone)]
struct Series {
    histogram: metrics::Histogram,
    exemplars: Arc<BucketExemplars>,
}

fn cached<V: Clone>(
    cache: &HandleCache<&'static str, V>,
    key: &'static str,
    make: impl FnOnce() -> V,
) -> V {
    if let Some(handle) = cache.read().ok().and_then(|map| map.get(key).cloned()) {
        return handle;
    }
    let handle = make();
    if let Ok(mut map) = cache.write() {
        map.insert(key, handle.clone());
    }
    handle
}

fn series(method: &'static str, route: &str, status: StatusCode) -> Series {
    let key = (method, status.as_u16());
    let found = HISTOGRAMS.read().ok().and_then(|map| {
        map.get(route)
            .and_then(|by_status| by_status.get(&key).cloned())
    });
    if let Some(series) = found {
        return series;
    }
    let series = Series {
        histogram: metrics::histogram!(
            REQUEST_DURATION,
            "http_request_method" => method,
            "http_route" => route.to_owned(),
            "http_response_status_code" => status.as_str().to_owned(),
        ),
        exemplars: Arc::new(BucketExemplars::new(crate::metrics::DURATION_BUCKETS)),
    };
    if let Ok(mut map) = HISTOGRAMS.write() {
        map.entry(route.to_owned())
            .or_default()
            .insert(key, series.clone());
    }
    series
}

/// The exemplar of one `_bucket` line of the Prometheus text, if it is a bucket of
/// [`REQUEST_DURATION`] that a sampled request fell in (see [`crate::openmetrics`]).
pub fn bucket_exemplar(line: &str) -> Option<Exemplar> {
    if !line
        .strip_prefix(REQUEST_DURATION)
        .is_some_and(|rest| rest.starts_with("_bucket{"))
    {
        return None;
    }
    let labels = crate::openmetrics::sample_labels(line);
    let label = |name: &str| {
        labels
            .iter()
            .find(|(label, _)| *label == name)
            .map(|(_, value)| value.as_str())
    };
    let status: u16 = label("http_response_status_code")?.parse().ok()?;
    let method = label("http_request_method")?;
    let map = HISTOGRAMS.read().ok()?;
    let (_, series) = map
        .get(label("http_route")?)?
        .iter()
        .find(|((m, s), _)| *m == method && *s == status)?;
    series.exemplars.of_bucket(label("le")?)
}

/// Known methods as themselves, anything else as `_OTHER` (bounded label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The exposition in the format `accept` asks for, with its `Content-Type`.
pub fn negotiate(accept: Option<&HeaderValue>, prometheus_text: String) -> (HeaderValue, String) {
    if crate::openmetrics::wanted(accept) {
        let text = crate::openmetrics::from_prometheus_text(&prometheus_text, &bucket_exemplar);
        (
            HeaderValue::from_static(crate::openmetrics::CONTENT_TYPE),
            text,
        )
    } else {
        (
            HeaderValue::from_static(crate::openmetrics::PROMETHEUS_CONTENT_TYPE),
            prometheus_text,
        )
    }
}
