//! The subset against values computed by hand (the arithmetic is spelled out in each test).

use super::*;
use crate::labels::{Labels, labels};
use crate::tsdb::Tsdb;

const S: i64 = 1000;

/// Label pairs and (seconds, value) points of one series.
type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn db_with(series: &[SeriesSpec<'_>]) -> Tsdb {
    let mut db = Tsdb::new(3_600 * S, 10_000);
    for (pairs, points) in series {
        let labels = labels(pairs.iter().copied());
        for (t, v) in points.iter() {
            db.append(&labels, t * S, *v);
        }
    }
    db
}

fn vector(db: &Tsdb, query: &str, t: i64) -> Vec<(Labels, f64)> {
    let mut out: Vec<(Labels, f64)> = Query::parse(query)
        .unwrap()
        .eval(db, t * S)
        .unwrap()
        .into_vector()
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.value))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn one(db: &Tsdb, query: &str, t: i64) -> f64 {
    let result = vector(db, query, t);
    assert_eq!(result.len(), 1, "{query}: {result:?}");
    result[0].1
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A counter growing by 1 per second, scraped every 15 s.
fn steady() -> Tsdb {
    let points: Vec<(i64, f64)> = (0..=8).map(|i| (i * 15, (i * 15) as f64)).collect();
    db_with(&[(&[("__name__", "c_total"), ("job", "a")], &points)])
}

#[test]
fn rate_and_increase_extrapolate_like_prometheus() {
    let db = steady();
    // Window (0, 60]: samples at 15..60 s, 45 apart in time and value; the 15 s gap to the
    // window start is below 1.1 × the 15 s step, so the change is extrapolated to 60 s: 60.
    assert!(close(one(&db, "increase(c_total[1m])", 60), 60.0));
    assert!(close(one(&db, "rate(c_total[1m])", 60), 1.0));
    // The metric name is dropped by functions.
    assert_eq!(
        vector(&db, "rate(c_total[1m])", 60)[0].0,
        labels([("job", "a")])
    );
}

#[test]
fn counter_resets_are_added_back() {
    let db = db_with(&[(
        &[("__name__", "c_total")],
        &[(0, 0.0), (15, 10.0), (30, 20.0), (45, 5.0), (60, 15.0)],
    )]);
    // Window (0, 60]: 10, 20, 5, 15 → 15 − 10 + 20 (reset) = 25 over 45 s, extrapolated by
    // 15 s at the start (the zero point, 45 × 10/25 = 18 s back, is further): 25 × 60/45.
    assert!(close(
        one(&db, "increase(c_total[1m])", 60),
        25.0 * 60.0 / 45.0
    ));
}

#[test]
fn one_sample_gives_no_rate() {
    let db = db_with(&[(&[("__name__", "c_total")], &[(60, 5.0)])]);
    assert!(vector(&db, "rate(c_total[1m])", 60).is_empty());
}

#[test]
fn aggregations_by_and_without() {
    let db = db_with(&[
        (&[("__name__", "m"), ("job", "a"), ("i", "1")], &[(0, 1.0)]),
        (&[("__name__", "m"), ("job", "a"), ("i", "2")], &[(0, 3.0)]),
        (&[("__name__", "m"), ("job", "b"), ("i", "1")], &[(0, 10.0)]),
    ]);
    assert_eq!(
        vector(&db, "sum by (job) (m)", 0),
        vec![
            (labels([("job", "a")]), 4.0),
            (labels([("job", "b")]), 10.0)
        ]
    );
    assert_eq!(vector(&db, "avg without (i) (m)", 0)[0].1, 2.0);
    assert_eq!(one(&db, "max(m)", 0), 10.0);
    assert_eq!(one(&db, "min(m)", 0), 1.0);
    assert_eq!(one(&db, "count(m)", 0), 3.0);
    assert_eq!(one(&db, "sum(m) / count(m)", 0), 14.0 / 3.0);
}

#[test]
fn error_ratio_with_matching_and_threshold() {
    let steps = |per_step: f64| -> Vec<(i64, f64)> {
        (0..=20).map(|i| (i * 15, i as f64 * per_step)).collect()
    };
    let ok = steps(30.0);
    let bad = steps(10.0);
    let db = db_with(&[
        (
            &[("__name__", "req_total"), ("job", "a"), ("code", "200")],
            &ok,
        ),
        (
            &[("__name__", "req_total"), ("job", "a"), ("code", "500")],
            &bad,
        ),
    ]);
    let ratio =
        r#"sum by (job) (rate(req_total{code=~"5.."}[5m])) / sum by (job) (rate(req_total[5m]))"#;
    // 10 of every 40 requests fail: 0.25.
    assert!(close(one(&db, ratio, 300), 0.25));
    assert_eq!(vector(&db, &format!("{ratio} > 0.2"), 300).len(), 1);
    assert!(vector(&db, &format!("{ratio} > 0.3"), 300).is_empty());
    assert!(close(one(&db, &format!("{ratio} > bool 0.3"), 300), 0.0));
}

#[test]
fn histogram_quantile_interpolates_within_a_bucket() {
    let bucket = |le: &'static str, count: f64| -> (Vec<(&'static str, &'static str)>, f64) {
        (vec![("__name__", "d_bucket"), ("le", le)], count)
    };
    let buckets = [
        bucket("0.1", 10.0),
        bucket("0.5", 20.0),
        bucket("1", 40.0),
        bucket("+Inf", 40.0),
    ];
    let mut db = Tsdb::new(3_600 * S, 100);
    for (pairs, count) in &buckets {
        db.append(&labels(pairs.iter().copied()), 0, *count);
    }
    // q = 0.5: rank 20 falls in (0.1, 0.5] holding 10 of it: 0.1 + 0.4 × 10/10.
    assert!(close(one(&db, "histogram_quantile(0.5, d_bucket)", 0), 0.5));
    // q = 0.9: rank 36 in (0.5, 1] holding 20: 0.5 + 0.5 × 16/20.
    assert!(close(one(&db, "histogram_quantile(0.9, d_bucket)", 0), 0.9));
    // q = 0.25: rank 10 in [0, 0.1]: 0.1.
    assert!(close(
        one(&db, "histogram_quantile(0.25, d_bucket)", 0),
        0.1
    ));
    assert!(one(&db, "histogram_quantile(1.5, d_bucket)", 0).is_infinite());
}

#[test]
fn absent_and_set_operators() {
    let db = db_with(&[
        (&[("__name__", "up"), ("job", "a")], &[(0, 1.0)]),
        (&[("__name__", "up"), ("job", "b")], &[(0, 0.0)]),
        (&[("__name__", "x"), ("job", "b")], &[(0, 7.0)]),
    ]);
    assert_eq!(
        vector(&db, r#"absent(nothing{job="z", env=~"p.*"})"#, 0),
        vec![(labels([("job", "z")]), 1.0)]
    );
    assert!(vector(&db, "absent(up)", 0).is_empty());
    assert_eq!(
        vector(&db, "up == 0", 0),
        vec![(labels([("__name__", "up"), ("job", "b")]), 0.0)]
    );
    assert_eq!(vector(&db, "up and x", 0).len(), 1);
    assert_eq!(vector(&db, "up unless x", 0)[0].0["job"], "a");
    assert_eq!(vector(&db, "x or up", 0).len(), 2);
    assert_eq!(vector(&db, "up and on (job) x", 0)[0].0["job"], "b");
    assert_eq!(one(&db, "vector(1)", 0), 1.0);
    assert_eq!(one(&db, "vector(2 * 3 + 1)", 0), 7.0);
}

#[test]
fn lookback_and_stale_markers() {
    let mut db = Tsdb::new(3_600 * S, 100);
    let a = labels([("__name__", "g")]);
    db.append_scrape("t", 0, &[(a.clone(), 1.0)]);
    assert_eq!(vector(&db, "g", 299).len(), 1, "inside the 5 m lookback");
    assert!(
        vector(&db, "g", 300).is_empty(),
        "the lookback is left-open"
    );
    db.append_scrape("t", 10 * S, &[]);
    assert!(
        vector(&db, "g", 11).is_empty(),
        "stale marker hides it at once"
    );
}

#[test]
fn many_to_many_is_an_error() {
    let db = db_with(&[
        (&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
        (&[("__name__", "b"), ("x", "1"), ("y", "1")], &[(0, 1.0)]),
        (&[("__name__", "b"), ("x", "1"), ("y", "2")], &[(0, 1.0)]),
    ]);
    let query = Query::parse("a + on (x) b").unwrap();
    assert!(matches!(query.eval(&db, 0), Err(PromqlError::Eval(_))));
}

#[test]
fn outside_the_subset_is_rejected_by_name() {
    let reject = |query: &str| match Query::parse(query) {
        Err(PromqlError::Unsupported(what)) => what,
        other => panic!("{query}: {other:?}"),
    };
    assert_eq!(
        reject("predict_linear(x[5m], 60)"),
        "function predict_linear()"
    );
    assert_eq!(reject("topk(3, x)"), "aggregation topk");
    assert_eq!(reject("rate(x[5m:1m])"), "subquery");
    assert_eq!(
        reject("a * on (x) group_left (y) b"),
        "group_left/group_right matching"
    );
    assert!(matches!(Query::parse("sum(("), Err(PromqlError::Parse(_))));
    assert_eq!(
        Query::parse("rate(x[6h]) + rate(y[5m] offset 1h)")
            .unwrap()
            .max_range_ms(),
        6 * 3_600 * S
    );
}

#[test]
fn range_queries_join_instants_into_series() {
    // A counter growing 1 per second on two instances, b starting at 30 s.
    let a: Vec<(i64, f64)> = (0..=60).map(|t| (t, t as f64)).collect();
    let b: Vec<(i64, f64)> = (30..=60).map(|t| (t, 2.0 * t as f64)).collect();
    let db = db_with(&[
        (&[("__name__", "c"), ("instance", "a")], &a),
        (&[("__name__", "c"), ("instance", "b")], &b),
    ]);
    let query = Query::parse("rate(c[10s])").unwrap();
    let series = query.eval_range(&db, 20 * S, 60 * S, 20 * S).unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].labels, labels([("instance", "a")]));
    // a: 1/s at 20, 40 and 60 s.
    assert_eq!(
        series[0].points,
        vec![(20 * S, 1.0), (40 * S, 1.0), (60 * S, 1.0)]
    );
    // b has no samples before 30 s: absent at 20 s, 2/s afterwards.
    assert_eq!(series[1].points, vec![(40 * S, 2.0), (60 * S, 2.0)]);

    let scalar = Query::parse("1 + 1").unwrap();
    let series = scalar.eval_range(&db, 0, 2 * S, S).unwrap();
    assert_eq!(series.len(), 1);
    assert!(series[0].labels.is_empty());
    assert_eq!(series[0].points.len(), 3);

    let matrix = Query::parse("c[1m]").unwrap();
    assert!(
        matrix.eval_range(&db, 0, S, S).is_err(),
        "a range vector cannot be charted"
    );
    assert!(query.eval_range(&db, 0, S, 0).is_err(), "a step of zero");
}

/// A number written as a duration is converted by the parser with `Duration::from_secs_f64`,
/// which panics when it is negative, not finite or too large; such queries are refused instead
/// (the first is the input that panicked under fuzzing, shortened).
#[test]
fn number_durations_out_of_range_are_refused_not_panicking() {
    let huge = format!("max(in_flight[{}0:30s])", "5".repeat(100));
    for text in [
        huge.as_str(),
        "rate(x[1e30])",
        "rate(x[Inf])",
        "rate(x[NaN])",
        "rate(x[0xffffffffffffffff])",
        "x offset 1e400",
        "x offset -1e30",
        "max_over_time(x[5m:1e300])",
    ] {
        assert!(
            matches!(Query::parse(text), Err(PromqlError::Parse(_))),
            "{text}"
        );
    }
    // In range: numbers, and strings that only look like durations.
    for text in [
        "rate(x[300])",
        "x offset 60",
        "x{a=\"[1e30] offset 1e400\"}",
        "rate(x[4294967295y])",
    ] {
        assert!(Query::parse(text).is_ok(), "{text}");
    }
    let db = Tsdb::new(60_000, 10);
    let query = Query::parse("rate(x[4294967295y] offset 4294967295y)").unwrap();
    assert_eq!(query.max_range_ms(), i64::MAX);
    assert!(query.eval(&db, 1_700_000_000_000).is_ok());
}
