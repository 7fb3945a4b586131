//! Following the current log file: the lines appended since the last look, for
//! `brigade logs --follow` and the dashboard's live tail.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{FILE, LogFilter};

/// A reader of the lines appended to `<logs dir>/brigade.log` after it was made.
///
/// Rotation renames the current file and starts a new one, which may already be longer than
/// the old position by the time it is read: the file is recognised by its inode, not its
/// length, so no line of the new file is skipped.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    /// The inode of the file `position` belongs to (`None` before the file existed).
    inode: Option<u64>,
    /// Bytes of whole lines already read.
    position: u64,
}

/// What one [`Tail::read_new`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NewLines {
    /// Lines the filter kept, oldest first, at most the `max` asked for.
    pub lines: Vec<String>,
    /// Lines the filter kept beyond `max`, not returned.
    pub skipped: usize,
}

impl Tail {
    /// Starts at the current end of the file in `dir`: only lines written from now on.
    pub fn from_end(dir: &Path) -> Self {
        let path = dir.join(FILE);
        let metadata = std::fs::metadata(&path).ok();
        Self {
            inode: metadata.as_ref().map(MetadataExt::ino),
            position: metadata.map_or(0, |m| m.len()),
            path,
        }
    }

    /// The whole lines appended since the last call that `filter` keeps, at most `max` of
    /// them (the newest are dropped and counted, so a follower that falls behind catches up
    /// instead of buffering without bound). A line still being written is left for the next
    /// call. A missing file (between rotation and the next write) is no lines.
    pub fn read_new(&mut self, filter: &LogFilter, max: usize) -> io::Result<NewLines> {
        let mut found = NewLines::default();
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        if self.inode != Some(metadata.ino()) || metadata.len() < self.position {
            self.inode = Some(metadata.ino());
            self.position = 0;
        }
        file.seek(SeekFrom::Start(self.position))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            if !line.ends_with('\n') {
                break;
            }
            self.position += line.len() as u64;
            let text = line.trim_end();
            if filter.matches(text) {
                if found.lines.len() < max {
                    found.lines.push(text.to_owned());
                } else {
                    found.skipped += 1;
                }
            }
            line.clear();
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn append(dir: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn line(message: &str) -> String {
        format!(r#"{{"level":"INFO","service":"serve","message":"{message}"}}"#)
    }

    #[test]
    fn only_whole_lines_written_after_the_start_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &(line("before") + "\n"));
        let mut tail = Tail::from_end(dir.path());
        let all = LogFilter::default();
        assert_eq!(tail.read_new(&all, 10).unwrap(), NewLines::default());
        append(dir.path(), &(line("one") + "\n" + &line("two")));
        let first = tail.read_new(&all, 10).unwrap();
        assert_eq!(first.lines, vec![line("one")], "the unfinished line waits");
        append(dir.path(), "\n");
        assert_eq!(tail.read_new(&all, 10).unwrap().lines, vec![line("two")]);
        assert!(tail.read_new(&all, 10).unwrap().lines.is_empty());
    }

    #[test]
    fn a_rotated_file_is_read_from_its_start_even_when_already_longer() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &(line("old") + "\n"));
        let mut tail = Tail::from_end(dir.path());
        std::fs::rename(dir.path().join(FILE), dir.path().join("brigade.log.1")).unwrap();
        assert!(
            tail.read_new(&LogFilter::default(), 10)
                .unwrap()
                .lines
                .is_empty()
        );
        let lines: String = (0..5).map(|n| line(&format!("new{n}")) + "\n").collect();
        append(dir.path(), &lines);
        let found = tail.read_new(&LogFilter::default(), 3).unwrap();
        assert_eq!(found.lines[0], line("new0"));
        assert_eq!((found.lines.len(), found.skipped), (3, 2));
    }

    #[test]
    fn the_filter_applies() {
        let dir = tempfile::tempdir().unwrap();
        let mut tail = Tail::from_end(dir.path());
        append(
            dir.path(),
            &(line("keep r-7") + "\n" + &line("drop") + "\n"),
        );
        let filter = LogFilter {
            grep: Some("r-7".into()),
            ..LogFilter::default()
        };
        assert_eq!(
            tail.read_new(&filter, 10).unwrap().lines,
            vec![line("keep r-7")]
        );
    }
}
