//! The simulated provider: deterministic outcomes, honoured ratios, latency.

use std::time::Duration;

use brigade_core::config::SimulatedPaymentSettings;
use brigade_payments::simulated::{DECLINE_REASON, SimulatedProvider};
use brigade_payments::{Authorization, Charge, PaymentError, PaymentProvider};

use uuid::Uuid;

use crate::helpers::charge;

fn provider(decline_ratio: f64, error_ratio: f64, seed: u64) -> SimulatedProvider {
    SimulatedProvider::new(SimulatedPaymentSettings {
        decline_ratio,
        error_ratio,
        latency_ms: 0,
        seed,
    })
}

/// Outcome names of authorising `charges`.
async fn outcomes(provider: &SimulatedProvider, charges: &[Charge]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for charge in charges {
        out.push(match provider.authorize(charge).await {
            Ok(Authorization::Approved { .. }) => "approved",
            Ok(Authorization::Declined { .. }) => "declined",
            Err(_) => "error",
        });
    }
    out
}

#[tokio::test]
async fn the_same_payment_and_seed_always_get_the_same_answer() {
    let charges: Vec<Charge> = (0..200).map(|_| charge(100)).collect();
    let first = outcomes(&provider(0.3, 0.2, 7), &charges).await;
    // A new provider instance (another replica, a restart) answers the same.
    let again = outcomes(&provider(0.3, 0.2, 7), &charges).await;
    assert_eq!(first, again);
    // And the mix is not trivial, so the comparison means something.
    for outcome in ["approved", "declined", "error"] {
        assert!(first.contains(&outcome), "no {outcome} in {first:?}");
    }
    // Another seed draws differently.
    let other_seed = outcomes(&provider(0.3, 0.2, 8), &charges).await;
    assert_ne!(first, other_seed);
}

#[tokio::test]
async fn ratios_are_roughly_honoured_over_1000_payments() {
    // Fixed ids, so the draw (and this test's verdict) is the same on every run.
    let charges: Vec<Charge> = (1..=1000u128)
        .map(|n| Charge {
            payment_id: Uuid::from_u128(n),
            ..charge(100)
        })
        .collect();
    let all = outcomes(&provider(0.25, 0.1, 42), &charges).await;
    let count = |name| all.iter().filter(|o| **o == name).count();
    // Errors are drawn first (10 %), declines among the rest (25 % of 90 % = 22.5 %).
    // Bounds are about four standard deviations wide.
    let errors = count("error");
    let declines = count("declined");
    assert!((60..=140).contains(&errors), "errors {errors}");
    assert!((170..=280).contains(&declines), "declines {declines}");

    let none = outcomes(&provider(0.0, 0.0, 42), &charges).await;
    assert!(none.iter().all(|o| *o == "approved"));
    let every = outcomes(&provider(1.0, 0.0, 42), &charges).await;
    assert!(every.iter().all(|o| *o == "declined"));
}

#[tokio::test]
async fn approvals_reference_the_payment_and_declines_say_why() {
    let charge = charge(100);
    assert_eq!(
        provider(0.0, 0.0, 1).authorize(&charge).await,
        Ok(Authorization::Approved {
            reference: format!("sim_{}", charge.payment_id)
        })
    );
    assert_eq!(
        provider(1.0, 0.0, 1).authorize(&charge).await,
        Ok(Authorization::Declined {
            reason: DECLINE_REASON.to_owned()
        })
    );
}

#[tokio::test]
async fn capture_and_void_succeed_unless_the_error_ratio_hits() {
    let ok = provider(0.0, 0.0, 3);
    let charge = charge(100);
    ok.capture(&charge, "sim_x").await.unwrap();
    ok.void(&charge, None).await.unwrap();

    let failing = provider(0.0, 1.0, 3);
    assert!(matches!(
        failing.capture(&charge, "sim_x").await,
        Err(PaymentError::Unavailable { .. })
    ));
    assert!(matches!(
        failing.void(&charge, Some("sim_x")).await,
        Err(PaymentError::Unavailable { .. })
    ));

    // At 50 % a retried capture gets through within a few attempts (errors are drawn per call).
    let flaky = provider(0.0, 0.5, 3);
    let mut attempts = 0;
    while flaky.capture(&charge, "sim_x").await.is_err() {
        attempts += 1;
        assert!(attempts < 40, "capture never succeeded");
    }
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_call() {
    let slow = SimulatedProvider::new(SimulatedPaymentSettings {
        latency_ms: 250,
        ..SimulatedPaymentSettings::default()
    });
    let started = tokio::time::Instant::now();
    slow.authorize(&charge(100)).await.unwrap();
    slow.capture(&charge(100), "sim_x").await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(500));
}
