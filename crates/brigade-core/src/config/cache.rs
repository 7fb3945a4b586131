//! `[cache]`: the shared cache (Redis) or each process's own in-memory one.

use serde::{Deserialize, Serialize};

/// Cache settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Redis URL for a cache shared by all replicas; without it each process caches in memory.
    /// Also read from `REDIS_URL`.
    pub redis_url: Option<String>,
    /// How long a menu stays cached. Writes through this process invalidate at once; other
    /// processes with an in-memory cache may serve the old menu for up to this long.
    pub menu_ttl_ms: u64,
    /// How long a shop's kitchen load (used for ETAs) stays cached.
    pub load_ttl_ms: u64,
    /// Longest wait for Redis before treating the cache as a miss, so a slow or dead Redis
    /// costs milliseconds, never an error.
    pub redis_timeout_ms: u64,
    /// Most entries the in-memory cache holds.
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            menu_ttl_ms: 10_000,
            load_ttl_ms: 1_000,
            redis_timeout_ms: 100,
            max_entries: 10_000,
        }
    }
}
