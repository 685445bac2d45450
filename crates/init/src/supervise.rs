//! The event loop (SPEC §2.3 step 8, §2.4, §2.5): signals, svmgr's pidfd and socket, and one
//! timer, multiplexed with epoll.
//!
//! The reaping and signal paths touch only memory allocated before the loop or with svmgr's
//! connection: the signalfd record, the epoll array, the orphan ring, the link's write buffer.
//! What only svmgr's messages need (the read buffer for a long frame, the parked pipes) grows
//! when those messages arrive, up to fixed limits.
//! Time-driven work (restart after backoff, heartbeats, hang detection, bounded waits) is
//! expressed as deadlines; after each batch of events [`Init::tick`] acts on the due ones and
//! the single timerfd is armed for the earliest remaining one.

use std::os::fd::AsFd;
use std::path::PathBuf;

use dynamod_proto::{ExitStatus, Hello, InitMsg, PROTOCOL_VERSION, ShutdownKind, SvmgrMsg};
use dynamod_sys::nix::errno::Errno;
use dynamod_sys::nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use dynamod_sys::nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use dynamod_sys::nix::sys::signalfd::{SfdFlags, SignalFd};
use dynamod_sys::nix::sys::time::TimeSpec;
use dynamod_sys::nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use dynamod_sys::process::{self, Reaped};
use dynamod_sys::spawn::Child;

use crate::backoff::{Backoff, CrashWindow};
use crate::clock::now_ms;
use crate::detect::Environment;
use crate::emergency::{self, ShellConfig};
use crate::link::LinkError;
use crate::orphans::{self, OrphanExit, OrphanQueue};
use crate::settings::Settings;
use crate::svmgr::{self, SpawnParams, Svmgr};

const TOKEN_SIGNALS: u64 = 1;
const TOKEN_PIDFD: u64 = 2;
const TOKEN_SOCKET: u64 = 3;
const TOKEN_TIMER: u64 = 4;

/// How long svmgr gets to exit after SIGTERM once it stopped its services for the emergency
/// shell, before SIGKILL.
const TERM_GRACE_MS: u64 = 5_000;

/// Signals init handles; all are blocked and read from a signalfd. SIGPIPE is blocked too so a
/// vanished log reader can never kill a development instance.
pub const HANDLED: [Signal; 8] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGPWR,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
    Signal::SIGPIPE,
];

/// How this instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunMode {
    /// We are PID 1 (of the machine or of a PID namespace).
    pub pid1: bool,
    /// Where (see [`Environment`]).
    pub env: Environment,
}

impl RunMode {
    /// Whether the end of a shutdown is `exit()` (container, development) rather than
    /// reboot(2).
    pub fn exits_at_end(self) -> bool {
        !self.pid1 || self.env == Environment::Container
    }
}

/// Everything fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// How we run.
    pub mode: RunMode,
    /// Tunables.
    pub settings: Settings,
    /// The svmgr binary.
    pub svmgr_path: PathBuf,
    /// The emergency shell.
    pub shell: ShellConfig,
}

/// How the loop ended: what the final shutdown steps should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Power off, reboot or halt.
    pub kind: ShutdownKind,
    /// Exit status in a container (from svmgr's `RequestShutdown`).
    pub exit_code: Option<i32>,
}

/// Why the event loop could not be set up.
#[derive(Debug)]
pub enum LoopError {
    /// sigprocmask or signalfd failed.
    Signals(Errno),
    /// epoll or timerfd failed.
    Epoll(Errno),
}

impl std::fmt::Display for LoopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signals(e) => write!(f, "set up the signalfd: {e}"),
            Self::Epoll(e) => write!(f, "set up epoll: {e}"),
        }
    }
}

/// Blocks [`HANDLED`] and returns a signalfd for them.
pub fn block_signals() -> Result<SignalFd, LoopError> {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(LoopError::Signals)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(LoopError::Signals)
}

/// Why svmgr is being asked to stop its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Shutdown(ShutdownKind),
    Emergency,
}

/// An outstanding "stop all services" request.
#[derive(Debug, Clone, Copy)]
struct Stop {
    purpose: Purpose,
    deadline: u64,
    /// Services are stopped (or given up on); waiting for svmgr itself to exit.
    awaiting_exit: bool,
}

/// The state of PID 1.
pub struct Init {
    ctx: Ctx,
    epoll: Epoll,
    signals: SignalFd,
    timer: TimerFd,
    svmgr: Option<Svmgr>,
    backoff: Backoff,
    crashes: CrashWindow,
    restart_at: Option<u64>,
    next_beat_at: u64,
    shell: Option<Child>,
    orphans: OrphanQueue,
    /// Service output pipes svmgr asked us to hold, so they outlive an svmgr crash (at most
    /// [`PARKED_CAPACITY`]; grows as svmgr parks them).
    parked: Vec<(String, std::os::fd::OwnedFd)>,
    stop: Option<Stop>,
    outcome: Option<Outcome>,
}

/// Most pipe ends init holds for svmgr (two per running service).
pub const PARKED_CAPACITY: usize = 8192;
/// Most fds sent back in one message (below the kernel's SCM_MAX_FD of 253).
const PARKED_BATCH: usize = 200;

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init")
            .field("svmgr", &self.svmgr.as_ref().map(|s| s.pid))
            .field("restart_at", &self.restart_at)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// "code N" or "signal N", for log lines (formats without allocating).
#[derive(Debug, Clone, Copy)]
pub struct StatusText(pub ExitStatus);

impl std::fmt::Display for StatusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ExitStatus::Exited(c) => write!(f, "code {c}"),
            ExitStatus::Signaled(s) => write!(f, "signal {s}"),
        }
    }
}

fn status_text(status: ExitStatus) -> StatusText {
    StatusText(status)
}

impl Init {
    /// Creates the epoll set over `signals` and a fresh timerfd.
    pub fn new(ctx: Ctx, signals: SignalFd) -> Result<Self, LoopError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(LoopError::Epoll)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(LoopError::Epoll)?;
        epoll
            .add(
                signals.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
            )
            .map_err(LoopError::Epoll)?;
        epoll
            .add(
                timer.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_TIMER),
            )
            .map_err(LoopError::Epoll)?;
        Ok(Self {
            ctx,
            epoll,
            signals,
            timer,
            svmgr: None,
            backoff: Backoff::new(),
            crashes: CrashWindow::new(),
            restart_at: None,
            next_beat_at: 0,
            shell: None,
            orphans: OrphanQueue::with_capacity(orphans::CAPACITY),
            parked: Vec::new(),
            stop: None,
            outcome: None,
        })
    }

    /// Runs until a shutdown is due; returns what it should do and the signalfd (still needed
    /// to wait for processes during the last steps).
    pub fn run(mut self, emergency_first: bool) -> (Outcome, SignalFd) {
        let now = now_ms();
        if emergency_first {
            self.start_shell(now);
        } else {
            self.start_svmgr(now);
        }
        let mut events = [EpollEvent::empty(); 8];
        loop {
            if let Some(outcome) = self.outcome {
                return (outcome, self.signals);
            }
            self.arm_timer(now_ms());
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    // Not expected with valid fds; pause briefly rather than spin.
                    error!("epoll_wait: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            for ev in events.iter().take(n) {
                let now = now_ms();
                match ev.data() {
                    TOKEN_SIGNALS => self.on_signals(now),
                    TOKEN_PIDFD => self.reap(now),
                    TOKEN_SOCKET => self.on_socket(ev.events(), now),
                    TOKEN_TIMER => self.drain_timer(),
                    _ => {}
                }
            }
            self.tick(now_ms());
        }
    }

    // ---- signals -------------------------------------------------------------------------

    fn on_signals(&mut self, now: u64) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => {
                    let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                    self.on_signal(signo, now);
                }
                Ok(None) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    error!("read signalfd: {e}");
                    break;
                }
            }
        }
    }

    fn on_signal(&mut self, signo: i32, now: u64) {
        let Ok(sig) = Signal::try_from(signo) else {
            return;
        };
        match sig {
            Signal::SIGCHLD => self.reap(now),
            Signal::SIGTERM | Signal::SIGPWR => {
                self.request_shutdown(ShutdownKind::Poweroff, sig, now)
            }
            Signal::SIGINT if self.ctx.mode.exits_at_end() => {
                self.request_shutdown(ShutdownKind::Poweroff, sig, now);
            }
            Signal::SIGINT | Signal::SIGUSR1 => {
                self.request_shutdown(ShutdownKind::Reboot, sig, now)
            }
            Signal::SIGUSR2 => self.request_emergency(now),
            Signal::SIGHUP => self.request_reload(),
            _ => {}
        }
    }

    fn request_shutdown(&mut self, kind: ShutdownKind, sig: Signal, now: u64) {
        if let Some(stop) = &mut self.stop
            && let Purpose::Shutdown(current) = stop.purpose
        {
            info!("{}: {} already in progress", sig.as_str(), current.as_str());
            return;
        }
        info!("{}: {}", sig.as_str(), kind.as_str());
        self.begin_shutdown(kind, now);
    }

    /// Step 1 of the shutdown: ask svmgr to stop every service, bounded in time.
    fn begin_shutdown(&mut self, kind: ShutdownKind, now: u64) {
        self.restart_at = None;
        let limit = self.ctx.settings.shutdown_svmgr_ms;
        // An emergency stop already under way becomes the shutdown's stop.
        if let Some(stop) = &mut self.stop {
            stop.purpose = Purpose::Shutdown(kind);
            if stop.awaiting_exit {
                self.outcome = Some(Outcome {
                    kind,
                    exit_code: None,
                });
            }
            return;
        }
        match &mut self.svmgr {
            Some(s) if s.greeted && !s.killed && s.link.is_some() => {
                let sent = s
                    .link
                    .as_mut()
                    .is_some_and(|l| l.send(&InitMsg::Shutdown { kind }).is_ok());
                if sent {
                    info!("asking svmgr to stop all services (waiting up to {limit} ms)");
                    self.stop = Some(Stop {
                        purpose: Purpose::Shutdown(kind),
                        deadline: now.saturating_add(limit),
                        awaiting_exit: false,
                    });
                    return;
                }
                warn!("cannot reach svmgr; skipping the ordered stop of services");
            }
            Some(_) => info!("svmgr is not connected; skipping the ordered stop of services"),
            None => info!("svmgr is not running; skipping the ordered stop of services"),
        }
        self.outcome = Some(Outcome {
            kind,
            exit_code: None,
        });
    }

    fn request_emergency(&mut self, now: u64) {
        if self.shell.is_some() {
            info!("SIGUSR2: the emergency shell is already running");
            return;
        }
        if self.stop.is_some() {
            info!("SIGUSR2 ignored: services are already being stopped");
            return;
        }
        info!("SIGUSR2: emergency shell requested");
        self.restart_at = None;
        let deadline = now.saturating_add(self.ctx.settings.shutdown_svmgr_ms);
        match &mut self.svmgr {
            None => self.start_shell(now),
            Some(s) => {
                // `Halt` is the closest kind: stop everything and stay stopped.
                let sent = s.greeted
                    && s.link.as_mut().is_some_and(|l| {
                        l.send(&InitMsg::Shutdown {
                            kind: ShutdownKind::Halt,
                        })
                        .is_ok()
                    });
                if sent {
                    info!("asking svmgr to stop all services before the emergency shell");
                } else {
                    warn!("svmgr is not connected; killing it before the emergency shell");
                    kill_svmgr(s);
                }
                self.stop = Some(Stop {
                    purpose: Purpose::Emergency,
                    deadline,
                    awaiting_exit: !sent,
                });
            }
        }
    }

    fn request_reload(&mut self) {
        match self.connected_link() {
            Some(link) => match link.send(&InitMsg::Reload) {
                Ok(()) => info!("SIGHUP: asking svmgr to reload its configuration"),
                Err(e) => warn!("SIGHUP: cannot ask svmgr to reload: {e}"),
            },
            None => warn!("SIGHUP: svmgr is not connected; reload ignored"),
        }
    }

    fn connected_link(&mut self) -> Option<&mut crate::link::Link> {
        self.svmgr
            .as_mut()
            .filter(|s| s.greeted && !s.killed)
            .and_then(|s| s.link.as_mut())
    }

    // ---- reaping -------------------------------------------------------------------------

    /// Reaps every exited child; several exits may have been coalesced into one SIGCHLD.
    fn reap(&mut self, now: u64) {
        loop {
            match process::reap_one() {
                Ok(Reaped::Child { pid, status }) => self.on_child_exit(pid, status, now),
                Ok(Reaped::NoChildren | Reaped::NoneReady) => break,
                Err(e) => {
                    error!("waitid: {e}");
                    break;
                }
            }
        }
        self.flush_orphans();
    }

    fn on_child_exit(&mut self, pid: i32, status: ExitStatus, now: u64) {
        if self.svmgr.as_ref().is_some_and(|s| s.pid == pid) {
            if let Some(s) = self.svmgr.take() {
                self.on_svmgr_exit(s, status, now);
            }
        } else if self.shell.as_ref().is_some_and(|c| c.pid == pid) {
            self.shell = None;
            self.on_shell_exit(status, now);
        } else {
            self.orphans.push(OrphanExit { pid, status });
        }
    }

    fn on_svmgr_exit(&mut self, s: Svmgr, status: ExitStatus, now: u64) {
        self.forget_svmgr_fds(&s);
        // Reports it may not have read go to its successor.
        self.orphans.connection_lost();
        if self.outcome.is_some() {
            // It asked for the shutdown (RequestShutdown) and left: nothing to restart.
            info!("svmgr exited ({})", status_text(status));
            return;
        }
        match self.stop {
            Some(Stop {
                purpose: Purpose::Shutdown(kind),
                ..
            }) => {
                info!("svmgr exited ({}) during shutdown", status_text(status));
                self.outcome = Some(Outcome {
                    kind,
                    exit_code: None,
                });
            }
            Some(Stop {
                purpose: Purpose::Emergency,
                ..
            }) => {
                info!(
                    "svmgr exited ({}); starting the emergency shell",
                    status_text(status)
                );
                self.stop = None;
                self.start_shell(now);
            }
            None => {
                let delay = self.backoff.delay_after_exit(s.started_at, now);
                if self.crashes.record(now) {
                    emerg!(
                        "svmgr exited ({}): crash loop ({} crashes within {} s); starting the emergency shell",
                        status_text(status),
                        self.crashes.count(now),
                        crate::backoff::CRASH_WINDOW_MS / 1000
                    );
                    self.start_shell(now);
                } else {
                    warn!(
                        "svmgr exited ({}); restarting in {delay} ms",
                        status_text(status)
                    );
                    self.restart_at = Some(now.saturating_add(delay));
                }
            }
        }
    }

    fn on_shell_exit(&mut self, status: ExitStatus, now: u64) {
        if self.stop.is_some() || self.outcome.is_some() {
            info!("emergency shell exited ({})", status_text(status));
            return;
        }
        info!(
            "emergency shell exited ({}); starting svmgr",
            status_text(status)
        );
        // The operator has had a look: give svmgr a clean slate.
        self.backoff.reset();
        self.crashes.clear();
        if self.svmgr.is_none() {
            self.start_svmgr(now);
        }
    }

    fn flush_orphans(&mut self) {
        if self.orphans.next_unsent().is_none() {
            return;
        }
        let Some(link) = self
            .svmgr
            .as_mut()
            .filter(|s| s.greeted && !s.killed)
            .and_then(|s| s.link.as_mut())
        else {
            return;
        };
        let dropped = self.orphans.take_dropped();
        if dropped > 0 {
            warn!("{dropped} orphan exit report(s) were dropped while svmgr was unreachable");
        }
        while let Some(o) = self.orphans.next_unsent() {
            if !link.has_room() {
                break;
            }
            match link.send(&InitMsg::OrphanExited {
                pid: o.pid,
                status: o.status,
            }) {
                Ok(()) => self.orphans.mark_sent(),
                Err(LinkError::Full) => break,
                Err(e) => {
                    warn!("cannot report orphan exits to svmgr: {e}");
                    break;
                }
            }
        }
        self.update_socket_interest();
    }

    // ---- svmgr ---------------------------------------------------------------------------

    fn start_svmgr(&mut self, now: u64) {
        self.restart_at = None;
        let params = SpawnParams {
            container: self.ctx.mode.env == Environment::Container,
            heartbeat_ms: self.ctx.settings.heartbeat_ms,
        };
        match svmgr::start(&self.ctx.svmgr_path, params, now) {
            Ok(mut s) => {
                info!(
                    "started svmgr {} (pid {})",
                    self.ctx.svmgr_path.display(),
                    s.pid
                );
                let registered = self
                    .epoll
                    .add(
                        s.pidfd.as_fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_PIDFD),
                    )
                    .and_then(|()| match &s.link {
                        Some(l) => self
                            .epoll
                            .add(l.fd(), EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SOCKET)),
                        None => Ok(()),
                    });
                if let Err(e) = registered {
                    // Exits are still seen through SIGCHLD; the socket is unusable without epoll.
                    error!("epoll registration for svmgr: {e}");
                }
                if let Some(link) = &mut s.link
                    && let Err(e) = link.send(&InitMsg::Hello(Hello::new("dynamod-init")))
                {
                    warn!("cannot greet svmgr: {e}");
                }
                self.svmgr = Some(s);
                self.update_socket_interest();
            }
            Err(e) => {
                error!("cannot start svmgr {}: {e}", self.ctx.svmgr_path.display());
                let delay = self.backoff.delay_after_exit(now, now);
                if self.crashes.record(now) {
                    emerg!("svmgr keeps failing to start; starting the emergency shell");
                    self.start_shell(now);
                } else {
                    warn!("retrying svmgr in {delay} ms");
                    self.restart_at = Some(now.saturating_add(delay));
                }
            }
        }
    }

    fn start_shell(&mut self, now: u64) {
        match emergency::spawn(&self.ctx.shell) {
            Ok(child) => {
                info!(
                    "emergency shell running (pid {}); svmgr starts again when it exits",
                    child.pid
                );
                self.shell = Some(child);
            }
            Err(e) => {
                error!("cannot start the emergency shell: {e}");
                let delay = self.backoff.delay_after_exit(now, now);
                warn!("starting svmgr again in {delay} ms");
                self.restart_at = Some(now.saturating_add(delay));
            }
        }
    }

    fn forget_svmgr_fds(&self, s: &Svmgr) {
        // Closing the fds removes them from the epoll set too; deleting first keeps it explicit.
        let _ = self.epoll.delete(s.pidfd.as_fd());
        if let Some(l) = &s.link {
            let _ = self.epoll.delete(l.fd());
        }
    }

    fn drop_link(&mut self) {
        if let Some(s) = &mut self.svmgr
            && let Some(l) = s.link.take()
        {
            let _ = self.epoll.delete(l.fd());
        }
        self.orphans.connection_lost();
    }

    fn update_socket_interest(&mut self) {
        if let Some(l) = self.svmgr.as_ref().and_then(|s| s.link.as_ref()) {
            let flags = if l.wants_write() {
                EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
            } else {
                EpollFlags::EPOLLIN
            };
            let mut ev = EpollEvent::new(flags, TOKEN_SOCKET);
            let _ = self.epoll.modify(l.fd(), &mut ev);
        }
    }

    fn on_socket(&mut self, flags: EpollFlags, now: u64) {
        if flags.contains(EpollFlags::EPOLLOUT)
            && let Some(l) = self.svmgr.as_mut().and_then(|s| s.link.as_mut())
            && let Err(e) = l.flush()
        {
            self.on_link_error(e);
            return;
        }
        if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            let filled = match self.svmgr.as_mut().and_then(|s| s.link.as_mut()) {
                Some(l) => l.fill(),
                None => return,
            };
            // Handle what arrived before any error: the last frames before a close count.
            loop {
                let next = match self.svmgr.as_mut().and_then(|s| s.link.as_mut()) {
                    Some(l) => l.next_msg(),
                    None => return,
                };
                match next {
                    Ok(Some(msg)) => self.on_message(msg, now),
                    Ok(None) => break,
                    Err(e) => {
                        self.on_link_error(e);
                        return;
                    }
                }
            }
            if let Err(e) = filled {
                self.on_link_error(e);
                return;
            }
        }
        self.flush_orphans();
        self.update_socket_interest();
    }

    fn on_link_error(&mut self, e: LinkError) {
        match e {
            LinkError::Closed => info!("svmgr closed its connection"),
            LinkError::Full => return,
            LinkError::Io(_) => warn!("svmgr connection: {e}"),
            LinkError::BadMagic(..) | LinkError::Protocol(_) | LinkError::FrameTooLarge(_) => {
                error!("svmgr broke the protocol ({e}); killing it");
                if let Some(s) = &mut self.svmgr {
                    kill_svmgr(s);
                }
            }
        }
        self.drop_link();
    }

    fn on_message(&mut self, msg: SvmgrMsg, now: u64) {
        let Some(s) = &mut self.svmgr else { return };
        s.last_rx = now;
        if !s.greeted {
            match msg {
                SvmgrMsg::Hello(h) if h.version == PROTOCOL_VERSION => {
                    s.greeted = true;
                    info!("svmgr (pid {}) connected as {}", s.pid, h.peer);
                    self.next_beat_at = now.saturating_add(self.ctx.settings.heartbeat_ms);
                    self.flush_orphans();
                }
                SvmgrMsg::Hello(h) => {
                    error!(
                        "svmgr speaks protocol version {}, init speaks {PROTOCOL_VERSION}; killing it",
                        h.version
                    );
                    kill_svmgr(s);
                    self.drop_link();
                }
                other => {
                    error!("svmgr sent {other:?} before its hello; killing it");
                    kill_svmgr(s);
                    self.drop_link();
                }
            }
            return;
        }
        match msg {
            SvmgrMsg::Hello(_) => warn!("svmgr sent a second hello; ignored"),
            SvmgrMsg::Heartbeat => {
                if let Some(l) = &mut s.link
                    && let Err(e) = l.send(&InitMsg::HeartbeatAck)
                    && !matches!(e, LinkError::Full)
                {
                    warn!("cannot answer svmgr's heartbeat: {e}");
                }
            }
            // Everything sent before our heartbeat has been read, orphan reports included.
            SvmgrMsg::HeartbeatAck => self.orphans.heartbeat_acked(),
            SvmgrMsg::RequestShutdown { kind, exit_code } => {
                match exit_code {
                    Some(c) => info!(
                        "svmgr stopped all services and requests {} (exit status {c})",
                        kind.as_str()
                    ),
                    None => info!("svmgr stopped all services and requests {}", kind.as_str()),
                }
                self.outcome = Some(Outcome { kind, exit_code });
            }
            SvmgrMsg::Park { keys } => {
                let fds = s
                    .link
                    .as_mut()
                    .map(|l| l.take_fds(keys.len()))
                    .unwrap_or_default();
                if fds.len() != keys.len() {
                    warn!(
                        "svmgr parked {} key(s) with {} fd(s); ignored",
                        keys.len(),
                        fds.len()
                    );
                    return;
                }
                for (key, fd) in keys.into_iter().zip(fds) {
                    if self.parked.len() >= PARKED_CAPACITY {
                        warn!("too many parked pipes ({PARKED_CAPACITY}); not holding {key}");
                        continue;
                    }
                    self.parked.push((key, fd));
                }
            }
            SvmgrMsg::Unpark { keys } => {
                self.parked.retain(|(k, _)| !keys.contains(k));
            }
            SvmgrMsg::Reclaim => {
                let Some(l) = &mut s.link else { return };
                for batch in self.parked.chunks(PARKED_BATCH) {
                    let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
                    let fds: Vec<std::os::fd::BorrowedFd<'_>> =
                        batch.iter().map(|(_, f)| f.as_fd()).collect();
                    if let Err(e) = l.send_with_fds(&InitMsg::Parked { keys }, &fds) {
                        warn!("cannot hand parked pipes back to svmgr: {e}");
                        break;
                    }
                }
            }
            SvmgrMsg::ShutdownComplete => match self.stop {
                Some(Stop {
                    purpose: Purpose::Shutdown(kind),
                    ..
                }) => {
                    info!("svmgr stopped all services");
                    self.outcome = Some(Outcome {
                        kind,
                        exit_code: None,
                    });
                }
                Some(
                    ref mut stop @ Stop {
                        purpose: Purpose::Emergency,
                        ..
                    },
                ) => {
                    info!("svmgr stopped all services; terminating it");
                    stop.awaiting_exit = true;
                    stop.deadline = now.saturating_add(TERM_GRACE_MS);
                    if let Err(e) =
                        process::pidfd_send_signal(s.pidfd.as_fd(), Signal::SIGTERM as i32)
                    {
                        warn!("SIGTERM to svmgr: {e}");
                    }
                }
                None => warn!("svmgr reported a completed stop nobody asked for; ignored"),
            },
        }
    }

    // ---- time ----------------------------------------------------------------------------

    fn drain_timer(&mut self) {
        let mut buf = [0u8; 8];
        let _ = dynamod_sys::nix::unistd::read(self.timer.as_fd(), &mut buf);
    }

    /// Acts on every deadline that is due.
    fn tick(&mut self, now: u64) {
        if self.outcome.is_some() {
            return;
        }

        // A bounded stop ran out of time.
        if let Some(stop) = self.stop
            && now >= stop.deadline
        {
            self.on_stop_deadline(stop, now);
        }

        // svmgr's restart after its backoff delay.
        if let Some(at) = self.restart_at
            && now >= at
            && self.svmgr.is_none()
            && self.shell.is_none()
            && self.stop.is_none()
        {
            self.start_svmgr(now);
        }

        // Heartbeats and hang detection, only while no stop has its own deadline.
        let hang_after = self.ctx.settings.hang_after_ms();
        let period = self.ctx.settings.heartbeat_ms;
        if self.stop.is_none()
            && let Some(s) = &mut self.svmgr
            && !s.killed
        {
            let silent = now.saturating_sub(s.last_rx);
            if silent >= hang_after {
                warn!("svmgr hung (no heartbeat for {silent} ms), killing it");
                kill_svmgr(s);
            } else if s.greeted && now >= self.next_beat_at {
                match s.link.as_mut().map(|l| l.send(&InitMsg::Heartbeat)) {
                    Some(Ok(())) => self.orphans.heartbeat_sent(),
                    Some(Err(LinkError::Full)) | None => {}
                    Some(Err(e)) => warn!("cannot send heartbeat to svmgr: {e}"),
                }
                self.next_beat_at = now.saturating_add(period);
            }
        }
        self.update_socket_interest();
    }

    fn on_stop_deadline(&mut self, stop: Stop, now: u64) {
        let limit = self.ctx.settings.shutdown_svmgr_ms;
        match stop.purpose {
            Purpose::Shutdown(kind) => {
                warn!(
                    "svmgr did not finish stopping services within {limit} ms; continuing the shutdown"
                );
                self.outcome = Some(Outcome {
                    kind,
                    exit_code: None,
                });
            }
            Purpose::Emergency => {
                if !stop.awaiting_exit {
                    warn!("svmgr did not stop services within {limit} ms; killing it");
                } else {
                    warn!("svmgr did not exit; killing it");
                }
                if let Some(s) = &mut self.svmgr {
                    kill_svmgr(s);
                }
                // SIGKILL always lands; its exit starts the shell.
                self.stop = Some(Stop {
                    awaiting_exit: true,
                    deadline: now.saturating_add(TERM_GRACE_MS),
                    ..stop
                });
            }
        }
    }

    fn arm_timer(&mut self, now: u64) {
        let mut next: Option<u64> = None;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(stop) = self.stop {
            consider(stop.deadline);
        }
        if let Some(at) = self.restart_at
            && self.shell.is_none()
            && self.stop.is_none()
        {
            consider(at);
        }
        if self.stop.is_none()
            && let Some(s) = &self.svmgr
            && !s.killed
        {
            consider(s.last_rx.saturating_add(self.ctx.settings.hang_after_ms()));
            if s.greeted {
                consider(self.next_beat_at);
            }
        }
        let result = match next {
            Some(t) => {
                // Zero would disarm the timer: a due deadline fires after 1 ms.
                let ms = t.saturating_sub(now).max(1);
                let spec = TimeSpec::from_duration(std::time::Duration::from_millis(ms));
                self.timer
                    .set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())
            }
            None => self.timer.unset(),
        };
        if let Err(e) = result {
            error!("arm timerfd: {e}");
        }
    }
}

fn kill_svmgr(s: &mut Svmgr) {
    if s.killed {
        return;
    }
    match process::pidfd_send_signal(s.pidfd.as_fd(), Signal::SIGKILL as i32) {
        Ok(()) => s.killed = true,
        // ESRCH: it already exited and waits to be reaped.
        Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => s.killed = true,
        Err(e) => error!("SIGKILL to svmgr (pid {}): {e}", s.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_gives_code_or_signal_number() {
        assert_eq!(status_text(ExitStatus::Signaled(9)).to_string(), "signal 9");
        assert_eq!(status_text(ExitStatus::Exited(127)).to_string(), "code 127");
    }

    #[test]
    fn containers_and_development_runs_exit_at_the_end() {
        let m = |pid1, env| RunMode { pid1, env };
        assert!(m(true, Environment::Container).exits_at_end());
        assert!(m(false, Environment::RealRoot).exits_at_end());
        assert!(!m(true, Environment::RealRoot).exits_at_end());
    }
}
