//! Listening sockets with a real accept queue. `TcpListener::bind` in tokio (through mio) and
//! in std listens with a backlog of 128: a burst of more new connections than that (a surge of
//! clients, a balancer warming its pool) overflows the queue, the kernel drops the extra SYNs
//! and each of those clients waits a full SYN retransmission, 1 s and then 3 s, before it is
//! even accepted. brigade listens with the backlog nginx and HAProxy use in production
//! configurations instead; the kernel caps it at `net.core.somaxconn` (4,096 by default).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold completed but not yet accepted.
pub const BACKLOG: u32 = 4096;

/// A socket for `address` with `SO_REUSEADDR` (a restarted process rebinds at once), bound
/// but not yet listening, for callers that set more options first.
pub fn socket(address: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// Binds `address` and listens with [`BACKLOG`]. Must run inside a tokio runtime.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket(address)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_beyond_128_connections_waits_in_the_queue_not_for_a_retransmission() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        // Nobody accepts: 600 connects must all complete from the queue at once.
        let started = std::time::Instant::now();
        let mut held = Vec::new();
        for _ in 0..600 {
            held.push(std::net::TcpStream::connect(address).unwrap());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(900),
            "a SYN was dropped and retransmitted: {:?}",
            started.elapsed()
        );
        drop(listener);
    }
}
