//! Phase A (SPEC §2.2): from an initramfs, find the real root, mount it on `/newroot`, move
//! `/proc`, `/sys`, `/dev` and `/run` into it, free the initramfs, switch root and re-exec
//! dynamod-init from the new root (`/sbin/dynamod-init` or `/usr/sbin/dynamod-init`).
//!
//! Steps, each logged:
//! 1. the API filesystems (as in phase B) and `/dev/kmsg` logging;
//! 2. the command line ([`rootspec`](crate::rootspec)): a disk root or a live system;
//! 3. drivers and the device ([`rootdev`](crate::rootdev)): modules for the hardware present,
//!    then the device named by `root=`, waiting as `rootwait`/`rootdelay=` say;
//! 4. the mount, with the type from `rootfstype=` or the superblock, `rootflags=` and `ro`/`rw`
//!    (or the live assembly, [`live`](crate::live));
//! 5. a check that the new root has dynamod-init, before anything irreversible;
//! 6. `/run/dynamod/initramfs.env` records how the root was found (it survives the switch,
//!    since `/run` moves);
//! 7. the moves, the deletion of the initramfs (never crossing a mount point), switch root
//!    and exec.
//!
//! Any failure before step 7 undoes the mounts, prints the reason on the console and starts
//! the emergency shell; when the shell exits, phase A starts over (the operator may have
//! loaded a driver or attached the disk). It never hangs silently: waits without `rootwait`
//! end once devices settle, and `rootwait` prints progress.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dynamod_sys::blkid::BlockDevice;
use dynamod_sys::cmdline::Cmdline;
use dynamod_sys::kmsg;
use dynamod_sys::mount::{self, MsFlags};
use dynamod_sys::nix::errno::Errno;
use dynamod_sys::process;
use dynamod_sys::switch_root::{self, SwitchRootError};

use crate::detect::Environment;
use crate::emergency::{self, ShellConfig};
use crate::rootdev::{self, Finder, NotFound};
use crate::rootspec::{self, ParamError, Plan, RootParams};
use crate::setup::{self, chain};

/// Where the real root is mounted before the switch.
pub const NEWROOT: &str = "/newroot";
/// The record of how the root was found, readable after the switch.
pub const RECORD: &str = "/run/dynamod/initramfs.env";
/// Where dynamod-init may live in the new root, in order of preference.
pub const INIT_PATHS: [&str; 2] = ["/sbin/dynamod-init", "/usr/sbin/dynamod-init"];
/// The mounts carried into the new root.
pub const MOVED: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// Why phase A did not hand over to the real root.
#[derive(Debug)]
pub enum PhaseAError {
    /// A kernel parameter is unusable.
    Params(ParamError),
    /// The device never appeared.
    NotFound(NotFound),
    /// The device holds something that cannot be mounted as a root.
    Unmountable {
        /// The device node.
        device: PathBuf,
        /// What it holds.
        fs_type: &'static str,
    },
    /// Every filesystem type tried was refused.
    Mount {
        /// The device or source.
        device: String,
        /// The mount point.
        target: PathBuf,
        /// Each type tried, with the kernel's answer.
        tried: Vec<(String, Errno)>,
    },
    /// A directory, a file or a loop device needed on the way could not be set up.
    Prepare(String),
    /// The live medium does not hold the image.
    NoImage {
        /// The image path on the medium.
        path: PathBuf,
        /// The medium.
        medium: String,
    },
    /// The mounted root has no dynamod-init.
    NoInit {
        /// What was mounted.
        root: String,
    },
    /// A step of the switch failed.
    Switch(SwitchRootError),
}

impl fmt::Display for PhaseAError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Params(e) => write!(f, "bad kernel parameter {e}"),
            Self::NotFound(e) => write!(f, "{e}"),
            Self::Unmountable { device, fs_type } => match *fs_type {
                "crypto_LUKS" => write!(
                    f,
                    "{} is LUKS-encrypted; unlocking an encrypted root is not supported",
                    device.display()
                ),
                other => write!(f, "{} holds {other}, not a filesystem", device.display()),
            },
            Self::Mount {
                device,
                target,
                tried,
            } => {
                write!(f, "cannot mount {device} on {}", target.display())?;
                if tried.is_empty() {
                    f.write_str(": its type is unknown and the kernel offers no block filesystem; set rootfstype=")
                } else {
                    let list: Vec<String> =
                        tried.iter().map(|(t, e)| format!("{t}: {e}")).collect();
                    write!(f, " ({})", list.join("; "))
                }
            }
            Self::Prepare(what) => f.write_str(what),
            Self::NoImage { path, medium } => {
                write!(
                    f,
                    "{medium} does not hold the live image {}",
                    path.display()
                )
            }
            Self::NoInit { root } => write!(
                f,
                "{root} has no dynamod-init at {} or {}",
                INIT_PATHS[0], INIT_PATHS[1]
            ),
            Self::Switch(e) => write!(f, "{}", chain(e)),
        }
    }
}

impl std::error::Error for PhaseAError {}

impl From<ParamError> for PhaseAError {
    fn from(e: ParamError) -> Self {
        Self::Params(e)
    }
}

impl From<NotFound> for PhaseAError {
    fn from(e: NotFound) -> Self {
        Self::NotFound(e)
    }
}

/// What was mounted as the new root, for the log and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// The parameter that named it (`UUID=…`, `dynamod.live`).
    pub spec: String,
    /// The device or image behind it.
    pub source: String,
    /// Its filesystem type (`overlay` for a live root).
    pub fs_type: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// For a live root: how it was assembled.
    pub live: Option<String>,
}

/// The mounts made so far, undone (in reverse) when phase A gives up.
#[derive(Debug, Default)]
pub struct Unwind {
    points: Vec<PathBuf>,
}

impl Unwind {
    /// Remembers a mount point.
    pub fn push(&mut self, p: impl Into<PathBuf>) {
        self.points.push(p.into());
    }

    /// Detaches every remembered mount, newest first.
    pub fn undo(&mut self) {
        while let Some(p) = self.points.pop() {
            if let Err(e) = mount::unmount(&p, true) {
                warn!("undo: {}", chain(&e));
            }
        }
    }

    /// Forgets the mounts (they are now the system's).
    pub fn keep(&mut self) {
        self.points.clear();
    }

    /// Removes `p` from the list (it was unmounted on purpose).
    pub fn forget(&mut self, p: &Path) {
        self.points.retain(|x| x != p);
    }
}

/// Runs phase A; never returns. Mounts the API filesystems, then tries to switch to the real
/// root; on failure runs the emergency shell and tries again when it exits.
pub fn boot(cmdline: &Cmdline, shell: &ShellConfig) -> ! {
    setup::mount_api_filesystems(Environment::Initramfs);
    if kmsg::use_kmsg(Path::new("/dev/kmsg")).is_err() {
        warn!("cannot open /dev/kmsg; logging to the console");
    }
    let mut attempt: u32 = 1;
    loop {
        let err = switch_to_real_root(cmdline);
        emerg!("cannot boot the real root: {err}");
        emerg!("starting the emergency shell; when it exits, the root is looked for again");
        run_shell(shell);
        attempt = attempt.saturating_add(1);
        info!("phase A, attempt {attempt}");
    }
}

/// Runs the emergency shell and waits for it. Without a shell, waits a little (a device may
/// still appear) so the retry loop never spins.
fn run_shell(shell: &ShellConfig) {
    let child = match emergency::spawn(shell) {
        Ok(child) => child,
        Err(e) => {
            emerg!("cannot start the emergency shell: {e}; trying again in 5 s");
            std::thread::sleep(std::time::Duration::from_secs(5));
            return;
        }
    };
    info!(
        "emergency shell running (pid {}); phase A starts over when it exits",
        child.pid
    );
    match process::wait_pid(child.pid) {
        Ok(status) => info!(
            "emergency shell exited ({})",
            crate::supervise::StatusText(status)
        ),
        Err(e) => warn!("waiting for the emergency shell: {e}"),
    }
}

/// One attempt. Returns only on failure, with the mounts it made undone.
fn switch_to_real_root(cmdline: &Cmdline) -> PhaseAError {
    let decoded = match rootspec::decode(cmdline) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    for note in &decoded.notes {
        info!("{note}");
    }
    let mut finder = Finder::new();
    let mut unwind = Unwind::default();
    let mounted = match &decoded.plan {
        Plan::Disk(p) => mount_disk(p, &mut finder, &mut unwind),
        Plan::Live(l) => crate::live::assemble(l, &mut finder, &mut unwind),
    };
    let mounted = match mounted {
        Ok(m) => m,
        Err(e) => {
            unwind.undo();
            return e;
        }
    };
    info!(
        "root {} ({}) mounted on {NEWROOT} as {}{}",
        mounted.source,
        mounted.spec,
        mounted.fs_type,
        if mounted.read_only { ", read-only" } else { "" }
    );
    let Some(init) = find_init(Path::new(NEWROOT)) else {
        unwind.undo();
        return PhaseAError::NoInit {
            root: mounted.source,
        };
    };
    write_record(&mounted, &finder);
    if let Err(e) = move_api_filesystems(Path::new(NEWROOT)) {
        unwind.undo();
        return e;
    }
    unwind.keep();

    // The point of no return: the initramfs goes away.
    match switch_root::empty_initramfs(Path::new("/")) {
        Ok(done) if done.failed == 0 => info!("freed the initramfs ({} entries)", done.removed),
        Ok(done) => warn!(
            "freed the initramfs ({} entries; {} could not be removed)",
            done.removed, done.failed
        ),
        Err(e) => warn!("initramfs not freed: {}", chain(&e)),
    }
    if let Err(e) = switch_root::switch_root(Path::new(NEWROOT)) {
        return PhaseAError::Switch(e);
    }
    info!(
        "switched root to {} after {} ms; executing {init}",
        mounted.source,
        finder.elapsed_ms()
    );
    let args: Vec<OsString> = std::iter::once(OsString::from(init))
        .chain(std::env::args_os().skip(1))
        .collect();
    let env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    let argv: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let envp: Vec<&OsStr> = env.iter().map(OsString::as_os_str).collect();
    PhaseAError::Switch(switch_root::exec(Path::new(init), &argv, &envp))
}

/// Finds and mounts a disk root on [`NEWROOT`].
fn mount_disk(
    p: &RootParams,
    finder: &mut Finder,
    unwind: &mut Unwind,
) -> Result<Mounted, PhaseAError> {
    if p.delay_s > 0 {
        log_at!(
            Notice,
            "rootdelay={}: waiting before looking for the root device",
            p.delay_s
        );
        std::thread::sleep(std::time::Duration::from_secs(p.delay_s));
    }
    let dev = finder.wait_for(&p.device, "root device", p.wait)?;
    info!("root device {} is {}", p.device, dev.describe());
    let mut flags = p.options.flags;
    if p.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let (fs_type, read_only) = mount_device(
        finder,
        &dev,
        Path::new(NEWROOT),
        &p.fs_types,
        flags,
        &p.options.data,
    )?;
    unwind.push(NEWROOT);
    Ok(Mounted {
        spec: p.device.to_string(),
        source: dev.node.display().to_string(),
        fs_type,
        read_only,
        live: None,
    })
}

/// Mounts `dev` on `target`, trying the explicit types, else the probed one, else every block
/// filesystem the kernel knows. A read-only device asked for read-write is mounted read-only
/// with a warning, as the kernel does for its own root. Returns the type that worked and
/// whether the mount is read-only.
pub fn mount_device(
    finder: &mut Finder,
    dev: &BlockDevice,
    target: &Path,
    explicit: &[String],
    flags: MsFlags,
    data: &str,
) -> Result<(String, bool), PhaseAError> {
    if let Some(p) = &dev.probe
        && !p.mountable()
    {
        return Err(PhaseAError::Unmountable {
            device: dev.node.clone(),
            fs_type: p.fs_type,
        });
    }
    let types: Vec<String> = if !explicit.is_empty() {
        explicit.to_vec()
    } else if let Some(p) = &dev.probe {
        vec![p.fs_type.to_owned()]
    } else {
        rootdev::kernel_block_filesystems()
    };
    mount::ensure_dir(target, 0o755).map_err(|e| PhaseAError::Prepare(chain(&e)))?;
    let source = dev.node.to_string_lossy().into_owned();
    let data = (!data.is_empty()).then_some(data);
    let mut tried = Vec::new();
    for t in types {
        finder.ensure_filesystem(&t);
        match mount::mount(&source, target, &t, flags, data) {
            Ok(()) => return Ok((t, flags.contains(MsFlags::MS_RDONLY))),
            Err(e)
                if matches!(e.errno(), Some(Errno::EACCES | Errno::EROFS))
                    && !flags.contains(MsFlags::MS_RDONLY) =>
            {
                match mount::mount(&source, target, &t, flags | MsFlags::MS_RDONLY, data) {
                    Ok(()) => {
                        warn!("{source} is write-protected; mounted read-only");
                        return Ok((t, true));
                    }
                    Err(e) => tried.push((t, e.errno().unwrap_or(Errno::EIO))),
                }
            }
            Err(e) => tried.push((t, e.errno().unwrap_or(Errno::EIO))),
        }
    }
    Err(PhaseAError::Mount {
        device: source,
        target: target.to_owned(),
        tried,
    })
}

/// Resolves `rel` inside `root` as a process chrooted there would: absolute symlinks are
/// taken relative to `root`, `..` never leaves it. `None` after 40 links (a loop).
pub fn resolve_in(root: &Path, rel: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut pending: Vec<OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&part);
        match std::fs::read_link(&here) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.is_absolute() {
                    done.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => done.push(part),
        }
    }
    Some(root.join(done.iter().collect::<PathBuf>()))
}

/// The first of [`INIT_PATHS`] that is an executable file inside `root`, as a path inside it.
pub fn find_init(root: &Path) -> Option<&'static str> {
    INIT_PATHS.into_iter().find(|p| {
        resolve_in(root, Path::new(p))
            .and_then(|r| std::fs::metadata(r).ok())
            .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The lines of [`RECORD`].
pub fn record_text(m: &Mounted, modules: &[String], elapsed_ms: u64) -> String {
    let mut s = String::from("# How dynamod-init's initramfs phase found the root.\n");
    s.push_str(&format!("root_spec={}\n", m.spec));
    s.push_str(&format!("root_source={}\n", m.source));
    s.push_str(&format!("root_fstype={}\n", m.fs_type));
    s.push_str(&format!(
        "root_mode={}\n",
        if m.read_only { "ro" } else { "rw" }
    ));
    s.push_str(&format!("live={}\n", m.live.as_deref().unwrap_or("no")));
    s.push_str(&format!("modules={}\n", modules.join(" ")));
    s.push_str(&format!("elapsed_ms={elapsed_ms}\n"));
    s
}

fn write_record(m: &Mounted, finder: &Finder) {
    let text = record_text(m, &finder.loaded_modules(), finder.elapsed_ms());
    let path = Path::new(RECORD);
    let written = path
        .parent()
        .map_or(Ok(()), |d| {
            mount::ensure_dir(d, 0o755).map_err(|e| std::io::Error::other(chain(&e)))
        })
        .and_then(|()| std::fs::write(path, text));
    if let Err(e) = written {
        warn!("cannot write {RECORD}: {e}");
    }
}

/// Moves [`MOVED`] into `new_root`; on failure moves back what was moved.
fn move_api_filesystems(new_root: &Path) -> Result<(), PhaseAError> {
    let mut moved: Vec<&str> = Vec::new();
    for m in MOVED {
        let to = new_root.join(m.trim_start_matches('/'));
        let result = mount::ensure_dir(&to, 0o755)
            .map_err(|e| PhaseAError::Prepare(format!("{} (the new root needs it)", chain(&e))))
            .and_then(|()| switch_root::move_mount(Path::new(m), &to).map_err(PhaseAError::Switch));
        if let Err(e) = result {
            for back in moved.iter().rev() {
                let from = new_root.join(back.trim_start_matches('/'));
                if let Err(e) = switch_root::move_mount(&from, Path::new(back)) {
                    warn!("moving {back} back: {}", chain(&e));
                }
            }
            return Err(e);
        }
        moved.push(m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dynamod-initramfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn init_is_found_in_sbin_first() {
        let r = temp("sbin");
        exe(&r.join("sbin/dynamod-init"));
        exe(&r.join("usr/sbin/dynamod-init"));
        assert_eq!(find_init(&r), Some("/sbin/dynamod-init"));
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn merged_usr_with_an_absolute_sbin_link_stays_in_the_new_root() {
        let r = temp("merged");
        exe(&r.join("usr/sbin/dynamod-init"));
        symlink("/usr/sbin", r.join("sbin")).unwrap();
        assert_eq!(find_init(&r), Some("/sbin/dynamod-init"));
        assert_eq!(
            resolve_in(&r, Path::new("/sbin/dynamod-init")).unwrap(),
            r.join("usr/sbin/dynamod-init")
        );
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn only_usr_sbin_is_enough_and_non_executables_do_not_count() {
        let r = temp("usr");
        exe(&r.join("usr/sbin/dynamod-init"));
        std::fs::create_dir_all(r.join("sbin")).unwrap();
        std::fs::write(r.join("sbin/dynamod-init"), "").unwrap();
        assert_eq!(find_init(&r), Some("/usr/sbin/dynamod-init"));
        std::fs::remove_dir_all(&r).unwrap();
        let empty = temp("empty");
        assert_eq!(find_init(&empty), None);
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn resolution_never_climbs_out_and_stops_on_loops() {
        let r = temp("escape");
        symlink("../../../../etc", r.join("up")).unwrap();
        assert_eq!(resolve_in(&r, Path::new("up/x")).unwrap(), r.join("etc/x"));
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        assert_eq!(resolve_in(&r, Path::new("a/x")), None);
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn record_lists_root_and_modules() {
        let m = Mounted {
            spec: "UUID=u".into(),
            source: "/dev/vda".into(),
            fs_type: "ext4".into(),
            read_only: true,
            live: None,
        };
        let t = record_text(&m, &["virtio_blk".into(), "ext4".into()], 1234);
        assert!(t.contains("\nroot_spec=UUID=u\n"));
        assert!(t.contains("\nroot_mode=ro\n"));
        assert!(t.contains("\nlive=no\n"));
        assert!(t.contains("\nmodules=virtio_blk ext4\n"));
    }

    #[test]
    fn errors_read_as_one_clear_line() {
        let e = PhaseAError::Mount {
            device: "/dev/vda".into(),
            target: NEWROOT.into(),
            tried: vec![
                ("ext4".into(), Errno::EINVAL),
                ("xfs".into(), Errno::ENODEV),
            ],
        };
        assert_eq!(
            e.to_string(),
            "cannot mount /dev/vda on /newroot (ext4: EINVAL: Invalid argument; xfs: ENODEV: No such device)"
        );
        let e = PhaseAError::Unmountable {
            device: "/dev/vda2".into(),
            fs_type: "crypto_LUKS",
        };
        assert!(e.to_string().contains("not supported"));
        let e = PhaseAError::NoInit {
            root: "/dev/vda".into(),
        };
        assert_eq!(
            e.to_string(),
            "/dev/vda has no dynamod-init at /sbin/dynamod-init or /usr/sbin/dynamod-init"
        );
    }
}
