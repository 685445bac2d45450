//! init's end of the svmgr socket: whole frames in and out through fixed buffers.
//!
//! Frames are `dynamod_proto` frames ("DM", u32 big-endian length, MessagePack), written and
//! read with the serde-free codec of [`dynamod_proto::init_wire`] (it keeps init small). The
//! read buffer starts small and doubles when a frame needs more, up to a fixed limit (svmgr's
//! frames are small but for the occasional long list of parked pipes); a frame larger than the
//! limit is a protocol violation. The write buffer, which orphan reports go through, is
//! reserved whole when the connection starts, so reaping never allocates. Outgoing frames are encoded into a scratch buffer and copied
//! into a bounded write buffer; when the peer does not read and the buffer is full, the send is
//! refused and the caller decides (orphan reports wait in their own queue).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use dynamod_proto::init_wire::{self, WireError};
use dynamod_proto::{HEADER_LEN, InitMsg, MAGIC, SvmgrMsg};
use dynamod_sys::nix::errno::Errno;

/// Largest frame accepted from svmgr.
pub const READ_CAPACITY: usize = 64 * 1024;
/// Most bytes queued towards svmgr.
pub const WRITE_CAPACITY: usize = 64 * 1024;
/// Size of the read buffer when the connection starts.
const INITIAL_CAPACITY: usize = 4 * 1024;
/// Most fds received in one `recvmsg` (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS_PER_MSG: usize = 253;
/// Most received fds waiting to be claimed by a message.
pub const FD_QUEUE: usize = 1024;

/// Why the connection is unusable.
#[derive(Debug)]
pub enum LinkError {
    /// The peer closed its end.
    Closed,
    /// A read or write failed.
    Io(Errno),
    /// The first two bytes of a frame were not `DM`.
    BadMagic(u8, u8),
    /// The peer sent a frame whose payload is not a valid message.
    Protocol(WireError),
    /// The peer announced a frame larger than [`READ_CAPACITY`].
    FrameTooLarge(usize),
    /// The write buffer is full.
    Full,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed by svmgr"),
            Self::Io(e) => write!(f, "socket i/o: {e}"),
            Self::BadMagic(a, b) => write!(f, "bad frame magic {a:#04x} {b:#04x}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::FrameTooLarge(n) => write!(f, "frame of {n} bytes exceeds {READ_CAPACITY}"),
            Self::Full => f.write_str("write buffer full"),
        }
    }
}

/// One svmgr connection.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
    /// Received bytes in `..rlen`; its length is the current capacity (grown by `grow_rbuf`).
    rbuf: Vec<u8>,
    rlen: usize,
    wbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// fds received with SCM_RIGHTS, in arrival order, not yet claimed by a message.
    fds: std::collections::VecDeque<OwnedFd>,
}

impl Link {
    /// Wraps a non-blocking, close-on-exec stream socket.
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            rbuf: vec![0u8; INITIAL_CAPACITY],
            rlen: 0,
            wbuf: Vec::with_capacity(WRITE_CAPACITY),
            scratch: Vec::with_capacity(1024),
            fds: std::collections::VecDeque::new(),
        }
    }

    /// The socket, for epoll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads what is available into the buffer. `Ok(())` once the socket would block.
    pub fn fill(&mut self) -> Result<(), LinkError> {
        loop {
            let Some(space) = self.rbuf.get_mut(self.rlen..) else {
                return Err(LinkError::FrameTooLarge(self.rlen));
            };
            if space.is_empty() {
                // The buffer is full and holds no complete frame: make room, up to the limit.
                if !self.grow_rbuf() {
                    return Err(LinkError::FrameTooLarge(
                        self.declared_len().unwrap_or(self.rlen),
                    ));
                }
                continue;
            }
            match recv_with_fds(self.fd.as_fd(), space, &mut self.fds) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => self.rlen += n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(LinkError::Io(e)),
            }
            // Stop reading once a frame is complete so the caller can make room.
            if self.has_frame()? {
                return Ok(());
            }
        }
    }

    /// Doubles the read buffer, up to [`READ_CAPACITY`]; false when it is that large already.
    fn grow_rbuf(&mut self) -> bool {
        let len = self.rbuf.len();
        if len >= READ_CAPACITY {
            return false;
        }
        self.rbuf
            .resize((len * 2).clamp(INITIAL_CAPACITY, READ_CAPACITY), 0);
        true
    }

    fn declared_len(&self) -> Option<usize> {
        let h = self.rbuf.get(..HEADER_LEN)?;
        let len = u32::from_be_bytes([*h.get(2)?, *h.get(3)?, *h.get(4)?, *h.get(5)?]);
        usize::try_from(len).ok()
    }

    fn has_frame(&self) -> Result<bool, LinkError> {
        if self.rlen >= 2 {
            let (a, b) = (self.rbuf.first().copied(), self.rbuf.get(1).copied());
            if let (Some(a), Some(b)) = (a, b)
                && [a, b] != MAGIC
            {
                return Err(LinkError::BadMagic(a, b));
            }
        }
        match self.declared_len() {
            Some(len) if self.rlen >= HEADER_LEN => {
                if len > READ_CAPACITY - HEADER_LEN {
                    return Err(LinkError::FrameTooLarge(len));
                }
                Ok(self.rlen >= HEADER_LEN + len)
            }
            _ => Ok(false),
        }
    }

    /// The next complete message in the buffer, if any.
    pub fn next_msg(&mut self) -> Result<Option<SvmgrMsg>, LinkError> {
        if !self.has_frame()? {
            return Ok(None);
        }
        let len = self.declared_len().unwrap_or(0);
        let end = HEADER_LEN + len;
        let payload = self.rbuf.get(HEADER_LEN..end).unwrap_or(&[]);
        let msg = init_wire::decode_svmgr_msg(payload).map_err(LinkError::Protocol);
        // Drop the frame even if it did not decode, then shift the rest to the front.
        self.rbuf.copy_within(end..self.rlen, 0);
        self.rlen -= end;
        msg.map(Some)
    }

    /// Queues `msg` and tries to write it out.
    pub fn send(&mut self, msg: &InitMsg) -> Result<(), LinkError> {
        self.scratch.clear();
        init_wire::encode_init_msg(msg, &mut self.scratch).map_err(LinkError::Protocol)?;
        if self.wbuf.len() + self.scratch.len() > WRITE_CAPACITY {
            return Err(LinkError::Full);
        }
        self.wbuf.extend_from_slice(&self.scratch);
        self.flush()
    }

    /// Whether a frame of typical size still fits in the write buffer.
    pub fn has_room(&self) -> bool {
        self.wbuf.len() + 256 <= WRITE_CAPACITY
    }

    /// Writes queued bytes until done or the socket would block.
    pub fn flush(&mut self) -> Result<(), LinkError> {
        let mut written = 0;
        let result = loop {
            let Some(rest) = self.wbuf.get(written..) else {
                break Ok(());
            };
            if rest.is_empty() {
                break Ok(());
            }
            match dynamod_sys::nix::sys::socket::send(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                rest,
                dynamod_sys::nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => written += n,
                Err(Errno::EAGAIN) => break Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => break Err(LinkError::Closed),
                Err(e) => break Err(LinkError::Io(e)),
            }
        };
        self.wbuf.drain(..written.min(self.wbuf.len()));
        result
    }

    /// Takes the next `n` received fds (fewer if not that many arrived).
    pub fn take_fds(&mut self, n: usize) -> Vec<OwnedFd> {
        let n = n.min(self.fds.len());
        self.fds.drain(..n).collect()
    }

    /// Sends `msg` with `fds` attached. Queued bytes go first so the order of frames holds; if
    /// they cannot all be written now, the send is refused ([`LinkError::Full`]).
    pub fn send_with_fds(
        &mut self,
        msg: &InitMsg,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), LinkError> {
        self.flush()?;
        if !self.wbuf.is_empty() {
            return Err(LinkError::Full);
        }
        self.scratch.clear();
        init_wire::encode_init_msg(msg, &mut self.scratch).map_err(LinkError::Protocol)?;
        let raw: Vec<std::os::fd::RawFd> =
            fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
        let cmsg = [dynamod_sys::nix::sys::socket::ControlMessage::ScmRights(
            &raw,
        )];
        let iov = [std::io::IoSlice::new(&self.scratch)];
        let sent = loop {
            match dynamod_sys::nix::sys::socket::sendmsg::<()>(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &iov,
                if raw.is_empty() { &[] } else { &cmsg },
                dynamod_sys::nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => break n,
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => return Err(LinkError::Closed),
                Err(e) => return Err(LinkError::Io(e)),
            }
        };
        // The fds travelled with the first byte; the rest of the frame is ordinary data.
        if let Some(rest) = self.scratch.get(sent..) {
            self.wbuf.extend_from_slice(rest);
        }
        self.flush()
    }

    /// Whether bytes are waiting for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        !self.wbuf.is_empty()
    }
}

/// `recvmsg` that appends any SCM_RIGHTS fds to `fds` (fds beyond its capacity are closed).
fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut std::collections::VecDeque<OwnedFd>,
) -> Result<usize, Errno> {
    use dynamod_sys::nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = dynamod_sys::nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS_PER_MSG]);
    let msg = recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let n = msg.bytes;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(received) = c {
                for raw in received {
                    let owned = dynamod_sys::fd::own_received(raw);
                    if fds.len() < FD_QUEUE {
                        fds.push_back(owned);
                    }
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use dynamod_proto::{FrameDecoder, Hello, ShutdownKind};

    use super::*;

    fn pair() -> (Link, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (Link::new(OwnedFd::from(a)), b)
    }

    #[test]
    fn reads_frames_split_across_writes() {
        let (mut link, mut peer) = pair();
        let mut bytes =
            dynamod_proto::encode(&SvmgrMsg::Hello(Hello::new("dynamod-svmgr"))).unwrap();
        dynamod_proto::encode_into(&SvmgrMsg::Heartbeat, &mut bytes).unwrap();
        peer.write_all(&bytes[..3]).unwrap();
        link.fill().unwrap();
        assert_eq!(link.next_msg().unwrap(), None);
        peer.write_all(&bytes[3..]).unwrap();
        link.fill().unwrap();
        assert!(matches!(link.next_msg().unwrap(), Some(SvmgrMsg::Hello(_))));
        link.fill().unwrap();
        assert_eq!(link.next_msg().unwrap(), Some(SvmgrMsg::Heartbeat));
        assert_eq!(link.next_msg().unwrap(), None);
    }

    #[test]
    fn peer_closing_is_reported() {
        let (mut link, peer) = pair();
        drop(peer);
        assert!(matches!(link.fill(), Err(LinkError::Closed)));
    }

    #[test]
    fn bad_magic_is_a_protocol_error() {
        let (mut link, mut peer) = pair();
        peer.write_all(b"XX\0\0\0\0").unwrap();
        link.fill().ok();
        assert!(matches!(
            link.next_msg(),
            Err(LinkError::BadMagic(b'X', b'X'))
        ));
    }

    #[test]
    fn undecodable_payload_is_a_protocol_error_and_the_next_frame_still_reads() {
        let (mut link, mut peer) = pair();
        let mut bytes = b"DM\0\0\0\x03\xc1\xc1\xc1".to_vec();
        dynamod_proto::encode_into(&SvmgrMsg::Reclaim, &mut bytes).unwrap();
        peer.write_all(&bytes).unwrap();
        link.fill().unwrap();
        assert!(matches!(link.next_msg(), Err(LinkError::Protocol(_))));
        link.fill().unwrap();
        assert_eq!(link.next_msg().unwrap(), Some(SvmgrMsg::Reclaim));
    }

    #[test]
    fn frames_larger_than_the_first_buffers_go_through_both_ways() {
        let (mut link, mut peer) = pair();
        let keys: Vec<String> = (0..3000).map(|i| format!("svc{i}\tout\t{i}")).collect();
        let frame = dynamod_proto::encode(&SvmgrMsg::Unpark { keys: keys.clone() }).unwrap();
        assert!(frame.len() > 8 * INITIAL_CAPACITY && frame.len() < READ_CAPACITY);
        peer.write_all(&frame).unwrap();
        link.fill().unwrap();
        assert_eq!(
            link.next_msg().unwrap(),
            Some(SvmgrMsg::Unpark { keys: keys.clone() })
        );
        link.send(&InitMsg::Parked { keys: keys.clone() }).unwrap();
        let mut dec = FrameDecoder::new();
        let mut buf = [0u8; 4096];
        let msg = loop {
            if let Some(msg) = dec.next::<InitMsg>().unwrap() {
                break msg;
            }
            link.flush().unwrap();
            let n = peer.read(&mut buf).unwrap();
            dec.push(&buf[..n]);
        };
        assert_eq!(msg, InitMsg::Parked { keys });
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let (mut link, mut peer) = pair();
        let mut h = b"DM".to_vec();
        h.extend_from_slice(&(READ_CAPACITY as u32).to_be_bytes());
        peer.write_all(&h).unwrap();
        assert!(matches!(link.fill(), Err(LinkError::FrameTooLarge(_))));
    }

    #[test]
    fn sent_messages_arrive_as_frames() {
        let (mut link, mut peer) = pair();
        link.send(&InitMsg::Shutdown {
            kind: ShutdownKind::Reboot,
        })
        .unwrap();
        link.send(&InitMsg::Reload).unwrap();
        assert!(!link.wants_write());
        let mut buf = [0u8; 256];
        let n = peer.read(&mut buf).unwrap();
        let mut dec = FrameDecoder::new();
        dec.push(&buf[..n]);
        assert_eq!(
            dec.next::<InitMsg>().unwrap(),
            Some(InitMsg::Shutdown {
                kind: ShutdownKind::Reboot
            })
        );
        assert_eq!(dec.next::<InitMsg>().unwrap(), Some(InitMsg::Reload));
    }

    #[test]
    fn fds_travel_both_ways_with_their_frames() {
        use dynamod_sys::nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let (mut link, peer) = pair();
        // svmgr side parks one pipe read end.
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let frame = dynamod_proto::encode(&SvmgrMsg::Park {
            keys: vec!["x\tout\t1".into()],
        })
        .unwrap();
        let raw = [r.as_raw_fd()];
        sendmsg::<()>(
            peer.as_raw_fd(),
            &[std::io::IoSlice::new(&frame)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        link.fill().unwrap();
        assert!(matches!(
            link.next_msg().unwrap(),
            Some(SvmgrMsg::Park { .. })
        ));
        let got = link.take_fds(1);
        assert_eq!(got.len(), 1);
        // And init hands it back: the peer reads a frame and one fd that is the same socket.
        link.send_with_fds(
            &InitMsg::Parked {
                keys: vec!["k".into()],
            },
            &[got[0].as_fd()],
        )
        .unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = dynamod_sys::nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = dynamod_sys::nix::sys::socket::recvmsg::<()>(
            peer.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let fds: Vec<i32> = msg
            .cmsgs()
            .unwrap()
            .filter_map(|c| match c {
                dynamod_sys::nix::sys::socket::ControlMessageOwned::ScmRights(v) => Some(v),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(fds.len(), 1);
        drop(w);
    }
}
