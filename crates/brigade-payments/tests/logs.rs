//! The warning lines of declines and failures.
//!
//! A test binary of its own with a single test: `tracing` caches per call site whether any
//! subscriber listens, and thread-local subscribers in tests running in parallel threads make
//! that cache drop events, so the log is checked alone in this process.

use std::io::Write;
use std::sync::{Arc, Mutex};

use brigade_core::config::PaymentSettings;
use brigade_payments::fake_stripe::FakeStripe;
use brigade_payments::{Charge, Payments};
use uuid::Uuid;

fn charge(amount_minor: i64) -> Charge {
    Charge {
        payment_id: Uuid::now_v7(),
        order_id: Uuid::now_v7(),
        amount_minor,
        currency: "EUR".to_owned(),
    }
}

/// Log lines written on this thread while the guard lives, as plain text.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The WARN lines only.
    fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn warnings_carry_ids_and_reason_but_never_the_key_and_approvals_log_none() {
    let log = CapturedLog::default();
    let _guard = log.install();

    let simulated = Payments::from_settings(&PaymentSettings::default()).unwrap();
    simulated.authorize(&charge(100)).await.unwrap();
    assert!(log.warnings().is_empty(), "{}", log.text());

    let (fake, _) = FakeStripe::start().await;
    let mut settings = fake.payment_settings();
    settings.stripe.max_retries = 1;
    let payments = Payments::from_settings(&settings).unwrap();

    fake.set_decline_code("stolen_card");
    fake.decline_next(1);
    let declined = charge(100);
    payments.authorize(&declined).await.unwrap();
    fake.fail_next(u32::MAX);
    let failed = charge(100);
    payments.authorize(&failed).await.unwrap_err();

    let warnings = log.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("payment declined"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("reason=stolen_card"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains(&format!("order_id={}", declined.order_id)));
    assert!(warnings[0].contains(&format!("payment_id={}", declined.payment_id)));
    assert!(
        warnings[1].contains("payment call failed"),
        "{}",
        warnings[1]
    );
    assert!(warnings[1].contains("HTTP 500"), "{}", warnings[1]);
    assert!(warnings[1].contains(&format!("order_id={}", failed.order_id)));
    assert!(warnings[1].contains(&format!("payment_id={}", failed.payment_id)));
    assert!(
        !log.text().contains(FakeStripe::SECRET_KEY),
        "the secret key was logged"
    );
}
