//! Turning a service definition into a process: environment, credentials, fds, readiness
//! channels. Everything goes through [`dynamod_sys::spawn::Command`].

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use dynamod_config::{Readiness, ServiceConfig, ServiceType};
use dynamod_sys::nix;
use dynamod_sys::spawn::{Child, Command, Pending, SpawnError, Stdio};

use crate::users;

/// The `PATH` services get unless they set their own.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// fd number of the readiness pipe for `readiness.type = "fd"`.
pub const READY_FD: i32 = 3;

/// Where svmgr keeps things and reads users from, and how its fds are laid out.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Runtime directory (`/run/dynamod`).
    pub runtime: PathBuf,
    /// Directory holding `passwd` and `group` (`/etc`).
    pub etc: PathBuf,
    /// svmgr keeps the fds it holds for running services at or above this number, so the fds
    /// it hands to a new child have low numbers and the child copies only those (see
    /// `dynamod_sys::spawn`); `None` when the fd limit leaves no room.
    pub fd_floor: Option<i32>,
    /// The open-files limit services get unless they set one (svmgr raises its own).
    pub service_nofile: Option<(u64, u64)>,
}

/// Why a service could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Credentials could not be resolved.
    #[error(transparent)]
    User(#[from] users::UserError),
    /// The environment file is unreadable or malformed.
    #[error("environment-file {path}: {message}")]
    EnvFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A pipe, socket or terminal could not be set up.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be created.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Setup { what, source }
}

/// A started service process and the parent's ends of its channels.
#[derive(Debug)]
pub struct Launched {
    /// The process, possibly still on its way to `execve` (its watch tells).
    pub child: Pending,
    /// Read end of its stdout pipe (none when it runs on a terminal).
    pub stdout: Option<OwnedFd>,
    /// Read end of its stderr pipe.
    pub stderr: Option<OwnedFd>,
    /// Its notify socket (readiness `notify` or type `notify`).
    pub notify: Option<UnixDatagram>,
    /// Read end of its readiness pipe (readiness `fd`).
    pub ready_fd: Option<OwnedFd>,
}

/// Whether the service listens for sd_notify messages.
pub fn wants_notify(cfg: &ServiceConfig) -> bool {
    cfg.kind == ServiceType::Notify || cfg.readiness.kind == Readiness::Notify
}

/// Path of a service's notify socket.
pub fn notify_path(paths: &Paths, name: &str) -> PathBuf {
    paths.runtime.join("notify").join(name)
}

/// Moves an fd svmgr keeps for the life of a service above the floor.
fn keep_high(fd: OwnedFd, paths: &Paths) -> OwnedFd {
    match paths.fd_floor {
        Some(min) => dynamod_sys::fd::move_above(fd, min),
        None => fd,
    }
}

/// A pipe whose read end svmgr keeps (non-blocking); `log` pipes get a 1 MiB buffer.
fn pipe(log: bool) -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(|e| LaunchError::Setup {
            what: "pipe".into(),
            source: e.into(),
        })
        .and_then(|(r, w)| {
            // A larger pipe absorbs bursts between two reads of svmgr (1 MiB, the default
            // pipe-max-size; a refusal only leaves the default 64 KiB).
            if log {
                let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
            }
            // Only the read end stays non-blocking; the service's end must block normally.
            nix::fcntl::fcntl(
                &w,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
            )
            .map_err(|e| LaunchError::Setup {
                what: "pipe".into(),
                source: e.into(),
            })?;
            Ok((r, w))
        })
}

/// Starts the service's main process. Returns once the process exists: whether it runs its
/// program arrives later through [`Pending::watch`].
pub fn launch(
    cfg: &ServiceConfig,
    paths: &Paths,
    cgroup: Option<std::os::fd::RawFd>,
) -> Result<Launched, LaunchError> {
    let mut cmd = Command::new(&cfg.exec[0]);
    cmd.args(&cfg.exec[1..]);
    if let Some(fd) = cgroup {
        cmd.cgroup(fd);
    }
    if let Some(min) = paths.fd_floor {
        cmd.parent_fds_above(min);
    }
    if let Some((soft, hard)) = paths.service_nofile {
        cmd.rlimit(libc_nofile(), soft, hard);
    }

    // Credentials first: a failure must abort before anything else happens.
    let creds = match &cfg.user {
        Some(spec) => Some(users::resolve(spec, &paths.etc)?),
        None => None,
    };

    // Environment: defaults, then the environment file, then the inline table.
    cmd.env("PATH", DEFAULT_PATH);
    match &creds {
        Some(c) => {
            cmd.env("HOME", &c.home)
                .env("USER", &c.name)
                .env("LOGNAME", &c.name);
            cmd.env("SHELL", &c.shell);
        }
        None => {
            cmd.env("HOME", "/root")
                .env("USER", "root")
                .env("LOGNAME", "root");
        }
    }
    if let Some(file) = &cfg.environment_file {
        let text = std::fs::read_to_string(file).map_err(|e| LaunchError::EnvFile {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        let vars = dynamod_config::envfile::parse(&text).map_err(|e| LaunchError::EnvFile {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        for (k, v) in vars {
            cmd.env(k, v);
        }
    }
    for (k, v) in &cfg.environment {
        cmd.env(k, v);
    }

    if let Some(dir) = &cfg.workdir {
        cmd.cwd(dir);
    }
    let userns = cfg
        .namespace
        .enable
        .contains(&dynamod_config::Namespace::User);
    if let Some(c) = &creds
        && !userns
    {
        cmd.uid(c.uid).gid(c.gid).groups(c.groups.clone());
    }
    if !cfg.namespace.enable.is_empty()
        || cfg.namespace.private_tmp
        || cfg.namespace.protect_system.is_some()
        || !cfg.namespace.bind_mounts.is_empty()
    {
        let mut plan = namespace_plan(cfg)?;
        if userns {
            // Root inside the user namespace is the configured user (or nobody) outside.
            let (uid, gid) = creds.as_ref().map_or((65534, 65534), |c| (c.uid, c.gid));
            plan.map_root_to(uid, gid);
        }
        cmd.namespaces(plan);
    }

    // stdio: a terminal for gettys and consoles, else /dev/null and two log pipes.
    let (mut stdout_r, mut stderr_r) = (None, None);
    if let Some(tty) = &cfg.tty {
        let open = || {
            nix::fcntl::open(
                tty.as_path(),
                nix::fcntl::OFlag::O_RDWR
                    | nix::fcntl::OFlag::O_NOCTTY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| LaunchError::Setup {
                what: format!("open {}", tty.display()),
                source: e.into(),
            })
        };
        cmd.stdin(Stdio::Fd(open()?))
            .stdout(Stdio::Fd(open()?))
            .stderr(Stdio::Fd(open()?));
        cmd.controlling_tty(true);
        cmd.env("TERM", "linux");
    } else {
        let (or, ow) = pipe(true)?;
        let (er, ew) = pipe(true)?;
        cmd.stdin(Stdio::Null)
            .stdout(Stdio::Fd(ow))
            .stderr(Stdio::Fd(ew));
        stdout_r = Some(keep_high(or, paths));
        stderr_r = Some(keep_high(er, paths));
    }

    // Readiness channels exist before the process, so an early message is never lost.
    let mut notify = None;
    if wants_notify(cfg) {
        let path = notify_path(paths, &cfg.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(setup("create notify directory"))?;
        }
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).map_err(setup(format!("bind {}", path.display())))?;
        let sock = UnixDatagram::from(keep_high(OwnedFd::from(sock), paths));
        sock.set_nonblocking(true).map_err(setup("notify socket"))?;
        set_passcred(&sock)?;
        if let Some(c) = &creds {
            // The service must be able to send to it after dropping privileges.
            let _ = std::os::unix::fs::chown(&path, Some(c.uid), Some(c.gid));
        }
        cmd.env("NOTIFY_SOCKET", &path);
        notify = Some(sock);
    }
    let mut ready_fd = None;
    if cfg.readiness.kind == Readiness::Fd {
        let (r, w) = pipe(false)?;
        cmd.pass_fd(w, READY_FD);
        cmd.env("DYNAMOD_READY_FD", READY_FD.to_string());
        ready_fd = Some(keep_high(r, paths));
    }

    let child = cmd.start()?;
    Ok(Launched {
        child,
        stdout: stdout_r,
        stderr: stderr_r,
        notify,
        ready_fd,
    })
}

/// `RLIMIT_NOFILE` as `Command::rlimit` takes it.
fn libc_nofile() -> i32 {
    dynamod_sys::nix::sys::resource::Resource::RLIMIT_NOFILE as i32
}

/// Raises svmgr's own open-files limit (each running service holds a few fds here) and returns
/// the limit services should get instead: the soft limit svmgr was started with, under the
/// raised hard limit (`None` when nothing changed).
pub fn raise_nofile() -> Option<(u64, u64)> {
    use dynamod_sys::nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // Privileged: as high as the kernel allows, capped; otherwise up to the hard limit.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    let wanted = nr_open.min(1 << 19).max(hard);
    let new_hard = if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        wanted
    } else if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        return None;
    };
    (new_hard != soft).then_some((soft, new_hard))
}

/// The fd floor for a process whose open-files limit is `limit`: 1024 when there is room for a
/// useful number of fds above it.
pub fn fd_floor(limit: u64) -> Option<i32> {
    (limit >= 4096).then_some(1024)
}

/// Translates `[namespace]` into a plan for the spawn.
fn namespace_plan(
    cfg: &ServiceConfig,
) -> Result<dynamod_sys::namespace::NamespacePlan, LaunchError> {
    use dynamod_config::{Namespace, ProtectSystem};
    use dynamod_sys::namespace::{NamespacePlan, Ns, Protect};
    let ns: Vec<Ns> = cfg
        .namespace
        .enable
        .iter()
        .map(|n| match n {
            Namespace::Pid => Ns::Pid,
            Namespace::Mnt => Ns::Mnt,
            Namespace::Net => Ns::Net,
            Namespace::Uts => Ns::Uts,
            Namespace::Ipc => Ns::Ipc,
            Namespace::User => Ns::User,
            Namespace::Cgroup => Ns::Cgroup,
        })
        .collect();
    let protect = cfg.namespace.protect_system.map(|p| match p {
        ProtectSystem::Full => Protect::Full,
        ProtectSystem::Strict => Protect::Strict,
    });
    let binds: Vec<(PathBuf, PathBuf, bool)> = cfg
        .namespace
        .bind_mounts
        .iter()
        .map(|b| (b.source.clone(), b.target.clone(), b.writable))
        .collect();
    NamespacePlan::new(
        &ns,
        cfg.namespace.private_tmp,
        protect,
        &binds,
        std::path::Path::new("/"),
    )
    .map_err(|e| LaunchError::Setup {
        what: "namespaces".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Enables `SO_PASSCRED` so every datagram carries its sender's credentials.
fn set_passcred(sock: &UnixDatagram) -> Result<(), LaunchError> {
    nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::PassCred, &true).map_err(|e| {
        LaunchError::Setup {
            what: "SO_PASSCRED".into(),
            source: e.into(),
        }
    })
}

/// Starts a helper command (`stop-exec`, `check-exec`) with the service's environment basics,
/// output discarded.
pub fn launch_helper(
    argv: &[String],
    cfg: &ServiceConfig,
    paths: &Paths,
) -> Result<Child, LaunchError> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd.env("PATH", DEFAULT_PATH);
    for (k, v) in &cfg.environment {
        cmd.env(k, v);
    }
    if let Some(spec) = &cfg.user {
        let c = users::resolve(spec, &paths.etc)?;
        cmd.uid(c.uid).gid(c.gid).groups(c.groups);
    }
    cmd.stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null);
    Ok(cmd.spawn()?)
}

/// Removes a service's notify socket file.
pub fn remove_notify(paths: &Paths, name: &str) {
    let _ = std::fs::remove_file(notify_path(paths, name));
}
