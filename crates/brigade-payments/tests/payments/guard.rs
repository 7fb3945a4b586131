//! The guards of `Payments`: metrics, warning lines, the overall timeout on any provider.

use std::sync::Arc;
use std::time::Duration;

use brigade_core::config::{PaymentSettings, SimulatedPaymentSettings};
use brigade_payments::{Authorization, Charge, Outcome, PaymentError, PaymentProvider, Payments};

use crate::helpers::{LocalMetrics, charge, stripe};

#[test]
fn outcome_names_and_error_meaning() {
    let names: Vec<&str> = [
        Outcome::Approved,
        Outcome::Declined,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::CircuitOpen,
    ]
    .into_iter()
    .map(Outcome::as_str)
    .collect();
    assert_eq!(
        names,
        ["approved", "declined", "error", "timeout", "circuit_open"]
    );
    let unavailable = PaymentError::Unavailable {
        reason: "x".to_owned(),
    };
    assert_eq!(unavailable.outcome(), Outcome::Error);
    assert_eq!(PaymentError::Timeout.outcome(), Outcome::Timeout);
    assert_eq!(PaymentError::CircuitOpen.outcome(), Outcome::CircuitOpen);
    assert!(unavailable.may_have_charged());
    assert!(PaymentError::Timeout.may_have_charged());
    assert!(!PaymentError::CircuitOpen.may_have_charged());
}

#[test]
fn idempotency_keys_are_stable_per_payment_and_operation() {
    let charge = charge(1);
    assert_eq!(
        charge.idempotency_key("authorize"),
        format!("brigade-{}-authorize", charge.payment_id)
    );
    assert_eq!(
        charge.idempotency_key("void"),
        charge.clone().idempotency_key("void")
    );
    assert_ne!(
        charge.idempotency_key("void"),
        charge.idempotency_key("capture")
    );
}

#[tokio::test]
async fn every_outcome_is_counted_with_provider_and_outcome_labels() {
    let metrics = LocalMetrics::new();
    let _guard = metrics.install();
    let (fake, payments) = stripe(|s| {
        s.breaker_failures = 2;
        s.breaker_open_ms = 60_000;
        s.stripe.max_retries = 0;
    })
    .await;

    let paid = charge(100);
    let Ok(Authorization::Approved { reference }) = payments.authorize(&paid).await else {
        panic!("approval expected");
    };
    payments.capture(&paid, &reference).await.unwrap();
    payments.void(&paid, Some(&reference)).await.unwrap_err(); // captured: cannot void
    let held = charge(100);
    let Ok(Authorization::Approved { reference }) = payments.authorize(&held).await else {
        panic!("approval expected");
    };
    payments.void(&held, Some(&reference)).await.unwrap();
    fake.decline_next(1);
    payments.authorize(&charge(100)).await.unwrap();
    fake.fail_next(2);
    payments.authorize(&charge(100)).await.unwrap_err(); // error
    payments.authorize(&charge(100)).await.unwrap_err(); // error; opens the breaker
    payments.authorize(&charge(100)).await.unwrap_err(); // circuit_open

    for (outcome, expected) in [
        ("approved", 2),
        ("declined", 1),
        ("error", 2),
        ("circuit_open", 1),
        ("timeout", 0),
        ("captured", 1),
        ("capture_failed", 0),
        ("voided", 1),
        ("void_failed", 1),
    ] {
        assert_eq!(
            metrics.payments_total("stripe", outcome),
            expected,
            "outcome {outcome}"
        );
    }
}

/// A provider that never answers.
struct Silent;

#[async_trait::async_trait]
impl PaymentProvider for Silent {
    fn name(&self) -> &'static str {
        "simulated"
    }
    async fn authorize(&self, _: &Charge) -> Result<Authorization, PaymentError> {
        std::future::pending().await
    }
    async fn capture(&self, _: &Charge, _: &str) -> Result<(), PaymentError> {
        std::future::pending().await
    }
    async fn void(&self, _: &Charge, _: Option<&str>) -> Result<(), PaymentError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn any_provider_is_cut_off_at_the_timeout_and_timeouts_open_the_breaker() {
    let metrics = LocalMetrics::new();
    let _guard = metrics.install();
    let settings = PaymentSettings {
        timeout_ms: 300,
        breaker_failures: 2,
        ..PaymentSettings::default()
    };
    let payments = Payments::new(Arc::new(Silent), &settings);
    let started = tokio::time::Instant::now();
    assert_eq!(
        payments.authorize(&charge(1)).await,
        Err(PaymentError::Timeout)
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(
        payments.capture(&charge(1), "sim_x").await,
        Err(PaymentError::Timeout)
    );
    assert_eq!(
        payments.void(&charge(1), None).await,
        Err(PaymentError::CircuitOpen)
    );
    assert_eq!(metrics.payments_total("simulated", "timeout"), 1);
    assert_eq!(metrics.payments_total("simulated", "capture_failed"), 1);
    assert_eq!(metrics.payments_total("simulated", "void_failed"), 1);
}

#[tokio::test]
async fn simulated_settings_reach_the_provider() {
    let settings = PaymentSettings {
        simulated: SimulatedPaymentSettings {
            decline_ratio: 1.0,
            ..SimulatedPaymentSettings::default()
        },
        ..PaymentSettings::default()
    };
    let payments = Payments::from_settings(&settings).unwrap();
    assert!(matches!(
        payments.authorize(&charge(1)).await,
        Ok(Authorization::Declined { .. })
    ));
}

#[test]
fn stripe_without_a_key_is_a_config_error_naming_the_key() {
    let settings = PaymentSettings {
        provider: brigade_core::config::PaymentProviderKind::Stripe,
        ..PaymentSettings::default()
    };
    let err = Payments::from_settings(&settings).unwrap_err();
    assert!(
        err.to_string().contains("payments.stripe.secret_key"),
        "{err}"
    );
}
