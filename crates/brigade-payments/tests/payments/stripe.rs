//! The Stripe provider against the fake Stripe server over loopback HTTP.

use std::time::Duration;

use brigade_payments::fake_stripe::{Endpoint, FakeStripe};
use brigade_payments::{Authorization, BreakerState, PaymentError, Payments};

use crate::helpers::{charge, stripe};

fn approved(result: Result<Authorization, PaymentError>) -> String {
    match result {
        Ok(Authorization::Approved { reference }) => reference,
        other => panic!("expected approval, got {other:?}"),
    }
}

#[tokio::test]
async fn approval_holds_the_amount_with_the_order_in_metadata() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(1_250);
    let reference = approved(payments.authorize(&charge).await);

    assert!(reference.starts_with("pi_"), "{reference}");
    let intent = fake.intent(&reference).expect("the fake holds the intent");
    assert_eq!(intent.status, "requires_capture");
    assert_eq!(intent.amount, 1_250);
    assert_eq!(intent.currency, "eur");
    assert_eq!(intent.capture_method, "manual");
    assert_eq!(intent.payment_method, "pm_card_visa");
    assert_eq!(intent.metadata["order_id"], charge.order_id.to_string());
    assert_eq!(intent.metadata["payment_id"], charge.payment_id.to_string());
    assert_eq!(fake.calls(Endpoint::Create), 1);
    assert_eq!(fake.posts_without_idempotency_key(), 0);
}

#[tokio::test]
async fn a_card_error_is_a_decline_with_the_decline_code() {
    let (fake, payments) = stripe(|_| {}).await;
    fake.set_decline_code("insufficient_funds");
    fake.decline_next(1);
    let result = payments.authorize(&charge(999)).await;
    assert_eq!(
        result,
        Ok(Authorization::Declined {
            reason: "insufficient_funds".to_owned()
        })
    );
    // A decline is an answer: not retried, nothing held, breaker untouched.
    assert_eq!(fake.calls(Endpoint::Create), 1);
    assert!(fake.live_intents().is_empty());
    assert_eq!(payments.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_idempotency_key_and_charges_once() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 2).await;
    fake.fail_next(2);
    let reference = approved(payments.authorize(&charge(500)).await);
    assert_eq!(fake.calls(Endpoint::Create), 3);
    assert_eq!(fake.intents().len(), 1);
    assert_eq!(fake.intents()[0].id, reference);
    assert_eq!(fake.posts_without_idempotency_key(), 0);
}

#[tokio::test]
async fn a_lost_answer_is_retried_and_the_replay_returns_the_same_intent() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 1).await;
    fake.drop_next(1);
    let reference = approved(payments.authorize(&charge(700)).await);
    assert_eq!(fake.calls(Endpoint::Create), 2);
    assert_eq!(
        fake.intents().len(),
        1,
        "the retry must not create a second intent"
    );
    assert_eq!(fake.intents()[0].id, reference);
}

#[tokio::test]
async fn persistent_5xx_is_unavailable_after_the_retries() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 2).await;
    fake.fail_next(u32::MAX);
    let err = payments.authorize(&charge(500)).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::Unavailable { ref reason } if reason.contains("500")),
        "{err:?}"
    );
    assert!(err.may_have_charged());
    assert_eq!(fake.calls(Endpoint::Create), 3, "one call and two retries");
}

#[tokio::test]
async fn a_wrong_key_is_unavailable_without_retries() {
    let (fake, _) = FakeStripe::start().await;
    let mut settings = fake.payment_settings();
    settings.stripe.secret_key = "sk_test_wrong".to_owned();
    let payments = Payments::from_settings(&settings).unwrap();
    let err = payments.authorize(&charge(500)).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::Unavailable { ref reason } if reason.contains("401")),
        "{err:?}"
    );
    assert_eq!(fake.calls(Endpoint::Create), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn a_slow_provider_times_out_at_the_overall_deadline() {
    let (fake, payments) = stripe(|s| {
        s.timeout_ms = 200;
        s.stripe.request_timeout_ms = 5_000;
    })
    .await;
    fake.set_delay(Duration::from_secs(2));
    let started = tokio::time::Instant::now();
    let err = payments.authorize(&charge(500)).await.unwrap_err();
    assert_eq!(err, PaymentError::Timeout);
    assert!(err.may_have_charged());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hanging_provider_times_out_per_attempt_and_is_retried() {
    let (fake, payments) = stripe(|s| {
        s.timeout_ms = 5_000;
        s.stripe.request_timeout_ms = 150;
        s.stripe.max_retries = 1;
    })
    .await;
    fake.set_hang(true);
    let err = payments.authorize(&charge(500)).await.unwrap_err();
    assert_eq!(err, PaymentError::Timeout);
    assert_eq!(fake.calls(Endpoint::Create), 2);
}

/// Waits (bounded) until the breaker's open period is over.
async fn until_half_open(payments: &Payments) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while payments.breaker_state() != BreakerState::HalfOpen {
        assert!(
            tokio::time::Instant::now() < deadline,
            "breaker never half-opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_breaker_opens_answers_without_calling_and_a_good_trial_closes_it() {
    let (fake, payments) = stripe(|s| {
        s.breaker_failures = 3;
        s.breaker_open_ms = 300;
        s.stripe.max_retries = 0;
    })
    .await;
    fake.fail_next(u32::MAX);
    for _ in 0..3 {
        assert!(matches!(
            payments.authorize(&charge(100)).await,
            Err(PaymentError::Unavailable { .. })
        ));
    }
    assert_eq!(payments.breaker_state(), BreakerState::Open);

    for _ in 0..5 {
        let err = payments.authorize(&charge(100)).await.unwrap_err();
        assert_eq!(err, PaymentError::CircuitOpen);
        assert!(!err.may_have_charged());
    }
    // Captures and voids are guarded too.
    assert_eq!(
        payments.capture(&charge(100), "pi_x").await,
        Err(PaymentError::CircuitOpen)
    );
    assert_eq!(
        fake.total_calls(),
        3,
        "an open breaker must not call Stripe"
    );

    until_half_open(&payments).await;
    fake.fail_next(0);
    approved(payments.authorize(&charge(100)).await);
    assert_eq!(payments.breaker_state(), BreakerState::Closed);
    assert_eq!(fake.calls(Endpoint::Create), 4);
}

#[tokio::test]
async fn a_failed_trial_opens_the_breaker_again_and_declines_do_not_open_it() {
    let (fake, payments) = stripe(|s| {
        s.breaker_failures = 2;
        s.breaker_open_ms = 200;
        s.stripe.max_retries = 0;
    })
    .await;
    fake.decline_next(10);
    for _ in 0..10 {
        assert!(matches!(
            payments.authorize(&charge(100)).await,
            Ok(Authorization::Declined { .. })
        ));
    }
    assert_eq!(payments.breaker_state(), BreakerState::Closed);

    fake.fail_next(u32::MAX);
    for _ in 0..2 {
        payments.authorize(&charge(100)).await.unwrap_err();
    }
    assert_eq!(payments.breaker_state(), BreakerState::Open);
    until_half_open(&payments).await;
    assert!(matches!(
        payments.authorize(&charge(100)).await,
        Err(PaymentError::Unavailable { .. })
    ));
    assert_eq!(payments.breaker_state(), BreakerState::Open);
    assert_eq!(fake.calls(Endpoint::Create), 13);
}

#[tokio::test]
async fn capture_takes_the_money_and_is_idempotent() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(4_200);
    let reference = approved(payments.authorize(&charge).await);
    payments.capture(&charge, &reference).await.unwrap();
    let intent = fake.intent(&reference).unwrap();
    assert_eq!(intent.status, "succeeded");
    assert_eq!(intent.amount_received, 4_200);

    // Twice: the idempotency key replays the first answer.
    payments.capture(&charge, &reference).await.unwrap();
    assert_eq!(fake.calls(Endpoint::Capture), 2);
    assert_eq!(fake.posts_without_idempotency_key(), 0);
}

#[tokio::test]
async fn capture_retried_after_a_lost_answer_finds_the_intent_captured() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 1).await;
    let charge = charge(4_200);
    let reference = approved(payments.authorize(&charge).await);
    fake.drop_next(1);
    payments.capture(&charge, &reference).await.unwrap();
    assert_eq!(fake.calls(Endpoint::Capture), 2);
    assert_eq!(fake.intent(&reference).unwrap().status, "succeeded");
}

#[tokio::test]
async fn void_releases_the_hold_and_is_idempotent() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(800);
    let reference = approved(payments.authorize(&charge).await);
    payments.void(&charge, Some(&reference)).await.unwrap();
    let intent = fake.intent(&reference).unwrap();
    assert_eq!(intent.status, "canceled");
    assert_eq!(intent.cancellation_reason.as_deref(), Some("abandoned"));
    payments.void(&charge, Some(&reference)).await.unwrap();
    assert!(fake.live_intents().is_empty());
}

#[tokio::test]
async fn voiding_a_captured_payment_fails() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(800);
    let reference = approved(payments.authorize(&charge).await);
    payments.capture(&charge, &reference).await.unwrap();
    let err = payments.void(&charge, Some(&reference)).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::Unavailable { ref reason } if reason.contains("succeeded")),
        "{err:?}"
    );
    assert_eq!(
        fake.calls(Endpoint::Retrieve),
        1,
        "the state is checked, not assumed"
    );
}

#[tokio::test]
async fn void_without_reference_after_a_lost_answer_cancels_the_recorded_intent() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 0).await;
    let charge = charge(1_999);
    fake.drop_next(1);
    let err = payments.authorize(&charge).await.unwrap_err();
    assert!(err.may_have_charged(), "{err:?}");
    let held = fake.live_intents();
    assert_eq!(
        held.len(),
        1,
        "the charge was made, only the answer was lost"
    );

    payments.void(&charge, None).await.unwrap();
    assert!(fake.live_intents().is_empty());
    assert_eq!(fake.intents().len(), 1, "the repeat found the same intent");
    assert_eq!(fake.intent(&held[0].id).unwrap().status, "canceled");
}

#[tokio::test]
async fn void_without_reference_after_a_decline_has_nothing_to_do() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(1_999);
    fake.decline_next(1);
    assert!(matches!(
        payments.authorize(&charge).await,
        Ok(Authorization::Declined { .. })
    ));
    payments.void(&charge, None).await.unwrap();
    assert_eq!(fake.calls(Endpoint::Cancel), 0);
    assert!(fake.intents().is_empty());
}

#[tokio::test]
async fn void_without_reference_when_the_request_never_arrived_leaves_nothing_held() {
    let (fake, payments) = stripe(|_| {}).await;
    let charge = charge(300);
    payments.void(&charge, None).await.unwrap();
    assert!(fake.live_intents().is_empty());
}

#[tokio::test]
async fn a_request_stripe_refuses_is_unavailable_and_not_retried() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 2).await;
    let mut bad = charge(500);
    bad.currency = "EURO".to_owned();
    let err = payments.authorize(&bad).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::Unavailable { ref reason } if reason.contains("400")),
        "{err:?}"
    );
    assert_eq!(fake.calls(Endpoint::Create), 1);
    assert!(fake.intents().is_empty());
}

#[tokio::test]
async fn concurrent_authorisations_of_one_payment_hold_the_money_once() {
    let (fake, payments) = stripe(|s| s.stripe.max_retries = 6).await;
    // The first request is still being processed when the others arrive: Stripe answers them
    // 409 (key in use); they are retried and get the first answer replayed.
    fake.set_delay(Duration::from_millis(150));
    let charge = charge(2_500);
    let (a, b, c) = tokio::join!(
        payments.authorize(&charge),
        payments.authorize(&charge),
        payments.authorize(&charge)
    );
    let (a, b, c) = (approved(a), approved(b), approved(c));
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert!(
        fake.calls(Endpoint::Create) > 3,
        "no request met the key in use"
    );
    assert_eq!(fake.intents().len(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    // A port that was free a moment ago: connection refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (fake, _) = FakeStripe::start().await;
    let mut settings = fake.payment_settings();
    settings.stripe.base_url = format!("http://127.0.0.1:{port}");
    settings.stripe.max_retries = 1;
    let payments = Payments::from_settings(&settings).unwrap();
    let err = payments.authorize(&charge(500)).await.unwrap_err();
    assert!(
        matches!(err, PaymentError::Unavailable { ref reason } if reason.contains("request to Stripe failed")),
        "{err:?}"
    );
    assert!(err.may_have_charged());
}
