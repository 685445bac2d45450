//! The supervision core: a pure state machine, no I/O.
//!
//! [`Core`] holds every service and supervisor. The runtime (dynamod-svmgr) feeds it
//! [`Event`]s together with the current time on the monotonic clock, and executes the
//! [`Action`]s it returns: spawn, signal, kill, log. Timers are not callbacks: the core keeps its
//! deadlines in its states and the runtime calls [`Core::tick`] when [`Core::next_deadline`] has
//! passed. Because nothing here touches the system, every rule — dependency frontier, restart
//! policies, backoff, intensity, strategies, escalation, ordered shutdown — is unit-tested in
//! microseconds.
//!
//! Vocabulary: a service is *wanted* when something (boot, an operator, a dependent) asked for it
//! to be up; the *frontier* is the set of wanted services whose dependencies are settled; a
//! service is *settled* when it is ready, done, failed, blocked, invalid or not wanted;
//! *intensity* is the number of restarts allowed within a window before giving up.

mod model;
mod reload;
mod table;
mod tree;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_worklist;

pub use model::{Phase, Service, SupId, Supervisor, SvcId, Then};
pub use reload::ReloadSummary;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use dynamod_config::{Config, Readiness, RestartPolicy, ServiceType, Strategy};
use dynamod_proto::{ExitStatus, ServiceState};

use crate::table::Table;

/// A point on the monotonic clock, as time since an arbitrary origin (svmgr start).
pub type Time = Duration;

/// How long a process may take to die after SIGKILL before the core stops waiting for it.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Something that happened, fed to [`Core::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start every service (boot).
    Boot,
    /// The process asked for by [`Action::Spawn`] exists but has not run its program yet; the
    /// outcome follows as [`Event::Spawned`] or [`Event::SpawnFailed`]. Until then a stop
    /// signals this PID.
    Forked {
        /// The service.
        svc: SvcId,
        /// Its PID.
        pid: i32,
    },
    /// The runtime started the process asked for by [`Action::Spawn`]: it runs its program.
    Spawned {
        /// The service.
        svc: SvcId,
        /// Its main PID.
        pid: i32,
    },
    /// The runtime could not start it.
    SpawnFailed {
        /// The service.
        svc: SvcId,
        /// Why, for people.
        error: String,
    },
    /// The main process changed: a `forking` service's daemon was found, or a notify
    /// service sent `MAINPID=`.
    MainPid {
        /// The service.
        svc: SvcId,
        /// The new main PID.
        pid: i32,
    },
    /// The readiness condition was met.
    Ready {
        /// The service.
        svc: SvcId,
    },
    /// The readiness probe failed for good (e.g. the ready fd was closed without a newline).
    ReadinessFailed {
        /// The service.
        svc: SvcId,
        /// Why.
        reason: String,
    },
    /// The main process exited (the runtime has already killed what was left of its group).
    Exited {
        /// The service.
        svc: SvcId,
        /// How.
        status: ExitStatus,
    },
    /// An operator asked for the service to be up.
    Start {
        /// The service.
        svc: SvcId,
    },
    /// An operator asked for the service to be down.
    Stop {
        /// The service.
        svc: SvcId,
    },
    /// An operator asked for a stop followed by a start.
    Restart {
        /// The service.
        svc: SvcId,
    },
    /// Stop everything in reverse dependency order.
    Shutdown,
}

/// What a previous svmgr left a service as (see [`Core::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Its process still runs.
    Running {
        /// The PID, verified alive with the same start time.
        pid: i32,
        /// It had become ready.
        ready: bool,
        /// Automatic restarts so far.
        restarts: u32,
    },
    /// A oneshot that completed.
    Done,
    /// Stopped by an operator.
    Stopped,
    /// Given up.
    Failed(String),
}

/// Severity of a [`Action::Log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine progress.
    Info,
    /// Something went wrong that the system handles.
    Warn,
    /// Something an operator must act on.
    Error,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the service's process; answer with [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn(SvcId),
    /// Stop the service gracefully: run its `stop-exec`, or send its stop signal.
    Stop(SvcId),
    /// SIGKILL everything the service has (its cgroup or process group).
    Kill(SvcId),
    /// Stop watching the service's readiness (it failed or is being stopped).
    CancelReadiness(SvcId),
    /// A line for the log.
    Log(Level, String),
    /// Every wanted service is settled for the first time.
    StartupComplete,
    /// [`Event::Shutdown`] finished: nothing is running any more.
    ShutdownComplete,
    /// The container's main service is gone for good; the container should stop and exit with
    /// this code (SPEC §2.8).
    MainExited(i32),
}

/// The supervision state of the whole system.
#[derive(Debug)]
pub struct Core {
    services: Table,
    supervisors: Vec<Supervisor>,
    by_name: HashMap<String, SvcId>,
    sup_by_name: HashMap<String, SupId>,
    actions: Vec<Action>,
    start_seq: u64,
    booted: bool,
    startup_complete: bool,
    shutting_down: bool,
    shutdown_reported: bool,
    /// Settle by full rescans, as before the worklist: the oracle of the differential tests.
    #[cfg(test)]
    oracle: bool,
    /// How many times a service's frontier decision was evaluated.
    #[cfg(test)]
    settle_calls: u64,
}

impl Core {
    /// Builds the tree from a loaded configuration. Invalid service files become services in
    /// the `invalid` state so they show up in `list`.
    pub fn new(config: &Config) -> Self {
        let mut core = Core {
            services: Table::default(),
            supervisors: Vec::new(),
            by_name: HashMap::new(),
            sup_by_name: HashMap::new(),
            actions: Vec::new(),
            start_seq: 0,
            booted: false,
            startup_complete: false,
            shutting_down: false,
            shutdown_reported: false,
            #[cfg(test)]
            oracle: false,
            #[cfg(test)]
            settle_calls: 0,
        };
        core.build_supervisors(config);
        core.build_services(config);
        core.services.sync(core.shutting_down);
        core
    }

    fn build_supervisors(&mut self, config: &Config) {
        let root_cfg = config
            .supervisors
            .iter()
            .find(|s| s.name == dynamod_config::ROOT_SUPERVISOR)
            .cloned()
            .unwrap_or_else(dynamod_config::SupervisorConfig::builtin_root);
        self.supervisors.push(Supervisor::new(root_cfg, None));
        self.sup_by_name
            .insert(dynamod_config::ROOT_SUPERVISOR.to_owned(), SupId(0));
        // Parents come before children in `config.supervisors`; a dangling parent falls back to
        // root (the config crate has already reported it).
        for cfg in &config.supervisors {
            if cfg.name == dynamod_config::ROOT_SUPERVISOR
                || self.sup_by_name.contains_key(&cfg.name)
            {
                continue;
            }
            let parent = cfg
                .parent
                .as_deref()
                .and_then(|p| self.sup_by_name.get(p).copied())
                .unwrap_or(SupId(0));
            let id = SupId(self.supervisors.len());
            self.supervisors
                .push(Supervisor::new(cfg.clone(), Some(parent)));
            self.supervisors[parent.0].child_sups.push(id);
            self.sup_by_name.insert(cfg.name.clone(), id);
        }
    }

    fn build_services(&mut self, config: &Config) {
        for cfg in &config.services {
            let sup = self.sup_for(&cfg.supervisor);
            self.insert_service(cfg.name.clone(), sup, Some(cfg.clone()), None);
        }
        for inv in &config.invalid {
            if self.by_name.contains_key(&inv.name) {
                continue;
            }
            let sup = self.sup_for(inv.supervisor.as_deref().unwrap_or(""));
            self.insert_service(inv.name.clone(), sup, None, Some(inv.reason.clone()));
        }
        self.link();
    }

    /// The supervisor called `name`, or root when there is none.
    pub(crate) fn sup_for(&self, name: &str) -> SupId {
        self.sup_by_name.get(name).copied().unwrap_or(SupId(0))
    }

    pub(crate) fn insert_service(
        &mut self,
        name: String,
        sup: SupId,
        cfg: Option<dynamod_config::ServiceConfig>,
        invalid: Option<String>,
    ) -> SvcId {
        let id = SvcId(self.services.len());
        self.by_name.insert(name.clone(), id);
        self.services.push(Service::new(name, sup, cfg, invalid));
        self.supervisors[sup.0].children.push(id);
        id
    }

    /// Recomputes every dependency edge and every supervisor's child list from the current
    /// configurations. `requires` naming an unknown service keeps the name so the service can
    /// be reported blocked; unknown soft dependencies are ignored.
    pub(crate) fn link(&mut self) {
        for s in self.services.iter_mut() {
            s.requires.clear();
            s.missing_requires.clear();
            s.soft.clear();
            s.dependents.clear();
        }
        for sup in &mut self.supervisors {
            sup.children.clear();
        }
        for i in 0..self.services.len() {
            if self.services[i].removed {
                continue;
            }
            let sup = self.services[i].supervisor;
            self.supervisors[sup.0].children.push(SvcId(i));
            let Some(cfg) = &self.services[i].cfg else {
                continue;
            };
            let mut requires = Vec::new();
            let mut missing = Vec::new();
            for name in &cfg.deps.requires {
                match self.by_name.get(name) {
                    Some(&d) if d.0 != i => requires.push(d),
                    Some(_) => {}
                    None => missing.push(name.clone()),
                }
            }
            let mut soft: Vec<SvcId> = Vec::new();
            for name in cfg.deps.wants.iter().chain(&cfg.deps.after) {
                if let Some(&d) = self.by_name.get(name)
                    && d.0 != i
                    && !soft.contains(&d)
                {
                    soft.push(d);
                }
            }
            let before: Vec<SvcId> = cfg
                .deps
                .before
                .iter()
                .filter_map(|name| self.by_name.get(name).copied())
                .filter(|d| d.0 != i)
                .collect();
            let s = self.services.get_mut(i);
            s.requires = requires;
            s.missing_requires = missing;
            // `before` edges of earlier services may already be in `soft`.
            for d in soft {
                if !s.soft.contains(&d) {
                    s.soft.push(d);
                }
            }
            for d in before {
                let later = self.services.get_mut(d.0);
                if !later.soft.contains(&SvcId(i)) {
                    later.soft.push(SvcId(i));
                }
            }
        }
        for i in 0..self.services.len() {
            let n_req = self.services[i].requires.len();
            for k in 0..n_req + self.services[i].soft.len() {
                let s = &self.services[i];
                let d = if k < n_req {
                    s.requires[k]
                } else {
                    s.soft[k - n_req]
                };
                // Slots are visited in order, so `i` is already there only if it was pushed
                // last.
                let dep = self.services.get_mut(d.0);
                if dep.dependents.last() != Some(&SvcId(i)) {
                    dep.dependents.push(SvcId(i));
                }
            }
        }
    }

    // ---- queries ------------------------------------------------------------------------

    /// Looks a service up by name.
    pub fn lookup(&self, name: &str) -> Option<SvcId> {
        self.by_name.get(name).copied()
    }

    /// One service.
    pub fn service(&self, id: SvcId) -> &Service {
        &self.services[id.0]
    }

    /// Every service, in configuration order (services removed by a reload are skipped).
    pub fn services(&self) -> impl Iterator<Item = (SvcId, &Service)> {
        self.services
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| (SvcId(i), s))
    }

    /// Number of service slots, including removed ones (ids are indexes below this).
    pub fn slots(&self) -> usize {
        self.services.len()
    }

    /// One supervisor.
    pub fn supervisor(&self, id: SupId) -> &Supervisor {
        &self.supervisors[id.0]
    }

    /// Whether every wanted service has settled since boot.
    pub fn startup_complete(&self) -> bool {
        self.startup_complete
    }

    /// Whether a shutdown is in progress.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The state shown to operators.
    pub fn state(&self, id: SvcId) -> ServiceState {
        self.services[id.0].state()
    }

    /// The earliest moment at which [`Core::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Time> {
        #[cfg(test)]
        if self.oracle {
            return self
                .services
                .iter()
                .filter_map(|s| s.phase.deadline())
                .min();
        }
        self.services.first_deadline()
    }

    // ---- events -------------------------------------------------------------------------

    /// Applies one event and returns what the runtime must do.
    pub fn handle(&mut self, now: Time, event: Event) -> Vec<Action> {
        match event {
            Event::Boot => self.boot(now),
            Event::Forked { svc, pid } => self.on_forked(svc, pid),
            Event::Spawned { svc, pid } => self.on_spawned(now, svc, pid),
            Event::SpawnFailed { svc, error } => self.on_spawn_failed(now, svc, error),
            Event::MainPid { svc, pid } => self.on_main_pid(now, svc, pid),
            Event::Ready { svc } => self.on_ready(now, svc),
            Event::ReadinessFailed { svc, reason } => self.on_readiness_failed(now, svc, reason),
            Event::Exited { svc, status } => self.on_exited(now, svc, status),
            Event::Start { svc } => self.operator_start(now, svc),
            Event::Stop { svc } => self.operator_stop(now, svc),
            Event::Restart { svc } => self.operator_restart(now, svc),
            Event::Shutdown => self.shutdown(now),
        }
        self.settle(now);
        std::mem::take(&mut self.actions)
    }

    /// Fires every deadline that has passed.
    pub fn tick(&mut self, now: Time) -> Vec<Action> {
        // Firing a deadline changes only that service, so firing the due ones in slot order
        // is what a pass over every slot did.
        let due = self.services.due(now);
        #[cfg(test)]
        let due: Vec<usize> = if self.oracle {
            (0..self.services.len()).collect()
        } else {
            due
        };
        for i in due {
            self.fire(now, SvcId(i));
        }
        self.settle(now);
        std::mem::take(&mut self.actions)
    }

    /// Fires `id`'s deadline if it has passed.
    fn fire(&mut self, now: Time, id: SvcId) {
        let i = id.0;
        match self.services[i].phase.clone() {
            Phase::Restarting { at } if at <= now => {
                let s = self.services.get_mut(i);
                s.phase = Phase::Waiting;
                s.since = now;
            }
            Phase::Starting { deadline: Some(d) } if d <= now => {
                let what = if self.services[i].is_oneshot() {
                    "did not finish"
                } else {
                    "did not become ready"
                };
                let timeout = self.services[i].readiness_timeout();
                let reason = format!("{what} within {}", fmt_duration(timeout));
                self.log(
                    Level::Error,
                    format!("service '{}' {reason}", self.services[i].name),
                );
                self.actions.push(Action::CancelReadiness(id));
                self.begin_stop(now, id, Then::Fail(reason));
            }
            Phase::Stopping {
                deadline,
                killed: false,
                then,
            } if deadline <= now => {
                let s = &self.services[i];
                self.log(
                    Level::Warn,
                    format!("service '{}' did not stop in time; killing it", s.name),
                );
                self.actions.push(Action::Kill(id));
                self.services.get_mut(i).phase = Phase::Stopping {
                    deadline: now + KILL_GRACE,
                    killed: true,
                    then,
                };
            }
            Phase::Stopping {
                deadline,
                killed: true,
                then,
            } if deadline <= now => {
                let name = self.services[i].name.clone();
                self.log(
                    Level::Error,
                    format!("service '{name}' survived SIGKILL; no longer waiting for it"),
                );
                self.services.get_mut(i).pid = None;
                self.after_stopped(now, id, then);
            }
            _ => {}
        }
    }

    pub(crate) fn log(&mut self, level: Level, msg: String) {
        self.actions.push(Action::Log(level, msg));
    }

    /// Before [`Event::Boot`]: puts a service back in the state a previous svmgr left it in
    /// (from its state file), so boot neither duplicates nor re-runs it.
    pub fn restore(&mut self, now: Time, svc: SvcId, what: Restored) {
        if self.booted || self.services[svc.0].cfg.is_none() {
            return;
        }
        let s = self.services.get_mut(svc.0);
        s.restored = true;
        s.since = now;
        match what {
            Restored::Running {
                pid,
                ready,
                restarts,
            } => {
                s.wanted = true;
                s.pid = Some(pid);
                s.restarts = restarts;
                s.spawned_at = Some(now);
                self.start_seq += 1;
                s.start_seq = self.start_seq;
                if ready {
                    s.phase = Phase::Running;
                    s.ready_at = Some(now);
                } else {
                    let deadline = now + s.readiness_timeout();
                    s.phase = Phase::Starting {
                        deadline: Some(deadline),
                    };
                }
            }
            Restored::Done => {
                s.phase = Phase::Done;
                s.ready_at = Some(now);
            }
            Restored::Stopped => {
                s.phase = Phase::Stopped;
                s.wanted = false;
                s.boot_wanted = false;
            }
            Restored::Failed(reason) => {
                s.phase = Phase::Failed;
                s.reason = Some(reason);
            }
        }
        self.services.sync(self.shutting_down);
    }

    fn boot(&mut self, now: Time) {
        if self.booted {
            return;
        }
        self.booted = true;
        self.log(
            Level::Info,
            "starting services via dependency frontier".to_owned(),
        );
        for s in self.services.iter_mut() {
            if s.cfg.is_some() && !s.restored {
                s.wanted = true;
                s.phase = Phase::Waiting;
                s.since = now;
            }
        }
    }

    fn on_forked(&mut self, svc: SvcId, pid: i32) {
        // Look before taking: a service taken is a service the worklist settles again.
        let s = &self.services[svc.0];
        if matches!(s.phase, Phase::Starting { .. }) && s.pid.is_none() {
            self.services.get_mut(svc.0).pid = Some(pid);
        }
    }

    fn on_spawned(&mut self, now: Time, svc: SvcId, pid: i32) {
        let s = self.services.get_mut(svc.0);
        if !matches!(s.phase, Phase::Starting { .. }) {
            return;
        }
        s.pid = Some(pid);
        s.spawned_at = Some(now);
        let immediate = !s.is_oneshot() && !s.is_forking() && s.readiness_kind() == "none";
        if immediate {
            self.become_ready(now, svc);
        }
    }

    fn on_main_pid(&mut self, now: Time, svc: SvcId, pid: i32) {
        let s = self.services.get_mut(svc.0);
        if !s.has_process() {
            return;
        }
        s.pid = Some(pid);
        // A forking service is running once its daemon is known (unless it has a readiness
        // condition of its own).
        if matches!(s.phase, Phase::Starting { .. }) && s.readiness_kind() == "none" {
            self.become_ready(now, svc);
        }
    }

    fn on_spawn_failed(&mut self, now: Time, svc: SvcId, error: String) {
        if !matches!(self.services[svc.0].phase, Phase::Starting { .. }) {
            return;
        }
        let name = self.services[svc.0].name.clone();
        self.log(Level::Error, format!("failed to start '{name}': {error}"));
        self.services.get_mut(svc.0).pid = None;
        // A spawn failure is a crash for restart purposes (a missing binary may appear later),
        // bounded by the same intensity.
        self.crashed(now, svc, None, format!("failed to start: {error}"));
    }

    fn on_ready(&mut self, now: Time, svc: SvcId) {
        if matches!(self.services[svc.0].phase, Phase::Starting { .. })
            && self.services[svc.0].pid.is_some()
        {
            self.become_ready(now, svc);
        }
    }

    fn become_ready(&mut self, now: Time, svc: SvcId) {
        let s = self.services.get_mut(svc.0);
        s.phase = Phase::Running;
        s.since = now;
        s.ready_at = Some(now);
        s.reason = None;
        if s.readiness_kind() != "none" {
            let name = s.name.clone();
            self.log(Level::Info, format!("service '{name}' is ready"));
        }
    }

    fn on_readiness_failed(&mut self, now: Time, svc: SvcId, reason: String) {
        if !matches!(self.services[svc.0].phase, Phase::Starting { .. }) {
            return;
        }
        let name = self.services[svc.0].name.clone();
        self.log(
            Level::Error,
            format!("service '{name}' readiness failed: {reason}"),
        );
        self.begin_stop(now, svc, Then::Fail(format!("readiness failed: {reason}")));
    }

    fn on_exited(&mut self, now: Time, svc: SvcId, status: ExitStatus) {
        let s = self.services.get_mut(svc.0);
        s.pid = None;
        s.last_exit = Some((status, now));
        match s.phase.clone() {
            Phase::Stopping { then, .. } => {
                self.actions.push(Action::CancelReadiness(svc));
                self.after_stopped(now, svc, then);
            }
            Phase::Starting { .. } if s.is_oneshot() => {
                let name = s.name.clone();
                if s.is_success(status) {
                    self.log(
                        Level::Info,
                        format!("oneshot '{name}' completed ({})", fmt_status(status)),
                    );
                    let s = self.services.get_mut(svc.0);
                    s.phase = Phase::Done;
                    s.since = now;
                    s.ready_at = Some(now);
                    s.reason = None;
                } else {
                    self.log(
                        Level::Warn,
                        format!("oneshot '{name}' failed ({})", fmt_status(status)),
                    );
                    self.actions.push(Action::CancelReadiness(svc));
                    self.crashed(
                        now,
                        svc,
                        Some(status),
                        format!("failed ({})", fmt_status(status)),
                    );
                }
            }
            Phase::Starting { .. } | Phase::Running => {
                let name = s.name.clone();
                self.actions.push(Action::CancelReadiness(svc));
                let level = if matches!(status, ExitStatus::Exited(0)) {
                    Level::Info
                } else {
                    Level::Warn
                };
                self.log(
                    level,
                    format!("service '{name}' exited ({})", fmt_status(status)),
                );
                self.crashed(
                    now,
                    svc,
                    Some(status),
                    format!("exited ({})", fmt_status(status)),
                );
            }
            // An exit we did not expect a process for: nothing to do.
            _ => {}
        }
    }

    /// The main process ended (or could not start) without anyone asking. Decide between a
    /// restart, giving up, or a clean stop, per the restart policy and intensities.
    fn crashed(&mut self, now: Time, svc: SvcId, status: Option<ExitStatus>, what: String) {
        let s = &self.services[svc.0];
        let clean = status.is_some_and(|st| s.is_success(st));
        let policy = s.policy();
        let restart = match policy {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => !clean,
            RestartPolicy::Temporary => false,
        };
        if !restart || self.shutting_down || !s.wanted {
            let s = self.services.get_mut(svc.0);
            s.since = now;
            if clean {
                s.phase = Phase::Stopped;
                s.wanted = false;
                s.reason = Some(what);
            } else {
                s.phase = Phase::Failed;
                s.reason = Some(what);
            }
            self.main_gone(svc, status);
            return;
        }

        // Healthy long enough: the backoff starts over.
        let s = self.services.get_mut(svc.0);
        if let Some(ready) = s.ready_at
            && now.saturating_sub(ready) >= s.reset_after()
        {
            s.backoff = None;
        }
        let (max, window) = s.intensity();
        s.restart_times.push_back(now);
        while s
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            s.restart_times.pop_front();
        }
        if s.restart_times.len() as u32 > max {
            let reason = format!(
                "{what}; restarted {max} time(s) within {}, giving up",
                fmt_duration(window)
            );
            s.phase = Phase::Failed;
            s.since = now;
            s.reason = Some(reason.clone());
            let (name, sup) = (s.name.clone(), s.supervisor);
            self.log(Level::Error, format!("service '{name}' failed: {reason}"));
            self.main_gone(svc, status);
            self.supervisor_event(now, sup, None);
            return;
        }
        let sup = s.supervisor;
        if self.supervisor_event(now, sup, Some(svc)) {
            return;
        }
        self.apply_strategy(now, sup, svc);
    }

    fn main_gone(&mut self, svc: SvcId, status: Option<ExitStatus>) {
        let s = &self.services[svc.0];
        if !s.is_main() || self.shutting_down {
            return;
        }
        let code = match status {
            Some(st) if s.is_success(st) => 0,
            Some(st) => st.shell_code(),
            None => 1,
        };
        self.actions.push(Action::MainExited(code));
    }

    /// Records a restart (or a gave-up child) in the supervisor's intensity. Returns true when
    /// the supervisor gave up (and escalated), in which case the caller must not restart.
    fn supervisor_event(&mut self, now: Time, sup: SupId, _child: Option<SvcId>) -> bool {
        let s = &mut self.supervisors[sup.0];
        if s.failed {
            return true;
        }
        s.restart_times.push_back(now);
        let window = s.cfg.max_restart_window;
        while s
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            s.restart_times.pop_front();
        }
        if s.restart_times.len() as u32 <= s.cfg.max_restarts {
            return false;
        }
        self.fail_supervisor(now, sup);
        true
    }

    fn fail_supervisor(&mut self, now: Time, sup: SupId) {
        let (name, max, window, parent) = {
            let s = &self.supervisors[sup.0];
            (
                s.cfg.name.clone(),
                s.cfg.max_restarts,
                s.cfg.max_restart_window,
                s.parent,
            )
        };
        self.log(
            Level::Error,
            format!(
                "supervisor '{name}' exceeded {max} restart(s) within {}; stopping its children",
                fmt_duration(window)
            ),
        );
        self.set_supervisor_failed(sup, true);
        let reason = format!("supervisor '{name}' gave up");
        for svc in self.descendants(sup) {
            self.give_up(now, svc, reason.clone());
        }
        match parent {
            None => self.log(
                Level::Error,
                "root supervisor gave up: the service tree is abandoned; dynamod-svmgr stays up for the operator"
                    .to_owned(),
            ),
            Some(p) => {
                let pname = self.supervisors[p.0].cfg.name.clone();
                self.log(Level::Warn, format!("escalating failure of '{name}' to supervisor '{pname}'"));
                if !self.supervisor_event(now, p, None) {
                    self.restart_supervisor(now, p, sup);
                }
            }
        }
    }

    /// The parent applies its strategy to a failed child supervisor.
    fn restart_supervisor(&mut self, now: Time, parent: SupId, child: SupId) {
        let strategy = self.supervisors[parent.0].cfg.strategy;
        let mut to_restart = vec![child];
        let mut services_too = Vec::new();
        if strategy != Strategy::OneForOne {
            // Sibling supervisors and services of the parent restart as well. For rest-for-one
            // the order is the parent's child-supervisor order.
            let sups = self.supervisors[parent.0].child_sups.clone();
            let pos = sups.iter().position(|s| *s == child).unwrap_or(0);
            for (i, s) in sups.iter().enumerate() {
                if *s != child && (strategy == Strategy::OneForAll || i > pos) {
                    to_restart.push(*s);
                }
            }
            if strategy == Strategy::OneForAll {
                services_too = self.supervisors[parent.0].children.clone();
            }
        }
        let delay = Duration::from_secs(1);
        for sup in to_restart {
            let name = self.supervisors[sup.0].cfg.name.clone();
            self.log(
                Level::Info,
                format!("restarting supervisor '{name}' in {}", fmt_duration(delay)),
            );
            self.set_supervisor_failed(sup, false);
            self.supervisors[sup.0].restart_times.clear();
            for svc in self.descendants(sup) {
                self.schedule_revival(now, svc, now + delay);
            }
        }
        for svc in services_too {
            self.schedule_revival(now, svc, now + delay);
        }
    }

    /// A service stopped by a supervisor decision becomes wanted again at `at`.
    fn schedule_revival(&mut self, now: Time, svc: SvcId, at: Time) {
        let s = self.services.get_mut(svc.0);
        if s.cfg.is_none() || !s.boot_wanted {
            return;
        }
        s.wanted = true;
        s.restart_times.clear();
        s.backoff = None;
        match s.phase.clone() {
            Phase::Stopping {
                deadline, killed, ..
            } => {
                s.phase = Phase::Stopping {
                    deadline,
                    killed,
                    then: Then::RestartAt(at),
                };
            }
            Phase::Failed | Phase::Stopped | Phase::Blocked | Phase::Waiting => {
                s.phase = Phase::Restarting { at };
                s.since = now;
            }
            _ => {}
        }
    }

    fn give_up(&mut self, now: Time, svc: SvcId, reason: String) {
        let s = self.services.get_mut(svc.0);
        match s.phase {
            Phase::Starting { .. } | Phase::Running => {
                self.begin_stop(now, svc, Then::Fail(reason));
            }
            Phase::Stopping {
                deadline, killed, ..
            } => {
                s.phase = Phase::Stopping {
                    deadline,
                    killed,
                    then: Then::Fail(reason),
                };
            }
            Phase::Waiting | Phase::Restarting { .. } => {
                s.phase = Phase::Failed;
                s.since = now;
                s.reason = Some(reason);
            }
            _ => {}
        }
    }

    fn apply_strategy(&mut self, now: Time, sup: SupId, svc: SvcId) {
        let delay = self.services.get_mut(svc.0).next_backoff();
        let at = now + delay;
        let name = self.services[svc.0].name.clone();
        let s = self.services.get_mut(svc.0);
        s.restarts += 1;
        s.phase = Phase::Restarting { at };
        s.since = now;
        self.log(
            Level::Info,
            format!("restarting '{name}' in {}", fmt_duration(delay)),
        );

        let strategy = self.supervisors[sup.0].cfg.strategy;
        if strategy == Strategy::OneForOne {
            return;
        }
        let crashed_seq = self.services[svc.0].start_seq;
        // Siblings that are up (or on their way up), latest started first.
        let mut siblings: Vec<SvcId> = self.supervisors[sup.0]
            .children
            .iter()
            .copied()
            .filter(|&c| c != svc)
            .filter(|&c| {
                let s = &self.services[c.0];
                s.is_active() && (strategy == Strategy::OneForAll || s.start_seq > crashed_seq)
            })
            .collect();
        siblings.sort_by_key(|c| std::cmp::Reverse(self.services[c.0].start_seq));
        let sname = self.supervisors[sup.0].cfg.name.clone();
        for c in siblings {
            let cname = self.services[c.0].name.clone();
            self.log(
                Level::Info,
                format!(
                    "supervisor '{sname}' ({}) restarts '{cname}'",
                    strategy.as_str()
                ),
            );
            match self.services[c.0].phase {
                Phase::Starting { .. } | Phase::Running => {
                    self.begin_stop(now, c, Then::RestartAt(at))
                }
                Phase::Waiting | Phase::Restarting { .. } => {
                    self.services.get_mut(c.0).phase = Phase::Restarting { at };
                }
                _ => {}
            }
        }
    }

    pub(crate) fn begin_stop(&mut self, now: Time, svc: SvcId, then: Then) {
        let s = self.services.get_mut(svc.0);
        match s.phase {
            Phase::Starting { .. } | Phase::Running if s.pid.is_some() => {
                let timeout = s.stop_timeout();
                s.phase = Phase::Stopping {
                    deadline: now + timeout,
                    killed: false,
                    then,
                };
                s.since = now;
                let name = s.name.clone();
                self.log(Level::Info, format!("stopping '{name}'"));
                self.actions.push(Action::Stop(svc));
            }
            Phase::Starting { .. } | Phase::Running => {
                // No process (spawn not yet reported, or it just exited): stopped at once.
                self.after_stopped(now, svc, then);
            }
            _ => {}
        }
    }

    fn after_stopped(&mut self, now: Time, svc: SvcId, then: Then) {
        let s = self.services.get_mut(svc.0);
        s.since = now;
        match then {
            Then::Stop => {
                s.phase = Phase::Stopped;
                let name = s.name.clone();
                if !self.shutting_down {
                    self.log(Level::Info, format!("service '{name}' stopped"));
                }
            }
            Then::Start => {
                s.phase = if s.wanted {
                    Phase::Waiting
                } else {
                    Phase::Stopped
                };
            }
            Then::RestartAt(at) => {
                s.phase = if s.wanted {
                    Phase::Restarting { at }
                } else {
                    Phase::Stopped
                };
            }
            Then::Fail(reason) => {
                s.phase = Phase::Failed;
                s.reason = Some(reason);
                let status = s.last_exit.map(|(st, _)| st);
                self.main_gone(svc, status);
            }
        }
    }

    fn operator_start(&mut self, now: Time, svc: SvcId) {
        if self.shutting_down {
            return;
        }
        let mut stack = vec![svc];
        while let Some(id) = stack.pop() {
            let s = self.services.get_mut(id.0);
            if s.cfg.is_none() {
                continue;
            }
            let was_wanted = s.wanted;
            s.wanted = true;
            s.boot_wanted = true;
            match s.phase.clone() {
                Phase::Stopped | Phase::Failed | Phase::Blocked => {
                    s.phase = Phase::Waiting;
                    s.since = now;
                    s.reason = None;
                    s.restart_times.clear();
                    s.backoff = None;
                }
                Phase::Stopping {
                    deadline,
                    killed,
                    then: Then::Stop,
                } => {
                    s.phase = Phase::Stopping {
                        deadline,
                        killed,
                        then: Then::Start,
                    };
                }
                // Running, starting, waiting, restarting, done: starting it again is a no-op.
                _ => {}
            }
            // Pull in what it requires or wants, as systemd does.
            if !was_wanted || id == svc {
                let deps: Vec<SvcId> = self.services[id.0].requires.clone();
                let wants: Vec<SvcId> = self.wants_of(id);
                for d in deps.into_iter().chain(wants) {
                    if !self.services[d.0].wanted {
                        stack.push(d);
                    }
                }
            }
        }
        let sup = self.services[svc.0].supervisor;
        self.revive_supervisor_chain(sup);
    }

    /// Gives a supervisor up or revives it. Its services' frontier decisions read this, so a
    /// change puts every service on the worklist (it is rare, and giving up already visits
    /// every descendant).
    fn set_supervisor_failed(&mut self, sup: SupId, failed: bool) {
        if self.supervisors[sup.0].failed != failed {
            self.supervisors[sup.0].failed = failed;
            self.services.touch_all();
        }
    }

    fn revive_supervisor_chain(&mut self, mut sup: SupId) {
        loop {
            self.set_supervisor_failed(sup, false);
            match self.supervisors[sup.0].parent {
                Some(p) => sup = p,
                None => return,
            }
        }
    }

    fn wants_of(&self, id: SvcId) -> Vec<SvcId> {
        let Some(cfg) = &self.services[id.0].cfg else {
            return Vec::new();
        };
        cfg.deps
            .wants
            .iter()
            .filter_map(|n| self.by_name.get(n).copied())
            .collect()
    }

    pub(crate) fn operator_stop(&mut self, now: Time, svc: SvcId) {
        let s = self.services.get_mut(svc.0);
        s.wanted = false;
        s.boot_wanted = false;
        match s.phase.clone() {
            Phase::Starting { .. } | Phase::Running => {
                self.actions.push(Action::CancelReadiness(svc));
                self.begin_stop(now, svc, Then::Stop);
            }
            Phase::Stopping {
                deadline, killed, ..
            } => {
                s.phase = Phase::Stopping {
                    deadline,
                    killed,
                    then: Then::Stop,
                };
            }
            Phase::Waiting | Phase::Restarting { .. } | Phase::Blocked => {
                s.phase = Phase::Stopped;
                s.since = now;
                let name = s.name.clone();
                self.log(Level::Info, format!("service '{name}' stopped"));
            }
            Phase::Done | Phase::Failed => {
                s.phase = Phase::Stopped;
                s.since = now;
            }
            Phase::Stopped | Phase::Invalid => {}
        }
    }

    fn operator_restart(&mut self, now: Time, svc: SvcId) {
        if self.shutting_down || self.services[svc.0].cfg.is_none() {
            return;
        }
        match self.services[svc.0].phase {
            Phase::Starting { .. } | Phase::Running => {
                let s = self.services.get_mut(svc.0);
                s.wanted = true;
                s.boot_wanted = true;
                s.restart_times.clear();
                s.backoff = None;
                self.actions.push(Action::CancelReadiness(svc));
                self.begin_stop(now, svc, Then::Start);
            }
            Phase::Restarting { .. } => {
                self.services.get_mut(svc.0).phase = Phase::Waiting;
            }
            _ => {
                // Stopped, failed, done…: a restart is a start. A done oneshot runs again.
                if self.services[svc.0].phase == Phase::Done {
                    self.services.get_mut(svc.0).phase = Phase::Stopped;
                }
                self.operator_start(now, svc);
            }
        }
    }

    fn shutdown(&mut self, now: Time) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let n = self.services.iter().filter(|s| s.has_process()).count();
        self.log(
            Level::Info,
            format!("stopping {n} service(s) in reverse dependency order"),
        );
        for s in self.services.iter_mut() {
            s.wanted = false;
            match s.phase {
                Phase::Waiting | Phase::Restarting { .. } => {
                    s.phase = Phase::Stopped;
                    s.since = now;
                }
                Phase::Stopping {
                    deadline, killed, ..
                } => {
                    s.phase = Phase::Stopping {
                        deadline,
                        killed,
                        then: Then::Stop,
                    };
                }
                _ => {}
            }
        }
    }

    // ---- the frontier -------------------------------------------------------------------

    /// Moves every service as far as the current states allow: start what is unblocked,
    /// block what cannot start, stop (during shutdown) what nothing depends on any more, and
    /// report start-up and shutdown completion.
    pub(crate) fn settle(&mut self, now: Time) {
        #[cfg(test)]
        if self.oracle {
            self.settle_full(now);
            return;
        }
        // Only services whose decision may read something that changed can move; the table
        // hands them out in the order a pass over every slot would reach them.
        self.services.sync(self.shutting_down);
        let mut cursor = 0;
        while let Some(i) = self.services.next_pending(&mut cursor) {
            self.settle_one(now, SvcId(i));
            self.services.sync(self.shutting_down);
        }
        if self.booted && !self.startup_complete && self.services.all_settled() {
            self.startup_complete = true;
            self.report_startup();
        }
        if self.shutting_down && !self.shutdown_reported && self.services.none_with_process() {
            self.report_shutdown();
        }
    }

    /// [`Core::settle`] as it was before the worklist: passes over every slot until one changes
    /// nothing, and completion found by scanning. The oracle of the differential tests.
    #[cfg(test)]
    fn settle_full(&mut self, now: Time) {
        loop {
            let mut changed = false;
            for i in 0..self.services.len() {
                changed |= self.settle_one(now, SvcId(i));
            }
            if !changed {
                break;
            }
        }
        self.services.sync(self.shutting_down);
        self.services.clear_pending();
        if self.booted && !self.startup_complete && self.services.iter().all(Service::settled) {
            self.startup_complete = true;
            self.report_startup();
        }
        if self.shutting_down
            && !self.shutdown_reported
            && self.services.iter().all(|s| !s.has_process())
        {
            self.report_shutdown();
        }
    }

    fn report_shutdown(&mut self) {
        self.shutdown_reported = true;
        self.log(Level::Info, "all services stopped".to_owned());
        self.actions.push(Action::ShutdownComplete);
    }

    /// Moves one service if the states it depends on allow it; returns whether it changed.
    /// When it returns false it must not have taken any service with `get_mut`: the worklist
    /// would queue its neighbours again and never drain.
    fn settle_one(&mut self, now: Time, id: SvcId) -> bool {
        #[cfg(test)]
        {
            self.settle_calls += 1;
        }
        if self.shutting_down {
            // A service may stop once everything ordered after it has stopped.
            let s = &self.services[id.0];
            if matches!(s.phase, Phase::Starting { .. } | Phase::Running) {
                let busy = s
                    .dependents
                    .iter()
                    .any(|d| self.services[d.0].has_process());
                if !busy {
                    self.actions.push(Action::CancelReadiness(id));
                    self.begin_stop(now, id, Then::Stop);
                    return true;
                }
            }
            return false;
        }
        let s = &self.services[id.0];
        match s.phase {
            Phase::Waiting => {}
            Phase::Blocked if s.wanted => {}
            _ => return false,
        }
        if self.supervisors[s.supervisor.0].failed {
            return false;
        }
        // Hard dependencies.
        if let Some(missing) = s.missing_requires.first() {
            return self.block(
                now,
                id,
                format!("requires '{missing}', which does not exist"),
            );
        }
        for k in 0..s.requires.len() {
            let d = self.services[id.0].requires[k];
            let dep = &self.services[d.0];
            match dep.phase {
                Phase::Running | Phase::Done => {}
                Phase::Failed | Phase::Invalid | Phase::Blocked => {
                    let why = match &dep.reason {
                        Some(r) => format!(
                            "requires '{}', which is {}: {r}",
                            dep.name,
                            dep.state().as_str()
                        ),
                        None => {
                            format!("requires '{}', which is {}", dep.name, dep.state().as_str())
                        }
                    };
                    return self.block(now, id, why);
                }
                Phase::Stopped if !dep.wanted => {
                    let why = format!("requires '{}', which is stopped", dep.name);
                    return self.block(now, id, why);
                }
                _ => {
                    return self.unblock(now, id);
                }
            }
        }
        // Ordering: wait until each soft dependency is settled.
        let s = &self.services[id.0];
        if s.soft.iter().any(|d| !self.services[d.0].settled()) {
            return self.unblock(now, id);
        }
        self.spawn(now, id);
        true
    }

    // `block` and `unblock` look before they take the service to change it: a service taken
    // is queued with its neighbours, and queueing on every no-op would never drain.
    fn block(&mut self, now: Time, id: SvcId, reason: String) -> bool {
        let s = &self.services[id.0];
        if s.phase == Phase::Blocked && s.reason.as_deref() == Some(reason.as_str()) {
            return false;
        }
        let s = self.services.get_mut(id.0);
        s.phase = Phase::Blocked;
        s.since = now;
        s.reason = Some(reason);
        true
    }

    fn unblock(&mut self, now: Time, id: SvcId) -> bool {
        if self.services[id.0].phase == Phase::Blocked {
            let s = self.services.get_mut(id.0);
            s.phase = Phase::Waiting;
            s.since = now;
            s.reason = None;
            return true;
        }
        false
    }

    fn spawn(&mut self, now: Time, id: SvcId) {
        self.start_seq += 1;
        let s = self.services.get_mut(id.0);
        let needs_deadline = s.is_oneshot() || s.is_forking() || s.readiness_kind() != "none";
        let deadline = needs_deadline.then(|| now + s.readiness_timeout());
        s.phase = Phase::Starting { deadline };
        s.since = now;
        s.reason = None;
        s.start_seq = self.start_seq;
        s.ready_at = None;
        self.actions.push(Action::Spawn(id));
    }

    fn report_startup(&mut self) {
        let count = |p: fn(&Phase) -> bool| self.services.iter().filter(|s| p(&s.phase)).count();
        let ready = count(|p| matches!(p, Phase::Running | Phase::Done));
        let blocked = count(|p| matches!(p, Phase::Blocked));
        let failed = count(|p| matches!(p, Phase::Failed));
        let invalid = count(|p| matches!(p, Phase::Invalid));
        if blocked > 0 {
            let list: Vec<String> = self
                .services
                .iter()
                .filter(|s| s.phase == Phase::Blocked)
                .map(|s| {
                    format!(
                        "'{}' ({})",
                        s.name,
                        s.reason.as_deref().unwrap_or("unknown")
                    )
                })
                .collect();
            self.log(
                Level::Warn,
                format!("{blocked} service(s) blocked: {}", list.join(", ")),
            );
        }
        let mut line = format!("startup complete: {ready} ready, {blocked} blocked");
        if failed > 0 {
            line.push_str(&format!(", {failed} failed"));
        }
        if invalid > 0 {
            line.push_str(&format!(", {invalid} invalid"));
        }
        self.log(Level::Info, line);
        self.actions.push(Action::StartupComplete);
    }

    /// Every service under `sup`, recursively, in tree order.
    pub fn descendants(&self, sup: SupId) -> Vec<SvcId> {
        let mut out = Vec::new();
        let mut stack = vec![sup];
        while let Some(s) = stack.pop() {
            out.extend(self.supervisors[s.0].children.iter().copied());
            stack.extend(self.supervisors[s.0].child_sups.iter().rev().copied());
        }
        out
    }
}

/// `code 0`, `signal 9`.
pub fn fmt_status(st: ExitStatus) -> String {
    match st {
        ExitStatus::Exited(c) => format!("code {c}"),
        ExitStatus::Signaled(s) => format!("signal {s}"),
    }
}

/// `250ms`, `1s`, `1.5s`, `2m`, `1h`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{}s", ms / 1000, frac.trim_end_matches('0'))
    }
}

/// Readiness name of a config, for callers that have one.
pub fn readiness_name(r: &Readiness) -> &'static str {
    r.as_str()
}

/// Type name of a config.
pub fn type_name(t: ServiceType) -> &'static str {
    t.as_str()
}

/// Internal helper kept with the model: restart windows.
pub(crate) type Window = VecDeque<Time>;
