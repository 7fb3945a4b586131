//! PostgreSQL refusing connections, and a PostgreSQL server stopped and started again.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use brigade_core::config::{CacheSettings, StorageSettings};
use reqwest::StatusCode;
use sqlx::Connection;

use crate::helpers::{Backend, TestDb, spawn_app, spawn_configured, test_settings};
use crate::support::{none_lost, place_until_refused, readiness, recover};

/// Runs one statement on the server at `url`.
pub async fn execute(url: &str, statement: String) {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut connection)
        .await
        .unwrap();
    let _ = connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_not_accepting_connections_answers_503_and_recovers_when_it_does() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let TestDb::Postgres { admin_url, name } = app.db.as_ref() else {
        unreachable!("a PostgreSQL app has a PostgreSQL database")
    };
    let fixture = app.fixture("Refusing Pizza", 52.52, 13.40).await;
    let mut acknowledged = Vec::new();

    execute(
        admin_url,
        format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
    )
    .await;
    // Connections already open keep working; the replica meets the refusal on new ones.
    execute(
        admin_url,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
    place_until_refused(&app, &fixture, &mut acknowledged).await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "down", "{body}");

    execute(
        admin_url,
        format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"),
    )
    .await;
    let took = recover(&app, &fixture, &mut acknowledged).await;
    eprintln!("database refusing connections: serving again {took:?} after it accepted them");
    none_lost(&app, &acknowledged).await;
}

/// A PostgreSQL cluster of the test's own, on `port`, run as the `postgres` user.
struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Creates and starts it; `None` (with a note) without root or PostgreSQL's binaries.
    fn start(port: u16) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|version| version.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())?;
        let dir = tempfile::tempdir().ok()?;
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !owned {
            return None;
        }
        let cluster = Self { dir, bin, port };
        let made = cluster
            .as_postgres(cluster.bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(cluster.data())
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        (made && cluster.pg_ctl(&["start", "-w"])).then_some(cluster)
    }

    fn as_postgres(&self, program: PathBuf) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-m", "fast"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.pg_ctl(&["stop", "-w", "-m", "immediate"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_server_stopped_answers_503_and_the_pool_reconnects_when_it_starts() {
    let Some(cluster) = PrivateCluster::start(38_101) else {
        eprintln!("a private PostgreSQL cluster needs root and PostgreSQL's binaries; skipping");
        return;
    };
    execute(&cluster.url("postgres"), "CREATE DATABASE brigade".into()).await;
    let storage = StorageSettings {
        database_url: Some(cluster.url("brigade")),
        max_connections: 5,
        acquire_timeout_ms: 1_000,
        ..StorageSettings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(storage, CacheSettings::default());
    let app = spawn_configured(Arc::new(TestDb::Sqlite(dir)), settings, Backend::Postgres).await;
    let fixture = app.fixture("Restarting Pizza", 52.52, 13.40).await;
    let mut acknowledged = Vec::new();

    assert!(cluster.pg_ctl(&["stop", "-w"]), "the cluster stops");
    place_until_refused(&app, &fixture, &mut acknowledged).await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "down", "{body}");

    assert!(cluster.pg_ctl(&["start", "-w"]), "the cluster starts again");
    let took = recover(&app, &fixture, &mut acknowledged).await;
    eprintln!("database server restarted: serving again {took:?} after it started");
    none_lost(&app, &acknowledged).await;
}
