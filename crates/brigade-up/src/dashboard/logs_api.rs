//! `GET /api/logs?level=&grep=&service=&since=&limit=`: the newest matching lines of the central
//! logs, for the dashboard's error panel and log search (the same filter as `brigade logs`).
//!
//! Files are read newest first and reading stops as soon as `limit` lines are found, so the
//! usual question, "the last few errors", costs one read of the current file.
// The error of a failed check is the response body, built once per refused request, so its
// size does not matter.
#![allow(clippy::result_large_err)]

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use axum::Json;
use axum::extract::{Query, State};
use brigade_core::Problem;
use chrono::Utc;
use serde::Deserialize;

use super::Dashboard;
use crate::logs::{self, LogFilter, LogLine};

/// Lines answered when no `limit` is given.
const DEFAULT_LIMIT: usize = 50;
/// Most lines one request may ask for.
const MAX_LIMIT: usize = 1000;
/// Levels `level` accepts (the line's level or a more severe one is kept).
const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The query string; every field is text so a bad value is answered naming its field.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogsQuery {
    level: Option<String>,
    grep: Option<String>,
    service: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

/// Checks the query and turns it into `brigade logs`'s filter and a line limit.
pub(super) fn filter_of(query: LogsQuery) -> Result<(LogFilter, usize), Problem> {
    let level = match query.level.filter(|l| !l.is_empty()) {
        Some(level) if LEVELS.contains(&level.to_ascii_lowercase().as_str()) => {
            Some(level.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(Problem::invalid_field(
                "level",
                "must be error, warn, info, debug or trace",
            ));
        }
        None => None,
    };
    let since = match query.since.filter(|s| !s.is_empty()) {
        Some(age) => Some(
            Utc::now()
                - logs::parse_age(&age).ok_or_else(|| {
                    Problem::invalid_field("since", "must be an age such as 90s, 15m, 2h or 1d")
                })?,
        ),
        None => None,
    };
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Problem::invalid_field(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let filter = LogFilter {
        service: query.service.filter(|s| !s.is_empty()),
        level,
        since,
        grep: query.grep.filter(|g| !g.is_empty()),
    };
    Ok((filter, limit))
}

/// The handler: `{"lines": [...]}`, newest first, each line the JSON object that was logged
/// (with `service` and `instance`).
pub(super) async fn logs(
    State(dashboard): State<Dashboard>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogLines>, Problem> {
    let (filter, limit) = filter_of(query)?;
    let Some(dir) = dashboard.logs_dir.clone() else {
        return Err(Problem::not_found(
            "this dashboard reads no central logs (start it with --data-dir)",
        ));
    };
    let lines = tokio::task::spawn_blocking(move || newest(&dir, &filter, limit))
        .await
        .map_err(|_| Problem::internal())?
        .map_err(|error| {
            tracing::error!(%error, "cannot read the central logs");
            Problem::unavailable("the central logs cannot be read")
        })?;
    Ok(Json(LogLines { lines }))
}

/// The answer of `GET /api/dashboard/logs`.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct LogLines {
    /// Newest first.
    pub lines: Vec<LogLine>,
}

/// The newest `limit` lines under `dir` that pass `filter`, newest first.
pub(super) fn newest(dir: &Path, filter: &LogFilter, limit: usize) -> io::Result<Vec<LogLine>> {
    let mut found: Vec<LogLine> = Vec::new();
    for path in logs::files(dir).into_iter().rev() {
        let file = match File::open(&path) {
            Ok(file) => file,
            // Rotated away between listing and opening: its lines are in the next file.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let mut in_file = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            if filter.matches(&line)
                && let Some(entry) = LogLine::parse(&line)
            {
                in_file.push(entry);
            }
        }
        let wanted = limit - found.len();
        found.extend(in_file.into_iter().rev().take(wanted));
        if found.len() == limit {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> LogsQuery {
        let mut q = LogsQuery::default();
        for (key, value) in pairs {
            let value = Some((*value).to_owned());
            match *key {
                "level" => q.level = value,
                "since" => q.since = value,
                "limit" => q.limit = value,
                _ => panic!("unknown parameter {key}"),
            }
        }
        q
    }

    fn field_of(result: Result<(LogFilter, usize), Problem>) -> String {
        result.unwrap_err().errors[0].field.clone()
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(field_of(filter_of(query(&[("level", "loud")]))), "level");
        assert_eq!(field_of(filter_of(query(&[("limit", "0")]))), "limit");
        assert_eq!(field_of(filter_of(query(&[("limit", "1001")]))), "limit");
        assert_eq!(field_of(filter_of(query(&[("since", "soon")]))), "since");
        let (filter, limit) = filter_of(query(&[("level", "WARN"), ("since", "15m")])).unwrap();
        assert_eq!(filter.level.as_deref(), Some("warn"));
        assert!(filter.since.is_some());
        assert_eq!(limit, DEFAULT_LIMIT);
    }

    #[test]
    fn newest_lines_come_first_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let line = |n: usize, level: &str| {
            format!(
                r#"{{"timestamp":"2026-01-01T00:00:00Z","level":"{level}","message":"m{n}","service":"serve"}}"#
            )
        };
        // brigade.log.1 (older): m0..m2; brigade.log: m3..m5, m4 an info line.
        std::fs::write(
            dir.path().join("brigade.log.1"),
            (0..3).map(|n| line(n, "error") + "\n").collect::<String>(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("brigade.log"),
            [line(3, "ERROR"), line(4, "INFO"), line(5, "WARN")].join("\n") + "\n",
        )
        .unwrap();
        let warn = LogFilter {
            level: Some("warn".into()),
            ..LogFilter::default()
        };
        let messages = |lines: Vec<LogLine>| -> Vec<String> {
            lines
                .iter()
                .map(|l| l.fields["message"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            messages(newest(dir.path(), &warn, 2).unwrap()),
            ["m5", "m3"]
        );
        assert_eq!(
            messages(newest(dir.path(), &warn, 4).unwrap()),
            ["m5", "m3", "m2", "m1"]
        );
        assert_eq!(messages(newest(dir.path(), &warn, 100).unwrap()).len(), 5);
    }
}
