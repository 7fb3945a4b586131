//! The read-replica keys of `[storage]`: a streaming standby that serves stale-tolerant reads.
//!
//! ```toml
//! [storage]
//! database_url = "postgres://app@primary/brigade"
//! read_url = "postgres://app@standby/brigade"   # or DATABASE_READ_URL
//! read_max_lag_ms = 5000                          # a standby further behind is skipped
//! ```
//! A standby only exists for PostgreSQL (SQLite has no replication), so `read_url` with any
//! other primary, or naming anything but PostgreSQL, is a configuration error.

use super::{DatabaseKind, StorageSettings};

/// Checks the read-replica keys; the error names the key.
pub(super) fn check(storage: &StorageSettings) -> Result<(), (&'static str, &'static str)> {
    let Some(read_url) = &storage.read_url else {
        return Ok(());
    };
    if !DatabaseKind::is_postgres(read_url) {
        return Err((
            "storage.read_url",
            "must start with postgres:// or postgresql://",
        ));
    }
    if !DatabaseKind::is_postgres(&storage.effective_url()) {
        return Err((
            "storage.read_url",
            "needs storage.database_url (or DATABASE_URL) to be a PostgreSQL url: \
             only PostgreSQL has standbys",
        ));
    }
    if storage.read_max_lag_ms == 0 {
        return Err(("storage.read_max_lag_ms", "must be greater than 0"));
    }
    Ok(())
}

#[cfg(test)]
// `Jail::expect_with` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::config::{ConfigError, Settings};
    use figment::Jail;

    fn invalid_key(error: ConfigError) -> &'static str {
        match error {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("expected an invalid key, got {other}"),
        }
    }

    #[test]
    fn read_url_comes_from_the_environment_like_database_url() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://primary/brigade");
            jail.set_env("DATABASE_READ_URL", "postgres://standby/brigade");
            let settings = Settings::load(None).expect("settings load");
            assert_eq!(
                settings.storage.read_url.as_deref(),
                Some("postgres://standby/brigade")
            );
            assert_eq!(settings.storage.read_max_lag_ms, 5_000);
            Ok(())
        });
    }

    #[test]
    fn read_url_needs_postgres_on_both_sides() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_READ_URL", "postgres://standby/brigade");
            let error = Settings::load(None).expect_err("sqlite primary with a standby");
            assert_eq!(invalid_key(error), "storage.read_url");
            jail.set_env("DATABASE_URL", "postgres://primary/brigade");
            jail.set_env("DATABASE_READ_URL", "mysql://standby/brigade");
            let error = Settings::load(None).expect_err("a standby that is not postgres");
            assert_eq!(invalid_key(error), "storage.read_url");
            Ok(())
        });
    }

    #[test]
    fn a_zero_lag_bound_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "brigade.toml",
                "[storage]\ndatabase_url = \"postgres://p/b\"\nread_url = \"postgres://s/b\"\n\
                 read_max_lag_ms = 0\n",
            )?;
            let error = Settings::load(None).expect_err("zero bound");
            assert_eq!(invalid_key(error), "storage.read_max_lag_ms");
            Ok(())
        });
    }
}
