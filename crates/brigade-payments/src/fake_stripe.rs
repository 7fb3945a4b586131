//! A local server speaking the few Stripe PaymentIntents endpoints brigade uses, with knobs
//! for the failures tests need (cargo feature `fake-stripe`).
//!
//! Tests of any crate run brigade's real Stripe client against it over loopback HTTP. Enable
//! it in that crate's `[dev-dependencies]`:
//! `brigade-payments = { workspace = true, features = ["fake-stripe"] }`. The server runs on
//! the tokio runtime that started it (one per `#[tokio::test]`), so every test gets its own
//! fake, port and state.
//!
//!
//! ```no_run
//! # async fn demo() {
//! use brigade_payments::fake_stripe::{Endpoint, FakeStripe};
//! use brigade_payments::Payments;
//!
//! let (fake, _base_url) = FakeStripe::start().await;
//! let payments = Payments::from_settings(&fake.payment_settings()).unwrap();
//! fake.decline_next(1); // the next create answers 402 card_declined
//! // ... place an order through brigade ...
//! assert_eq!(fake.calls(Endpoint::Create), 1);
//! assert!(fake.live_intents().is_empty());
//! # }
//! ```
//!
//! Endpoints (JSON bodies shaped like Stripe's; every request needs
//! `Authorization: Bearer <FakeStripe::SECRET_KEY>`, else 401):
//!
//! - `POST /v1/payment_intents`, form fields `amount`, `currency`, `capture_method=manual`,
//!   `confirm=true`, `payment_method`, `metadata[order_id]`, `metadata[payment_id]` (missing or
//!   wrong: 400 `invalid_request_error`). Creates an intent in `requires_capture`, or answers
//!   402 `card_error` when a decline knob says so.
//! - `POST /v1/payment_intents/{id}/capture`: `requires_capture` → `succeeded`.
//! - `POST /v1/payment_intents/{id}/cancel`: `requires_capture` → `canceled`.
//!   Capturing or cancelling in another status: 400 `payment_intent_unexpected_state`.
//! - `GET /v1/payment_intents/{id}`: the intent; unknown ids 404 `resource_missing`.
//!
//! Idempotency as Stripe does it: a POST repeating an `Idempotency-Key` gets the stored answer
//! of the first request (402s and 4xxs included) without acting again; the same key with a
//! different path or body gets 400 `idempotency_error`, and while a request with the key is
//! still being processed (e.g. delayed), another one with it gets 409 `idempotency_error`.
//! Injected 500s are not stored, so a retry after one is processed normally.
//!
//! Knobs, applied in this order to every request: it is counted ([`FakeStripe::calls`]), then
//! delayed ([`FakeStripe::set_delay`]), then left unanswered for ever if
//! [`FakeStripe::set_hang`] is on, then authenticated, then failed with 500 if
//! [`FakeStripe::fail_next`] has some left, then replayed or processed; finally, if
//! [`FakeStripe::drop_next`] has some left, the connection is closed instead of answering (the
//! request took effect, the answer is lost).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use brigade_core::config::{PaymentProviderKind, PaymentSettings, StripeSettings};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// The endpoints the fake serves, for [`FakeStripe::calls`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/payment_intents`.
    Create,
    /// `POST /v1/payment_intents/{id}/capture`.
    Capture,
    /// `POST /v1/payment_intents/{id}/cancel`.
    Cancel,
    /// `GET /v1/payment_intents/{id}`.
    Retrieve,
}

/// A PaymentIntent as the fake stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Intent {
    /// `pi_` + 24 alphanumerics.
    pub id: String,
    /// Always `payment_intent`.
    pub object: &'static str,
    /// Minor units.
    pub amount: i64,
    /// Lower-case ISO 4217, as Stripe returns it.
    pub currency: String,
    /// `requires_capture`, `succeeded` or `canceled`.
    pub status: String,
    /// Always `manual`.
    pub capture_method: String,
    /// The payment method charged.
    pub payment_method: String,
    /// Held and still capturable.
    pub amount_capturable: i64,
    /// Captured.
    pub amount_received: i64,
    /// `metadata[...]` form fields (brigade sends `order_id` and `payment_id`).
    pub metadata: BTreeMap<String, String>,
    /// The reason given to `/cancel`, once cancelled.
    pub cancellation_reason: Option<String>,
    /// Unix seconds.
    pub created: u64,
}

impl Intent {
    /// Whether money is held or taken (`requires_capture` or `succeeded`): what a test checks
    /// to prove nothing is left charged.
    pub fn is_live(&self) -> bool {
        self.status == "requires_capture" || self.status == "succeeded"
    }
}

#[derive(Debug)]
struct Stored {
    fingerprint: String,
    status: StatusCode,
    body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    intents: Vec<Intent>,
    idempotent: HashMap<String, Stored>,
    calls: HashMap<Endpoint, usize>,
    posts_without_key: usize,
    /// Idempotency keys of requests being processed (a concurrent one with the key gets 409).
    in_flight: HashSet<String>,
    decline_next: u32,
    decline_amounts: HashSet<i64>,
    decline_code: Option<String>,
    fail_next: u32,
    drop_next: u32,
    delay: Duration,
    hang: bool,
}

#[derive(Debug)]
struct Shared {
    secret_key: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is complete before the lock is released, so a poisoned lock (a
        // panicking test thread) still holds consistent state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Aborts the accept loop when the last [`FakeStripe`] handle goes.
#[derive(Debug)]
struct AcceptLoop(tokio::task::JoinHandle<()>);

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes the connection a request came on, instead of answering it.
#[derive(Clone)]
struct Hangup(Arc<Notify>);

/// Handle on a running fake Stripe server: knobs and observations. Cheap to clone; the server
/// stops when the last handle is dropped (or with the test's runtime).
#[derive(Clone, Debug)]
pub struct FakeStripe {
    shared: Arc<Shared>,
    base_url: String,
    _accept: Arc<AcceptLoop>,
}

impl FakeStripe {
    /// The secret key the fake accepts.
    pub const SECRET_KEY: &'static str = "sk_test_brigade_fake";

    /// Starts a fake on 127.0.0.1 with a free port; returns its handle and base URL (for
    /// `payments.stripe.base_url`). The server is listening when this returns.
    ///
    /// # Panics
    /// When no loopback port can be bound (a broken test machine, not a test failure to
    /// handle).
    pub async fn start() -> (FakeStripe, String) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake Stripe server");
        let base_url = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("local address of a bound socket")
        );
        let shared = Arc::new(Shared {
            secret_key: Self::SECRET_KEY.to_owned(),
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route("/v1/payment_intents", post(create))
            .route("/v1/payment_intents/{id}", get(retrieve))
            .route("/v1/payment_intents/{id}/{action}", post(act_on_intent))
            .with_state(shared.clone());
        let accept = tokio::spawn(accept_loop(listener, router));
        let fake = FakeStripe {
            shared,
            base_url: base_url.clone(),
            _accept: Arc::new(AcceptLoop(accept)),
        };
        (fake, base_url)
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stripe settings pointing at this fake: its URL and key, 1 s per attempt, 2 retries.
    pub fn stripe_settings(&self) -> StripeSettings {
        StripeSettings {
            base_url: self.base_url.clone(),
            secret_key: Self::SECRET_KEY.to_owned(),
            request_timeout_ms: 1_000,
            max_retries: 2,
        }
    }

    /// Payment settings with `provider = stripe` pointing at this fake (other fields default).
    pub fn payment_settings(&self) -> PaymentSettings {
        PaymentSettings {
            provider: PaymentProviderKind::Stripe,
            stripe: self.stripe_settings(),
            ..PaymentSettings::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// The next `n` creates are declined (HTTP 402, `card_declined` /
    /// [`FakeStripe::set_decline_code`]).
    pub fn decline_next(&self, n: u32) {
        self.lock().decline_next = n;
    }

    /// Every create for exactly this amount is declined, e.g. to decline one order of many.
    pub fn decline_amount(&self, amount_minor: i64) {
        self.lock().decline_amounts.insert(amount_minor);
    }

    /// The `decline_code` of injected declines (default `generic_decline`).
    pub fn set_decline_code(&self, code: &str) {
        self.lock().decline_code = Some(code.to_owned());
    }

    /// The next `n` requests (any endpoint) answer 500 without acting or being stored.
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// The next `n` requests (any endpoint) act, then their connection is closed without an
    /// answer: the charge is made and the answer lost.
    pub fn drop_next(&self, n: u32) {
        self.lock().drop_next = n;
    }

    /// Every request waits `delay` before anything else happens (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// While on, requests are counted and then never answered (for timeouts). Requests that
    /// arrived while on stay unanswered after it is turned off.
    pub fn set_hang(&self, hang: bool) {
        self.lock().hang = hang;
    }

    /// Requests received by `endpoint`, including failed, hung and replayed ones.
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.lock().calls.get(&endpoint).copied().unwrap_or(0)
    }

    /// Requests received by all endpoints.
    pub fn total_calls(&self) -> usize {
        self.lock().calls.values().sum()
    }

    /// POSTs that came without an `Idempotency-Key` header (brigade should send none).
    pub fn posts_without_idempotency_key(&self) -> usize {
        self.lock().posts_without_key
    }

    /// Every intent ever created, oldest first.
    pub fn intents(&self) -> Vec<Intent> {
        self.lock().intents.clone()
    }

    /// Intents holding or having taken money (`requires_capture` or `succeeded`).
    pub fn live_intents(&self) -> Vec<Intent> {
        self.lock()
            .intents
            .iter()
            .filter(|i| i.is_live())
            .cloned()
            .collect()
    }

    /// One intent by id.
    pub fn intent(&self, id: &str) -> Option<Intent> {
        self.lock().intents.iter().find(|i| i.id == id).cloned()
    }
}

async fn accept_loop(listener: TcpListener, router: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let hangup = Arc::new(Notify::new());
            let on_request = Hangup(hangup.clone());
            let service = hyper::service::service_fn(
                move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(on_request.clone());
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(router.oneshot(request).await.into_response()) }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection closes the socket with the answer unsent.
                () = hangup.notified() => {}
            }
        });
    }
}

/// What one request is, for the shared knob handling.
struct Call<'a> {
    endpoint: Endpoint,
    method: Method,
    path: String,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

/// Runs the knobs around `act`, which does the endpoint's work under the lock.
async fn handle(
    shared: &Shared,
    hangup: Hangup,
    call: Call<'_>,
    act: impl FnOnce(&mut Inner, &[u8]) -> (StatusCode, Value),
) -> Response {
    let key = (call.method == Method::POST)
        .then(|| call.headers.get("idempotency-key"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (delay, in_flight) = {
        let mut inner = shared.lock();
        *inner.calls.entry(call.endpoint).or_default() += 1;
        let in_flight = match key {
            Some(key) if inner.in_flight.contains(&key) => {
                let (status, body) = stripe_error(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "There is currently another in-progress request using this Idempotent Key.",
                );
                return (status, Json(body)).into_response();
            }
            Some(key) => {
                inner.in_flight.insert(key.clone());
                Some(InFlight { shared, key })
            }
            None => None,
        };
        (inner.delay, in_flight)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some((status, body)) = answer(shared, &call, act) else {
        return std::future::pending().await;
    };
    drop(in_flight);
    if take_drop(shared, status) {
        hangup.0.notify_one();
        return std::future::pending().await;
    }
    (status, Json(body)).into_response()
}

/// Marks an idempotency key as being processed until dropped (also when the client gave up
/// and the handler was cancelled).
struct InFlight<'a> {
    shared: &'a Shared,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.lock().in_flight.remove(&self.key);
    }
}

/// Whether to close this request's connection instead of answering (`drop_next`).
fn take_drop(shared: &Shared, status: StatusCode) -> bool {
    let mut inner = shared.lock();
    if inner.drop_next > 0 && status != StatusCode::UNAUTHORIZED {
        inner.drop_next -= 1;
        return true;
    }
    false
}

/// The answer to `call` after the hang, authentication, failure and idempotency knobs;
/// `None`: hang.
fn answer(
    shared: &Shared,
    call: &Call<'_>,
    act: impl FnOnce(&mut Inner, &[u8]) -> (StatusCode, Value),
) -> Option<(StatusCode, Value)> {
    let mut inner = shared.lock();
    if inner.hang {
        return None;
    }
    let header = |name: &str| call.headers.get(name).and_then(|v| v.to_str().ok());
    let authorised = header("authorization").and_then(|v| v.strip_prefix("Bearer "))
        == Some(shared.secret_key.as_str());
    if !authorised {
        return Some(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided.",
        ));
    }
    if inner.fail_next > 0 {
        inner.fail_next -= 1;
        return Some(stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "injected_failure",
            "Injected failure.",
        ));
    }
    if call.method != Method::POST {
        return Some(act(&mut inner, call.body));
    }
    let Some(key) = header("idempotency-key").map(str::to_owned) else {
        inner.posts_without_key += 1;
        return Some(act(&mut inner, call.body));
    };
    let fingerprint = format!("{} {}", call.path, String::from_utf8_lossy(call.body));
    if let Some(stored) = inner.idempotent.get(&key) {
        if stored.fingerprint == fingerprint {
            return Some((stored.status, stored.body.clone()));
        }
        return Some(stripe_error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            "idempotency_key_in_use",
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        ));
    }
    let (status, body) = act(&mut inner, call.body);
    inner.idempotent.insert(
        key,
        Stored {
            fingerprint,
            status,
            body: body.clone(),
        },
    );
    Some((status, body))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn new_intent_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("pi_{}", &hex[..24])
}

fn create_intent(inner: &mut Inner, body: &[u8]) -> (StatusCode, Value) {
    let fields = form(body);
    let missing = |name: &str| {
        stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_missing",
            &format!("Missing or invalid parameter: {name}."),
        )
    };
    let Some(amount) = fields
        .get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0)
    else {
        return missing("amount");
    };
    let currency = fields.get("currency").cloned().unwrap_or_default();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return missing("currency");
    }
    if fields.get("capture_method").map(String::as_str) != Some("manual") {
        return missing("capture_method");
    }
    if fields.get("confirm").map(String::as_str) != Some("true") {
        return missing("confirm");
    }
    let Some(payment_method) = fields.get("payment_method").cloned() else {
        return missing("payment_method");
    };
    let metadata: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect();
    for name in ["order_id", "payment_id"] {
        if !metadata.contains_key(name) {
            return missing(&format!("metadata[{name}]"));
        }
    }
    if inner.decline_next > 0 || inner.decline_amounts.contains(&amount) {
        inner.decline_next = inner.decline_next.saturating_sub(1);
        let code = inner
            .decline_code
            .clone()
            .unwrap_or_else(|| "generic_decline".to_owned());
        return (
            StatusCode::PAYMENT_REQUIRED,
            json!({"error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": code,
                "message": "Your card was declined.",
            }}),
        );
    }
    let intent = Intent {
        id: new_intent_id(),
        object: "payment_intent",
        amount,
        currency,
        status: "requires_capture".to_owned(),
        capture_method: "manual".to_owned(),
        payment_method,
        amount_capturable: amount,
        amount_received: 0,
        metadata,
        cancellation_reason: None,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let body = json!(intent);
    inner.intents.push(intent);
    (StatusCode::OK, body)
}

fn not_found(id: &str) -> (StatusCode, Value) {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "resource_missing",
        &format!("No such payment_intent: '{id}'"),
    )
}

/// Moves intent `id` from `requires_capture` to `to`.
fn transition(
    inner: &mut Inner,
    id: &str,
    to: &str,
    reason: Option<String>,
) -> (StatusCode, Value) {
    let Some(intent) = inner.intents.iter_mut().find(|i| i.id == id) else {
        return not_found(id);
    };
    if intent.status != "requires_capture" {
        let mut error = stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "payment_intent_unexpected_state",
            &format!(
                "This PaymentIntent's status is {}; it cannot become {to}.",
                intent.status
            ),
        );
        error.1["error"]["payment_intent"] = json!(intent);
        return error;
    }
    intent.status = to.to_owned();
    if to == "succeeded" {
        intent.amount_received = intent.amount;
    } else {
        intent.cancellation_reason = reason;
    }
    intent.amount_capturable = 0;
    (StatusCode::OK, json!(intent))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(hangup): Extension<Hangup>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call {
        endpoint: Endpoint::Create,
        method: Method::POST,
        path: "/v1/payment_intents".to_owned(),
        headers: &headers,
        body: &body,
    };
    handle(&shared, hangup, call, create_intent).await
}

/// `POST /v1/payment_intents/{id}/capture` and `.../cancel`.
async fn act_on_intent(
    State(shared): State<Arc<Shared>>,
    Extension(hangup): Extension<Hangup>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = match action.as_str() {
        "capture" => Endpoint::Capture,
        "cancel" => Endpoint::Cancel,
        _ => {
            let (status, body) = stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "url_invalid",
                "Unrecognized request URL.",
            );
            return (status, Json(body)).into_response();
        }
    };
    let call = Call {
        endpoint,
        method: Method::POST,
        path: format!("/v1/payment_intents/{id}/{action}"),
        headers: &headers,
        body: &body,
    };
    handle(&shared, hangup, call, |inner, body| match endpoint {
        Endpoint::Capture => transition(inner, &id, "succeeded", None),
        _ => {
            let reason = form(body).remove("cancellation_reason");
            transition(inner, &id, "canceled", reason)
        }
    })
    .await
}

async fn retrieve(
    State(shared): State<Arc<Shared>>,
    Extension(hangup): Extension<Hangup>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let call = Call {
        endpoint: Endpoint::Retrieve,
        method: Method::GET,
        path: format!("/v1/payment_intents/{id}"),
        headers: &headers,
        body: &[],
    };
    handle(&shared, hangup, call, |inner, _| {
        match inner.intents.iter().find(|i| i.id == id) {
            Some(intent) => (StatusCode::OK, json!(intent)),
            None => not_found(&id),
        }
    })
    .await
}
