//! The fake Stripe server itself, over raw HTTP: what other crates' tests rely on.

use brigade_payments::fake_stripe::{Endpoint, FakeStripe};
use serde_json::Value;

fn create_form(payment: &str) -> Vec<(&'static str, String)> {
    vec![
        ("amount", "1000".to_owned()),
        ("currency", "eur".to_owned()),
        ("capture_method", "manual".to_owned()),
        ("confirm", "true".to_owned()),
        ("payment_method", "pm_card_visa".to_owned()),
        ("metadata[order_id]", "o1".to_owned()),
        ("metadata[payment_id]", payment.to_owned()),
    ]
}

async fn post(base: &str, path: &str, key: Option<&str>, form: &[(&str, String)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(FakeStripe::SECRET_KEY)
        .form(form);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn a_key_replays_the_first_answer_and_refuses_other_parameters() {
    let (fake, base) = FakeStripe::start().await;
    let (status, first) = post(&base, "/v1/payment_intents", Some("k1"), &create_form("p1")).await;
    assert_eq!(status, 200);
    assert_eq!(first["status"], "requires_capture");
    let (_, again) = post(&base, "/v1/payment_intents", Some("k1"), &create_form("p1")).await;
    assert_eq!(again, first);
    let (status, other) = post(&base, "/v1/payment_intents", Some("k1"), &create_form("p2")).await;
    assert_eq!(status, 400);
    assert_eq!(other["error"]["type"], "idempotency_error");
    assert_eq!(fake.intents().len(), 1);
    assert_eq!(fake.calls(Endpoint::Create), 3);
}

#[tokio::test]
async fn a_wrong_key_is_401_and_a_missing_field_is_400() {
    let (fake, base) = FakeStripe::start().await;
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/payment_intents"))
        .bearer_auth("sk_test_other")
        .form(&create_form("p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let mut form = create_form("p1");
    form.retain(|(k, _)| *k != "capture_method");
    let (status, body) = post(&base, "/v1/payment_intents", None, &form).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "parameter_missing");
    assert!(fake.intents().is_empty());
    assert_eq!(fake.posts_without_idempotency_key(), 1);
}

#[tokio::test]
async fn capture_and_cancel_move_the_status_once_and_retrieve_reads_it() {
    let (fake, base) = FakeStripe::start().await;
    let (_, intent) = post(&base, "/v1/payment_intents", None, &create_form("p1")).await;
    let id = intent["id"].as_str().unwrap().to_owned();
    let capture = format!("/v1/payment_intents/{id}/capture");
    let (status, captured) = post(&base, &capture, None, &[]).await;
    assert_eq!(
        (status, captured["status"].as_str()),
        (200, Some("succeeded"))
    );
    assert_eq!(captured["amount_received"], 1000);
    let (status, again) = post(&base, &capture, None, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"]["code"], "payment_intent_unexpected_state");
    let (status, _) = post(
        &base,
        &format!("/v1/payment_intents/{id}/cancel"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 400, "a captured intent cannot be cancelled");

    let response = reqwest::Client::new()
        .get(format!("{base}/v1/payment_intents/{id}"))
        .bearer_auth(FakeStripe::SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "succeeded");
    let (status, missing) = post(&base, "/v1/payment_intents/pi_nope/capture", None, &[]).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "resource_missing");
    assert_eq!(fake.live_intents().len(), 1);
    assert_eq!(fake.calls(Endpoint::Capture), 3);
    assert_eq!(fake.calls(Endpoint::Retrieve), 1);
}

#[tokio::test]
async fn declines_by_amount_and_injected_failures_are_not_stored() {
    let (fake, base) = FakeStripe::start().await;
    fake.decline_amount(1000);
    let (status, declined) =
        post(&base, "/v1/payment_intents", Some("k"), &create_form("p1")).await;
    assert_eq!(status, 402);
    assert_eq!(declined["error"]["type"], "card_error");
    assert_eq!(declined["error"]["decline_code"], "generic_decline");

    fake.fail_next(1);
    let (status, _) = post(&base, "/v1/payment_intents", Some("k2"), &create_form("p2")).await;
    assert_eq!(status, 500);
    let (status, _) = post(&base, "/v1/payment_intents", Some("k2"), &create_form("p2")).await;
    assert_eq!(
        status, 402,
        "the 500 was not stored; the retry was processed"
    );
    assert!(fake.intents().is_empty());
}
