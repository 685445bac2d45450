//! The control socket: clients, requests, permission checks and jobs that answer once a
//! start or stop has finished.
//!
//! Peers are identified by `SO_PEERCRED`. Everyone who can connect may read (`List`, `Tree`,
//! `Status`, `SystemState`); changing anything needs uid 0, or membership of the group given
//! with `--control-group` (as primary group at connect time, or as a supplementary group read
//! from `/proc` for the process behind the peer's pidfd).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{SystemTime, UNIX_EPOCH};

use dynamod_core::{Event, SvcId};
use dynamod_proto::{
    ErrorKind, ExitInfo, FrameDecoder, Hello, Request, Response, ServiceDetail, ServiceState,
    ServiceSummary, SystemState,
};
use dynamod_sys::nix::sys::socket::{getsockopt, sockopt};

use crate::runtime::Runtime;

/// One connected client.
pub(crate) struct Client {
    pub stream: UnixStream,
    dec: FrameDecoder,
    out: Vec<u8>,
    pub uid: u32,
    greeted: bool,
    pub close_after_flush: bool,
    /// Whether the peer belongs to the control group (looked up on its first change request).
    in_control_group: Option<bool>,
}

impl Client {
    pub fn new(stream: UnixStream, uid: u32) -> Self {
        Client {
            stream,
            dec: FrameDecoder::new(),
            out: Vec::new(),
            uid,
            greeted: false,
            close_after_flush: false,
            in_control_group: None,
        }
    }

    /// Whether the peer is a member of group `gid` (cached for the connection).
    fn member_of(&mut self, gid: u32) -> bool {
        *self
            .in_control_group
            .get_or_insert_with(|| peer_in_group(&self.stream, gid))
    }

    /// Reads what is available. Returns true on EOF or error.
    pub fn read_in(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.dec.push(&buf[..n]);
                    // Refuse an oversized frame from its header, before buffering the body.
                    if self.dec.check_header().is_err() {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// The next complete request, or a protocol error message.
    pub fn next_request(&mut self) -> Result<Option<Request>, String> {
        match self.dec.next::<Request>() {
            Ok(Some(Request::Hello(h))) => {
                if h.version != dynamod_proto::PROTOCOL_VERSION {
                    return Err(format!(
                        "protocol version {} not supported (dynamod-svmgr speaks {})",
                        h.version,
                        dynamod_proto::PROTOCOL_VERSION
                    ));
                }
                self.greeted = true;
                self.send(&Response::Hello(Hello::new("dynamod-svmgr")));
                self.next_request()
            }
            Ok(Some(_)) if !self.greeted => Err("the first message must be Hello".to_owned()),
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn send(&mut self, resp: &Response) {
        if let Err(e) = dynamod_proto::encode_into(resp, &mut self.out) {
            let msg = Response::Error {
                kind: ErrorKind::Failed,
                message: format!("cannot encode answer: {e}"),
            };
            let _ = dynamod_proto::encode_into(&msg, &mut self.out);
        }
    }

    /// Writes what it can. Ok(true) while data remains.
    pub fn flush(&mut self) -> Result<bool, ()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
                Err(_) => return Err(()),
            }
        }
        Ok(false)
    }
}

/// What a job waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    Start,
    Stop,
    Restart,
}

/// A start/stop/restart whose answer waits until the services got there.
#[derive(Debug)]
pub(crate) struct Job {
    pub client: usize,
    pub kind: JobKind,
    /// Each target with its start sequence at the time of the request.
    pub targets: Vec<(SvcId, u64)>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Runtime {
    fn resolve(&self, names: &[String]) -> Result<Vec<SvcId>, Response> {
        if names.is_empty() {
            return Err(Response::Error {
                kind: ErrorKind::Invalid,
                message: "no service named".into(),
            });
        }
        names
            .iter()
            .map(|n| {
                self.core.lookup(n).ok_or_else(|| Response::Error {
                    kind: ErrorKind::UnknownService,
                    message: format!("unknown service '{n}'"),
                })
            })
            .collect()
    }

    /// Handles one request; `None` means the answer comes later (a job).
    pub(crate) fn handle_request(&mut self, slot: usize, req: Request) -> Option<Response> {
        let mutating = matches!(
            req,
            Request::Start { .. }
                | Request::Stop { .. }
                | Request::Restart { .. }
                | Request::Reload
                | Request::Shutdown { .. }
                | Request::Reexec
        );
        if mutating && !self.may_change(slot) {
            return Some(Response::Error {
                kind: ErrorKind::PermissionDenied,
                message: self.denied_message(),
            });
        }
        match req {
            Request::Hello(_) => None,
            Request::List => Some(Response::List(self.summaries())),
            Request::Tree => Some(Response::Tree(self.core.tree())),
            Request::Status { names } if names.is_empty() => {
                let mut all: Vec<(String, SvcId)> = self
                    .core
                    .services()
                    .map(|(id, s)| (s.name.clone(), id))
                    .collect();
                all.sort();
                Some(Response::Status(
                    all.into_iter().map(|(_, id)| self.detail(id)).collect(),
                ))
            }
            Request::Status { names } => match self.resolve(&names) {
                Ok(ids) => Some(Response::Status(
                    ids.into_iter().map(|id| self.detail(id)).collect(),
                )),
                Err(e) => Some(e),
            },
            Request::SystemState => Some(Response::SystemState(self.system_state())),
            Request::Start { names, no_block } => self.job(slot, JobKind::Start, &names, no_block),
            Request::Stop { names, no_block } => self.job(slot, JobKind::Stop, &names, no_block),
            Request::Restart { names, no_block } => {
                self.job(slot, JobKind::Restart, &names, no_block)
            }
            Request::Reload => {
                let r = self.reload();
                Some(Response::Done {
                    message: format!(
                        "reloaded: {} added, {} removed, {} changed, {} unchanged",
                        r.added.len(),
                        r.removed.len(),
                        r.changed.len(),
                        r.unchanged
                    ),
                })
            }
            Request::Reexec => {
                tracing::info!("re-exec requested via control socket");
                self.reexec = true;
                Some(Response::Done {
                    message: "dynamod-svmgr is re-executing".into(),
                })
            }
            Request::Shutdown { kind } => {
                tracing::info!("shutdown ({}) requested via control socket", kind.as_str());
                let actions = self.request_shutdown(kind);
                self.execute(actions);
                Some(Response::Done {
                    message: format!("{} initiated", kind.as_str()),
                })
            }
        }
    }

    /// Root, or a member of the control group, may change things.
    fn may_change(&mut self, slot: usize) -> bool {
        if self.client_uid(slot) == 0 {
            return true;
        }
        let Some(gid) = self.control_group() else {
            return false;
        };
        self.client_mut(slot).is_some_and(|c| c.member_of(gid))
    }

    fn denied_message(&self) -> String {
        let Some(gid) = self.control_group() else {
            return "permission denied: only root may change services".into();
        };
        let groups = std::fs::read_to_string(self.paths.etc.join("group")).unwrap_or_default();
        let group = crate::users::parse_group(&groups)
            .into_iter()
            .find(|g| g.gid == gid)
            .map_or_else(|| gid.to_string(), |g| format!("'{}'", g.name));
        format!("permission denied: only root and members of group {group} may change services")
    }

    fn job(
        &mut self,
        slot: usize,
        kind: JobKind,
        names: &[String],
        no_block: bool,
    ) -> Option<Response> {
        let ids = match self.resolve(names) {
            Ok(ids) => ids,
            Err(e) => return Some(e),
        };
        if self.core.shutting_down() && kind != JobKind::Stop {
            return Some(Response::Error {
                kind: ErrorKind::Invalid,
                message: "shutting down".into(),
            });
        }
        for &id in &ids {
            if self.core.state(id) == ServiceState::Invalid && kind != JobKind::Stop {
                let reason = self.core.service(id).reason.clone().unwrap_or_default();
                return Some(Response::Error {
                    kind: ErrorKind::Invalid,
                    message: format!("'{}' is invalid: {reason}", self.core.service(id).name),
                });
            }
        }
        let targets: Vec<(SvcId, u64)> = ids
            .iter()
            .map(|&id| (id, self.core.service(id).start_seq))
            .collect();
        for &id in &ids {
            let now = self.start.elapsed();
            let ev = match kind {
                JobKind::Start => Event::Start { svc: id },
                JobKind::Stop => Event::Stop { svc: id },
                JobKind::Restart => Event::Restart { svc: id },
            };
            let actions = self.core.handle(now, ev);
            self.execute(actions);
        }
        let job = Job {
            client: slot,
            kind,
            targets,
        };
        if no_block {
            return Some(Response::Done {
                message: format!("{} requested", verb(kind)),
            });
        }
        if let Some(resp) = self.job_result(&job) {
            return Some(resp);
        }
        self.add_job(job);
        None
    }

    /// The answer to a job once every target got where it was going.
    pub(crate) fn job_result(&self, job: &Job) -> Option<Response> {
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        for &(id, seq) in &job.targets {
            let s = self.core.service(id);
            let st = s.state();
            let reason = || {
                s.reason
                    .clone()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            };
            match job.kind {
                JobKind::Start | JobKind::Restart => {
                    let fresh = job.kind == JobKind::Start || s.start_seq > seq;
                    match st {
                        ServiceState::Running | ServiceState::Done if fresh => {
                            lines.push(format!("{} {}", s.name, st.as_str()));
                        }
                        ServiceState::Failed | ServiceState::Blocked | ServiceState::Invalid => {
                            failed.push(format!("{} {}{}", s.name, st.as_str(), reason()));
                        }
                        ServiceState::Stopped if fresh => {
                            failed.push(format!("{} stopped{}", s.name, reason()));
                        }
                        _ => return None,
                    }
                }
                JobKind::Stop => {
                    if s.has_process() {
                        return None;
                    }
                    lines.push(format!("{} {}", s.name, st.as_str()));
                }
            }
        }
        if failed.is_empty() {
            Some(Response::Done {
                message: lines.join("\n"),
            })
        } else {
            Some(Response::Error {
                kind: ErrorKind::Failed,
                message: failed.join("\n"),
            })
        }
    }

    fn summary(&self, id: SvcId) -> ServiceSummary {
        let s = self.core.service(id);
        ServiceSummary {
            name: s.name.clone(),
            state: s.state(),
            pid: s.pid,
            supervisor: self.core.supervisor(s.supervisor).cfg.name.clone(),
            kind: s
                .cfg
                .as_ref()
                .map(|c| c.kind.as_str().to_owned())
                .unwrap_or_default(),
            reason: match s.state() {
                ServiceState::Failed
                | ServiceState::Blocked
                | ServiceState::Invalid
                | ServiceState::Stopped => s.reason.clone(),
                _ => self.rt[id.0].status_text.clone(),
            },
        }
    }

    fn summaries(&self) -> Vec<ServiceSummary> {
        let mut v: Vec<ServiceSummary> = self
            .core
            .services()
            .map(|(id, _)| self.summary(id))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn detail(&self, id: SvcId) -> ServiceDetail {
        let s = self.core.service(id);
        let rt = &self.rt[id.0];
        let now = self.start.elapsed();
        let name_of = |ids: &[SvcId]| {
            ids.iter()
                .map(|d| self.core.service(*d).name.clone())
                .collect::<Vec<_>>()
        };
        let (requires, wants) = match &s.cfg {
            Some(c) => (c.deps.requires.clone(), c.deps.wants.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let after: Vec<String> = name_of(&s.soft)
            .into_iter()
            .filter(|n| !wants.contains(n))
            .collect();
        let readiness = match &s.cfg {
            Some(c) => {
                let reached = matches!(s.state(), ServiceState::Running | ServiceState::Done);
                let kind = c.readiness.kind.as_str();
                if kind == "none" {
                    "none".to_owned()
                } else if reached {
                    format!("{kind} (ready)")
                } else {
                    format!(
                        "{kind} (waiting, timeout {})",
                        dynamod_core::fmt_duration(c.readiness.timeout)
                    )
                }
            }
            None => String::new(),
        };
        let next_restart_ms = match s.phase {
            dynamod_core::Phase::Restarting { at } => {
                Some(at.saturating_sub(now).as_millis() as u64)
            }
            _ => None,
        };
        ServiceDetail {
            summary: self.summary(id),
            file: s.cfg.as_ref().map(|c| c.file.display().to_string()),
            exec: s.cfg.as_ref().map(|c| c.exec.clone()).unwrap_or_default(),
            restart_policy: s
                .cfg
                .as_ref()
                .map(|c| c.restart.policy.as_str().to_owned())
                .unwrap_or_default(),
            readiness,
            since_ms: Some(now.saturating_sub(s.since).as_millis() as u64),
            since_unix_ms: Some(
                unix_ms(SystemTime::now())
                    .saturating_sub(now.saturating_sub(s.since).as_millis() as u64),
            ),
            restarts: s.restarts,
            next_restart_ms,
            last_exit: s.last_exit.map(|(status, at)| ExitInfo {
                status,
                at_unix_ms: unix_ms(SystemTime::now())
                    .saturating_sub(now.saturating_sub(at).as_millis() as u64),
            }),
            cgroup: rt.cgroup.as_ref().map(|p| p.display().to_string()),
            usage: self.cgroup_usage(id),
            recent_logs: rt.recent.iter().cloned().collect(),
            log_dropped: rt.dropped,
            requires,
            wants,
            after,
            spawned_ms: s.spawned_at.map(|t| t.as_millis() as u64),
            ready_ms: s.ready_at.map(|t| t.as_millis() as u64),
        }
    }

    fn system_state(&self) -> SystemState {
        let mut counts: Vec<(ServiceState, u32)> = Vec::new();
        let mut failed = false;
        for (_, s) in self.core.services() {
            let st = s.state();
            failed |= st == ServiceState::Failed;
            match counts.iter_mut().find(|(k, _)| *k == st) {
                Some((_, n)) => *n += 1,
                None => counts.push((st, 1)),
            }
        }
        let state = if self.core.shutting_down() {
            "stopping"
        } else if !self.core.startup_complete() {
            "starting"
        } else if failed {
            "degraded"
        } else {
            "running"
        };
        SystemState {
            state: state.to_owned(),
            startup_complete: self.core.startup_complete(),
            counts,
            uptime_ms: self.start.elapsed().as_millis() as u64,
        }
    }
}

/// Whether the process on the other end of `stream` has `gid` as its primary group (from
/// `SO_PEERCRED`, as it was at connect time) or as a supplementary group.
fn peer_in_group(stream: &UnixStream, gid: u32) -> bool {
    let Ok(cred) = getsockopt(stream, sockopt::PeerCredentials) else {
        return false;
    };
    if cred.gid() == gid {
        return true;
    }
    supplementary_groups(stream, cred.pid()).contains(&gid)
}

/// The peer's supplementary groups, from `/proc/<pid>/status`.
///
/// `SO_PEERCRED` carries no supplementary groups. With a pidfd of the peer (`SO_PEERPIDFD`,
/// Linux 6.5) the PID is taken from the pidfd and checked again after the read, so the groups
/// cannot belong to a later process that reused the PID; older kernels fall back to the PID
/// from `SO_PEERCRED`.
fn supplementary_groups(stream: &UnixStream, cred_pid: i32) -> Vec<u32> {
    match getsockopt(stream, sockopt::PeerPidfd) {
        Ok(pidfd) => {
            let Some(pid) = pidfd_pid(&pidfd) else {
                return Vec::new();
            };
            let groups = proc_groups(pid);
            if pidfd_pid(&pidfd) == Some(pid) {
                groups
            } else {
                Vec::new()
            }
        }
        Err(_) => proc_groups(cred_pid),
    }
}

/// The PID a pidfd refers to, from `/proc/self/fdinfo` (`Pid: -1` once the process is gone).
fn pidfd_pid(pidfd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
}

/// The `Groups:` line of `/proc/<pid>/status`.
fn proc_groups(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    parse_status_groups(&status)
}

fn parse_status_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn verb(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Start => "start",
        JobKind::Stop => "stop",
        JobKind::Restart => "restart",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplementary_groups_come_from_the_status_groups_line() {
        let status =
            "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 1000 \nVmPeak:\t1 kB\n";
        assert_eq!(parse_status_groups(status), [4, 24, 1000]);
        assert!(parse_status_groups("Groups:\n").is_empty());
        assert!(parse_status_groups("Name:\tx\n").is_empty());
    }

    #[test]
    fn our_own_groups_are_seen_through_a_socketpair() {
        let (a, _b) = UnixStream::pair().unwrap();
        let gid = dynamod_sys::nix::unistd::getegid().as_raw();
        assert!(peer_in_group(&a, gid));
        let mut ours = proc_groups(std::process::id() as i32);
        ours.retain(|&g| g != gid);
        if let Some(&other) = ours.first() {
            assert!(peer_in_group(&a, other), "supplementary group {other}");
        }
        assert!(!peer_in_group(&a, 4_000_000_123));
    }
}
