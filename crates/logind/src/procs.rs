//! Processes from `/proc`: a process's parent and start time, and a session leader's
//! descendants — how sessions are followed when they have no cgroup.

use std::path::Path;

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Start time in clock ticks after boot.
    pub start: u64,
}

/// Parses the text of `/proc/PID/stat` (the command may contain spaces and parentheses, so
/// fields are counted after the last `)`).
pub fn parse_stat(pid: u32, stat: &str) -> Option<ProcInfo> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at #3 (state): ppid is #4, starttime #22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcInfo { pid, ppid, start })
}

/// Reads `/proc/PID/stat`.
pub fn info(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(pid, &stat)
}

/// `pid` and its ancestors up to init, nearest first (at most 128, against loops).
pub fn ancestry(proc_root: &Path, pid: u32) -> Vec<ProcInfo> {
    let mut out = Vec::new();
    let mut next = pid;
    while next > 0 && out.len() < 128 {
        let Some(p) = info(proc_root, next) else {
            break;
        };
        out.push(p);
        if p.ppid == next {
            break;
        }
        next = p.ppid;
    }
    out
}

/// Every process below `root` (not `root` itself), found by walking all of `/proc`.
pub fn descendants(proc_root: &Path, root: u32) -> Vec<ProcInfo> {
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let all: Vec<ProcInfo> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| info(proc_root, pid))
        .collect();
    descendants_in(&all, root)
}

/// The processes of `all` below `root`.
pub fn descendants_in(all: &[ProcInfo], root: u32) -> Vec<ProcInfo> {
    let mut out: Vec<ProcInfo> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent && p.pid != parent) {
            if !out.iter().any(|o| o.pid == p.pid) {
                out.push(*p);
                frontier.push(p.pid);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let stat = "42 (a b) c)) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(42, stat),
            Some(ProcInfo {
                pid: 42,
                ppid: 7,
                start: 987654
            })
        );
        assert_eq!(parse_stat(1, "1 (init) S"), None);
    }

    #[test]
    fn descendants_cover_the_whole_subtree() {
        let p = |pid, ppid| ProcInfo {
            pid,
            ppid,
            start: 0,
        };
        let all = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(13, 10)];
        let mut d: Vec<u32> = descendants_in(&all, 10).iter().map(|p| p.pid).collect();
        d.sort();
        assert_eq!(d, [11, 12, 13]);
        assert!(descendants_in(&all, 12).is_empty());
    }

    #[test]
    fn our_own_ancestry_reaches_init() {
        let me = std::process::id();
        let chain = ancestry(Path::new("/proc"), me);
        assert_eq!(chain.first().map(|p| p.pid), Some(me));
        assert!(chain.len() >= 2);
    }
}
