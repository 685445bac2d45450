//! A small blocking D-Bus client: connect to the system bus, authenticate (`EXTERNAL`, with
//! fd passing), `Hello`, then one method call at a time with a timeout. No threads, no event
//! loop: a PAM module runs inside other programs (login, sshd, display managers), so it must
//! not leave anything behind.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::wire::{self, Call, Header, Reader};

/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is unset.
pub const DEFAULT_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// How long one call may take (sd-bus' default method-call timeout).
pub const TIMEOUT: Duration = Duration::from_secs(25);

/// A bus operation failed.
#[derive(Debug)]
pub enum BusError {
    /// No usable address.
    Address(String),
    /// Connecting, sending or receiving failed.
    Io(&'static str, io::Error),
    /// The bus refused the authentication.
    Auth(String),
    /// The peer sent something that is not D-Bus.
    Wire(wire::WireError),
    /// The call was answered with an error.
    Method {
        /// The error name.
        name: String,
        /// Its message.
        message: String,
    },
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(a) => write!(f, "no usable bus address in {a:?}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Auth(line) => write!(f, "bus authentication refused: {line:?}"),
            Self::Wire(e) => write!(f, "{e}"),
            Self::Method { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl std::error::Error for BusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(_, e) => Some(e),
            Self::Wire(e) => Some(e),
            _ => None,
        }
    }
}

impl From<wire::WireError> for BusError {
    fn from(e: wire::WireError) -> Self {
        Self::Wire(e)
    }
}

/// The first address of a D-Bus address list that this client can use (`unix:path=` or
/// `unix:abstract=`).
pub fn parse_address(list: &str) -> Option<SocketAddr> {
    for addr in list.split(';') {
        let Some(params) = addr.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            if let Some(p) = kv.strip_prefix("path=") {
                return SocketAddr::from_pathname(unescape(p)).ok();
            }
            if let Some(a) = kv.strip_prefix("abstract=") {
                return SocketAddr::from_abstract_name(unescape(a).as_bytes()).ok();
            }
        }
    }
    None
}

/// D-Bus address values escape bytes as `%xx`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(hex) = std::str::from_utf8(&b[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A reply: its header, body and the fds that came with it.
#[derive(Debug)]
pub struct Reply {
    /// The header.
    pub header: Header,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Received descriptors (close-on-exec).
    pub fds: Vec<OwnedFd>,
}

/// A connection to the bus.
#[derive(Debug)]
pub struct Bus {
    sock: UnixStream,
    serial: u32,
    inbuf: Vec<u8>,
    infds: Vec<OwnedFd>,
}

impl Bus {
    /// Connects to `address` (a D-Bus address list), authenticates as our uid and says hello.
    pub fn connect(address: &str) -> Result<Self, BusError> {
        let addr = parse_address(address).ok_or_else(|| BusError::Address(address.to_owned()))?;
        let sock = UnixStream::connect_addr(&addr)
            .map_err(|e| BusError::Io("connect to the system bus", e))?;
        sock.set_read_timeout(Some(TIMEOUT))
            .and_then(|()| sock.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| BusError::Io("set socket timeouts", e))?;
        let mut bus = Self {
            sock,
            serial: 0,
            inbuf: Vec::new(),
            infds: Vec::new(),
        };
        bus.authenticate()?;
        bus.call(&Target::bus("Hello"), "", &[])?;
        Ok(bus)
    }

    fn send_all(&mut self, bytes: &[u8]) -> Result<(), BusError> {
        let mut off = 0;
        while off < bytes.len() {
            // MSG_NOSIGNAL: a bus that went away must not kill the login program with SIGPIPE.
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &[IoSlice::new(&bytes[off..])],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => off += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(BusError::Io("send to the bus", e.into())),
            }
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, BusError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(BusError::Auth("overlong line".into()));
            }
            match self.sock.read(&mut byte) {
                Ok(0) => return Err(BusError::Auth("connection closed".into())),
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BusError::Io("read from the bus", e)),
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn authenticate(&mut self) -> Result<(), BusError> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(|e| BusError::Io("authenticate to the bus", e))?;
        let ok = self.read_line()?;
        if !ok.starts_with("OK ") {
            return Err(BusError::Auth(ok));
        }
        self.sock
            .write_all(b"NEGOTIATE_UNIX_FD\r\n")
            .map_err(|e| BusError::Io("authenticate to the bus", e))?;
        let agree = self.read_line()?;
        if agree != "AGREE_UNIX_FD" {
            return Err(BusError::Auth(agree));
        }
        self.sock
            .write_all(b"BEGIN\r\n")
            .map_err(|e| BusError::Io("authenticate to the bus", e))
    }

    /// Receives more bytes (and fds) into the input buffer.
    fn fill(&mut self) -> Result<(), BusError> {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 16]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(raw) = c {
                                fds.extend(raw);
                            }
                        }
                    }
                    break (msg.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(BusError::Io("receive from the bus", e.into())),
            }
        };
        for raw in fds {
            // SAFETY: the kernel just installed this descriptor in our table for us
            // (SCM_RIGHTS); nothing else refers to it, so taking ownership is sound.
            self.infds.push(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        if n == 0 {
            return Err(BusError::Io(
                "receive from the bus",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the bus closed the connection",
                ),
            ));
        }
        self.inbuf.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// The next complete message.
    fn receive(&mut self) -> Result<Reply, BusError> {
        loop {
            if let Some(len) = wire::message_len(&self.inbuf)?
                && self.inbuf.len() >= len
            {
                let msg: Vec<u8> = self.inbuf.drain(..len).collect();
                let (header, body) = wire::parse(&msg)?;
                let n = (header.unix_fds as usize).min(self.infds.len());
                let fds = self.infds.drain(..n).collect();
                return Ok(Reply {
                    body: body.to_vec(),
                    header,
                    fds,
                });
            }
            self.fill()?;
        }
    }

    /// Calls `target` with a body of `signature` and waits for its answer (signals and other
    /// messages in between are dropped).
    pub fn call(
        &mut self,
        target: &Target<'_>,
        signature: &str,
        body: &[u8],
    ) -> Result<Reply, BusError> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let msg = wire::method_call(&Call {
            serial,
            destination: target.destination,
            path: target.path,
            interface: target.interface,
            member: target.member,
            signature,
            body,
        });
        self.send_all(&msg)?;
        loop {
            let reply = self.receive()?;
            if reply.header.reply_serial != Some(serial) {
                continue;
            }
            return match reply.header.kind {
                wire::METHOD_RETURN => Ok(reply),
                wire::ERROR => {
                    let message = if reply.header.signature.starts_with('s') {
                        Reader::new(&reply.body).string().unwrap_or_default()
                    } else {
                        String::new()
                    };
                    Err(BusError::Method {
                        name: reply.header.error_name.unwrap_or_default(),
                        message,
                    })
                }
                _ => continue,
            };
        }
    }
}

/// Where a call goes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Bus name.
    pub destination: &'a str,
    /// Object path.
    pub path: &'a str,
    /// Interface.
    pub interface: &'a str,
    /// Member.
    pub member: &'a str,
}

impl Target<'static> {
    /// A method of the bus daemon itself.
    pub fn bus(member: &'static str) -> Self {
        Self {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member,
        }
    }

    /// A method of logind's Manager.
    pub fn login1(member: &'static str) -> Self {
        Self {
            destination: "org.freedesktop.login1",
            path: "/org/freedesktop/login1",
            interface: "org.freedesktop.login1.Manager",
            member,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_use_the_first_unix_entry() {
        let a = parse_address("unix:path=/run/dbus/system_bus_socket").unwrap();
        assert_eq!(
            a.as_pathname().unwrap().to_str(),
            Some("/run/dbus/system_bus_socket")
        );
        let a = parse_address("tcp:host=x,port=1;unix:guid=00,path=/tmp/a%20b").unwrap();
        assert_eq!(a.as_pathname().unwrap().to_str(), Some("/tmp/a b"));
        let a = parse_address("unix:abstract=bus").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"bus"[..]));
        assert!(parse_address("tcp:host=x").is_none());
    }
}
