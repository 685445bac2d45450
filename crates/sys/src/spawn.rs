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

    /// Starts the process.
    pub fn spawn(&mut self) -> Result<Child, SpawnError> {
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

        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| SpawnError::Clone(io::Error::from(e)))?;

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

        // Wait for exec (EOF) or an error report (5 bytes).
        let mut buf = [0u8; 5];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(&err_r, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if got == buf.len() {
            let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let _ = crate::process::wait_pid(pid);
            return Err(SpawnError::Child {
                program: self.program_display.clone(),
                stage: Stage::from_u8(buf[0]),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(Child { pid, pidfd })
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
}
