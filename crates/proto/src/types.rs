//! Message types. Every type here is part of the wire format: add fields with
//! `#[serde(default)]`, never rename or remove one without bumping
//! [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).

use serde::{Deserialize, Serialize};

/// First frame of every connection, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    pub version: u16,
    /// Who is speaking: `dynamod-init`, `dynamod-svmgr`, `dynamodctl`, `dynamod-logd`, ….
    pub peer: String,
}

impl Hello {
    /// A hello for this build's protocol version.
    pub fn new(peer: &str) -> Self {
        Self {
            version: crate::PROTOCOL_VERSION,
            peer: peer.to_owned(),
        }
    }
}

/// What kind of system shutdown is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownKind {
    /// Power the machine off (in a container: stop and exit).
    Poweroff,
    /// Reboot the machine.
    Reboot,
    /// Halt without powering off.
    Halt,
}

impl ShutdownKind {
    /// The word used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Halt => "halt",
        }
    }
}

/// How a process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
        }
    }
}

/// init → svmgr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitMsg {
    /// Handshake.
    Hello(Hello),
    /// Liveness beat; svmgr answers with [`SvmgrMsg::HeartbeatAck`].
    Heartbeat,
    /// Answer to [`SvmgrMsg::Heartbeat`].
    HeartbeatAck,
    /// Stop every service in reverse dependency order, then answer
    /// [`SvmgrMsg::ShutdownComplete`].
    Shutdown {
        /// What init will do afterwards (for the log).
        kind: ShutdownKind,
    },
    /// Re-read the configuration (SIGHUP to PID 1).
    Reload,
    /// Answer to [`SvmgrMsg::Reclaim`]: pipe read ends init holds for svmgr, one fd per key,
    /// in order, attached to this frame as `SCM_RIGHTS`.
    Parked {
        /// The keys given with [`SvmgrMsg::Park`].
        keys: Vec<String>,
    },
    /// init reaped a process that had been a child of a previous svmgr.
    OrphanExited {
        /// Its PID.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
    },
}

/// svmgr → init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SvmgrMsg {
    /// Handshake.
    Hello(Hello),
    /// Liveness beat; init answers with [`InitMsg::HeartbeatAck`].
    Heartbeat,
    /// Answer to [`InitMsg::Heartbeat`].
    HeartbeatAck,
    /// Services are stopped; init should now shut the system down.
    RequestShutdown {
        /// Poweroff, reboot or halt.
        kind: ShutdownKind,
        /// In a container: the exit status PID 1 should end with (the main service's, §2.8).
        exit_code: Option<i32>,
    },
    /// Answer to [`InitMsg::Shutdown`]: every service is stopped.
    ShutdownComplete,
    /// Keep these fds (service output pipes' read ends, attached as `SCM_RIGHTS`, one per key)
    /// so the pipes outlive svmgr: a restarted svmgr reclaims them and a service never writes
    /// into a pipe nobody holds.
    Park {
        /// One key per fd: `service\tstream\tpid`.
        keys: Vec<String>,
    },
    /// Drop the parked fds with these keys (the pipe reached end of file).
    Unpark {
        /// Keys given with [`SvmgrMsg::Park`].
        keys: Vec<String>,
    },
    /// Send every parked fd back ([`InitMsg::Parked`]); sent by a (re)started svmgr.
    Reclaim,
}

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Handshake.
    Hello(Hello),
    /// Every service, one summary each.
    List,
    /// The supervisor tree.
    Tree,
    /// Details of the named services, in the order asked for; every service (sorted by name)
    /// when `names` is empty.
    Status {
        /// Service names.
        names: Vec<String>,
    },
    /// Start the named services and (unless `no_block`) answer once each is ready or failed.
    Start {
        /// Service names.
        names: Vec<String>,
        /// Answer as soon as the request is accepted.
        #[serde(default)]
        no_block: bool,
    },
    /// Stop the named services; they stay stopped until started again.
    Stop {
        /// Service names.
        names: Vec<String>,
        /// Answer as soon as the request is accepted.
        #[serde(default)]
        no_block: bool,
    },
    /// Stop then start the named services.
    Restart {
        /// Service names.
        names: Vec<String>,
        /// Answer as soon as the request is accepted.
        #[serde(default)]
        no_block: bool,
    },
    /// Re-read the configuration and apply the difference.
    Reload,
    /// Stop everything and ask init to power off, reboot or halt.
    Shutdown {
        /// What to do at the end.
        kind: ShutdownKind,
    },
    /// Overall state: start-up finished, counts by state.
    SystemState,
    /// Replace the running svmgr with the binary on disk (an in-place upgrade) without
    /// disturbing services: same PID, services adopted from the state file.
    Reexec,
}

/// Why a request failed; maps onto `dynamodctl`'s exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A name that no service has.
    UnknownService,
    /// The peer may only read.
    PermissionDenied,
    /// The request makes no sense in the current state (e.g. starting an invalid service).
    Invalid,
    /// The operation was attempted and failed (e.g. the service failed to become ready).
    Failed,
    /// The peer spoke another protocol version or sent garbage.
    Protocol,
}

/// An answer on the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Handshake.
    Hello(Hello),
    /// The request was carried out; `message` says what happened, for people.
    Done {
        /// One line per affected service.
        message: String,
    },
    /// Answer to [`Request::List`].
    List(Vec<ServiceSummary>),
    /// Answer to [`Request::Tree`].
    Tree(TreeNode),
    /// Answer to [`Request::Status`].
    Status(Vec<ServiceDetail>),
    /// Answer to [`Request::SystemState`].
    SystemState(SystemState),
    /// The request failed.
    Error {
        /// Machine-readable class.
        kind: ErrorKind,
        /// Human-readable explanation, lowercase, no final period.
        message: String,
    },
}

/// The state of one service as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Not running and not wanted up (never started, or stopped by an operator).
    Stopped,
    /// Wanted up, waiting for its dependencies.
    Waiting,
    /// Spawned, waiting for readiness.
    Starting,
    /// Running and ready.
    Running,
    /// Being stopped.
    Stopping,
    /// Exited; a restart is scheduled after a delay.
    Restarting,
    /// A oneshot that completed successfully.
    Done,
    /// Gave up: crashed past its intensity, readiness timed out, or spawn failed.
    Failed,
    /// Cannot start because a required dependency failed, is invalid or blocked.
    Blocked,
    /// Its configuration file is invalid.
    Invalid,
}

impl ServiceState {
    /// Lowercase name as shown by `dynamodctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Waiting => "waiting",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Restarting => "restarting",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Invalid => "invalid",
        }
    }
}

/// One line of `dynamodctl list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Current state.
    pub state: ServiceState,
    /// Main PID while a process runs.
    pub pid: Option<i32>,
    /// Supervisor it belongs to.
    pub supervisor: String,
    /// `simple`, `oneshot`, `forking` or `notify` (empty for an invalid file).
    pub kind: String,
    /// Why it is blocked, failed or invalid.
    pub reason: Option<String>,
}

/// The last exit of a service's main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// How it ended.
    pub status: ExitStatus,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Resource usage read from the service's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CgroupUsage {
    /// `memory.current`, bytes.
    pub memory_current: Option<u64>,
    /// `memory.peak`, bytes.
    pub memory_peak: Option<u64>,
    /// `cpu.stat` `usage_usec`.
    pub cpu_usec: Option<u64>,
    /// `pids.current`, or the number of PIDs in `cgroup.procs`.
    pub tasks: Option<u64>,
    /// `memory.events` `oom_kill`.
    pub oom_kills: Option<u64>,
}

/// Everything `dynamodctl status NAME` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDetail {
    /// The same fields as in `list`.
    pub summary: ServiceSummary,
    /// The configuration file it was loaded from.
    pub file: Option<String>,
    /// The command line.
    pub exec: Vec<String>,
    /// Restart policy: `permanent`, `transient` or `temporary`.
    pub restart_policy: String,
    /// Readiness type and whether it was reached.
    pub readiness: String,
    /// Milliseconds since the current process started (or since it became done/failed).
    pub since_ms: Option<u64>,
    /// Wall-clock time of the last state change, milliseconds since the Unix epoch.
    pub since_unix_ms: Option<u64>,
    /// Automatic restarts so far.
    pub restarts: u32,
    /// Milliseconds until the next automatic restart, while one is scheduled.
    pub next_restart_ms: Option<u64>,
    /// The last exit of its main process.
    pub last_exit: Option<ExitInfo>,
    /// Path of its cgroup, if it has one.
    pub cgroup: Option<String>,
    /// Usage read from that cgroup.
    pub usage: Option<CgroupUsage>,
    /// The most recent lines of output.
    pub recent_logs: Vec<String>,
    /// Lines dropped because the log buffer overflowed.
    pub log_dropped: u64,
    /// Names it requires, wants, comes after.
    pub requires: Vec<String>,
    /// Soft dependencies.
    pub wants: Vec<String>,
    /// Ordering-only dependencies (including reversed `before` of others).
    pub after: Vec<String>,
    /// When the current process was spawned, milliseconds since svmgr started (its monotonic
    /// clock); `None` when no process was spawned since the last stop.
    #[serde(default)]
    pub spawned_ms: Option<u64>,
    /// When the current process became ready (a oneshot: completed), milliseconds since svmgr
    /// started; `None` while it is not ready.
    #[serde(default)]
    pub ready_ms: Option<u64>,
}

/// A node of the supervisor tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Supervisor or service name.
    pub name: String,
    /// What this node is.
    pub node: NodeKind,
    /// Children in start order (supervisors only).
    pub children: Vec<TreeNode>,
}

/// Supervisor or service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A supervisor.
    Supervisor {
        /// `one-for-one`, `one-for-all` or `rest-for-one`.
        strategy: String,
        /// `running` or `failed`.
        state: String,
    },
    /// A service.
    Service {
        /// Its state.
        state: ServiceState,
        /// Main PID while a process runs.
        pid: Option<i32>,
    },
}

/// Overall state of the service manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemState {
    /// `starting`, `running`, `degraded` (something failed) or `stopping`.
    pub state: String,
    /// Start-up has finished (every service ready, done, failed or blocked).
    pub startup_complete: bool,
    /// Services per state.
    pub counts: Vec<(ServiceState, u32)>,
    /// Milliseconds since svmgr started.
    pub uptime_ms: u64,
}

/// svmgr ↔ logd on `log.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogMsg {
    /// Handshake.
    Hello(Hello),
    /// svmgr → logd: records to store, in order.
    Records(Vec<LogRecord>),
    /// logd → svmgr: every record up to and including `seq` is stored.
    Ack {
        /// Highest stored sequence number.
        seq: u64,
    },
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// One line of a service's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// svmgr-wide increasing sequence number.
    pub seq: u64,
    /// Service name.
    pub service: String,
    /// Writer's PID (the service's main PID when the line was read).
    pub pid: i32,
    /// stdout or stderr.
    pub stream: Stream,
    /// Microseconds since the Unix epoch when svmgr read it.
    pub time_us: u64,
    /// The bytes, without the trailing newline; may be partial or non-UTF-8.
    #[serde(with = "serde_bytes_compat")]
    pub line: Vec<u8>,
    /// Set when this is not a complete line (no newline before EOF or the length cap).
    #[serde(default)]
    pub partial: bool,
}

/// A request on dynamod-logd's query socket (`/run/dynamod/logd.sock`, next to `log.sock`).
///
/// The exchange: [`LogRequest::Hello`] and [`LogReply::Hello`], then one [`LogRequest::Query`].
/// logd answers with [`LogReply::Records`] batches (oldest first; several services interleaved
/// by time), then [`LogReply::End`]. Without `follow` it closes the connection after `End`;
/// with `follow` it keeps sending `Records` as new lines are stored, until the client hangs up.
/// Anyone who can connect may read (like `dynamodctl status`, which shows recent lines too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRequest {
    /// Handshake.
    Hello(Hello),
    /// What to read.
    Query(LogQuery),
}

/// Which records a [`LogRequest::Query`] asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogQuery {
    /// Service names; every service when empty.
    pub services: Vec<String>,
    /// Only the last this many records (of the whole answer).
    #[serde(default)]
    pub lines: Option<u64>,
    /// Only records read at or after this time, microseconds since the Unix epoch.
    #[serde(default)]
    pub since_us: Option<u64>,
    /// Keep the connection open and send new records as they are stored.
    #[serde(default)]
    pub follow: bool,
}

/// An answer on dynamod-logd's query socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogReply {
    /// Handshake.
    Hello(Hello),
    /// Records, oldest first.
    Records(Vec<LogRecord>),
    /// Everything stored before the query has been sent; with `follow`, new records follow.
    End,
    /// The query was refused.
    Error {
        /// Machine-readable class ([`ErrorKind::UnknownService`] for a name logd never heard
        /// of).
        kind: ErrorKind,
        /// Human-readable explanation, lowercase, no final period.
        message: String,
    },
}

mod serde_bytes_compat {
    //! Encodes bytes as a MessagePack `bin` instead of an array of integers.
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameDecoder, encode};

    fn round_trip<T>(v: &T) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let mut d = FrameDecoder::new();
        d.push(&encode(v).unwrap());
        d.next().unwrap().unwrap()
    }

    #[test]
    fn log_record_keeps_binary_bytes() {
        let r = LogMsg::Records(vec![LogRecord {
            seq: 7,
            service: "x".into(),
            pid: 42,
            stream: Stream::Err,
            time_us: 1,
            line: vec![0, 0xff, b'\r', b'a'],
            partial: true,
        }]);
        assert_eq!(round_trip(&r), r);
    }

    #[test]
    fn every_response_variant_round_trips() {
        let summary = ServiceSummary {
            name: "syslog".into(),
            state: ServiceState::Running,
            pid: Some(12),
            supervisor: "root".into(),
            kind: "simple".into(),
            reason: None,
        };
        let detail = ServiceDetail {
            summary: summary.clone(),
            file: Some("/etc/dynamod/services/syslog.toml".into()),
            exec: vec!["/sbin/syslogd".into(), "-n".into()],
            restart_policy: "permanent".into(),
            readiness: "none".into(),
            since_ms: Some(5),
            since_unix_ms: Some(6),
            restarts: 1,
            next_restart_ms: None,
            last_exit: Some(ExitInfo {
                status: ExitStatus::Signaled(9),
                at_unix_ms: 3,
            }),
            cgroup: None,
            usage: Some(CgroupUsage::default()),
            recent_logs: vec!["hello".into()],
            log_dropped: 0,
            requires: vec![],
            wants: vec![],
            after: vec!["bootmisc".into()],
            spawned_ms: Some(10),
            ready_ms: None,
        };
        let all = [
            Response::Hello(Hello::new("dynamod-svmgr")),
            Response::Done {
                message: "ok".into(),
            },
            Response::List(vec![summary]),
            Response::Status(vec![detail]),
            Response::Tree(TreeNode {
                name: "root".into(),
                node: NodeKind::Supervisor {
                    strategy: "one-for-one".into(),
                    state: "running".into(),
                },
                children: vec![TreeNode {
                    name: "syslog".into(),
                    node: NodeKind::Service {
                        state: ServiceState::Running,
                        pid: Some(3),
                    },
                    children: vec![],
                }],
            }),
            Response::SystemState(SystemState {
                state: "running".into(),
                startup_complete: true,
                counts: vec![(ServiceState::Running, 2)],
                uptime_ms: 9,
            }),
            Response::Error {
                kind: ErrorKind::UnknownService,
                message: "no".into(),
            },
        ];
        for r in &all {
            assert_eq!(&round_trip(r), r);
        }
    }

    #[test]
    fn every_request_variant_round_trips() {
        let names = vec!["a".to_owned()];
        let all = [
            Request::Hello(Hello::new("dynamodctl")),
            Request::List,
            Request::Tree,
            Request::Status {
                names: names.clone(),
            },
            Request::Start {
                names: names.clone(),
                no_block: false,
            },
            Request::Stop {
                names: names.clone(),
                no_block: true,
            },
            Request::Restart {
                names,
                no_block: false,
            },
            Request::Reload,
            Request::Shutdown {
                kind: ShutdownKind::Halt,
            },
            Request::SystemState,
        ];
        for r in &all {
            assert_eq!(&round_trip(r), r);
        }
    }

    #[test]
    fn init_channel_messages_round_trip() {
        let all = [
            SvmgrMsg::Hello(Hello::new("dynamod-svmgr")),
            SvmgrMsg::Heartbeat,
            SvmgrMsg::HeartbeatAck,
            SvmgrMsg::RequestShutdown {
                kind: ShutdownKind::Poweroff,
                exit_code: Some(7),
            },
            SvmgrMsg::ShutdownComplete,
        ];
        for m in &all {
            assert_eq!(&round_trip(m), m);
        }
        let m = InitMsg::OrphanExited {
            pid: 5,
            status: ExitStatus::Exited(127),
        };
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn log_query_messages_round_trip() {
        let requests = [
            LogRequest::Hello(Hello::new("dynamodctl")),
            LogRequest::Query(LogQuery {
                services: vec!["web".into()],
                lines: Some(10),
                since_us: Some(5),
                follow: true,
            }),
            LogRequest::Query(LogQuery::default()),
        ];
        for r in &requests {
            assert_eq!(&round_trip(r), r);
        }
        let replies = [
            LogReply::Hello(Hello::new("dynamod-logd")),
            LogReply::Records(vec![LogRecord {
                seq: 1,
                service: "web".into(),
                pid: 2,
                stream: Stream::Out,
                time_us: 3,
                line: b"\x1b[1mhi\r".to_vec(),
                partial: false,
            }]),
            LogReply::End,
            LogReply::Error {
                kind: ErrorKind::UnknownService,
                message: "no".into(),
            },
        ];
        for r in &replies {
            assert_eq!(&round_trip(r), r);
        }
    }

    #[test]
    fn fields_added_later_default_when_an_older_peer_leaves_them_out() {
        #[derive(Serialize)]
        struct OldQuery {
            services: Vec<String>,
        }
        let mut d = FrameDecoder::new();
        d.push(&encode(&OldQuery { services: vec![] }).unwrap());
        let q: LogQuery = d.next().unwrap().unwrap();
        assert_eq!(q, LogQuery::default());
    }

    #[test]
    fn shell_code_adds_128_to_signals() {
        assert_eq!(ExitStatus::Signaled(9).shell_code(), 137);
        assert_eq!(ExitStatus::Exited(7).shell_code(), 7);
    }
}
