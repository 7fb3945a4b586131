//! The framework ceiling: a bare axum hello-world that `bench/service` measures next to
//! brigade.
//!
//! It answers `GET /` with `Hello, world!` and nothing else: no middleware, no database, no
//! logging. It runs on the same kind of runtime as `brigade serve` (tokio multi-thread with the
//! default worker count, one per CPU), so the difference between its requests per second and
//! brigade's is what brigade's own work costs on top of the HTTP stack.
//!
//! ```text
//! cargo run --release -p brigade --example hello -- 127.0.0.1:3100
//! ```
//!
//! The first argument is the address to listen on (default `127.0.0.1:3100`).

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;

/// Where to listen when no address is given.
const DEFAULT_ADDRESS: &str = "127.0.0.1:3100";

fn main() -> ExitCode {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let address: SocketAddr = match address.parse() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("hello: invalid listen address {address:?}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hello: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(address)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hello: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `GET /` on `address` until the process is stopped.
async fn serve(address: SocketAddr) -> std::io::Result<()> {
    let router = Router::new().route("/", get(|| async { "Hello, world!" }));
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router).await
}
