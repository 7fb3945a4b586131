//! [`Payments`]: the provider behind the guards every call needs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brigade_core::config::{PaymentProviderKind, PaymentSettings};
use tracing::Instrument as _;

use crate::breaker::{Breaker, BreakerState};
use crate::outage::Switchable;
use crate::simulated::SimulatedProvider;
use crate::stripe::StripeProvider;
use crate::{Authorization, Charge, ConfigError, Outcome, PaymentError, PaymentProvider};

/// The counter of payment calls by provider and outcome.
pub const METRIC: &str = "brigade_payments_total";

/// The payment provider behind an overall timeout per operation, a circuit breaker, the
/// counter `brigade_payments_total{provider,outcome}` and a warning log line for every
/// decline or failure. Cheap to clone; clones share the breaker.
#[derive(Clone)]
pub struct Payments {
    provider: Arc<dyn PaymentProvider>,
    breaker: Breaker,
    timeout: Duration,
    /// The outage switch of [`Payments::set_outage`], shared with the wrapped provider.
    outage: Arc<AtomicBool>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("provider", &self.provider.name())
            .field("breaker", &self.breaker.state())
            .field("timeout", &self.timeout)
            .field("outage", &self.outage())
            .finish()
    }
}

impl Payments {
    /// The provider chosen by `payments.provider`, guarded as `settings` say.
    pub fn from_settings(settings: &PaymentSettings) -> Result<Self, ConfigError> {
        let provider: Arc<dyn PaymentProvider> = match settings.provider {
            PaymentProviderKind::Simulated => {
                Arc::new(SimulatedProvider::new(settings.simulated.clone()))
            }
            PaymentProviderKind::Stripe => Arc::new(StripeProvider::new(&settings.stripe)?),
        };
        Ok(Self::new(provider, settings))
    }

    /// Any provider (tests pass their own), guarded by `settings.timeout_ms`,
    /// `breaker_failures` and `breaker_open_ms`.
    pub fn new(provider: Arc<dyn PaymentProvider>, settings: &PaymentSettings) -> Self {
        let outage = Arc::new(AtomicBool::new(false));
        Self {
            provider: Arc::new(Switchable::new(provider, outage.clone())),
            breaker: Breaker::new(
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_open_ms),
            ),
            timeout: settings.timeout(),
            outage,
        }
    }

    /// Switches a simulated provider outage on or off (drills): while on, every call fails as
    /// [`PaymentError::Unavailable`] inside the guards, so the breaker opens as for a real one.
    /// Shared by all clones.
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::Relaxed);
    }

    /// Whether the outage switch is on.
    pub fn outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    /// `simulated` or `stripe`.
    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// What the breaker would do with the next call.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Authorises `charge`. `Ok(Declined)` is a definite refusal; an error means no definite
    /// answer (see [`PaymentError::may_have_charged`]).
    pub async fn authorize(&self, charge: &Charge) -> Result<Authorization, PaymentError> {
        let span = self.span("authorize", charge);
        let result = self
            .guarded(self.provider.authorize(charge))
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(Authorization::Approved { .. }) => Outcome::Approved,
            Ok(Authorization::Declined { reason }) => {
                tracing::warn!(
                    order_id = %charge.order_id,
                    payment_id = %charge.payment_id,
                    provider = self.provider_name(),
                    operation = "authorize",
                    outcome = Outcome::Declined.as_str(),
                    reason = %reason,
                    "payment declined"
                );
                Outcome::Declined
            }
            Err(error) => {
                self.warn_failure(charge, "authorize", error.outcome().as_str(), error);
                error.outcome()
            }
        };
        self.count(outcome.as_str());
        end_span(&span, outcome.as_str(), result.is_err());
        result
    }

    /// Captures an authorised payment (`reference` from [`Authorization::Approved`]).
    /// Idempotent.
    pub async fn capture(&self, charge: &Charge, reference: &str) -> Result<(), PaymentError> {
        let span = self.span("capture", charge);
        let result = self
            .guarded(self.provider.capture(charge, reference))
            .instrument(span.clone())
            .await;
        self.settle(charge, "capture", "captured", "capture_failed", &result);
        end_span(
            &span,
            if result.is_ok() {
                "captured"
            } else {
                "capture_failed"
            },
            result.is_err(),
        );
        result
    }

    /// Releases an authorisation; `reference` None when authorisation never answered.
    /// Idempotent.
    pub async fn void(&self, charge: &Charge, reference: Option<&str>) -> Result<(), PaymentError> {
        let span = self.span("void", charge);
        let result = self
            .guarded(self.provider.void(charge, reference))
            .instrument(span.clone())
            .await;
        self.settle(charge, "void", "voided", "void_failed", &result);
        end_span(
            &span,
            if result.is_ok() {
                "voided"
            } else {
                "void_failed"
            },
            result.is_err(),
        );
        result
    }

    /// A client span for one provider call when traces are exported (nothing otherwise: its
    /// fields would be repeated on every log line written inside it).
    fn span(&self, operation: &'static str, charge: &Charge) -> tracing::Span {
        if !brigade_core::traces::recording() {
            return tracing::Span::none();
        }
        tracing::info_span!(
            "payment",
            otel.name = %format_args!("payments {operation}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            payment.provider = self.provider_name(),
            payment.operation = operation,
            payment.id = %charge.payment_id,
            order.id = %charge.order_id,
            payment.outcome = tracing::field::Empty,
        )
    }

    /// Runs one provider call under the breaker and the overall timeout.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        let Some(permit) = self.breaker.try_acquire() else {
            return Err(PaymentError::CircuitOpen);
        };
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(PaymentError::Timeout));
        match &result {
            Ok(_) => permit.success(),
            Err(PaymentError::Unavailable { .. } | PaymentError::Timeout) => permit.failure(),
            // A provider that itself refused to call: no news about the provider.
            Err(PaymentError::CircuitOpen) => drop(permit),
        }
        result
    }

    fn settle(
        &self,
        charge: &Charge,
        operation: &'static str,
        ok: &'static str,
        failed: &'static str,
        result: &Result<(), PaymentError>,
    ) {
        match result {
            Ok(()) => self.count(ok),
            Err(error) => {
                self.warn_failure(charge, operation, failed, error);
                self.count(failed);
            }
        }
    }

    fn warn_failure(
        &self,
        charge: &Charge,
        operation: &'static str,
        outcome: &'static str,
        error: &PaymentError,
    ) {
        tracing::warn!(
            order_id = %charge.order_id,
            payment_id = %charge.payment_id,
            provider = self.provider_name(),
            operation,
            outcome,
            may_have_charged = error.may_have_charged(),
            reason = %error,
            "payment call failed"
        );
    }

    /// Every outcome label value of [`METRIC`]: authorisation outcomes, then settlement ones.
    pub const OUTCOMES: [&'static str; 9] = [
        "approved",
        "declined",
        "error",
        "timeout",
        "circuit_open",
        "captured",
        "capture_failed",
        "voided",
        "void_failed",
    ];

    /// Registers [`METRIC`] at zero for this provider and every outcome, so `increase()` and
    /// `rate()` count the first failed payment too (a series that appears with the value 1 has
    /// no earlier sample to increase from).
    pub fn register_metrics(&self) {
        for outcome in Self::OUTCOMES {
            metrics::counter!(METRIC, "provider" => self.provider_name(), "outcome" => outcome)
                .increment(0);
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(METRIC, "provider" => self.provider_name(), "outcome" => outcome)
            .increment(1);
    }
}

/// Records a provider call's outcome on its span, and an error status when it failed.
fn end_span(span: &tracing::Span, outcome: &str, failed: bool) {
    span.record("payment.outcome", outcome);
    if failed {
        span.record("otel.status_code", "ERROR");
    }
}
