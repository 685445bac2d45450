//! Services, supervisors and their phases.

use std::time::Duration;

use dynamod_config::{RestartPolicy, ServiceConfig, ServiceType, SupervisorConfig};
use dynamod_proto::{ExitStatus, ServiceState};

use crate::{Time, Window};

/// Index of a service in the [`Core`](crate::Core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SvcId(pub usize);

/// Index of a supervisor in the [`Core`](crate::Core); `SupId(0)` is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SupId(pub usize);

/// What happens once a stopping service's process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// It stays stopped.
    Stop,
    /// It goes back to waiting for its dependencies (operator restart).
    Start,
    /// It restarts at this time (a supervisor strategy).
    RestartAt(Time),
    /// It is failed with this reason.
    Fail(String),
}

/// Where a service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// No process, not wanted.
    Stopped,
    /// Wanted, waiting for dependencies.
    Waiting,
    /// Spawned (or being spawned), not yet ready; `deadline` for readiness or oneshot exit.
    Starting {
        /// When it fails if still not ready.
        deadline: Option<Time>,
    },
    /// Ready.
    Running,
    /// Asked to stop; `killed` once SIGKILL went out.
    Stopping {
        /// When to escalate (to SIGKILL, then to giving up).
        deadline: Time,
        /// Whether SIGKILL was sent.
        killed: bool,
        /// What happens afterwards.
        then: Then,
    },
    /// Waiting out a restart delay.
    Restarting {
        /// When it goes back to waiting.
        at: Time,
    },
    /// A oneshot that succeeded.
    Done,
    /// Gave up.
    Failed,
    /// A required dependency failed.
    Blocked,
    /// Its file is invalid.
    Invalid,
}

impl Phase {
    pub(crate) fn deadline(&self) -> Option<Time> {
        match self {
            Phase::Starting { deadline } => *deadline,
            Phase::Stopping { deadline, .. } => Some(*deadline),
            Phase::Restarting { at } => Some(*at),
            _ => None,
        }
    }
}

/// One service as the core sees it.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Its supervisor.
    pub supervisor: SupId,
    /// Its configuration (`None` when the file is invalid).
    pub cfg: Option<ServiceConfig>,
    /// Its phase.
    pub phase: Phase,
    /// Whether it should be up.
    pub wanted: bool,
    /// Whether a supervisor may bring it back (false once an operator stopped it).
    pub boot_wanted: bool,
    /// Main PID while a process runs.
    pub pid: Option<i32>,
    /// Automatic restarts so far.
    pub restarts: u32,
    /// Why it is failed, blocked, invalid or stopped.
    pub reason: Option<String>,
    /// Last exit and when it happened.
    pub last_exit: Option<(ExitStatus, Time)>,
    /// When the current phase began.
    pub since: Time,
    /// When the current process was spawned.
    pub spawned_at: Option<Time>,
    /// When the current process became ready.
    pub ready_at: Option<Time>,
    /// Order in which services were last started (for strategies).
    pub start_seq: u64,
    /// Hard dependencies.
    pub requires: Vec<SvcId>,
    /// `requires` names that match no service.
    pub missing_requires: Vec<String>,
    /// Ordering dependencies (wants, after, reversed before).
    pub soft: Vec<SvcId>,
    /// Services that depend on this one (either kind).
    pub dependents: Vec<SvcId>,
    /// Dropped from the configuration by a reload (kept only until its process is gone).
    pub removed: bool,
    /// Its state came from a previous svmgr ([`Core::restore`](crate::Core::restore)).
    pub restored: bool,
    pub(crate) restart_times: Window,
    pub(crate) backoff: Option<Duration>,
}

impl Service {
    pub(crate) fn new(
        name: String,
        supervisor: SupId,
        cfg: Option<ServiceConfig>,
        invalid: Option<String>,
    ) -> Self {
        let phase = if cfg.is_some() {
            Phase::Stopped
        } else {
            Phase::Invalid
        };
        Service {
            name,
            supervisor,
            cfg,
            phase,
            wanted: false,
            boot_wanted: true,
            pid: None,
            restarts: 0,
            reason: invalid,
            last_exit: None,
            since: Duration::ZERO,
            spawned_at: None,
            ready_at: None,
            start_seq: 0,
            requires: Vec::new(),
            missing_requires: Vec::new(),
            soft: Vec::new(),
            dependents: Vec::new(),
            removed: false,
            restored: false,
            restart_times: Window::new(),
            backoff: None,
        }
    }

    /// The state shown to operators.
    pub fn state(&self) -> ServiceState {
        match self.phase {
            Phase::Stopped => ServiceState::Stopped,
            Phase::Waiting => ServiceState::Waiting,
            Phase::Starting { .. } => ServiceState::Starting,
            Phase::Running => ServiceState::Running,
            Phase::Stopping { .. } => ServiceState::Stopping,
            Phase::Restarting { .. } => ServiceState::Restarting,
            Phase::Done => ServiceState::Done,
            Phase::Failed => ServiceState::Failed,
            Phase::Blocked => ServiceState::Blocked,
            Phase::Invalid => ServiceState::Invalid,
        }
    }

    /// Whether a process of it may exist.
    pub fn has_process(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting { .. } | Phase::Running | Phase::Stopping { .. }
        )
    }

    /// Up or on its way up.
    pub(crate) fn is_active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting { .. } | Phase::Running | Phase::Waiting | Phase::Restarting { .. }
        )
    }

    /// Nothing more will happen to it without an outside event.
    pub(crate) fn settled(&self) -> bool {
        match self.phase {
            Phase::Running | Phase::Done | Phase::Failed | Phase::Blocked | Phase::Invalid => true,
            Phase::Stopped => true,
            Phase::Waiting | Phase::Starting { .. } | Phase::Restarting { .. } => false,
            Phase::Stopping { .. } => !self.wanted,
        }
    }

    pub(crate) fn is_oneshot(&self) -> bool {
        self.cfg
            .as_ref()
            .is_some_and(|c| c.kind == ServiceType::Oneshot)
    }

    pub(crate) fn is_forking(&self) -> bool {
        self.cfg
            .as_ref()
            .is_some_and(|c| c.kind == ServiceType::Forking)
    }

    pub(crate) fn is_main(&self) -> bool {
        self.cfg.as_ref().is_some_and(|c| c.main)
    }

    pub(crate) fn readiness_kind(&self) -> &'static str {
        self.cfg
            .as_ref()
            .map_or("none", |c| c.readiness.kind.as_str())
    }

    pub(crate) fn readiness_timeout(&self) -> Duration {
        self.cfg
            .as_ref()
            .map_or(Duration::from_secs(30), |c| c.readiness.timeout)
    }

    pub(crate) fn stop_timeout(&self) -> Duration {
        self.cfg
            .as_ref()
            .map_or(Duration::from_secs(10), |c| c.shutdown.stop_timeout)
    }

    pub(crate) fn policy(&self) -> RestartPolicy {
        self.cfg
            .as_ref()
            .map_or(RestartPolicy::Temporary, |c| c.restart.policy)
    }

    pub(crate) fn reset_after(&self) -> Duration {
        self.cfg
            .as_ref()
            .map_or(Duration::from_secs(60), |c| c.restart.reset_after)
    }

    pub(crate) fn intensity(&self) -> (u32, Duration) {
        self.cfg.as_ref().map_or((5, Duration::from_secs(60)), |c| {
            (c.restart.max_restarts, c.restart.max_restart_window)
        })
    }

    /// Exit code 0 or one of `success-exit-codes`.
    pub(crate) fn is_success(&self, st: ExitStatus) -> bool {
        match st {
            ExitStatus::Exited(0) => true,
            ExitStatus::Exited(c) => self
                .cfg
                .as_ref()
                .is_some_and(|cfg| cfg.restart.success_exit_codes.contains(&c)),
            ExitStatus::Signaled(_) => false,
        }
    }

    /// The delay before the next restart; doubles each time up to `max-delay`.
    pub(crate) fn next_backoff(&mut self) -> Duration {
        let (base, cap) = self
            .cfg
            .as_ref()
            .map_or((Duration::from_secs(1), Duration::from_secs(30)), |c| {
                (c.restart.delay, c.restart.max_delay.max(c.restart.delay))
            });
        let next = match self.backoff {
            None => base,
            Some(prev) => (prev * 2).min(cap),
        };
        self.backoff = Some(next);
        next
    }

    /// The delay that is scheduled now, if restarting.
    pub fn current_backoff(&self) -> Option<Duration> {
        self.backoff
    }
}

/// One supervisor.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// Its configuration.
    pub cfg: SupervisorConfig,
    /// Its parent (`None` for root).
    pub parent: Option<SupId>,
    /// Services directly under it, in configuration order.
    pub children: Vec<SvcId>,
    /// Supervisors directly under it.
    pub child_sups: Vec<SupId>,
    /// It exceeded its intensity and is given up.
    pub failed: bool,
    pub(crate) restart_times: Window,
}

impl Supervisor {
    pub(crate) fn new(cfg: SupervisorConfig, parent: Option<SupId>) -> Self {
        Supervisor {
            cfg,
            parent,
            children: Vec::new(),
            child_sups: Vec::new(),
            failed: false,
            restart_times: Window::new(),
        }
    }
}
