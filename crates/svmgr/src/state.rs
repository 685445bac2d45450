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
//! `state` is `running`, `done`, `stopped` or `failed`; `start-time` is field 22 of
//! `/proc/PID/stat`, so a recycled PID is never mistaken for the service; `cgroup` is `-` when
//! the service has none. The file is replaced atomically (write + rename).

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

/// Reads the state file (missing or unreadable: empty).
pub fn load(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Replaces the state file atomically.
pub fn save(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
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

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(Entry::parse("x\trunning\tnotapid\t1\t0\t1\t-"), None);
        assert_eq!(Entry::parse("too\tfew"), None);
        assert_eq!(Entry::parse(""), None);
    }
}
