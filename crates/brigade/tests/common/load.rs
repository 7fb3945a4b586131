//! Steady order traffic through a running `brigade up`, counting what did not succeed: the
//! load under which a kill, a rollout or a scale-up must cost no request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::{Running, Up, wait_until};

/// Requests sent by [`Load`] and how many did not succeed.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `threads` clients in a loop: a menu read, then an order with a fresh Idempotency-Key.
    pub fn start(up: &Up, threads: usize) -> Self {
        let token = up.log_in("customer@brigade.demo");
        let order = up.sample_order();
        let shop = order["shop_id"].as_str().unwrap().to_owned();
        let (stop, sent, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads = (0..threads)
            .map(|n| {
                let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
                let (menu_url, orders_url, token, order) = (
                    up.url(&format!("/api/v1/shops/{shop}/menu")),
                    up.url("/api/v1/orders"),
                    token.clone(),
                    order.clone(),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        sent.fetch_add(2, Ordering::Relaxed);
                        if !client
                            .get(&menu_url)
                            .send()
                            .is_ok_and(|r| r.status().is_success())
                        {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let placed = client
                            .post(&orders_url)
                            .bearer_auth(&token)
                            .header("idempotency-key", format!("load-{n}-{i}"))
                            .json(&order)
                            .send();
                        if !placed.is_ok_and(|r| r.status().is_success()) {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            sent,
            failed,
            threads,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests were sent, however slow the machine is: a check
    /// under load needs load on both sides of its fault, not a fixed time.
    pub fn run_for(&self, more: usize) {
        let target = self.sent() + more;
        wait_until(
            "the load to send more requests",
            Duration::from_secs(60),
            || self.sent() >= target,
        );
    }

    /// Stops the load; returns (sent, failed).
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
