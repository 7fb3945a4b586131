//! Payments for brigade's order placement.
//!
//! An order is charged in two steps: [`Payments::authorize`] before the order is acknowledged,
//! then [`Payments::capture`] when it completes or [`Payments::void`] when it is cancelled (or
//! when authorisation gave no definite answer). Each step goes through a [`PaymentProvider`]:
//!
//! - `simulated` ([`simulated::SimulatedProvider`]): in-process, no money moves; declines,
//!   errors and latency are configurable and drawn deterministically from a seed, for drills
//!   and tests.
//! - `stripe` ([`stripe::StripeProvider`]): Stripe's PaymentIntents HTTP API with manual
//!   capture, an idempotency key on every call, per-attempt timeouts and retries.
//!
//! [`Payments`] wraps the chosen provider in the guards every call needs: an overall timeout,
//! a circuit breaker ([`breaker`]), the counter `brigade_payments_total{provider,outcome}`
//! and a warning log line for every decline or failure, and an outage switch
//! ([`Payments::set_outage`]) that makes every call fail inside those guards, for drills.
//!
//! With the cargo feature `fake-stripe`, [`fake_stripe::FakeStripe`] is a local HTTP server
//! speaking the PaymentIntents endpoints brigade uses, with knobs for declines, errors,
//! latency and lost answers; tests of any crate can run the real Stripe client against it.

pub mod breaker;
#[cfg(feature = "fake-stripe")]
pub mod fake_stripe;
pub mod guard;
mod outage;
pub mod simulated;
pub mod stripe;

pub use breaker::BreakerState;
pub use guard::Payments;

use uuid::Uuid;

/// What to charge.
///
/// `payment_id` is stable for the life of the payment (brigade stores it with the order), so
/// every call about this payment carries the same idempotency keys and a retry, a replica
/// restart or the reconciler can never charge twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// brigade's id of this payment; the root of every idempotency key.
    pub payment_id: Uuid,
    /// The order being paid, sent to the provider as metadata and logged with every failure.
    pub order_id: Uuid,
    /// Amount in minor units of `currency` (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217 code, e.g. `"EUR"`.
    pub currency: String,
}

impl Charge {
    /// The idempotency key of one operation on this payment, e.g.
    /// `brigade-<payment_id>-authorize`. The same operation on the same payment always gets
    /// the same key, which is what makes retries safe.
    pub fn idempotency_key(&self, operation: &str) -> String {
        format!("brigade-{}-{operation}", self.payment_id)
    }
}

/// A definite answer to an authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The amount is held; `reference` identifies the hold at the provider (a Stripe
    /// PaymentIntent id `pi_...`, or `sim_<payment_id>`), needed to capture or void it.
    Approved {
        /// The provider's id of the authorisation.
        reference: String,
    },
    /// The provider refused the charge (e.g. `insufficient_funds`); nothing is held.
    Declined {
        /// The provider's reason, safe to log and to show the customer in general terms.
        reason: String,
    },
}

/// No definite answer from the provider.
///
/// `Unavailable` and `Timeout` mean the charge MAY exist at the provider (the request may have
/// arrived and only the answer got lost), so the caller must void it later; `CircuitOpen`
/// means no call was made at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider failed or answered something unusable (5xx after retries, connection
    /// errors, an unexpected 4xx).
    #[error("payment provider unavailable: {reason}")]
    Unavailable {
        /// What went wrong, safe to log (never contains the secret key).
        reason: String,
    },
    /// The operation took longer than `payments.timeout_ms`, retries included.
    #[error("payment provider timed out")]
    Timeout,
    /// The circuit breaker is open after repeated failures; the provider was not called.
    #[error("payment circuit breaker is open; provider not called")]
    CircuitOpen,
}

impl PaymentError {
    /// The metric/log outcome of this error.
    pub fn outcome(&self) -> Outcome {
        match self {
            PaymentError::Unavailable { .. } => Outcome::Error,
            PaymentError::Timeout => Outcome::Timeout,
            PaymentError::CircuitOpen => Outcome::CircuitOpen,
        }
    }

    /// Whether the provider may have acted on the call, so the caller must void (or check)
    /// later. False only when no call was made.
    pub fn may_have_charged(&self) -> bool {
        !matches!(self, PaymentError::CircuitOpen)
    }
}

/// How an authorisation ended, as counted in `brigade_payments_total{outcome}` and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Authorised.
    Approved,
    /// Refused by the provider.
    Declined,
    /// The provider failed ([`PaymentError::Unavailable`]).
    Error,
    /// No answer in time ([`PaymentError::Timeout`]).
    Timeout,
    /// Not attempted: the breaker is open ([`PaymentError::CircuitOpen`]).
    CircuitOpen,
}

impl Outcome {
    /// The label value: `approved`, `declined`, `error`, `timeout` or `circuit_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Declined => "declined",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::CircuitOpen => "circuit_open",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment provider: authorises, captures and voids charges.
///
/// Implementations make one attempt per call as far as the caller is concerned (retrying
/// internally is fine when idempotency keys make it safe); timeouts, the circuit breaker,
/// metrics and logging are added by [`Payments`], so implementations need not.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The provider's name as used in config and in the `provider` label: `simulated` or
    /// `stripe`.
    fn name(&self) -> &'static str;

    /// Holds `charge.amount_minor` on the customer's payment method.
    async fn authorize(&self, charge: &Charge) -> Result<Authorization, PaymentError>;

    /// Captures an authorised payment. Idempotent: capturing twice is fine.
    async fn capture(&self, charge: &Charge, reference: &str) -> Result<(), PaymentError>;

    /// Releases an authorisation. `reference` None: the authorise call never answered; find
    /// the payment by the authorise idempotency key (Stripe: repeat the create call with the
    /// same Idempotency-Key, which returns the same PaymentIntent if it exists, then cancel
    /// it; a decline on that repeat means there is nothing to void). Idempotent.
    async fn void(&self, charge: &Charge, reference: Option<&str>) -> Result<(), PaymentError>;
}

/// The payment settings cannot build a provider.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is missing or malformed; `key` is its path in the config file.
    #[error("{key}: {message}")]
    Invalid {
        /// The config key, e.g. `payments.stripe.secret_key`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}
