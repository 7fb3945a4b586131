//! The supervisor's client of `brigade balance`'s admin API.

use std::time::Duration;

use brigade_balance::api::NewBackend;

/// Why the balancer's admin API did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nothing answered, or the answer was cut off.
    #[error("the balancer's admin API did not answer: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// It answered with an error status.
    #[error("the balancer's admin API answered HTTP {status}: {detail}")]
    Refused {
        /// The status.
        status: u16,
        /// The problem's detail, or the body.
        detail: String,
    },
}

impl AdminError {
    async fn refused(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<brigade_core::Problem>(&body)
            .ok()
            .and_then(|problem| problem.detail)
            .unwrap_or(body);
        Self::Refused { status, detail }
    }
}

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
    pub async fn add(&self, pool: &str, address: &str, backup: bool) -> Result<(), AdminError> {
        let response = self
            .http
            .post(format!("{}/admin/pools/{pool}/backends", self.base))
            .json(&NewBackend {
                address: address.to_owned(),
                weight: 1,
                backup,
            })
            .send()
            .await?;
        match response.status().as_u16() {
            200..=299 | 409 => Ok(()),
            _ => Err(AdminError::refused(response).await),
        }
    }

    /// Takes a replica out of `pool`; returns once its in-flight requests finished (or the
    /// balancer's shutdown deadline passed).
    pub async fn remove(&self, pool: &str, address: &str) -> Result<(), AdminError> {
        let response = self
            .http
            .delete(format!(
                "{}/admin/pools/{pool}/backends/{address}",
                self.base
            ))
            .send()
            .await?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(AdminError::refused(response).await),
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
