//! Per-user runtime directories (`$XDG_RUNTIME_DIR`, `/run/user/UID`): a tmpfs of its own,
//! mode 0700, owned by the user, mounted when the user's first session starts and removed when
//! the last one has ended (after `UserStopDelaySec`).
//!
//! A tmpfs per user bounds what one user can put in RAM (`RuntimeDirectorySize`) and makes
//! removal complete: unmounting drops every file at once. When the mount is refused (e.g. no
//! `CAP_SYS_ADMIN` in a container) the directory is kept as a plain directory, which is said
//! once in the log.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dynamod_sys::nix::mount::MsFlags;

/// Creating or removing a runtime directory failed.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file system operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunDirError + 'a {
    move |source| RunDirError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Where runtime directories live and how big they may get.
#[derive(Debug, Clone)]
pub struct RuntimeDirs {
    /// The parent directory (`/run/user`).
    pub root: PathBuf,
    /// The tmpfs size in bytes.
    pub size: u64,
    /// The tmpfs inode limit.
    pub inodes: u64,
}

impl RuntimeDirs {
    /// The directory of `uid`.
    pub fn path(&self, uid: u32) -> PathBuf {
        self.root.join(uid.to_string())
    }

    /// Creates (or takes over) the directory of `uid`, with a tmpfs on it when possible.
    pub fn create(&self, uid: u32, gid: u32) -> Result<PathBuf, RunDirError> {
        let dir = self.path(uid);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.root)
            .map_err(io_err("create", &self.root))?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &dir)(e)),
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(io_err("inspect", &dir))?;
        if !meta.is_dir() {
            return Err(io_err("use", &dir)(io::Error::other("not a directory")));
        }
        if !is_mount_point(&dir) {
            let data = format!(
                "mode=0700,uid={uid},gid={gid},size={},nr_inodes={}",
                self.size, self.inodes
            );
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if let Err(e) = dynamod_sys::mount::mount("tmpfs", &dir, "tmpfs", flags, Some(&data)) {
                tracing::warn!(
                    uid,
                    "runtime directory {} stays a plain directory: {e}",
                    dir.display()
                );
            }
        }
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_err("chown", &dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", &dir))?;
        Ok(dir)
    }

    /// Unmounts and removes the directory of `uid` with everything in it.
    pub fn remove(&self, uid: u32) -> Result<(), RunDirError> {
        let dir = self.path(uid);
        if std::fs::symlink_metadata(&dir).is_err() {
            return Ok(());
        }
        // Unmount every stacked mount, then remove whatever was under them.
        while is_mount_point(&dir) {
            if let Err(e) = dynamod_sys::mount::unmount(&dir, true) {
                tracing::warn!(uid, "cannot unmount {}: {e}", dir.display());
                break;
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }
}

/// Whether `dir` is a mount point: its device differs from its parent's, or (for a bind mount
/// of the same file system) it is listed in the mount table.
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(here), Some(Ok(parent))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    if here.dev() != parent.dev() {
        return true;
    }
    dynamod_sys::mountinfo::read(Path::new("/proc/self/mountinfo"))
        .map(|entries| {
            let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
            entries.iter().any(|e| e.mount_point == canonical)
        })
        .unwrap_or(false)
}

/// Parses `RuntimeDirectorySize`: a percentage of physical memory (`10%`) or a size with an
/// optional `K`, `M`, `G` suffix (powers of 1024); `mem_total` is the physical memory in bytes.
pub fn parse_size(value: &str, mem_total: u64) -> Result<u64, String> {
    let v = value.trim();
    if let Some(p) = v.strip_suffix('%') {
        let p: u64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a percentage"))?;
        if p == 0 || p > 100 {
            return Err(format!("{value:?} is not between 1% and 100%"));
        }
        return Ok(mem_total / 100 * p);
    }
    let (digits, mult) = match v.char_indices().last() {
        Some((i, 'K' | 'k')) => (&v[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&v[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a size"))?;
    n.checked_mul(mult)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{value:?} is not a usable size"))
}

/// Physical memory in bytes from `/proc/meminfo` (`MemTotal`).
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_percentages_of_memory_or_byte_counts() {
        assert_eq!(parse_size("10%", 1000), Ok(100));
        assert_eq!(parse_size("64M", 0), Ok(64 << 20));
        assert_eq!(parse_size("1G", 0), Ok(1 << 30));
        assert_eq!(parse_size("4096", 0), Ok(4096));
        for bad in ["", "0%", "101%", "x", "0", "-1M"] {
            assert!(parse_size(bad, 1000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mem_total_comes_from_meminfo() {
        assert_eq!(
            mem_total("MemTotal:        2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
    }
}
