//! The control-socket client: connect, handshake, one request, one response.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dynamod_proto::{
    ErrorKind, FrameDecoder, Hello, PROTOCOL_VERSION, ProtoError, Request, Response, encode_into,
};
use dynamod_sys::nix::errno::Errno;
use dynamod_sys::nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, setsockopt, socket, sockopt,
};
use dynamod_sys::nix::sys::time::{TimeVal, TimeValLike};

use crate::exit::Exit;

/// Why talking to svmgr failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `connect(2)` failed: svmgr is not running or the path is wrong.
    #[error("cannot reach svmgr at {}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The socket exists but nobody accepted or answered the hello in time.
    #[error("svmgr at {} did not answer within {}s", path.display(), after.as_secs())]
    NoAnswer {
        /// The socket path.
        path: PathBuf,
        /// How long was waited.
        after: Duration,
    },
    /// The peer speaks another protocol version.
    #[error("svmgr speaks protocol version {theirs}, this dynamodctl speaks {PROTOCOL_VERSION}")]
    Version {
        /// svmgr's version.
        theirs: u16,
    },
    /// Reading or writing failed after the connection was made.
    #[error("connection to svmgr failed")]
    Io(#[source] io::Error),
    /// svmgr closed the connection before answering.
    #[error("svmgr closed the connection without answering")]
    Closed,
    /// No answer within `--timeout` (or the default for read commands).
    #[error(
        "no answer from svmgr within {} (the request may still complete; see --timeout)",
        crate::human::duration(after.as_millis() as u64)
    )]
    Timeout {
        /// How long was waited.
        after: Duration,
    },
    /// A frame could not be encoded or decoded.
    #[error("bad frame from svmgr")]
    Proto(#[source] ProtoError),
    /// svmgr answered with something that does not fit the request.
    #[error("unexpected answer from svmgr: {0}")]
    Unexpected(String),
    /// svmgr refused or failed the request.
    #[error("{message}")]
    Server {
        /// Machine-readable class.
        kind: ErrorKind,
        /// svmgr's explanation.
        message: String,
    },
}

impl ClientError {
    /// The exit status this failure maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Connect { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Exit::PermissionDenied
            }
            Self::Connect { .. } | Self::NoAnswer { .. } => Exit::Unreachable,
            Self::Server { kind, .. } => Exit::from_kind(*kind),
            _ => Exit::Negative,
        }
    }
}

/// An open, greeted connection to svmgr.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    /// The socket path, for errors.
    path: PathBuf,
    /// The connect limit, which also bounds every write.
    limit: Duration,
}

/// Bytes asked of the kernel per read: a `status` answer fits in one.
const READ_CHUNK: usize = 16 * 1024;

impl Client {
    /// Connects to `path` and exchanges hellos, all within `limit`.
    pub fn connect(path: &Path, limit: Duration) -> Result<Self, ClientError> {
        Self::open(path, limit, None)
    }

    /// Connects to `path`, sends the hello and `first` in one write, and waits for svmgr's hello
    /// within `limit`; the answer to `first` is then read with [`Client::answer`]. One round
    /// trip instead of two, with the same errors as [`Client::connect`].
    pub fn connect_with(
        path: &Path,
        limit: Duration,
        first: &Request,
    ) -> Result<Self, ClientError> {
        Self::open(path, limit, Some(first))
    }

    fn open(path: &Path, limit: Duration, first: Option<&Request>) -> Result<Self, ClientError> {
        let start = Instant::now();
        let stream = connect_within(path, limit)?;
        let mut client = Self {
            stream,
            decoder: FrameDecoder::new(),
            path: path.to_owned(),
            limit,
        };
        let mut frames = Vec::with_capacity(128);
        let hello = Request::Hello(Hello::new("dynamodctl"));
        encode_into(&hello, &mut frames).map_err(ClientError::Proto)?;
        if let Some(first) = first {
            encode_into(first, &mut frames).map_err(ClientError::Proto)?;
        }
        client.write(&frames)?;
        match client.receive(Some(start + limit)) {
            Ok(Response::Hello(h)) if h.version == PROTOCOL_VERSION => Ok(client),
            Ok(Response::Hello(h)) => Err(ClientError::Version { theirs: h.version }),
            Ok(Response::Error { kind, message }) => Err(ClientError::Server { kind, message }),
            Ok(other) => Err(ClientError::Unexpected(variant(&other).to_owned())),
            Err(ClientError::Timeout { .. }) => Err(client.no_answer()),
            Err(e) => Err(e),
        }
    }

    /// Sends `request` and waits for its answer, at most `timeout` (forever with `None`).
    /// A [`Response::Error`] comes back as [`ClientError::Server`].
    pub fn request(
        &mut self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Response, ClientError> {
        let frame = dynamod_proto::encode(request).map_err(ClientError::Proto)?;
        self.write(&frame)?;
        self.answer(timeout)
    }

    /// Waits for the answer to the request already sent (the one given to
    /// [`Client::connect_with`]), at most `timeout` (forever with `None`).
    /// A [`Response::Error`] comes back as [`ClientError::Server`].
    pub fn answer(&mut self, timeout: Option<Duration>) -> Result<Response, ClientError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.receive(deadline) {
            Ok(Response::Error { kind, message }) => Err(ClientError::Server { kind, message }),
            Ok(r) => Ok(r),
            Err(ClientError::Timeout { after }) => Err(ClientError::Timeout {
                after: timeout.unwrap_or(after),
            }),
            Err(e) => Err(e),
        }
    }

    fn no_answer(&self) -> ClientError {
        ClientError::NoAnswer {
            path: self.path.clone(),
            after: self.limit,
        }
    }

    /// Writes all of `bytes`; the socket's send timeout (the connect limit) bounds each write,
    /// so an svmgr that stopped reading cannot hang dynamodctl.
    fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.no_answer())
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(ClientError::Closed),
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    fn receive(&mut self, deadline: Option<Instant>) -> Result<Response, ClientError> {
        let started = Instant::now();
        let mut buf = [0; READ_CHUNK];
        // The timeout last given to the socket: set again only when the deadline is nearer.
        let mut armed: Option<Option<Duration>> = None;
        loop {
            if let Some(r) = self
                .decoder
                .next::<Response>()
                .map_err(ClientError::Proto)?
            {
                return Ok(r);
            }
            // Refuse an oversized frame before buffering its body.
            self.decoder.check_header().map_err(ClientError::Proto)?;
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::Timeout { after: d - started });
                    }
                    Some(left)
                }
                None => None,
            };
            if armed != Some(timeout) {
                self.stream
                    .set_read_timeout(timeout)
                    .map_err(ClientError::Io)?;
                armed = Some(timeout);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => {
                    self.decoder.push(&buf[..n]);
                    // The next read waits at most what is left of the deadline.
                    if deadline.is_some() {
                        armed = None;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    armed = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => armed = None,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ClientError::Closed);
                }
                Err(e) => return Err(ClientError::Io(e)),
            }
        }
    }
}

/// Connects a Unix stream socket to `path` in the calling thread. A Unix `connect(2)` blocks
/// only while svmgr's accept backlog is full, and then for at most the socket's send timeout
/// (`SO_SNDTIMEO`, see unix(7) and `unix_stream_connect`), after which it fails with `EAGAIN`:
/// so the timeout set before connecting bounds it, and stays set to bound every write.
fn connect_within(path: &Path, limit: Duration) -> Result<UnixStream, ClientError> {
    let failed = |source: io::Error| ClientError::Connect {
        path: path.to_owned(),
        source,
    };
    let addr = UnixAddr::new(path).map_err(|e| failed(e.into()))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| failed(e.into()))?;
    // A zero timeout would mean "none"; a limit under a microsecond rounds up.
    let micros = limit.as_micros().clamp(1, i64::MAX as u128) as i64;
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::microseconds(micros))
        .map_err(|e| failed(e.into()))?;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(UnixStream::from(fd)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                return Err(ClientError::NoAnswer {
                    path: path.to_owned(),
                    after: limit,
                });
            }
            Err(e) => return Err(failed(e.into())),
        }
    }
}

/// The name of a response variant, for error messages.
pub fn variant(r: &Response) -> &'static str {
    match r {
        Response::Hello(_) => "hello",
        Response::Done { .. } => "done",
        Response::List(_) => "list",
        Response::Tree(_) => "tree",
        Response::Status(_) => "status",
        Response::SystemState(_) => "system state",
        Response::Error { .. } => "error",
    }
}
