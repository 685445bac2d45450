//! The sandbox's PID 1 before it becomes `dynamod-init` (xtask's hidden `__sandbox-stage2`
//! command). It runs as PID 1 of the new PID namespace, still in the host's mount namespace,
//! and prepares what a container engine would:
//!
//! 1. die with xtask (`PR_SET_PDEATHSIG`), move into the sandbox's cgroup;
//! 2. new mount, UTS, IPC, network and cgroup namespaces; the host name;
//! 3. `/` rprivate (nothing propagates back to the host), the rootfs bound on itself;
//! 4. `/proc`, a read-only `/sys`, a private `/dev` (tmpfs with the host's null, zero, full,
//!    random and urandom bound in, the pty console, the usual symlinks and directories);
//! 5. the `--volume` binds (read-only ones remounted so);
//! 6. `pivot_root` into the rootfs and detach the old root;
//! 7. a new session without a controlling terminal (as PID 1 at a real boot);
//! 8. exec `/sbin/dynamod-init` (or the stand-in given with `--init`) with an empty signal
//!    mask.
//!
//! Any failure is printed on the console (which xtask relays) and ends PID 1 with 125.

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::layout;

/// Exit code of PID 1 when the sandbox could not be set up (Docker's "engine error" code).
const SETUP_FAILED: u8 = 125;

/// Arguments of `__sandbox-stage2` (built by [`super::run`], not typed by people).
#[derive(Args)]
pub struct Stage2Args {
    /// The assembled root file system.
    #[arg(long)]
    rootfs: PathBuf,
    /// The pty slave to bind on /dev/console.
    #[arg(long)]
    console: PathBuf,
    /// Host name of the new UTS namespace.
    #[arg(long)]
    hostname: String,
    /// xtask's PID: if it is already gone, give up at once.
    #[arg(long)]
    parent: u32,
    /// The cgroup to move into before unsharing the cgroup namespace.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// HOST CONTAINER ro|rw, repeatable.
    #[arg(long, num_args = 3, value_names = ["HOST", "CONTAINER", "MODE"])]
    bind: Vec<String>,
    /// Program to exec as PID 1 (a path inside the rootfs).
    #[arg(long)]
    init: String,
    /// Its arguments.
    #[arg(long = "init-arg", allow_hyphen_values = true)]
    init_args: Vec<String>,
}

/// Sets the sandbox up and execs its init; returns only on failure, with the exit code.
pub fn run(args: &Stage2Args) -> u8 {
    let err = match setup(args) {
        Ok(()) => exec_init(args),
        Err(err) => err,
    };
    eprintln!("xtask sandbox: cannot start the sandbox's PID 1: {err:#}");
    SETUP_FAILED
}

fn setup(args: &Stage2Args) -> Result<()> {
    // Die with xtask, even if it is killed; then check it did not die before that took effect.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set the parent-death signal")?;
    if !Path::new(&format!("/proc/{}", args.parent)).exists() {
        bail!("xtask exited before the sandbox started");
    }
    if let Some(cg) = &args.cgroup {
        fs::write(cg.join("cgroup.procs"), "0")
            .with_context(|| format!("move into the cgroup {}", cg.display()))?;
    }

    // The remaining namespaces.
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    unshare(flags).context("unshare the mount, UTS, IPC, network and cgroup namespaces")?;
    nix::unistd::sethostname(&args.hostname).context("set the host name")?;

    // Nothing mounted from here on may propagate to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make / rprivate")?;
    let root = args.rootfs.canonicalize().context("resolve the rootfs")?;
    bind(&root, &root, true).context("bind the rootfs on itself")?;

    // /proc and /sys, before the old root (and the host's /proc that a rootless proc mount
    // must see) goes away. /sys is read-only: nothing in the sandbox may reconfigure the host.
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("proc"),
        &root.join("proc"),
        Some("proc"),
        nodev,
        None::<&str>,
    )
    .context("mount /proc")?;
    if let Err(err) = mount(
        Some("sysfs"),
        &root.join("sys"),
        Some("sysfs"),
        nodev | MsFlags::MS_RDONLY,
        None::<&str>,
    ) {
        eprintln!("xtask sandbox: warning: cannot mount /sys ({err}); continuing without it");
    }
    populate_dev(&root, &args.console)?;

    for triple in args.bind.chunks(3) {
        let [host, container, mode] = triple else {
            bail!("--bind takes three values")
        };
        bind_volume(&root, Path::new(host), Path::new(container), mode == "ro")
            .with_context(|| format!("volume {host}:{container}"))?;
    }

    // Into the rootfs: pivot_root(".", ".") stacks the old root on the new one; detaching it
    // leaves only the new root (pivot_root(2), "NOTES").
    nix::unistd::chdir(&root).context("chdir into the rootfs")?;
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach the old root")?;
    nix::unistd::chdir("/").context("chdir /")?;

    // A session of its own, away from the host terminal of xtask's session. The console is not
    // made its controlling terminal: as at a real boot, PID 1 has none, so a getty can take the
    // console without stealing it (stealing needs CAP_SYS_ADMIN in the initial user namespace,
    // which a rootless sandbox lacks).
    nix::unistd::setsid().context("setsid")?;
    Ok(())
}

/// Replaces this process with the init, with an empty signal mask: xtask blocks the signals it
/// reads from a signalfd, and std's `Command` passes the mask on (it only resets SIGPIPE).
fn exec_init(args: &Stage2Args) -> anyhow::Error {
    if let Err(err) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        return anyhow::Error::new(err).context("clear the signal mask");
    }
    let err = Command::new(&args.init).args(&args.init_args).exec();
    anyhow::Error::new(err).context(format!("exec {}", args.init))
}

/// A private `/dev` like a container engine's: a small tmpfs, the harmless host devices bound
/// in, the console, and the standard symlinks. `/dev/pts` and `/dev/shm` stay empty
/// directories for dynamod-init to mount.
fn populate_dev(root: &Path, console: &Path) -> Result<()> {
    let dev = root.join("dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .context("mount a tmpfs on /dev")?;
    for name in ["null", "zero", "full", "random", "urandom"] {
        let target = dev.join(name);
        File::create(&target).with_context(|| format!("create {}", target.display()))?;
        bind(&Path::new("/dev").join(name), &target, false)
            .with_context(|| format!("bind /dev/{name}"))?;
    }
    let target = dev.join("console");
    File::create(&target).context("create /dev/console")?;
    bind(console, &target, false).context("bind the console pty on /dev/console")?;
    for (name, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(name)).with_context(|| format!("symlink /dev/{name}"))?;
    }
    for (name, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        let dir = dev.join(name);
        fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Binds `host` on `container` inside `root`, creating the target (a directory or an empty
/// file, like the source), and remounts it read-only when asked.
fn bind_volume(root: &Path, host: &Path, container: &Path, read_only: bool) -> Result<()> {
    let target = layout::resolve_in(root, container)?;
    let is_dir = fs::metadata(host)
        .with_context(|| format!("stat {}", host.display()))?
        .is_dir();
    if is_dir {
        fs::create_dir_all(&target).with_context(|| format!("create {}", target.display()))?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        if !target.exists() {
            File::create(&target).with_context(|| format!("create {}", target.display()))?;
        }
    }
    if !target.canonicalize()?.starts_with(root) {
        bail!("{} resolves outside the sandbox", container.display());
    }
    bind(host, &target, true)?;
    if read_only {
        // A remount must keep the flags the kernel locked on the source mount (in a user
        // namespace it refuses to drop nosuid/nodev/noexec or the atime mode).
        let locked = locked_flags(&target)?;
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
            None::<&str>,
        )
        .with_context(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

/// The per-mount flags of `path` that a bind remount has to repeat.
fn locked_flags(path: &Path) -> Result<MsFlags> {
    let st = statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    let have = st.flags();
    let mut flags = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

fn bind(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("bind {} on {}", source.display(), target.display()))
}
