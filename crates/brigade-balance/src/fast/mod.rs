//! The fast HTTP/1.1 core: one task per client connection does the whole exchange — read into
//! a reused buffer, parse with `httparse` (header array on the stack), route and pick a backend
//! with the shared selection code, write the upstream head in one write from the arriving
//! field bytes, read and relay the response — with no channels, no per-request tasks and no
//! `HeaderMap`. Upstream connections are pooled per worker thread without locks.
//!
//! It serves plain-HTTP/1.1 client connections (`[server] core = "fast"`, the default). A
//! request it does not handle itself (upgrades, `Expect`, CONNECT, absolute-form targets,
//! HTTP/1.0) moves the connection to the hyper path with every byte read so far, as do
//! settings of more than [`codec::MAX_HEADERS`] header fields. With trace export on, a request
//! sampled for tracing gets the hyper path's spans here ([`traced`]); unsampled ones get none.

pub mod chunked;
pub mod codec;
mod conn;
mod connection;
mod exchange;
mod idle;
mod relay;
mod rewind;
mod timer;
mod traced;
pub mod write;

pub use conn::serve;
pub use idle::reap_periodically;
