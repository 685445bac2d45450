//! A cgroup of the sandbox's own, like a container engine gives each container.
//!
//! Without one, the sandbox's cgroup namespace would be rooted at xtask's cgroup, so two
//! sandboxes (parallel tests) would both see and manage the same `dynamod/…` tree. As root,
//! xtask creates `<cgroup2 mount><own cgroup>/dynamod-sandbox/<xtask pid>`; the sandbox's PID 1
//! moves itself there before it unshares its cgroup namespace, and xtask removes the tree when
//! the sandbox is gone. Leftovers of killed runs are swept on the next run.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Name of the directory grouping every sandbox's cgroup.
const GROUP: &str = "dynamod-sandbox";

/// The sandbox's cgroup; removed (best effort) when dropped.
pub struct SandboxCgroup {
    path: PathBuf,
    removed: bool,
}

impl SandboxCgroup {
    /// Creates the cgroup, or returns `None` when the host has no writable cgroup2 hierarchy.
    pub fn create() -> Result<Option<Self>> {
        let Some(mount) = cgroup2_mount()? else {
            return Ok(None);
        };
        let own = own_cgroup()?;
        let group = mount.join(own.trim_start_matches('/')).join(GROUP);
        sweep_stale(&group);
        let path = group.join(std::process::id().to_string());
        // A concurrent sweep may remove the (empty) group between the two mkdirs: retry.
        let mut attempt = 0;
        loop {
            match fs::create_dir_all(&path) {
                Ok(()) => break,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && attempt < 5 => {
                    attempt += 1;
                }
                Err(err) => return Err(err).with_context(|| format!("create {}", path.display())),
            }
        }
        Ok(Some(Self {
            path,
            removed: false,
        }))
    }

    /// The cgroup directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the cgroup and everything the sandbox created below it (all empty by now).
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_tree(&self.path)?;
        if let Some(group) = self.path.parent() {
            // Fails while other sandboxes run; that is fine.
            let _ = fs::remove_dir(group);
        }
        Ok(())
    }
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Removes a cgroup directory depth first (cgroupfs only allows `rmdir` of empty cgroups; their
/// interface files go with them).
fn remove_tree(dir: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("remove {}", dir.display())),
    }
}

/// Removes the cgroups of sandboxes whose xtask is gone and that hold no process.
fn sweep_stale(group: &Path) {
    let Ok(entries) = fs::read_dir(group) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let populated = fs::read_to_string(entry.path().join("cgroup.events"))
            .map(|events| events.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(true);
        if !alive && !populated {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// Where the cgroup2 hierarchy is mounted (the hybrid hosts of TESTING.md have it at
/// `/sys/fs/cgroup/unified`), from `/proc/self/mountinfo`.
fn cgroup2_mount() -> Result<Option<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape_mountinfo(p)))
    }))
}

/// This process's cgroup2 path (the `0::` line of `/proc/self/cgroup`).
fn own_cgroup() -> Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .to_owned())
}

/// Decodes the octal escapes (`\040` for a space, …) of a mountinfo path.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape_mountinfo(r"/a\134b"), r"/a\b");
        assert_eq!(unescape_mountinfo(r"/plain\x"), r"/plain\x");
    }
}
