//! `brigade logs`: search and follow the central logs of `brigade up`.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, bail};
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
        Some(age) => {
            Some(chrono::Utc::now() - parse_age(age).with_context(|| format!("--since {age}"))?)
        }
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
    follow(&dir.join(logs::FILE), &filter).await
}

/// Prints lines appended to `path` from now on; starts over when the file is rotated.
async fn follow(path: &std::path::Path, filter: &LogFilter) -> anyhow::Result<()> {
    let mut position = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Ok(mut file) = std::fs::File::open(path) else {
            continue;
        };
        let length = file.metadata()?.len();
        if length < position {
            position = 0;
        }
        file.seek(SeekFrom::Start(position))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        let mut out = std::io::stdout().lock();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            position += line.len() as u64;
            if filter.matches(line.trim_end()) {
                out.write_all(line.as_bytes())?;
            }
            line.clear();
        }
        out.flush()?;
    }
}

/// `90s`, `10m`, `2h`, `1d` as a duration.
fn parse_age(age: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = age.split_at(age.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .context("expected a number and a unit, e.g. 10m")?;
    Ok(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => bail!("unknown unit {unit:?}; use s, m, h or d"),
    })
}
