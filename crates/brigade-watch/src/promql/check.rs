//! Which PromQL brigade evaluates: checked once, when a rule file is loaded.
//!
//! Anything outside this list is rejected at load time, naming the construct, so a rule never
//! silently evaluates to nothing in brigade while it works in Prometheus.

use promql_parser::parser::token::{T_AVG, T_COUNT, T_MAX, T_MIN, T_SUM};
use promql_parser::parser::{Expr, VectorMatchCardinality};

use super::PromqlError;

/// Functions brigade evaluates.
pub const FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "irate",
    "delta",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "absent",
    "absent_over_time",
    "histogram_quantile",
    "time",
    "vector",
    "scalar",
    "abs",
    "clamp_min",
    "clamp_max",
];

/// Aggregations brigade evaluates.
pub const AGGREGATIONS: &[&str] = &["sum", "avg", "max", "min", "count"];

/// Checks an expression; returns the longest range it reads (ms).
pub fn check(expr: &Expr) -> Result<i64, PromqlError> {
    let unsupported = |what: String| Err(PromqlError::Unsupported(what));
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(0),
        Expr::Paren(paren) => check(&paren.expr),
        Expr::Unary(unary) => check(&unary.expr),
        Expr::VectorSelector(selector) => {
            if selector.at.is_some() {
                return unsupported("@ modifier".into());
            }
            Ok(offset_ms(&selector.offset))
        }
        Expr::MatrixSelector(matrix) => {
            if matrix.vs.at.is_some() {
                return unsupported("@ modifier".into());
            }
            Ok(millis(&matrix.range).saturating_add(offset_ms(&matrix.vs.offset)))
        }
        Expr::Call(call) => {
            if !FUNCTIONS.contains(&call.func.name) {
                return unsupported(format!("function {}()", call.func.name));
            }
            let mut longest = 0;
            for arg in &call.args.args {
                longest = longest.max(check(arg)?);
            }
            Ok(longest)
        }
        Expr::Aggregate(aggregate) => {
            let id = aggregate.op.id();
            if ![T_SUM, T_AVG, T_MAX, T_MIN, T_COUNT].contains(&id) || aggregate.param.is_some() {
                return unsupported(format!("aggregation {}", aggregate.op));
            }
            check(&aggregate.expr)
        }
        Expr::Binary(binary) => {
            if let Some(modifier) = &binary.modifier {
                if matches!(
                    modifier.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                ) {
                    return unsupported("group_left/group_right matching".into());
                }
                if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
                    return unsupported("fill modifier".into());
                }
            }
            if binary.op.id() == promql_parser::parser::token::T_ATAN2 {
                return unsupported("operator atan2".into());
            }
            Ok(check(&binary.lhs)?.max(check(&binary.rhs)?))
        }
        Expr::Subquery(_) => unsupported("subquery".into()),
        Expr::Extension(_) => unsupported("extension expression".into()),
    }
}

/// A duration in milliseconds, saturating: `[4294967295y]` is valid PromQL and exceeds i64.
pub(crate) fn millis(duration: &std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A selector's offset in milliseconds (negative offsets read nothing older).
pub(crate) fn offset_ms(offset: &Option<promql_parser::parser::Offset>) -> i64 {
    match offset {
        Some(promql_parser::parser::Offset::Pos(d)) => millis(d),
        Some(promql_parser::parser::Offset::Neg(d)) => -millis(d),
        None => 0,
    }
}

/// The longest number of seconds accepted where a number stands for a duration (about 317
/// years).
pub const MAX_NUMBER_SECONDS: f64 = 1e10;

/// The value of a PromQL number literal (decimal, hexadecimal, `Inf`, `NaN`), if `token` is one.
fn number(token: &str) -> Option<f64> {
    let token = token.trim();
    match token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as f64),
        None => token.parse().ok(),
    }
}

/// Refuses a number written as a duration (`x[1e30]`, `x[Inf]`, `x offset 1e400`) that is
/// negative, not finite or longer than [`MAX_NUMBER_SECONDS`]. `promql-parser` converts such a
/// number with `Duration::from_secs_f64`, which panics on those values, so they must not reach
/// it. Quoted strings and comments are skipped.
pub fn number_durations(text: &str) -> Result<(), PromqlError> {
    let bad = |token: &str| {
        number(token).is_some_and(|seconds| !(0.0..=MAX_NUMBER_SECONDS).contains(&seconds))
    };
    let refuse = |token: &str| {
        Err(PromqlError::Parse(format!(
            "the duration {:?} is negative, not finite or too long",
            token.trim()
        )))
    };
    let bytes = text.as_bytes();
    let mut bracket = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' && quote != b'`' {
                        2
                    } else {
                        1
                    };
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => bracket = Some(i + 1),
            b']' => {
                if let Some(start) = bracket.take()
                    && let Some(part) = text[start..i].split(':').find(|part| bad(part))
                {
                    return refuse(part);
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if text[start..i].eq_ignore_ascii_case("offset") {
                    let rest = text[i..].trim_start();
                    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
                    let mut end = 0;
                    let rb = rest.as_bytes();
                    while end < rb.len()
                        && (rb[end].is_ascii_alphanumeric()
                            || rb[end] == b'.'
                            || (matches!(rb[end], b'+' | b'-')
                                && end > 0
                                && matches!(rb[end - 1], b'e' | b'E')))
                    {
                        end += 1;
                    }
                    if bad(&rest[..end]) {
                        return refuse(&rest[..end]);
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}
