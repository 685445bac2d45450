//! The emergency shell (SPEC §2.6): `sulogin` when installed (it asks for root's password),
//! else `/bin/sh`, on the console, in a session of its own with the console as controlling
//! terminal.
//!
//! Two ways to run it: [`spawn`] starts it as a child while the event loop keeps reaping and
//! restarts svmgr when it exits; [`exec_now`] replaces PID 1 with it, for fatal paths (a panic,
//! no signalfd) where no loop is left to return to.

use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dynamod_sys::nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use dynamod_sys::nix::unistd;
use dynamod_sys::spawn::{Child, Command, SpawnError, Stdio};

/// Where `sulogin` may live.
const SULOGIN: [&str; 4] = [
    "/sbin/sulogin",
    "/usr/sbin/sulogin",
    "/bin/sulogin",
    "/usr/bin/sulogin",
];
const SHELL: &str = "/bin/sh";
const CONSOLE: &str = "/dev/console";
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
const PS1: &str = "(dynamod emergency) # ";

/// Which shell and which terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellConfig {
    /// Replaces the sulogin / `/bin/sh` choice (development).
    pub program: Option<PathBuf>,
    /// Replaces `/dev/console` (development).
    pub console: Option<PathBuf>,
}

/// The shell could not be started.
#[derive(Debug)]
pub enum ShellError {
    /// The spawn failed.
    Spawn(PathBuf, SpawnError),
}

impl std::fmt::Display for ShellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(p, e) => write!(f, "start {}: {e}", p.display()),
        }
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The program to run and whether it is sulogin.
fn choose(cfg: &ShellConfig) -> (PathBuf, bool) {
    if let Some(p) = &cfg.program {
        return (p.clone(), false);
    }
    match SULOGIN.iter().map(Path::new).find(|p| is_executable(p)) {
        Some(p) => (p.to_owned(), true),
        None => (PathBuf::from(SHELL), false),
    }
}

fn console_path(cfg: &ShellConfig) -> &Path {
    cfg.console.as_deref().unwrap_or(Path::new(CONSOLE))
}

fn term() -> std::ffi::OsString {
    std::env::var_os("TERM").unwrap_or_else(|| "linux".into())
}

/// Starts the shell as a child. The caller reaps it like any other child.
pub fn spawn(cfg: &ShellConfig) -> Result<Child, ShellError> {
    let (program, sulogin) = choose(cfg);
    let mut cmd = Command::new(&program);
    if !sulogin && cfg.program.is_none() {
        // A login shell, like a console login, so /etc/profile sets the usual environment.
        cmd.arg0("-sh");
    }
    cmd.env("PATH", PATH)
        .env("HOME", "/")
        .env("TERM", term())
        .env("PS1", PS1);
    match open_console(console_path(cfg)) {
        Some(console) => {
            let tty = unistd::isatty(console.as_fd()).unwrap_or(false);
            let (a, b) = (console.try_clone().ok(), console.try_clone().ok());
            cmd.stdin(Stdio::Fd(OwnedFd::from(console)));
            cmd.stdout(a.map_or(Stdio::Inherit, |f| Stdio::Fd(OwnedFd::from(f))));
            cmd.stderr(b.map_or(Stdio::Inherit, |f| Stdio::Fd(OwnedFd::from(f))));
            cmd.new_session(true).controlling_tty(tty);
        }
        // Without a console the shell gets init's own stdio (a container's terminal or pipe).
        None => {
            cmd.new_session(true);
        }
    }
    cmd.spawn().map_err(|e| ShellError::Spawn(program, e))
}

fn open_console(path: &Path) -> Option<File> {
    let noctty = dynamod_sys::nix::fcntl::OFlag::O_NOCTTY.bits();
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(noctty)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            warn!(
                "cannot open {} for the emergency shell: {e}; using init's terminal",
                path.display()
            );
            None
        }
    }
}

/// Replaces this process with the shell. Used only on fatal paths of PID 1, which must not
/// exit. Never returns: if no shell can be executed it sleeps forever, keeping the machine up.
pub fn exec_now(cfg: &ShellConfig) -> ! {
    // The shell must not inherit init's blocked signals.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // A new session, so opening the console (without O_NOCTTY) makes it the controlling tty.
    let _ = unistd::setsid();
    if let Ok(console) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(console_path(cfg))
    {
        let _ = unistd::dup2_stdin(&console);
        let _ = unistd::dup2_stdout(&console);
        let _ = unistd::dup2_stderr(&console);
    }
    let (program, sulogin) = choose(cfg);
    let arg0 = if sulogin || cfg.program.is_some() {
        program.as_os_str()
    } else {
        OsStr::new("-sh")
    };
    let env = [
        format!("PATH={PATH}"),
        "HOME=/".to_owned(),
        format!("TERM={}", term().to_string_lossy()),
        format!("PS1={PS1}"),
    ];
    let cstr = |b: &[u8]| CString::new(b).unwrap_or_default();
    let path = cstr(program.as_os_str().as_bytes());
    let argv = [cstr(arg0.as_bytes())];
    let envp: Vec<CString> = env.iter().map(|e| cstr(e.as_bytes())).collect();
    let err = unistd::execve(&path, &argv, &envp);
    emerg!(
        "cannot execute emergency shell {}: {err:?}; halting here",
        program.display()
    );
    if program != Path::new(SHELL) {
        let sh = cstr(SHELL.as_bytes());
        let err = unistd::execve(&sh, &[cstr(b"-sh")], &envp);
        emerg!("cannot execute {SHELL} either: {err:?}");
    }
    loop {
        unistd::pause();
    }
}

/// Installs a panic hook that logs the panic on one line and, when `pid1`, replaces the
/// process with the emergency shell (PID 1 must never exit: with `panic = "abort"` an unwinding
/// panic would otherwise take the kernel down).
pub fn install_panic_hook(pid1: bool, cfg: ShellConfig) {
    std::panic::set_hook(Box::new(move |info| {
        emerg!("panic: {info}");
        if pid1 {
            exec_now(&cfg);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_program_is_used_as_is() {
        let cfg = ShellConfig {
            program: Some(PathBuf::from("/x/shell")),
            console: None,
        };
        assert_eq!(choose(&cfg), (PathBuf::from("/x/shell"), false));
    }

    #[test]
    fn default_console_is_dev_console() {
        assert_eq!(
            console_path(&ShellConfig::default()),
            Path::new("/dev/console")
        );
    }
}
