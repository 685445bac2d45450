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

/// Moves `fd` to the lowest free number at or above `min` (close-on-exec) and closes the old
/// number. A process that keeps many long-lived fds above a floor leaves the low numbers to the
/// short-lived ones it hands to children, which lets [`crate::spawn`] give each child a copy of
/// only those. When the move is impossible (the fd limit is at or below `min`) `fd` comes back
/// as it was.
pub fn move_above(fd: OwnedFd, min: RawFd) -> OwnedFd {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    if raw >= min {
        return fd;
    }
    // SAFETY: fcntl on an fd we own; the result, when valid, is a new fd nothing else owns.
    let moved = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, min) };
    if moved < 0 {
        return fd;
    }
    drop(fd);
    // SAFETY: `moved` was just created by F_DUPFD_CLOEXEC for us.
    unsafe { OwnedFd::from_raw_fd(moved) }
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

    #[test]
    fn moves_an_fd_above_a_floor_and_keeps_it_working() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let r = move_above(r, 700);
        assert!(std::os::fd::AsRawFd::as_raw_fd(&r) >= 700);
        nix::unistd::write(&w, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut b).unwrap(), 1);
        // SAFETY: querying flags of an fd we own.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&r), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        // Above the limit nothing moves.
        let raw = std::os::fd::AsRawFd::as_raw_fd(&w);
        let w = move_above(w, i32::MAX);
        assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&w), raw);
    }
}
