//! `brigade logs`: search and follow the central logs of `brigade up`.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use brigade_up::logs::{self, LogFilter};

use crate::cli::LogsArgs;

/// Prints matching lines, then (with `--follow`) new ones as they arrive.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let dir = logs::dir(&args.data_dir);
    if logs::files(&dir).is_empty() {
        bail!(
            "no logs under {}; is this the --data-dir of `brigade up`?",
            dir.display()
        );
    }
    let since = match &args.since {
        Some(age) => match logs::parse_age(age) {
            Some(age) => Some(chrono::Utc::now() - age),
            None => bail!("--since {age}: use a number and a unit s, m, h or d, e.g. 10m"),
        },
        None => None,
    };
    if let Some(level) = &args.level
        && !["error", "warn", "info", "debug", "trace"]
            .contains(&level.to_ascii_lowercase().as_str())
    {
        bail!("--level {level}: use error, warn, info, debug or trace");
    }
    let filter = LogFilter {
        service: args.service,
        level: args.level,
        since,
        grep: args.grep,
    };
    let mut out = std::io::stdout().lock();
    logs::search(&dir, &filter, &mut out)?;
    out.flush()?;
    if !args.follow {
        return Ok(());
    }
    drop(out);
    follow(&dir, &filter).await
}

/// Prints lines appended to the current file from now on, across rotations.
async fn follow(dir: &std::path::Path, filter: &LogFilter) -> anyhow::Result<()> {
    let mut tail = logs::Tail::from_end(dir);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let found = tail.read_new(filter, usize::MAX)?;
        let mut out = std::io::stdout().lock();
        for line in found.lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
}
