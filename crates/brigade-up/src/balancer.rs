//! The supervisor's client of `brigade balance`'s admin API.

use std::time::Duration;

use brigade_balance::api::NewBackend;

/// Talks to one balancer's admin listener.
#[derive(Clone)]
pub struct BalancerAdmin {
    base: String,
    http: reqwest::Client,
}

impl BalancerAdmin {
    /// A client for the admin listener at `address` (`host:port`).
    pub fn new(address: &str) -> Self {
        Self {
            base: format!("http://{address}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(35))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Puts a ready replica into `pool` (409 "already there" counts as success).
    pub async fn add(&self, pool: &str, address: &str, backup: bool) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/admin/pools/{pool}/backends", self.base))
            .json(&NewBackend {
                address: address.to_owned(),
                weight: 1,
                backup,
            })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200..=299 | 409 => Ok(()),
            status => Err(format!(
                "HTTP {status}: {}",
                response.text().await.unwrap_or_default()
            )),
        }
    }

    /// Takes a replica out of `pool`; returns once its in-flight requests finished (or the
    /// balancer's shutdown deadline passed).
    pub async fn remove(&self, pool: &str, address: &str) -> Result<(), String> {
        let response = self
            .http
            .delete(format!(
                "{}/admin/pools/{pool}/backends/{address}",
                self.base
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => Err(format!("HTTP {status}")),
        }
    }
}

/// Waits until `GET http://{address}{path}` answers 200, for at most `limit`.
pub async fn wait_ready(address: &str, path: &str, limit: Duration) -> bool {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let url = format!("http://{address}{path}");
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
