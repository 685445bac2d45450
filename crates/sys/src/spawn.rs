//! The one place where dynamod creates processes.
//!
//! A [`Command`] starts with an **empty** environment and ends up in a child that has an empty
//! signal mask, default signal dispositions, a new session (unless told otherwise) and exactly
//! fds 0–2 plus the fds explicitly passed — nothing else survives `exec`. Everything the child
//! needs is prepared in the parent, so the code between `clone3` and `execve` only makes raw
//! system calls: it allocates nothing and takes no lock, which keeps it correct even in a
//! multi-threaded parent.
//!
//! The child is created with `clone3(CLONE_PIDFD)` so the caller gets a pidfd atomically, and
//! optionally `CLONE_INTO_CGROUP` so it is inside its cgroup before its first instruction
//! (clone3(2)). Exec failures travel back over a close-on-exec pipe, so [`Command::spawn`]
//! reports them as errors just like `std::process`.
//!
//! [`Command::start`] is the same without the wait: it returns as soon as the child exists, with
//! the read end of that pipe in a [`Pending`], so an event loop can start the next process while
//! this one is still on its way to `execve` and learn the outcome from its poller (the pipe
//! becomes readable: end of file means the program runs, five bytes name the step that failed).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where one of fds 0–2 comes from.
#[derive(Debug)]
pub enum Stdio {
    /// Keep the parent's fd.
    Inherit,
    /// `/dev/null`, opened read-write in the child.
    Null,
    /// This fd.
    Fd(OwnedFd),
}

/// The step of child setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Creating the session.
    Setsid,
    /// Arranging fds.
    Fds,
    /// Acquiring the controlling terminal.
    Tty,
    /// `setgroups`.
    Groups,
    /// `setgid`.
    Gid,
    /// `setuid`.
    Uid,
    /// `chdir`.
    Chdir,
    /// `execve`.
    Exec,
    /// Setting rlimits.
    Rlimit,
    /// Running the pre-exec hook.
    Hook,
    /// Setting up namespaces and mounts.
    Namespace,
}

impl Stage {
    fn from_u8(b: u8) -> Self {
        match b {
            0 => Self::Setsid,
            1 => Self::Fds,
            2 => Self::Tty,
            3 => Self::Groups,
            4 => Self::Gid,
            5 => Self::Uid,
            6 => Self::Chdir,
            8 => Self::Rlimit,
            9 => Self::Hook,
            10 => Self::Namespace,
            _ => Self::Exec,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Setsid => 0,
            Self::Fds => 1,
            Self::Tty => 2,
            Self::Groups => 3,
            Self::Gid => 4,
            Self::Uid => 5,
            Self::Chdir => 6,
            Self::Exec => 7,
            Self::Rlimit => 8,
            Self::Hook => 9,
            Self::Namespace => 10,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Setsid => "setsid",
            Self::Fds => "set up file descriptors",
            Self::Tty => "acquire controlling terminal",
            Self::Groups => "setgroups",
            Self::Gid => "setgid",
            Self::Uid => "setuid",
            Self::Chdir => "change directory",
            Self::Exec => "exec",
            Self::Rlimit => "set resource limit",
            Self::Hook => "prepare process",
            Self::Namespace => "set up namespaces and mounts",
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// An argument or environment entry contains a NUL byte.
    #[error("argument or environment contains a NUL byte")]
    Nul,
    /// The program was not found in `PATH`.
    #[error("{0}: not found in PATH")]
    NotFound(String),
    /// Creating the error pipe or the process failed.
    #[error("clone3")]
    Clone(#[source] io::Error),
    /// A setup step in the child failed before exec.
    #[error("{program}: {}: {source}", stage.describe())]
    Child {
        /// The program.
        program: String,
        /// What failed.
        stage: Stage,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

/// A freshly started process.
#[derive(Debug)]
pub struct Child {
    /// Its PID (in our PID namespace).
    pub pid: i32,
    /// A pidfd referring to it.
    pub pidfd: OwnedFd,
}

/// A started process whose `execve` may not have happened yet. See [`Command::start`].
#[derive(Debug)]
pub struct Pending {
    /// The process (it exists; it may still fail before running its program).
    pub child: Child,
    /// Where the outcome of its start arrives.
    pub watch: ExecWatch,
    /// Its start time in clock ticks since boot (field 22 of `/proc/PID/stat`) when the clock
    /// showed the same tick just before and just after `clone3`; `None` when the clone straddled
    /// a tick (read `/proc` then).
    pub start_ticks: Option<u64>,
}

impl Pending {
    /// Blocks until the child has executed its program or reported a failure; on failure the
    /// child is reaped.
    pub fn wait(mut self) -> Result<Child, SpawnError> {
        match self.watch.wait() {
            Ok(()) => Ok(self.child),
            Err(e) => {
                let _ = crate::process::wait_pid(self.child.pid);
                Err(e)
            }
        }
    }
}

/// The read end of a child's close-on-exec status pipe (non-blocking), and for a light child
/// what it still uses of ours.
#[derive(Debug)]
pub struct ExecWatch {
    status: OwnedFd,
    program: String,
    pid: i32,
    /// A light child's image: its fds stay open here until it has its own table, its memory
    /// until it has executed or exited.
    light: Option<Box<LightImage>>,
}

/// What a [`Pending`] start has come to.
#[derive(Debug)]
pub enum ExecOutcome {
    /// The child has not reached `execve` (or its failure report) yet.
    InProgress,
    /// The child runs its program (or died before it could report: its exit tells).
    Executed,
    /// A setup step or `execve` failed; the child exits with status 127 and must still be
    /// reaped by the caller.
    Failed(SpawnError),
}

impl ExecWatch {
    /// The fd to watch for readability (end of file or a failure report).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.status)
    }

    /// Whether this watch still holds fds the child has not copied yet (a light child that has
    /// not reported its own fd table). A spawner keeps few of these at a time: they sit at low
    /// numbers, which every light child copies.
    pub fn holds_fds(&self) -> bool {
        self.light.as_ref().is_some_and(|l| l.err_w.is_some())
    }

    /// Looks at the status pipe without blocking. Once the child has exited, or has written to
    /// any fd from its program, the answer is never [`ExecOutcome::InProgress`] (after an exit,
    /// call [`ExecWatch::child_exited`] instead).
    pub fn poll(&mut self) -> ExecOutcome {
        let mut buf = [0u8; 16];
        loop {
            match nix::unistd::read(&self.status, &mut buf) {
                Ok(0) => {
                    // Every write end is closed: the child executed (its memory is its own) or
                    // is gone.
                    self.light = None;
                    return ExecOutcome::Executed;
                }
                Ok(n) => {
                    let mut bytes = &buf[..n];
                    if bytes[0] == UNSHARED && self.light.is_some() {
                        // The light child has its own fds now: ours can go.
                        if let Some(l) = self.light.as_mut() {
                            l.held.clear();
                            l.err_w = None;
                        }
                        bytes = &bytes[1..];
                    }
                    // The report is five bytes written at once (less than PIPE_BUF), so it
                    // arrives whole.
                    if bytes.len() >= 5 {
                        let errno = i32::from_ne_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        self.retire();
                        return ExecOutcome::Failed(SpawnError::Child {
                            program: self.program.clone(),
                            stage: Stage::from_u8(bytes[0]),
                            source: io::Error::from_raw_os_error(errno),
                        });
                    }
                    if !bytes.is_empty() {
                        // A broken report: treated as none.
                        self.retire();
                        return ExecOutcome::Executed;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return ExecOutcome::InProgress,
                Err(_) => {
                    self.retire();
                    return ExecOutcome::Executed;
                }
            }
        }
    }

    /// The outcome once the child is known to have exited (it may already be reaped): what it
    /// reported, or [`ExecOutcome::Executed`] when it said nothing.
    pub fn child_exited(&mut self) -> ExecOutcome {
        if let Some(l) = self.light.as_mut() {
            l.held.clear();
            l.err_w = None;
        }
        match self.poll() {
            ExecOutcome::InProgress => {
                self.retire();
                ExecOutcome::Executed
            }
            other => other,
        }
    }

    /// Blocks until the outcome is known.
    pub fn wait(&mut self) -> Result<(), SpawnError> {
        loop {
            match self.poll() {
                ExecOutcome::Executed => return Ok(()),
                ExecOutcome::Failed(e) => return Err(e),
                ExecOutcome::InProgress => {
                    let mut fds = [nix::poll::PollFd::new(
                        self.fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    }

    /// Whether the child has exited (a zombie, or already reaped), without reaping it.
    fn child_gone(&self) -> bool {
        // SAFETY: waitid with WNOWAIT|WNOHANG neither reaps nor blocks; `info` is a plain C
        // struct the kernel fills (si_pid stays 0 when the child is still running).
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            );
            if r != 0 {
                return io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
            }
            info.si_pid() != 0
        }
    }

    /// Frees a light child's image once the child can no longer be using it: it reported a
    /// failure (and is on its way to `_exit`) or said something unexpected. Waits for it to be
    /// a zombie (without reaping it).
    fn retire(&mut self) {
        let Some(image) = self.light.take() else {
            return;
        };
        // SAFETY: waitid with WNOWAIT leaves the child for its reaper; `info` is a plain C
        // struct the kernel fills. ECHILD (already reaped) also means it is gone.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            loop {
                let r = libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                );
                if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break r;
                }
            }
        };
        if r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            drop(image);
        } else {
            // Not ours to wait for (should not happen): never free memory it might use.
            std::mem::forget(image);
        }
    }
}

impl Drop for ExecWatch {
    fn drop(&mut self) {
        if self.light.is_none() {
            return;
        }
        // The child may still run on our memory: wait (bounded) for it to execute, fail or die.
        for _ in 0..500 {
            if self.child_gone() {
                self.light = None;
                return;
            }
            match self.poll() {
                ExecOutcome::InProgress => {
                    let mut fds = [nix::poll::PollFd::new(
                        self.fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u8));
                }
                _ => return,
            }
        }
        // Stopped or stuck before exec: leaking is the only safe choice.
        if let Some(image) = self.light.take() {
            std::mem::forget(image);
        }
    }
}

/// Clock ticks since boot now (`CLOCK_BOOTTIME` in units of `_SC_CLK_TCK`), as `/proc` counts
/// process start times.
fn boot_ticks() -> Option<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz)
        .ok()
        .filter(|&h| h > 0 && 1_000_000_000 % h == 0)?;
    let ns = u64::try_from(ts.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec()).ok()?;
    Some(ns / (1_000_000_000 / hz))
}

/// A hook run in the child after fds are arranged and before credentials change. It must only
/// make raw system calls (no allocation, no locks). Used for namespace setup.
pub type PreExecHook = Box<dyn FnMut() -> io::Result<()>>;

/// A process to start. See the module documentation for what the child gets.
pub struct Command {
    program: CString,
    program_display: String,
    search_path: bool,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: Option<CString>,
    stdio: [Stdio; 3],
    passed: Vec<(OwnedFd, RawFd)>,
    new_session: bool,
    process_group: bool,
    ctty: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<libc::gid_t>>,
    cgroup: Option<RawFd>,
    rlimits: Vec<(libc::c_int, libc::rlimit)>,
    hook: Option<PreExecHook>,
    ns: Option<crate::namespace::NamespacePlan>,
    nul_error: bool,
    parent_fd_floor: Option<RawFd>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program_display)
            .field("argv", &self.argv)
            .finish_non_exhaustive()
    }
}

fn cstring(s: &OsStr, nul_error: &mut bool) -> CString {
    CString::new(s.as_bytes()).unwrap_or_else(|_| {
        *nul_error = true;
        CString::default()
    })
}

impl Command {
    /// A command running `program` (searched in the child's `PATH` when it has no `/`), with
    /// `argv[0] = program`, an empty environment and fds 0–2 inherited.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        let mut nul_error = false;
        let c = cstring(program, &mut nul_error);
        Self {
            program: c.clone(),
            program_display: program.to_string_lossy().into_owned(),
            search_path: !program.as_bytes().contains(&b'/'),
            argv: vec![c],
            env: Vec::new(),
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            passed: Vec::new(),
            new_session: true,
            process_group: false,
            ctty: false,
            uid: None,
            gid: None,
            groups: None,
            cgroup: None,
            rlimits: Vec::new(),
            hook: None,
            ns: None,
            nul_error,
            parent_fd_floor: None,
        }
    }

    /// Replaces `argv[0]`.
    pub fn arg0(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.argv[0] = cstring(a.as_ref(), &mut self.nul_error);
        self
    }

    /// Appends an argument.
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        let c = cstring(a.as_ref(), &mut self.nul_error);
        self.argv.push(c);
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, it: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in it {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable (a later value for the same key wins).
    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Self {
        let (k, v) = (k.as_ref().as_bytes(), v.as_ref().as_bytes());
        if k.contains(&b'=') {
            self.nul_error = true;
        }
        self.env.retain(|e| {
            let b = e.as_bytes();
            !(b.len() > k.len() && b.starts_with(k) && b[k.len()] == b'=')
        });
        let mut entry = Vec::with_capacity(k.len() + v.len() + 1);
        entry.extend_from_slice(k);
        entry.push(b'=');
        entry.extend_from_slice(v);
        let c = cstring(OsStr::from_bytes(&entry), &mut self.nul_error);
        self.env.push(c);
        self
    }

    /// The value this command will give `k`, if set.
    pub fn get_env(&self, k: &str) -> Option<&[u8]> {
        self.env.iter().find_map(|e| {
            let b = e.as_bytes();
            (b.len() > k.len() && b.starts_with(k.as_bytes()) && b[k.len()] == b'=')
                .then(|| &b[k.len() + 1..])
        })
    }

    /// Working directory of the child.
    pub fn cwd(&mut self, p: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(cstring(p.as_ref().as_os_str(), &mut self.nul_error));
        self
    }

    /// fd 0.
    pub fn stdin(&mut self, s: Stdio) -> &mut Self {
        self.stdio[0] = s;
        self
    }

    /// fd 1.
    pub fn stdout(&mut self, s: Stdio) -> &mut Self {
        self.stdio[1] = s;
        self
    }

    /// fd 2.
    pub fn stderr(&mut self, s: Stdio) -> &mut Self {
        self.stdio[2] = s;
        self
    }

    /// Keeps `fd` open in the child as fd number `target` (≥ 3).
    pub fn pass_fd(&mut self, fd: OwnedFd, target: RawFd) -> &mut Self {
        self.passed.push((fd, target));
        self
    }

    /// Whether the child calls `setsid()` (default: yes).
    pub fn new_session(&mut self, yes: bool) -> &mut Self {
        self.new_session = yes;
        self
    }

    /// Without a new session: put the child in a new process group of its own.
    pub fn process_group(&mut self, yes: bool) -> &mut Self {
        self.process_group = yes;
        self
    }

    /// Make stdin the controlling terminal (needs a new session).
    pub fn controlling_tty(&mut self, yes: bool) -> &mut Self {
        self.ctty = yes;
        self
    }

    /// Switch to this uid before exec.
    pub fn uid(&mut self, uid: u32) -> &mut Self {
        self.uid = Some(uid);
        self
    }

    /// Switch to this gid before exec.
    pub fn gid(&mut self, gid: u32) -> &mut Self {
        self.gid = Some(gid);
        self
    }

    /// Set exactly these supplementary groups before exec.
    pub fn groups(&mut self, groups: Vec<u32>) -> &mut Self {
        self.groups = Some(groups);
        self
    }

    /// Start the child inside the cgroup whose directory fd is `fd` (`CLONE_INTO_CGROUP`).
    /// The fd must stay open until [`Command::spawn`] returns.
    pub fn cgroup(&mut self, fd: RawFd) -> &mut Self {
        self.cgroup = Some(fd);
        self
    }

    /// Set a resource limit (`RLIMIT_*`) in the child.
    pub fn rlimit(&mut self, resource: i32, soft: u64, hard: u64) -> &mut Self {
        self.rlimits.push((
            resource,
            libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            },
        ));
        self
    }

    /// Creates these namespaces for the child (clone3 flags) and applies the plan's mounts in
    /// the child before credentials change.
    pub fn namespaces(&mut self, plan: crate::namespace::NamespacePlan) -> &mut Self {
        self.ns = Some(plan);
        self
    }

    /// Keeps the parent's fds of this child (its pidfd and the status pipe) at or above `min`
    /// (see [`crate::fd::move_above`]).
    pub fn parent_fds_above(&mut self, min: RawFd) -> &mut Self {
        self.parent_fd_floor = Some(min);
        self
    }

    /// Runs `hook` in the child before credentials change (see [`PreExecHook`]).
    pub fn pre_exec(&mut self, hook: PreExecHook) -> &mut Self {
        self.hook = Some(hook);
        self
    }

    /// Resolves the program against the child's `PATH` (or the default
    /// `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`).
    fn resolve(&self) -> Result<CString, SpawnError> {
        if !self.search_path {
            return Ok(self.program.clone());
        }
        let path = self
            .get_env("PATH")
            .map(|p| OsStr::from_bytes(p).to_owned())
            .unwrap_or_else(|| {
                OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            });
        for dir in std::env::split_paths(&path) {
            let candidate: PathBuf = dir.join(&self.program_display);
            if is_executable(&candidate) {
                let mut ne = false;
                let c = cstring(candidate.as_os_str(), &mut ne);
                if !ne {
                    return Ok(c);
                }
            }
        }
        Err(SpawnError::NotFound(self.program_display.clone()))
    }

    /// What a start returns: the parent's fds moved above the floor if asked, and the start time
    /// when the clock read the same tick before and after the clone.
    fn pending(
        &self,
        pid: i32,
        pidfd: OwnedFd,
        err_r: OwnedFd,
        light: Option<Box<LightImage>>,
        (before, after): (Option<u64>, Option<u64>),
    ) -> Pending {
        let (pidfd, err_r) = match self.parent_fd_floor {
            Some(min) => (
                crate::fd::move_above(pidfd, min),
                crate::fd::move_above(err_r, min),
            ),
            None => (pidfd, err_r),
        };
        Pending {
            child: Child { pid, pidfd },
            watch: ExecWatch {
                status: err_r,
                program: self.program_display.clone(),
                pid,
                light,
            },
            start_ticks: before.filter(|b| Some(*b) == after),
        }
    }

    /// Starts the process and waits until it runs its program (or reports why it cannot).
    pub fn spawn(&mut self) -> Result<Child, SpawnError> {
        self.start()?.wait()
    }

    /// Starts the process and returns as soon as it exists; [`Pending`] tells later whether it
    /// reached its program. The fds given to the command may stay open in [`Pending::watch`]
    /// until the child has its own copies: poll the watch (its fd becomes readable then) before
    /// waiting for end of file on a pipe the child writes. Only a user-namespace handshake (id maps written by the parent)
    /// makes this wait for the child.
    pub fn start(&mut self) -> Result<Pending, SpawnError> {
        if self.nul_error {
            return Err(SpawnError::Nul);
        }
        let program = self.resolve()?;
        let mut ne = false;
        let devnull = cstring(OsStr::new("/dev/null"), &mut ne);

        // Pointer arrays for execve, built before clone so the child allocates nothing.
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());

        // The fd plan: (source fd or -1 for /dev/null or -2 for inherit, target).
        let mut plan: Vec<(RawFd, RawFd)> = Vec::with_capacity(3 + self.passed.len());
        for (i, s) in self.stdio.iter().enumerate() {
            let src = match s {
                Stdio::Inherit => -2,
                Stdio::Null => -1,
                Stdio::Fd(fd) => fd.as_raw_fd(),
            };
            plan.push((src, i as RawFd));
        }
        for (fd, target) in &self.passed {
            plan.push((fd.as_raw_fd(), *target));
        }
        let max_target = plan.iter().map(|(_, t)| *t).max().unwrap_or(2);

        // Non-blocking on both ends: the parent polls; the child writes its five bytes into an
        // empty pipe, which never blocks.
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| SpawnError::Clone(io::Error::from(e)))?;

        // The light path: share memory and the fd table with the child until it has copied the
        // few fds it needs (see `LightImage`). Namespaces, hooks and the user-namespace
        // handshake keep the fork-like path.
        if self.ns.is_none() && self.hook.is_none() && light_available() {
            return self.start_light(program, devnull, plan, max_target, err_r, err_w);
        }

        let ctx = ChildCtx {
            userns: None,
            program: program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: self.cwd.as_ref().map(|c| c.as_ptr()),
            devnull: devnull.as_ptr(),
            plan: &plan,
            max_target,
            new_session: self.new_session,
            process_group: self.process_group,
            ctty: self.ctty,
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.as_deref(),
            rlimits: &self.rlimits,
            err_fd: err_w.as_raw_fd(),
        };

        // A user namespace is entered by the child itself after it dropped to the target ids;
        // we then write its id maps (handshake over two pipes).
        let userns = self.ns.as_ref().and_then(|n| n.user_map());
        let handshake = match userns {
            Some(_) => {
                let p = |_| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
                let ready = p(()).map_err(|e| SpawnError::Clone(io::Error::from(e)))?;
                let go = p(()).map_err(|e| SpawnError::Clone(io::Error::from(e)))?;
                Some((ready, go))
            }
            None => None,
        };
        let ns_flags = self.ns.as_ref().map_or(0, |n| n.clone_flags());
        let userns_ctx = match (&handshake, userns) {
            (Some((ready, go)), Some((uid, gid))) => Some(UsernsCtx {
                ready_w: ready.1.as_raw_fd(),
                go_r: go.0.as_raw_fd(),
                uid,
                gid,
            }),
            _ => None,
        };

        let ctx = ChildCtx {
            userns: userns_ctx,
            ..ctx
        };

        let mut pidfd: RawFd = -1;
        let before = boot_ticks();
        let pid = clone_child(self.cgroup, ns_flags, &mut pidfd)?;
        if pid == 0 {
            // In the child. `hook` is called through a raw pointer-free path: it was boxed
            // before clone and only makes raw system calls by contract.
            if let Some(hook) = self.hook.as_mut()
                && let Err(e) = hook()
            {
                child_fail(
                    ctx.err_fd,
                    Stage::Hook,
                    e.raw_os_error().unwrap_or(libc::EINVAL),
                );
            }
            child_main(&ctx, self.ns.as_ref());
        }
        let after = boot_ticks();
        drop(err_w);
        // SAFETY: clone3 with CLONE_PIDFD stored a new fd in `pidfd` that nothing else owns; the
        // fork fallback opened one with pidfd_open.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        if let Some(((ready_r, ready_w), (go_r, go_w))) = handshake {
            drop(ready_w);
            drop(go_r);
            let mut b = [0u8; 1];
            // The child reports after unshare(CLONE_NEWUSER); EOF means it failed earlier and
            // wrote its error to the error pipe.
            if matches!(nix::unistd::read(&ready_r, &mut b), Ok(1))
                && let Some(ns) = &self.ns
            {
                if let Err(e) = ns.write_maps(pid) {
                    let _ = crate::process::kill_pid(pid, libc::SIGKILL);
                    let _ = crate::process::wait_pid(pid);
                    return Err(SpawnError::Child {
                        program: self.program_display.clone(),
                        stage: Stage::Namespace,
                        source: e,
                    });
                }
                let _ = nix::unistd::write(&go_w, &[1u8]);
            }
        }

        Ok(self.pending(pid, pidfd, err_r, None, (before, after)))
    }
}

fn is_executable(p: &Path) -> bool {
    let mut ne = false;
    let c = cstring(p.as_os_str(), &mut ne);
    if ne {
        return false;
    }
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the calls; `st` is a
    // plain C struct the kernel fills.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::stat(c.as_ptr(), &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
            && libc::access(c.as_ptr(), libc::X_OK) == 0
    }
}

/// Everything the child needs, as raw pointers into parent-owned memory that stays alive
/// (the child has a copy of the whole address space).
/// The child's side of the user-namespace handshake.
#[derive(Clone, Copy)]
struct UsernsCtx {
    ready_w: RawFd,
    go_r: RawFd,
    uid: u32,
    gid: u32,
}

struct ChildCtx<'a> {
    userns: Option<UsernsCtx>,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: Option<*const libc::c_char>,
    devnull: *const libc::c_char,
    plan: &'a [(RawFd, RawFd)],
    max_target: RawFd,
    new_session: bool,
    process_group: bool,
    ctty: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<&'a [libc::gid_t]>,
    rlimits: &'a [(libc::c_int, libc::rlimit)],
    err_fd: RawFd,
}

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Creates the child like fork(2) and returns its PID (0 in the child). Falls back to fork +
/// pidfd_open on kernels without clone3, unless a cgroup was requested.
fn clone_child(cgroup: Option<RawFd>, ns_flags: u64, pidfd: &mut RawFd) -> Result<i32, SpawnError> {
    let mut args = CloneArgs {
        flags: libc::CLONE_PIDFD as u64 | ns_flags,
        pidfd: pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of the address
    // space and continues here with a return value of 0. `args` is a valid clone_args of the
    // size we pass, and `pidfd` points to writable memory in the parent.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc >= 0 {
        return Ok(rc as i32);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) || cgroup.is_some() || ns_flags != 0 {
        return Err(SpawnError::Clone(err));
    }
    // SAFETY: fork has no arguments; the child only runs `child_main`, which makes raw system
    // calls and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    if pid > 0 {
        match crate::process::pidfd_open(pid) {
            Ok(fd) => *pidfd = std::os::fd::IntoRawFd::into_raw_fd(fd),
            Err(e) => {
                // The child exists and would exec: end it before reporting the failure.
                let _ = crate::process::kill_pid(pid, libc::SIGKILL);
                let _ = crate::process::wait_pid(pid);
                return Err(SpawnError::Clone(e));
            }
        }
    }
    Ok(pid)
}

/// Size of the stack a light child runs on (it makes system calls and little else).
const LIGHT_STACK: usize = 128 * 1024;
/// Stacks kept for reuse.
const LIGHT_POOL: usize = 64;
/// First byte a light child writes on the status pipe: it has its own fd table now.
const UNSHARED: u8 = 0xff;

/// Stacks of light children that have executed, ready for the next ones.
static LIGHT_STACKS: std::sync::Mutex<Vec<LightStack>> = std::sync::Mutex::new(Vec::new());

/// An anonymous mapping with a guard page below it.
#[derive(Debug)]
struct LightStack {
    base: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: a LightStack is only an address range we own; whoever holds it may unmap it.
unsafe impl Send for LightStack {}

impl LightStack {
    fn take() -> Option<Self> {
        if let Some(s) = LIGHT_STACKS.lock().ok().and_then(|mut p| p.pop()) {
            return Some(s);
        }
        let page = 4096;
        let len = LIGHT_STACK + page;
        // SAFETY: a fresh private anonymous mapping; we own it until Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of our own mapping becomes a guard against overflow.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            // SAFETY: unmapping what we just mapped.
            unsafe { libc::munmap(base, len) };
            return None;
        }
        Some(Self {
            base: std::ptr::NonNull::new(base)?,
            len,
        })
    }

    fn give_back(self) {
        if let Ok(mut pool) = LIGHT_STACKS.lock()
            && pool.len() < LIGHT_POOL
        {
            pool.push(self);
            return;
        }
        // SAFETY: our own mapping, no longer used by any child.
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}

/// Everything a light child reads, owned here until it cannot be reading it any more: the
/// strings and arrays `execve` gets, the fd plan, the stack, and the fds it has not copied yet.
/// The context points into these buffers (heap memory that does not move with the box).
struct LightImage {
    ctx: Option<ChildCtx<'static>>,
    keep_below: RawFd,
    _program: CString,
    _devnull: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    plan: Vec<(RawFd, RawFd)>,
    groups: Option<Vec<libc::gid_t>>,
    rlimits: Vec<(libc::c_int, libc::rlimit)>,
    stack: Option<LightStack>,
    held: Vec<OwnedFd>,
    err_w: Option<OwnedFd>,
}

impl std::fmt::Debug for LightImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LightImage")
            .field("keep_below", &self.keep_below)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl Drop for LightImage {
    fn drop(&mut self) {
        self.ctx = None;
        if let Some(s) = self.stack.take() {
            s.give_back();
        }
    }
}

/// Whether the light path can be used: x86_64 (the clone trampoline is written for it) and
/// close_range(2) with `CLOSE_RANGE_UNSHARE` (Linux 5.9, after clone3), probed once on an empty
/// range, which closes nothing.
fn light_available() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    if LIGHT_REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        // SAFETY: plain system calls on integers; the range holds no fd, and clone3 with a null
        // argument of size 0 creates nothing: EINVAL says clone3 exists, ENOSYS (old kernels, or
        // a seccomp filter such as a container runtime's default one) says it does not.
        unsafe {
            let close_range = libc::syscall(
                libc::SYS_close_range,
                libc::c_uint::MAX - 1,
                libc::c_uint::MAX,
                0 as libc::c_uint,
            ) == 0;
            let clone3 = libc::syscall(libc::SYS_clone3, std::ptr::null::<CloneArgs>(), 0usize) < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL);
            close_range && clone3
        }
    })
}

/// Set when clone3 refused a light child with ENOSYS or EPERM (a filter the probe did not
/// see): later starts take the fork-like path.
static LIGHT_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Command {
    /// Starts the child sharing our memory and fd table (`CLONE_VM | CLONE_FILES`) instead of
    /// copying them, which a process holding thousands of fds and megabytes of memory would
    /// otherwise pay for at every start, and again when `execve` closes every copied fd one by
    /// one. The child's first act is `close_range(keep_below, ~0, CLOSE_RANGE_UNSHARE)`, which
    /// gives it a private table of only the fds below `keep_below` (its sources, which sit at
    /// low numbers when the caller keeps its long-lived fds high, see
    /// [`Command::parent_fds_above`]); it then says so on the status pipe and proceeds as any
    /// child. We do not wait for any of it: the image it reads stays alive in the returned
    /// [`ExecWatch`], its fds until it said it has its own, its memory until it executed or
    /// exited.
    ///
    /// A light child shares our thread's `errno` until it executes; it only writes it when a
    /// step fails, right before it reports and exits.
    fn start_light(
        &mut self,
        program: CString,
        devnull: CString,
        plan: Vec<(RawFd, RawFd)>,
        max_target: RawFd,
        err_r: OwnedFd,
        err_w: OwnedFd,
    ) -> Result<Pending, SpawnError> {
        let stack = LightStack::take()
            .ok_or_else(|| SpawnError::Clone(io::Error::other("cannot map a child stack")))?;
        // The sources move here: they must stay open in the shared table until the child has
        // copied them.
        let mut held = Vec::new();
        for s in self.stdio.iter_mut() {
            if matches!(s, Stdio::Fd(_))
                && let Stdio::Fd(fd) = std::mem::replace(s, Stdio::Null)
            {
                held.push(fd);
            }
        }
        held.extend(self.passed.drain(..).map(|(fd, _)| fd));
        let keep_below = plan
            .iter()
            .map(|(src, _)| *src)
            .chain(std::iter::once(err_w.as_raw_fd()))
            .max()
            .unwrap_or(2)
            .max(2)
            + 1;
        let mut img = Box::new(LightImage {
            ctx: None,
            keep_below,
            _program: program,
            _devnull: devnull,
            _argv: self.argv.clone(),
            argv_ptrs: Vec::new(),
            _env: self.env.clone(),
            envp_ptrs: Vec::new(),
            cwd: self.cwd.clone(),
            plan,
            groups: self.groups.clone(),
            rlimits: self.rlimits.clone(),
            stack: Some(stack),
            held,
            err_w: Some(err_w),
        });
        img.argv_ptrs = img._argv.iter().map(|a| a.as_ptr()).collect();
        img.argv_ptrs.push(std::ptr::null());
        img.envp_ptrs = img._env.iter().map(|e| e.as_ptr()).collect();
        img.envp_ptrs.push(std::ptr::null());
        let err_fd = img.err_w.as_ref().map_or(-1, |f| f.as_raw_fd());
        // SAFETY: the slices point into heap buffers owned by `img`, which are neither resized
        // nor freed while `ctx` exists (`ctx` is cleared first when the image is dropped).
        let (plan_s, groups_s, rlimits_s) = unsafe {
            (
                std::slice::from_raw_parts(img.plan.as_ptr(), img.plan.len()),
                img.groups
                    .as_ref()
                    .map(|g| std::slice::from_raw_parts(g.as_ptr(), g.len())),
                std::slice::from_raw_parts(img.rlimits.as_ptr(), img.rlimits.len()),
            )
        };
        img.ctx = Some(ChildCtx {
            userns: None,
            program: img._program.as_ptr(),
            argv: img.argv_ptrs.as_ptr(),
            envp: img.envp_ptrs.as_ptr(),
            cwd: img.cwd.as_ref().map(|c| c.as_ptr()),
            devnull: img._devnull.as_ptr(),
            plan: plan_s,
            max_target,
            new_session: self.new_session,
            process_group: self.process_group,
            ctty: self.ctty,
            uid: self.uid,
            gid: self.gid,
            groups: groups_s,
            rlimits: rlimits_s,
            err_fd,
        });

        let mut pidfd: RawFd = -1;
        let before = boot_ticks();
        let rc = clone_light(self.cgroup, &img, &mut pidfd);
        let after = boot_ticks();
        let pid = match rc {
            Ok(pid) => pid,
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                    LIGHT_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return Err(SpawnError::Clone(e));
            }
        };
        // SAFETY: clone3 with CLONE_PIDFD stored a new fd in `pidfd` that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(self.pending(pid, pidfd, err_r, Some(img), (before, after)))
    }
}

/// clone3 with `CLONE_VM | CLONE_FILES` onto the image's stack; the child runs `light_child`.
#[cfg(target_arch = "x86_64")]
fn clone_light(cgroup: Option<RawFd>, img: &LightImage, pidfd: &mut RawFd) -> io::Result<i32> {
    let Some(stack) = img.stack.as_ref() else {
        return Err(io::Error::other("no child stack"));
    };
    let mut args = CloneArgs {
        flags: (libc::CLONE_PIDFD | libc::CLONE_VM | libc::CLONE_FILES) as u64,
        pidfd: pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base.as_ptr() as u64,
        stack_size: stack.len as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let ret: isize;
    // SAFETY: clone3 with CLONE_VM runs the child on the image's stack (the kernel points its
    // stack pointer at the top, 16-byte aligned as the mapping is page aligned); the child never
    // returns into this frame: it calls `light_child` with the image's address, which ends in
    // execve or _exit. The image, and so everything the child reads, stays alive until the
    // child can no longer use it (see `ExecWatch`). rcx and r11 are clobbered by `syscall`;
    // r12 and r13 survive it in both processes.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") &mut args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") img as *const LightImage as usize,
            in("r13") light_child as extern "C" fn(usize) -> ! as usize,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as i32)
}

#[cfg(not(target_arch = "x86_64"))]
fn clone_light(_cgroup: Option<RawFd>, _img: &LightImage, _pidfd: &mut RawFd) -> io::Result<i32> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// The light child's entry point, on its own stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn light_child(img: usize) -> ! {
    // SAFETY: `img` is the address of the parent's `LightImage`, kept alive until this child
    // has executed or exited.
    let img = unsafe { &*(img as *const LightImage) };
    let Some(ctx) = img.ctx.as_ref() else {
        // SAFETY: _exit has no preconditions.
        unsafe { libc::_exit(127) }
    };
    const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
    // SAFETY: plain system calls on integers and on a one-byte buffer of ours.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            img.keep_below as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_UNSHARE,
        ) < 0
        {
            // The table is still shared with the parent: touching it would close its fds.
            child_fail(ctx.err_fd, Stage::Fds, errno());
        }
        let b = [UNSHARED];
        libc::write(ctx.err_fd, b.as_ptr().cast(), 1);
    }
    child_main(ctx, None)
}

fn child_fail(err_fd: RawFd, stage: Stage, errno: i32) -> ! {
    let e = errno.to_ne_bytes();
    let msg = [stage.as_u8(), e[0], e[1], e[2], e[3]];
    // SAFETY: write and _exit are async-signal-safe; `msg` is a valid buffer of 5 bytes.
    unsafe {
        libc::write(err_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The child side: only raw system calls from here to execve.
fn child_main(ctx: &ChildCtx<'_>, ns: Option<&crate::namespace::NamespacePlan>) -> ! {
    // SAFETY: every call below is a plain system call on integers or on pointers
    // into memory prepared by the parent before clone (valid in our copy of the address space).
    // Raw syscalls are used for credentials and signals because libc wrappers may consult
    // thread bookkeeping inherited from the parent.
    unsafe {
        // Default dispositions first, then an empty mask, so a pending signal is not handled by
        // a handler inherited from the parent.
        let dfl = KSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..65 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KSigaction,
                0usize,
                8usize,
            );
        }
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            0usize,
            8usize,
        );

        if ctx.new_session {
            if libc::setsid() < 0 {
                child_fail(ctx.err_fd, Stage::Setsid, errno());
            }
        } else if ctx.process_group && libc::setpgid(0, 0) < 0 {
            child_fail(ctx.err_fd, Stage::Setsid, errno());
        }

        // Namespaced mounts and resource limits need our privileges: before anything drops them.
        if let Some(ns) = ns
            && let Err(e) = ns.apply()
        {
            child_fail(
                ctx.err_fd,
                Stage::Namespace,
                e.raw_os_error().unwrap_or(libc::EINVAL),
            );
        }
        for (res, lim) in ctx.rlimits {
            if libc::setrlimit(*res as _, lim) < 0 {
                child_fail(ctx.err_fd, Stage::Rlimit, errno());
            }
        }
        if let Some(u) = ctx.userns {
            // Become the target ids, then enter a user namespace where they are root; the
            // parent maps them once we said so.
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) < 0
                || libc::syscall(libc::SYS_setresgid, u.gid, u.gid, u.gid) < 0
                || libc::syscall(libc::SYS_setresuid, u.uid, u.uid, u.uid) < 0
                || libc::unshare(libc::CLONE_NEWUSER) < 0
            {
                child_fail(ctx.err_fd, Stage::Namespace, errno());
            }
            let b = [1u8; 1];
            let mut go = [0u8; 1];
            if libc::write(u.ready_w, b.as_ptr().cast(), 1) != 1
                || libc::read(u.go_r, go.as_mut_ptr().cast(), 1) != 1
                || libc::syscall(libc::SYS_setresgid, 0, 0, 0) < 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) < 0
            {
                child_fail(ctx.err_fd, Stage::Namespace, errno());
            }
        }

        // Move every source fd above every target, so dup2 onto targets never clobbers a
        // source that is still needed.
        let base = ctx.max_target.max(ctx.err_fd) + 1;
        let mut moved = [-1 as RawFd; 64];
        for (i, (src, _)) in ctx.plan.iter().enumerate().take(64) {
            moved[i] = match *src {
                -2 => -2,
                -1 => {
                    let fd = libc::open(ctx.devnull, libc::O_RDWR | libc::O_CLOEXEC);
                    if fd < 0 {
                        child_fail(ctx.err_fd, Stage::Fds, errno());
                    }
                    let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base);
                    libc::close(fd);
                    high
                }
                fd => libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base),
            };
            if moved[i] == -1 {
                child_fail(ctx.err_fd, Stage::Fds, errno());
            }
        }
        // Close every low fd that is not an inherited stdio.
        for fd in 0..=ctx.max_target {
            let keep = ctx
                .plan
                .iter()
                .zip(moved.iter())
                .any(|((_, t), m)| *t == fd && *m == -2);
            let sync = ctx.userns.is_some_and(|u| fd == u.ready_w || fd == u.go_r);
            if !keep && fd != ctx.err_fd && !sync {
                libc::close(fd);
            }
        }
        for (i, (_, target)) in ctx.plan.iter().enumerate().take(64) {
            if moved[i] >= 0 && libc::dup2(moved[i], *target) < 0 {
                child_fail(ctx.err_fd, Stage::Fds, errno());
            }
        }
        // Everything above the targets goes: close_range(2) marks them close-on-exec, which keeps
        // err_fd usable until exec succeeds.
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        if libc::syscall(
            libc::SYS_close_range,
            (ctx.max_target + 1) as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            // Old kernels: close the ones we know about; the rest were opened CLOEXEC by us.
            for fd in base..base + ctx.plan.len() as RawFd {
                libc::close(fd);
            }
        }

        if ctx.ctty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            child_fail(ctx.err_fd, Stage::Tty, errno());
        }
        if let Some(groups) = ctx.groups
            && libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
        {
            child_fail(ctx.err_fd, Stage::Groups, errno());
        }
        if let Some(gid) = ctx.gid
            && libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0
        {
            child_fail(ctx.err_fd, Stage::Gid, errno());
        }
        if let Some(uid) = ctx.uid
            && libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0
        {
            child_fail(ctx.err_fd, Stage::Uid, errno());
        }
        if let Some(cwd) = ctx.cwd
            && libc::chdir(cwd) < 0
        {
            child_fail(ctx.err_fd, Stage::Chdir, errno());
        }
        libc::execve(ctx.program, ctx.argv, ctx.envp);
        child_fail(ctx.err_fd, Stage::Exec, errno())
    }
}

/// The kernel's `struct sigaction` for rt_sigaction(2) on x86_64.
#[repr(C)]
struct KSigaction {
    handler: libc::sighandler_t,
    flags: u64,
    restorer: usize,
    mask: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn unsafe_owned(fd: RawFd) -> OwnedFd {
        // SAFETY: the caller passes a freshly created fd that it owns exclusively.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    fn run_capture(cmd: &mut Command) -> (String, crate::process::ExitStatus) {
        let (r, w) = pipe();
        cmd.stdout(Stdio::Fd(w));
        let child = cmd.spawn().unwrap();
        // Drop our copy of the write end held by the command.
        cmd.stdout(Stdio::Inherit);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        let st = crate::process::wait_pid(child.pid).unwrap();
        (out, st)
    }

    #[test]
    fn child_gets_exactly_the_given_environment() {
        let mut cmd = Command::new("/usr/bin/env");
        cmd.env("A", "1").env("B", "two words").env("A", "3");
        let (out, st) = run_capture(&mut cmd);
        assert_eq!(st, crate::process::ExitStatus::Exited(0));
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(lines, ["A=3", "B=two words"]);
    }

    #[test]
    fn child_has_empty_signal_mask_and_only_passed_fds() {
        // Block a signal and open a stray non-CLOEXEC fd in the parent.
        let null = std::fs::File::open("/dev/null").unwrap();
        // A non-CLOEXEC fd at a number nothing else uses.
        let stray_fd = nix::fcntl::fcntl(&null, nix::fcntl::FcntlArg::F_DUPFD(60)).unwrap();
        let stray = std::fs::File::from(unsafe_owned(stray_fd));
        let (keep_r, _keep_w) = pipe();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("grep SigBlk /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '")
            .pass_fd(keep_r, 7);
        let (out, _) = run_capture(&mut cmd);
        assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
        let fds: Vec<i32> = out
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        // 0-2, the passed fd 7, and the fd `ls` opened for /proc/self/fd.
        assert!(fds.contains(&7), "{fds:?}");
        assert!(!fds.contains(&stray_fd), "{fds:?}");
        assert!(
            fds.iter().filter(|&&f| f > 2 && f != 7).count() <= 1,
            "{fds:?}"
        );
        drop(stray);
    }

    #[test]
    fn missing_program_is_reported_not_found() {
        let err = Command::new("definitely-not-a-program-xyz")
            .spawn()
            .unwrap_err();
        assert!(matches!(err, SpawnError::NotFound(_)), "{err}");
    }

    #[test]
    fn exec_failure_is_reported_with_errno() {
        let err = Command::new("/etc/hostname-not-here").spawn().unwrap_err();
        match err {
            SpawnError::Child {
                stage: Stage::Exec,
                source,
                ..
            } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bad_workdir_fails_before_exec() {
        let err = Command::new("/bin/true")
            .cwd("/no/such/dir")
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                err,
                SpawnError::Child {
                    stage: Stage::Chdir,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn path_lookup_uses_the_childs_path() {
        let mut cmd = Command::new("sh");
        cmd.env("PATH", "/bin").arg("-c").arg("echo found");
        let (out, _) = run_capture(&mut cmd);
        assert_eq!(out, "found\n");
    }

    #[test]
    fn new_session_makes_the_child_a_session_leader() {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg("cut -d' ' -f6 /proc/self/stat; echo $$");
        let (out, _) = run_capture(&mut cmd);
        let mut l = out.lines();
        let sid = l.next().unwrap().to_owned();
        let pid = l.next().unwrap().to_owned();
        assert_eq!(sid, pid);
    }

    #[test]
    fn nul_in_argument_is_refused() {
        let err = Command::new("/bin/true").arg("a\0b").spawn().unwrap_err();
        assert!(matches!(err, SpawnError::Nul));
    }

    /// Waits (with poll) until the status pipe of `p` is readable.
    fn settle(p: &mut Pending) -> ExecOutcome {
        for _ in 0..1000 {
            match p.watch.poll() {
                ExecOutcome::InProgress => std::thread::sleep(std::time::Duration::from_millis(5)),
                other => return other,
            }
        }
        panic!("the child neither executed nor failed within 5 s");
    }

    #[test]
    fn start_returns_before_exec_and_reports_the_program_running() {
        let (r, w) = pipe();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg("echo started").stdout(Stdio::Fd(w));
        let mut p = cmd.start().unwrap();
        drop(cmd); // our copy of the pipe's write end
        assert!(matches!(settle(&mut p), ExecOutcome::Executed));
        let child = p.child;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
        assert_eq!(out, "started\n");
        assert_eq!(
            crate::process::wait_pid(child.pid).unwrap(),
            crate::process::ExitStatus::Exited(0)
        );
    }

    #[test]
    fn start_ticks_match_proc() {
        let mut seen = 0;
        for _ in 0..20 {
            let p = Command::new("/bin/sleep").arg("1").start().unwrap();
            if let Some(t) = p.start_ticks {
                let proc_t =
                    crate::process::start_time_ticks(Path::new("/proc"), p.child.pid).unwrap();
                assert_eq!(t, proc_t);
                seen += 1;
            }
            crate::process::kill_pid(p.child.pid, libc::SIGKILL).unwrap();
            crate::process::wait_pid(p.child.pid).unwrap();
        }
        // A clone straddles a 10 ms tick rarely; twenty in a row would mean the clock is wrong.
        assert!(seen > 0, "no start time was known from the clock");
    }

    #[test]
    fn start_reports_a_failure_after_the_fork_and_leaves_the_child_to_reap() {
        let mut p = Command::new("/bin/true")
            .cwd("/no/such/dir")
            .start()
            .unwrap();
        let pid = p.child.pid;
        match settle(&mut p) {
            ExecOutcome::Failed(SpawnError::Child { stage, source, .. }) => {
                assert_eq!(stage, Stage::Chdir);
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("expected a chdir failure, got {other:?}"),
        }
        assert_eq!(
            crate::process::wait_pid(pid).unwrap(),
            crate::process::ExitStatus::Exited(127)
        );
    }

    fn identity(fd: RawFd) -> (u64, u64) {
        // SAFETY: the callers pass fds that stay open for the duration of the call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let st = nix::sys::stat::fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    }

    #[test]
    fn spawning_leaves_the_parents_fds_alone() {
        // The child shares our fd table until it has copied what it needs: nothing it does
        // (moving fds onto 0-3, closing the rest) may show here.
        let before: Vec<(u64, u64)> = (0..3).map(identity).collect();
        let (keep_r, keep_w) = pipe();
        let kept = (identity(keep_r.as_raw_fd()), identity(keep_w.as_raw_fd()));
        for _ in 0..20 {
            let (r, w) = pipe();
            let (r2, w2) = pipe();
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg("echo out; echo ready >&3")
                .stdin(Stdio::Null)
                .stdout(Stdio::Fd(w))
                .stderr(Stdio::Null)
                .pass_fd(w2, 3);
            let child = cmd.spawn().unwrap();
            drop(cmd);
            let mut out = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
            let mut ready = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r2), &mut ready).unwrap();
            assert_eq!((out.as_str(), ready.as_str()), ("out\n", "ready\n"));
            crate::process::wait_pid(child.pid).unwrap();
        }
        let after: Vec<(u64, u64)> = (0..3).map(identity).collect();
        assert_eq!(before, after);
        assert_eq!(
            kept,
            (identity(keep_r.as_raw_fd()), identity(keep_w.as_raw_fd()))
        );
    }

    #[test]
    fn many_starts_in_flight_each_get_their_own_fds() {
        // Fifty children started without waiting, while their sources are still in our table:
        // each must end up with its own pipe on fd 1, whatever the others do meanwhile.
        let mut running = Vec::new();
        for i in 0..50 {
            let (r, w) = pipe();
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(format!("echo {i}")).stdout(Stdio::Fd(w));
            let p = cmd.start().unwrap();
            running.push((i, r, p));
        }
        for (i, r, mut p) in running {
            // Until the watch hears that the child has its own fds, it keeps ours open.
            p.watch.wait().unwrap();
            let mut out = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
            assert_eq!(out, format!("{i}\n"));
            assert!(!matches!(p.watch.child_exited(), ExecOutcome::Failed(_)));
            crate::process::wait_pid(p.child.pid).unwrap();
        }
    }
}
