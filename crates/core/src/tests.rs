//! Behaviour of the core, one rule per test.

use std::path::PathBuf;
use std::time::Duration;

use dynamod_config::{
    CgroupLimits, Config, Dependencies, InvalidService, LogConfig, NamespaceConfig, Readiness,
    ReadinessConfig, RestartConfig, RestartPolicy, ServiceConfig, ServiceType, ShutdownConfig,
    Strategy, SupervisorConfig,
};
use dynamod_proto::{ExitStatus, ServiceState};

use crate::{Action, Core, Event, Level, SvcId, Time};

pub(crate) fn svc(name: &str) -> ServiceConfig {
    ServiceConfig {
        name: name.to_owned(),
        file: PathBuf::from(format!("/etc/dynamod/services/{name}.toml")),
        supervisor: "root".to_owned(),
        exec: vec!["/bin/true".to_owned()],
        workdir: None,
        kind: ServiceType::Simple,
        environment: Default::default(),
        environment_file: None,
        pidfile: None,
        tty: None,
        main: false,
        user: None,
        restart: RestartConfig::default(),
        readiness: ReadinessConfig::default(),
        deps: Dependencies::default(),
        cgroup: CgroupLimits::default(),
        namespace: NamespaceConfig::default(),
        shutdown: ShutdownConfig::default(),
        log: LogConfig::default(),
    }
}

fn oneshot(name: &str) -> ServiceConfig {
    let mut s = svc(name);
    s.kind = ServiceType::Oneshot;
    s.restart.policy = RestartPolicy::Temporary;
    s
}

fn requires(mut s: ServiceConfig, deps: &[&str]) -> ServiceConfig {
    s.deps.requires = deps.iter().map(|d| d.to_string()).collect();
    s
}

fn after(mut s: ServiceConfig, deps: &[&str]) -> ServiceConfig {
    s.deps.after = deps.iter().map(|d| d.to_string()).collect();
    s
}

fn under(mut s: ServiceConfig, sup: &str) -> ServiceConfig {
    s.supervisor = sup.to_owned();
    s
}

fn sup(name: &str, strategy: Strategy, max: u32, window_s: u64) -> SupervisorConfig {
    SupervisorConfig {
        name: name.to_owned(),
        file: None,
        parent: Some("root".to_owned()),
        strategy,
        max_restarts: max,
        max_restart_window: Duration::from_secs(window_s),
    }
}

fn config(services: Vec<ServiceConfig>, sups: Vec<SupervisorConfig>) -> Config {
    let mut supervisors = vec![SupervisorConfig::builtin_root()];
    supervisors.extend(sups);
    Config {
        services,
        invalid: Vec::new(),
        supervisors,
        diagnostics: Vec::new(),
    }
}

/// A core plus a fake runtime: spawns succeed with increasing PIDs.
struct Sim {
    core: Core,
    now: Time,
    next_pid: i32,
    log: Vec<String>,
    spawned: Vec<String>,
    stopped: Vec<String>,
    killed: Vec<String>,
    events: Vec<Action>,
}

impl Sim {
    fn new(cfg: Config) -> Self {
        Sim {
            core: Core::new(&cfg),
            now: Duration::ZERO,
            next_pid: 100,
            log: Vec::new(),
            spawned: Vec::new(),
            stopped: Vec::new(),
            killed: Vec::new(),
            events: Vec::new(),
        }
    }

    fn id(&self, name: &str) -> SvcId {
        self.core.lookup(name).unwrap()
    }

    fn state(&self, name: &str) -> ServiceState {
        self.core.state(self.id(name))
    }

    fn pid(&self, name: &str) -> Option<i32> {
        self.core.service(self.id(name)).pid
    }

    fn run(&mut self, actions: Vec<Action>) {
        let mut queue = actions;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for a in queue {
                match &a {
                    Action::Spawn(id) => {
                        let name = self.core.service(*id).name.clone();
                        self.spawned.push(name);
                        self.next_pid += 1;
                        let pid = self.next_pid;
                        next.extend(self.core.handle(self.now, Event::Spawned { svc: *id, pid }));
                    }
                    Action::Stop(id) => self.stopped.push(self.core.service(*id).name.clone()),
                    Action::Kill(id) => self.killed.push(self.core.service(*id).name.clone()),
                    Action::Log(_, m) => self.log.push(m.clone()),
                    _ => {}
                }
                self.events.push(a);
            }
            queue = next;
        }
    }

    fn send(&mut self, ev: Event) {
        let a = self.core.handle(self.now, ev);
        self.run(a);
    }

    fn boot(&mut self) {
        self.send(Event::Boot);
    }

    fn exit(&mut self, name: &str, status: ExitStatus) {
        let svc = self.id(name);
        self.send(Event::Exited { svc, status });
    }

    fn ready(&mut self, name: &str) {
        let svc = self.id(name);
        self.send(Event::Ready { svc });
    }

    /// Advances the clock in 10 ms steps, ticking at every deadline.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(dl) = self.core.next_deadline() {
            if dl > end {
                break;
            }
            self.now = self.now.max(dl);
            let a = self.core.tick(self.now);
            self.run(a);
        }
        self.now = end;
        let a = self.core.tick(self.now);
        self.run(a);
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.iter().any(|l| l.contains(needle))
    }

    fn has(&self, pred: impl Fn(&Action) -> bool) -> bool {
        self.events.iter().any(pred)
    }
}

#[test]
fn requires_chain_starts_one_after_another() {
    let mut sim = Sim::new(config(
        vec![
            requires(svc("c"), &["b"]),
            requires(svc("b"), &["a"]),
            svc("a"),
        ],
        vec![],
    ));
    sim.boot();
    assert_eq!(sim.spawned, ["a", "b", "c"]);
    assert!(sim.logged("startup complete: 3 ready, 0 blocked"));
}

#[test]
fn notify_readiness_holds_dependents_until_ready() {
    let mut a = svc("a");
    a.readiness.kind = Readiness::Notify;
    let mut sim = Sim::new(config(vec![a, requires(svc("b"), &["a"])], vec![]));
    sim.boot();
    assert_eq!(sim.spawned, ["a"]);
    assert_eq!(sim.state("a"), ServiceState::Starting);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.spawned, ["a"]);
    sim.ready("a");
    assert_eq!(sim.spawned, ["a", "b"]);
    assert!(sim.logged("startup complete: 2 ready, 0 blocked"));
}

#[test]
fn oneshot_completion_releases_dependents_and_is_logged() {
    let mut sim = Sim::new(config(
        vec![oneshot("boot"), after(svc("x"), &["boot"])],
        vec![],
    ));
    sim.boot();
    assert_eq!(sim.spawned, ["boot"]);
    sim.exit("boot", ExitStatus::Exited(0));
    assert!(sim.logged("oneshot 'boot' completed (code 0)"));
    assert_eq!(sim.state("boot"), ServiceState::Done);
    assert_eq!(sim.spawned, ["boot", "x"]);
}

#[test]
fn failed_requirement_blocks_transitively_with_reason_and_after_still_starts() {
    let mut sim = Sim::new(config(
        vec![
            oneshot("a"),
            requires(svc("b"), &["a"]),
            requires(svc("c"), &["b"]),
            after(svc("d"), &["c"]),
        ],
        vec![],
    ));
    sim.boot();
    sim.exit("a", ExitStatus::Exited(3));
    assert_eq!(sim.state("a"), ServiceState::Failed);
    assert_eq!(sim.state("b"), ServiceState::Blocked);
    assert_eq!(sim.state("c"), ServiceState::Blocked);
    let reason = sim.core.service(sim.id("b")).reason.clone().unwrap();
    assert!(reason.contains("requires 'a', which is failed"), "{reason}");
    let reason_c = sim.core.service(sim.id("c")).reason.clone().unwrap();
    assert!(
        reason_c.contains("requires 'b', which is blocked"),
        "{reason_c}"
    );
    assert_eq!(sim.spawned, ["a", "d"]);
    assert!(sim.logged("startup complete: 1 ready, 2 blocked, 1 failed"));
}

#[test]
fn unknown_requirement_blocks_and_unknown_after_is_ignored() {
    let mut sim = Sim::new(config(
        vec![requires(svc("a"), &["ghost"]), after(svc("b"), &["ghost"])],
        vec![],
    ));
    sim.boot();
    assert_eq!(sim.state("a"), ServiceState::Blocked);
    assert_eq!(sim.state("b"), ServiceState::Running);
}

#[test]
fn invalid_service_is_listed_and_blocks_its_dependents() {
    let mut cfg = config(vec![requires(svc("b"), &["bad"]), svc("c")], vec![]);
    cfg.invalid.push(InvalidService {
        name: "bad".into(),
        file: PathBuf::from("/x/bad.toml"),
        supervisor: None,
        reason: "/x/bad.toml:3:1: error: unknown key `exc`".into(),
    });
    let mut sim = Sim::new(cfg);
    sim.boot();
    assert_eq!(sim.state("bad"), ServiceState::Invalid);
    assert_eq!(sim.state("b"), ServiceState::Blocked);
    assert_eq!(sim.state("c"), ServiceState::Running);
    assert!(sim.logged("startup complete: 1 ready, 1 blocked, 1 invalid"));
}

#[test]
fn permanent_service_backoff_doubles_up_to_max_delay() {
    let mut s = svc("a");
    s.restart.delay = Duration::from_secs(1);
    s.restart.max_delay = Duration::from_secs(4);
    s.restart.max_restarts = 100;
    s.restart.max_restart_window = Duration::from_secs(1000);
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    let mut delays = Vec::new();
    for _ in 0..5 {
        sim.exit("a", ExitStatus::Exited(1));
        let start = sim.now;
        let before = sim.spawned.len();
        while sim.spawned.len() == before {
            sim.advance(Duration::from_millis(100));
        }
        delays.push((sim.now - start).as_millis());
    }
    assert_eq!(delays, [1000, 2000, 4000, 4000, 4000]);
}

#[test]
fn backoff_resets_after_healthy_running() {
    let mut s = svc("a");
    s.restart.reset_after = Duration::from_secs(10);
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    sim.exit("a", ExitStatus::Exited(1));
    sim.advance(Duration::from_secs(1));
    sim.exit("a", ExitStatus::Exited(1));
    assert!(sim.logged("restarting 'a' in 2s"));
    sim.advance(Duration::from_secs(2));
    sim.advance(Duration::from_secs(11));
    sim.exit("a", ExitStatus::Exited(1));
    assert_eq!(
        sim.log
            .iter()
            .filter(|l| l.contains("restarting 'a' in 1s"))
            .count(),
        2
    );
}

#[test]
fn service_intensity_exceeded_fails_it() {
    let mut s = svc("a");
    s.restart.delay = Duration::from_millis(10);
    s.restart.max_delay = Duration::from_millis(10);
    s.restart.max_restarts = 3;
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    for _ in 0..4 {
        sim.exit("a", ExitStatus::Signaled(9));
        sim.advance(Duration::from_millis(20));
    }
    assert_eq!(sim.state("a"), ServiceState::Failed);
    assert_eq!(sim.spawned.len(), 4);
    assert!(sim.logged("giving up"));
}

#[test]
fn transient_restarts_only_after_abnormal_exit_and_success_codes_count_as_clean() {
    let mut s = svc("t");
    s.restart.policy = RestartPolicy::Transient;
    s.restart.success_exit_codes = vec![143];
    let mut sim = Sim::new(config(vec![s.clone()], vec![]));
    sim.boot();
    sim.exit("t", ExitStatus::Exited(143));
    assert_eq!(sim.state("t"), ServiceState::Stopped);
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    sim.exit("t", ExitStatus::Exited(2));
    assert_eq!(sim.state("t"), ServiceState::Restarting);
}

#[test]
fn temporary_is_never_restarted() {
    let mut s = svc("t");
    s.restart.policy = RestartPolicy::Temporary;
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    sim.exit("t", ExitStatus::Signaled(9));
    sim.advance(Duration::from_secs(60));
    assert_eq!(sim.state("t"), ServiceState::Failed);
    assert_eq!(sim.spawned.len(), 1);
}

#[test]
fn operator_stop_of_permanent_service_is_not_a_crash() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.boot();
    let svc_a = sim.id("a");
    sim.send(Event::Stop { svc: svc_a });
    assert_eq!(sim.stopped, ["a"]);
    assert_eq!(sim.state("a"), ServiceState::Stopping);
    sim.exit("a", ExitStatus::Signaled(15));
    sim.advance(Duration::from_secs(120));
    assert_eq!(sim.state("a"), ServiceState::Stopped);
    assert_eq!(sim.spawned.len(), 1);
}

#[test]
fn stop_during_restart_delay_cancels_the_restart() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.boot();
    sim.exit("a", ExitStatus::Exited(1));
    assert_eq!(sim.state("a"), ServiceState::Restarting);
    let id = sim.id("a");
    sim.send(Event::Stop { svc: id });
    sim.advance(Duration::from_secs(60));
    assert_eq!(sim.state("a"), ServiceState::Stopped);
    assert_eq!(sim.spawned.len(), 1);
}

#[test]
fn starting_a_running_service_is_a_no_op() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.boot();
    let id = sim.id("a");
    sim.send(Event::Start { svc: id });
    assert_eq!(sim.spawned.len(), 1);
    assert_eq!(sim.state("a"), ServiceState::Running);
}

#[test]
fn restart_stops_then_spawns_exactly_once() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.boot();
    let first = sim.pid("a");
    let id = sim.id("a");
    sim.send(Event::Restart { svc: id });
    assert_eq!(
        sim.spawned.len(),
        1,
        "no second copy before the first is gone"
    );
    sim.exit("a", ExitStatus::Signaled(15));
    assert_eq!(sim.spawned.len(), 2);
    assert_ne!(sim.pid("a"), first);
    assert_eq!(sim.state("a"), ServiceState::Running);
}

#[test]
fn start_after_stop_brings_it_back_and_pulls_in_requirements() {
    let mut sim = Sim::new(config(
        vec![svc("db"), requires(svc("app"), &["db"])],
        vec![],
    ));
    sim.boot();
    let (db, app) = (sim.id("db"), sim.id("app"));
    sim.send(Event::Stop { svc: app });
    sim.exit("app", ExitStatus::Signaled(15));
    sim.send(Event::Stop { svc: db });
    sim.exit("db", ExitStatus::Signaled(15));
    sim.send(Event::Start { svc: app });
    assert_eq!(sim.state("db"), ServiceState::Running);
    assert_eq!(sim.state("app"), ServiceState::Running);
    assert_eq!(sim.spawned, ["db", "app", "db", "app"]);
}

#[test]
fn shutdown_stops_in_reverse_dependency_order() {
    let mut sim = Sim::new(config(
        vec![
            requires(svc("c"), &["b"]),
            after(svc("b"), &["a"]),
            svc("a"),
            svc("lone"),
        ],
        vec![],
    ));
    sim.boot();
    sim.send(Event::Shutdown);
    // c and lone first (nothing depends on them).
    assert_eq!(sim.stopped, ["c", "lone"]);
    sim.exit("c", ExitStatus::Signaled(15));
    assert_eq!(sim.stopped, ["c", "lone", "b"]);
    sim.exit("lone", ExitStatus::Signaled(15));
    sim.exit("b", ExitStatus::Signaled(15));
    assert_eq!(sim.stopped, ["c", "lone", "b", "a"]);
    assert!(!sim.has(|a| *a == Action::ShutdownComplete));
    sim.exit("a", ExitStatus::Signaled(15));
    assert!(sim.has(|a| *a == Action::ShutdownComplete));
    assert!(sim.logged("all services stopped"));
    // Nothing is restarted during shutdown.
    assert_eq!(sim.spawned.len(), 4);
}

#[test]
fn stop_timeout_escalates_to_kill_then_gives_up_waiting() {
    let mut s = svc("stubborn");
    s.shutdown.stop_timeout = Duration::from_secs(2);
    let mut sim = Sim::new(config(vec![s], vec![]));
    sim.boot();
    sim.send(Event::Shutdown);
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.killed, ["stubborn"]);
    sim.advance(crate::KILL_GRACE);
    assert!(sim.has(|a| *a == Action::ShutdownComplete));
}

#[test]
fn shutdown_completes_at_once_when_nothing_runs() {
    let mut sim = Sim::new(config(vec![oneshot("o")], vec![]));
    sim.boot();
    sim.exit("o", ExitStatus::Exited(0));
    sim.send(Event::Shutdown);
    assert!(sim.has(|a| *a == Action::ShutdownComplete));
}

#[test]
fn oneshot_that_never_exits_fails_at_its_timeout_and_boot_completes() {
    let mut o = oneshot("hang");
    o.readiness.timeout = Duration::from_secs(5);
    o.shutdown.stop_timeout = Duration::from_secs(1);
    let mut sim = Sim::new(config(vec![o, after(svc("x"), &["hang"])], vec![]));
    sim.boot();
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.stopped, ["hang"]);
    sim.exit("hang", ExitStatus::Signaled(15));
    assert_eq!(sim.state("hang"), ServiceState::Failed);
    assert_eq!(sim.state("x"), ServiceState::Running);
    assert!(sim.logged("startup complete: 1 ready, 0 blocked, 1 failed"));
}

#[test]
fn readiness_timeout_fails_the_service_and_blocks_requirers() {
    let mut a = svc("a");
    a.readiness.kind = Readiness::Notify;
    a.readiness.timeout = Duration::from_secs(3);
    let mut sim = Sim::new(config(vec![a, requires(svc("b"), &["a"])], vec![]));
    sim.boot();
    sim.advance(Duration::from_secs(3));
    assert_eq!(sim.stopped, ["a"]);
    sim.exit("a", ExitStatus::Signaled(15));
    assert_eq!(sim.state("a"), ServiceState::Failed);
    assert_eq!(sim.state("b"), ServiceState::Blocked);
    let why = sim.core.service(sim.id("b")).reason.clone().unwrap();
    assert!(why.contains("did not become ready within 3s"), "{why}");
}

#[test]
fn one_for_all_stops_siblings_in_reverse_start_order_and_restarts_all() {
    let cfg = config(
        vec![
            under(svc("a"), "grp"),
            under(after(svc("b"), &["a"]), "grp"),
            under(after(svc("c"), &["b"]), "grp"),
        ],
        vec![sup("grp", Strategy::OneForAll, 10, 60)],
    );
    let mut sim = Sim::new(cfg);
    sim.boot();
    assert_eq!(sim.spawned, ["a", "b", "c"]);
    sim.exit("a", ExitStatus::Signaled(9));
    assert_eq!(sim.stopped, ["c", "b"]);
    sim.exit("c", ExitStatus::Signaled(15));
    sim.exit("b", ExitStatus::Signaled(15));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.spawned, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn one_for_all_does_not_rerun_completed_oneshots() {
    let cfg = config(
        vec![
            under(oneshot("init"), "grp"),
            under(after(svc("d"), &["init"]), "grp"),
        ],
        vec![sup("grp", Strategy::OneForAll, 10, 60)],
    );
    let mut sim = Sim::new(cfg);
    sim.boot();
    sim.exit("init", ExitStatus::Exited(0));
    sim.exit("d", ExitStatus::Exited(1));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.spawned, ["init", "d", "d"]);
}

#[test]
fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    let cfg = config(
        vec![
            under(svc("a"), "grp"),
            under(after(svc("b"), &["a"]), "grp"),
            under(after(svc("c"), &["b"]), "grp"),
        ],
        vec![sup("grp", Strategy::RestForOne, 10, 60)],
    );
    let mut sim = Sim::new(cfg);
    sim.boot();
    sim.exit("b", ExitStatus::Exited(1));
    assert_eq!(sim.stopped, ["c"]);
    sim.exit("c", ExitStatus::Signaled(15));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.spawned, ["a", "b", "c", "b", "c"]);
    assert_eq!(sim.state("a"), ServiceState::Running);
}

#[test]
fn supervisor_intensity_exceeded_escalates_to_root() {
    let mut s = under(svc("flaky"), "grp");
    s.restart.delay = Duration::from_millis(10);
    s.restart.max_delay = Duration::from_millis(10);
    let cfg = config(
        vec![s, under(svc("peer"), "grp")],
        vec![sup("grp", Strategy::OneForAll, 2, 60)],
    );
    let mut sim = Sim::new(cfg);
    sim.boot();
    for _ in 0..3 {
        sim.exit("flaky", ExitStatus::Exited(1));
        if sim.state("peer") == ServiceState::Stopping {
            sim.exit("peer", ExitStatus::Signaled(15));
        }
        sim.advance(Duration::from_millis(20));
    }
    assert!(
        sim.logged("supervisor 'grp' exceeded 2 restart(s)"),
        "{:#?}",
        sim.log
    );
    assert!(sim.logged("escalating failure of 'grp' to supervisor 'root'"));
}

#[test]
fn root_giving_up_keeps_the_manager_up_and_reports_it() {
    let mut s = svc("flaky");
    s.restart.delay = Duration::from_millis(10);
    s.restart.max_delay = Duration::from_millis(10);
    s.restart.max_restarts = 100;
    let mut root = SupervisorConfig::builtin_root();
    root.max_restarts = 2;
    let cfg = Config {
        services: vec![s],
        invalid: vec![],
        supervisors: vec![root],
        diagnostics: vec![],
    };
    let mut sim = Sim::new(cfg);
    sim.boot();
    for _ in 0..3 {
        sim.exit("flaky", ExitStatus::Exited(1));
        sim.advance(Duration::from_millis(20));
    }
    assert!(sim.logged("root supervisor gave up"));
    assert_eq!(sim.state("flaky"), ServiceState::Failed);
}

#[test]
fn main_service_exit_reports_its_code_and_maps_success_codes() {
    let mut m = svc("app");
    m.main = true;
    m.restart.policy = RestartPolicy::Temporary;
    m.restart.success_exit_codes = vec![143];
    let mut sim = Sim::new(config(vec![m.clone()], vec![]));
    sim.boot();
    sim.exit("app", ExitStatus::Exited(7));
    assert!(sim.has(|a| *a == Action::MainExited(7)));
    let mut sim = Sim::new(config(vec![m.clone()], vec![]));
    sim.boot();
    sim.exit("app", ExitStatus::Exited(143));
    assert!(sim.has(|a| *a == Action::MainExited(0)));
    let mut sim = Sim::new(config(vec![m], vec![]));
    sim.boot();
    sim.exit("app", ExitStatus::Signaled(9));
    assert!(sim.has(|a| *a == Action::MainExited(137)));
}

#[test]
fn spawn_failure_counts_as_a_crash_and_is_retried() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    let boot = sim.core.handle(sim.now, Event::Boot);
    assert!(boot.contains(&Action::Spawn(sim.id("a"))));
    let id = sim.id("a");
    let a = sim.core.handle(
        sim.now,
        Event::SpawnFailed {
            svc: id,
            error: "not found".into(),
        },
    );
    sim.run(a);
    assert!(sim.logged("failed to start 'a': not found"));
    assert_eq!(sim.state("a"), ServiceState::Restarting);
}

#[test]
fn tree_lists_supervisors_then_services() {
    let cfg = config(
        vec![under(svc("x"), "early"), svc("y")],
        vec![
            sup("early", Strategy::OneForAll, 3, 30),
            sup("desktop", Strategy::OneForOne, 10, 120),
        ],
    );
    let sim = Sim::new(cfg);
    let t = sim.core.tree();
    assert_eq!(t.name, "root");
    let names: Vec<&str> = t.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["early", "desktop", "y"]);
    assert_eq!(t.children[0].children[0].name, "x");
}

#[test]
fn levels_distinguish_failures_from_progress() {
    let mut sim = Sim::new(config(vec![oneshot("o")], vec![]));
    let mut actions = sim.core.handle(sim.now, Event::Boot);
    let id = sim.id("o");
    actions.extend(sim.core.handle(sim.now, Event::Spawned { svc: id, pid: 5 }));
    actions.extend(sim.core.handle(
        sim.now,
        Event::Exited {
            svc: id,
            status: ExitStatus::Exited(1),
        },
    ));
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Log(Level::Warn, m) if m == "oneshot 'o' failed (code 1)")
        )
    );
}

#[test]
fn duration_formatting_is_compact() {
    use crate::fmt_duration;
    assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
    assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
    assert_eq!(fmt_duration(Duration::from_secs(3600)), "1h");
}

#[test]
fn reload_restarts_only_changed_services_and_starts_new_ones() {
    let cfg = config(vec![svc("a"), svc("b"), svc("gone")], vec![]);
    let mut sim = Sim::new(cfg);
    sim.boot();
    let (pid_a, pid_b) = (sim.pid("a"), sim.pid("b"));
    let mut b2 = svc("b");
    b2.exec = vec!["/bin/false".into()];
    let new = config(vec![svc("a"), b2, svc("new")], vec![]);
    let (summary, actions) = sim.core.reload(sim.now, &new);
    sim.run(actions);
    assert_eq!(summary.added, ["new"]);
    assert_eq!(summary.removed, ["gone"]);
    assert_eq!(summary.changed, ["b"]);
    assert_eq!(summary.unchanged, 1);
    assert_eq!(sim.stopped, ["gone", "b"]);
    assert_eq!(sim.pid("a"), pid_a);
    sim.exit("b", ExitStatus::Signaled(15));
    assert_ne!(sim.pid("b"), pid_b);
    assert_eq!(sim.state("b"), ServiceState::Running);
    assert_eq!(sim.state("new"), ServiceState::Running);
    assert!(sim.core.lookup("gone").is_none());
    assert!(sim.logged("reload complete: 1 added, 1 removed, 1 changed, 1 unchanged"));
}

#[test]
fn reload_fixes_an_invalid_service_and_starts_it() {
    let mut cfg = config(vec![], vec![]);
    cfg.invalid.push(InvalidService {
        name: "x".into(),
        file: PathBuf::from("/x.toml"),
        supervisor: None,
        reason: "bad".into(),
    });
    let mut sim = Sim::new(cfg);
    sim.boot();
    assert_eq!(sim.state("x"), ServiceState::Invalid);
    let (_, actions) = sim.core.reload(sim.now, &config(vec![svc("x")], vec![]));
    sim.run(actions);
    assert_eq!(sim.state("x"), ServiceState::Running);
}

#[test]
fn reload_moves_a_service_to_a_new_supervisor() {
    let mut sim = Sim::new(config(vec![svc("x")], vec![]));
    sim.boot();
    let new = config(
        vec![under(svc("x"), "grp")],
        vec![sup("grp", Strategy::OneForOne, 5, 60)],
    );
    let (summary, actions) = sim.core.reload(sim.now, &new);
    sim.run(actions);
    assert_eq!(summary.changed, ["x"]);
    let t = sim.core.tree();
    assert_eq!(t.children[0].name, "grp");
    assert_eq!(t.children[0].children[0].name, "x");
}

#[test]
fn forking_service_is_running_once_its_daemon_is_known() {
    let mut f = svc("daemon");
    f.kind = ServiceType::Forking;
    let mut sim = Sim::new(config(vec![f, requires(svc("user"), &["daemon"])], vec![]));
    sim.boot();
    assert_eq!(sim.state("daemon"), ServiceState::Starting);
    let id = sim.id("daemon");
    sim.send(Event::MainPid { svc: id, pid: 4242 });
    assert_eq!(sim.state("daemon"), ServiceState::Running);
    assert_eq!(sim.pid("daemon"), Some(4242));
    assert_eq!(sim.spawned, ["daemon", "user"]);
}

#[test]
fn restored_services_are_neither_duplicated_nor_rerun_at_boot() {
    let mut sim = Sim::new(config(
        vec![
            oneshot("once"),
            after(svc("daemon"), &["once"]),
            svc("parked"),
            requires(svc("fresh"), &["daemon"]),
        ],
        vec![],
    ));
    let (once, daemon, parked) = (sim.id("once"), sim.id("daemon"), sim.id("parked"));
    sim.core.restore(sim.now, once, crate::Restored::Done);
    sim.core.restore(
        sim.now,
        daemon,
        crate::Restored::Running {
            pid: 777,
            ready: true,
            restarts: 2,
        },
    );
    sim.core.restore(sim.now, parked, crate::Restored::Stopped);
    sim.boot();
    assert_eq!(sim.spawned, ["fresh"]);
    assert_eq!(sim.pid("daemon"), Some(777));
    assert_eq!(sim.core.service(daemon).restarts, 2);
    assert_eq!(sim.state("parked"), ServiceState::Stopped);
    // An adopted process that dies is restarted like any other.
    sim.exit("daemon", ExitStatus::Signaled(9));
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.spawned, ["fresh", "daemon"]);
}

#[test]
fn a_forked_process_is_not_ready_until_it_runs_its_program() {
    let mut sim = Sim::new(config(vec![svc("a"), requires(svc("b"), &["a"])], vec![]));
    let boot = sim.core.handle(sim.now, Event::Boot);
    let a = sim.id("a");
    assert!(boot.contains(&Action::Spawn(a)));
    let forked = sim.core.handle(sim.now, Event::Forked { svc: a, pid: 7 });
    assert!(!forked.contains(&Action::Spawn(sim.id("b"))));
    assert_eq!(sim.state("a"), ServiceState::Starting);
    let spawned = sim.core.handle(sim.now, Event::Spawned { svc: a, pid: 7 });
    assert_eq!(sim.state("a"), ServiceState::Running);
    assert!(spawned.contains(&Action::Spawn(sim.id("b"))));
}

#[test]
fn stopping_a_forked_process_signals_it_instead_of_forgetting_it() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.core.handle(sim.now, Event::Boot);
    let a = sim.id("a");
    sim.core.handle(sim.now, Event::Forked { svc: a, pid: 7 });
    let stop = sim.core.handle(sim.now, Event::Stop { svc: a });
    assert!(stop.contains(&Action::Stop(a)));
    assert_eq!(sim.state("a"), ServiceState::Stopping);
    // The outcome of the start still arrives, then the exit.
    sim.core.handle(sim.now, Event::Spawned { svc: a, pid: 7 });
    sim.core.handle(
        sim.now,
        Event::Exited {
            svc: a,
            status: ExitStatus::Signaled(15),
        },
    );
    assert_eq!(sim.state("a"), ServiceState::Stopped);
}

#[test]
fn a_forked_process_that_fails_before_exec_is_a_spawn_failure() {
    let mut sim = Sim::new(config(vec![svc("a")], vec![]));
    sim.core.handle(sim.now, Event::Boot);
    let a = sim.id("a");
    sim.core.handle(sim.now, Event::Forked { svc: a, pid: 7 });
    let failed = sim.core.handle(
        sim.now,
        Event::SpawnFailed {
            svc: a,
            error: "chdir /nowhere: No such file or directory".into(),
        },
    );
    sim.run(failed);
    assert!(sim.logged("failed to start 'a': chdir /nowhere: No such file or directory"));
    assert_eq!(sim.state("a"), ServiceState::Restarting);
}
