//! The validated configuration model. Everything here is plain data with defaults applied;
//! parsing and validation live in the sibling modules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The name of the supervisor that always exists.
pub const ROOT_SUPERVISOR: &str = "root";

/// One validated `[service]` file.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// `[service] name`; `[a-z0-9][a-z0-9._@-]*`, at most 64 bytes.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// `[service] supervisor`, default `root`.
    pub supervisor: String,
    /// `[service] exec`: program and arguments (non-empty).
    pub exec: Vec<String>,
    /// `[service] workdir`.
    pub workdir: Option<PathBuf>,
    /// `[service] type`.
    pub kind: ServiceType,
    /// `[service] environment`.
    pub environment: BTreeMap<String, String>,
    /// `[service] environment-file`.
    pub environment_file: Option<PathBuf>,
    /// `[service] pidfile` (forking services).
    pub pidfile: Option<PathBuf>,
    /// `[service] tty`: a terminal to attach as stdin/stdout/stderr and controlling terminal.
    pub tty: Option<PathBuf>,
    /// `[service] main`: the container's main service (SPEC §2.8).
    pub main: bool,
    /// `[service.user]`.
    pub user: Option<UserSpec>,
    /// `[restart]`.
    pub restart: RestartConfig,
    /// `[readiness]`.
    pub readiness: ReadinessConfig,
    /// `[dependencies]`.
    pub deps: Dependencies,
    /// `[cgroup]`.
    pub cgroup: CgroupLimits,
    /// `[namespace]`.
    pub namespace: NamespaceConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[log]`.
    pub log: LogConfig,
}

/// `[service] type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Running once exec'd (readiness decides "ready").
    #[default]
    Simple,
    /// Ready when it exits 0.
    Oneshot,
    /// The started process forks the daemon and exits; the main PID comes from `pidfile`.
    Forking,
    /// Ready on `READY=1` over `$NOTIFY_SOCKET`.
    Notify,
}

impl ServiceType {
    /// The word used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Oneshot => "oneshot",
            Self::Forking => "forking",
            Self::Notify => "notify",
        }
    }
}

/// A user or group given by name or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// Resolved through `/etc/passwd` or `/etc/group` at start time.
    Name(String),
    /// Used as is.
    Id(u32),
}

/// `[service.user]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSpec {
    /// `user`.
    pub user: Option<IdSpec>,
    /// `group` (default: the user's primary group).
    pub group: Option<IdSpec>,
    /// `supplementary-groups` (added to the user's groups from `/etc/group`).
    pub supplementary_groups: Vec<IdSpec>,
}

/// `[restart] policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (non-zero code not in `success-exit-codes`, or a
    /// signal).
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartPolicy {
    /// The word used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Transient => "transient",
            Self::Temporary => "temporary",
        }
    }
}

/// `[restart]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartConfig {
    /// `policy`, default permanent.
    pub policy: RestartPolicy,
    /// `delay`, default 1 s: wait before the first restart.
    pub delay: Duration,
    /// `max-delay`, default 30 s (never below `delay`): cap of the doubling backoff.
    pub max_delay: Duration,
    /// `max-restarts`, default 5.
    pub max_restarts: u32,
    /// `max-restart-window`, default 60 s.
    pub max_restart_window: Duration,
    /// `reset-after`, default 60 s: healthy running time that resets the backoff.
    pub reset_after: Duration,
    /// `success-exit-codes`: extra exit codes that count as clean.
    pub success_exit_codes: Vec<i32>,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::Permanent,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_restarts: 5,
            max_restart_window: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
            success_exit_codes: Vec::new(),
        }
    }
}

/// `[readiness]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessConfig {
    /// `type` and its parameters.
    pub kind: Readiness,
    /// `timeout`, default 30 s.
    pub timeout: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            kind: Readiness::None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How a started service proves it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Readiness {
    /// Ready at exec (oneshot: at exit 0).
    #[default]
    None,
    /// `READY=1` on `$NOTIFY_SOCKET`.
    Notify,
    /// A TCP connect to `host:port` succeeds.
    TcpPort {
        /// `port`.
        port: u16,
        /// `host`, default `127.0.0.1`; may be `::1` or any literal address.
        host: std::net::IpAddr,
    },
    /// `check-exec` exits 0; retried every `interval` (default 1 s).
    Exec {
        /// `check-exec`.
        check_exec: Vec<String>,
        /// `interval`.
        interval: Duration,
    },
    /// A newline written to `$DYNAMOD_READY_FD`.
    Fd,
}

impl Readiness {
    /// The word used in files and output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Notify => "notify",
            Self::TcpPort { .. } => "tcp-port",
            Self::Exec { .. } => "exec",
            Self::Fd => "fd",
        }
    }
}

/// `[dependencies]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dependencies {
    /// Start after these are ready; blocked if one fails.
    pub requires: Vec<String>,
    /// Start after these are ready or have failed; unknown names are ignored.
    pub wants: Vec<String>,
    /// Ordering only.
    pub after: Vec<String>,
    /// Reverse ordering: these start after this one.
    pub before: Vec<String>,
}

/// A byte size or `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit (`max`).
    Max,
    /// This many bytes (or tasks, for `pids-max`).
    Value(u64),
}

/// `cpu-max`: quota and period in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// Microseconds per period, or `None` for `max`.
    pub quota_us: Option<u64>,
    /// Period in microseconds (default 100000).
    pub period_us: u64,
}

/// `[cgroup]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupLimits {
    /// `memory-max`.
    pub memory_max: Option<Limit>,
    /// `memory-high`.
    pub memory_high: Option<Limit>,
    /// `cpu-weight` (1–10000).
    pub cpu_weight: Option<u32>,
    /// `cpu-max`: `"50000 100000"`, `"50%"` or `"max"`.
    pub cpu_max: Option<CpuMax>,
    /// `pids-max`.
    pub pids_max: Option<Limit>,
    /// `io-weight` (1–10000).
    pub io_weight: Option<u32>,
}

impl CgroupLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A namespace a service can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// `pid`.
    Pid,
    /// `mnt`.
    Mnt,
    /// `net`.
    Net,
    /// `uts`.
    Uts,
    /// `ipc`.
    Ipc,
    /// `user`.
    User,
    /// `cgroup`.
    Cgroup,
}

/// `protect-system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectSystem {
    /// `/usr`, `/boot` and `/etc` read-only.
    Full,
    /// The whole file system read-only except `/dev`, `/proc`, `/sys`, `/run`, `/tmp` and
    /// writable bind mounts.
    Strict,
}

/// One `bind-mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the service's mount namespace.
    pub target: PathBuf,
    /// Read-write when true (default read-only).
    pub writable: bool,
}

/// `[namespace]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceConfig {
    /// `enable`, sorted, with `mnt` added when a mount option needs it.
    pub enable: Vec<Namespace>,
    /// `bind-mounts`.
    pub bind_mounts: Vec<BindMount>,
    /// `private-tmp`.
    pub private_tmp: bool,
    /// `protect-system`.
    pub protect_system: Option<ProtectSystem>,
}

/// A signal by number and canonical name (`SIGTERM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSpec {
    /// Signal number.
    pub number: i32,
    /// Canonical upper-case name with the `SIG` prefix.
    pub name: String,
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// `stop-signal`, default SIGTERM.
    pub stop_signal: SignalSpec,
    /// `stop-timeout`, default 10 s: then the whole cgroup/process group gets SIGKILL.
    pub stop_timeout: Duration,
    /// `stop-exec`: run instead of sending `stop-signal`.
    pub stop_exec: Option<Vec<String>>,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            stop_signal: SignalSpec {
                number: 15,
                name: "SIGTERM".to_owned(),
            },
            stop_timeout: Duration::from_secs(10),
            stop_exec: None,
        }
    }
}

/// `[log]`: per-service overrides of logd's rotation defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `max-size`: rotate when the file reaches this many bytes.
    pub max_size: Option<u64>,
    /// `max-files`: rotated files kept.
    pub max_files: Option<u32>,
}

/// `[supervisor] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Restart only the failed child.
    #[default]
    OneForOne,
    /// Stop all children (reverse start order) and start them again (start order).
    OneForAll,
    /// Restart the failed child and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The word used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneForOne => "one-for-one",
            Self::OneForAll => "one-for-all",
            Self::RestForOne => "rest-for-one",
        }
    }
}

/// One validated supervisor file (or the built-in root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// `[supervisor] name`.
    pub name: String,
    /// The file it came from (`None` for the built-in root).
    pub file: Option<PathBuf>,
    /// `parent`, default root; `None` only for root itself.
    pub parent: Option<String>,
    /// `strategy`.
    pub strategy: Strategy,
    /// `[restart] max-restarts`, default 10.
    pub max_restarts: u32,
    /// `[restart] max-restart-window`, default 300 s.
    pub max_restart_window: Duration,
}

impl SupervisorConfig {
    /// The root supervisor used when no file defines one.
    pub fn builtin_root() -> Self {
        Self {
            name: ROOT_SUPERVISOR.to_owned(),
            file: None,
            parent: None,
            strategy: Strategy::OneForOne,
            max_restarts: 10,
            max_restart_window: Duration::from_secs(300),
        }
    }
}
