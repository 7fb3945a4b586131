//! Payments through a provider: each outcome (approved, declined, provider error, provider
//! timeout, circuit open) with the order state, the HTTP answer, the audit trail and the metric.
//! The Stripe provider runs against brigade-payments' fake Stripe server over loopback.

use std::time::{Duration, Instant};

use brigade_payments::fake_stripe::{Endpoint, FakeStripe};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A replica of `app` paying through a fresh fake Stripe, tuned by `tune`.
async fn with_stripe(
    app: &TestApp,
    tune: impl FnOnce(&mut brigade_core::config::PaymentSettings),
) -> (TestApp, FakeStripe) {
    let (fake, _) = FakeStripe::start().await;
    let mut payments = fake.payment_settings();
    payments.stripe.max_retries = 1;
    payments.stripe.request_timeout_ms = 2_000;
    tune(&mut payments);
    let replica = app
        .replica_with(|settings| settings.payments = payments)
        .await;
    (replica, fake)
}

/// The actions recorded for one payment (oldest first), found through its order.
async fn payment_actions(app: &TestApp, order_id: &str) -> Vec<String> {
    let placed = app
        .audit(&format!(
            "entity=order&entity_id={order_id}&action=order.placed"
        ))
        .await;
    let payment_id = placed[0]["after"]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut actions: Vec<String> = app
        .audit(&format!("entity=payment&entity_id={payment_id}"))
        .await
        .iter()
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    actions
}

/// The single order of the app (these tests place one unpaid order each).
async fn only_order(app: &TestApp, status: &str) -> Value {
    let page = expect_json(
        app.get(&format!("/api/v1/orders?status={status}")).await,
        StatusCode::OK,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one {status} order: {page}");
    app.read_order(items[0]["id"].as_str().unwrap()).await
}

/// Waits (bounded) until `check` holds, polling the real system.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a payment problem and returns the order it names as not placed.
async fn failed_order(
    app: &TestApp,
    response: reqwest::Response,
    status: StatusCode,
    kind: &str,
) -> Value {
    let problem = expect_problem(response, status).await;
    assert_eq!(
        problem["type"],
        format!("urn:brigade:problem:{kind}"),
        "{problem}"
    );
    assert!(
        problem["instance"]
            .as_str()
            .unwrap()
            .starts_with("urn:brigade:request:")
    );
    let order = only_order(app, "payment_failed").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(order["id"].as_str().unwrap()),
        "{problem}"
    );
    assert!(
        order["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled"),
        "{order}"
    );
    order
}

both_backends! {
    async fn approved_payments_are_captured_on_delivery_and_voided_on_cancel(app) {
        let (app, fake) = with_stripe(&app, |_| {}).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        let before = app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"approved\"}").await;
        let order = app.order(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]).await;
        assert_eq!(order["status"], "placed");
        let intent = &fake.live_intents()[0];
        assert_eq!(intent.amount, order["total_minor"].as_i64().unwrap());
        assert_eq!(intent.status, "requires_capture", "authorised, not yet charged");
        assert!(app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"approved\"}").await > before);

        // Delivered: the money moves.
        let accepted = expect_json(app.transition(&order, "accepted").await, StatusCode::OK).await;
        for ticket in accepted["tickets"].as_array().unwrap() {
            let id = ticket["id"].as_str().unwrap();
            expect_json(app.act(&format!("/api/v1/kitchen/tickets/{id}/claim")).await, StatusCode::OK).await;
            expect_json(app.act(&format!("/api/v1/kitchen/tickets/{id}/complete")).await, StatusCode::OK).await;
        }
        let ready = app.read_order(order["id"].as_str().unwrap()).await;
        let out = expect_json(app.transition(&ready, "out_for_delivery").await, StatusCode::OK).await;
        expect_json(app.transition(&out, "delivered").await, StatusCode::OK).await;
        assert_eq!(fake.calls(Endpoint::Capture), 1);
        assert_eq!(fake.intent(&intent.id).unwrap().status, "succeeded");
        assert_eq!(
            payment_actions(&app, order["id"].as_str().unwrap()).await,
            ["payment.authorized", "payment.capture_requested", "payment.captured"]
        );

        // Cancelled: the hold is released, nothing is charged.
        let second = app.order(Some(&fixture.shop_id()), &[(&fixture.bread, 1)]).await;
        expect_json(app.transition(&second, "cancelled").await, StatusCode::OK).await;
        assert_eq!(fake.calls(Endpoint::Cancel), 1);
        assert_eq!(fake.live_intents().len(), 1, "only the delivered order's payment is live");
        assert_eq!(
            payment_actions(&app, second["id"].as_str().unwrap()).await,
            ["payment.authorized", "payment.void_requested", "payment.voided"]
        );
    }

    async fn a_declined_payment_fails_the_order_and_says_so(app) {
        let (app, fake) = with_stripe(&app, |_| {}).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        fake.set_decline_code("insufficient_funds");
        fake.decline_next(1);
        let before = app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"declined\"}").await;
        let response = app.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)])).await;
        let order = failed_order(&app, response, StatusCode::PAYMENT_REQUIRED, "payment-declined").await;
        assert_eq!(order["history"][1]["status"], "payment_failed");
        assert!(fake.live_intents().is_empty(), "nothing held");
        assert!(app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"declined\"}").await > before);
        assert_eq!(payment_actions(&app, order["id"].as_str().unwrap()).await, ["payment.declined"]);
        let declined = app.audit("action=payment.declined").await;
        assert!(declined[0]["after"]["reason"].as_str().unwrap().contains("insufficient_funds"), "{declined:?}");
        // The kitchen never sees it.
        let queue = expect_json(app.get(&format!("/api/v1/kitchen/stations/{}/tickets", fixture.pizza_station)).await, StatusCode::OK).await;
        assert!(queue.as_array().unwrap().is_empty(), "{queue}");

        // The simulated provider declines too when told to.
        let simulated = app.replica_with(|s| s.payments.simulated.decline_ratio = 1.0).await;
        let response = simulated.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.bread, 1)])).await;
        expect_problem(response, StatusCode::PAYMENT_REQUIRED).await;
    }

    async fn a_provider_error_fails_the_order_and_releases_any_hold(app) {
        let (app, fake) = with_stripe(&app, |_| {}).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        // Every attempt of the authorisation fails (one try and one retry).
        fake.fail_next(2);
        let before = app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"error\"}").await;
        let response = app.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)])).await;
        let order = failed_order(&app, response, StatusCode::BAD_GATEWAY, "payment-failed").await;
        assert!(app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"error\"}").await > before);
        // A charge might have gone through unseen: it was looked up and released.
        assert_eq!(payment_actions(&app, order["id"].as_str().unwrap()).await, ["payment.failed", "payment.voided"]);
        assert!(fake.live_intents().is_empty(), "no hold left: {:?}", fake.intents());
    }

    async fn a_provider_timeout_fails_the_order_and_the_reconciler_releases_the_hold(app) {
        let (app, fake) = with_stripe(&app, |payments| {
            payments.timeout_ms = 300;
            payments.reconcile_after_secs = 1;
        }).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        fake.set_hang(true);
        let before = app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"timeout\"}").await;
        let started = Instant::now();
        let response = app.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)])).await;
        assert!(started.elapsed() < Duration::from_secs(5), "the timeout bounds the wait");
        let order = failed_order(&app, response, StatusCode::BAD_GATEWAY, "payment-failed").await;
        assert!(app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"timeout\"}").await > before);
        let id = order["id"].as_str().unwrap().to_owned();
        // The void hung too; once the provider is back, the reconciler finishes it.
        fake.set_hang(false);
        eventually("the reconciler voids the payment", || async {
            payment_actions(&app, &id).await.last().map(String::as_str) == Some("payment.voided")
        }).await;
        assert_eq!(payment_actions(&app, &id).await, ["payment.failed", "payment.voided"]);
        assert!(fake.live_intents().is_empty(), "no hold left: {:?}", fake.intents());
    }

    async fn an_open_circuit_answers_at_once_without_calling_the_provider(app) {
        let (app, fake) = with_stripe(&app, |payments| {
            payments.breaker_failures = 2;
            payments.breaker_open_ms = 60_000;
        }).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        fake.fail_next(1_000);
        // Failed authorisations (and the voids after them) open the breaker within a few orders.
        let mut orders = 0;
        loop {
            orders += 1;
            assert!(orders <= 3, "the breaker never opened");
            let response = app.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)])).await;
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            expect_problem(response, StatusCode::BAD_GATEWAY).await;
        }
        let calls = fake.total_calls();
        let before = app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"circuit_open\"}").await;
        let started = Instant::now();
        let response = app.post("/api/v1/orders", &order_body(Some(&fixture.shop_id()), &[(&fixture.bread, 1)])).await;
        let problem = expect_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(started.elapsed() < Duration::from_secs(1), "answered at once");
        assert_eq!(problem["type"], "urn:brigade:problem:payment-unavailable");
        assert_eq!(fake.total_calls(), calls, "the provider was not called");
        assert!(app.metric("brigade_payments_total{provider=\"stripe\",outcome=\"circuit_open\"}").await > before);
        orders += 1;
        let failed = app.audit("action=payment.failed").await;
        assert_eq!(failed.len(), orders);
        assert_eq!(failed[0]["after"]["status"], "failed", "nothing was attempted, nothing to release");
        assert!(failed[0]["after"]["reason"].as_str().unwrap().contains("circuit"), "{failed:?}");
    }

    async fn a_replay_of_a_failed_payment_gives_the_same_answer(app) {
        let (app, fake) = with_stripe(&app, |_| {}).await;
        let fixture = app.fixture("Mitte", 52.51, 13.40).await;
        fake.decline_next(1);
        let body = order_body(Some(&fixture.shop_id()), &[(&fixture.pizza, 1)]);
        let send = || app.client.post(app.url("/api/v1/orders")).header("idempotency-key", "pay-1").json(&body).send();
        let first = expect_problem(send().await.unwrap(), StatusCode::PAYMENT_REQUIRED).await;
        let again = send().await.unwrap();
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(expect_problem(again, StatusCode::PAYMENT_REQUIRED).await, first);
        assert_eq!(fake.calls(Endpoint::Create), 1, "the replay did not charge again");
    }
}
