//! Processes of a unit, read from `/proc` and the cgroup file system: which unit a PID belongs
//! to, a unit's processes, and signalling them through pidfds (so a PID that was reused in the
//! meantime is never signalled).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A process's parent and session, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent PID.
    pub ppid: i32,
    /// Session id (services run in a session of their own, led by their main process).
    pub sid: i32,
}

/// Parses the text of `/proc/PID/stat` (the command name may contain spaces and parentheses,
/// so fields are counted after the last `)`).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state ppid pgrp session …
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        sid: f.get(3)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of `pid` under `proc_root`.
pub fn stat(proc_root: &Path, pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// The name of the service among `mains` (main PID, service name) that `pid` belongs to: the
/// PID itself, its session leader, or one of its ancestors is a main PID.
pub fn owner(proc_root: &Path, pid: i32, mains: &[(i32, String)]) -> Option<String> {
    let find = |p: i32| mains.iter().find(|(m, _)| *m == p).map(|(_, n)| n.clone());
    let mut current = pid;
    // The ancestry of a live process is finite; the bound only guards against a /proc race.
    for _ in 0..256 {
        if current <= 1 {
            return None;
        }
        if let Some(n) = find(current) {
            return Some(n);
        }
        let st = stat(proc_root, current)?;
        if let Some(n) = find(st.sid) {
            return Some(n);
        }
        current = st.ppid;
    }
    None
}

/// Every live PID whose session is `sid`.
pub fn session_members(proc_root: &Path, sid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat(proc_root, *pid).is_some_and(|s| s.sid == sid))
        .collect();
    out.sort_unstable();
    out
}

/// The PIDs in a cgroup directory (`cgroup.procs`).
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// A process's command line, space-separated (its `comm` in brackets for kernel threads or
/// zombies).
pub fn cmdline(proc_root: &Path, pid: i32) -> String {
    let dir = proc_root.join(pid.to_string());
    let raw = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if parts.is_empty() {
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        format!("[{}]", comm.trim())
    } else {
        parts.join(" ")
    }
}

/// Mount points of cgroup2 file systems (longest first), from `/proc/self/mountinfo`.
pub fn cgroup2_mounts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = dynamod_sys::mountinfo::read(Path::new("/proc/self/mountinfo"))
        .map(|entries| {
            entries
                .into_iter()
                .filter(|e| e.fs_type == "cgroup2")
                .map(|e| e.mount_point)
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v
}

/// A cgroup as systemd shows it: relative to the cgroup2 mount (`/dynamod/root/web`). A path
/// that is not under a known mount is shown as given.
pub fn cgroup_display(abs: &Path, mounts: &[PathBuf]) -> String {
    for m in mounts {
        if let Ok(rel) = abs.strip_prefix(m) {
            return format!("/{}", rel.display());
        }
    }
    abs.display().to_string()
}

/// Sends `sig` to `pid` through a pidfd, but only if `still_ours` — checked after the pidfd is
/// open, so the process checked is the process signalled.
pub fn signal(pid: i32, sig: i32, still_ours: impl FnOnce() -> bool) -> std::io::Result<bool> {
    let fd = dynamod_sys::process::pidfd_open(pid)?;
    if !still_ours() {
        return Ok(false);
    }
    dynamod_sys::process::pidfd_send_signal(fd.as_fd(), sig)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let s = parse_stat("1234 (my (odd) name) S 77 1234 1200 0 -1 4194560").unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 77,
                sid: 1200
            }
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_found_through_its_ancestry() {
        let me = std::process::id() as i32;
        let parent = stat(Path::new("/proc"), me).unwrap().ppid;
        let mains = vec![(parent, "parent-svc".to_owned())];
        assert_eq!(
            owner(Path::new("/proc"), me, &mains).as_deref(),
            Some("parent-svc")
        );
        assert_eq!(owner(Path::new("/proc"), me, &[]), None);
    }

    #[test]
    fn cgroups_display_relative_to_their_mount() {
        let mounts = vec![
            PathBuf::from("/sys/fs/cgroup/unified"),
            PathBuf::from("/sys/fs/cgroup"),
        ];
        assert_eq!(
            cgroup_display(
                Path::new("/sys/fs/cgroup/unified/dynamod/root/web"),
                &mounts
            ),
            "/dynamod/root/web"
        );
        assert_eq!(
            cgroup_display(Path::new("/elsewhere/x"), &mounts),
            "/elsewhere/x"
        );
    }

    #[test]
    fn own_command_line_is_readable() {
        let me = std::process::id() as i32;
        assert!(!cmdline(Path::new("/proc"), me).is_empty());
    }
}
