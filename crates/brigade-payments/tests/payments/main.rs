//! Tests of brigade-payments: the Stripe client against the fake Stripe server over loopback
//! HTTP, the simulated provider, and the guards (breaker, timeout, metrics, logs).
//!
//! One test binary with modules, so the crate's tests link once.

mod fake;
mod guard;
mod helpers;
mod simulated;
mod stripe;
