//! The PromQL subset: parsing and the subset check (`Query::parse`), then, for an accepted
//! query, an instant and a range evaluation over a small store of counters, gauges and a
//! histogram (vector matching, functions, aggregations, `histogram_quantile`).
#![no_main]

use std::sync::OnceLock;

use brigade_watch::labels::labels;
use brigade_watch::promql::Query;
use brigade_watch::tsdb::Tsdb;
use libfuzzer_sys::fuzz_target;

/// Evaluation time: ten minutes of samples, every 15 s, end here (milliseconds).
const NOW: i64 = 1_700_000_600_000;

fn store() -> &'static Tsdb {
    static STORE: OnceLock<Tsdb> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut db = Tsdb::new(3_600_000, 1000);
        for step in 0..=40i64 {
            let t = NOW - 600_000 + step * 15_000;
            let v = step as f64;
            for (job, instance) in [("serve", "a"), ("serve", "b"), ("balance", "c")] {
                let series = |name, extra: &[(&'static str, &'static str)]| {
                    let mut set =
                        labels([("__name__", name), ("job", job), ("instance", instance)]);
                    set.extend(
                        extra
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                    );
                    set
                };
                db.append(&series("up", &[]), t, 1.0);
                db.append(&series("requests_total", &[("status", "200")]), t, v * 10.0);
                db.append(&series("requests_total", &[("status", "500")]), t, v);
                db.append(&series("in_flight", &[]), t, (step % 7) as f64);
                for (le, share) in [("0.1", 0.5), ("0.5", 0.9), ("+Inf", 1.0)] {
                    db.append(
                        &series("duration_seconds_bucket", &[("le", le)]),
                        t,
                        v * share,
                    );
                }
            }
        }
        db
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let db = store();
    let _ = query.eval(db, NOW);
    let _ = query.eval_range(db, NOW - 300_000, NOW, 60_000);
});
