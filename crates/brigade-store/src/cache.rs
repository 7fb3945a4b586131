//! The cache in front of the store: menus and shop load, shared through Redis when
//! `REDIS_URL` is set, in process memory otherwise.
//!
//! A cache is an optimisation, never a dependency: every Redis call is bounded by a short
//! timeout and any failure counts as a miss, and a circuit breaker (see `breaker`) skips Redis
//! altogether for a second after failures in a row, so a dead Redis costs one timeout per
//! second rather than one per request. It shows up in
//! `brigade_cache_requests_total{result="error"}` (and `result="skipped"` while the breaker is
//! open) and the logs — never as a failed request.

mod breaker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use brigade_core::config::CacheSettings;
use bytes::Bytes;

/// Counter of cache lookups by cache kind and result.
pub const CACHE_REQUESTS: &str = "brigade_cache_requests_total";

/// Registers help texts for the cache metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        CACHE_REQUESTS,
        "Cache lookups by cache kind (memory, redis) and result (hit, miss, error, skipped)."
    );
}

/// What a lookup can come to, as the `result` label of [`CACHE_REQUESTS`].
pub const CACHE_RESULTS: [&str; 4] = ["hit", "miss", "error", "skipped"];

/// Registers [`CACHE_REQUESTS`] at zero for the cache `kind` in use and every result, so
/// `rate()` and `increase()` count the first hit, miss or error.
pub fn register_at_zero(kind: &'static str) {
    for result in CACHE_RESULTS {
        metrics::counter!(CACHE_REQUESTS, "cache" => kind, "result" => result).increment(0);
    }
}

/// Why a cache could not be built (only a malformed Redis URL; an unreachable Redis is not an
/// error).
pub type CacheError = redis::RedisError;

/// A byte cache with per-entry time to live.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// `memory` or `redis`, for logs, metrics and readiness.
    fn kind(&self) -> &'static str;

    /// Whether the cache lives in this process (no network between the caller and it).
    fn in_process(&self) -> bool {
        false
    }

    /// The value, if present and not expired. Failures are misses.
    async fn get(&self, key: &str) -> Option<Bytes>;
    /// Stores a value. Failures are ignored (and counted).
    async fn set(&self, key: &str, value: Bytes, ttl: Duration);
    /// Removes a value, so the next read goes to the store.
    async fn delete(&self, key: &str);
    /// Whether the cache answers right now (readiness shows it; it never fails readiness).
    async fn healthy(&self) -> bool;
    /// Adds one to the counter `key`, which lives for `window` from its first increment, and
    /// returns the new count; `None` when the cache cannot answer.
    async fn increment(&self, key: &str, window: Duration) -> Option<u64>;
    /// The current count of `key` (0 when absent or expired); `None` when the cache cannot
    /// answer.
    async fn count(&self, key: &str) -> Option<u64>;
    /// Takes one back from the counter `key` (never below 0, never reviving an expired one);
    /// `None` when the cache cannot answer. A rate limit that reserves before it knows the
    /// outcome gives the place back this way.
    async fn decrement(&self, key: &str) -> Option<()>;
    /// Removes the counter `key`.
    async fn delete_counter(&self, key: &str) {
        self.delete(key).await;
    }
}

/// Builds the configured cache: Redis when `redis_url` is set, else in memory. Never fails on
/// an unreachable Redis: the connection is made lazily and retried in the background.
pub fn build(settings: &CacheSettings) -> Result<Arc<dyn Cache>, CacheError> {
    Ok(match &settings.redis_url {
        Some(url) => Arc::new(RedisCache::new(url, settings)?),
        None => Arc::new(MemoryCache::new(settings.max_entries)),
    })
}

/// Per-process cache (moka): each replica keeps its own copy.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::future::Cache<String, (Bytes, Instant)>,
    counters: moka::future::Cache<String, Arc<Counter>>,
    /// The hit and miss counters of `get`, made on the first lookup (when serving, so after
    /// the metrics recorder is installed) and kept: finding a counter by its labels on every
    /// read was 2 % of a cached menu read.
    lookups: std::sync::OnceLock<[metrics::Counter; 2]>,
}

/// A windowed counter of the memory cache.
struct Counter {
    count: AtomicU64,
    deadline: Instant,
}

impl MemoryCache {
    /// A cache holding at most `max_entries` values.
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(max_entries)
                // Entries carry their own deadline; this only bounds how long dead ones linger.
                .time_to_live(Duration::from_secs(600))
                .build(),
            counters: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            lookups: std::sync::OnceLock::new(),
        }
    }

    /// Counts a lookup as a hit or a miss.
    fn count_lookup(&self, hit: bool) {
        let [hits, misses] = self.lookups.get_or_init(|| {
            let counter =
                |result| metrics::counter!(CACHE_REQUESTS, "cache" => "memory", "result" => result);
            [counter("hit"), counter("miss")]
        });
        if hit { hits } else { misses }.increment(1);
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn in_process(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        let found = self
            .entries
            .get(key)
            .await
            .filter(|(_, deadline)| *deadline > Instant::now())
            .map(|(value, _)| value);
        self.count_lookup(found.is_some());
        found
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) {
        self.entries
            .insert(key.to_owned(), (value, Instant::now() + ttl))
            .await;
    }

    async fn delete(&self, key: &str) {
        self.entries.invalidate(key).await;
    }

    async fn healthy(&self) -> bool {
        true
    }

    async fn increment(&self, key: &str, window: Duration) -> Option<u64> {
        let now = Instant::now();
        let fresh = || async move {
            Arc::new(Counter {
                count: AtomicU64::new(0),
                deadline: now + window,
            })
        };
        let mut counter = self.counters.get_with(key.to_owned(), fresh()).await;
        if counter.deadline <= now {
            self.counters.invalidate(key).await;
            counter = self.counters.get_with(key.to_owned(), fresh()).await;
        }
        Some(counter.count.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn count(&self, key: &str) -> Option<u64> {
        Some(
            self.counters
                .get(key)
                .await
                .filter(|counter| counter.deadline > Instant::now())
                .map_or(0, |counter| counter.count.load(Ordering::SeqCst)),
        )
    }

    async fn decrement(&self, key: &str) -> Option<()> {
        if let Some(counter) = self.counters.get(key).await {
            let _ = counter
                .count
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
        Some(())
    }

    async fn delete_counter(&self, key: &str) {
        self.counters.invalidate(key).await;
    }
}

/// Redis-backed cache shared by every replica.
#[derive(Clone)]
pub struct RedisCache {
    connection: redis::aio::ConnectionManager,
    timeout: Duration,
    last_warning: Arc<AtomicU64>,
    breaker: Arc<breaker::Breaker>,
}

/// How long the breaker skips Redis once it opened: the most a dead Redis delays one request
/// in this interval is one `redis_timeout_ms`.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(1);

/// Keys are prefixed so brigade can share a Redis with other applications.
const KEY_PREFIX: &str = "brigade:cache:";

impl RedisCache {
    /// A cache on `url`; connects lazily, reconnects with backoff.
    pub fn new(url: &str, settings: &CacheSettings) -> Result<Self, redis::RedisError> {
        let timeout = Duration::from_millis(settings.redis_timeout_ms);
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            timeout,
            last_warning: Arc::new(AtomicU64::new(0)),
            breaker: Arc::new(breaker::Breaker::new(BREAKER_OPEN_FOR)),
        })
    }

    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Option<T> {
        let mut connection = self.connection.clone();
        self.guarded(async move { command.query_async::<T>(&mut connection).await })
            .await
    }

    /// Runs one Redis call behind the breaker and the timeout; `None` when it was skipped,
    /// failed or timed out.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let Some(attempt) = self.breaker.attempt() else {
            record(self.kind(), "skipped");
            return None;
        };
        let failure = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => {
                self.breaker.succeeded(attempt);
                return Some(value);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if self.breaker.failed(attempt) {
            tracing::warn!(
                error = failure,
                skip_ms = BREAKER_OPEN_FOR.as_millis() as u64,
                "redis cache failing; skipping it for a while"
            );
        }
        self.warn(&failure);
        None
    }

    /// Logs a failure at most every ten seconds, so a dead Redis cannot flood the logs.
    fn warn(&self, error: &str) {
        record(self.kind(), "error");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error, "redis cache unavailable; serving without cache");
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        let mut command = redis::cmd("GET");
        command.arg(format!("{KEY_PREFIX}{key}"));
        let value: Option<Vec<u8>> = self.run(command).await.flatten();
        if value.is_some() {
            record(self.kind(), "hit");
        } else {
            record(self.kind(), "miss");
        }
        value.map(Bytes::from)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) {
        let mut command = redis::cmd("SET");
        command
            .arg(format!("{KEY_PREFIX}{key}"))
            .arg(value.as_ref())
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let _: Option<()> = self.run(command).await;
    }

    async fn delete(&self, key: &str) {
        let mut command = redis::cmd("DEL");
        command.arg(format!("{KEY_PREFIX}{key}"));
        let _: Option<i64> = self.run(command).await;
    }

    async fn healthy(&self) -> bool {
        let pong: Option<String> = self.run(redis::cmd("PING")).await;
        pong.is_some()
    }

    async fn increment(&self, key: &str, window: Duration) -> Option<u64> {
        let key = format!("{KEY_PREFIX}{key}");
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        // SET NX gives a new counter its lifetime; INCR keeps it. One round trip.
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&key);
        let mut connection = self.connection.clone();
        self.guarded(async move { pipe.query_async::<(u64,)>(&mut connection).await })
            .await
            .map(|(count,)| count)
    }

    async fn count(&self, key: &str) -> Option<u64> {
        let mut command = redis::cmd("GET");
        command.arg(format!("{KEY_PREFIX}{key}"));
        let value: Option<Option<u64>> = self.run(command).await;
        value.map(Option::unwrap_or_default)
    }

    async fn decrement(&self, key: &str) -> Option<()> {
        // DECR alone would create a counter without expiry when the key is gone.
        let mut command = redis::cmd("EVAL");
        command
            .arg("if redis.call('GET', KEYS[1]) and tonumber(redis.call('GET', KEYS[1])) > 0 then return redis.call('DECR', KEYS[1]) end return 0")
            .arg(1)
            .arg(format!("{KEY_PREFIX}{key}"));
        let value: Option<i64> = self.run(command).await;
        value.map(|_| ())
    }
}

fn record(cache: &'static str, result: &'static str) {
    metrics::counter!(CACHE_REQUESTS, "cache" => cache, "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_entries_expire() {
        let cache = MemoryCache::new(10);
        cache
            .set("a", Bytes::from_static(b"1"), Duration::from_secs(60))
            .await;
        cache
            .set("b", Bytes::from_static(b"2"), Duration::ZERO)
            .await;
        assert_eq!(cache.get("a").await.as_deref(), Some(&b"1"[..]));
        assert_eq!(cache.get("b").await, None);
        cache.delete("a").await;
        assert_eq!(cache.get("a").await, None);
    }

    #[tokio::test]
    async fn memory_counters_count_within_their_window() {
        let cache = MemoryCache::new(10);
        assert_eq!(cache.count("c").await, Some(0));
        assert_eq!(cache.increment("c", Duration::from_secs(60)).await, Some(1));
        assert_eq!(cache.increment("c", Duration::from_secs(60)).await, Some(2));
        assert_eq!(cache.count("c").await, Some(2));
        assert_eq!(cache.increment("d", Duration::ZERO).await, Some(1));
        assert_eq!(
            cache.count("d").await,
            Some(0),
            "an expired window counts nothing"
        );
        assert_eq!(
            cache.increment("d", Duration::ZERO).await,
            Some(1),
            "and starts again"
        );
        cache.decrement("c").await;
        assert_eq!(cache.count("c").await, Some(1), "a place given back");
        cache.delete_counter("c").await;
        cache.decrement("c").await;
        assert_eq!(cache.count("c").await, Some(0), "never below zero");
    }

    #[tokio::test]
    async fn dead_redis_is_a_miss_not_an_error() {
        // Port 1 on loopback: nothing listens there, connections are refused at once.
        let settings = CacheSettings {
            redis_url: Some("redis://127.0.0.1:1".into()),
            ..CacheSettings::default()
        };
        let cache = build(&settings).expect("lazy client builds without connecting");
        assert_eq!(cache.kind(), "redis");
        cache
            .set("k", Bytes::from_static(b"v"), Duration::from_secs(5))
            .await;
        assert_eq!(cache.get("k").await, None);
        assert!(!cache.healthy().await);
    }

    #[tokio::test]
    async fn redis_round_trip_when_configured() {
        let Some(url) = crate::test_support::redis_url() else {
            return;
        };
        let settings = CacheSettings {
            redis_url: Some(url),
            ..CacheSettings::default()
        };
        let cache = build(&settings).unwrap();
        let key = format!("test-{}", uuid::Uuid::now_v7());
        cache
            .set(&key, Bytes::from_static(b"menu"), Duration::from_secs(5))
            .await;
        assert_eq!(cache.get(&key).await.as_deref(), Some(&b"menu"[..]));
        cache.delete(&key).await;
        assert_eq!(cache.get(&key).await, None);
        assert!(cache.healthy().await);
        assert_eq!(cache.count(&key).await, Some(0));
        assert_eq!(cache.increment(&key, Duration::from_secs(5)).await, Some(1));
        assert_eq!(cache.increment(&key, Duration::from_secs(5)).await, Some(2));
        assert_eq!(cache.count(&key).await, Some(2));
        // A reservation given back; never below zero, never reviving a deleted counter.
        assert_eq!(cache.decrement(&key).await, Some(()));
        assert_eq!(cache.count(&key).await, Some(1));
        cache.delete_counter(&key).await;
        assert_eq!(cache.decrement(&key).await, Some(()));
        assert_eq!(cache.count(&key).await, Some(0));
        cache.delete(&key).await;
    }
}
