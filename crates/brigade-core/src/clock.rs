//! Wall-clock time as the milliseconds since the Unix epoch that watch's samples and alerts
//! and the replicas' cache entries are stamped with.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
