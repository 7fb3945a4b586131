//! Shared test helpers: charges, a Payments on the fake, a local metrics recorder.

use std::collections::HashMap;
use std::sync::Mutex;

use brigade_core::config::PaymentSettings;
use brigade_payments::fake_stripe::FakeStripe;
use brigade_payments::{Charge, Payments};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use uuid::Uuid;

/// A fresh charge in EUR.
pub fn charge(amount_minor: i64) -> Charge {
    Charge {
        payment_id: Uuid::now_v7(),
        order_id: Uuid::now_v7(),
        amount_minor,
        currency: "EUR".to_owned(),
    }
}

/// A fake Stripe and the Stripe provider pointing at it, guarded as `tweak` leaves the
/// settings (defaults: 5 s overall, 1 s per attempt, 2 retries, breaker after 5).
pub async fn stripe(tweak: impl FnOnce(&mut PaymentSettings)) -> (FakeStripe, Payments) {
    let (fake, _) = FakeStripe::start().await;
    let mut settings = fake.payment_settings();
    tweak(&mut settings);
    let payments = Payments::from_settings(&settings).expect("valid settings");
    (fake, payments)
}

/// A recorder for this test's thread only (tests run in parallel; a global one would mix
/// their counts). Keep the guard alive for the test; the tests use the current-thread runtime.
pub struct LocalMetrics {
    recorder: &'static DebuggingRecorder,
    snapshotter: Snapshotter,
    /// Snapshots drain the recorder's counters, so the counts read so far are kept here.
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl LocalMetrics {
    pub fn new() -> Self {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let snapshotter = recorder.snapshotter();
        Self {
            recorder,
            snapshotter,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn install(&self) -> metrics::LocalRecorderGuard<'static> {
        metrics::set_default_local_recorder(self.recorder)
    }

    /// The value of `brigade_payments_total{provider,outcome}` (0 when never incremented).
    pub fn payments_total(&self, provider: &str, outcome: &str) -> u64 {
        let mut seen = self.seen.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            if key.key().name() != "brigade_payments_total" {
                continue;
            }
            let labels: HashMap<&str, &str> =
                key.key().labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels.len(), 2, "labels: {labels:?}");
            let DebugValue::Counter(n) = value else {
                panic!("brigade_payments_total is not a counter: {value:?}");
            };
            *seen
                .entry((labels["provider"].to_owned(), labels["outcome"].to_owned()))
                .or_default() += n;
        }
        seen.get(&(provider.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}
