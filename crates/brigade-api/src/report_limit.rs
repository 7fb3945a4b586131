//! The rate limit of browser error reports (`POST /api/v1/client-errors`): a token bucket per
//! client address, in this process.
//!
//! Why a token bucket: a page that breaks reports a burst (its script's own limit is 10 per page
//! load), then nothing; a bucket lets such a burst through whole and still caps a client that
//! keeps sending at the refill rate. Why per process and not in the shared cache like the
//! log-in limits: a report costs one log line, not a password hash, and losing a few reports
//! while Redis is down is fine — so there is no round trip to Redis on this path. With N
//! replicas a client gets N buckets, which is still a bound.
//!
//! The table of buckets is bounded ([`MAX_CLIENTS`]): when it is full, buckets that have
//! refilled completely (their client went quiet) are dropped first; if none has, the table is
//! cleared — at worst, clients flooding from more addresses than that get fresh buckets, which
//! is no more than they could get with that many addresses anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Reports a client may send at once.
pub const BURST: f64 = 20.0;
/// Reports per second a client regains.
pub const REFILL_PER_SEC: f64 = 1.0;
/// Clients tracked at most.
pub const MAX_CLIENTS: usize = 10_000;

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket refilled up to `now`.
    fn refilled(self, now: Instant) -> Self {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * REFILL_PER_SEC;
        Self {
            tokens: (self.tokens + gained).min(BURST),
            at: now,
        }
    }
}

/// The buckets of every client seen recently.
#[derive(Debug, Default)]
pub struct ReportLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ReportLimiter {
    /// Takes a token for `client` at `now`, or says how long until one is there.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            buckets.retain(|_, bucket| bucket.refilled(now).tokens < BURST);
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets
            .entry(client)
            .or_insert(Bucket {
                tokens: BURST,
                at: now,
            })
            .refilled(now);
        if bucket.tokens >= 1.0 {
            buckets.insert(
                client,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    at: now,
                },
            );
            Ok(())
        } else {
            buckets.insert(client, bucket);
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / REFILL_PER_SEC,
            ))
        }
    }

    /// Clients tracked now.
    pub fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_burst_passes_then_the_refill_rate_holds() {
        let limiter = ReportLimiter::default();
        let start = Instant::now();
        for _ in 0..BURST as usize {
            limiter.take(ip(1), start).unwrap();
        }
        let wait = limiter.take(ip(1), start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        limiter
            .take(ip(2), start)
            .expect("another client has its own bucket");
        let later = start + Duration::from_secs(1);
        limiter.take(ip(1), later).expect("one token regained");
        assert!(limiter.take(ip(1), later).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = ReportLimiter::default();
        let now = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 50) {
            limiter.take(ip(n), now).unwrap();
        }
        assert!(limiter.clients() <= MAX_CLIENTS);
        // Quiet clients are the ones dropped.
        let much_later = now + Duration::from_secs(60);
        limiter.take(ip(u32::MAX), much_later).unwrap();
        assert!(limiter.clients() <= MAX_CLIENTS);
    }
}
