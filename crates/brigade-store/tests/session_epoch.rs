//! The session epoch (migration 0008): it moves with every change that can end or alter a live
//! session — revocation, role change, password change — and stays put for new log-ins, on both
//! backends. Replicas' session caches rely on exactly this.

use std::sync::Arc;

use brigade_core::config::StorageSettings;
use brigade_domain::{Actor, Role};
use brigade_store::{NewAccountRecord, Store};
use sqlx::Connection;
use uuid::Uuid;

/// A migrated store on a fresh database; `None` when PostgreSQL is asked for but not configured.
struct Db {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Db {
    async fn open(postgres: bool) -> Option<Self> {
        if !postgres {
            let dir = tempfile::tempdir().unwrap();
            let storage = StorageSettings {
                data_dir: dir.path().to_path_buf(),
                ..StorageSettings::default()
            };
            let store = brigade_store::connect(&storage).await.unwrap();
            return Some(Self {
                store,
                _dir: Some(dir),
                postgres: None,
            });
        }
        let admin = brigade_store::test_support::postgres_url()?;
        let name = format!("brigade_epoch_test_{}", Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let storage = StorageSettings {
            database_url: Some(format!("{base}/{name}")),
            ..StorageSettings::default()
        };
        let store = brigade_store::connect(&storage).await.unwrap();
        Some(Self {
            store,
            _dir: None,
            postgres: Some((admin, name)),
        })
    }

    async fn drop_database(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.postgres {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }

    async fn epoch(&self) -> i64 {
        self.store.session_epoch().await.unwrap()
    }

    async fn customer(&self, email: &str) -> Uuid {
        let id = Uuid::now_v7();
        let account = NewAccountRecord {
            id,
            email: email.into(),
            password_hash: "not a hash".into(),
            role: Role::Customer,
            shop_id: None,
        };
        self.store
            .create_account(&account, &Actor::system())
            .await
            .unwrap();
        id
    }

    async fn log_in(&self, account: Uuid) -> Uuid {
        let expires = brigade_domain::now() + chrono::Duration::hours(1);
        self.store.create_session(account, expires).await.unwrap()
    }
}

async fn the_epoch_moves_with_every_change_to_a_live_session(postgres: bool) {
    let Some(db) = Db::open(postgres).await else {
        eprintln!("BRIGADE_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let start = db.epoch().await;
    let ann = db.customer("ann@example.org").await;
    let session = db.log_in(ann).await;
    let other = db.log_in(ann).await;
    assert_eq!(
        db.epoch().await,
        start,
        "sign-ups and log-ins leave it alone"
    );

    assert!(
        db.store
            .revoke_session(session, &Actor::system())
            .await
            .unwrap()
    );
    let revoked = db.epoch().await;
    assert!(revoked > start, "a log-out moves it");

    db.store
        .set_role(ann, Role::Admin, None, &Actor::system())
        .await
        .unwrap();
    let promoted = db.epoch().await;
    assert!(promoted > revoked, "a role change moves it");

    db.store
        .set_password_hash(ann, "another hash", &Actor::system())
        .await
        .unwrap();
    let reset = db.epoch().await;
    assert!(reset > promoted, "a password change moves it");

    assert!(
        db.store
            .revoke_session(other, &Actor::system())
            .await
            .unwrap()
    );
    assert!(db.epoch().await > reset, "every revocation moves it");
    db.drop_database().await;
}

#[tokio::test]
async fn the_epoch_moves_with_every_change_to_a_live_session_sqlite() {
    the_epoch_moves_with_every_change_to_a_live_session(false).await;
}

#[tokio::test]
async fn the_epoch_moves_with_every_change_to_a_live_session_postgres() {
    the_epoch_moves_with_every_change_to_a_live_session(true).await;
}
