//! The outage switch: while on, the provider behind [`crate::Payments`] fails every call.
//!
//! Drills need a payment outage on demand, with any provider, that looks to brigade exactly
//! like a real one: every call ends in [`PaymentError::Unavailable`] *inside* the guards, so the
//! circuit breaker counts the failures and opens, the metric counts them, and checkout takes
//! the same paths (release the possible hold, answer 502/503) as when Stripe is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Authorization, Charge, PaymentError, PaymentProvider};

/// A provider wrapped in an outage switch shared with [`crate::Payments`].
pub(crate) struct Switchable {
    inner: Arc<dyn PaymentProvider>,
    outage: Arc<AtomicBool>,
}

impl Switchable {
    /// Wraps `inner`; `outage` is the switch (off: calls go to `inner` unchanged).
    pub(crate) fn new(inner: Arc<dyn PaymentProvider>, outage: Arc<AtomicBool>) -> Self {
        Self { inner, outage }
    }

    fn check(&self, operation: &str) -> Result<(), PaymentError> {
        if self.outage.load(Ordering::Relaxed) {
            return Err(PaymentError::Unavailable {
                reason: format!("provider outage switched on (drill) on {operation}"),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Switchable {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn authorize(&self, charge: &Charge) -> Result<Authorization, PaymentError> {
        self.check("authorize")?;
        self.inner.authorize(charge).await
    }

    async fn capture(&self, charge: &Charge, reference: &str) -> Result<(), PaymentError> {
        self.check("capture")?;
        self.inner.capture(charge, reference).await
    }

    async fn void(&self, charge: &Charge, reference: Option<&str>) -> Result<(), PaymentError> {
        self.check("void")?;
        self.inner.void(charge, reference).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use brigade_core::config::PaymentSettings;

    use crate::simulated::SimulatedProvider;
    use crate::{BreakerState, Payments};

    use super::*;

    fn charge() -> Charge {
        Charge {
            payment_id: uuid::Uuid::now_v7(),
            order_id: uuid::Uuid::now_v7(),
            amount_minor: 1200,
            currency: "EUR".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_fails_calls_inside_the_guards_so_the_breaker_opens_and_closes_after() {
        let settings = PaymentSettings {
            breaker_failures: 2,
            breaker_open_ms: 1_000,
            ..PaymentSettings::default()
        };
        let provider = Arc::new(SimulatedProvider::new(settings.simulated.clone()));
        let payments = Payments::new(provider, &settings);
        assert_eq!(payments.provider_name(), "simulated");
        payments.set_outage(true);
        assert!(payments.clone().outage(), "clones share the switch");
        for _ in 0..2 {
            assert!(matches!(
                payments.authorize(&charge()).await,
                Err(PaymentError::Unavailable { .. })
            ));
        }
        assert_eq!(payments.breaker_state(), BreakerState::Open);
        assert_eq!(
            payments.void(&charge(), None).await,
            Err(PaymentError::CircuitOpen)
        );

        payments.set_outage(false);
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(matches!(
            payments.authorize(&charge()).await,
            Ok(Authorization::Approved { .. })
        ));
        assert_eq!(payments.breaker_state(), BreakerState::Closed);
    }
}
