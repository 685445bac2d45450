//! Leaving the initramfs: moving mounts into the new root, freeing the initramfs's memory and
//! making the new root `/` (what `switch_root(8)` does).
//!
//! The initramfs is a ramfs/tmpfs that cannot be unmounted (it is the rootfs), so its files are
//! deleted instead, to give their memory back; the deletion never crosses into another
//! filesystem (the new root, `/proc`, …), which is decided by the device number of each
//! directory.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::mount::is_ram_backed;

/// A step of the switch failed.
#[derive(Debug, thiserror::Error)]
pub enum SwitchRootError {
    /// `mount --move` failed.
    #[error("move mount {from} to {to}")]
    Move {
        /// The mount point.
        from: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// The current root is not the initramfs (deleting it would destroy a real filesystem).
    #[error("refusing to empty {path}: it is not a ramfs or tmpfs")]
    NotRamfs {
        /// The directory.
        path: PathBuf,
    },
    /// A directory could not be inspected.
    #[error("inspect {path}")]
    Stat {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// chdir, the move onto `/`, or chroot failed.
    #[error("{step} {path}")]
    Switch {
        /// Which call.
        step: &'static str,
        /// Its path argument.
        path: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
    /// execve returned.
    #[error("execute {path}")]
    Exec {
        /// The program.
        path: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
}

/// Moves the mount at `from` to `to` (`MS_MOVE`), submounts included.
pub fn move_mount(from: &Path, to: &Path) -> Result<(), SwitchRootError> {
    nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(
        |source| SwitchRootError::Move {
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        },
    )
}

/// What [`empty_initramfs`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Emptied {
    /// Files, links and directories removed.
    pub removed: u64,
    /// Entries that could not be removed (logged by the caller as a count).
    pub failed: u64,
}

/// Deletes everything below `root` that lives on `root`'s own filesystem, never descending
/// into a directory on another device (a mount point), and keeps `root` itself. Refuses
/// unless `root` is a ramfs or tmpfs.
pub fn empty_initramfs(root: &Path) -> Result<Emptied, SwitchRootError> {
    if !is_ram_backed(root).unwrap_or(false) {
        return Err(SwitchRootError::NotRamfs {
            path: root.to_owned(),
        });
    }
    delete_contents_on_device(root)
}

/// The device-bounded deletion behind [`empty_initramfs`], without the ramfs check (tests run
/// it on a temporary directory).
pub fn delete_contents_on_device(root: &Path) -> Result<Emptied, SwitchRootError> {
    let dev = std::fs::symlink_metadata(root)
        .map_err(|source| SwitchRootError::Stat {
            path: root.to_owned(),
            source,
        })?
        .dev();
    let mut done = Emptied::default();
    delete_below(root, dev, &mut done);
    Ok(done)
}

fn delete_below(dir: &Path, dev: u64, done: &mut Emptied) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        done.failed += 1;
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            done.failed += 1;
            continue;
        };
        if meta.dev() != dev {
            // A mount point: another filesystem, left alone with everything below it.
            continue;
        }
        let removed = if meta.is_dir() {
            delete_below(&path, dev, done);
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => done.removed += 1,
            Err(_) => done.failed += 1,
        }
    }
}

/// Makes `new_root` the root: `chdir(new_root)`, move it onto `/`, `chroot(".")`,
/// `chdir("/")`. The caller has moved the API filesystems and emptied the initramfs first.
pub fn switch_root(new_root: &Path) -> Result<(), SwitchRootError> {
    fn step(step: &'static str, path: &Path) -> impl FnOnce(Errno) -> SwitchRootError {
        let path = path.to_owned();
        move |source| SwitchRootError::Switch { step, path, source }
    }
    nix::unistd::chdir(new_root).map_err(step("chdir", new_root))?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(step("move onto /", new_root))?;
    nix::unistd::chroot(".").map_err(step("chroot", new_root))?;
    nix::unistd::chdir("/").map_err(step("chdir", Path::new("/")))
}

/// Replaces this process with `program`, passing `args` (argv\[0\] first) and `env`
/// (`KEY=VALUE`). Returns only on failure.
pub fn exec(program: &Path, args: &[&OsStr], env: &[&OsStr]) -> SwitchRootError {
    let c = |s: &OsStr| CString::new(s.as_bytes()).unwrap_or_default();
    let path = c(program.as_os_str());
    let argv: Vec<CString> = args.iter().map(|a| c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| c(e)).collect();
    match nix::unistd::execve(&path, &argv, &envp) {
        Err(source) => SwitchRootError::Exec {
            path: program.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dynamod-sys-switch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn deletion_empties_the_tree_but_keeps_the_root() {
        let d = temp("plain");
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        std::fs::write(d.join("a/b/c/f"), "x").unwrap();
        std::fs::write(d.join("init"), "x").unwrap();
        symlink("/nonexistent", d.join("dangling")).unwrap();
        let done = delete_contents_on_device(&d).unwrap();
        assert_eq!(done.removed, 6);
        assert_eq!(done.failed, 0);
        assert!(d.is_dir());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir(&d).unwrap();
    }

    #[test]
    fn symlinked_directories_are_removed_not_followed() {
        let d = temp("link");
        let outside = temp("outside");
        std::fs::write(outside.join("keep"), "x").unwrap();
        symlink(&outside, d.join("to-outside")).unwrap();
        delete_contents_on_device(&d).unwrap();
        assert!(outside.join("keep").exists());
        std::fs::remove_dir_all(&outside).unwrap();
        std::fs::remove_dir(&d).unwrap();
    }

    #[test]
    fn deletion_never_crosses_a_mount_point() {
        // Needs a mount: run it in a thread with a mount namespace of its own (root only).
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = temp("mount");
        let handle = {
            let d = d.clone();
            std::thread::spawn(move || {
                nix::sched::unshare(
                    nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS,
                )
                .unwrap();
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .unwrap();
                std::fs::create_dir_all(d.join("newroot")).unwrap();
                std::fs::write(d.join("file"), "x").unwrap();
                nix::mount::mount(
                    Some("tmpfs"),
                    &d.join("newroot"),
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .unwrap();
                std::fs::write(d.join("newroot/precious"), "x").unwrap();
                let done = delete_contents_on_device(&d).unwrap();
                let precious = d.join("newroot/precious").exists();
                let file = d.join("file").exists();
                nix::mount::umount(&d.join("newroot")).unwrap();
                (done, precious, file)
            })
        };
        let (done, precious, file) = handle.join().unwrap();
        assert!(precious, "the mounted filesystem was entered");
        assert!(!file);
        assert_eq!(done.removed, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn emptying_a_disk_directory_is_refused() {
        // /proc is neither ramfs nor tmpfs.
        assert!(matches!(
            empty_initramfs(Path::new("/proc")),
            Err(SwitchRootError::NotRamfs { .. })
        ));
    }
}
