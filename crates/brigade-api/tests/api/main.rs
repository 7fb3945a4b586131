//! Integration tests of the ordering service: the real server on port 0, a fresh database per
//! test, real HTTP over loopback. Every test runs against SQLite, and against PostgreSQL when
//! `BRIGADE_TEST_POSTGRES_URL` is set (required when `CI=true`).

#[macro_use]
mod helpers;
#[path = "../../../../tests/support/promtool.rs"]
mod promtool;

mod accounts;
mod audit;
mod bad_input;
mod cache;
mod health;
mod kitchen;
mod orders;
mod pages;
mod payments;
mod reports;
mod roles;
mod shops;
