//! `dynamodctl wait`: polls svmgr until the named services are ready, or until start-up is
//! complete when none is named.
//!
//! A named service that ends up failed, blocked or invalid ends the wait at once (exit 1); a
//! stopped one is waited for, since someone may start it. svmgr being unreachable (not started
//! yet, or restarting) is waited out too, within the timeout. Polling every 100 ms on one
//! connection costs svmgr a status request per poll, which is nothing.

use std::time::{Duration, Instant};

use dynamod_proto::{Request, Response, ServiceDetail, ServiceState, SystemState};
use serde::Serialize;

use crate::CONNECT_TIMEOUT;
use crate::client::{Client, ClientError};
use crate::human;

/// Time between two polls.
pub const POLL: Duration = Duration::from_millis(100);

/// Why a wait ended without success.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// A named service can no longer become ready without an operator.
    #[error("{name} is {state}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Failed {
        /// The service.
        name: String,
        /// `failed`, `blocked` or `invalid`.
        state: &'static str,
        /// Why, as svmgr says it.
        reason: Option<String>,
    },
    /// The timeout passed first.
    #[error("timed out after {} waiting for {pending}", human::duration(after.as_millis() as u64))]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// What was still not there, for people.
        pending: String,
    },
}

/// What `wait` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Everything waited for is there.
    pub ok: bool,
    /// How long the wait took, in milliseconds.
    pub waited_ms: u64,
    /// Why not, `null` when ok.
    pub reason: Option<String>,
    /// The named services as last seen (empty when waiting for start-up).
    pub services: Vec<Seen>,
    /// svmgr's overall state as last seen (`null` when never reached).
    pub state: Option<String>,
}

/// A named service as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Service name.
    pub name: String,
    /// Its state.
    pub state: &'static str,
    /// Why it is blocked, failed or invalid.
    pub reason: Option<String>,
}

/// The verdict on one poll of named services: `Some(Ok)` all ready, `Some(Err)` one can no
/// longer get there, `None` keep waiting.
pub fn verdict(details: &[ServiceDetail]) -> Option<Result<(), WaitError>> {
    for d in details {
        let s = &d.summary;
        if matches!(
            s.state,
            ServiceState::Failed | ServiceState::Blocked | ServiceState::Invalid
        ) {
            return Some(Err(WaitError::Failed {
                name: s.name.clone(),
                state: s.state.as_str(),
                reason: s.reason.clone(),
            }));
        }
    }
    let ready = details
        .iter()
        .all(|d| matches!(d.summary.state, ServiceState::Running | ServiceState::Done));
    ready.then_some(Ok(()))
}

fn pending(details: &[ServiceDetail]) -> String {
    let list: Vec<String> = details
        .iter()
        .filter(|d| !matches!(d.summary.state, ServiceState::Running | ServiceState::Done))
        .map(|d| format!("{} ({})", d.summary.name, d.summary.state.as_str()))
        .collect();
    list.join(", ")
}

/// Waits; `Ok` carries the final report (also for a negative outcome), `Err` a failure to ask
/// (for example an unknown service name).
pub fn run(
    socket: &std::path::Path,
    names: &[String],
    timeout: Option<Duration>,
) -> Result<(Report, Option<WaitError>), ClientError> {
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let mut client: Option<Client> = None;
    let mut last_details: Vec<ServiceDetail> = Vec::new();
    let mut last_state: Option<SystemState> = None;
    let mut unreachable: Option<ClientError> = None;
    loop {
        if client.is_none() {
            match Client::connect(socket, CONNECT_TIMEOUT) {
                Ok(c) => client = Some(c),
                Err(e @ (ClientError::Connect { .. } | ClientError::NoAnswer { .. })) => {
                    unreachable = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(c) = client.as_mut() {
            let answer = if names.is_empty() {
                c.request(&Request::SystemState, Some(CONNECT_TIMEOUT))
            } else {
                c.request(
                    &Request::Status {
                        names: names.to_vec(),
                    },
                    Some(CONNECT_TIMEOUT),
                )
            };
            match answer {
                Ok(Response::SystemState(s)) => {
                    let complete = s.startup_complete;
                    last_state = Some(s);
                    if complete {
                        return Ok((report(start, None, &[], last_state), None));
                    }
                }
                Ok(Response::Status(details)) => {
                    last_details = details;
                    if let Some(v) = verdict(&last_details) {
                        let err = v.err();
                        return Ok((report(start, err.as_ref(), &last_details, None), err));
                    }
                }
                Ok(other) => {
                    return Err(ClientError::Unexpected(format!(
                        "a {} answer",
                        crate::client::variant(&other)
                    )));
                }
                Err(e @ ClientError::Server { .. }) => return Err(e),
                // svmgr went away (restarted by init, or shutting down): connect again.
                Err(_) => client = None,
            }
        }
        if let Some(d) = deadline
            && Instant::now() + POLL > d
        {
            let what = if client.is_none() && last_state.is_none() && last_details.is_empty() {
                match unreachable {
                    Some(e) => return Err(e),
                    None => "svmgr".to_owned(),
                }
            } else if names.is_empty() {
                "start-up to complete".to_owned()
            } else {
                pending(&last_details)
            };
            let err = WaitError::Timeout {
                after: start.elapsed(),
                pending: what,
            };
            return Ok((
                report(start, Some(&err), &last_details, last_state),
                Some(err),
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn report(
    start: Instant,
    err: Option<&WaitError>,
    details: &[ServiceDetail],
    state: Option<SystemState>,
) -> Report {
    Report {
        ok: err.is_none(),
        waited_ms: start.elapsed().as_millis() as u64,
        reason: err.map(ToString::to_string),
        services: details
            .iter()
            .map(|d| Seen {
                name: d.summary.name.clone(),
                state: d.summary.state.as_str(),
                reason: d.summary.reason.clone(),
            })
            .collect(),
        state: state.map(|s| s.state),
    }
}

/// The human line(s) for a successful wait.
pub fn render_ok(r: &Report) -> String {
    if r.services.is_empty() {
        return format!(
            "start-up complete (waited {})\n",
            human::duration(r.waited_ms)
        );
    }
    let mut out = String::new();
    for s in &r.services {
        out.push_str(&format!("{} {}\n", human::sanitize(&s.name), s.state));
    }
    out
}

#[cfg(test)]
mod tests {
    use dynamod_proto::ServiceSummary;

    use super::*;

    fn d(name: &str, state: ServiceState) -> ServiceDetail {
        ServiceDetail {
            summary: ServiceSummary {
                name: name.into(),
                state,
                pid: None,
                supervisor: "root".into(),
                kind: "simple".into(),
                reason: (state == ServiceState::Blocked).then(|| "requires 'db'".into()),
            },
            file: None,
            exec: vec![],
            restart_policy: "permanent".into(),
            readiness: "none".into(),
            since_ms: None,
            since_unix_ms: None,
            restarts: 0,
            next_restart_ms: None,
            last_exit: None,
            cgroup: None,
            usage: None,
            recent_logs: vec![],
            log_dropped: 0,
            requires: vec![],
            wants: vec![],
            after: vec![],
            spawned_ms: None,
            ready_ms: None,
        }
    }

    #[test]
    fn ready_and_done_count_as_there_and_stopped_is_waited_for() {
        use ServiceState::*;
        assert!(matches!(
            verdict(&[d("a", Running), d("b", Done)]),
            Some(Ok(()))
        ));
        assert!(verdict(&[d("a", Running), d("b", Starting)]).is_none());
        assert!(verdict(&[d("a", Stopped)]).is_none());
        assert!(verdict(&[d("a", Restarting)]).is_none());
    }

    #[test]
    fn a_failed_blocked_or_invalid_service_ends_the_wait() {
        use ServiceState::*;
        let err = verdict(&[d("a", Starting), d("web", Blocked)])
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), "web is blocked: requires 'db'");
        assert!(matches!(verdict(&[d("a", Failed)]), Some(Err(_))));
        assert!(matches!(verdict(&[d("a", Invalid)]), Some(Err(_))));
        assert_eq!(
            pending(&[d("a", Running), d("b", Starting), d("c", Waiting)]),
            "b (starting), c (waiting)"
        );
    }
}
