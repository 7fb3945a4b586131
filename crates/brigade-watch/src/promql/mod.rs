//! The PromQL subset brigade evaluates, over its own samples.
//!
//! Parsing is done by `promql-parser` (the grammar Prometheus uses, maintained by GreptimeDB);
//! this module checks a parsed expression against the subset (see [`check`]) and evaluates it
//! with Prometheus's semantics: five-minute lookback and stale markers for instant selectors,
//! left-open range windows, extrapolated `rate`/`increase`, one-to-one vector matching with
//! `on`/`ignoring`, comparison filters and `bool`, set operators, and `histogram_quantile`.

pub mod check;
mod eval;
mod functions;

use promql_parser::parser::Expr;

pub use eval::{LOOKBACK_MS, RangeSeries, Sample, Value};

use crate::tsdb::Tsdb;

/// Why a query cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PromqlError {
    /// Not valid PromQL.
    #[error("parse error: {0}")]
    Parse(String),
    /// Valid PromQL, but outside the subset brigade evaluates.
    #[error("unsupported {0} (brigade watch evaluates a PromQL subset; see docs/operations.md)")]
    Unsupported(String),
    /// Evaluation failed (e.g. many-to-many matching).
    #[error("{0}")]
    Eval(String),
}

/// A parsed, checked query.
#[derive(Debug, Clone)]
pub struct Query {
    expr: Expr,
    text: String,
    max_range_ms: i64,
}

impl Query {
    /// Parses and checks a query.
    pub fn parse(text: &str) -> Result<Self, PromqlError> {
        check::number_durations(text)?;
        let expr = promql_parser::parser::parse(text).map_err(PromqlError::Parse)?;
        let max_range_ms = check::check(&expr)?;
        Ok(Self {
            expr,
            text: text.to_owned(),
            max_range_ms,
        })
    }

    /// The query as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether one of the query's selectors selects a series with these labels (what
    /// `query_exemplars` answers for, as Prometheus does).
    pub fn selects(&self, labels: &crate::labels::Labels) -> bool {
        let mut selectors = Vec::new();
        selectors_of(&self.expr, &mut selectors);
        selectors.iter().any(|selector| {
            selector
                .name
                .as_ref()
                .is_none_or(|name| labels.get(crate::labels::METRIC_NAME) == Some(name))
                && eval::matches(&selector.matchers, labels)
        })
    }

    /// The longest range (plus offset) the query reads, in milliseconds.
    pub fn max_range_ms(&self) -> i64 {
        self.max_range_ms
    }

    /// Evaluates the query at `t` (milliseconds since the epoch).
    pub fn eval(&self, db: &Tsdb, t: i64) -> Result<Value, PromqlError> {
        eval::Evaluator { db, t }.eval(&self.expr)
    }

    /// Evaluates the query at `start`, `start + step`, … up to `end` (milliseconds)
    /// and joins the results into one series per label set, as Prometheus's range queries do:
    /// charts ask for this. Only instant vectors and scalars can be charted (a scalar becomes
    /// one series without labels); a range vector or string is an error, as in Prometheus.
    /// Series come out sorted by labels, points oldest first; an instant where a series has no
    /// value is simply absent from it.
    pub fn eval_range(
        &self,
        db: &Tsdb,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<RangeSeries>, PromqlError> {
        if step <= 0 {
            return Err(PromqlError::Eval("the step must be positive".into()));
        }
        let mut series: std::collections::BTreeMap<crate::labels::Labels, Vec<(i64, f64)>> =
            std::collections::BTreeMap::new();
        let mut t = start;
        while t <= end {
            let samples = match self.eval(db, t)? {
                Value::Vector(vector) => vector,
                Value::Scalar(value) => vec![Sample {
                    labels: crate::labels::Labels::new(),
                    value,
                }],
                Value::Matrix(_) | Value::String(_) => {
                    return Err(PromqlError::Eval(
                        "a range query must give an instant vector or a scalar".into(),
                    ));
                }
            };
            for sample in samples {
                series
                    .entry(sample.labels)
                    .or_default()
                    .push((t, sample.value));
            }
            t += step;
        }
        Ok(series
            .into_iter()
            .map(|(labels, points)| RangeSeries { labels, points })
            .collect())
    }
}

/// Every vector selector of an expression, those of range selectors included.
fn selectors_of<'e>(expr: &'e Expr, out: &mut Vec<&'e promql_parser::parser::VectorSelector>) {
    match expr {
        Expr::VectorSelector(selector) => out.push(selector),
        Expr::MatrixSelector(matrix) => out.push(&matrix.vs),
        Expr::Paren(paren) => selectors_of(&paren.expr, out),
        Expr::Unary(unary) => selectors_of(&unary.expr, out),
        Expr::Call(call) => call.args.args.iter().for_each(|arg| selectors_of(arg, out)),
        Expr::Aggregate(aggregate) => selectors_of(&aggregate.expr, out),
        Expr::Binary(binary) => {
            selectors_of(&binary.lhs, out);
            selectors_of(&binary.rhs, out);
        }
        Expr::Subquery(subquery) => selectors_of(&subquery.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests;
mod value;
