//! The admin API keeps its contract: every answer of a real balancer parses into the type of
//! `brigade_balance::api` its clients (`brigade up`, `brigade watch`) read it with, and nothing
//! in the answer is lost on the way (the parsed value serialises back to the same JSON), and
//! the bodies clients send are the ones the balancer accepts.

mod support;

use brigade_balance::api::{BackendState, BackendView, NewBackend, PoolView, Pools, Reloaded};
use serde::de::DeserializeOwned;
use support::{Balancer, Upstream, backends_toml};

/// Parses an answer into the client's type and checks it round-trips to the same JSON.
async fn read<T: DeserializeOwned + serde::Serialize>(response: reqwest::Response) -> T {
    let text = response.text().await.unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    let typed: T = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("the answer does not fit the contract: {error}: {text}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        raw,
        "a field of the answer is not in the contract"
    );
    typed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_answer_fits_the_types_its_clients_read() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    // From a file, so that reload has something to read.
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("balance.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nworkers = 1\n[[pools]]\nname = \"orders\"\n{}",
        backends_toml(&[&a])
    );
    std::fs::write(&path, text).unwrap();
    let config = brigade_balance::Config::load(&path).unwrap();
    let balancer = Balancer::start(config, Some(path)).await;
    let http = reqwest::Client::new();

    let pools: Pools = read(
        http.get(balancer.admin_url("/admin/pools"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pools.pools.len(), 1);
    assert_eq!(pools.pools[0].backends[0].state, BackendState::Healthy);

    // What `brigade up` sends to add a replica.
    let new = NewBackend {
        address: b.address.to_string(),
        weight: 1,
        backup: true,
    };
    let added = http
        .post(balancer.admin_url("/admin/pools/orders/backends"))
        .json(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let added: BackendView = read(added).await;
    assert_eq!(
        (added.address.as_str(), added.backup),
        (new.address.as_str(), true)
    );

    let drained = http
        .post(balancer.admin_url(&format!("/admin/pools/orders/backends/{}/drain", a.address)))
        .send()
        .await
        .unwrap();
    let drained: BackendView = read(drained).await;
    assert_eq!(drained.state, BackendState::Draining);

    let pool: PoolView = read(
        http.get(balancer.admin_url("/admin/pools/orders"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pool.primaries().count(), 1, "the backup is not a primary");

    let reloaded: Reloaded = read(balancer.admin_post("/admin/reload").await).await;
    assert_eq!(reloaded.status, "reloaded");
    balancer.stop().await;
}
