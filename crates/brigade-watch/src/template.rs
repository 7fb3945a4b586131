//! The templating subset of Prometheus alert annotations and labels.
//!
//! Supported: `{{ $labels.NAME }}`, `{{ $value }}`, `{{ $value | humanize }}`,
//! `{{ $value | humanizePercentage }}` and `{{ printf "%.Nf" $value }}` (and the `.Labels.NAME`
//! / `.Value` spellings). Numbers print as Go prints them, so the text matches what
//! Prometheus sends for the same alert. Anything else is an error when the rule file loads.

use crate::labels::Labels;

/// A template outside the subset, or malformed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("template {template:?}: {problem}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong.
    pub problem: TemplateProblem,
}

/// What is wrong with a template.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TemplateProblem {
    /// `{{` without its `}}`.
    #[error("unclosed action")]
    UnclosedAction,
    /// `printf` of something other than the value.
    #[error("printf argument {0} is not supported")]
    PrintfArgument(String),
    /// A pipeline stage that needs a number got text.
    #[error("{stage} needs a number, got {text:?}")]
    NotANumber {
        /// The stage, e.g. `humanize`.
        stage: String,
        /// What it got.
        text: String,
    },
    /// A function outside the subset.
    #[error("function {0} is not supported")]
    Function(String),
    /// An operand other than `$labels.NAME` or `$value`.
    #[error("{0} is not supported (use $labels.NAME or $value)")]
    Operand(String),
    /// `printf` without a quoted format.
    #[error("printf needs a quoted format")]
    PrintfUnquoted,
    /// `printf "…` without the closing quote.
    #[error("printf format is not closed")]
    PrintfUnclosed,
    /// A format without `%` and a verb.
    #[error("printf format has no verb")]
    PrintfNoVerb,
    /// A verb outside `%f`, `%g`, `%v`.
    #[error("printf verb %{0} is not supported")]
    PrintfVerb(String),
}

/// Renders a template with an alert's labels and value.
pub fn render(template: &str, labels: &Labels, value: f64) -> Result<String, TemplateError> {
    let error = |problem: TemplateProblem| TemplateError {
        template: template.to_owned(),
        problem,
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| error(TemplateProblem::UnclosedAction))?;
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push_str(&action_text(action, labels, value).map_err(error)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn action_text(action: &str, labels: &Labels, value: f64) -> Result<String, TemplateProblem> {
    let mut stages = action.split('|').map(str::trim);
    let head = stages.next().unwrap_or_default();
    let mut text = if let Some(rest) = head.strip_prefix("printf ") {
        let (format, argument) = parse_printf(rest)?;
        let value = match argument {
            "$value" | ".Value" => value,
            other => return Err(TemplateProblem::PrintfArgument(other.to_owned())),
        };
        printf(format, value)?
    } else {
        operand(head, labels, value)?
    };
    for stage in stages {
        let number = || -> Result<f64, TemplateProblem> {
            text.parse::<f64>()
                .map_err(|_| TemplateProblem::NotANumber {
                    stage: stage.to_owned(),
                    text: text.clone(),
                })
        };
        text = match stage {
            "humanize" => humanize(number()?),
            "humanizePercentage" => format!("{}%", format_g(number()? * 100.0, 4)),
            other => return Err(TemplateProblem::Function(other.to_owned())),
        };
    }
    Ok(text)
}

fn operand(text: &str, labels: &Labels, value: f64) -> Result<String, TemplateProblem> {
    if text == "$value" || text == ".Value" {
        return Ok(go_float(value));
    }
    let name = text
        .strip_prefix("$labels.")
        .or_else(|| text.strip_prefix(".Labels."));
    match name {
        Some(name) if !name.is_empty() => Ok(labels.get(name).cloned().unwrap_or_default()),
        _ => Err(TemplateProblem::Operand(text.to_owned())),
    }
}

fn parse_printf(rest: &str) -> Result<(&str, &str), TemplateProblem> {
    let rest = rest.trim();
    let body = rest
        .strip_prefix('"')
        .ok_or(TemplateProblem::PrintfUnquoted)?;
    let close = body.find('"').ok_or(TemplateProblem::PrintfUnclosed)?;
    Ok((&body[..close], body[close + 1..].trim()))
}

/// `%.Nf` (and `%f`, `%g`, `%v`) embedded in other text.
fn printf(format: &str, value: f64) -> Result<String, TemplateProblem> {
    let start = format.find('%').ok_or(TemplateProblem::PrintfNoVerb)?;
    let spec = &format[start + 1..];
    let verb_at = spec
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or(TemplateProblem::PrintfNoVerb)?;
    let precision = spec[..verb_at].strip_prefix('.').map(str::parse::<usize>);
    let rendered = match (&spec[verb_at..verb_at + 1], precision) {
        ("f", None) => format!("{value:.6}"),
        ("f", Some(Ok(p))) => format!("{value:.p$}"),
        ("g" | "v", None) => go_float(value),
        ("g", Some(Ok(p))) => format_g(value, p),
        (verb, _) => return Err(TemplateProblem::PrintfVerb(verb.to_owned())),
    };
    Ok(format!(
        "{}{}{}",
        &format[..start],
        rendered,
        &format[start + 1 + verb_at + 1..]
    ))
}

/// Go's `%v` of a float64: shortest digits, exponent form below 1e-4 or from 1e6.
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if value == 0.0 {
        return "0".into();
    }
    let exp = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&exp) {
        let sci = format!("{value:e}");
        let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    format!("{value}")
}

/// Go's `%.Ng`: N significant digits, trailing zeros removed.
pub fn format_g(value: f64, precision: usize) -> String {
    if !value.is_finite() {
        return go_float(value);
    }
    if value == 0.0 {
        return "0".into();
    }
    let precision = precision.max(1);
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exponent.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let mantissa = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Prometheus's `humanize`: SI prefixes with four significant digits.
fn humanize(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format_g(value, 4);
    }
    let abs = value.abs();
    if abs >= 1.0 {
        let prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
        let mut v = value;
        let mut i = 0;
        while v.abs() >= 1000.0 && i < prefixes.len() - 1 {
            v /= 1000.0;
            i += 1;
        }
        return format!("{}{}", format_g(v, 4), prefixes[i]);
    }
    let prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
    let mut v = value;
    let mut i = 0;
    while v.abs() < 1.0 && i < prefixes.len() - 1 {
        v *= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g(v, 4), prefixes[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    #[test]
    fn renders_the_subset_like_go() {
        let l = labels([("job", "orders"), ("instance", "127.0.0.1:3000")]);
        let r = |t: &str, v: f64| render(t, &l, v).unwrap();
        assert_eq!(
            r("{{ $labels.job }} on {{$labels.instance}}", 0.0),
            "orders on 127.0.0.1:3000"
        );
        assert_eq!(r("{{ $value }}", 0.25), "0.25");
        assert_eq!(r("{{ $value }}", 1.0), "1");
        assert_eq!(r("{{ $value | humanizePercentage }}", 0.25), "25%");
        assert_eq!(r("{{ $value | humanizePercentage }}", 0.123456), "12.35%");
        assert_eq!(r("{{ $value | humanize }}", 1234.0), "1.234k");
        assert_eq!(r("{{ $value | humanize }}", 0.0051), "5.1m");
        assert_eq!(r("{{ printf \"%.2f\" $value }}s", 5.123), "5.12s");
        assert_eq!(r("{{ $labels.missing }}x", 0.0), "x");
        assert_eq!(go_float(1e-5), "1e-05");
    }

    #[test]
    fn rejects_what_it_cannot_render() {
        let l = Labels::new();
        assert!(render("{{ $value | title }}", &l, 1.0).is_err());
        assert!(render("{{ range . }}", &l, 1.0).is_err());
        assert!(render("{{ $value ", &l, 1.0).is_err());
    }
}
