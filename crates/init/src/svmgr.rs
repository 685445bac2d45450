//! Starting `dynamod-svmgr` and the state init keeps about it.
//!
//! svmgr gets one end of a `socketpair(AF_UNIX, SOCK_STREAM)` as fd 3 (`DYNAMOD_INIT_FD=3`) and
//! an explicit environment; through `dynamod_sys::spawn` it also starts with an empty signal
//! mask, default dispositions and no other inherited descriptor (upstream leaked its blocked
//! mask and the kmsg fd to svmgr and every service).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use dynamod_sys::nix::errno::Errno;
use dynamod_sys::nix::fcntl::{FcntlArg, OFlag, fcntl};
use dynamod_sys::nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use dynamod_sys::spawn::{Command, SpawnError};

use crate::link::Link;

/// The fd number svmgr finds its socket at.
pub const INIT_FD: i32 = 3;
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// svmgr could not be started.
#[derive(Debug)]
pub enum StartError {
    /// The socketpair could not be created or configured.
    Socket(Errno),
    /// The spawn failed (missing binary, exec error, …).
    Spawn(SpawnError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(e) => write!(f, "socketpair: {e}"),
            Self::Spawn(e) => {
                write!(f, "{e}")?;
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    write!(f, ": {s}")?;
                    src = s.source();
                }
                Ok(())
            }
        }
    }
}

/// What svmgr's environment says about where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnParams {
    /// Set `DYNAMOD_CONTAINER=1`.
    pub container: bool,
    /// Heartbeat period to announce in `DYNAMOD_HEARTBEAT_MS`.
    pub heartbeat_ms: u64,
}

/// A running svmgr.
#[derive(Debug)]
pub struct Svmgr {
    /// Its PID.
    pub pid: i32,
    /// Its pidfd (signals go through it; it becomes readable when svmgr exits).
    pub pidfd: OwnedFd,
    /// The socket, until svmgr closes it or breaks the protocol.
    pub link: Option<Link>,
    /// When it was started (monotonic ms).
    pub started_at: u64,
    /// When the last frame arrived from it.
    pub last_rx: u64,
    /// Its `Hello` arrived with our protocol version.
    pub greeted: bool,
    /// SIGKILL was sent (hung or broke the protocol); waiting to reap it.
    pub killed: bool,
}

/// Starts svmgr at `path`.
pub fn start(path: &Path, params: SpawnParams, now: u64) -> Result<Svmgr, StartError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(StartError::Socket)?;
    // Only our end is non-blocking; the flag lives on the open file description, which the two
    // ends do not share.
    fcntl(ours.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(StartError::Socket)?;

    let mut cmd = Command::new(path);
    // Variables meant for svmgr (`DYNAMOD_*` given to a container with `-e`, or on the kernel
    // command line) are passed on; the ones below are init's own and win.
    for (k, v) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"DYNAMOD_") {
            cmd.env(k, v);
        }
    }
    cmd.env("PATH", PATH)
        .env("HOME", "/")
        .env(
            "TERM",
            std::env::var_os("TERM").unwrap_or_else(|| "linux".into()),
        )
        .env("DYNAMOD_INIT_FD", INIT_FD.to_string())
        .env("DYNAMOD_HEARTBEAT_MS", params.heartbeat_ms.to_string());
    if params.container {
        cmd.env("DYNAMOD_CONTAINER", "1");
    }
    cmd.pass_fd(theirs, INIT_FD);
    let child = cmd.spawn().map_err(StartError::Spawn)?;
    Ok(Svmgr {
        pid: child.pid,
        pidfd: child.pidfd,
        link: Some(Link::new(ours)),
        started_at: now,
        last_rx: now,
        greeted: false,
        killed: false,
    })
}
