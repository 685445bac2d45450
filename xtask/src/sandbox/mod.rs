//! `cargo xtask sandbox`: dynamod as PID 1 of fresh namespaces on this machine, like a
//! container, with the boot log in the foreground.
//!
//! How a run goes:
//! 1. Build the static binaries (unless told not to) and assemble `<state-dir>/rootfs` from
//!    scratch: the install layout, busybox, a minimal `/etc` ([`crate::rootfs`]).
//! 2. Open a pty: its slave becomes the sandbox's `/dev/console` and PID 1's stdio; xtask copies
//!    the master to its stdout (and its stdin to the master when stdin is a terminal).
//! 3. As root, create a cgroup of its own for the sandbox under the host's cgroup2 tree, so
//!    parallel sandboxes never share one; rootless, enter a new user namespace mapping the
//!    caller to root instead.
//! 4. `unshare(CLONE_NEWPID)`, then spawn this binary's hidden `__sandbox-stage2` command: it is
//!    PID 1 of the new PID namespace. It enters new mount, UTS, IPC, network and cgroup
//!    namespaces, builds the mounts, pivots into the rootfs and execs `/sbin/dynamod-init`
//!    ([`stage2`]).
//! 5. Record PID 1's host PID in `<state-dir>/pid` (for `sandbox exec`), relay the console, and
//!    forward Ctrl-C / SIGTERM / SIGHUP as SIGTERM to PID 1 (a second one sends SIGKILL).
//! 6. When PID 1 is gone the kernel has killed everything else in its namespace; xtask checks
//!    that no process is left, removes the cgroup and exits with PID 1's status.

pub mod cgroup;
pub mod console;
pub mod exec;
pub mod stage2;

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::layout::{InstallOptions, ServiceSet};
use crate::{build, busybox, cmd, rootfs};

/// `PATH` inside the sandbox, for PID 1 and for `sandbox exec`.
pub const SANDBOX_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of `container=` in PID 1's environment (how dynamod-init knows it is contained).
pub const CONTAINER_ENV: &str = "dynamod-sandbox";

/// What `cargo xtask sandbox` was asked to do.
pub struct SandboxOptions {
    /// Holds `pid`, `pidns` and `rootfs/`.
    pub state_dir: PathBuf,
    /// Extra bind mounts.
    pub volumes: Vec<Volume>,
    /// Which service files the rootfs gets.
    pub services: ServiceSet,
    /// Build the static binaries first.
    pub build: bool,
    /// Where the binaries are when not building (default: the release directory of the musl
    /// target).
    pub bin_dir: Option<PathBuf>,
    /// A stand-in for `/sbin/dynamod-init` (program inside the rootfs, arguments).
    pub init: Option<(String, Vec<String>)>,
}

/// One `--volume HOST:CONTAINER[:ro|:rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path (relative ones are taken from the current directory).
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub container: PathBuf,
    /// Remounted read-only.
    pub read_only: bool,
}

impl FromStr for Volume {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            [_, _, opt] => return Err(format!("unknown volume option {opt:?} (use ro or rw)")),
            _ => return Err("expected HOST:CONTAINER or HOST:CONTAINER:ro".to_owned()),
        };
        if host.is_empty() {
            return Err("the host path is empty".to_owned());
        }
        let container = Path::new(container);
        if !container.is_absolute() {
            return Err(format!(
                "the container path {} is not absolute",
                container.display()
            ));
        }
        if container.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "the container path {} contains `..`",
                container.display()
            ));
        }
        if container
            .components()
            .all(|c| c == Component::RootDir || c == Component::CurDir)
        {
            return Err("cannot bind over the sandbox's /".to_owned());
        }
        Ok(Self {
            host: host.into(),
            container: container.to_path_buf(),
            read_only,
        })
    }
}

/// The state directory: `dir` made absolute, or `<target>/sandbox`.
pub fn state_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(dir) if dir.is_absolute() => Ok(dir),
        Some(dir) => Ok(std::env::current_dir()
            .context("current directory")?
            .join(dir)),
        None => Ok(build::target_dir().join("sandbox")),
    }
}

/// The host PID of the sandbox running from `state_dir`, if one is running: the recorded PID
/// must still be the init of the recorded PID namespace (so a reused PID is never mistaken).
pub fn running_pid(state_dir: &Path) -> Result<Option<i32>> {
    let Ok(pid) = fs::read_to_string(state_dir.join("pid")) else {
        return Ok(None);
    };
    let pid: i32 = pid
        .trim()
        .parse()
        .with_context(|| format!("{} holds no PID", state_dir.join("pid").display()))?;
    let Ok(recorded) = fs::read_to_string(state_dir.join("pidns")) else {
        return Ok(None);
    };
    let live = fs::read_link(format!("/proc/{pid}/ns/pid"));
    Ok(live
        .ok()
        .filter(|ns| ns.as_os_str() == recorded.trim())
        .map(|_| pid))
}

/// Runs a sandbox in the foreground and returns the exit code xtask should end with.
pub fn run(opts: &SandboxOptions) -> Result<u8> {
    let state = &opts.state_dir;
    fs::create_dir_all(state).with_context(|| format!("create {}", state.display()))?;
    if let Some(pid) = running_pid(state)? {
        bail!(
            "a sandbox is already running from {} (PID 1 is host PID {pid}); stop it first or \
             give another --state-dir",
            state.display()
        );
    }

    // Binaries, busybox and the root file system.
    let bin_dir = match (&opts.bin_dir, opts.build) {
        (_, true) => build::build_static()?,
        (Some(dir), false) => dir.clone(),
        (None, false) => build::static_bin_dir(),
    };
    build::check_bin_dir(&bin_dir)?;
    let binds = resolve_volumes(&opts.volumes)?;
    let busybox = busybox::locate()?;
    let rootfs = state.join("rootfs");
    let install = InstallOptions {
        bin_dir: &bin_dir,
        services: opts.services,
    };
    rootfs::assemble(&rootfs, &install, &busybox)?;
    let init = opts
        .init
        .clone()
        .unwrap_or_else(|| ("/sbin/dynamod-init".to_owned(), Vec::new()));
    let rootless = !cmd::is_root();
    if cmd::which("nsenter").is_none() {
        console::note("nsenter (util-linux) is missing: `sandbox exec` will not work");
    }

    // Console, cgroup and the exe path: everything that may start a helper process happens
    // before the PID namespace exists, because the first child after unshare becomes its PID 1.
    let console = console::Console::open()?;
    let cgroup = if rootless {
        console::note("rootless: services share the caller's cgroup (no delegation)");
        None
    } else {
        cgroup::SandboxCgroup::create().unwrap_or_else(|err| {
            console::note(&format!("no cgroup of its own for the sandbox: {err:#}"));
            None
        })
    };
    let exe = std::env::current_exe().context("find the xtask binary")?;

    // Namespaces: user (rootless only), then PID for the next child.
    if rootless {
        enter_user_namespace()?;
    }
    let signals = block_signals()?;
    let (relay, slave) = console.start()?;
    unshare(CloneFlags::CLONE_NEWPID).context("unshare the PID namespace")?;

    // PID 1.
    let mut stage2 = Command::new(&exe);
    stage2
        .arg("__sandbox-stage2")
        .arg("--rootfs")
        .arg(&rootfs)
        .arg("--console")
        .arg(slave.path())
        .args(["--hostname", rootfs::HOSTNAME])
        .args(["--parent", &std::process::id().to_string()])
        .arg("--init")
        .arg(&init.0);
    for arg in &init.1 {
        stage2.arg(format!("--init-arg={arg}"));
    }
    if let Some(cg) = &cgroup {
        stage2.arg("--cgroup").arg(cg.path());
    }
    for bind in &binds {
        stage2.arg("--bind").arg(&bind.host).arg(&bind.container);
        stage2.arg(if bind.read_only { "ro" } else { "rw" });
    }
    let term = std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty() && t != "dumb");
    stage2
        .env_clear()
        .env("container", CONTAINER_ENV)
        .env("TERM", term.as_deref().unwrap_or("xterm"))
        .env("PATH", SANDBOX_PATH)
        .env("HOME", "/")
        .current_dir("/");
    let (stdin, stdout, stderr) = slave.stdio()?;
    stage2.stdin(stdin).stdout(stdout).stderr(stderr);
    let spawned = stage2.spawn();
    // From now on only the sandbox holds the console open (see console::Console::start).
    drop(stage2);
    drop(slave);
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            relay.finish();
            return Err(err).context("start the sandbox's PID 1");
        }
    };
    let pid = i32::try_from(child.id()).context("PID out of range")?;
    // The namespace has a name only once its first process exists (namespaces(7)). Holding it
    // open keeps its inode number from being reused by another namespace (another sandbox)
    // until xtask has checked that nothing is left in it.
    let pinned = fs::File::open(format!("/proc/{pid}/ns/pid")).ok();
    let pidns = fs::read_link("/proc/self/ns/pid_for_children")
        .or_else(|_| fs::read_link(format!("/proc/{pid}/ns/pid")))
        .ok();
    let record = match &pidns {
        Some(ns) => Some(PidRecord::write(state, pid, ns)?),
        None => None,
    };
    console::note(&format!(
        "{} is PID 1 of the sandbox (host PID {pid}); `cargo xtask sandbox exec CMD` runs a \
         command inside, Ctrl-C stops it",
        init.0
    ));

    // Relay the console until PID 1 is gone.
    let status = supervise(&mut child, pid, &signals);
    relay.finish();
    drop(record);
    if let Some(cg) = cgroup
        && let Err(err) = cg.remove()
    {
        console::note(&format!("could not remove the sandbox's cgroup: {err:#}"));
    }
    let status = status?;

    // Nothing may outlive PID 1 in its namespace.
    let left = pidns.as_deref().map(processes_in).unwrap_or_default();
    drop(pinned);
    if !left.is_empty() {
        bail!("processes left in the sandbox's PID namespace after PID 1 exited: {left:?}");
    }
    let code = cmd::shell_code(status);
    console::note(&match (status.code(), code) {
        (Some(0), _) => "PID 1 exited 0; nothing left in the sandbox".to_owned(),
        (Some(c), _) => format!("PID 1 exited with code {c}; nothing left in the sandbox"),
        (None, c) => format!(
            "PID 1 was killed by signal {}; nothing left in the sandbox",
            c - 128
        ),
    });
    Ok(cmd::exit_byte(code))
}

/// A volume whose host side exists, as an absolute path.
struct Bind {
    host: PathBuf,
    container: PathBuf,
    read_only: bool,
}

fn resolve_volumes(volumes: &[Volume]) -> Result<Vec<Bind>> {
    volumes
        .iter()
        .map(|v| {
            let host = v.host.canonicalize().with_context(|| {
                format!("volume {}: the host path does not exist", v.host.display())
            })?;
            Ok(Bind {
                host,
                container: v.container.clone(),
                read_only: v.read_only,
            })
        })
        .collect()
}

/// Rootless: a new user namespace in which the caller is root (and nobody else is mapped).
fn enter_user_namespace() -> Result<()> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    unshare(CloneFlags::CLONE_NEWUSER).context(
        "unshare a user namespace (rootless sandboxes need unprivileged user namespaces; see \
         /proc/sys/user/max_user_namespaces, or run as root)",
    )?;
    fs::write("/proc/self/setgroups", "deny").context("write /proc/self/setgroups")?;
    fs::write("/proc/self/uid_map", format!("0 {uid} 1")).context("write /proc/self/uid_map")?;
    fs::write("/proc/self/gid_map", format!("0 {gid} 1")).context("write /proc/self/gid_map")?;
    Ok(())
}

/// Blocks the signals xtask handles (in every thread started later) and reads them from a
/// signalfd. The child's mask is reset by `std::process::Command`.
fn block_signals() -> Result<SignalFd> {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(sig);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("block signals")?;
    SignalFd::new(&set).context("create a signalfd")
}

/// Waits for PID 1 to exit, turning Ctrl-C, SIGTERM and SIGHUP into SIGTERM for it (and a
/// second one into SIGKILL).
fn supervise(child: &mut Child, pid: i32, signals: &SignalFd) -> Result<std::process::ExitStatus> {
    let mut asked = 0;
    loop {
        if let Some(status) = child.try_wait().context("wait for PID 1")? {
            return Ok(status);
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err).context("read the signalfd"),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig == Signal::SIGCHLD {
            continue;
        }
        asked += 1;
        let (forward, what) = if asked == 1 {
            (
                Signal::SIGTERM,
                "stopping the sandbox (SIGTERM to PID 1); again to kill it",
            )
        } else {
            (Signal::SIGKILL, "killing the sandbox (SIGKILL to PID 1)")
        };
        console::note(&format!("{sig}: {what}"));
        // ESRCH only means it is already gone; try_wait sees that next.
        let _ = kill(Pid::from_raw(pid), forward);
    }
}

/// `<state>/pid` and `<state>/pidns`, removed when dropped.
struct PidRecord {
    dir: PathBuf,
}

impl PidRecord {
    fn write(dir: &Path, pid: i32, pidns: &Path) -> Result<Self> {
        fs::write(dir.join("pidns"), format!("{}\n", pidns.display()))
            .with_context(|| format!("write {}", dir.join("pidns").display()))?;
        fs::write(dir.join("pid"), format!("{pid}\n"))
            .with_context(|| format!("write {}", dir.join("pid").display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for PidRecord {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join("pid"));
        let _ = fs::remove_file(self.dir.join("pidns"));
    }
}

/// Host PIDs and names of the processes whose PID namespace is `pidns` (`pid:[…]`).
pub fn processes_in(pidns: &Path) -> Vec<(i32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if fs::read_link(entry.path().join("ns/pid")).is_ok_and(|ns| ns == pidns) {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_owned()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_parses_host_container_and_mode() {
        let v: Volume = "./my app.toml:/etc/dynamod/services/myapp.toml:ro"
            .parse()
            .unwrap();
        assert_eq!(v.host, PathBuf::from("./my app.toml"));
        assert_eq!(
            v.container,
            PathBuf::from("/etc/dynamod/services/myapp.toml")
        );
        assert!(v.read_only);
        let v: Volume = "/srv:/srv".parse().unwrap();
        assert!(!v.read_only);
        let v: Volume = "/srv:/data:rw".parse().unwrap();
        assert!(!v.read_only);
    }

    #[test]
    fn volume_refuses_relative_escaping_or_root_targets() {
        assert!("a:relative".parse::<Volume>().is_err());
        assert!("a:/x/../etc".parse::<Volume>().is_err());
        assert!("a:/".parse::<Volume>().is_err());
        assert!("a:/x:rx".parse::<Volume>().is_err());
        assert!(":/x".parse::<Volume>().is_err());
        assert!("just-one".parse::<Volume>().is_err());
    }

    #[test]
    fn running_pid_is_none_without_a_record() {
        let dir = std::env::temp_dir().join(format!("xtask-norecord-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(running_pid(&dir).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn running_pid_ignores_a_pid_in_another_namespace_than_recorded() {
        let dir = std::env::temp_dir().join(format!("xtask-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // Our own PID is alive, but it is not the init of the recorded namespace.
        fs::write(dir.join("pid"), format!("{}\n", std::process::id())).unwrap();
        fs::write(dir.join("pidns"), "pid:[1]\n").unwrap();
        assert_eq!(running_pid(&dir).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
