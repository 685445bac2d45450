//! Process handles: pidfds, signals through pidfds, and reaping.
//!
//! Every process dynamod supervises is tracked by a pidfd, so a signal can never reach a
//! recycled PID (pidfd_open(2), pidfd_send_signal(2)).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use dynamod_proto::ExitStatus;

/// Opens a pidfd for `pid` (`pidfd_open(2)`), close-on-exec.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `sig` to the process behind `pidfd` (`pidfd_send_signal(2)`).
///
/// `ESRCH` means the process has already exited (it may still be a zombie).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid fd, a signal number, a null siginfo (kernel fills it like kill(2)) and
    // zero flags; the call does not touch our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to a process group (`kill(-pgid, sig)`).
pub fn kill_process_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill has no memory arguments; a negative pid addresses the group.
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to every process this one may signal (`kill(-1, sig)`); used by PID 1 only,
/// where it is confined to the PID namespace.
pub fn kill_all(sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments.
    let rc = unsafe { libc::kill(-1, sig) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `sig` to `pid` with plain `kill(2)`. Only for processes that are our own unreaped
/// children (their PID cannot be recycled before we reap them) or where no pidfd exists.
pub fn kill_pid(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill has no memory arguments.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The outcome of one [`reap_one`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child was reaped.
    Child {
        /// Its PID.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
    },
    /// No child is left at all (`ECHILD`).
    NoChildren,
    /// Children exist, none has exited yet.
    NoneReady,
}

fn status_from_siginfo(info: &libc::siginfo_t) -> (i32, ExitStatus) {
    // SAFETY: waitid filled `info` for a CLD_* event, for which si_pid and si_status are the
    // valid union members.
    let (pid, st) = unsafe { (info.si_pid(), info.si_status()) };
    let status = match info.si_code {
        libc::CLD_EXITED => ExitStatus::Exited(st),
        _ => ExitStatus::Signaled(st),
    };
    (pid, status)
}

/// Reaps one exited child of any kind without blocking (`waitid(P_ALL, WEXITED|WNOHANG)`).
///
/// Call it in a loop after SIGCHLD: several exits can be coalesced into one signal.
pub fn reap_one() -> io::Result<Reaped> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(Reaped::NoChildren),
                _ => return Err(err),
            }
        }
        // SAFETY: reading si_pid of a siginfo filled (or left zeroed) by waitid.
        if unsafe { info.si_pid() } == 0 {
            return Ok(Reaped::NoneReady);
        }
        let (pid, status) = status_from_siginfo(&info);
        return Ok(Reaped::Child { pid, status });
    }
}

/// Blocks until the child `pid` exits and reaps it.
pub fn wait_pid(pid: i32) -> io::Result<ExitStatus> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid and writable; pid is an id, not a pointer.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        return Ok(status_from_siginfo(&info).1);
    }
}

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans of its
/// descendants are reparented to it instead of PID 1.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies (`PR_SET_PDEATHSIG`).
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`), used with the
/// PID to recognise a process across a service-manager restart.
pub fn start_time_ticks(proc_root: &std::path::Path, pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))?;
    parse_stat_start_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
}

/// Extracts the start time from the text of `/proc/PID/stat` (the command may contain spaces
/// and parentheses, so fields are counted after the last `)`).
pub fn parse_stat_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" the fields start at #3 (state); starttime is #22.
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_after_a_command_with_spaces_and_parens() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat_start_time(stat), Some(987654));
    }

    #[test]
    fn truncated_stat_yields_none() {
        assert_eq!(parse_stat_start_time("42 (x) S 1"), None);
        assert_eq!(parse_stat_start_time("no paren"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        let pid = std::process::id() as i32;
        assert!(start_time_ticks(std::path::Path::new("/proc"), pid).is_ok());
    }
}
