//! What evaluating an expression gives: numbers, instant and range vectors, strings; shared by
//! the evaluator (`eval`) and the functions it calls (`functions`).

use super::PromqlError;
use crate::labels::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: Labels,
    /// Its value at the evaluation instant.
    pub value: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples in the window, oldest first: (ms, value).
    pub points: Vec<(i64, f64)>,
}

/// The result of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector.
    Matrix(Vec<RangeSeries>),
    /// A string literal.
    String(String),
}

impl Value {
    /// The instant vector, or an error naming what was found instead.
    pub fn into_vector(self) -> Result<Vec<Sample>, PromqlError> {
        match self {
            Value::Vector(vector) => Ok(vector),
            Value::Scalar(value) => Ok(vec![Sample {
                labels: Labels::new(),
                value,
            }]),
            other => Err(PromqlError::Eval(format!(
                "expected an instant vector, got {}",
                other.kind()
            ))),
        }
    }

    /// What kind of value it is, for error messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
            Value::String(_) => "string",
        }
    }
}

/// An evaluation error with `message`.
pub(super) fn eval_error<T>(message: impl Into<String>) -> Result<T, PromqlError> {
    Err(PromqlError::Eval(message.into()))
}
