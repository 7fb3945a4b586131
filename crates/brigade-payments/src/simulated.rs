//! The simulated provider: no money moves, outcomes are drawn from a seed.
//!
//! Drills and tests need declines, provider errors and latency on demand, and need them
//! repeatable. Authorisation outcomes are drawn from a hash of (seed, payment id), so the same
//! payment always gets the same answer, as a real provider answers a repeated idempotency key.
//! Capture and void errors are drawn per call (from seed, payment id, operation and a call
//! counter), so a retried capture eventually succeeds instead of failing forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use brigade_core::config::SimulatedPaymentSettings;
use sha2::{Digest, Sha256};

use crate::{Authorization, Charge, PaymentError, PaymentProvider};

/// The reason given for a simulated decline.
pub const DECLINE_REASON: &str = "simulated_decline";

/// In-process provider with configurable decline ratio, error ratio and latency.
#[derive(Debug)]
pub struct SimulatedProvider {
    settings: SimulatedPaymentSettings,
    calls: AtomicU64,
}

impl SimulatedProvider {
    /// A provider drawing outcomes as `settings` say.
    pub fn new(settings: SimulatedPaymentSettings) -> Self {
        Self {
            settings,
            calls: AtomicU64::new(0),
        }
    }

    /// A uniform draw in [0, 1) from the seed, the payment and a purpose; the same inputs
    /// always give the same draw (SHA-256, so it does not change between Rust releases).
    fn draw(&self, charge: &Charge, purpose: &str, nonce: u64) -> f64 {
        let mut hasher = Sha256::new();
        hasher.update(self.settings.seed.to_le_bytes());
        hasher.update(charge.payment_id.as_bytes());
        hasher.update(purpose.as_bytes());
        hasher.update(nonce.to_le_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The top 53 bits fill an f64 mantissa exactly.
        (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn latency(&self) {
        if self.settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.settings.latency_ms)).await;
        }
    }

    fn settle_call(&self, charge: &Charge, operation: &str) -> Result<(), PaymentError> {
        let nonce = self.calls.fetch_add(1, Ordering::Relaxed);
        if self.draw(charge, operation, nonce) < self.settings.error_ratio {
            return Err(PaymentError::Unavailable {
                reason: format!("simulated provider error on {operation}"),
            });
        }
        Ok(())
    }

    /// The reference of an approved simulated payment.
    pub fn reference(charge: &Charge) -> String {
        format!("sim_{}", charge.payment_id)
    }
}

#[async_trait::async_trait]
impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn authorize(&self, charge: &Charge) -> Result<Authorization, PaymentError> {
        self.latency().await;
        if self.draw(charge, "authorize-error", 0) < self.settings.error_ratio {
            return Err(PaymentError::Unavailable {
                reason: "simulated provider error on authorize".to_owned(),
            });
        }
        if self.draw(charge, "authorize-decline", 0) < self.settings.decline_ratio {
            return Ok(Authorization::Declined {
                reason: DECLINE_REASON.to_owned(),
            });
        }
        Ok(Authorization::Approved {
            reference: Self::reference(charge),
        })
    }

    async fn capture(&self, charge: &Charge, _reference: &str) -> Result<(), PaymentError> {
        self.latency().await;
        self.settle_call(charge, "capture")
    }

    async fn void(&self, charge: &Charge, _reference: Option<&str>) -> Result<(), PaymentError> {
        self.latency().await;
        self.settle_call(charge, "void")
    }
}
