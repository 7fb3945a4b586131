//! Log-in and sign-up rate limits.
//!
//! Every attempt *reserves* its place before any password is hashed: the counter is
//! incremented first and the attempt goes on only if the new count is within the limit. An
//! increment is atomic (Redis `INCR`, an atomic add in memory), so parallel attempts cannot all
//! read "4 of 5" and all go on; exactly the configured number are checked and the rest get 429.
//! A successful log-in gives its reservation back.
//!
//! Three log-in limits, checked in this order (a refused attempt touches none after it):
//!
//! 1. per client address, any accounts (`max_failures_per_address`): one address cannot guess
//!    across many accounts;
//! 2. per account *and* address (`max_failures_per_account`): a stranger guessing one account
//!    locks out only their own address, never the owner logging in from elsewhere;
//! 3. per account from all addresses (`max_failures_per_account_total`, a longer window): the
//!    slow ceiling against guessing spread over many addresses. Reaching it does lock the
//!    account for everyone until its window passes — the price of bounding distributed
//!    guessing, set high enough that only a large botnet can pay it.
//!
//! Counted in the shared cache (Redis when configured, so every replica sees every attempt);
//! when Redis cannot answer, this process's own counters take over, so an outage weakens the
//! limits to one replica's view instead of removing them.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use brigade_core::config::AuthSettings;
use brigade_store::cache::{Cache, MemoryCache};

/// The log-in and sign-up limits.
pub struct LoginLimiter {
    shared: Arc<dyn Cache>,
    /// Made on the first failure of `shared` (only Redis fails), so a replica that never needs
    /// it never pays its memory.
    local: OnceLock<MemoryCache>,
    address: Limit,
    account_address: Limit,
    account: Limit,
    signup: Limit,
}

/// A number of attempts per window.
#[derive(Debug, Clone, Copy)]
struct Limit {
    most: u64,
    window: Duration,
}

/// A log-in attempt allowed to check its password. Hand it to [`LoginLimiter::succeeded`] when
/// the password matched; drop it when it did not (the attempt stays counted as a failure).
#[must_use = "a successful log-in must give its reservation back"]
pub struct Reservation {
    keys: [String; 3],
}

/// Why an attempt was refused: wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Duration);

impl LoginLimiter {
    /// A limiter counting in `shared`.
    pub fn new(shared: Arc<dyn Cache>, settings: &AuthSettings) -> Self {
        let login_window = Duration::from_secs(settings.login_window_secs);
        Self {
            shared,
            local: OnceLock::new(),
            address: Limit {
                most: settings.max_failures_per_address,
                window: login_window,
            },
            account_address: Limit {
                most: settings.max_failures_per_account,
                window: login_window,
            },
            account: Limit {
                most: settings.max_failures_per_account_total,
                window: Duration::from_secs(settings.account_window_secs),
            },
            signup: Limit {
                most: settings.max_signups_per_address,
                window: Duration::from_secs(settings.signup_window_secs),
            },
        }
    }

    /// Reserves a log-in attempt for `email` from `address`, or says how long to wait.
    pub async fn reserve_login(
        &self,
        email: &str,
        address: IpAddr,
    ) -> Result<Reservation, Refused> {
        let keys = [
            format!("login:address:{address}"),
            format!("login:account-address:{email}|{address}"),
            format!("login:account:{email}"),
        ];
        let limits = [self.address, self.account_address, self.account];
        for (key, limit) in keys.iter().zip(limits) {
            if self.bump(key, limit.window).await > limit.most {
                return Err(Refused(limit.window));
            }
        }
        Ok(Reservation { keys })
    }

    /// A log-in succeeded: its attempt was no failure, and the owner's earlier failures from
    /// this address are forgiven.
    pub async fn succeeded(&self, reservation: Reservation) {
        let [address, account_address, account] = reservation.keys;
        self.forget(&account_address).await;
        for key in [address, account] {
            if self.shared.decrement(&key).await.is_none()
                && let Some(local) = self.local.get()
            {
                local.decrement(&key).await;
            }
        }
    }

    /// Counts a sign-up from `address`, or says how long to wait.
    pub async fn reserve_signup(&self, address: IpAddr) -> Result<(), Refused> {
        let key = format!("signup:address:{address}");
        if self.bump(&key, self.signup.window).await > self.signup.most {
            return Err(Refused(self.signup.window));
        }
        Ok(())
    }

    fn local(&self) -> &MemoryCache {
        self.local.get_or_init(|| MemoryCache::new(100_000))
    }

    /// Increments a counter and returns its new value (atomic in either cache).
    async fn bump(&self, key: &str, window: Duration) -> u64 {
        match self.shared.increment(key, window).await {
            Some(count) => count,
            None => self
                .local()
                .increment(key, window)
                .await
                .unwrap_or(u64::MAX),
        }
    }

    async fn forget(&self, key: &str) {
        self.shared.delete_counter(key).await;
        if let Some(local) = self.local.get() {
            local.delete_counter(key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_pair: u64, per_address: u64, per_account: u64) -> LoginLimiter {
        let settings = AuthSettings {
            max_failures_per_account: per_pair,
            max_failures_per_address: per_address,
            max_failures_per_account_total: per_account,
            ..AuthSettings::default()
        };
        LoginLimiter::new(Arc::new(MemoryCache::new(1000)), &settings)
    }

    #[tokio::test]
    async fn a_stranger_does_not_lock_the_owner_out() {
        let limiter = limiter(3, 50, 100);
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..3 {
            drop(
                limiter
                    .reserve_login("ann@example.org", stranger)
                    .await
                    .unwrap(),
            );
        }
        assert!(
            limiter
                .reserve_login("ann@example.org", stranger)
                .await
                .is_err()
        );
        let reservation = limiter
            .reserve_login("ann@example.org", owner)
            .await
            .unwrap();
        limiter.succeeded(reservation).await;
    }

    #[tokio::test]
    async fn the_account_ceiling_holds_across_addresses() {
        let limiter = limiter(3, 50, 4);
        for n in 0..4 {
            let address: IpAddr = format!("203.0.113.{n}").parse().unwrap();
            drop(
                limiter
                    .reserve_login("bob@example.org", address)
                    .await
                    .unwrap(),
            );
        }
        let fresh: IpAddr = "203.0.113.200".parse().unwrap();
        assert!(
            limiter
                .reserve_login("bob@example.org", fresh)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn successes_give_their_place_back() {
        let limiter = limiter(3, 3, 3);
        let address: IpAddr = "203.0.113.1".parse().unwrap();
        for _ in 0..10 {
            let reservation = limiter
                .reserve_login("cy@example.org", address)
                .await
                .unwrap();
            limiter.succeeded(reservation).await;
        }
    }
}
