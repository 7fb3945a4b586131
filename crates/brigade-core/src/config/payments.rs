//! `[payments]`: the provider that charges orders (simulated or Stripe) and its limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which payment provider charges orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProviderKind {
    /// In-process provider with configurable declines, errors and latency; no money moves.
    Simulated,
    /// Stripe's PaymentIntents API (or anything speaking it at `stripe.base_url`).
    Stripe,
}

/// Payment settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// The provider that authorises, captures and voids.
    pub provider: PaymentProviderKind,
    /// Longest one provider operation may take, retries included; past it the payment counts
    /// as timed out and the order as `payment_failed`.
    pub timeout_ms: u64,
    /// Consecutive provider failures (errors, timeouts) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker answers at once without calling the provider, before letting
    /// one trial call through.
    pub breaker_open_ms: u64,
    /// A payment still unsettled this long after it started (its replica died mid-call, or its
    /// answer could not be recorded) is given up by the background reconciler on any replica:
    /// its order ends `payment_failed` and any hold is released, since its client was never
    /// told the order was placed. A retry with the order's `Idempotency-Key` before then
    /// settles it instead.
    pub reconcile_after_secs: u64,
    /// The simulated provider.
    pub simulated: SimulatedPaymentSettings,
    /// The Stripe provider.
    pub stripe: StripeSettings,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            provider: PaymentProviderKind::Simulated,
            timeout_ms: 5_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            reconcile_after_secs: 30,
            simulated: SimulatedPaymentSettings::default(),
            stripe: StripeSettings::default(),
        }
    }
}

impl PaymentSettings {
    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The simulated provider: outcomes drawn from the payment's idempotency key and `seed`, so the
/// same payment always gets the same answer (as from a real provider) and drills repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedPaymentSettings {
    /// Share of authorisations declined (0.0–1.0).
    pub decline_ratio: f64,
    /// Share of calls that fail as a provider error (0.0–1.0).
    pub error_ratio: f64,
    /// Delay added to every call.
    pub latency_ms: u64,
    /// Seed of the outcome draw.
    pub seed: u64,
}

impl Default for SimulatedPaymentSettings {
    fn default() -> Self {
        Self {
            decline_ratio: 0.0,
            error_ratio: 0.0,
            latency_ms: 0,
            seed: 0,
        }
    }
}

/// Stripe settings. The secret key is never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    /// API base URL; a local server speaking the same endpoints works for tests and drills.
    pub base_url: String,
    /// Secret API key (`sk_...`).
    pub secret_key: String,
    /// Timeout of one HTTP attempt.
    pub request_timeout_ms: u64,
    /// Retries of a call that failed without an answer or with a 5xx/429 (every call carries
    /// an idempotency key, so a retry never charges twice).
    pub max_retries: u32,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.stripe.com".to_owned(),
            secret_key: String::new(),
            request_timeout_ms: 2_000,
            max_retries: 2,
        }
    }
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("base_url", &self.base_url)
            .field("secret_key", &"***")
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}
