//! The resource fault matrix: each fault of a resource a replica depends on — a full disk, a
//! read-only data directory, a database refusing connections, a database server stopped and
//! started, a dead Redis — is met with 503 + `Retry-After` problem+json while it lasts (never
//! a 500), readiness says so (and why) while it lasts, the replica recovers by itself within
//! seconds after, and no order the client saw acknowledged is lost. The payment provider's row
//! is in `idempotency`: while it is down orders answer 503 `payment-unavailable` with
//! `Retry-After` and readiness stays 200 (the replica is well), and the same key succeeds once
//! it is back.
//!
//! Real disks (tmpfs, ext4 on a loop device), real PostgreSQL (the test database, and a
//! private cluster started for the test), a private `redis-server`, real HTTP. Faults that
//! need root (mounting) or binaries that are missing are skipped with a note. The dead Redis
//! is in `fault_cache`, a binary of its own (it measures capacity).

#[macro_use]
#[path = "../api/helpers.rs"]
#[allow(dead_code, unused_macros)]
mod helpers;

mod disk;
mod idempotency;
mod postgres;
mod support;
