//! Finding our own descendants in `/proc`, for the development mode: when dynamod-init is not
//! PID 1, `kill(-1, …)` would reach the whole machine, so shutdown signals only the processes
//! whose parent chain leads back to us.

use std::path::Path;

/// The parent PID from the text of `/proc/PID/stat` (field 4, counted after the last `)`
/// because the command name may contain spaces and parentheses).
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every PID in `table` (pairs of pid, parent) whose ancestry reaches `root`, `root` excluded.
pub fn descendants(root: i32, table: &[(i32, i32)]) -> Vec<i32> {
    // (pid, parent) sorted by pid, for binary search and so the result comes out sorted; a
    // table read from /proc has no pid twice.
    let mut parents = table.to_vec();
    parents.sort_unstable();
    let parent_of = |pid: i32| {
        let i = parents.binary_search_by_key(&pid, |&(p, _)| p).ok()?;
        parents.get(i).map(|&(_, parent)| parent)
    };
    let mut out = Vec::new();
    for &(pid, _) in &parents {
        if pid == root {
            continue;
        }
        let mut cur = pid;
        // The hop limit guards against a cycle in a table read while processes come and go.
        for _ in 0..parents.len() {
            match parent_of(cur) {
                Some(p) if p == root => {
                    out.push(pid);
                    break;
                }
                Some(p) if p > 0 && p != cur => cur = p,
                _ => break,
            }
        }
    }
    out
}

/// Reads (pid, parent) for every process visible under `proc_root`.
pub fn scan(proc_root: &Path) -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some((pid, parse_ppid(&stat)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_a_tricky_command_name() {
        assert_eq!(parse_ppid("42 (a) b (c)) S 17 42 42 0"), Some(17));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn finds_children_and_grandchildren_only() {
        let table = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (20, 1),
            (21, 20),
            (30, 11),
        ];
        assert_eq!(descendants(10, &table), vec![11, 12, 30]);
        assert_eq!(descendants(12, &table), Vec::<i32>::new());
    }

    #[test]
    fn cycles_do_not_hang() {
        let table = [(5, 6), (6, 5), (7, 1)];
        assert_eq!(descendants(1, &table), vec![7]);
    }

    #[test]
    fn scan_sees_this_process_with_its_parent() {
        let me = std::process::id() as i32;
        let parent = parse_ppid(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(scan(Path::new("/proc")).contains(&(me, parent)));
    }
}
