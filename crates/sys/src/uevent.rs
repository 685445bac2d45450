//! Kernel uevents (the `NETLINK_KOBJECT_UEVENT` multicast group): how a process without udev
//! learns that devices appeared, so waiting for the root device sleeps until something
//! happens instead of polling blindly.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};

/// A socket subscribed to the kernel's uevents.
#[derive(Debug)]
pub struct Uevents {
    fd: OwnedFd,
}

/// What one wait saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch {
    /// Events received.
    pub events: usize,
    /// The socket overflowed (`ENOBUFS`): some events were lost, rescan everything.
    pub overflowed: bool,
}

impl Batch {
    /// Whether anything happened.
    pub fn any(&self) -> bool {
        self.events > 0 || self.overflowed
    }
}

impl Uevents {
    /// Opens the socket (close-on-exec, non-blocking) and joins the kernel's group.
    pub fn open() -> Result<Self, Errno> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        // Group 1 carries the kernel's own events (udev re-broadcasts on group 2).
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, 1),
        )?;
        Ok(Self { fd })
    }

    /// Waits up to `timeout_ms` for events and drains every queued one.
    pub fn wait(&self, timeout_ms: u64) -> Result<Batch, Errno> {
        let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        self.drain()
    }

    /// Reads every queued event without waiting.
    pub fn drain(&self) -> Result<Batch, Errno> {
        let mut batch = Batch::default();
        let mut buf = [0u8; 8192];
        loop {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut buf,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => return Ok(batch),
                Ok(_) => batch.events += 1,
                Err(Errno::EAGAIN) => return Ok(batch),
                Err(Errno::EINTR) => {}
                Err(Errno::ENOBUFS) => batch.overflowed = true,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_is_nothing() {
        assert!(!Batch::default().any());
        assert!(
            Batch {
                events: 0,
                overflowed: true
            }
            .any()
        );
    }

    #[test]
    fn socket_opens_and_a_short_wait_returns() {
        // Unprivileged processes may listen to uevents too; the wait just must not fail.
        if let Ok(u) = Uevents::open() {
            assert!(u.wait(1).is_ok());
        }
    }
}
