//! The event loop: runs the supervision core against real processes.
//!
//! One thread, one epoll set: a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP), the control socket
//! and its clients, the init channel, the log socket, every service's output pipes and readiness
//! channels. All sockets are non-blocking and every client has its own buffers, so a slow or
//! silent client never stalls supervision. Timers are the core's deadlines plus our own
//! heartbeat, turned into the epoll timeout.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dynamod_config::Readiness;
use dynamod_core::{Action, Core, Event, Level, SvcId};
use dynamod_proto::{
    ExitStatus, FrameDecoder, Hello, InitMsg, LogMsg, ShutdownKind, Stream, SvmgrMsg,
};
use dynamod_sys::nix;
use dynamod_sys::nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use dynamod_sys::nix::sys::signal::{SigSet, Signal};
use dynamod_sys::nix::sys::signalfd::{SfdFlags, SignalFd};
use dynamod_sys::process::{self, Reaped};

use crate::control::{Client, Job};
use crate::launch::{self, Paths};
use crate::logbuf::{LineSplitter, LogQueue, MAX_QUEUE_BYTES, RECENT_LINES};
use crate::notify;

const T_SIGNAL: u64 = 1;
const T_CONTROL: u64 = 2;
const T_INIT: u64 = 3;
const T_LOG_LISTEN: u64 = 4;
const T_LOGD: u64 = 5;
const T_CLIENT: u64 = 1 << 32;
const T_PIPE: u64 = 2 << 32;
const T_NOTIFY: u64 = 3 << 32;
const T_READY: u64 = 4 << 32;
const T_PIDFD: u64 = 5 << 32;
const T_EXEC: u64 = 6 << 32;
const SLOT_MASK: u64 = (1 << 32) - 1;

/// Starts whose child has not copied its fds yet, at most: their fds sit at low numbers, which
/// every new child copies, so a burst of starts goes through this window.
const MAX_SPAWNING: usize = 32;

/// Clients beyond this are refused (closed at once) so a flood cannot exhaust fds.
const MAX_CLIENTS: usize = 512;

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Service files.
    pub services: PathBuf,
    /// Supervisor files.
    pub supervisors: PathBuf,
    /// Runtime directory.
    pub runtime: PathBuf,
    /// Where `passwd` and `group` are read from.
    pub etc: PathBuf,
    /// Heartbeat period towards init.
    pub heartbeat: Duration,
    /// Where service cgroups go.
    pub cgroups: crate::cgroup::CgroupSetting,
    /// Members of this group may change things over the control socket, like root.
    pub control_group: Option<u32>,
}

/// Per-service runtime data the core does not need.
#[derive(Debug, Default)]
pub(crate) struct SvcRt {
    pub pidfd: Option<OwnedFd>,
    pub pid: Option<i32>,
    pub since_wall: Option<SystemTime>,
    pub notify: Option<UnixDatagram>,
    pub ready_fd: Option<OwnedFd>,
    pub status_text: Option<String>,
    pub recent: VecDeque<String>,
    pub dropped: u64,
    pub notify_rejected: u64,
    pub last_exit_wall: Option<SystemTime>,
    /// The service's cgroup while it has one.
    pub cgroup: Option<PathBuf>,
    /// OOM kills seen in its cgroup so far (baseline taken at spawn).
    pub oom_baseline: u64,
    /// OOM kills of this service since svmgr started.
    pub oom_kills: u64,
    /// Start time (clock ticks since boot) of the main process, for the state file.
    pub start_time: u64,
    /// The main process exists but has not been seen running its program yet.
    pub exec: Option<dynamod_sys::spawn::ExecWatch>,
}

struct Pipe {
    fd: std::fs::File,
    svc: SvcId,
    pid: i32,
    stream: Stream,
    splitter: LineSplitter,
    /// Key under which init holds a copy of this read end.
    parked: Option<String>,
}

/// What the state file says of one service (see [`crate::state`]); compared without formatting
/// so an unchanged service costs nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Persisted {
    state: &'static str,
    pid: i32,
    start_time: u64,
    restarts: u32,
    ready: bool,
}

/// What a polled probe looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// The readiness condition (`tcp-port`, `exec`).
    Readiness,
    /// A `forking` service's daemon (pidfile, or the one process the starter left behind).
    MainPid,
}

/// A polled probe.
struct Probe {
    kind: ProbeKind,
    next: Instant,
    interval: Duration,
    /// PID of a running `check-exec`.
    running: Option<i32>,
}

struct InitLink {
    stream: UnixStream,
    dec: FrameDecoder,
    out: Vec<u8>,
    last_rx: Instant,
    /// fds received with SCM_RIGHTS, not yet claimed by a message.
    fds: VecDeque<OwnedFd>,
}

struct Logd {
    stream: UnixStream,
    dec: FrameDecoder,
    out: Vec<u8>,
    greeted: bool,
}

/// What to do once the core reports that every service is stopped.
#[derive(Debug, Clone, Copy)]
enum Finish {
    /// Answer init's `Shutdown` and exit.
    AnswerInit,
    /// Ask init to power off / reboot / halt (with a container exit code), then exit.
    RequestFromInit(ShutdownKind, Option<i32>),
    /// Standalone: just exit with this code.
    Exit(i32),
}

/// The running service manager.
pub struct Runtime {
    pub(crate) core: Core,
    pub(crate) rt: Vec<SvcRt>,
    pub(crate) paths: Paths,
    pub(crate) start: Instant,
    opts: Options,
    epoll: Epoll,
    sigfd: SignalFd,
    control: UnixListener,
    pub(crate) clients: Vec<Option<Client>>,
    init: Option<InitLink>,
    log_listener: UnixListener,
    logd: Option<Logd>,
    logd_ever: bool,
    pipes: Vec<Option<Pipe>>,
    pids: HashMap<i32, SvcId>,
    helpers: HashMap<i32, (SvcId, &'static str)>,
    probes: HashMap<SvcId, Probe>,
    cgroups: Option<crate::cgroup::Cgroups>,
    /// Main processes that exited while their cgroup still held processes: the exit is
    /// reported once the cgroup is empty (or the deadline passed).
    draining: HashMap<SvcId, (ExitStatus, Instant)>,
    /// Services adopted from a previous svmgr whose process exited: waiting for init to report
    /// the exit status (they are not our children).
    awaiting_status: HashMap<i32, (SvcId, Instant)>,
    /// Exit statuses init reported for adopted PIDs before their pidfd fired.
    orphan_status: HashMap<i32, ExitStatus>,
    /// PIDs adopted from a previous svmgr (watched through their pidfd).
    adopted: HashMap<i32, SvcId>,
    /// The state file needs rewriting.
    state_dirty: bool,
    /// The state file.
    journal: crate::state::Journal,
    /// What the journal last said of each service (`None`: nothing yet).
    persisted: Vec<Option<Persisted>>,
    /// Saving failed last time (warned once until it works again).
    state_failing: bool,
    /// Services whose new process has not copied its fds yet (see [`MAX_SPAWNING`]).
    spawning: std::collections::HashSet<SvcId>,
    /// Starts waiting for room among `spawning`, in order.
    spawn_queue: VecDeque<SvcId>,
    queue: LogQueue,
    jobs: Vec<Job>,
    finish: Option<Finish>,
    exit_code: Option<i32>,
    next_beat: Instant,
    quit: Option<i32>,
    /// Replace this process with the binary on disk once the current answers are written.
    pub(crate) reexec: bool,
    echo: EchoBudget,
}

/// Console echo budget: at most [`EchoBudget::PER_SECOND`] lines per second.
#[derive(Debug)]
struct EchoBudget {
    window: Instant,
    used: u32,
    noted: bool,
}

impl EchoBudget {
    const PER_SECOND: u32 = 200;

    fn new() -> Self {
        EchoBudget {
            window: Instant::now(),
            used: 0,
            noted: false,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
            self.noted = false;
        }
        self.used += 1;
        self.used <= Self::PER_SECOND
    }

    /// True once per window, for the note that echo is paused.
    fn note_due(&mut self) -> bool {
        !std::mem::replace(&mut self.noted, true)
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn log(level: Level, msg: &str) {
    match level {
        Level::Info => tracing::info!("{msg}"),
        Level::Warn => tracing::warn!("{msg}"),
        Level::Error => tracing::error!("{msg}"),
    }
}

/// Loads both configuration directories and logs every diagnostic with its location.
fn load_config(opts: &Options) -> dynamod_config::Config {
    let config = dynamod_config::load(&opts.services, &opts.supervisors);
    for d in &config.diagnostics {
        let loc = if d.line > 0 {
            format!("{}:{}:{}", d.file.display(), d.line, d.col)
        } else {
            d.file.display().to_string()
        };
        match d.severity {
            dynamod_config::Severity::Error => tracing::error!("{loc}: {}", d.message),
            dynamod_config::Severity::Warning => tracing::warn!("{loc}: {}", d.message),
        }
    }
    tracing::info!("loaded {} service definition(s)", config.services.len());
    if !config.invalid.is_empty() {
        let names: Vec<&str> = config.invalid.iter().map(|i| i.name.as_str()).collect();
        tracing::error!(
            "{} service file(s) invalid and not started: {}",
            config.invalid.len(),
            names.join(", ")
        );
    }
    config
}

fn bind_socket(path: &std::path::Path, mode: u32) -> anyhow::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    l.set_nonblocking(true)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(l)
}

impl Runtime {
    /// Loads the configuration and sets up every socket; nothing is started yet.
    pub fn new(opts: Options) -> anyhow::Result<Self> {
        tracing::info!("dynamod-svmgr starting");
        let config = load_config(&opts);
        tracing::info!(
            "loaded {} supervisor definition(s)",
            config.supervisors.len()
        );

        std::fs::create_dir_all(&opts.runtime)
            .with_context(|| format!("create {}", opts.runtime.display()))?;

        // Signals arrive through a signalfd only.
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        mask.thread_block().context("block signals")?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("signalfd")?;
        // Orphans of services (double-forked daemons) come to us, and we reap them.
        if let Err(e) = process::set_child_subreaper() {
            tracing::warn!("cannot become a child subreaper: {e}");
        }

        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll")?;
        epoll.add(&sigfd, EpollEvent::new(EpollFlags::EPOLLIN, T_SIGNAL))?;

        let control = bind_socket(&opts.runtime.join("control.sock"), 0o666)?;
        epoll.add(&control, EpollEvent::new(EpollFlags::EPOLLIN, T_CONTROL))?;
        tracing::debug!(
            "control socket listening at {}",
            opts.runtime.join("control.sock").display()
        );
        let log_listener = bind_socket(&opts.runtime.join("log.sock"), 0o600)?;
        epoll.add(
            &log_listener,
            EpollEvent::new(EpollFlags::EPOLLIN, T_LOG_LISTEN),
        )?;

        let init = Self::connect_init(&epoll)?;

        let cgroups = match crate::cgroup::detect(&opts.cgroups) {
            crate::cgroup::Detected::Cgroups(c) => {
                tracing::info!("service cgroups under {}", c.base().display());
                Some(c)
            }
            crate::cgroup::Detected::ProcessGroups(why) => {
                tracing::warn!("cgroups unavailable ({why}); falling back to process groups");
                None
            }
        };

        let core = Core::new(&config);
        let rt = (0..core.services().count())
            .map(|_| SvcRt::default())
            .collect();
        let service_nofile = launch::raise_nofile();
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(0, |(soft, _)| soft);
        let paths = Paths {
            runtime: opts.runtime.clone(),
            etc: opts.etc.clone(),
            fd_floor: launch::fd_floor(limit),
            service_nofile,
        };
        Ok(Runtime {
            core,
            rt,
            paths,
            start: Instant::now(),
            epoll,
            sigfd,
            control,
            clients: Vec::new(),
            init,
            log_listener,
            logd: None,
            logd_ever: false,
            pipes: Vec::new(),
            pids: HashMap::new(),
            helpers: HashMap::new(),
            probes: HashMap::new(),
            cgroups,
            draining: HashMap::new(),
            awaiting_status: HashMap::new(),
            orphan_status: HashMap::new(),
            adopted: HashMap::new(),
            state_dirty: true,
            journal: crate::state::Journal::new(opts.runtime.join("state")),
            persisted: Vec::new(),
            state_failing: false,
            spawning: std::collections::HashSet::new(),
            spawn_queue: VecDeque::new(),
            queue: LogQueue::new(now_us(), MAX_QUEUE_BYTES),
            jobs: Vec::new(),
            finish: None,
            exit_code: None,
            next_beat: Instant::now(),
            quit: None,
            reexec: false,
            echo: EchoBudget::new(),
            opts,
        })
    }

    fn connect_init(epoll: &Epoll) -> anyhow::Result<Option<InitLink>> {
        let Some(fd) = std::env::var("DYNAMOD_INIT_FD")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
        else {
            tracing::info!("no init connection, running standalone");
            return Ok(None);
        };
        // SAFETY-free ownership transfer: init passed this fd to us and nothing else uses it.
        let owned = dynamod_sys::fd::take_inherited(fd).context("DYNAMOD_INIT_FD")?;
        let stream = UnixStream::from(owned);
        stream.set_nonblocking(true)?;
        epoll.add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, T_INIT))?;
        let mut out = dynamod_proto::encode(&SvmgrMsg::Hello(Hello::new("dynamod-svmgr")))?;
        dynamod_proto::encode_into(&SvmgrMsg::Heartbeat, &mut out)?;
        tracing::info!("connected to dynamod-init");
        Ok(Some(InitLink {
            stream,
            dec: FrameDecoder::new(),
            out,
            last_rx: Instant::now(),
            fds: VecDeque::new(),
        }))
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Boots every service and runs until shutdown; returns the exit code.
    pub fn run(mut self) -> anyhow::Result<i32> {
        self.restore();
        if self.init.is_some() {
            // Pipes of adopted services (and of services that died meanwhile) come back.
            self.send_init(&SvmgrMsg::Reclaim);
        }
        let now = self.now();
        let actions = self.core.handle(now, Event::Boot);
        self.execute(actions);
        self.flush_init();
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            if let Some(code) = self.quit {
                self.flush_init();
                self.flush_clients();
                return Ok(code);
            }
            if self.reexec {
                self.reexec = false;
                self.flush_clients();
                let e = self.exec_self();
                tracing::error!("re-exec failed ({e}); carrying on as before");
            }
            let timeout = self.timeout();
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e).context("epoll_wait"),
            };
            for ev in &events[..n] {
                self.dispatch(ev.data(), ev.events());
            }
            self.pump_spawns();
            let now = self.now();
            let actions = self.core.tick(now);
            self.execute(actions);
            self.drain();
            self.expire_awaiting();
            self.save_state();
            self.heartbeat();
            self.run_probes();
            self.check_jobs();
            self.pump_logd();
            self.flush_init();
        }
    }

    fn timeout(&self) -> EpollTimeout {
        let now = self.now();
        let mut wait = Duration::from_secs(60);
        if self.init.is_some() {
            wait = wait.min(self.next_beat.saturating_duration_since(Instant::now()));
        }
        if let Some(d) = self.core.next_deadline() {
            wait = wait.min(d.saturating_sub(now));
        }
        if !self.draining.is_empty() {
            wait = wait.min(Duration::from_millis(10));
        }
        if !self.awaiting_status.is_empty() {
            wait = wait.min(Duration::from_millis(100));
        }
        for p in self.probes.values().filter(|p| p.running.is_none()) {
            wait = wait.min(p.next.saturating_duration_since(Instant::now()));
        }
        // Round up so we never wake a hair before the deadline and spin.
        let ms = wait.as_millis().saturating_add(1).min(60_000) as i32;
        EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE)
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) {
        match token {
            T_SIGNAL => self.on_signals(),
            T_CONTROL => self.accept_clients(),
            T_INIT => self.on_init(),
            T_LOG_LISTEN => self.accept_logd(),
            T_LOGD => self.on_logd(flags),
            t if t & !SLOT_MASK == T_CLIENT => self.on_client((t & SLOT_MASK) as usize, flags),
            t if t & !SLOT_MASK == T_PIPE => self.on_pipe((t & SLOT_MASK) as usize),
            t if t & !SLOT_MASK == T_NOTIFY => self.on_notify(SvcId((t & SLOT_MASK) as usize)),
            t if t & !SLOT_MASK == T_READY => self.on_ready_fd(SvcId((t & SLOT_MASK) as usize)),
            t if t & !SLOT_MASK == T_PIDFD => self.on_adopted_exit((t & SLOT_MASK) as i32),
            t if t & !SLOT_MASK == T_EXEC => self.resolve_exec(SvcId((t & SLOT_MASK) as usize)),
            _ => {}
        }
    }

    // ---- actions ------------------------------------------------------------------------

    pub(crate) fn execute(&mut self, actions: Vec<Action>) {
        if !actions.is_empty() {
            self.state_dirty = true;
        }
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            let more = match a {
                Action::Spawn(id) => {
                    if self.spawning.len() >= MAX_SPAWNING {
                        self.spawn_queue.push_back(id);
                        Vec::new()
                    } else {
                        self.spawn(id)
                    }
                }
                Action::Stop(id) => {
                    self.stop(id);
                    Vec::new()
                }
                Action::Kill(id) => {
                    self.kill(id);
                    Vec::new()
                }
                Action::CancelReadiness(id) => {
                    self.cancel_readiness(id);
                    Vec::new()
                }
                Action::Log(level, msg) => {
                    log(level, &msg);
                    Vec::new()
                }
                Action::StartupComplete => Vec::new(),
                Action::ShutdownComplete => {
                    self.shutdown_complete();
                    Vec::new()
                }
                Action::MainExited(code) => {
                    tracing::info!(
                        "main service ended; stopping the container with exit code {code}"
                    );
                    self.exit_code = Some(code);
                    self.begin_shutdown(Finish::RequestFromInit(ShutdownKind::Poweroff, Some(code)))
                }
            };
            queue.extend(more);
        }
    }

    fn spawn(&mut self, id: SvcId) -> Vec<Action> {
        let now = self.now();
        let Some(cfg) = self.core.service(id).cfg.clone() else {
            return self.core.handle(
                now,
                Event::SpawnFailed {
                    svc: id,
                    error: "invalid".into(),
                },
            );
        };
        let prepared = self.prepare_cgroup(id, &cfg);
        let cg_fd = prepared
            .as_ref()
            .map(|p| std::os::fd::AsRawFd::as_raw_fd(&p.dir));
        match launch::launch(&cfg, &self.paths, cg_fd) {
            Ok(l) => {
                if let Some(p) = prepared {
                    self.rt[id.0].oom_baseline = crate::cgroup::oom_kills(&p.path).unwrap_or(0);
                    self.rt[id.0].cgroup = Some(p.path);
                }
                let dynamod_sys::spawn::Pending {
                    child,
                    watch,
                    start_ticks,
                } = l.child;
                let pid = child.pid;
                tracing::debug!(service = %cfg.name, pid, "forked");
                self.pids.insert(pid, id);
                let watched = self
                    .epoll
                    .add(
                        watch.fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, T_EXEC | id.0 as u64),
                    )
                    .is_ok();
                let rt = &mut self.rt[id.0];
                rt.pid = Some(pid);
                rt.pidfd = Some(child.pidfd);
                rt.start_time = match start_ticks {
                    Some(t) => t,
                    None => {
                        process::start_time_ticks(std::path::Path::new("/proc"), pid).unwrap_or(0)
                    }
                };
                rt.since_wall = Some(SystemTime::now());
                rt.status_text = None;
                let mut park = Vec::new();
                for (fd, stream) in [(l.stdout, Stream::Out), (l.stderr, Stream::Err)] {
                    let Some(fd) = fd else { continue };
                    let key = self
                        .init
                        .is_some()
                        .then(|| pipe_key(&cfg.name, stream, pid));
                    if let (Some(k), Ok(copy)) = (&key, fd.try_clone()) {
                        park.push((k.clone(), copy));
                    }
                    self.add_pipe(fd, id, pid, stream, key);
                }
                self.park(park);
                self.state_dirty = true;
                if let Some(sock) = l.notify {
                    let _ = self.epoll.add(
                        &sock,
                        EpollEvent::new(EpollFlags::EPOLLIN, T_NOTIFY | id.0 as u64),
                    );
                    self.rt[id.0].notify = Some(sock);
                }
                if let Some(fd) = l.ready_fd {
                    let _ = self.epoll.add(
                        &fd,
                        EpollEvent::new(EpollFlags::EPOLLIN, T_READY | id.0 as u64),
                    );
                    self.rt[id.0].ready_fd = Some(fd);
                }
                let mut actions = self.core.handle(now, Event::Forked { svc: id, pid });
                let interval = match cfg.readiness.kind {
                    Readiness::TcpPort { .. } => Some(Duration::from_millis(100)),
                    Readiness::Exec { interval, .. } => Some(interval),
                    _ => None,
                };
                let forking = cfg.kind == dynamod_config::ServiceType::Forking;
                if let Some(interval) = interval.filter(|_| !forking) {
                    self.probes.insert(
                        id,
                        Probe {
                            kind: ProbeKind::Readiness,
                            next: Instant::now(),
                            interval,
                            running: None,
                        },
                    );
                }
                if watch.holds_fds() {
                    self.spawning.insert(id);
                }
                self.rt[id.0].exec = Some(watch);
                if !watched {
                    // Without the poller's help, wait for the outcome here.
                    if let Some(w) = self.rt[id.0].exec.as_mut() {
                        let _ = w.wait();
                    }
                    actions.extend(self.exec_outcome(id, false));
                }
                actions
            }
            Err(e) => self.core.handle(
                now,
                Event::SpawnFailed {
                    svc: id,
                    error: e.to_string(),
                },
            ),
        }
    }

    /// Starts queued services while there is room (see [`MAX_SPAWNING`]). A queued start is
    /// dropped when the service is no longer starting or already has a process (it was stopped,
    /// or started again, meanwhile).
    fn pump_spawns(&mut self) {
        while self.spawning.len() < MAX_SPAWNING {
            let Some(id) = self.spawn_queue.pop_front() else {
                return;
            };
            let starting = self.core.state(id) == dynamod_proto::ServiceState::Starting;
            if !starting || self.rt[id.0].pid.is_some() || self.rt[id.0].exec.is_some() {
                continue;
            }
            let a = self.spawn(id);
            self.execute(a);
        }
    }

    /// The status pipe of a starting service became readable (or an event of the service needs
    /// its outcome first).
    fn resolve_exec(&mut self, id: SvcId) {
        let a = self.exec_outcome(id, false);
        self.execute(a);
    }

    /// Turns the outcome of a pending start into the core's `Spawned` or `SpawnFailed`; nothing
    /// while the child is still on its way. Every event about a service (readiness, notify,
    /// exit) comes after this, so the core always learns that the program runs first.
    fn exec_outcome(&mut self, id: SvcId, exited: bool) -> Vec<Action> {
        let Some(watch) = self.rt[id.0].exec.as_mut() else {
            return Vec::new();
        };
        let outcome = if exited {
            watch.child_exited()
        } else {
            watch.poll()
        };
        if !watch.holds_fds() {
            self.spawning.remove(&id);
        }
        if matches!(outcome, dynamod_sys::spawn::ExecOutcome::InProgress) {
            return Vec::new();
        }
        if let Some(w) = self.rt[id.0].exec.take() {
            let _ = self.epoll.delete(w.fd());
        }
        let now = self.now();
        let Some(pid) = self.rt[id.0].pid else {
            return Vec::new();
        };
        match outcome {
            dynamod_sys::spawn::ExecOutcome::Failed(e) => {
                // The child exits with 127 on its own; its exit is not the service's.
                self.pids.remove(&pid);
                self.helpers.insert(pid, (id, "failed start"));
                self.cancel_readiness(id);
                let rt = &mut self.rt[id.0];
                rt.pid = None;
                rt.pidfd = None;
                self.state_dirty = true;
                self.core.handle(
                    now,
                    Event::SpawnFailed {
                        svc: id,
                        error: e.to_string(),
                    },
                )
            }
            _ => {
                tracing::debug!(pid, "running its program");
                self.core.handle(now, Event::Spawned { svc: id, pid })
            }
        }
    }

    fn add_pipe(
        &mut self,
        fd: OwnedFd,
        svc: SvcId,
        pid: i32,
        stream: Stream,
        parked: Option<String>,
    ) {
        let slot = match self.pipes.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.pipes.push(None);
                self.pipes.len() - 1
            }
        };
        let file = std::fs::File::from(fd);
        if self
            .epoll
            .add(
                &file,
                EpollEvent::new(EpollFlags::EPOLLIN, T_PIPE | slot as u64),
            )
            .is_err()
        {
            return;
        }
        self.pipes[slot] = Some(Pipe {
            fd: file,
            svc,
            pid,
            stream,
            splitter: LineSplitter::default(),
            parked,
        });
    }

    fn stop(&mut self, id: SvcId) {
        let Some(cfg) = self.core.service(id).cfg.clone() else {
            return;
        };
        if let Some(argv) = &cfg.shutdown.stop_exec {
            match launch::launch_helper(argv, &cfg, &self.paths) {
                Ok(child) => {
                    self.helpers.insert(child.pid, (id, "stop-exec"));
                    return;
                }
                Err(e) => tracing::warn!(
                    "stop-exec of '{}' failed: {e}; sending {} instead",
                    cfg.name,
                    cfg.shutdown.stop_signal.name
                ),
            }
        }
        self.signal(id, cfg.shutdown.stop_signal.number);
    }

    fn signal(&self, id: SvcId, sig: i32) {
        if let Some(fd) = &self.rt[id.0].pidfd
            && let Err(e) = process::pidfd_send_signal(fd.as_fd(), sig)
            && e.raw_os_error() != Some(libc_esrch())
        {
            tracing::warn!("signal {sig} to '{}': {e}", self.core.service(id).name);
        }
    }

    /// SIGKILLs the service's `stop-exec` helpers still running (they share its stop timeout).
    fn kill_helpers(&mut self, id: SvcId) {
        for (pid, (svc, what)) in &self.helpers {
            if *svc == id && *what == "stop-exec" {
                // Our own unreaped child: its PID cannot have been recycled.
                let _ = process::kill_pid(*pid, 9);
            }
        }
    }

    fn kill(&mut self, id: SvcId) {
        self.kill_helpers(id);
        self.signal(id, 9);
        if let Some(cg) = &self.rt[id.0].cgroup {
            crate::cgroup::kill(cg);
        } else if let Some(pid) = self.rt[id.0].pid {
            // The service runs in its own session, so its process group is its pid.
            let _ = process::kill_process_group(pid, 9);
        }
    }

    /// Creates the service's cgroup and writes its limits; `None` without cgroups or when the
    /// cgroup cannot be created (then the service runs in a process group, and we say so).
    fn prepare_cgroup(
        &mut self,
        id: SvcId,
        cfg: &dynamod_config::ServiceConfig,
    ) -> Option<crate::cgroup::Prepared> {
        let cgroups = self.cgroups.as_ref()?;
        let mut rel = PathBuf::new();
        let mut chain = Vec::new();
        let mut sup = Some(self.core.service(id).supervisor);
        while let Some(s) = sup {
            chain.push(self.core.supervisor(s).cfg.name.clone());
            sup = self.core.supervisor(s).parent;
        }
        for name in chain.iter().rev() {
            rel.push(name);
        }
        rel.push(&cfg.name);
        match cgroups.prepare(&rel, &cfg.cgroup) {
            Ok(p) => {
                for w in &p.warnings {
                    tracing::warn!("service '{}': {w}", cfg.name);
                }
                Some(p)
            }
            Err(e) => {
                tracing::warn!(
                    "service '{}': cannot create its cgroup ({e}); it runs in a process group",
                    cfg.name
                );
                None
            }
        }
    }

    fn cancel_readiness(&mut self, id: SvcId) {
        if let Some(p) = self.probes.remove(&id)
            && let Some(pid) = p.running
        {
            let _ = process::kill_pid(pid, 9);
        }
        let rt = &mut self.rt[id.0];
        if let Some(sock) = rt.notify.take() {
            let _ = self.epoll.delete(&sock);
            launch::remove_notify(&self.paths, &self.core.service(id).name);
        }
        if let Some(fd) = rt.ready_fd.take() {
            let _ = self.epoll.delete(&fd);
        }
    }

    // ---- signals and exits --------------------------------------------------------------

    fn on_signals(&mut self) {
        loop {
            match self.sigfd.read_signal() {
                Ok(Some(info)) => match info.ssi_signo as i32 {
                    s if s == Signal::SIGCHLD as i32 => self.reap(),
                    s if s == Signal::SIGTERM as i32 || s == Signal::SIGINT as i32 => {
                        tracing::info!("received signal {s}; shutting down");
                        let finish = if self.init.is_some() {
                            Finish::RequestFromInit(ShutdownKind::Poweroff, None)
                        } else {
                            Finish::Exit(0)
                        };
                        let a = self.begin_shutdown(finish);
                        self.execute(a);
                    }
                    s if s == Signal::SIGHUP as i32 => {
                        self.reload();
                    }
                    _ => {}
                },
                Ok(None) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("signalfd: {e}");
                    return;
                }
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match process::reap_one() {
                Ok(Reaped::Child { pid, status }) => self.on_exit(pid, status),
                Ok(Reaped::NoChildren | Reaped::NoneReady) => return,
                Err(e) => {
                    tracing::error!("waitid: {e}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: i32, status: ExitStatus) {
        if let Some((svc, what)) = self.helpers.remove(&pid) {
            if what == "check-exec" {
                if let Some(p) = self.probes.get_mut(&svc) {
                    p.running = None;
                    if status == ExitStatus::Exited(0) {
                        self.probes.remove(&svc);
                        let now = self.now();
                        let a = self.core.handle(now, Event::Ready { svc });
                        self.execute(a);
                    }
                }
                return;
            }
            if what == "stop-exec" && status != ExitStatus::Exited(0) {
                let cfg = self.core.service(svc).cfg.clone();
                if let Some(cfg) = cfg {
                    tracing::warn!(
                        "stop-exec of '{}' ended with {}; sending {}",
                        cfg.name,
                        dynamod_core::fmt_status(status),
                        cfg.shutdown.stop_signal.name
                    );
                    self.signal(svc, cfg.shutdown.stop_signal.number);
                }
            }
            return;
        }
        if let Some(&svc) = self.pids.get(&pid)
            && self.rt[svc.0].exec.is_some()
        {
            // The start's outcome first.
            let a = self.exec_outcome(svc, true);
            self.execute(a);
        }
        let Some(svc) = self.pids.remove(&pid) else {
            // An orphan reparented to us (double fork): reaped, nothing else to do.
            return;
        };
        // After an in-place re-exec, adopted services are still our children.
        if self.adopted.remove(&pid).is_some()
            && let Some(fd) = self.rt[svc.0].pidfd.as_ref()
        {
            let _ = self.epoll.delete(fd);
        }
        self.awaiting_status.remove(&pid);
        self.orphan_status.remove(&pid);
        let forking_start = self
            .core
            .service(svc)
            .cfg
            .as_ref()
            .is_some_and(|c| c.kind == dynamod_config::ServiceType::Forking)
            && self.core.state(svc) == dynamod_proto::ServiceState::Starting
            && status == ExitStatus::Exited(0);
        if forking_start {
            // The starter forked the daemon and left; find the daemon before deciding anything.
            self.rt[svc.0].pid = None;
            self.rt[svc.0].pidfd = None;
            self.probes.insert(
                svc,
                Probe {
                    kind: ProbeKind::MainPid,
                    next: Instant::now(),
                    interval: Duration::from_millis(50),
                    running: None,
                },
            );
            self.run_probes();
            return;
        }
        let rt = &mut self.rt[svc.0];
        rt.pid = None;
        rt.pidfd = None;
        rt.last_exit_wall = Some(SystemTime::now());
        rt.since_wall = Some(SystemTime::now());
        // Whatever the main process left behind goes with it; the exit counts once nothing is
        // left, so a stop really means "no process of the service remains".
        match rt.cgroup.clone() {
            Some(cg) if !crate::cgroup::is_empty(&cg) => {
                crate::cgroup::kill(&cg);
                self.draining
                    .insert(svc, (status, Instant::now() + Duration::from_secs(5)));
                self.drain();
            }
            _ => {
                let _ = process::kill_process_group(pid, 9);
                self.report_exit(svc, status);
            }
        }
    }

    /// Reports exits whose cgroup has emptied (or that waited long enough).
    fn drain(&mut self) {
        let ready: Vec<(SvcId, ExitStatus)> = self
            .draining
            .iter()
            .filter(|(id, (_, deadline))| {
                self.rt[id.0]
                    .cgroup
                    .as_deref()
                    .is_none_or(crate::cgroup::is_empty)
                    || Instant::now() >= *deadline
            })
            .map(|(id, (st, _))| (*id, *st))
            .collect();
        for (svc, status) in ready {
            self.draining.remove(&svc);
            if let Some(cg) = &self.rt[svc.0].cgroup
                && !crate::cgroup::is_empty(cg)
            {
                tracing::error!(
                    "service '{}': processes survived SIGKILL in {}",
                    self.core.service(svc).name,
                    cg.display()
                );
            }
            self.report_exit(svc, status);
        }
    }

    fn report_exit(&mut self, svc: SvcId, status: ExitStatus) {
        self.kill_helpers(svc);
        if let Some(cg) = self.rt[svc.0].cgroup.take() {
            let ooms = crate::cgroup::oom_kills(&cg).unwrap_or(0);
            let new = ooms.saturating_sub(self.rt[svc.0].oom_baseline);
            if new > 0 {
                self.rt[svc.0].oom_kills += new;
                tracing::error!(
                    "service '{}' was killed by the OOM killer ({new} kill(s) in its cgroup)",
                    self.core.service(svc).name
                );
            }
            crate::cgroup::remove(&cg);
        }
        let now = self.now();
        let actions = self.core.handle(now, Event::Exited { svc, status });
        self.execute(actions);
    }

    fn begin_shutdown(&mut self, finish: Finish) -> Vec<Action> {
        if self.finish.is_some() {
            return Vec::new();
        }
        tracing::info!("beginning graceful shutdown");
        self.finish = Some(finish);
        let now = self.now();
        self.core.handle(now, Event::Shutdown)
    }

    fn shutdown_complete(&mut self) {
        match self.finish {
            Some(Finish::AnswerInit) => {
                self.send_init(&SvmgrMsg::ShutdownComplete);
                self.quit = Some(0);
            }
            Some(Finish::RequestFromInit(kind, code)) => {
                if self.init.is_some() {
                    self.send_init(&SvmgrMsg::RequestShutdown {
                        kind,
                        exit_code: code,
                    });
                }
                self.quit = Some(code.unwrap_or(0));
            }
            Some(Finish::Exit(code)) => self.quit = Some(self.exit_code.unwrap_or(code)),
            None => self.quit = Some(0),
        }
    }

    // ---- init channel -------------------------------------------------------------------

    fn send_init(&mut self, msg: &SvmgrMsg) {
        if let Some(link) = &mut self.init
            && let Err(e) = dynamod_proto::encode_into(msg, &mut link.out)
        {
            tracing::error!("encode message to init: {e}");
        }
        self.flush_init();
    }

    fn flush_init(&mut self) {
        let Some(link) = &mut self.init else { return };
        while !link.out.is_empty() {
            match link.stream.write(&link.out) {
                Ok(0) => break,
                Ok(n) => {
                    link.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Switch to blocking for a moment: init is PID 1 and always reads.
                    let _ = link.stream.set_nonblocking(false);
                    let _ = link.stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let r = link.stream.write_all(&link.out);
                    let _ = link.stream.set_nonblocking(true);
                    if r.is_ok() {
                        link.out.clear();
                    }
                    break;
                }
                Err(_) => break,
            }
        }
    }

    fn heartbeat(&mut self) {
        if self.init.is_none() || Instant::now() < self.next_beat {
            return;
        }
        self.next_beat = Instant::now() + self.opts.heartbeat;
        self.send_init(&SvmgrMsg::Heartbeat);
    }

    fn on_init(&mut self) {
        let mut buf = [0u8; 4096];
        let mut msgs = Vec::new();
        let mut parked = Vec::new();
        let mut closed = false;
        if let Some(link) = &mut self.init {
            loop {
                match recv_with_fds(&link.stream, &mut buf, &mut link.fds) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => link.dec.push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            link.last_rx = Instant::now();
            loop {
                match link.dec.next::<InitMsg>() {
                    Ok(Some(InitMsg::Parked { keys })) => {
                        let n = keys.len().min(link.fds.len());
                        let fds: Vec<OwnedFd> = link.fds.drain(..n).collect();
                        parked.push((keys, fds));
                    }
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("bad message from init: {e}");
                        closed = true;
                        break;
                    }
                }
            }
        }
        for (keys, fds) in parked {
            self.reclaimed(keys, fds);
        }
        for m in msgs {
            match m {
                InitMsg::Hello(h) if h.version != dynamod_proto::PROTOCOL_VERSION => {
                    tracing::error!(
                        "dynamod-init speaks protocol {}, we speak {}",
                        h.version,
                        dynamod_proto::PROTOCOL_VERSION
                    );
                }
                InitMsg::Hello(_) | InitMsg::HeartbeatAck => {}
                InitMsg::Heartbeat => self.send_init(&SvmgrMsg::HeartbeatAck),
                InitMsg::Shutdown { kind } => {
                    tracing::info!("shutdown requested by init ({})", kind.as_str());
                    let a = self.begin_shutdown(Finish::AnswerInit);
                    self.execute(a);
                }
                InitMsg::Reload => {
                    self.reload();
                }
                InitMsg::OrphanExited { pid, status } => self.orphan_exited(pid, status),
                InitMsg::Parked { .. } => {}
            }
        }
        if closed {
            tracing::error!("lost the connection to dynamod-init; stopping services");
            if let Some(link) = self.init.take() {
                let _ = self.epoll.delete(&link.stream);
            }
            let a = self.begin_shutdown(Finish::Exit(1));
            self.execute(a);
        }
    }

    // ---- logs ---------------------------------------------------------------------------

    fn on_pipe(&mut self, slot: usize) {
        let mut buf = [0u8; 65536];
        let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut eof = false;
        let Some(Some(pipe)) = self.pipes.get_mut(slot) else {
            return;
        };
        // Bounded work per wake-up so one chatty service cannot starve the others.
        for _ in 0..16 {
            match pipe.fd.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => pipe
                    .splitter
                    .feed(&buf[..n], &mut |l, p| lines.push((l.to_vec(), p))),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof && let Some(rest) = pipe.splitter.finish() {
            lines.push((rest, true));
        }
        let (svc, pid, stream) = (pipe.svc, pipe.pid, pipe.stream);
        if eof && let Some(p) = self.pipes[slot].take() {
            let _ = self.epoll.delete(&p.fd);
            if let Some(key) = p.parked {
                self.send_init(&SvmgrMsg::Unpark { keys: vec![key] });
            }
        }
        for (line, partial) in lines {
            self.record(svc, pid, stream, line, partial);
        }
    }

    fn record(&mut self, svc: SvcId, pid: i32, stream: Stream, line: Vec<u8>, partial: bool) {
        let name = self.core.service(svc).name.clone();
        let text = String::from_utf8_lossy(&line).into_owned();
        if !self.logd_ever {
            // Before logd runs, output goes to the console too (and is queued for logd). A slow
            // console must not stall supervision, so the echo has a budget; what exceeds it is
            // still queued for logd, so nothing is lost.
            if self.echo.allow(Instant::now()) {
                eprintln!("[{name}] {text}");
            } else if self.echo.note_due() {
                eprintln!(
                    "[dynamod-svmgr] console echo paused: more output than the console takes; it is kept for dynamod-logd"
                );
            }
        }
        let rt = &mut self.rt[svc.0];
        if rt.recent.len() == RECENT_LINES {
            rt.recent.pop_front();
        }
        rt.recent.push_back(text);
        let dropped = self.queue.push(&name, pid, stream, now_us(), line, partial);
        for (service, n) in dropped {
            if let Some(id) = self.core.lookup(&service) {
                let rt = &mut self.rt[id.0];
                if rt.dropped == 0 {
                    tracing::warn!("log buffer full: dropping the oldest lines of '{service}'");
                }
                rt.dropped += n;
            }
        }
    }

    fn accept_logd(&mut self) {
        loop {
            let (stream, _) = match self.log_listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let uid =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                    .map(|c| c.uid())
                    .unwrap_or(u32::MAX);
            if uid != 0 && uid != nix::unistd::geteuid().as_raw() {
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if let Some(old) = self.logd.take() {
                let _ = self.epoll.delete(&old.stream);
            }
            if self
                .epoll
                .add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, T_LOGD))
                .is_err()
            {
                continue;
            }
            let out = dynamod_proto::encode(&LogMsg::Hello(Hello::new("dynamod-svmgr")))
                .unwrap_or_default();
            self.queue.rewind();
            self.logd = Some(Logd {
                stream,
                dec: FrameDecoder::new(),
                out,
                greeted: false,
            });
        }
    }

    fn on_logd(&mut self, flags: EpollFlags) {
        let mut closed =
            flags.contains(EpollFlags::EPOLLHUP) || flags.contains(EpollFlags::EPOLLERR);
        if let Some(l) = &mut self.logd {
            let mut buf = [0u8; 4096];
            loop {
                match l.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => l.dec.push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            loop {
                match l.dec.next::<LogMsg>() {
                    Ok(Some(LogMsg::Hello(h))) => {
                        if h.version == dynamod_proto::PROTOCOL_VERSION {
                            l.greeted = true;
                            if !self.logd_ever {
                                tracing::info!(
                                    "dynamod-logd connected; service output now goes to its files"
                                );
                            }
                            self.logd_ever = true;
                        } else {
                            closed = true;
                        }
                    }
                    Ok(Some(LogMsg::Ack { seq })) => self.queue.ack(seq),
                    Ok(Some(LogMsg::Records(_))) | Ok(None) => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed && let Some(l) = self.logd.take() {
            let _ = self.epoll.delete(&l.stream);
            self.queue.rewind();
        }
    }

    fn pump_logd(&mut self) {
        let Some(l) = &mut self.logd else { return };
        if !l.greeted && l.out.is_empty() {
            return;
        }
        // Keep at most ~1 MiB in flight in our own buffer; the rest waits in the queue.
        if l.greeted && l.out.len() < 1 << 20 {
            let batch = self.queue.unsent(512);
            if !batch.is_empty() {
                let _ = dynamod_proto::encode_into(&LogMsg::Records(batch), &mut l.out);
            }
        }
        while !l.out.is_empty() {
            match l.stream.write(&l.out) {
                Ok(0) => break,
                Ok(n) => {
                    l.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = self.epoll.modify(
                        &l.stream,
                        &mut EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT, T_LOGD),
                    );
                    return;
                }
                Err(_) => {
                    let _ = self.epoll.delete(&l.stream);
                    self.logd = None;
                    self.queue.rewind();
                    return;
                }
            }
        }
        let _ = self
            .epoll
            .modify(&l.stream, &mut EpollEvent::new(EpollFlags::EPOLLIN, T_LOGD));
    }

    // ---- readiness ----------------------------------------------------------------------

    fn on_notify(&mut self, id: SvcId) {
        self.resolve_exec(id);
        let mut buf = vec![0u8; notify::MAX_DATAGRAM + 1];
        loop {
            let Some(sock) = &self.rt[id.0].notify else {
                return;
            };
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let r = nix::sys::socket::recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            );
            let (len, sender) = match r {
                Ok(msg) => {
                    let mut sender = None;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let nix::sys::socket::ControlMessageOwned::ScmCredentials(cred) = c {
                                sender = Some(cred.pid());
                            }
                        }
                    }
                    (msg.bytes, sender)
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            let data = buf[..len].to_vec();
            if !self.sender_belongs(id, sender) {
                self.rt[id.0].notify_rejected += 1;
                continue;
            }
            match notify::parse(&data) {
                Ok(msg) => {
                    if let Some(s) = msg.status {
                        self.rt[id.0].status_text = Some(s);
                    }
                    if let Some(pid) = msg.main_pid
                        && self.rt[id.0].pid != Some(pid)
                    {
                        if let Some(old) = self.rt[id.0].pid {
                            // The old main process stays our child; its exit is not the service's.
                            self.pids.remove(&old);
                        }
                        self.adopt_main(id, pid);
                    }
                    if msg.stopping {
                        tracing::info!(
                            "service '{}' reports it is stopping",
                            self.core.service(id).name
                        );
                    }
                    if msg.reloading {
                        tracing::info!(
                            "service '{}' reports it is reloading",
                            self.core.service(id).name
                        );
                    }
                    if msg.ready {
                        let now = self.now();
                        let a = self.core.handle(now, Event::Ready { svc: id });
                        self.execute(a);
                    }
                }
                Err(_) => self.rt[id.0].notify_rejected += 1,
            }
        }
    }

    /// Only the service's own processes may notify for it: its main process or a member of
    /// its session (the service runs in a session of its own).
    fn sender_belongs(&self, id: SvcId, sender: Option<i32>) -> bool {
        let (Some(sender), Some(main)) = (sender, self.rt[id.0].pid) else {
            return false;
        };
        if sender == main {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{sender}/stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        // Fields after ')': state ppid pgrp session …
        rest.split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<i32>().ok())
            == Some(main)
    }

    fn on_ready_fd(&mut self, id: SvcId) {
        self.resolve_exec(id);
        let mut buf = [0u8; 256];
        let Some(fd) = &self.rt[id.0].ready_fd else {
            return;
        };
        let now = self.now();
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => {
                self.cancel_readiness(id);
                let a = self.core.handle(
                    now,
                    Event::ReadinessFailed {
                        svc: id,
                        reason: "ready fd closed without a newline".into(),
                    },
                );
                self.execute(a);
            }
            Ok(n) if buf[..n].contains(&b'\n') => {
                self.cancel_readiness(id);
                let a = self.core.handle(now, Event::Ready { svc: id });
                self.execute(a);
            }
            _ => {}
        }
    }

    /// Runs every polled probe that is due.
    fn run_probes(&mut self) {
        let due: Vec<SvcId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.running.is_none() && p.next <= Instant::now())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(cfg) = self.core.service(id).cfg.clone() else {
                continue;
            };
            let Some(p) = self.probes.get_mut(&id) else {
                continue;
            };
            p.next = Instant::now() + p.interval;
            if p.kind == ProbeKind::MainPid {
                if let Some(pid) = self.find_daemon(id, &cfg) {
                    self.probes.remove(&id);
                    self.adopt_main(id, pid);
                    // Readiness of its own, if any, is polled from now on.
                    if let Readiness::TcpPort { .. } | Readiness::Exec { .. } = cfg.readiness.kind {
                        let interval = match cfg.readiness.kind {
                            Readiness::Exec { interval, .. } => interval,
                            _ => Duration::from_millis(100),
                        };
                        self.probes.insert(
                            id,
                            Probe {
                                kind: ProbeKind::Readiness,
                                next: Instant::now(),
                                interval,
                                running: None,
                            },
                        );
                    }
                }
                continue;
            }
            match &cfg.readiness.kind {
                Readiness::TcpPort { port, host } => {
                    let addr = std::net::SocketAddr::new(*host, *port);
                    // Loopback connects complete at once; the timeout only bounds odd hosts.
                    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50))
                        .is_ok()
                    {
                        self.probes.remove(&id);
                        let now = self.now();
                        let a = self.core.handle(now, Event::Ready { svc: id });
                        self.execute(a);
                    }
                }
                Readiness::Exec { check_exec, .. } => {
                    match launch::launch_helper(check_exec, &cfg, &self.paths) {
                        Ok(child) => {
                            p.running = Some(child.pid);
                            self.helpers.insert(child.pid, (id, "check-exec"));
                        }
                        Err(e) => {
                            self.probes.remove(&id);
                            let now = self.now();
                            let a = self.core.handle(
                                now,
                                Event::ReadinessFailed {
                                    svc: id,
                                    reason: format!("check-exec: {e}"),
                                },
                            );
                            self.execute(a);
                        }
                    }
                }
                _ => {
                    self.probes.remove(&id);
                }
            }
        }
    }

    /// A forking service's daemon: the PID in its pidfile, else the single untracked child
    /// the starter left behind (reparented to us, the subreaper).
    fn find_daemon(&self, id: SvcId, cfg: &dynamod_config::ServiceConfig) -> Option<i32> {
        if let Some(pidfile) = &cfg.pidfile {
            let text = std::fs::read_to_string(pidfile).ok()?;
            let pid: i32 = text.trim().parse().ok()?;
            return (pid > 1 && process::pidfd_open(pid).is_ok()).then_some(pid);
        }
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if self.pids.contains_key(&pid) || self.helpers.contains_key(&pid) {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.first() != Some(&"Z") && f.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(me) {
                found.push(pid);
            }
        }
        let _ = id;
        (found.len() == 1).then(|| found[0])
    }

    /// Makes `pid` the service's main process.
    fn adopt_main(&mut self, id: SvcId, pid: i32) {
        let Ok(pidfd) = process::pidfd_open(pid) else {
            return;
        };
        self.pids.insert(pid, id);
        let rt = &mut self.rt[id.0];
        rt.pid = Some(pid);
        rt.pidfd = Some(pidfd);
        rt.start_time = process::start_time_ticks(std::path::Path::new("/proc"), pid).unwrap_or(0);
        tracing::info!(
            "service '{}' has main process {pid}",
            self.core.service(id).name
        );
        let now = self.now();
        let a = self.core.handle(now, Event::MainPid { svc: id, pid });
        self.execute(a);
    }

    // ---- control clients ----------------------------------------------------------------

    fn accept_clients(&mut self) {
        loop {
            let (stream, _) = match self.control.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let live = self.clients.iter().filter(|c| c.is_some()).count();
            if live >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                continue;
            }
            let cred =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials);
            let uid = cred.map(|c| c.uid()).unwrap_or(u32::MAX);
            let slot = match self.clients.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    self.clients.push(None);
                    self.clients.len() - 1
                }
            };
            if self
                .epoll
                .add(
                    &stream,
                    EpollEvent::new(EpollFlags::EPOLLIN, T_CLIENT | slot as u64),
                )
                .is_err()
            {
                continue;
            }
            self.clients[slot] = Some(Client::new(stream, uid));
        }
    }

    fn on_client(&mut self, slot: usize, flags: EpollFlags) {
        let Some(Some(client)) = self.clients.get_mut(slot) else {
            return;
        };
        let mut closed = client.read_in();
        if flags.contains(EpollFlags::EPOLLHUP) && !flags.contains(EpollFlags::EPOLLIN) {
            closed = true;
        }
        if !closed {
            closed = self.serve_client(slot);
        }
        self.flush_client(slot, closed);
    }

    /// Handles every complete request of a client (one at a time while a job is pending).
    /// Returns true when the client must be dropped.
    fn serve_client(&mut self, slot: usize) -> bool {
        loop {
            if self.jobs.iter().any(|j| j.client == slot) {
                return false;
            }
            let req = match self.clients[slot].as_mut().map(Client::next_request) {
                Some(Ok(Some(r))) => r,
                Some(Ok(None)) | None => return false,
                Some(Err(msg)) => {
                    if let Some(c) = self.clients[slot].as_mut() {
                        c.send(&dynamod_proto::Response::Error {
                            kind: dynamod_proto::ErrorKind::Protocol,
                            message: msg,
                        });
                        c.close_after_flush = true;
                    }
                    return false;
                }
            };
            let resp = self.handle_request(slot, req);
            if let Some(resp) = resp
                && let Some(c) = self.clients[slot].as_mut()
            {
                c.send(&resp);
            }
        }
    }

    pub(crate) fn flush_client(&mut self, slot: usize, mut closed: bool) {
        if let Some(Some(c)) = self.clients.get_mut(slot) {
            match c.flush() {
                Ok(true) => {
                    let _ = self.epoll.modify(
                        &c.stream,
                        &mut EpollEvent::new(
                            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
                            T_CLIENT | slot as u64,
                        ),
                    );
                }
                Ok(false) => {
                    let _ = self.epoll.modify(
                        &c.stream,
                        &mut EpollEvent::new(EpollFlags::EPOLLIN, T_CLIENT | slot as u64),
                    );
                    if c.close_after_flush {
                        closed = true;
                    }
                }
                Err(()) => closed = true,
            }
        }
        if closed && let Some(c) = self.clients[slot].take() {
            let _ = self.epoll.delete(&c.stream);
            self.jobs.retain(|j| j.client != slot);
        }
    }

    fn flush_clients(&mut self) {
        for slot in 0..self.clients.len() {
            if let Some(c) = self.clients[slot].as_mut() {
                let _ = c.stream.set_nonblocking(false);
                let _ = c.stream.set_write_timeout(Some(Duration::from_millis(500)));
                let _ = c.flush();
            }
        }
    }

    pub(crate) fn add_job(&mut self, job: Job) {
        self.jobs.push(job);
    }

    fn check_jobs(&mut self) {
        let mut i = 0;
        while i < self.jobs.len() {
            let Some(resp) = self.job_result(&self.jobs[i]) else {
                i += 1;
                continue;
            };
            let job = self.jobs.remove(i);
            let slot = job.client;
            if let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) {
                c.send(&resp);
            }
            // The client may have more requests queued behind this one.
            let closed = self.serve_client(slot);
            self.flush_client(slot, closed);
        }
    }

    /// Re-reads the configuration and applies the difference.
    pub(crate) fn reload(&mut self) -> dynamod_core::ReloadSummary {
        tracing::info!("reloading configuration");
        let config = load_config(&self.opts);
        let now = self.now();
        let (summary, actions) = self.core.reload(now, &config);
        self.rt.resize_with(self.core.slots(), SvcRt::default);
        // Services may have come and gone: write the state file afresh.
        self.journal = crate::state::Journal::new(self.opts.runtime.join("state"));
        self.state_dirty = true;
        self.execute(actions);
        summary
    }

    /// cgroup figures for `status`: live usage while the service has a cgroup, and the OOM kills
    /// counted across its restarts.
    pub(crate) fn cgroup_usage(&self, id: SvcId) -> Option<dynamod_proto::CgroupUsage> {
        let rt = &self.rt[id.0];
        let mut usage = match &rt.cgroup {
            Some(cg) => crate::cgroup::usage(cg),
            None if rt.oom_kills > 0 => dynamod_proto::CgroupUsage::default(),
            None => return None,
        };
        let live = usage.oom_kills.unwrap_or(0).saturating_sub(rt.oom_baseline);
        if rt.oom_kills + live > 0 || usage.oom_kills.is_some() {
            usage.oom_kills = Some(rt.oom_kills + live);
        }
        Some(usage)
    }

    /// The peer uid of a control client (`u32::MAX` when unknown).
    pub(crate) fn client_uid(&self, slot: usize) -> u32 {
        self.clients
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(u32::MAX, |c| c.uid)
    }

    /// An operator asked for a system shutdown.
    pub(crate) fn request_shutdown(&mut self, kind: ShutdownKind) -> Vec<Action> {
        let finish = if self.init.is_some() {
            Finish::RequestFromInit(kind, None)
        } else {
            Finish::Exit(0)
        };
        self.begin_shutdown(finish)
    }
}

/// The key under which init holds a pipe's read end.
fn pipe_key(service: &str, stream: Stream, pid: i32) -> String {
    let s = match stream {
        Stream::Out => "out",
        Stream::Err => "err",
    };
    format!("{service}\t{s}\t{pid}")
}

/// `recvmsg` on the init socket, keeping any fds passed with SCM_RIGHTS.
fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> std::io::Result<usize> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 253]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let n = msg.bytes;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(received) = c {
                fds.extend(received.into_iter().map(dynamod_sys::fd::own_received));
            }
        }
    }
    Ok(n)
}

impl Runtime {
    /// Asks init to hold copies of these pipe read ends (see [`SvmgrMsg::Park`]).
    fn park(&mut self, fds: Vec<(String, OwnedFd)>) {
        if fds.is_empty() {
            return;
        }
        self.flush_init();
        let Some(link) = &mut self.init else { return };
        let (keys, fds): (Vec<String>, Vec<OwnedFd>) = fds.into_iter().unzip();
        let Ok(frame) = dynamod_proto::encode(&SvmgrMsg::Park { keys }) else {
            return;
        };
        let raw: Vec<std::os::fd::RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&raw)];
        if !link.out.is_empty() {
            // Earlier bytes are still queued: a frame with fds cannot overtake them.
            let _ = link.stream.set_nonblocking(false);
            let _ = link.stream.write_all(&link.out);
            link.out.clear();
            let _ = link.stream.set_nonblocking(true);
        }
        match nix::sys::socket::sendmsg::<()>(
            link.stream.as_raw_fd(),
            &[std::io::IoSlice::new(&frame)],
            &cmsg,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => link.out.extend_from_slice(&frame[n..]),
            Err(e) => tracing::warn!("cannot park pipes with init: {e}"),
        }
        self.flush_init();
    }

    /// init handed parked pipe ends back: attach those of services still configured.
    fn reclaimed(&mut self, keys: Vec<String>, fds: Vec<OwnedFd>) {
        for (key, fd) in keys.into_iter().zip(fds) {
            let mut f = key.split('\t');
            let (Some(name), Some(stream), Some(pid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let stream = if stream == "err" {
                Stream::Err
            } else {
                Stream::Out
            };
            let pid: i32 = pid.parse().unwrap_or(0);
            let already = self
                .pipes
                .iter()
                .flatten()
                .any(|p| p.parked.as_deref() == Some(key.as_str()));
            match self.core.lookup(name) {
                Some(svc) if !already => {
                    let _ = nix::fcntl::fcntl(
                        &fd,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    let parked = self.init.is_some().then_some(key);
                    self.add_pipe(fd, svc, pid, stream, parked);
                }
                Some(_) => {}
                None => self.send_init(&SvmgrMsg::Unpark { keys: vec![key] }),
            }
        }
    }

    /// Restores what a previous svmgr left in the state file: running processes are adopted
    /// (same PID and start time), completed oneshots stay done, operator stops stay stopped.
    fn restore(&mut self) {
        // Pipes handed over by our own previous incarnation (in-place re-exec).
        if let Ok(list) = std::env::var("DYNAMOD_REEXEC_PIPES") {
            let mut keys = Vec::new();
            let mut fds = Vec::new();
            for item in list.split('\n').filter(|l| !l.is_empty()) {
                let Some((fd, key)) = item.split_once('=') else {
                    continue;
                };
                let Ok(fd) = fd.parse::<i32>() else { continue };
                if let Ok(owned) = dynamod_sys::fd::take_inherited(fd) {
                    keys.push(key.to_owned());
                    fds.push(owned);
                }
            }
            self.reclaimed(keys, fds);
        }
        let path = self.opts.runtime.join("state");
        let entries = crate::state::load(&path);
        if entries.is_empty() {
            return;
        }
        let now = self.now();
        let mut adopted = 0;
        for e in entries {
            let Some(svc) = self.core.lookup(&e.name) else {
                continue;
            };
            let what = match e.state.as_str() {
                "running" => {
                    let alive = e.pid > 1
                        && process::start_time_ticks(std::path::Path::new("/proc"), e.pid).ok()
                            == Some(e.start_time);
                    let Some(pidfd) = alive.then(|| process::pidfd_open(e.pid).ok()).flatten()
                    else {
                        continue;
                    };
                    let token = T_PIDFD | e.pid as u64;
                    if self
                        .epoll
                        .add(&pidfd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                        .is_err()
                    {
                        continue;
                    }
                    self.pids.insert(e.pid, svc);
                    self.adopted.insert(e.pid, svc);
                    let rt = &mut self.rt[svc.0];
                    rt.pid = Some(e.pid);
                    rt.pidfd = Some(pidfd);
                    rt.since_wall = Some(SystemTime::now());
                    rt.cgroup = e.cgroup.clone();
                    rt.start_time = e.start_time;
                    if let Some(cg) = &e.cgroup {
                        rt.oom_baseline = crate::cgroup::oom_kills(cg).unwrap_or(0);
                    }
                    adopted += 1;
                    dynamod_core::Restored::Running {
                        pid: e.pid,
                        ready: e.ready,
                        restarts: e.restarts,
                    }
                }
                "done" => dynamod_core::Restored::Done,
                "stopped" => dynamod_core::Restored::Stopped,
                "failed" => {
                    dynamod_core::Restored::Failed("failed before dynamod-svmgr restarted".into())
                }
                _ => continue,
            };
            self.core.restore(now, svc, what);
        }
        if adopted > 0 {
            tracing::info!("adopted {adopted} running service(s) from the previous dynamod-svmgr");
        }
    }

    /// Saves the state and replaces this process with the svmgr binary on disk; returns only on
    /// failure. Children stay our children (same PID); pipes come back from init (parked).
    fn exec_self(&mut self) -> std::io::Error {
        self.state_dirty = true;
        self.save_state();
        self.flush_init();
        let args: Vec<std::ffi::CString> = std::env::args_os()
            .filter_map(|a| {
                std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok()
            })
            .collect();
        let Some(program) = args.first().cloned() else {
            return std::io::Error::other("no argv[0]");
        };
        if let Some(link) = &self.init
            && let Err(e) = dynamod_sys::fd::keep_across_exec(&link.stream)
        {
            return e;
        }
        tracing::info!("re-executing {}", program.to_string_lossy());
        // Output pipes cross the exec as inherited fds, listed in DYNAMOD_REEXEC_PIPES.
        let mut pipes = Vec::new();
        for p in self.pipes.iter().flatten() {
            let name = &self.core.service(p.svc).name;
            let key = p
                .parked
                .clone()
                .unwrap_or_else(|| pipe_key(name, p.stream, p.pid));
            if dynamod_sys::fd::keep_across_exec(&p.fd).is_ok() {
                pipes.push(format!("{}={key}", p.fd.as_raw_fd()));
            }
        }
        let mut env: Vec<std::ffi::CString> = std::env::vars_os()
            .filter(|(k, _)| k != "DYNAMOD_REEXEC_PIPES")
            .filter_map(|(k, v)| {
                let mut b = std::os::unix::ffi::OsStrExt::as_bytes(k.as_os_str()).to_vec();
                b.push(b'=');
                b.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
                std::ffi::CString::new(b).ok()
            })
            .collect();
        if let Ok(c) = std::ffi::CString::new(format!("DYNAMOD_REEXEC_PIPES={}", pipes.join("\n")))
        {
            env.push(c);
        }
        match nix::unistd::execve(&program, &args, &env) {
            Err(e) => {
                if let Some(link) = &self.init {
                    let _ = nix::fcntl::fcntl(
                        &link.stream,
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                    );
                }
                std::io::Error::from(e)
            }
        }
    }

    /// What the state file must say of one service now.
    fn persisted_now(&self, id: SvcId, s: &dynamod_core::Service) -> Persisted {
        let rt = &self.rt[id.0];
        let state = match s.state() {
            dynamod_proto::ServiceState::Running | dynamod_proto::ServiceState::Starting => {
                "running"
            }
            dynamod_proto::ServiceState::Done => "done",
            dynamod_proto::ServiceState::Stopped if !s.boot_wanted => "stopped",
            dynamod_proto::ServiceState::Failed => "failed",
            _ => "gone",
        };
        let pid = rt.pid.unwrap_or(0);
        let state = if state == "running" && pid == 0 {
            "gone"
        } else {
            state
        };
        Persisted {
            state,
            pid,
            start_time: if pid > 0 { rt.start_time } else { 0 },
            restarts: s.restarts,
            ready: s.state() == dynamod_proto::ServiceState::Running,
        }
    }

    fn state_line(&self, id: SvcId, name: &str, p: &Persisted, out: &mut String) {
        let entry = crate::state::Entry {
            name: name.to_owned(),
            state: p.state.to_owned(),
            pid: p.pid,
            start_time: p.start_time,
            restarts: p.restarts,
            ready: p.ready,
            cgroup: self.rt[id.0].cgroup.clone(),
        };
        out.push_str(&entry.format());
        out.push('\n');
    }

    /// Brings the state file up to date when something changed: the lines of the services whose
    /// entry changed are appended; the whole file is rewritten at the first save and when the
    /// journal has grown past a few times the number of services.
    fn save_state(&mut self) {
        if !self.state_dirty {
            return;
        }
        self.state_dirty = false;
        let n = self.core.services().count();
        self.persisted.resize(self.core.slots(), None);
        let rewrite = !self.journal.is_open() || self.journal.lines() > 4 * n + 64;
        let mut text = String::new();
        for (id, s) in self.core.services() {
            let now = self.persisted_now(id, s);
            if rewrite {
                if now.state != "gone" {
                    self.state_line(id, &s.name, &now, &mut text);
                }
            } else if self.persisted[id.0].as_ref() != Some(&now)
                && (now.state != "gone" || self.persisted[id.0].is_some())
            {
                self.state_line(id, &s.name, &now, &mut text);
            }
            self.persisted[id.0] = (now.state != "gone").then_some(now);
        }
        let r = if rewrite {
            self.journal.rewrite(&text)
        } else if text.is_empty() {
            Ok(())
        } else {
            self.journal.append(&text)
        };
        match r {
            Ok(()) => self.state_failing = false,
            Err(e) => {
                if !self.state_failing {
                    tracing::warn!("cannot save state: {e}");
                }
                self.state_failing = true;
                // A full rewrite at the next change.
                self.journal = crate::state::Journal::new(self.opts.runtime.join("state"));
            }
        }
    }

    /// An adopted process (not our child) exited: its status comes from init.
    fn on_adopted_exit(&mut self, pid: i32) {
        let Some(svc) = self.adopted.remove(&pid) else {
            return;
        };
        if let Some(fd) = self.rt[svc.0].pidfd.as_ref() {
            let _ = self.epoll.delete(fd);
        }
        match self.orphan_status.remove(&pid) {
            Some(status) => self.adopted_gone(pid, svc, status),
            None => {
                self.awaiting_status
                    .insert(pid, (svc, Instant::now() + Duration::from_secs(2)));
            }
        }
    }

    fn orphan_exited(&mut self, pid: i32, status: ExitStatus) {
        if let Some((svc, _)) = self.awaiting_status.remove(&pid) {
            self.adopted_gone(pid, svc, status);
        } else if self.adopted.contains_key(&pid) {
            self.orphan_status.insert(pid, status);
        }
    }

    fn expire_awaiting(&mut self) {
        let now = Instant::now();
        let late: Vec<(i32, SvcId)> = self
            .awaiting_status
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(pid, (svc, _))| (*pid, *svc))
            .collect();
        for (pid, svc) in late {
            self.awaiting_status.remove(&pid);
            tracing::warn!(
                "exit status of adopted process {pid} ('{}') is unknown",
                self.core.service(svc).name
            );
            self.adopted_gone(pid, svc, ExitStatus::Exited(255));
        }
    }

    fn adopted_gone(&mut self, pid: i32, svc: SvcId, status: ExitStatus) {
        if self.pids.get(&pid) == Some(&svc) {
            // The same path as our own children's exits, minus the reaping init already did.
            self.on_exit(pid, status);
        }
    }
}

fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

// ---- added for dynamodctl ----
impl Runtime {
    /// The group whose members may change things over the control socket (`--control-group`).
    pub(crate) fn control_group(&self) -> Option<u32> {
        self.opts.control_group
    }

    /// A connected control client.
    pub(crate) fn client_mut(&mut self, slot: usize) -> Option<&mut Client> {
        self.clients.get_mut(slot).and_then(Option::as_mut)
    }
}
