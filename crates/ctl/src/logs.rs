//! `dynamodctl logs`: asks dynamod-logd on its query socket and prints the records as they
//! come, so `-f` streams and a large history never sits in memory.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use dynamod_proto::{
    ErrorKind, FrameDecoder, Hello, LogQuery, LogRecord, LogReply, LogRequest, PROTOCOL_VERSION,
    ProtoError, Stream,
};
use serde::Serialize;

use crate::exit::Exit;
use crate::human;

/// Lines shown by `--follow` when `-n` is not given.
pub const FOLLOW_DEFAULT_LINES: u64 = 10;

/// The query socket: the given one, else `logd.sock` next to the control socket.
pub fn socket_path(given: Option<&Path>, control: &Path) -> PathBuf {
    match given {
        Some(p) => p.to_owned(),
        None => control
            .parent()
            .unwrap_or_else(|| Path::new("/run/dynamod"))
            .join("logd.sock"),
    }
}

/// Why `logs` failed.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// Nobody listens on the query socket.
    #[error("cannot reach dynamod-logd at {}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("connection to dynamod-logd failed")]
    Io(#[source] io::Error),
    /// logd closed the connection before the end of the answer.
    #[error("dynamod-logd closed the connection")]
    Closed,
    /// A frame could not be encoded or decoded.
    #[error("bad frame from dynamod-logd")]
    Proto(#[source] ProtoError),
    /// logd speaks another protocol version.
    #[error("dynamod-logd speaks protocol version {0}, this dynamodctl speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// Something that does not belong in the exchange arrived.
    #[error("unexpected answer from dynamod-logd: {0}")]
    Unexpected(&'static str),
    /// logd refused the query.
    #[error("{message}")]
    Refused {
        /// Machine-readable class.
        kind: ErrorKind,
        /// logd's explanation.
        message: String,
    },
}

impl LogsError {
    /// The exit status this failure maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Connect { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Exit::PermissionDenied
            }
            Self::Connect { .. } => Exit::Unreachable,
            Self::Refused { kind, .. } => Exit::from_kind(*kind),
            _ => Exit::Negative,
        }
    }
}

/// How records are printed.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// One JSON object per line.
    pub json: bool,
    /// Colour (human output on a terminal).
    pub colour: bool,
}

/// One record in `logs --json` (one object per line).
#[derive(Debug, Serialize)]
pub struct JsonRecord<'a> {
    /// Service name.
    pub service: &'a str,
    /// When svmgr read the line, RFC 3339 UTC with microseconds.
    pub time: String,
    /// The same, microseconds since the Unix epoch.
    pub time_us: u64,
    /// `out` or `err`.
    pub stream: &'static str,
    /// Writer's PID.
    pub pid: i32,
    /// svmgr's sequence number.
    pub seq: u64,
    /// The line as text (invalid UTF-8 replaced by U+FFFD).
    pub text: String,
    /// The exact bytes as lowercase hex when `text` is not exact (invalid UTF-8), else `null`.
    pub hex: Option<String>,
    /// No newline ended it (stream closed or the line was over the length cap).
    pub partial: bool,
}

fn stream_word(s: Stream) -> &'static str {
    match s {
        Stream::Out => "out",
        Stream::Err => "err",
    }
}

/// Builds the JSON shape of one record.
pub fn json_record(r: &LogRecord) -> JsonRecord<'_> {
    let (text, hex) = match std::str::from_utf8(&r.line) {
        Ok(t) => (t.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(&r.line).into_owned(),
            Some(r.line.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    };
    JsonRecord {
        service: &r.service,
        time: human::rfc3339_us(r.time_us),
        time_us: r.time_us,
        stream: stream_word(r.stream),
        pid: r.pid,
        seq: r.seq,
        text,
        hex,
        partial: r.partial,
    }
}

/// `2026-12-04T16:21:28.123456Z web[1234] out: text`, control characters made visible.
pub fn human_line(r: &LogRecord, colour: bool) -> String {
    let time = human::rfc3339_us(r.time_us);
    let text = human::sanitize(&String::from_utf8_lossy(&r.line));
    let stream = stream_word(r.stream);
    let partial = if r.partial { " [partial]" } else { "" };
    if colour {
        let stream = if r.stream == Stream::Err {
            format!("\x1b[31m{stream}\x1b[0m")
        } else {
            stream.to_owned()
        };
        format!(
            "\x1b[2m{time}\x1b[0m \x1b[1m{}\x1b[0m[{}] {stream}: {text}\x1b[2m{partial}\x1b[0m\n",
            human::sanitize(&r.service),
            r.pid
        )
    } else {
        format!(
            "{time} {}[{}] {stream}: {text}{partial}\n",
            human::sanitize(&r.service),
            r.pid
        )
    }
}

fn print(out: &mut dyn Write, records: &[LogRecord], fmt: Format) -> io::Result<()> {
    let mut text = String::new();
    for r in records {
        if fmt.json {
            let line = serde_json::to_string(&json_record(r)).map_err(io::Error::other)?;
            text.push_str(&line);
            text.push('\n');
        } else {
            text.push_str(&human_line(r, fmt.colour));
        }
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// How a `logs` run ended.
#[derive(Debug)]
pub enum Ended {
    /// Everything asked for was printed.
    Done,
    /// stdout was closed (`| head`): end quietly.
    StdoutClosed,
}

/// Sends `query` to logd at `socket` and prints the answer to `out` as it arrives.
pub fn run(
    socket: &Path,
    query: &LogQuery,
    fmt: Format,
    out: &mut dyn Write,
) -> Result<Ended, LogsError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| LogsError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    let mut frames = dynamod_proto::encode(&LogRequest::Hello(Hello::new("dynamodctl")))
        .map_err(LogsError::Proto)?;
    dynamod_proto::encode_into(&LogRequest::Query(query.clone()), &mut frames)
        .map_err(LogsError::Proto)?;
    stream.write_all(&frames).map_err(LogsError::Io)?;
    // The hello must come quickly; records may take as long as the history is big.
    stream
        .set_read_timeout(Some(crate::CONNECT_TIMEOUT))
        .map_err(LogsError::Io)?;
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0; 64 * 1024];
    let mut greeted = false;
    loop {
        while let Some(reply) = decoder.next::<LogReply>().map_err(LogsError::Proto)? {
            match reply {
                LogReply::Hello(h) if !greeted => {
                    if h.version != PROTOCOL_VERSION {
                        return Err(LogsError::Version(h.version));
                    }
                    greeted = true;
                    stream.set_read_timeout(None).map_err(LogsError::Io)?;
                }
                LogReply::Hello(_) => return Err(LogsError::Unexpected("a second hello")),
                _ if !greeted => return Err(LogsError::Unexpected("an answer before the hello")),
                LogReply::Records(records) => {
                    if let Err(e) = print(out, &records, fmt) {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            return Ok(Ended::StdoutClosed);
                        }
                        return Err(LogsError::Io(e));
                    }
                }
                LogReply::End if !query.follow => return Ok(Ended::Done),
                LogReply::End => {}
                LogReply::Error { kind, message } => {
                    return Err(LogsError::Refused { kind, message });
                }
            }
        }
        decoder.check_header().map_err(LogsError::Proto)?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(LogsError::Closed),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LogsError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no hello within {}",
                        human::duration(crate::CONNECT_TIMEOUT.as_millis() as u64)
                    ),
                )));
            }
            Err(e) => return Err(LogsError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &[u8], stream: Stream, partial: bool) -> LogRecord {
        LogRecord {
            seq: 7,
            service: "web".into(),
            pid: 42,
            stream,
            time_us: 1_796_401_288_123_456,
            line: line.to_vec(),
            partial,
        }
    }

    #[test]
    fn human_lines_show_time_service_pid_and_stream() {
        assert_eq!(
            human_line(&rec(b"hello", Stream::Out, false), false),
            "2026-12-04T16:21:28.123456Z web[42] out: hello\n"
        );
        assert_eq!(
            human_line(&rec(b"\x1b[2Joops\r", Stream::Err, true), false),
            "2026-12-04T16:21:28.123456Z web[42] err: \\x1b[2Joops\\x0d [partial]\n"
        );
        let coloured = human_line(&rec(b"x", Stream::Err, false), true);
        assert!(coloured.contains("\x1b[31merr\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn json_keeps_exact_text_or_adds_hex_for_binary() {
        let v = serde_json::to_value(json_record(&rec(b"a\tb", Stream::Out, false))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"service": "web", "time": "2026-12-04T16:21:28.123456Z",
                "time_us": 1_796_401_288_123_456u64, "stream": "out", "pid": 42, "seq": 7,
                "text": "a\tb", "hex": null, "partial": false})
        );
        let v = serde_json::to_value(json_record(&rec(b"\xff\x00", Stream::Err, true))).unwrap();
        assert_eq!(v["hex"], "ff00");
        assert_eq!(v["text"], "\u{fffd}\u{0}");
    }

    #[test]
    fn the_query_socket_defaults_to_the_control_sockets_directory() {
        assert_eq!(
            socket_path(None, Path::new("/run/dynamod/control.sock")),
            PathBuf::from("/run/dynamod/logd.sock")
        );
        assert_eq!(
            socket_path(Some(Path::new("/x.sock")), Path::new("/a/control.sock")),
            PathBuf::from("/x.sock")
        );
    }
}
