//! Mounting, unmounting and the filesystem facts PID 1 needs (mount(2), umount(2), statfs(2),
//! unshare(2) for the cgroup namespace).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MntFlags;
pub use nix::mount::MsFlags;

/// `RAMFS_MAGIC` from linux/magic.h (nix does not export it).
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// `TMPFS_MAGIC` from linux/magic.h.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A mount-related system call failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// mount(2) refused.
    #[error("mount {fs_type} on {target}")]
    Mount {
        /// Filesystem type.
        fs_type: String,
        /// Mount point.
        target: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// umount2(2) refused.
    #[error("unmount {target}")]
    Unmount {
        /// Mount point.
        target: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// The read-only remount refused.
    #[error("remount {target} read-only")]
    RemountReadOnly {
        /// Mount point.
        target: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// The mount point could not be created.
    #[error("create mount point {path}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// statfs(2) failed.
    #[error("statfs {path}")]
    Statfs {
        /// The path.
        path: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// unshare(CLONE_NEWCGROUP) failed.
    #[error("enter a new cgroup namespace")]
    UnshareCgroup(#[source] Errno),
}

impl MountError {
    /// The errno behind the failure, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Mount { source, .. }
            | Self::Unmount { source, .. }
            | Self::RemountReadOnly { source, .. }
            | Self::Statfs { source, .. }
            | Self::UnshareCgroup(source) => Some(*source),
            Self::Mkdir { source, .. } => source.raw_os_error().map(Errno::from_raw),
        }
    }
}

/// Creates `path` (and its parents) with mode `mode` for any directory it creates.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), MountError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| MountError::Mkdir {
            path: path.to_owned(),
            source,
        })
}

/// Mounts a filesystem of type `fs_type` from `source` on `target` with `flags` and
/// filesystem-specific `data` (mount(2)).
pub fn mount(
    source: &str,
    target: &Path,
    fs_type: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    nix::mount::mount(Some(source), target, Some(fs_type), flags, data).map_err(|source| {
        MountError::Mount {
            fs_type: fs_type.to_owned(),
            target: target.to_owned(),
            source,
        }
    })
}

/// Unmounts `target`; with `lazy`, detaches it now and lets the kernel finish once it is no
/// longer busy (`MNT_DETACH`).
pub fn unmount(target: &Path, lazy: bool) -> Result<(), MountError> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    nix::mount::umount2(target, flags).map_err(|source| MountError::Unmount {
        target: target.to_owned(),
        source,
    })
}

/// Remounts the filesystem at `target` read-only (`MS_REMOUNT|MS_RDONLY`).
pub fn remount_read_only(target: &Path) -> Result<(), MountError> {
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|source| MountError::RemountReadOnly {
        target: target.to_owned(),
        source,
    })
}

/// The `f_type` magic number of the filesystem holding `path` (statfs(2)).
pub fn fs_magic(path: &Path) -> Result<i64, MountError> {
    let st = nix::sys::statfs::statfs(path).map_err(|source| MountError::Statfs {
        path: path.to_owned(),
        source,
    })?;
    // f_type is a signed or unsigned word depending on the libc; the magics fit in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.filesystem_type().0 as i64)
}

/// Whether `path` lives on ramfs or tmpfs (how an initramfs root looks).
pub fn is_ram_backed(path: &Path) -> Result<bool, MountError> {
    fs_magic(path).map(|m| m == RAMFS_MAGIC || m == TMPFS_MAGIC)
}

/// Moves this process into a new cgroup namespace rooted at its current cgroup, so a cgroup2
/// mounted afterwards shows only that subtree (cgroup_namespaces(7)).
pub fn unshare_cgroup_namespace() -> Result<(), MountError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(MountError::UnshareCgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_not_ram_backed_and_tmp_reports_a_magic() {
        assert!(!is_ram_backed(Path::new("/proc")).unwrap());
        assert!(fs_magic(Path::new("/")).is_ok());
    }

    #[test]
    fn statfs_error_names_the_path() {
        let err = fs_magic(Path::new("/nonexistent/dynamod")).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOENT));
        assert!(err.to_string().contains("/nonexistent/dynamod"));
    }

    #[test]
    fn ensure_dir_creates_parents_and_accepts_existing() {
        let base = std::env::temp_dir().join(format!("dynamod-sys-mount-{}", std::process::id()));
        let deep = base.join("a/b");
        ensure_dir(&deep, 0o755).unwrap();
        ensure_dir(&deep, 0o755).unwrap();
        assert!(deep.is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
