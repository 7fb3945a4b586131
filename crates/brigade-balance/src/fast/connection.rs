//! A client connection of the fast core and its reused buffers: the state `conn` (the
//! request loop), `exchange` (the attempts) and `relay` (the bytes) all work on.

use http::HeaderValue;
use tokio::net::TcpStream;

use crate::proxy::Client;

/// Bytes read from a socket at a time; buffers start at this size and are cut back to
/// [`KEEP_BYTES`] between requests, so idle connections hold little memory.
pub(super) const READ_CHUNK: usize = 8192;
/// Capacity a buffer keeps between requests.
pub(super) const KEEP_BYTES: usize = 16 * 1024;

/// A client connection and its reused buffers.
#[derive(Debug)]
pub struct Connection {
    pub(super) client_stream: TcpStream,
    /// Bytes from the client not yet used.
    pub(super) read: Vec<u8>,
    /// The upstream request (head and a body kept for replay).
    pub(super) upstream_out: Vec<u8>,
    /// Bytes from the backend.
    pub(super) upstream_in: Vec<u8>,
    /// The response as the client receives it.
    pub(super) out: Vec<u8>,
    /// The current request's id.
    pub(super) request_id: Vec<u8>,
    pub(super) client: Client,
    /// The peer's address as text, rendered once.
    pub(super) peer: Vec<u8>,
    pub(super) requests: u64,
}

impl Connection {
    /// A new connection from `peer`.
    pub fn new(client_stream: TcpStream, client: Client) -> Self {
        let peer = client.forwarded_for.as_bytes().to_vec();
        Self {
            client_stream,
            read: Vec::with_capacity(READ_CHUNK),
            upstream_out: Vec::new(),
            upstream_in: Vec::new(),
            out: Vec::new(),
            request_id: Vec::with_capacity(64),
            client,
            peer,
            requests: 0,
        }
    }

    /// The socket and the bytes read from it but not used, for the hyper path.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.client_stream, self.read)
    }
}

/// A request id as a header value, for the balancer's own answers.
pub(super) fn header_value(id: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(id).ok()
}
