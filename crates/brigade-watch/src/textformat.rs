//! The Prometheus text exposition format (version 0.0.4), parsed into samples.
//!
//! Only what alerting needs: metric name, labels and value of each sample line; `# HELP` and
//! `# TYPE` lines and timestamps are skipped (brigade stamps samples with the scrape time, as
//! Prometheus does unless `honor_timestamps` is set).

use crate::labels::{Labels, METRIC_NAME};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// Labels including `__name__`.
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

/// A line that is not valid exposition text.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Vec<ParsedSample>, ParseError> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|message| ParseError {
            line: index + 1,
            message,
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<ParsedSample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| "a sample needs a value".to_owned())?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = Labels::new();
    labels.insert(METRIC_NAME.to_owned(), name.to_owned());
    let mut rest = &line[name_end..];
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| "a sample needs a value".to_owned())?;
    let value = parse_value(value).ok_or_else(|| format!("invalid value {value:?}"))?;
    Ok(ParsedSample { labels, value })
}

/// Parses `name="value",…}` and returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Labels) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| "label without '='".to_owned())?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..].trim_start();
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}: value must be quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {name}: unterminated escape")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {name}: unterminated value")),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = body[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".to_owned());
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
    fn rejects_garbage_with_the_line_number() {
        let error = parse("ok 1\nbad{a=1} 2\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(parse("novalue\n").is_err());
        assert!(parse("x notanumber\n").is_err());
    }
}
