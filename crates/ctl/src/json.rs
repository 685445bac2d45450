//! `--json` output: dynamodctl's own stable shapes, documented in `docs/operations.md`.
//!
//! These structs are deliberately separate from the wire types in `dynamod-proto`, so the
//! protocol can evolve without breaking scripts that read this output. Fields are only ever
//! added; every documented key is always present (`null` when it has no value).

use std::collections::BTreeMap;

use dynamod_proto::{
    ExitInfo, ExitStatus, NodeKind, ServiceDetail, ServiceSummary, SystemState, TreeNode,
};
use serde::Serialize;

use crate::human;
use crate::render::Health;

/// `list --json`.
#[derive(Debug, Serialize)]
pub struct List<'a> {
    /// Sorted by name.
    pub services: Vec<Service<'a>>,
}

/// One service in `list --json` (and the head of a `status --json` entry).
#[derive(Debug, Serialize)]
pub struct Service<'a> {
    /// Service name.
    pub name: &'a str,
    /// `running`, `failed`, … (the words `list` shows).
    pub state: &'static str,
    /// Main PID, `null` when no process runs.
    pub pid: Option<i32>,
    /// Supervisor name.
    pub supervisor: &'a str,
    /// `simple`, `oneshot`, `forking`, `notify`; `null` for an invalid file.
    #[serde(rename = "type")]
    pub kind: Option<&'a str>,
    /// Why it is blocked, failed or invalid.
    pub reason: Option<&'a str>,
}

impl<'a> Service<'a> {
    fn new(s: &'a ServiceSummary) -> Self {
        Self {
            name: &s.name,
            state: s.state.as_str(),
            pid: s.pid,
            supervisor: &s.supervisor,
            kind: (!s.kind.is_empty()).then_some(s.kind.as_str()),
            reason: s.reason.as_deref(),
        }
    }
}

/// Builds `list --json`.
pub fn list(services: &[ServiceSummary]) -> List<'_> {
    let mut services: Vec<Service<'_>> = services.iter().map(Service::new).collect();
    services.sort_by(|a, b| a.name.cmp(b.name));
    List { services }
}

/// A node of `tree --json`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Node<'a> {
    /// A supervisor and its children in start order.
    Supervisor {
        /// Supervisor name.
        name: &'a str,
        /// `one-for-one`, `one-for-all` or `rest-for-one`.
        strategy: &'a str,
        /// `running` or `failed`.
        state: &'a str,
        /// Child supervisors and services.
        children: Vec<Node<'a>>,
    },
    /// A service.
    Service {
        /// Service name.
        name: &'a str,
        /// Its state.
        state: &'static str,
        /// Main PID, `null` when no process runs.
        pid: Option<i32>,
    },
}

/// Builds `tree --json`.
pub fn tree(node: &TreeNode) -> Node<'_> {
    match &node.node {
        NodeKind::Supervisor { strategy, state } => Node::Supervisor {
            name: &node.name,
            strategy,
            state,
            children: node.children.iter().map(tree).collect(),
        },
        NodeKind::Service { state, pid } => Node::Service {
            name: &node.name,
            state: state.as_str(),
            pid: *pid,
        },
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    /// In the order asked for.
    pub services: Vec<Detail<'a>>,
}

/// One service in `status --json`.
#[derive(Debug, Serialize)]
pub struct Detail<'a> {
    /// The same fields as `list --json`.
    #[serde(flatten)]
    pub service: Service<'a>,
    /// Configuration file, `null` if unknown.
    pub file: Option<&'a str>,
    /// The command line, one string per argument.
    pub exec: &'a [String],
    /// Restart policy and history.
    pub restart: Restart<'a>,
    /// Readiness type and whether it was reached, as svmgr words it.
    pub readiness: &'a str,
    /// Milliseconds in the current state (svmgr's monotonic clock).
    pub since_ms: Option<u64>,
    /// When the current state began, milliseconds since the Unix epoch.
    pub since_unix_ms: Option<u64>,
    /// The last exit of the main process.
    pub last_exit: Option<LastExit>,
    /// Dependencies by kind.
    pub dependencies: Dependencies<'a>,
    /// cgroup path, `null` without one.
    pub cgroup: Option<&'a str>,
    /// Usage from the cgroup, `null` when not available; each field `null` when not readable.
    pub usage: Option<Usage>,
    /// Most recent output lines, oldest first.
    pub recent_logs: &'a [String],
    /// Lines dropped because the log buffer overflowed.
    pub log_dropped: u64,
    /// When the current process was spawned, milliseconds after svmgr started.
    pub spawned_ms: Option<u64>,
    /// When it became ready (a oneshot: completed), milliseconds after svmgr started.
    pub ready_ms: Option<u64>,
}

/// Restart policy and history in `status --json`.
#[derive(Debug, Serialize)]
pub struct Restart<'a> {
    /// `permanent`, `transient` or `temporary`.
    pub policy: &'a str,
    /// Automatic restarts so far.
    pub count: u32,
    /// Milliseconds until the next automatic restart, `null` if none is scheduled.
    pub next_in_ms: Option<u64>,
}

/// A decoded exit status.
#[derive(Debug, Serialize)]
pub struct LastExit {
    /// `exited` or `killed`.
    pub how: &'static str,
    /// Exit code when `exited`, else `null`.
    pub code: Option<i32>,
    /// Signal number when `killed`, else `null`.
    pub signal: Option<i32>,
    /// Signal name (`SIGKILL`) when `killed` and known, else `null`.
    pub signal_name: Option<String>,
    /// The shell's `$?`: the code, or 128 + the signal.
    pub shell_code: i32,
    /// When, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl From<ExitInfo> for LastExit {
    fn from(e: ExitInfo) -> Self {
        let (how, code, signal) = match e.status {
            ExitStatus::Exited(c) => ("exited", Some(c), None),
            ExitStatus::Signaled(s) => ("killed", None, Some(s)),
        };
        Self {
            how,
            code,
            signal,
            signal_name: signal.and_then(human::signal_name),
            shell_code: e.status.shell_code(),
            at_unix_ms: e.at_unix_ms,
        }
    }
}

/// Dependencies in `status --json`.
#[derive(Debug, Serialize)]
pub struct Dependencies<'a> {
    /// Hard dependencies.
    pub requires: &'a [String],
    /// Soft dependencies.
    pub wants: &'a [String],
    /// Ordering-only dependencies.
    pub after: &'a [String],
}

/// cgroup usage in `status --json`.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// Bytes.
    pub memory_current: Option<u64>,
    /// Bytes.
    pub memory_peak: Option<u64>,
    /// Microseconds of CPU time.
    pub cpu_usec: Option<u64>,
    /// Processes and threads.
    pub tasks: Option<u64>,
    /// OOM kills so far.
    pub oom_kills: Option<u64>,
}

/// Builds `status --json`.
pub fn status(details: &[ServiceDetail]) -> Status<'_> {
    let services = details
        .iter()
        .map(|d| Detail {
            service: Service::new(&d.summary),
            file: d.file.as_deref(),
            exec: &d.exec,
            restart: Restart {
                policy: &d.restart_policy,
                count: d.restarts,
                next_in_ms: d.next_restart_ms,
            },
            readiness: &d.readiness,
            since_ms: d.since_ms,
            since_unix_ms: d.since_unix_ms,
            last_exit: d.last_exit.map(LastExit::from),
            dependencies: Dependencies {
                requires: &d.requires,
                wants: &d.wants,
                after: &d.after,
            },
            cgroup: d.cgroup.as_deref(),
            usage: d.usage.map(|u| Usage {
                memory_current: u.memory_current,
                memory_peak: u.memory_peak,
                cpu_usec: u.cpu_usec,
                tasks: u.tasks,
                oom_kills: u.oom_kills,
            }),
            recent_logs: &d.recent_logs,
            log_dropped: d.log_dropped,
            spawned_ms: d.spawned_ms,
            ready_ms: d.ready_ms,
        })
        .collect();
    Status { services }
}

/// `is-healthy --json`.
#[derive(Debug, Serialize)]
pub struct HealthReport<'a> {
    /// The verdict (also the exit status: 0 when true).
    pub healthy: bool,
    /// Why not, `null` when healthy.
    pub reason: Option<&'a str>,
    /// svmgr's overall state: `starting`, `running`, `degraded`, `stopping`.
    pub state: &'a str,
    /// Start-up has finished.
    pub startup_complete: bool,
    /// Milliseconds since svmgr started.
    pub uptime_ms: u64,
    /// Services per state; states with no service are left out.
    pub counts: BTreeMap<&'static str, u32>,
}

/// Builds `is-healthy --json`.
pub fn health<'a>(sys: &'a SystemState, verdict: &'a Health) -> HealthReport<'a> {
    let mut counts = BTreeMap::new();
    for (state, n) in &sys.counts {
        if *n > 0 {
            *counts.entry(state.as_str()).or_insert(0) += n;
        }
    }
    HealthReport {
        healthy: verdict.healthy,
        reason: verdict.reason.as_deref(),
        state: &sys.state,
        startup_complete: sys.startup_complete,
        uptime_ms: sys.uptime_ms,
        counts,
    }
}

/// `--json` answer of a command that changes something.
#[derive(Debug, Serialize)]
pub struct Done<'a> {
    /// What svmgr did, one line per affected service.
    pub message: &'a str,
}

/// Serialises `value` as pretty JSON with a final newline.
pub fn to_text<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use dynamod_proto::ServiceState;
    use serde_json::json;

    use super::*;

    fn summary(name: &str, state: ServiceState) -> ServiceSummary {
        ServiceSummary {
            name: name.into(),
            state,
            pid: None,
            supervisor: "root".into(),
            kind: String::new(),
            reason: Some("bad key".into()),
        }
    }

    #[test]
    fn list_json_is_sorted_with_every_key_present() {
        let v = serde_json::to_value(list(&[
            summary("z", ServiceState::Invalid),
            summary("a", ServiceState::Stopped),
        ]))
        .unwrap();
        assert_eq!(
            v,
            json!({"services": [
                {"name": "a", "state": "stopped", "pid": null, "supervisor": "root", "type": null,
                 "reason": "bad key"},
                {"name": "z", "state": "invalid", "pid": null, "supervisor": "root", "type": null,
                 "reason": "bad key"},
            ]})
        );
    }

    #[test]
    fn tree_json_tags_nodes_by_kind() {
        let t = TreeNode {
            name: "root".into(),
            node: NodeKind::Supervisor {
                strategy: "one-for-one".into(),
                state: "running".into(),
            },
            children: vec![TreeNode {
                name: "a".into(),
                node: NodeKind::Service {
                    state: ServiceState::Running,
                    pid: Some(3),
                },
                children: vec![],
            }],
        };
        assert_eq!(
            serde_json::to_value(tree(&t)).unwrap(),
            json!({"kind": "supervisor", "name": "root", "strategy": "one-for-one",
                   "state": "running",
                   "children": [{"kind": "service", "name": "a", "state": "running", "pid": 3}]})
        );
    }

    #[test]
    fn status_json_decodes_the_last_exit() {
        let d = ServiceDetail {
            summary: summary("a", ServiceState::Failed),
            file: None,
            exec: vec!["/bin/a".into()],
            restart_policy: "transient".into(),
            readiness: "none".into(),
            since_ms: None,
            since_unix_ms: Some(5),
            restarts: 4,
            next_restart_ms: None,
            last_exit: Some(ExitInfo {
                status: ExitStatus::Signaled(9),
                at_unix_ms: 7,
            }),
            cgroup: None,
            usage: None,
            recent_logs: vec!["x".into()],
            log_dropped: 1,
            requires: vec!["b".into()],
            wants: vec![],
            after: vec![],
            spawned_ms: Some(3),
            ready_ms: None,
        };
        let v = serde_json::to_value(status(std::slice::from_ref(&d))).unwrap();
        assert_eq!(
            v,
            json!({"services": [{
                "name": "a", "state": "failed", "pid": null, "supervisor": "root", "type": null,
                "reason": "bad key", "file": null, "exec": ["/bin/a"],
                "restart": {"policy": "transient", "count": 4, "next_in_ms": null},
                "readiness": "none", "since_ms": null, "since_unix_ms": 5,
                "last_exit": {"how": "killed", "code": null, "signal": 9, "signal_name": "SIGKILL",
                              "shell_code": 137, "at_unix_ms": 7},
                "dependencies": {"requires": ["b"], "wants": [], "after": []},
                "cgroup": null, "usage": null, "recent_logs": ["x"], "log_dropped": 1,
                "spawned_ms": 3, "ready_ms": null
            }]})
        );
    }

    #[test]
    fn health_json_counts_only_present_states() {
        let sys = SystemState {
            state: "degraded".into(),
            startup_complete: true,
            counts: vec![
                (ServiceState::Running, 2),
                (ServiceState::Failed, 1),
                (ServiceState::Done, 0),
            ],
            uptime_ms: 10,
        };
        let verdict = crate::render::health(&sys);
        assert_eq!(
            serde_json::to_value(health(&sys, &verdict)).unwrap(),
            json!({"healthy": false, "reason": "1 service failed", "state": "degraded",
                   "startup_complete": true, "uptime_ms": 10,
                   "counts": {"failed": 1, "running": 2}})
        );
    }
}
