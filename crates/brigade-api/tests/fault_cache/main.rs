//! The cache row of the resource fault matrix (see `fault_resources`): a private Redis killed
//! under load and started again. A test binary of its own, so that its capacity measurements
//! do not share the machine with the other faults' tests.

#[macro_use]
#[path = "../api/helpers.rs"]
#[allow(dead_code, unused_macros)]
mod helpers;

#[path = "../fault_resources/support.rs"]
#[allow(dead_code)]
mod support;

mod cache;
