//! The layout of `<data-dir>/up/error-groups.json`, apart from reading and writing it
//! (`saved`) and from the table it is made from (`groups`), which both use it.

use serde::{Deserialize, Serialize};

use crate::api::ErrorGroup;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SavedGroups {
    /// Format version.
    pub version: u32,
    /// Groups pushed out by the capacity so far.
    pub evicted: u64,
    /// Every group.
    pub groups: Vec<ErrorGroup>,
}

/// The format written now.
pub(super) const VERSION: u32 = 1;
