//! `brigade status`: what a running `brigade up` runs, read from its ops API (and, through it,
//! the balancer and watch) and printed as the same table as `brigade up`'s live view.

use std::io::Write;

use crate::cli::StatusArgs;

/// Width of the table when stdout is not a terminal (or does not say how wide it is).
const DEFAULT_WIDTH: u16 = 160;

/// Prints the status table; fails when nothing answers.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let snapshot = brigade_up::status_view::snapshot(&http, &args.ops).await?;
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_WIDTH);
    let mut out = std::io::stdout().lock();
    match out.write_all(snapshot.render(width).as_bytes()) {
        // `brigade status | head` closes the pipe early: not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
