//! svmgr's runtime state in `/run/dynamod/state`, so a new svmgr (after a crash, a hang
//! detected by init, or an in-place upgrade) adopts the services that still run instead of
//! starting them twice.
//!
//! One line per service, tab-separated:
//!
//! ```text
//! name  state  pid  start-time  restarts  ready  cgroup
//! ```
//!
//! `state` is `running`, `done`, `stopped`, `failed`, or `gone` when the service no longer has
//! anything to adopt (it is waiting or restarting); `start-time` is field 22 of
//! `/proc/PID/stat`, so a recycled PID is never mistaken for the service; `cgroup` is `-` when
//! the service has none.
//!
//! The file is a journal: a change appends the lines of the services that changed, and the
//! **last complete line** of a service is the one that counts (a line cut short by a crash has no
//! newline and is ignored). That keeps the cost of a change proportional to what changed, which
//! matters when a thousand services start at once. [`Journal`] rewrites the file from scratch
//! (write + rename, atomic) when it starts and whenever the history has grown to several times
//! the number of services.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Service name.
    pub name: String,
    /// `running`, `done`, `stopped` or `failed`.
    pub state: String,
    /// Main PID (0 when none).
    pub pid: i32,
    /// Start time of that PID in clock ticks since boot.
    pub start_time: u64,
    /// Automatic restarts so far.
    pub restarts: u32,
    /// Whether it had become ready.
    pub ready: bool,
    /// Its cgroup directory.
    pub cgroup: Option<PathBuf>,
}

impl Entry {
    /// The line, without its newline.
    pub fn format(&self) -> String {
        let cg = self
            .cgroup
            .as_ref()
            .map_or_else(|| "-".to_owned(), |p| p.display().to_string());
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.name,
            self.state,
            self.pid,
            self.start_time,
            self.restarts,
            u8::from(self.ready),
            cg
        )
    }

    /// Parses one line; `None` when malformed (a damaged file never stops svmgr).
    pub fn parse(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 7 {
            return None;
        }
        Some(Entry {
            name: f[0].to_owned(),
            state: f[1].to_owned(),
            pid: f[2].parse().ok()?,
            start_time: f[3].parse().ok()?,
            restarts: f[4].parse().ok()?,
            ready: f[5] == "1",
            cgroup: (f[6] != "-").then(|| PathBuf::from(f[6])),
        })
    }
}

/// Reads the state file (missing or unreadable: empty): the last complete line of each service,
/// in the order services first appear.
pub fn load(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .map(|t| parse_journal(&t))
        .unwrap_or_default()
}

/// The entries a journal's text amounts to (see the module documentation).
pub fn parse_journal(text: &str) -> Vec<Entry> {
    // Only lines that end with a newline were written completely.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut order: Vec<Entry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in complete.lines().filter_map(Entry::parse) {
        match index.get(&e.name) {
            Some(&i) => order[i] = e,
            None => {
                index.insert(e.name.clone(), order.len());
                order.push(e);
            }
        }
    }
    order
}

/// The open state file: appends changed lines, compacts now and then.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<std::fs::File>,
    lines: usize,
}

impl Journal {
    /// A journal at `path`; nothing is written until [`Journal::rewrite`] or
    /// [`Journal::append`].
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            lines: 0,
        }
    }

    /// Lines in the file since it was last rewritten.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Whether the journal has been rewritten since this svmgr started.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Replaces the file atomically with `text` (one complete line per service) and appends to
    /// the new file from now on.
    pub fn rewrite(&mut self, text: &str) -> std::io::Result<()> {
        self.file = None;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = Some(std::fs::OpenOptions::new().append(true).open(&self.path)?);
        self.lines = text.lines().count();
        Ok(())
    }

    /// Appends complete lines in one write.
    pub fn append(&mut self, text: &str) -> std::io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(std::io::Error::other("the state file is not open"));
        };
        f.write_all(text.as_bytes())?;
        self.lines += text.lines().count();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let e = Entry {
            name: "syslog".into(),
            state: "running".into(),
            pid: 42,
            start_time: 123456,
            restarts: 3,
            ready: true,
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/dynamod/root/syslog")),
        };
        assert_eq!(Entry::parse(&e.format()), Some(e.clone()));
        let none = Entry {
            cgroup: None,
            ready: false,
            ..e
        };
        assert_eq!(Entry::parse(&none.format()), Some(none));
    }

    fn entry(name: &str, state: &str, pid: i32) -> Entry {
        Entry {
            name: name.into(),
            state: state.into(),
            pid,
            start_time: 7,
            restarts: 0,
            ready: true,
            cgroup: None,
        }
    }

    #[test]
    fn the_last_complete_line_of_a_service_counts() {
        let a1 = entry("a", "running", 10);
        let b = entry("b", "done", 0);
        let a2 = entry("a", "gone", 0);
        let a3 = entry("a", "running", 11);
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            a1.format(),
            b.format(),
            a2.format(),
            a3.format()
        );
        assert_eq!(parse_journal(&text), vec![a3.clone(), b.clone()]);
        // A crash in the middle of the last line leaves the previous one in force.
        let cut = format!("{}\n{}\n{}", a1.format(), b.format(), &a2.format()[..5]);
        assert_eq!(parse_journal(&cut), vec![a1, b]);
        assert_eq!(parse_journal("a\trunning\t1"), vec![]);
    }

    #[test]
    fn a_journal_appends_and_rewrites() {
        let dir = std::env::temp_dir().join(format!("dynamod-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        std::fs::write(&path, "stale\tline\n").unwrap();
        let mut j = Journal::new(path.clone());
        assert!(j.append("x\n").is_err());
        let a = entry("a", "running", 10);
        j.rewrite(&format!("{}\n", a.format())).unwrap();
        let a2 = entry("a", "running", 12);
        let b = entry("b", "stopped", 0);
        j.append(&format!("{}\n{}\n", a2.format(), b.format()))
            .unwrap();
        assert_eq!(j.lines(), 3);
        assert_eq!(load(&path), vec![a2.clone(), b.clone()]);
        j.rewrite(&format!("{}\n", b.format())).unwrap();
        assert_eq!(load(&path), vec![b]);
        assert!(!dir.join("state.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(Entry::parse("x\trunning\tnotapid\t1\t0\t1\t-"), None);
        assert_eq!(Entry::parse("too\tfew"), None);
        assert_eq!(Entry::parse(""), None);
    }
}
