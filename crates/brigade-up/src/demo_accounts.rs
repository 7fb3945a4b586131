//! `<data-dir>/demo-accounts.json`: the demo accounts and their passwords, written by
//! `brigade demo-data` (and `--reset-passwords`) and read by `brigade up`'s off-peak jobs and
//! `brigade drill` when no password is given.
//!
//! Like Jenkins' `initialAdminPassword`: the file is readable only by its owner (mode 0600),
//! and whoever can read the data directory can read the database in it anyway. The type below is
//! the file's only definition; the writer and every reader use it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "demo-accounts.json";

/// One demo account as the file stores it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoAccountEntry {
    /// `admin`, `staff`, `courier` or `customer`.
    pub role: String,
    /// Login e-mail address.
    pub email: String,
    /// Its password, in clear: the point of the file.
    pub password: String,
}

impl std::fmt::Debug for DemoAccountEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAccountEntry")
            .field("role", &self.role)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DemoAccountsError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a list of `{role, email, password}`.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Where the file of `data_dir` is.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The accounts in the file; none when it does not exist.
pub fn read(data_dir: &Path) -> Result<Vec<DemoAccountEntry>, DemoAccountsError> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DemoAccountsError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| DemoAccountsError::Parse { path, source })
}

/// The password of the account `email` in the file, if it is there.
pub fn password_of(data_dir: &Path, email: &str) -> Option<String> {
    read(data_dir)
        .ok()?
        .into_iter()
        .find(|account| account.email == email)
        .map(|account| account.password)
}

/// Records `accounts` in the file: each replaces the entry with its e-mail address, the others
/// stay. Written whole to a temporary file (mode 0600) and renamed over the old one, so a
/// reader never sees half a file.
pub fn record(data_dir: &Path, accounts: &[DemoAccountEntry]) -> Result<(), DemoAccountsError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let mut all = read(data_dir)?;
    for account in accounts {
        all.retain(|known| known.email != account.email);
        all.push(account.clone());
    }
    let path = path(data_dir);
    let temporary = data_dir.join(format!(".{FILE_NAME}.tmp"));
    let io = |source| DemoAccountsError::Io {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_string_pretty(&all).map_err(|source| DemoAccountsError::Parse {
        path: path.clone(),
        source,
    })?;
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let _ = std::fs::remove_file(&temporary);
    let mut file = owner_only(&temporary).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)
}

#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: &str, email: &str, password: &str) -> DemoAccountEntry {
        DemoAccountEntry {
            role: role.into(),
            email: email.into(),
            password: password.into(),
        }
    }

    #[test]
    fn records_replace_by_address_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        record(
            dir.path(),
            &[
                entry("admin", "admin@brigade.demo", "one"),
                entry("customer", "customer@brigade.demo", "two"),
            ],
        )
        .unwrap();
        record(dir.path(), &[entry("admin", "admin@brigade.demo", "three")]).unwrap();
        assert_eq!(
            password_of(dir.path(), "admin@brigade.demo").as_deref(),
            Some("three")
        );
        assert_eq!(read(dir.path()).unwrap().len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{:?}", read(dir.path()).unwrap()).contains("three"));
    }
}
