//! The control-socket client: connect, handshake, one request, one response.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dynamod_proto::{
    ErrorKind, FrameDecoder, Hello, PROTOCOL_VERSION, ProtoError, Request, Response,
};

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
}

impl Client {
    /// Connects to `path` and exchanges hellos, all within `limit`.
    pub fn connect(path: &Path, limit: Duration) -> Result<Self, ClientError> {
        let start = Instant::now();
        let no_answer = || ClientError::NoAnswer {
            path: path.to_owned(),
            after: limit,
        };
        // A Unix connect only blocks when svmgr's accept backlog is full; std has no timeout for
        // it, so it runs on a helper thread that is simply abandoned if it takes too long.
        let (tx, rx) = mpsc::channel();
        let target = path.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(UnixStream::connect(target));
        });
        let stream = match rx.recv_timeout(limit) {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    path: path.to_owned(),
                    source,
                });
            }
            Err(_) => return Err(no_answer()),
        };
        let mut client = Self {
            stream,
            decoder: FrameDecoder::new(),
        };
        client.send(&Request::Hello(Hello::new("dynamodctl")))?;
        let deadline = start + limit;
        match client.receive(Some(deadline)) {
            Ok(Response::Hello(h)) if h.version == PROTOCOL_VERSION => Ok(client),
            Ok(Response::Hello(h)) => Err(ClientError::Version { theirs: h.version }),
            Ok(Response::Error { kind, message }) => Err(ClientError::Server { kind, message }),
            Ok(other) => Err(ClientError::Unexpected(variant(&other).to_owned())),
            Err(ClientError::Timeout { .. }) => Err(no_answer()),
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
        self.send(request)?;
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

    fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let frame = dynamod_proto::encode(request).map_err(ClientError::Proto)?;
        self.stream.write_all(&frame).map_err(ClientError::Io)
    }

    fn receive(&mut self, deadline: Option<Instant>) -> Result<Response, ClientError> {
        let started = Instant::now();
        let mut buf = vec![0; 64 * 1024];
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
            self.stream
                .set_read_timeout(timeout)
                .map_err(ClientError::Io)?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ClientError::Closed);
                }
                Err(e) => return Err(ClientError::Io(e)),
            }
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
