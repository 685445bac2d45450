//! The connection to svmgr and the event loop.
//!
//! The main thread stores: one `poll(2)` over the svmgr socket and a signalfd. SIGTERM and
//! SIGINT end the process with status 0 (records not yet written are unacknowledged, so svmgr
//! keeps them); SIGHUP closes the files so the next record reopens them, and reads the
//! configuration's `[log]` sections again. When the socket is missing or closes, logd
//! reconnects with a backoff of 100 ms doubling to 2 s. Queries are answered by the threads of
//! [`crate::query`], which share only the rings with this one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamod_proto::{FrameDecoder, Hello, LogMsg, PROTOCOL_VERSION, ProtoError};
use dynamod_sys::nix;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::args::Options;
use crate::query::{self, Shared};
use crate::ring::Rings;
use crate::store::{Limits, Store};

/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often held records are retried while the disk refuses them.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How long svmgr may take to answer the hello or to take an ack.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure that stops the daemon (connection problems never do: logd reconnects).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Blocking the signals or creating the signalfd failed.
    #[error("cannot set up signal handling")]
    Signals(#[source] nix::Error),
    /// `poll(2)` failed.
    #[error("poll failed")]
    Poll(#[source] nix::Error),
}

/// Why a session with svmgr ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    /// SIGTERM or SIGINT.
    #[error("asked to stop")]
    Stop,
    /// svmgr closed the socket.
    #[error("svmgr closed the log socket")]
    Closed,
    /// Refused records need a fresh connection to be sent again.
    #[error("reconnecting to fetch refused records")]
    Resend,
    /// svmgr speaks another protocol version.
    #[error("svmgr speaks log protocol version {0}, dynamod-logd speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// The hello did not come in time.
    #[error("svmgr did not answer the hello within {}s", IO_TIMEOUT.as_secs())]
    HelloTimeout,
    /// Something unexpected arrived.
    #[error("unexpected message from svmgr: {0}")]
    Unexpected(&'static str),
    /// Reading or writing the socket failed.
    #[error("log socket i/o failed")]
    Io(#[source] io::Error),
    /// A frame could not be decoded.
    #[error("bad frame from svmgr")]
    Proto(#[source] ProtoError),
    /// A fatal error.
    #[error(transparent)]
    Fatal(#[from] DaemonError),
}

/// Prints one line on stderr (svmgr relays it). A closed stderr is ignored rather than fatal.
pub fn say(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "dynamod-logd: {msg}");
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

struct Daemon {
    opts: Options,
    store: Store,
    shared: Arc<Shared>,
    signals: SignalFd,
    last_retry: Instant,
}

/// Each service's `[log]` settings and every service name, from the configuration directory.
pub fn load_config(dir: &Path) -> (BTreeMap<String, Limits>, BTreeSet<String>) {
    let config = dynamod_config::load_root(dir);
    let mut names: BTreeSet<String> = config.invalid.iter().map(|i| i.name.clone()).collect();
    let mut limits = BTreeMap::new();
    for s in &config.services {
        names.insert(s.name.clone());
        if s.log.max_size.is_some() || s.log.max_files.is_some() {
            limits.insert(
                s.name.clone(),
                Limits {
                    max_size: s.log.max_size,
                    max_files: s.log.max_files,
                },
            );
        }
    }
    (limits, names)
}

/// Runs until SIGTERM or SIGINT.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().map_err(DaemonError::Signals)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(DaemonError::Signals)?;
    let rings = Arc::new(Rings::new(opts.ring_bytes));
    let mut store = Store::new(opts.store.clone());
    store.attach_ring(Arc::clone(&rings));
    let shared = Arc::new(Shared::new(opts.store.dir.clone(), rings));
    // Storing matters more than answering: without the query socket logd still runs.
    match query::bind(&opts.query_socket) {
        Ok(listener) => {
            if let Err(e) = query::spawn(listener, Arc::clone(&shared)) {
                say(&format!(
                    "cannot start the query thread: {e}; `dynamodctl logs` will not work"
                ));
            }
        }
        Err(e) => say(&format!("{}; `dynamodctl logs` will not work", chain(&e))),
    }
    let mut daemon = Daemon {
        opts,
        store,
        shared,
        signals,
        last_retry: Instant::now(),
    };
    daemon.reload_config();
    daemon.main_loop()
}

impl Daemon {
    /// Reads the per-service `[log]` settings and the service names again.
    fn reload_config(&mut self) {
        let Some(dir) = &self.opts.config_dir else {
            return;
        };
        let (limits, names) = load_config(dir);
        self.store.set_limits(limits);
        self.shared.set_configured(names);
    }

    fn main_loop(&mut self) -> Result<(), DaemonError> {
        let mut backoff = BACKOFF_MIN;
        let mut outage_reported = false;
        loop {
            let stream = match UnixStream::connect(&self.opts.socket) {
                Ok(s) => s,
                Err(e) => {
                    if !outage_reported {
                        outage_reported = true;
                        say(&format!(
                            "waiting for svmgr at {}: {e}",
                            self.opts.socket.display()
                        ));
                    }
                    if self.wait(Some(backoff))? {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            outage_reported = false;
            self.store.new_connection();
            match self.session(stream) {
                Err(SessionEnd::Stop) => return Ok(()),
                Err(SessionEnd::Fatal(e)) => return Err(e),
                Err(SessionEnd::Resend) => backoff = BACKOFF_MIN,
                Err(SessionEnd::Closed) => {
                    say("svmgr closed the log socket; reconnecting");
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    say(&format!("{}; reconnecting", chain(&e)));
                    if self.wait(Some(backoff))? {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Ok(()) => {}
            }
        }
    }

    /// Sleeps up to `timeout` (forever with `None`) while handling signals; true if asked to stop.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, DaemonError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, poll_timeout(left)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(DaemonError::Poll(e)),
            }
            if self.handle_signals() {
                return Ok(true);
            }
        }
    }

    /// Reads pending signals; true on SIGTERM or SIGINT.
    fn handle_signals(&mut self) -> bool {
        let mut stop = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => {
                    self.store.reopen();
                    self.reload_config();
                }
                _ => stop = true,
            }
        }
        stop
    }

    fn session(&mut self, mut stream: UnixStream) -> Result<(), SessionEnd> {
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(SessionEnd::Io)?;
        send(&mut stream, &LogMsg::Hello(Hello::new("dynamod-logd")))?;
        let mut decoder = FrameDecoder::new();
        let mut buf = vec![0; 64 * 1024];
        let hello_deadline = Instant::now() + IO_TIMEOUT;
        let mut greeted = false;
        loop {
            let timeout = if !greeted {
                Some(hello_deadline.saturating_duration_since(Instant::now()))
            } else if self.store.holds_records() {
                Some(RETRY_EVERY.saturating_sub(self.last_retry.elapsed()))
            } else {
                None
            };
            let (sock_ready, sig_ready) = {
                let mut fds = [
                    PollFd::new(stream.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                ];
                match nix::poll::poll(&mut fds, poll_timeout(timeout)) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(e) => return Err(DaemonError::Poll(e).into()),
                }
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if sig_ready && self.handle_signals() {
                return Err(SessionEnd::Stop);
            }
            if sock_ready {
                let n = match stream.read(&mut buf) {
                    Ok(0) => return Err(SessionEnd::Closed),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) => return Err(SessionEnd::Io(e)),
                };
                decoder.push(&buf[..n]);
                while let Some(msg) = decoder.next::<LogMsg>().map_err(SessionEnd::Proto)? {
                    match msg {
                        LogMsg::Hello(h) if !greeted => {
                            if h.version != PROTOCOL_VERSION {
                                return Err(SessionEnd::Version(h.version));
                            }
                            greeted = true;
                        }
                        LogMsg::Hello(_) => return Err(SessionEnd::Unexpected("a second hello")),
                        LogMsg::Records(_) if !greeted => {
                            return Err(SessionEnd::Unexpected("records before the hello"));
                        }
                        LogMsg::Records(records) => self.store.accept(records),
                        LogMsg::Ack { .. } => return Err(SessionEnd::Unexpected("an ack")),
                    }
                }
            } else if !greeted && Instant::now() >= hello_deadline {
                return Err(SessionEnd::HelloTimeout);
            }
            if self.store.holds_records() && self.last_retry.elapsed() >= RETRY_EVERY {
                self.last_retry = Instant::now();
                self.store.retry();
            }
            for notice in self.store.take_notices() {
                say(&notice);
            }
            if let Some(seq) = self.store.take_ack() {
                send(&mut stream, &LogMsg::Ack { seq })?;
            }
            if self.store.needs_resend() {
                return Err(SessionEnd::Resend);
            }
        }
    }
}

fn poll_timeout(left: Option<Duration>) -> PollTimeout {
    match left {
        // Round up so a short wait does not become a busy loop of zero-timeout polls.
        Some(d) => {
            let ms = d
                .as_millis()
                .saturating_add(u128::from(d.subsec_nanos() % 1_000_000 != 0));
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
        None => PollTimeout::NONE,
    }
}

fn send(stream: &mut UnixStream, msg: &LogMsg) -> Result<(), SessionEnd> {
    let frame = dynamod_proto::encode(msg).map_err(SessionEnd::Proto)?;
    stream.write_all(&frame).map_err(SessionEnd::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeout_rounds_up_partial_milliseconds() {
        assert_eq!(poll_timeout(None), PollTimeout::NONE);
        assert_eq!(poll_timeout(Some(Duration::ZERO)), PollTimeout::ZERO);
        assert_eq!(
            poll_timeout(Some(Duration::from_micros(1))).as_millis(),
            Some(1)
        );
        assert_eq!(
            poll_timeout(Some(Duration::from_millis(1500))).as_millis(),
            Some(1500)
        );
    }
}
