//! The metrics recorder and the `/metrics` text.
//!
//! Components record through the `metrics` facade (`counter!`, `histogram!`, …); this module
//! installs the Prometheus recorder once per process, sets the OpenTelemetry-recommended
//! buckets on every `*_duration_seconds` histogram, and renders the text exposition with the
//! standard `process_*` metrics appended (they are measured at scrape time rather than recorded,
//! because CPU seconds are fractional and the `metrics` counters are integers).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for request durations, in seconds (OpenTelemetry HTTP semantic conventions).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Renders this process's metrics in the Prometheus text format.
pub struct MetricsRenderer {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for MetricsRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRenderer").finish_non_exhaustive()
    }
}

/// How often recorded histogram samples are folded into their buckets. The recorder keeps
/// every raw sample until then: at the balancer's 60 k requests/s and two histograms per
/// request, 5 s held about 5 MiB of samples; 1 s holds a fifth of that, for one short wake-up
/// of this thread per second.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Name of the thread that does it, so it can be found in `/proc/<pid>/task/*/comm`.
pub const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The process-wide renderer. The first call installs the global recorder and starts the
/// upkeep thread; later calls (more servers in one test process) share both, which is why
/// tests compare metric deltas.
///
/// The recorder appends every histogram sample to a buffer that only a render or an upkeep
/// empties, so without upkeep a process nobody scrapes (a balancer without Prometheus) would
/// grow by every request it serves.
pub fn renderer() -> &'static MetricsRenderer {
    static RENDERER: OnceLock<MetricsRenderer> = OnceLock::new();
    RENDERER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".to_owned()),
                DURATION_BUCKETS,
            )
            .expect("duration buckets are non-empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder can only be present when brigade is embedded in a program that
        // installed its own; then brigade's metrics go there and `/metrics` shows process data.
        let _ = metrics::set_global_recorder(recorder);
        describe_process_wide();
        let upkeep = handle.clone();
        // The thread says when it runs (its name is set by then), so whoever called this can
        // rely on the upkeep being in place when it returns.
        let (running, is_running) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .name(UPKEEP_THREAD.to_owned())
            .spawn(move || {
                let _ = running.send(());
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
        match started {
            Ok(_) => {
                let _ = is_running.recv();
            }
            // Rendering still empties the buffers; only an unscraped process is affected.
            Err(error) => eprintln!("brigade: cannot start the metrics upkeep thread: {error}"),
        }
        MetricsRenderer { handle }
    })
}

/// Describes the metrics every brigade process has, whatever it runs, and creates the log
/// counter of each level at zero: the counter is fed by the logging layer, which may be
/// installed or not (tests, embedded use), and `promtool check metrics` rejects a series
/// without help text.
fn describe_process_wide() {
    metrics::describe_counter!(
        crate::telemetry::LOG_EVENTS,
        "Log events written, by level (error, warn, info, debug, trace)."
    );
    crate::telemetry::register_log_counters();
    // A process exports by the standard variables, or later to an address it learns (up,
    // watch, drills: `traces::attach_collector`); the provider may be made before or after
    // this recorder, so both are asked (and `traces::provider` describes them too).
    if crate::traces::enabled_by_env() || crate::traces::exporting() {
        crate::traces::describe_metrics();
    }
}

impl MetricsRenderer {
    /// The full exposition: recorded metrics, then `process_*`.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        render_process_metrics(&mut text);
        text
    }
}

/// Renders the standard `process_*` metrics (the set client_golang defines) from
/// `metrics-process`'s snapshot of `/proc/self`.
///
/// The snapshot is rendered here rather than recorded through that crate's `Collector`: it
/// records CPU seconds with an integer counter (whole seconds, too coarse for a one-minute
/// rate of an idle process) or, optionally, as a gauge named `_total`, which
/// `promtool check metrics` rejects.
fn render_process_metrics(text: &mut String) {
    let snapshot = metrics_process::collector::collect();
    let mut write = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    };
    let bytes = |value: Option<u64>| value.map(|v| v as f64);
    write(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        snapshot.cpu_seconds_total,
    );
    write(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        bytes(snapshot.resident_memory_bytes),
    );
    write(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        bytes(snapshot.virtual_memory_bytes),
    );
    write(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        bytes(snapshot.start_time_seconds),
    );
    write(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        bytes(snapshot.open_fds),
    );
    write(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        bytes(snapshot.max_fds),
    );
    write(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        bytes(snapshot.threads),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renderer_starts_the_upkeep_thread_once() {
        let upkeep_threads = || {
            std::fs::read_dir("/proc/self/task")
                .expect("Linux exposes this process's threads")
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim_end() == UPKEEP_THREAD)
                .count()
        };
        renderer();
        renderer();
        assert_eq!(upkeep_threads(), 1);
    }

    #[test]
    fn renders_recorded_and_process_metrics() {
        let renderer = renderer();
        metrics::describe_counter!("brigade_core_test_total", "A counter for this test.");
        metrics::counter!("brigade_core_test_total").increment(3);
        metrics::histogram!("brigade_core_test_duration_seconds").record(0.02);
        let text = renderer.render();
        assert!(text.contains("brigade_core_test_total 3"), "{text}");
        assert!(
            text.contains("brigade_core_test_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.contains("process_max_fds "), "{text}");
    }
}
