//! The OpenMetrics text format (1.0.0), for scrapers that ask for it, and the exemplars it
//! carries: the trace id of a recent request in each latency bucket, so a slow bucket on a
//! chart leads to a slow trace.
//!
//! The recorder (`metrics-exporter-prometheus`) writes the Prometheus text format only. The
//! two differ in few places, all handled here on the rendered text: a counter's family is
//! named without `_total` (its samples keep it), descriptions escape `"`, there are no empty
//! lines, the exposition ends in `# EOF`, and bucket samples may end in an exemplar
//! (`… 7 # {trace_id="…"} 0.43 1733500000.123`). Converting the text keeps one recorder and
//! one set of names for both formats; `application/openmetrics-text` is what Prometheus asks
//! for when its exemplar storage is on, and what watch asks for.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Mutex;

use http::HeaderValue;

/// `Content-Type` of an OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of a Prometheus text exposition.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scraper's `Accept` asks for OpenMetrics (Prometheus sends it first, with a
/// q-value, when it stores exemplars; a `q=0` refusal is not looked for, as no scraper sends
/// one).
pub fn wanted(accept: Option<&HeaderValue>) -> bool {
    accept
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("application/openmetrics-text"))
}

/// A sampled request's trace in one bucket of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// 32 lowercase hex digits.
    pub trace_id: [u8; 32],
    /// The observed value (seconds).
    pub value: f64,
    /// When it was observed, Unix seconds.
    pub timestamp: f64,
}

impl Exemplar {
    /// An exemplar of `value` observed now, when `trace_id` is a trace id.
    pub fn now(trace_id: &str, value: f64) -> Option<Self> {
        let trace_id: [u8; 32] = trace_id.as_bytes().try_into().ok()?;
        if !trace_id.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        Some(Self {
            trace_id,
            value,
            timestamp,
        })
    }

    fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or("")
    }
}

/// The newest exemplar of each bucket of one histogram series (the last slot is `+Inf`):
/// replaced on every sampled observation, as Prometheus's client libraries do.
#[derive(Debug)]
pub struct BucketExemplars {
    bounds: &'static [f64],
    slots: Box<[Mutex<Option<Exemplar>>]>,
}

impl BucketExemplars {
    /// Slots for a histogram with these upper bounds (without `+Inf`).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            slots: (0..=bounds.len()).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Keeps `exemplar` as the newest of the bucket its value falls in.
    pub fn observe(&self, exemplar: Exemplar) {
        let index = self
            .bounds
            .iter()
            .position(|&bound| exemplar.value <= bound)
            .unwrap_or(self.bounds.len());
        if let Ok(mut slot) = self.slots[index].lock() {
            *slot = Some(exemplar);
        }
    }

    /// The newest exemplar of the bucket whose upper bound is `le` (`+Inf` for the last).
    pub fn of_bucket(&self, le: &str) -> Option<Exemplar> {
        let index = if le == "+Inf" {
            self.bounds.len()
        } else {
            let le: f64 = le.parse().ok()?;
            self.bounds.iter().position(|&bound| bound == le)?
        };
        *self.slots[index].lock().ok()?
    }
}

/// Converts a Prometheus text exposition to OpenMetrics; `exemplar` is asked for each
/// `_bucket` sample line and may name an exemplar to append to it.
pub fn from_prometheus_text(text: &str, exemplar: &dyn Fn(&str) -> Option<Exemplar>) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let _ = writeln!(
                out,
                "# HELP {} {}",
                family_name(name, &counters),
                help.replace('"', "\\\"")
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" if !name.ends_with("_total") => "unknown",
                "untyped" => "unknown",
                kind => kind,
            };
            let _ = writeln!(out, "# TYPE {} {kind}", family_name(name, &counters));
        } else if line.starts_with('#') {
            continue;
        } else {
            out.push_str(line);
            if let Some(exemplar) = bucket_name(line).and_then(|_| exemplar(line)) {
                let _ = write!(
                    out,
                    " # {{trace_id=\"{}\"}} {} {:.3}",
                    exemplar.trace_id(),
                    exemplar.value,
                    exemplar.timestamp
                );
            }
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A family's OpenMetrics name: a counter's without its `_total`.
fn family_name<'a>(name: &'a str, counters: &HashSet<&str>) -> &'a str {
    if counters.contains(name) {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

/// The metric name of a `_bucket` sample line.
fn bucket_name(line: &str) -> Option<&str> {
    let name = &line[..line.find(['{', ' '])?];
    name.ends_with("_bucket").then_some(name)
}

/// The labels of a sample line, unescaped, in order.
pub fn sample_labels(line: &str) -> Vec<(&str, String)> {
    let mut labels = Vec::new();
    let Some(open) = line.find('{') else {
        return labels;
    };
    let mut rest = &line[open + 1..];
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.trim_start_matches(',').trim();
        let Some((value, end)) = unescape_label_value(after) else {
            return labels;
        };
        labels.push((name, value));
        rest = &after[end + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    labels
}

/// A quoted label value, read from just after its opening `"`: the value with `\\`, `\"` and
/// `\n` unescaped, and the byte index of the closing `"` in `body`; `None` when it does not end.
/// The escapes are the same in the Prometheus and OpenMetrics text formats.
pub fn unescape_label_value(body: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    loop {
        match chars.next()? {
            (i, '"') => return Some((value, i)),
            (_, '\\') => match chars.next()? {
                (_, 'n') => value.push('\n'),
                (_, c) => value.push(c),
            },
            (_, c) => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn counters_lose_total_in_metadata_and_the_text_ends_in_eof() {
        let text = "# HELP jobs_total Jobs \"done\".\n# TYPE jobs_total counter\njobs_total 3\n\n\
                    # TYPE odd counter\nodd 1\n# TYPE g gauge\ng 2\n";
        let out = from_prometheus_text(text, &|_| None);
        assert_eq!(
            out,
            "# HELP jobs Jobs \\\"done\\\".\n# TYPE jobs counter\njobs_total 3\n\
             # TYPE odd unknown\nodd 1\n# TYPE g gauge\ng 2\n# EOF\n"
        );
    }

    #[test]
    fn bucket_lines_carry_their_exemplar() {
        let bounds: &'static [f64] = &[0.1, 1.0];
        let slots = BucketExemplars::new(bounds);
        slots.observe(Exemplar::now(TRACE, 0.5).unwrap());
        slots.observe(Exemplar::now(TRACE, 7.0).unwrap());
        assert!(slots.of_bucket("0.1").is_none());
        assert_eq!(slots.of_bucket("1").unwrap().value, 0.5);
        assert_eq!(slots.of_bucket("+Inf").unwrap().value, 7.0);
        let text = "# TYPE d_seconds histogram\nd_seconds_bucket{r=\"a\\\"b\",le=\"0.1\"} 0\n\
                    d_seconds_bucket{r=\"a\\\"b\",le=\"1\"} 1\nd_seconds_sum 0.5\n";
        let out = from_prometheus_text(text, &|line| {
            let labels = sample_labels(line);
            assert_eq!(labels[0], ("r", "a\"b".to_owned()));
            slots.of_bucket(&labels[1].1)
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "d_seconds_bucket{r=\"a\\\"b\",le=\"0.1\"} 0");
        assert!(
            lines[2].starts_with(&format!(
                "d_seconds_bucket{{r=\"a\\\"b\",le=\"1\"}} 1 # {{trace_id=\"{TRACE}\"}} 0.5 1"
            )),
            "{out}"
        );
        assert_eq!(lines[3], "d_seconds_sum 0.5");
        assert!(Exemplar::now("not-a-trace", 1.0).is_none());
    }

    #[test]
    fn openmetrics_is_chosen_by_accept() {
        let prometheus = HeaderValue::from_static("text/plain;version=0.0.4");
        let scraper = HeaderValue::from_static(
            "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5",
        );
        assert!(!wanted(None));
        assert!(!wanted(Some(&prometheus)));
        assert!(wanted(Some(&scraper)));
        let (kind, text) = crate::http_metrics::negotiate(Some(&scraper), "x 1\n".to_owned());
        assert_eq!(kind, CONTENT_TYPE);
        assert!(text.ends_with("# EOF\n"));
    }
}
