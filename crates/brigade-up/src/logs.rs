//! Central logs: every child's JSON lines, with `service` and `instance` added, in rotating
//! files under `<data dir>/logs/`, and the search behind `brigade logs`.
//!
//! Lines are written as they arrive from the child's pipe, so a child that crashes loses
//! nothing it wrote. Files rotate at [`ROTATE_BYTES`]; [`KEEP`] old files are kept, so the logs
//! never take more than `(KEEP + 1) × ROTATE_BYTES`.
//!
//! A full disk must not cost the logs first, nor the logs cost the database its last bytes:
//! while the file system has less than [`RESERVE_BYTES`] free, or a write fails, lines go to
//! `up`'s standard error instead of the file (a line half written is cut off again, so the file
//! holds whole lines only), and the file is used again as soon as there is room.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

mod tail;
pub use tail::{NewLines, Tail};

/// Size at which the current file is rotated.
pub const ROTATE_BYTES: u64 = 16 * 1024 * 1024;
/// Rotated files kept (`brigade.log.1` … `brigade.log.5`).
pub const KEEP: usize = 5;
/// Name of the current file.
pub const FILE: &str = "brigade.log";
/// Free space the logs leave on their file system (for the database beside them).
pub const RESERVE_BYTES: u64 = 64 * 1024 * 1024;
/// How often the free space is looked at.
const SPACE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The directory of the central logs under a data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// Where children's lines go; cheap to clone, safe to share between tasks. Error events among
/// the lines also go to the error groups, when given ([`LogSink::with_errors`]).
#[derive(Clone)]
pub struct LogSink(Arc<Mutex<Writer>>, Option<crate::errors::ErrorGroups>);

struct Writer {
    dir: PathBuf,
    file: File,
    written: u64,
    /// Free space to leave on the file system.
    reserve: u64,
    /// When free space was last looked at, and whether there was enough.
    space: Option<(std::time::Instant, bool)>,
    /// Whether lines currently go to `fallback` (so the switch is reported once).
    diverted: bool,
    /// Where lines go when the file cannot take them: standard error.
    fallback: Box<dyn Write + Send>,
}

impl LogSink {
    /// Opens (appending) the current file under `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, RESERVE_BYTES, Box::new(io::stderr()))
    }

    /// Like [`open`](Self::open), leaving `reserve` bytes free and sending lines the file
    /// cannot take to `fallback`.
    pub fn open_with(
        dir: &Path,
        reserve: u64,
        fallback: Box<dyn Write + Send>,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE))?;
        let written = file.metadata()?.len();
        Ok(Self(
            Arc::new(Mutex::new(Writer {
                dir: dir.to_path_buf(),
                file,
                written,
                reserve,
                space: None,
                diverted: false,
                fallback,
            })),
            None,
        ))
    }

    /// The same sink, also recording the error events of every line in `errors`.
    pub fn with_errors(mut self, errors: crate::errors::ErrorGroups) -> Self {
        self.1 = Some(errors);
        self
    }

    /// Writes one line from `instance` of `service`: a JSON object gets the two fields added;
    /// anything else (a panic message on stderr) is wrapped into one.
    pub fn write(&self, service: &str, instance: &str, line: &str) {
        if let Some(errors) = &self.1 {
            errors.observe(service, line);
        }
        let mut entry = LogLine::parse(line).unwrap_or_else(|| {
            let mut fields = serde_json::Map::new();
            fields.insert("message".into(), line.into());
            fields.insert("stream".into(), "stderr".into());
            LogLine {
                timestamp: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                level: Some("INFO".into()),
                service: None,
                instance: None,
                fields,
            }
        });
        entry.service = Some(service.to_owned());
        entry.instance = Some(instance.to_owned());
        let mut text = serde_json::to_string(&entry).unwrap_or_default();
        text.push('\n');
        let mut writer = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        writer.write_line(text.as_bytes());
    }
}

impl Writer {
    /// Appends one line to the file, or to the fallback when the file cannot take it.
    fn write_line(&mut self, line: &[u8]) {
        let outcome = if self.has_room() {
            self.append(line)
        } else {
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("less than {} MiB free", self.reserve >> 20),
            ))
        };
        match outcome {
            Ok(()) => {
                if std::mem::take(&mut self.diverted) {
                    tracing::info!("the central log is written again");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut self.diverted, true) {
                    tracing::warn!(%error, "cannot write the central log; lines go to standard error until it can");
                }
                let _ = self.fallback.write_all(line);
                let _ = self.fallback.flush();
            }
        }
    }

    /// Whether the file system keeps `reserve` bytes free (looked at once a second at most).
    fn has_room(&mut self) -> bool {
        if self.reserve == 0 {
            return true;
        }
        if let Some((at, room)) = self.space
            && at.elapsed() < SPACE_CHECK_EVERY
        {
            return room;
        }
        let room = rustix::fs::statvfs(&self.dir)
            .map(|stat| stat.f_bavail.saturating_mul(stat.f_frsize) >= self.reserve)
            .unwrap_or(true);
        self.space = Some((std::time::Instant::now(), room));
        room
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written + bytes.len() as u64 > ROTATE_BYTES {
            self.rotate()?;
        }
        if let Err(error) = self.file.write_all(bytes) {
            // Cut off what part of the line made it, so the next line starts a line.
            let _ = self.file.set_len(self.written);
            return Err(error);
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..KEEP).rev() {
            let from = self.dir.join(format!("{FILE}.{n}"));
            if from.exists() {
                fs::rename(&from, self.dir.join(format!("{FILE}.{}", n + 1)))?;
            }
        }
        fs::rename(self.dir.join(FILE), self.dir.join(format!("{FILE}.1")))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(FILE))?;
        self.written = 0;
        Ok(())
    }
}

/// Which lines `brigade logs` prints.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this service (`serve`, `balance`, `watch`).
    pub service: Option<String>,
    /// Only this level and more severe (`error`, `warn`, `info`, `debug`, `trace`).
    pub level: Option<String>,
    /// Only lines at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines containing this text (e.g. a request id).
    pub grep: Option<String>,
}

fn severity(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" => 0,
        "warn" | "warning" => 1,
        "info" => 2,
        "debug" => 3,
        _ => 4,
    }
}

impl LogFilter {
    /// Whether a raw line passes the filter.
    pub fn matches(&self, line: &str) -> bool {
        if let Some(text) = &self.grep
            && !line.contains(text.as_str())
        {
            return false;
        }
        let Some(entry) = LogLine::parse(line) else {
            return false;
        };
        if let Some(service) = &self.service
            && entry.service.as_deref() != Some(service.as_str())
        {
            return false;
        }
        if let Some(level) = &self.level
            && severity(entry.level.as_deref().unwrap_or("trace")) > severity(level)
        {
            return false;
        }
        if let Some(since) = self.since {
            let at = entry
                .timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if at.is_none_or(|at| at < since) {
                return false;
            }
        }
        true
    }
}

pub use crate::api::LogLine;

/// An age such as `90s`, `15m`, `2h` or `1d` (`brigade logs --since`, `GET /api/logs?since=`);
/// `None` when it is not one.
pub fn parse_age(age: &str) -> Option<chrono::Duration> {
    // By character, not byte: `1é` is refused, not a panic on a split inside a character.
    let unit = age.chars().last()?;
    let number = &age[..age.len() - unit.len_utf8()];
    let n: i64 = number.parse().ok().filter(|n| *n >= 0)?;
    match unit {
        's' => chrono::Duration::try_seconds(n),
        'm' => chrono::Duration::try_minutes(n),
        'h' => chrono::Duration::try_hours(n),
        'd' => chrono::Duration::try_days(n),
        _ => None,
    }
}

/// The log files under `dir`, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=KEEP)
        .rev()
        .map(|n| dir.join(format!("{FILE}.{n}")))
        .filter(|path| path.exists())
        .collect();
    let current = dir.join(FILE);
    if current.exists() {
        files.push(current);
    }
    files
}

/// Writes every matching line of the files under `dir` to `out`; returns how many.
pub fn search(dir: &Path, filter: &LogFilter, out: &mut dyn Write) -> io::Result<usize> {
    let mut found = 0;
    for path in files(dir) {
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if filter.matches(&line) {
                writeln!(out, "{line}")?;
                found += 1;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_read_by_character() {
        assert_eq!(parse_age("90s"), chrono::Duration::try_seconds(90));
        assert_eq!(parse_age("2h"), chrono::Duration::try_hours(2));
        for bad in ["", "s", "-1m", "1é", "é", "10w", "1.5h"] {
            assert_eq!(parse_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_get_service_and_instance_and_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::open(dir.path()).unwrap();
        let now = Utc::now().to_rfc3339();
        sink.write(
            "serve",
            "serve-orders-1",
            &format!(
                r#"{{"timestamp":"{now}","level":"ERROR","message":"boom","request_id":"r-1"}}"#
            ),
        );
        sink.write(
            "balance",
            "balance",
            &format!(r#"{{"timestamp":"{now}","level":"INFO","message":"ok"}}"#),
        );
        sink.write("serve", "serve-orders-2", "thread 'main' panicked");
        let mut out = Vec::new();
        let filter = LogFilter {
            grep: Some("r-1".into()),
            ..LogFilter::default()
        };
        assert_eq!(search(dir.path(), &filter, &mut out).unwrap(), 1);
        let line: LogLine = serde_json::from_slice(&out).unwrap();
        assert_eq!(line.instance.as_deref(), Some("serve-orders-1"));
        let errors = LogFilter {
            level: Some("warn".into()),
            ..LogFilter::default()
        };
        assert_eq!(search(dir.path(), &errors, &mut Vec::new()).unwrap(), 1);
        let balance = LogFilter {
            service: Some("balance".into()),
            ..LogFilter::default()
        };
        assert_eq!(search(dir.path(), &balance, &mut Vec::new()).unwrap(), 1);
        let panics = LogFilter {
            grep: Some("panicked".into()),
            ..LogFilter::default()
        };
        assert_eq!(search(dir.path(), &panics, &mut Vec::new()).unwrap(), 1);
    }

    /// A shared buffer standing in for standard error.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> usize {
            self.0
                .lock()
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        }
    }

    /// Every line of the current file is a whole JSON object; how many there are.
    fn whole_lines(dir: &Path) -> usize {
        let text = fs::read_to_string(dir.join(FILE)).unwrap();
        for line in text.lines() {
            serde_json::from_str::<LogLine>(line).unwrap_or_else(|e| panic!("{e}: {line:.80}"));
        }
        text.lines().count()
    }

    #[test]
    fn below_the_reserve_lines_go_to_standard_error_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let stderr = Captured::default();
        let sink = LogSink::open_with(dir.path(), u64::MAX, Box::new(stderr.clone())).unwrap();
        sink.write("serve", "serve-orders-1", r#"{"message":"kept"}"#);
        assert_eq!(whole_lines(dir.path()), 0);
        assert_eq!(stderr.lines(), 1, "the line reached standard error");
    }

    #[test]
    fn on_a_full_disk_lines_reach_standard_error_and_the_file_resumes_with_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("mounting a tmpfs needs root; skipping");
            return;
        }
        let logs = dir.path().join("logs");
        let stderr = Captured::default();
        let sink = LogSink::open_with(&logs, 0, Box::new(stderr.clone())).unwrap();
        let line = format!(r#"{{"message":"{}"}}"#, "x".repeat(48 * 1024));
        sink.write("serve", "serve-orders-1", &line);
        // Fill the disk with something else, leaving a few bytes: a line cannot fit whole.
        let filler = dir.path().join("filler");
        let mut file = File::create(&filler).unwrap();
        while file.write_all(&[0u8; 4096]).is_ok() {}
        drop(file);
        for _ in 0..5 {
            sink.write("serve", "serve-orders-1", &line);
        }
        assert_eq!(
            stderr.lines(),
            5,
            "every line the disk refused reached standard error"
        );
        assert_eq!(
            whole_lines(&logs),
            1,
            "no part of a refused line is left in the file"
        );
        fs::remove_file(&filler).unwrap();
        sink.write("serve", "serve-orders-1", &line);
        assert_eq!(
            whole_lines(&logs),
            2,
            "the file is written again once there is room"
        );
        assert_eq!(stderr.lines(), 5);
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(dir.path())
            .status();
    }

    #[test]
    fn files_rotate_and_keep_a_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::open(dir.path()).unwrap();
        let line = format!(r#"{{"message":"{}"}}"#, "x".repeat(1024 * 1024));
        for _ in 0..(ROTATE_BYTES / (1024 * 1024) + 2) * (KEEP as u64 + 2) {
            sink.write("serve", "serve-orders-1", &line);
        }
        assert_eq!(files(dir.path()).len(), KEEP + 1);
        let total: u64 = files(dir.path())
            .iter()
            .map(|f| f.metadata().unwrap().len())
            .sum();
        assert!(total <= (KEEP as u64 + 1) * ROTATE_BYTES);
    }
}
