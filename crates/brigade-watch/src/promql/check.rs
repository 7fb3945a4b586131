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
            Ok(matrix.range.as_millis() as i64 + offset_ms(&matrix.vs.offset))
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

/// A selector's offset in milliseconds (negative offsets read nothing older).
pub(crate) fn offset_ms(offset: &Option<promql_parser::parser::Offset>) -> i64 {
    match offset {
        Some(promql_parser::parser::Offset::Pos(d)) => d.as_millis() as i64,
        Some(promql_parser::parser::Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}
