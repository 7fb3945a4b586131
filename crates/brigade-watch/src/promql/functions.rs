//! The functions of the subset, with Prometheus's arithmetic.

use std::collections::BTreeMap;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::PromqlError;
use super::value::{RangeSeries, Sample, Value, eval_error};
use crate::labels::{Labels, METRIC_NAME, without_name};

/// Evaluates an argument expression (the evaluator, without this module knowing it).
pub(super) type Evaluate<'a> = dyn Fn(&Expr) -> Result<Value, PromqlError> + 'a;

/// Evaluates `call` at `t` (ms); `evaluate` evaluates its arguments.
pub(super) fn call(t: i64, evaluate: &Evaluate<'_>, call: &Call) -> Result<Value, PromqlError> {
    let args = Args {
        evaluate,
        name: call.func.name,
        args: &call.args.args,
    };
    let range_ms = args.range_ms();
    match args.name {
        "rate" => args.per_series(|s| extrapolated(s, t, range_ms, true, true)),
        "increase" => args.per_series(|s| extrapolated(s, t, range_ms, true, false)),
        "delta" => args.per_series(|s| extrapolated(s, t, range_ms, false, false)),
        "irate" => args.per_series(irate),
        "avg_over_time" => args.per_series(|s| {
            Some(s.points.iter().map(|p| p.1).sum::<f64>() / s.points.len() as f64)
        }),
        "sum_over_time" => args.per_series(|s| Some(s.points.iter().map(|p| p.1).sum())),
        "count_over_time" => args.per_series(|s| Some(s.points.len() as f64)),
        "min_over_time" => args.per_series(|s| s.points.iter().map(|p| p.1).reduce(nan_min)),
        "max_over_time" => args.per_series(|s| s.points.iter().map(|p| p.1).reduce(nan_max)),
        "last_over_time" => args.per_series(|s| s.points.last().map(|p| p.1)),
        "absent" => {
            let empty = args.arg(0)?.into_vector()?.is_empty();
            Ok(Value::Vector(absent(empty, args.first())))
        }
        "absent_over_time" => {
            let empty = args.matrix(0)?.is_empty();
            Ok(Value::Vector(absent(empty, args.first())))
        }
        "histogram_quantile" => {
            let q = args.scalar(0)?;
            let vector = args.arg(1)?.into_vector()?;
            Ok(Value::Vector(histogram_quantile(q, vector)))
        }
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "vector" => Ok(Value::Vector(vec![Sample {
            labels: Labels::new(),
            value: args.scalar(0)?,
        }])),
        "scalar" => {
            let vector = args.arg(0)?.into_vector()?;
            Ok(Value::Scalar(match vector.as_slice() {
                [one] => one.value,
                _ => f64::NAN,
            }))
        }
        "abs" => args.map_samples(f64::abs),
        "clamp_min" => {
            let bound = args.scalar(1)?;
            args.map_samples(|value| value.max(bound))
        }
        "clamp_max" => {
            let bound = args.scalar(1)?;
            args.map_samples(|value| value.min(bound))
        }
        other => Err(PromqlError::Unsupported(format!("function {other}()"))),
    }
}

/// A call's arguments, evaluated on demand and checked for the type the function expects.
struct Args<'a> {
    evaluate: &'a Evaluate<'a>,
    name: &'static str,
    args: &'a [Box<Expr>],
}

impl Args<'_> {
    fn first(&self) -> Option<&Expr> {
        self.args.first().map(|a| a.as_ref())
    }

    fn arg(&self, i: usize) -> Result<Value, PromqlError> {
        match self.args.get(i) {
            Some(expr) => (self.evaluate)(expr),
            None => eval_error(format!("{}() is missing argument {}", self.name, i + 1)),
        }
    }

    fn matrix(&self, i: usize) -> Result<Vec<RangeSeries>, PromqlError> {
        match self.arg(i)? {
            Value::Matrix(matrix) => Ok(matrix),
            _ => eval_error(format!("{}() expects a range vector", self.name)),
        }
    }

    fn scalar(&self, i: usize) -> Result<f64, PromqlError> {
        match self.arg(i)? {
            Value::Scalar(value) => Ok(value),
            _ => eval_error(format!(
                "{}() expects a scalar as argument {}",
                self.name,
                i + 1
            )),
        }
    }

    /// The window of the range-vector argument, in milliseconds.
    fn range_ms(&self) -> i64 {
        match self.first() {
            Some(Expr::MatrixSelector(m)) => m.range.as_millis() as i64,
            _ => 0,
        }
    }

    /// One sample per series of the range-vector argument, the metric name dropped; series
    /// for which `f` has no value are left out.
    fn per_series(&self, f: impl Fn(&RangeSeries) -> Option<f64>) -> Result<Value, PromqlError> {
        Ok(Value::Vector(
            self.matrix(0)?
                .iter()
                .filter_map(|series| {
                    f(series).map(|value| Sample {
                        labels: without_name(&series.labels),
                        value,
                    })
                })
                .collect(),
        ))
    }

    /// `f` applied to every sample of the instant-vector argument, the metric name dropped.
    fn map_samples(&self, f: impl Fn(f64) -> f64) -> Result<Value, PromqlError> {
        let vector = self.arg(0)?.into_vector()?;
        Ok(Value::Vector(
            vector
                .into_iter()
                .map(|s| Sample {
                    labels: without_name(&s.labels),
                    value: f(s.value),
                })
                .collect(),
        ))
    }
}

/// `irate`: the per-second change between the last two points (a reset counts from zero).
fn irate(series: &RangeSeries) -> Option<f64> {
    let n = series.points.len();
    if n < 2 {
        return None;
    }
    let (t0, v0) = series.points[n - 2];
    let (t1, v1) = series.points[n - 1];
    let change = if v1 < v0 { v1 } else { v1 - v0 };
    if t1 == t0 {
        return None;
    }
    Some(change / ((t1 - t0) as f64 / 1000.0))
}

fn nan_min(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

/// Prometheus's `extrapolatedRate`: the change over the window, counter resets added back,
/// extrapolated to the window's edges unless the series starts or ends inside it.
fn extrapolated(
    series: &RangeSeries,
    t: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let points = &series.points;
    if points.len() < 2 {
        return None;
    }
    let range_start = (t - range_ms) as f64 / 1000.0;
    let range_end = t as f64 / 1000.0;
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        for pair in points.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let first_t = first_t as f64 / 1000.0;
    let last_t = last_t as f64 / 1000.0;
    let mut to_start = first_t - range_start;
    let to_end = range_end - last_t;
    let sampled = last_t - first_t;
    let average_step = sampled / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        // A counter cannot have been below zero: do not extrapolate past where it was zero.
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_step * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_step / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_step / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `absent()`'s one-element result, labelled from the argument's equality matchers.
fn absent(empty: bool, arg: Option<&Expr>) -> Vec<Sample> {
    if !empty {
        return Vec::new();
    }
    let mut labels = Labels::new();
    let selector = match arg {
        Some(Expr::VectorSelector(vs)) => Some(vs),
        Some(Expr::MatrixSelector(ms)) => Some(&ms.vs),
        _ => None,
    };
    if let Some(selector) = selector {
        for matcher in &selector.matchers.matchers {
            if matcher.name != METRIC_NAME && matcher.op == MatchOp::Equal {
                labels.insert(matcher.name.clone(), matcher.value.clone());
            }
        }
    }
    vec![Sample { labels, value: 1.0 }]
}

/// Prometheus's `bucketQuantile` over classic `_bucket` series grouped by all labels but `le`.
fn histogram_quantile(q: f64, vector: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in vector {
        let Some(upper) = sample.labels.get("le").and_then(|le| parse_le(le)) else {
            continue;
        };
        let mut labels = without_name(&sample.labels);
        labels.remove("le");
        groups
            .entry(labels)
            .or_default()
            .push((upper, sample.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels,
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

fn parse_le(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        _ => text.parse().ok(),
    }
}

pub(super) fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Counts of a scraped histogram can be momentarily non-monotonic; make them monotonic.
    let mut max = f64::NEG_INFINITY;
    for bucket in buckets.iter_mut() {
        if bucket.1 > max {
            max = bucket.1;
        } else {
            bucket.1 = max;
        }
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets
        .iter()
        .position(|bucket| bucket.1 >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}
