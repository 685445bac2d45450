//! File-descriptor plumbing.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of an fd number inherited from our parent (such as `DYNAMOD_INIT_FD`): checks
/// that it is open, refuses 0–2, and marks it close-on-exec so no child inherits it.
pub fn take_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fd 0-2 cannot be taken over",
        ));
    }
    // SAFETY: fcntl on an integer fd has no memory effects; an invalid fd yields EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and was handed to this process to own; nothing
    // else in the process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears close-on-exec on `fd`, so it survives an `execve` of this process (svmgr's in-place
/// re-exec keeps its init socket this way).
pub fn keep_across_exec(fd: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on an integer fd has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of an fd the kernel just installed in this process (received with
/// `SCM_RIGHTS`).
pub fn own_received(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel created this fd for us in recvmsg; nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn takes_an_open_fd_and_sets_cloexec() {
        let f = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
        // SAFETY: clear CLOEXEC on our own fresh fd to simulate inheritance.
        unsafe { libc::fcntl(f, libc::F_SETFD, 0) };
        let owned = take_inherited(f).unwrap();
        // SAFETY: querying flags of an fd we own.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&owned), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn refuses_closed_and_standard_fds() {
        assert!(take_inherited(1).is_err());
        assert!(take_inherited(987_654).is_err());
    }
}
