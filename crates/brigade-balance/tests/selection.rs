//! Selection through a real balancer over loopback: distribution per algorithm and weight,
//! latency awareness, consistent-hash affinity, minimal movement and bounded load.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{Balancer, Upstream, backends_toml, spread};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_respects_weights() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"rr\"\nalgorithm = \"round_robin\"\n\
         [[pools.backends]]\naddress = \"{}\"\n[[pools.backends]]\naddress = \"{}\"\n\
         [[pools.backends]]\naddress = \"{}\"\nweight = 2\n",
        a.address, b.address, c.address
    ))
    .await;
    let counts = spread(&balancer, 400).await;
    let (na, nb, nc) = (counts["a"], counts["b"], counts["c"]);
    assert!((70..=130).contains(&na), "{counts:?}");
    assert!((70..=130).contains(&nb), "{counts:?}");
    assert!((160..=240).contains(&nc), "{counts:?}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_weights_in_turn_and_least_requests_spreads_evenly() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let rr = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"rr-even\"\nalgorithm = \"round_robin\"\n{}",
        backends_toml(&[&a, &b])
    ))
    .await;
    let counts = spread(&rr, 100).await;
    assert_eq!((counts["a"], counts["b"]), (50, 50), "{counts:?}");
    rr.stop().await;

    let lr = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"lr\"\nalgorithm = \"least_requests\"\n{}",
        backends_toml(&[&a, &b])
    ))
    .await;
    // Concurrent requests: a backend that is busy loses the comparison.
    a.behaviour.delay_ms.store(20, Ordering::SeqCst);
    b.behaviour.delay_ms.store(20, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = lr.client.clone();
        let url = lr.url("/");
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..15 {
                let r = client.get(&url).send().await.unwrap();
                seen.push(r.headers()["x-backend"].to_str().unwrap().to_owned());
            }
            seen
        }));
    }
    let mut na = 0;
    let mut total = 0;
    for task in tasks {
        for name in task.await.unwrap() {
            total += 1;
            na += usize::from(name == "a");
        }
    }
    assert!((40..=80).contains(&na), "a got {na} of {total}");
    lr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_sends_clearly_less_to_a_slow_backend() {
    let fast1 = Upstream::start("fast1").await;
    let fast2 = Upstream::start("fast2").await;
    let slow = Upstream::start("slow").await;
    slow.behaviour.delay_ms.store(40, Ordering::SeqCst);
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"ewma\"\nalgorithm = \"peak_ewma\"\n{}",
        backends_toml(&[&fast1, &fast2, &slow])
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = balancer.client.clone();
        let url = balancer.url("/");
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let fast = (fast1.hits() + fast2.hits()) as f64 / 2.0;
    let slow_hits = slow.hits() as f64;
    assert!(
        slow_hits < fast * 0.25,
        "slow {slow_hits} vs fast mean {fast}"
    );
    let view = balancer.backend("ewma", slow.address).await;
    assert!(view["ewma_ms"].as_f64().unwrap() > 5.0, "{view}");
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_affinity_and_moves_only_the_removed_backends_keys() {
    let ups = [
        Upstream::start("h1").await,
        Upstream::start("h2").await,
        Upstream::start("h3").await,
    ];
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"shops\"\nalgorithm = \"consistent_hash\"\nhash_key = {{ header = \"x-shop-id\" }}\n{}",
        backends_toml(&[&ups[0], &ups[1], &ups[2]])
    ))
    .await;
    let owner = |shop: usize| {
        let client = balancer.client.clone();
        let url = balancer.url("/api/v1/orders");
        async move {
            let r = client
                .get(&url)
                .header("x-shop-id", format!("shop-{shop}"))
                .send()
                .await
                .unwrap();
            r.headers()["x-backend"].to_str().unwrap().to_owned()
        }
    };
    let mut before = Vec::new();
    for shop in 0..60 {
        let first = owner(shop).await;
        for _ in 0..3 {
            assert_eq!(
                owner(shop).await,
                first,
                "shop {shop} moved without a change"
            );
        }
        before.push(first);
    }
    let distinct: std::collections::HashSet<_> = before.iter().collect();
    assert_eq!(distinct.len(), 3, "keys spread over every backend");

    let removed = ups[1].address;
    let status = balancer
        .client
        .delete(balancer.admin_url(&format!("/admin/pools/shops/backends/{removed}")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    for (shop, was) in before.iter().enumerate() {
        let now = owner(shop).await;
        if was == "h2" {
            assert_ne!(now, "h2");
        } else {
            assert_eq!(&now, was, "shop {shop} moved although its owner stayed");
        }
    }

    // Path-segment keys work the same way.
    balancer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_load_spills_a_hot_key() {
    let ups = [
        Upstream::start("b1").await,
        Upstream::start("b2").await,
        Upstream::start("b3").await,
    ];
    for u in &ups {
        u.behaviour.delay_ms.store(100, Ordering::SeqCst);
    }
    let balancer = Balancer::from_toml(&format!(
        "[[pools]]\nname = \"hot\"\nalgorithm = \"consistent_hash\"\nhash_key = {{ path_segment = 1 }}\nbounded_load = 1.25\n{}",
        backends_toml(&[&ups[0], &ups[1], &ups[2]])
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = balancer.client.clone();
        let url = balancer.url("/shops/hot-shop/menu");
        tasks.push(tokio::spawn(async move {
            client.get(&url).send().await.unwrap().status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let hits: Vec<u64> = ups.iter().map(|u| u.hits()).collect();
    let max = *hits.iter().max().unwrap();
    assert!(
        max <= 8,
        "one backend took {max} of 12 concurrent requests for one key: {hits:?}"
    );
    // Sequential requests (no load) all go to the key's owner.
    for u in &ups {
        u.behaviour.delay_ms.store(0, Ordering::SeqCst);
    }
    let before: Vec<u64> = ups.iter().map(|u| u.hits()).collect();
    for _ in 0..20 {
        balancer.get("/shops/hot-shop/menu").await;
    }
    let grew: Vec<u64> = ups.iter().zip(&before).map(|(u, b)| u.hits() - b).collect();
    assert_eq!(grew.iter().filter(|&&g| g > 0).count(), 1, "{grew:?}");
    tokio::time::sleep(Duration::from_millis(1)).await;
    balancer.stop().await;
}
