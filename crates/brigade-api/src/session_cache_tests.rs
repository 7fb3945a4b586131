//! The session cache against a real SQLite store: hits, revocation at the next confirmation,
//! the race between a read and a revocation, one epoch read for many requests, and an
//! unreadable epoch.

use std::sync::Arc;

use brigade_core::config::{SessionCacheSettings, StorageSettings};
use brigade_domain::{Actor, Role};
use brigade_store::{NewAccountRecord, Store};

use super::*;

struct Fixture {
    store: Arc<dyn Store>,
    session: Uuid,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSettings {
        data_dir: dir.path().to_path_buf(),
        ..StorageSettings::default()
    };
    let store = brigade_store::connect(&storage).await.unwrap();
    let account = Uuid::now_v7();
    store
        .create_account(
            &NewAccountRecord {
                id: account,
                email: "ann@example.org".into(),
                password_hash: "not a hash".into(),
                role: Role::Customer,
                shop_id: None,
            },
            &Actor::system(),
        )
        .await
        .unwrap();
    let expires = brigade_domain::now() + chrono::Duration::hours(1);
    let session = store.create_session(account, expires).await.unwrap();
    Fixture {
        store,
        session,
        _dir: dir,
    }
}

fn cache(max_staleness_ms: u64) -> SessionCache {
    SessionCache::new(&SessionCacheSettings {
        enabled: true,
        capacity: 100,
        max_staleness_ms,
    })
}

fn checks(cache: &SessionCache) -> u64 {
    cache.epoch_checks()
}

#[tokio::test]
async fn a_confirmed_session_is_served_from_memory() {
    let f = fixture().await;
    let cache = cache(60_000);
    let first = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    let second = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(checks(&cache), 1, "one epoch read confirms both requests");
    // Proof that the second came from memory: with the pool closed, a database read fails.
    f.store.close().await;
    assert!(cache.session(&*f.store, f.session).await.unwrap().is_some());
}

#[tokio::test]
async fn a_revocation_shows_at_the_next_confirmation() {
    let f = fixture().await;
    let cache = cache(1);
    assert!(cache.session(&*f.store, f.session).await.unwrap().is_some());
    assert!(
        f.store
            .revoke_session(f.session, &Actor::system())
            .await
            .unwrap()
    );
    // Waiting out the bound itself is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let after = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    assert!(
        after.revoked_at.is_some(),
        "the revoked row, not the cached one"
    );
}

#[tokio::test]
async fn a_role_change_shows_at_the_next_confirmation() {
    let f = fixture().await;
    let cache = cache(1);
    let before = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    let account = before.account.id;
    f.store
        .set_role(account, Role::Admin, None, &Actor::system())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    let after = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    assert_eq!(after.account.role, Role::Admin);
}

#[tokio::test]
async fn a_read_that_raced_a_revocation_is_never_served() {
    let f = fixture().await;
    let cache = cache(60_000);
    let inner = cache.inner.as_ref().unwrap();
    // A miss confirms, then reads the row before the revocation commits …
    let generation = inner.confirm(&*f.store).await.unwrap();
    let stale = f.store.session(f.session).await.unwrap().unwrap();
    f.store
        .revoke_session(f.session, &Actor::system())
        .await
        .unwrap();
    // … another request's confirmation sees the epoch move …
    let epoch = f.store.session_epoch().await.unwrap();
    inner.confirmed(epoch, Instant::now());
    // … and only then does the first one put what it read into the cache.
    inner
        .sessions
        .insert(
            f.session,
            Cached {
                session: stale,
                generation,
            },
        )
        .await;
    let served = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    assert!(served.revoked_at.is_some());
}

#[tokio::test]
async fn this_replicas_own_changes_apply_at_once() {
    let f = fixture().await;
    let cache = cache(60_000);
    assert!(cache.session(&*f.store, f.session).await.unwrap().is_some());
    f.store
        .revoke_session(f.session, &Actor::system())
        .await
        .unwrap();
    cache.invalidate_all();
    let after = cache.session(&*f.store, f.session).await.unwrap().unwrap();
    assert!(after.revoked_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_epoch_read() {
    let f = fixture().await;
    let cache = Arc::new(cache(60_000));
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let (cache, store, id) = (Arc::clone(&cache), Arc::clone(&f.store), f.session);
            tokio::spawn(async move { cache.session(&*store, id).await })
        })
        .collect();
    for request in requests {
        assert!(request.await.unwrap().unwrap().is_some());
    }
    assert_eq!(checks(&cache), 1);
}

#[tokio::test]
async fn an_unreadable_epoch_never_serves_from_memory() {
    let f = fixture().await;
    let cache = cache(1);
    assert!(cache.session(&*f.store, f.session).await.unwrap().is_some());
    f.store.close().await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(
        cache.session(&*f.store, f.session).await.is_err(),
        "the database's answer (an error), not the cached session"
    );
}

#[tokio::test]
async fn revoked_sessions_are_not_cached_and_a_disabled_cache_reads_every_time() {
    let f = fixture().await;
    f.store
        .revoke_session(f.session, &Actor::system())
        .await
        .unwrap();
    let cache = cache(60_000);
    cache.session(&*f.store, f.session).await.unwrap();
    assert_eq!(
        cache
            .inner
            .as_ref()
            .unwrap()
            .sessions
            .get(&f.session)
            .await
            .map(|_| ()),
        None
    );
    let disabled = SessionCache::new(&SessionCacheSettings {
        enabled: false,
        ..SessionCacheSettings::default()
    });
    assert!(
        disabled
            .session(&*f.store, f.session)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(checks(&disabled), 0);
}
