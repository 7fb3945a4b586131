//! Rate limits at the edge: per-client token buckets per rule (`[[rate_limits]]`), answered
//! with 429 before a request costs a backend anything.
//!
//! Each rule matches a path prefix and methods; the first matching rule applies. Its buckets
//! are keyed by the client's address (from `X-Forwarded-For` only behind `trusted_proxies`,
//! see [`client_address`]; IPv6 clients by their /64, which one host can fill at will) or by a
//! request header, falling back to the address when the header is absent.
//!
//! The bucket is GCRA (the generic cell rate algorithm): one "theoretical arrival time" per
//! key, so a bucket is 16 bytes. Hand-written rather than the `governor` crate: governor's
//! keyed stores are unbounded until `retain_recent` sweeps them, so a flood of distinct keys
//! would grow memory between sweeps; bounding it would mean implementing governor's store
//! trait, leaving it only the few lines of GCRA arithmetic below. Here each rule's map is split
//! into shards with a fixed capacity: a full shard first drops buckets that have refilled
//! (they carry no state, so nothing is lost), then the bucket nearest to full.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::view::RequestView;

/// One `[[rate_limits]]` rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Names the rule in `RateLimit-Policy`, problem details and metrics.
    pub name: String,
    /// Path prefix the rule applies to; absent = every path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Methods the rule applies to; empty = every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Requests allowed per window (the long-run rate is `requests / per_seconds`).
    pub requests: u32,
    /// The window in seconds.
    pub per_seconds: u32,
    /// Requests a client may send at once after a quiet spell; default `requests`.
    #[serde(default)]
    pub burst: Option<u32>,
    /// What a bucket belongs to: the client address (default) or a header.
    #[serde(default)]
    pub key: LimitKey,
    /// Most clients tracked at once; beyond it, refilled buckets and then those nearest to full
    /// are forgotten (memory stays bounded under a flood of addresses).
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
}

fn default_max_clients() -> usize {
    100_000
}

/// What a rule's buckets are keyed by.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// The client address.
    #[default]
    Client,
    /// A header, e.g. `key = { header = "authorization" }`; requests without it are keyed by
    /// the client address.
    #[serde(untagged)]
    Header {
        /// The header name.
        header: String,
    },
}

impl RateLimitConfig {
    /// Checks the rule; `key` is its path in the file, e.g. `rate_limits[0]`.
    pub fn validate(&self, key: &str) -> Result<(), (String, String)> {
        let fail = |field: &str, message: &str| Err((format!("{key}.{field}"), message.to_owned()));
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return fail("name", "must be letters, digits, - or _");
        }
        if self
            .path_prefix
            .as_ref()
            .is_some_and(|p| !p.starts_with('/'))
        {
            return fail("path_prefix", "must start with /");
        }
        if self
            .methods
            .iter()
            .any(|m| Method::from_bytes(m.as_bytes()).is_err())
        {
            return fail("methods", "must be HTTP method names");
        }
        if self.requests == 0 {
            return fail("requests", "must be at least 1");
        }
        if self.per_seconds == 0 || self.per_seconds > 86_400 {
            return fail("per_seconds", "must be between 1 and 86400");
        }
        if self.burst == Some(0) {
            return fail("burst", "must be at least 1");
        }
        if let LimitKey::Header { header } = &self.key
            && HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return fail("key.header", "is not a valid header name");
        }
        if self.max_clients < SHARDS {
            return fail("max_clients", &format!("must be at least {SHARDS}"));
        }
        Ok(())
    }
}

/// Shards per rule: requests on different worker threads rarely wait for the same lock.
const SHARDS: usize = 16;

/// A compiled rule with its buckets.
#[derive(Debug)]
pub struct Rule {
    /// Its configuration.
    pub config: RateLimitConfig,
    methods: Vec<Method>,
    key_header: Option<HeaderName>,
    /// Nanoseconds between two requests at the long-run rate.
    interval_ns: u64,
    /// `burst × interval`: how far the arrival time may run ahead of now.
    capacity_ns: u64,
    burst: u32,
    per_shard: usize,
    hasher: RandomState,
    shards: [Mutex<HashMap<u64, u64>>; SHARDS],
    /// The `RateLimit-Policy` value, formatted once.
    pub policy: HeaderValue,
}

/// A request over its rule's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until the next request would pass (at least 1).
    pub retry_after_secs: u64,
}

/// A request a rule let through, with what its headers tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// Requests left in the bucket.
    pub remaining: u64,
    /// Whole seconds until the bucket is full again.
    pub reset_secs: u64,
}

impl Rule {
    /// Compiles a validated rule.
    pub fn new(config: RateLimitConfig) -> Self {
        let burst = config.burst.unwrap_or(config.requests);
        let interval_ns =
            (u64::from(config.per_seconds) * 1_000_000_000 / u64::from(config.requests)).max(1);
        // draft-ietf-httpapi-ratelimit-headers-11 §3: `RateLimit-Policy: "name";q=QUOTA;w=WINDOW`
        // (a Structured Field list; q is the quota per window of w seconds).
        let policy = HeaderValue::from_str(&format!(
            "\"{}\";q={};w={}",
            config.name, config.requests, config.per_seconds
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("\"limit\""));
        Self {
            methods: config
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            key_header: match &config.key {
                LimitKey::Client => None,
                LimitKey::Header { header } => HeaderName::from_bytes(header.as_bytes()).ok(),
            },
            interval_ns,
            capacity_ns: interval_ns.saturating_mul(u64::from(burst)),
            burst,
            per_shard: config.max_clients / SHARDS,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            policy,
            config,
        }
    }

    fn matches(&self, request: &impl RequestView) -> bool {
        self.config
            .path_prefix
            .as_ref()
            .is_none_or(|p| request.path().starts_with(p.as_str()))
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m.as_str() == request.method()))
    }

    /// The bucket key of a request: a hash of the header value or of the client address.
    fn key_of(&self, request: &impl RequestView, client: IpAddr) -> u64 {
        if let Some(value) = self
            .key_header
            .as_ref()
            .and_then(|h| request.header(h.as_str()))
        {
            return self.hasher.hash_one((1u8, value));
        }
        let client = match client {
            // One host gets a whole /64 and can rotate through it: key by the prefix.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())
            }
            other => other,
        };
        self.hasher.hash_one((0u8, client))
    }

    /// Takes one request from `key`'s bucket at `now_ns` (nanoseconds on the limiter's clock).
    pub fn take(&self, key: u64, now_ns: u64) -> Result<Allowed, Limited> {
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut buckets = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let arrival = buckets.get(&key).copied().unwrap_or(now_ns).max(now_ns);
        let next = arrival + self.interval_ns;
        let ahead = next - now_ns;
        if ahead > self.capacity_ns {
            let wait_ns = ahead - self.capacity_ns;
            return Err(Limited {
                retry_after_secs: wait_ns.div_ceil(1_000_000_000).max(1),
            });
        }
        if buckets.len() >= self.per_shard && !buckets.contains_key(&key) {
            make_room(&mut buckets, now_ns, self.per_shard);
        }
        buckets.insert(key, next);
        Ok(Allowed {
            remaining: ((self.capacity_ns - ahead) / self.interval_ns).min(u64::from(self.burst)),
            reset_secs: ahead.div_ceil(1_000_000_000),
        })
    }

    /// Buckets held (for tests and the memory bound).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |b| b.len()))
            .sum()
    }
}

/// Frees at least one slot in a full shard: buckets that have refilled go first (forgetting
/// them loses nothing), else the one nearest to full.
fn make_room(buckets: &mut HashMap<u64, u64>, now_ns: u64, limit: usize) {
    buckets.retain(|_, arrival| *arrival > now_ns);
    if buckets.len() < limit {
        return;
    }
    if let Some(oldest) = buckets
        .iter()
        .min_by_key(|(_, arrival)| **arrival)
        .map(|(key, _)| *key)
    {
        buckets.remove(&oldest);
    }
}

/// Every rule of a table and the addresses whose `X-Forwarded-For` is believed.
#[derive(Debug)]
pub struct Limiter {
    rules: Vec<Rule>,
    trusted: Vec<IpNet>,
    epoch: Instant,
}

/// What the limiter decided for a request.
#[derive(Debug)]
pub enum Decision<'a> {
    /// No rule applies.
    Unlimited,
    /// A rule let it through.
    Allowed(&'a Rule, Allowed),
    /// A rule refused it.
    Limited(&'a Rule, Limited),
}

impl Limiter {
    /// Compiles validated rules.
    pub fn new(rules: &[RateLimitConfig], trusted: &[IpNet]) -> Self {
        Self {
            rules: rules.iter().cloned().map(Rule::new).collect(),
            trusted: trusted.to_vec(),
            epoch: Instant::now(),
        }
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Applies the first rule matching the request, if any.
    pub fn check(&self, request: &impl RequestView, peer: IpAddr) -> Decision<'_> {
        let Some(rule) = self.rules.iter().find(|r| r.matches(request)) else {
            return Decision::Unlimited;
        };
        let client = client_address(peer, request, &self.trusted);
        let now_ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match rule.take(rule.key_of(request, client), now_ns) {
            Ok(allowed) => Decision::Allowed(rule, allowed),
            Err(limited) => Decision::Limited(rule, limited),
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then
/// `X-Forwarded-For` is walked from the right (the entry the nearest proxy appended), skipping
/// trusted hops, and the first untrusted address is the client. Entries left of it were written
/// by the client itself and are never believed. Loopback is not trusted unless configured.
pub fn client_address(peer: IpAddr, request: &impl RequestView, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let lines: Vec<&str> = request
        .header_values("x-forwarded-for")
        .filter(|v| v.iter().all(|b| *b == b'\t' || (b' '..=b'~').contains(b)))
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    return ip;
                }
            }
            // Garbage where an address should be: stop at the last hop known to be real.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(requests: u32, per_seconds: u32, burst: Option<u32>, max_clients: usize) -> Rule {
        Rule::new(RateLimitConfig {
            name: "t".into(),
            path_prefix: None,
            methods: Vec::new(),
            requests,
            per_seconds,
            burst,
            key: LimitKey::Client,
            max_clients,
        })
    }

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let rule = rule(10, 1, Some(3), 1000);
        let now = 5_000_000_000;
        let remaining: Vec<u64> = (0..3)
            .map(|_| rule.take(7, now).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        assert_eq!(
            rule.take(7, now),
            Err(Limited {
                retry_after_secs: 1
            })
        );
        // 100 ms later one more token has come in.
        assert!(rule.take(7, now + 100_000_000).is_ok());
        assert!(rule.take(7, now + 100_000_000).is_err());
        // Another client is not affected.
        assert!(rule.take(8, now).is_ok());
    }

    #[test]
    fn retry_after_counts_whole_seconds_of_a_slow_rule() {
        let rule = rule(1, 60, Some(1), 1000);
        assert!(rule.take(1, 0).is_ok());
        assert_eq!(
            rule.take(1, 1_000_000_000),
            Err(Limited {
                retry_after_secs: 59
            })
        );
    }

    #[test]
    fn buckets_stay_bounded_under_a_flood_of_clients() {
        let rule = rule(1, 60, Some(1), 160);
        for key in 0..100_000u64 {
            let _ = rule.take(key, 1_000);
        }
        assert!(rule.tracked() <= 160, "{}", rule.tracked());
    }

    fn parts_with(xff: &[&str]) -> http::request::Parts {
        let mut builder = http::Request::builder().uri("/");
        for value in xff {
            builder = builder.header("x-forwarded-for", *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_right_to_left() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = parts_with(&["6.6.6.6, 203.0.113.7, 10.1.1.1"]);
        // From an untrusted peer the header means nothing.
        assert_eq!(
            client_address(ip("198.51.100.1"), &spoofed, &trusted),
            ip("198.51.100.1")
        );
        // Loopback is not trusted by default.
        assert_eq!(
            client_address(ip("127.0.0.1"), &spoofed, &trusted),
            ip("127.0.0.1")
        );
        // Behind a trusted proxy: the first untrusted entry from the right, never the client's own.
        assert_eq!(
            client_address(ip("10.0.0.2"), &spoofed, &trusted),
            ip("203.0.113.7")
        );
        let split = parts_with(&["6.6.6.6", "203.0.113.7", "10.1.1.1"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &split, &trusted),
            ip("203.0.113.7")
        );
        let garbage = parts_with(&["203.0.113.7, nonsense, 10.1.1.1"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &garbage, &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &parts_with(&[]), &trusted),
            ip("10.0.0.2")
        );
    }
}
