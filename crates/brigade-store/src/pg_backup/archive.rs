//! The server side of continuous archiving: `archive_command` hands every finished WAL segment
//! to `pgbackrest archive-push`, and `archive_timeout` finishes a segment at least every
//! `backup.archive_timeout_secs`, so an idle store still ships its last commits within a
//! minute. brigade sets both with `ALTER SYSTEM` (they apply on reload); `archive_mode` and
//! `wal_level` need a restart, so when they are off brigade sets them and says so.

use std::time::{Duration, Instant};

use sqlx::{Connection as _, PgConnection};

use super::{PitrError, Plan};

/// The command the server runs for each WAL segment (through `sh`; paths single-quoted,
/// quotes in them were refused when the plan was made).
pub(super) fn archive_command(plan: &Plan) -> String {
    format!(
        "'{}' --config='{}' --stanza={} archive-push %p",
        plan.program.display(),
        plan.config_file().display(),
        plan.stanza
    )
}

/// Makes the server archive into the repository; returns its major version.
pub(super) async fn ensure_archiving(plan: &Plan) -> Result<u32, PitrError> {
    let mut connection = PgConnection::connect(&plan.database_url).await?;
    let result = configure(&mut connection, plan).await;
    let _ = connection.close().await;
    result
}

async fn configure(connection: &mut PgConnection, plan: &Plan) -> Result<u32, PitrError> {
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
        .fetch_one(&mut *connection)
        .await?;
    let major = version.parse::<u32>().unwrap_or(0) / 10_000;
    let mut needs_restart = Vec::new();
    if setting(connection, "wal_level").await? == "minimal" {
        alter(connection, "wal_level", "replica").await?;
        needs_restart.push("wal_level");
    }
    if setting(connection, "archive_mode").await? == "off" {
        alter(connection, "archive_mode", "on").await?;
        needs_restart.push("archive_mode");
    }
    let wanted = [
        ("archive_command", archive_command(plan)),
        ("archive_timeout", plan.archive_timeout_secs.to_string()),
    ];
    let mut changed = false;
    for (name, value) in &wanted {
        if setting(connection, name).await? != *value {
            alter(connection, name, value).await?;
            changed = true;
        }
    }
    if !needs_restart.is_empty() {
        return Err(PitrError::RestartNeeded(needs_restart.join(" and ")));
    }
    if changed {
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut *connection)
            .await?;
        // The reload is a signal; wait until this session sees the new values, which the
        // archiver sees at the same moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, value) in &wanted {
            while setting(connection, name).await? != *value {
                if Instant::now() > deadline {
                    return Err(PitrError::Check(format!(
                        "{name} did not take effect after pg_reload_conf()"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(major)
}

async fn setting(connection: &mut PgConnection, name: &str) -> Result<String, PitrError> {
    Ok(
        sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *connection)
            .await?,
    )
}

/// `ALTER SYSTEM` takes no parameters; the value is quoted as an SQL literal.
async fn alter(connection: &mut PgConnection, name: &str, value: &str) -> Result<(), PitrError> {
    let sql = format!("ALTER SYSTEM SET {name} = '{}'", value.replace('\'', "''"));
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *connection)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(PitrError::Setting {
            key: "storage.database_url",
            message: format!(
                "cannot set {name} (ALTER SYSTEM needs a superuser: connect as one, or set \
                 {name} = {value:?} in postgresql.conf yourself): {error}"
            ),
        }),
    }
}
