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

    /// The longest range (plus offset) the query reads, in milliseconds.
    pub fn max_range_ms(&self) -> i64 {
        self.max_range_ms
    }

    /// Evaluates the query at `t` (milliseconds since the epoch).
    pub fn eval(&self, db: &Tsdb, t: i64) -> Result<Value, PromqlError> {
        eval::Evaluator { db, t }.eval(&self.expr)
    }
}

#[cfg(test)]
mod tests;
