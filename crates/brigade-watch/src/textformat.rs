//! The Prometheus text exposition format (version 0.0.4) and OpenMetrics 1.0.0 text, parsed
//! into samples.
//!
//! Only what alerting and charts need: metric name, labels and value of each sample line, and
//! the exemplar an OpenMetrics sample may end in (`… # {trace_id="…"} 0.43 1733500000.123`);
//! `# HELP`, `# TYPE` and `# EOF` lines and timestamps are skipped (brigade stamps samples with
//! the scrape time, as Prometheus does unless `honor_timestamps` is set). Sample names are the
//! same in both formats (a counter's samples keep `_total`), so a series is one series
//! whichever format the target answered in.

use crate::labels::{Labels, METRIC_NAME};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// Labels including `__name__`.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The exemplar the sample carries (OpenMetrics only).
    pub exemplar: Option<ParsedExemplar>,
}

/// An exemplar: labels (a trace id) and the value it stands for, with its time when given.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    /// The exemplar's labels, usually `trace_id`.
    pub labels: Labels,
    /// The observed value.
    pub value: f64,
    /// When it was observed, Unix seconds.
    pub timestamp: Option<f64>,
}

/// A line that is not valid exposition text.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: LineProblem,
}

/// What is wrong with one line of exposition text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineProblem {
    /// A sample line with a name but no value.
    #[error("a sample needs a value")]
    MissingValue,
    /// A metric name outside `[a-zA-Z0-9_:]`.
    #[error("invalid metric name {0:?}")]
    MetricName(String),
    /// A value that is not a number, `±Inf` or `NaN`.
    #[error("invalid value {0:?}")]
    Value(String),
    /// Text after ` # ` that does not open with `{`.
    #[error("an exemplar starts with '{{'")]
    ExemplarOpening,
    /// An exemplar without its value.
    #[error("an exemplar needs a value")]
    ExemplarValue,
    /// An exemplar timestamp that is not a number.
    #[error("invalid exemplar timestamp {0:?}")]
    ExemplarTimestamp(String),
    /// A label without `=`.
    #[error("label without '='")]
    LabelWithoutValue,
    /// A label name outside `[a-zA-Z0-9_]`.
    #[error("invalid label name {0:?}")]
    LabelName(String),
    /// A label value without its opening quote.
    #[error("label {0}: value must be quoted")]
    LabelUnquoted(String),
    /// A label value without its closing quote.
    #[error("label {0}: unterminated value")]
    LabelUnterminated(String),
    /// Something other than `,` or `}` after a label.
    #[error("expected ',' or '}}' after a label")]
    LabelSeparator,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<ParsedSample>, ParseError> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|problem| ParseError {
            line: index + 1,
            problem,
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<ParsedSample, LineProblem> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or(LineProblem::MissingValue)?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(LineProblem::MetricName(name.to_owned()));
    }
    let mut labels = Labels::new();
    labels.insert(METRIC_NAME.to_owned(), name.to_owned());
    let mut rest = &line[name_end..];
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let (rest, exemplar) = match rest.split_once(" # ") {
        Some((sample, exemplar)) => (sample, Some(parse_exemplar(exemplar)?)),
        None => (rest, None),
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or(LineProblem::MissingValue)?;
    let value = parse_value(value).ok_or_else(|| LineProblem::Value(value.to_owned()))?;
    Ok(ParsedSample {
        labels,
        value,
        exemplar,
    })
}

/// Parses `{labels} value [timestamp]` after a sample's ` # `.
fn parse_exemplar(text: &str) -> Result<ParsedExemplar, LineProblem> {
    let body = text
        .trim_start()
        .strip_prefix('{')
        .ok_or(LineProblem::ExemplarOpening)?;
    let mut labels = Labels::new();
    let rest = parse_labels(body, &mut labels)?;
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .and_then(parse_value)
        .ok_or(LineProblem::ExemplarValue)?;
    let timestamp = match fields.next() {
        Some(t) => Some(
            t.parse::<f64>()
                .map_err(|_| LineProblem::ExemplarTimestamp(t.to_owned()))?,
        ),
        None => None,
    };
    Ok(ParsedExemplar {
        labels,
        value,
        timestamp,
    })
}

/// Parses `name="value",…}` and returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Labels) -> Result<&'a str, LineProblem> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or(LineProblem::LabelWithoutValue)?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(LineProblem::LabelName(name.to_owned()));
        }
        rest = rest[eq + 1..].trim_start();
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| LineProblem::LabelUnquoted(name.to_owned()))?;
        let (value, end) = brigade_core::openmetrics::unescape_label_value(body)
            .ok_or_else(|| LineProblem::LabelUnterminated(name.to_owned()))?;
        labels.insert(name.to_owned(), value);
        rest = body[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(LineProblem::LabelSeparator);
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_escapes_and_special_values() {
        let text = "# HELP x help\n# TYPE x counter\nx 3\n\
                    y{a=\"1\",b=\"q\\\"uote\\\\\"} 2.5 1700000000000\n\
                    h_bucket{le=\"+Inf\"} +Inf\nz{} NaN\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].labels[METRIC_NAME], "x");
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].labels["b"], "q\"uote\\");
        assert_eq!(samples[1].value, 2.5);
        assert_eq!(samples[2].labels["le"], "+Inf");
        assert!(samples[2].value.is_infinite());
        assert!(samples[3].value.is_nan());
    }

    #[test]
    fn reads_openmetrics_with_exemplars() {
        let text = "# TYPE d_seconds histogram\n\
                    d_seconds_bucket{le=\"0.5\"} 3 # {trace_id=\"4bf92f35\"} 0.43 1733500000.123\n\
                    d_seconds_bucket{le=\"+Inf\"} 4\n# TYPE jobs counter\njobs_total 2\n# EOF\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].value, 3.0);
        let exemplar = samples[0].exemplar.as_ref().unwrap();
        assert_eq!(exemplar.labels["trace_id"], "4bf92f35");
        assert_eq!(exemplar.value, 0.43);
        assert_eq!(exemplar.timestamp, Some(1733500000.123));
        assert!(samples[1].exemplar.is_none());
        assert_eq!(samples[2].labels[METRIC_NAME], "jobs_total");
        assert!(parse("x 1 # trace\n").is_err());
        assert!(parse("x 1 # {trace_id=\"a\"}\n").is_err());
    }

    #[test]
    fn rejects_garbage_with_the_line_number() {
        let error = parse("ok 1\nbad{a=1} 2\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(parse("novalue\n").is_err());
        assert!(parse("x notanumber\n").is_err());
    }
}
