//! The listening sockets `brigade up` binds itself: its ops API, and the balancer's public and
//! admin ports, which it holds for as long as it runs and hands to every balancer process it
//! starts (so a balancer restart queues connections in the kernel instead of refusing them).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How long a port that is in use is tried again (it is often still held for a moment by the
/// `brigade up` that was just stopped).
pub const BIND_RETRY: Duration = Duration::from_secs(5);
/// Between two tries.
const BIND_RETRY_EVERY: Duration = Duration::from_millis(100);

/// Binds `address` (with `SO_REUSEADDR`, so connections of a previous run in TIME_WAIT do not
/// block it), trying again for up to `retry` while the address is in use.
pub async fn bind(address: SocketAddr, retry: Duration) -> std::io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + retry;
    let mut told = false;
    loop {
        match bind_once(address) {
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                if !told {
                    tracing::warn!(%address, "address in use; trying again for a few seconds");
                    told = true;
                }
                tokio::time::sleep(BIND_RETRY_EVERY).await;
            }
            other => return other,
        }
    }
}

/// Connections the kernel queues while nobody accepts (during a balancer restart) are
/// [`brigade_core::net::BACKLOG`].
fn bind_once(address: SocketAddr) -> std::io::Result<TcpListener> {
    brigade_core::net::bind(address)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_freed_within_the_retry_window_is_bound() {
        let taken = bind(SocketAddr::from(([127, 0, 0, 1], 0)), Duration::ZERO)
            .await
            .unwrap();
        let address = taken.local_addr().unwrap();
        assert!(bind(address, Duration::ZERO).await.is_err());
        let freeing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(taken);
        });
        let bound = bind(address, Duration::from_secs(3)).await.unwrap();
        assert_eq!(bound.local_addr().unwrap(), address);
        freeing.await.unwrap();
    }
}
