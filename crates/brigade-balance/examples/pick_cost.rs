//! Picks a backend many times from a pool of a given size, for counting the instructions of one
//! pick under callgrind (docs/benchmarks.md, "Selection cost"):
//!
//! ```text
//! cargo build --release -p brigade-balance --example pick_cost
//! valgrind --tool=callgrind --toggle-collect='*Pool::pick*' \
//!     target/release/examples/pick_cost 100 100000 peak_ewma
//! ```
//!
//! Arguments: backends (3), picks (100000), algorithm (peak_ewma). Prints the picks per backend
//! spread (min/max) so the work cannot be optimised away.

use std::collections::HashMap;

use brigade_balance::PoolConfig;
use brigade_balance::config::RetryConfig;
use brigade_balance::pool::Pool;

fn main() {
    let mut args = std::env::args().skip(1);
    let backends: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let picks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let algorithm = args.next().unwrap_or_else(|| "peak_ewma".to_owned());
    let mut text = format!("name = \"bench\"\nalgorithm = \"{algorithm}\"\n");
    for port in 1..=backends {
        text.push_str(&format!("[[backends]]\naddress = \"127.0.0.1:{port}\"\n"));
    }
    let config: PoolConfig = match toml::from_str(&text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pick_cost: bad algorithm {algorithm:?}: {e}");
            std::process::exit(2);
        }
    };
    let pool = Pool::new(config, &RetryConfig::default(), None);
    let mut seen: HashMap<u16, usize> = HashMap::new();
    for _ in 0..picks {
        match pool.pick(None, &[]) {
            Ok(b) => *seen.entry(b.address.port()).or_default() += 1,
            Err(_) => {
                eprintln!("pick_cost: no backend");
                std::process::exit(1);
            }
        }
    }
    let min = seen.values().min().copied().unwrap_or(0);
    let max = seen.values().max().copied().unwrap_or(0);
    println!(
        "{backends} backends, {picks} picks ({algorithm}): {} picked, min {min}, max {max}",
        seen.len()
    );
}
