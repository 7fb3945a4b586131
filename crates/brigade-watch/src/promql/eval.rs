//! Evaluation of a checked expression at one instant.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::label::Matchers;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_COUNT, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS,
    T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_SUB, T_SUM, TokenId,
};
use promql_parser::parser::{AggregateExpr, BinaryExpr, Expr, LabelModifier, VectorSelector};

use super::PromqlError;
use super::check::offset_ms;
use super::value::eval_error;
pub use super::value::{RangeSeries, Sample, Value};
use crate::labels::{Labels, METRIC_NAME, without_name};
use crate::tsdb::{Tsdb, is_stale};

/// How far back an instant selector looks for the latest sample (Prometheus's default).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

pub(super) struct Evaluator<'a> {
    pub(super) db: &'a Tsdb,
    pub(super) t: i64,
}

impl Evaluator<'_> {
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, PromqlError> {
        match expr {
            Expr::NumberLiteral(number) => Ok(Value::Scalar(number.val)),
            Expr::StringLiteral(string) => Ok(Value::String(string.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr),
            Expr::Unary(unary) => match self.eval(&unary.expr)? {
                Value::Scalar(value) => Ok(Value::Scalar(-value)),
                Value::Vector(vector) => Ok(Value::Vector(
                    vector
                        .into_iter()
                        .map(|s| Sample {
                            labels: without_name(&s.labels),
                            value: -s.value,
                        })
                        .collect(),
                )),
                other => eval_error(format!("cannot negate a {}", other.kind())),
            },
            Expr::VectorSelector(selector) => Ok(Value::Vector(self.instant(selector))),
            Expr::MatrixSelector(matrix) => Ok(Value::Matrix(
                self.range(&matrix.vs, super::check::millis(&matrix.range)),
            )),
            Expr::Call(call) => super::functions::call(self.t, &|expr| self.eval(expr), call),
            Expr::Aggregate(aggregate) => self.aggregate(aggregate),
            Expr::Binary(binary) => self.binary(binary),
            Expr::Subquery(_) | Expr::Extension(_) => {
                Err(PromqlError::Unsupported("expression".into()))
            }
        }
    }

    fn matching<'s>(
        &'s self,
        selector: &'s VectorSelector,
    ) -> impl Iterator<Item = (&'s Labels, &'s crate::tsdb::Series)> + 's {
        let series: Box<dyn Iterator<Item = _>> = match &selector.name {
            Some(name) => Box::new(self.db.series_named(name)),
            None => Box::new(self.db.all_series()),
        };
        series.filter(|(labels, _)| matches(&selector.matchers, labels))
    }

    /// The latest sample of each matching series within the lookback, unless it is stale.
    fn instant(&self, selector: &VectorSelector) -> Vec<Sample> {
        let t = self.t.saturating_sub(offset_ms(&selector.offset));
        let mut out = Vec::new();
        for (labels, series) in self.matching(selector) {
            let latest = series
                .samples
                .iter()
                .rev()
                .find(|(ts, _)| *ts <= t)
                .filter(|(ts, _)| *ts > t.saturating_sub(LOOKBACK_MS));
            if let Some((_, value)) = latest
                && !is_stale(*value)
            {
                out.push(Sample {
                    labels: labels.clone(),
                    value: *value,
                });
            }
        }
        out
    }

    /// The samples of each matching series in `(t - range, t]`, stale markers left out.
    fn range(&self, selector: &VectorSelector, range_ms: i64) -> Vec<RangeSeries> {
        let t = self.t.saturating_sub(offset_ms(&selector.offset));
        let mut out = Vec::new();
        for (labels, series) in self.matching(selector) {
            let points: Vec<(i64, f64)> = series
                .samples
                .iter()
                .filter(|(ts, v)| *ts > t.saturating_sub(range_ms) && *ts <= t && !is_stale(*v))
                .copied()
                .collect();
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: labels.clone(),
                    points,
                });
            }
        }
        out
    }

    fn aggregate(&self, aggregate: &AggregateExpr) -> Result<Value, PromqlError> {
        let vector = self.eval(&aggregate.expr)?.into_vector()?;
        let op = aggregate.op.id();
        let mut groups: BTreeMap<Labels, (f64, f64, usize)> = BTreeMap::new();
        for sample in vector {
            let key = group_labels(&sample.labels, aggregate.modifier.as_ref());
            let entry = groups.entry(key).or_insert((0.0, sample.value, 0));
            entry.2 += 1;
            entry.0 += sample.value;
            entry.1 = match op {
                T_MAX if entry.1.is_nan() || sample.value > entry.1 => sample.value,
                T_MIN if entry.1.is_nan() || sample.value < entry.1 => sample.value,
                _ => entry.1,
            };
        }
        let result = groups
            .into_iter()
            .map(|(labels, (sum, extreme, count))| {
                let value = match op {
                    T_SUM => sum,
                    T_AVG => sum / count as f64,
                    T_COUNT => count as f64,
                    T_MAX | T_MIN => extreme,
                    _ => f64::NAN,
                };
                Sample { labels, value }
            })
            .collect();
        Ok(Value::Vector(result))
    }

    fn binary(&self, binary: &BinaryExpr) -> Result<Value, PromqlError> {
        let op = binary.op.id();
        let return_bool = binary.modifier.as_ref().is_some_and(|m| m.return_bool);
        let matching = binary.modifier.as_ref().and_then(|m| m.matching.as_ref());
        let lhs = self.eval(&binary.lhs)?;
        let rhs = self.eval(&binary.rhs)?;
        match (lhs, rhs) {
            (Value::Scalar(a), Value::Scalar(b)) => {
                let value = if is_comparison(op) {
                    if compare(op, a, b) { 1.0 } else { 0.0 }
                } else {
                    arithmetic(op, a, b)
                };
                Ok(Value::Scalar(value))
            }
            (Value::Vector(vector), Value::Scalar(scalar)) => Ok(Value::Vector(vector_scalar(
                vector,
                scalar,
                op,
                return_bool,
                false,
            ))),
            (Value::Scalar(scalar), Value::Vector(vector)) => Ok(Value::Vector(vector_scalar(
                vector,
                scalar,
                op,
                return_bool,
                true,
            ))),
            (Value::Vector(lhs), Value::Vector(rhs)) => match op {
                T_LAND | T_LOR | T_LUNLESS => Ok(Value::Vector(set_op(op, lhs, rhs, matching))),
                _ => vector_vector(op, lhs, rhs, matching, return_bool).map(Value::Vector),
            },
            (lhs, rhs) => eval_error(format!(
                "operator {} needs scalars or instant vectors, got {} and {}",
                binary.op,
                lhs.kind(),
                rhs.kind()
            )),
        }
    }
}

/// Whether a series' labels satisfy a selector's matchers (a missing label is "").
pub(super) fn matches(matchers: &Matchers, labels: &Labels) -> bool {
    let all = |group: &[promql_parser::label::Matcher]| {
        group.iter().all(|m| {
            let value = labels.get(&m.name).map(String::as_str).unwrap_or("");
            m.is_match(value)
        })
    };
    all(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|g| all(g)))
}

fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != METRIC_NAME && !without.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn compare(op: TokenId, a: f64, b: f64) -> bool {
    match op {
        T_EQLC => a == b,
        T_NEQ => a != b,
        T_GTR => a > b,
        T_LSS => a < b,
        T_GTE => a >= b,
        T_LTE => a <= b,
        _ => false,
    }
}

fn arithmetic(op: TokenId, a: f64, b: f64) -> f64 {
    match op {
        T_ADD => a + b,
        T_SUB => a - b,
        T_MUL => a * b,
        T_DIV => a / b,
        T_MOD => a % b,
        T_POW => a.powf(b),
        _ => f64::NAN,
    }
}

fn vector_scalar(
    vector: Vec<Sample>,
    scalar: f64,
    op: TokenId,
    return_bool: bool,
    scalar_first: bool,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (a, b) = if scalar_first {
            (scalar, sample.value)
        } else {
            (sample.value, scalar)
        };
        if is_comparison(op) {
            let holds = compare(op, a, b);
            if return_bool {
                out.push(Sample {
                    labels: without_name(&sample.labels),
                    value: if holds { 1.0 } else { 0.0 },
                });
            } else if holds {
                out.push(sample);
            }
        } else {
            out.push(Sample {
                labels: without_name(&sample.labels),
                value: arithmetic(op, a, b),
            });
        }
    }
    out
}

/// The labels two sides are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != METRIC_NAME && !ignoring.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => without_name(labels),
    }
}

fn set_op(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    let rhs_signatures: HashSet<Labels> =
        rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    match op {
        T_LAND => lhs
            .into_iter()
            .filter(|s| rhs_signatures.contains(&signature(&s.labels, matching)))
            .collect(),
        T_LUNLESS => lhs
            .into_iter()
            .filter(|s| !rhs_signatures.contains(&signature(&s.labels, matching)))
            .collect(),
        _ => {
            let lhs_signatures: HashSet<Labels> =
                lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !lhs_signatures.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Sample>, PromqlError> {
    let mut right: HashMap<Labels, Sample> = HashMap::with_capacity(rhs.len());
    for sample in rhs {
        let key = signature(&sample.labels, matching);
        if right.insert(key.clone(), sample).is_some() {
            return eval_error(format!(
                "found duplicate series for the match group {key:?} on the right hand-side of the operation; many-to-many matching not allowed"
            ));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for sample in lhs {
        let key = signature(&sample.labels, matching);
        let Some(other) = right.get(&key) else {
            continue;
        };
        if !seen.insert(key.clone()) {
            return eval_error(format!(
                "multiple matches for labels {key:?}: many-to-one matching must be explicit (group_left/group_right)"
            ));
        }
        let comparison = is_comparison(op);
        let (value, keep) = if comparison {
            let holds = compare(op, sample.value, other.value);
            if return_bool {
                (if holds { 1.0 } else { 0.0 }, true)
            } else {
                (sample.value, holds)
            }
        } else {
            (arithmetic(op, sample.value, other.value), true)
        };
        if !keep {
            continue;
        }
        let mut labels = sample.labels;
        if !comparison || return_bool {
            labels.remove(METRIC_NAME);
        }
        match matching {
            Some(LabelModifier::Include(on)) => labels.retain(|k, _| on.labels.contains(k)),
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.retain(|k, _| !ignoring.labels.contains(k))
            }
            None => {}
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}
