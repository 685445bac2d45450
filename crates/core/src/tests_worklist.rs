//! The worklist settles exactly as the full rescan did.
//!
//! Random graphs (requires, wants, after, before, cycles, unknown and invalid names, nested
//! supervisors with every strategy) are driven through random event sequences — restores,
//! boot, spawns and spawn failures, readiness, exits, operator requests, deadlines, reloads,
//! shutdown — by two cores at once: one settling from its worklist, one by the old full rescan
//! (`Core::settle_full`). After every event both must have returned the same actions and be in
//! the same state.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dynamod_config::{
    Config, InvalidService, Readiness, RestartPolicy, ServiceConfig, ServiceType, Strategy,
    SupervisorConfig,
};
use dynamod_proto::ExitStatus;

use crate::{Action, Core, Event, Restored, SvcId, Time};

/// xorshift64*: deterministic, good enough to pick test cases, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn ms(&mut self, steps: usize, step_ms: u64) -> Duration {
        Duration::from_millis(self.below(steps) as u64 * step_ms)
    }
}

fn service(name: &str) -> ServiceConfig {
    crate::tests::svc(name)
}

/// A random total order of names: a service only depends on names ranked below its own, so
/// every generated configuration is acyclic, as the validator guarantees (it refuses every
/// service on a dependency cycle of any kind). Ranks are fixed per case, so a reload cannot
/// close a cycle either.
struct Ranks(u64);

impl Ranks {
    fn rank<'a>(&self, name: &'a str) -> (u64, &'a str) {
        // FNV-1a, salted per case.
        let mut h = 0xcbf2_9ce4_8422_2325 ^ self.0;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h, name)
    }

    fn below(&self, dep: &str, name: &str) -> bool {
        self.rank(dep) < self.rank(name)
    }
}

/// Names a dependency may point at: the services, the invalid ones and some that do not exist.
fn dep_names(n: usize, invalid: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    names.extend((0..invalid).map(|i| format!("bad{i}")));
    names.push("ghost".to_owned());
    names
}

fn random_service(
    rng: &mut Rng,
    ranks: &Ranks,
    name: &str,
    names: &[String],
    sups: usize,
) -> ServiceConfig {
    let mut s = service(name);
    s.kind = match rng.below(20) {
        0..=9 => ServiceType::Simple,
        10..=14 => ServiceType::Oneshot,
        15..=16 => ServiceType::Forking,
        _ => ServiceType::Notify,
    };
    s.readiness.kind = match rng.below(10) {
        0..=5 => Readiness::None,
        6..=8 => Readiness::Notify,
        _ => Readiness::Fd,
    };
    // Coarse steps so that deadlines of different services often coincide.
    s.readiness.timeout = rng.ms(6, 500) + Duration::from_millis(500);
    s.restart.policy = match rng.below(3) {
        0 => RestartPolicy::Permanent,
        1 => RestartPolicy::Transient,
        _ => RestartPolicy::Temporary,
    };
    s.restart.delay = rng.ms(4, 250);
    s.restart.max_delay = s.restart.delay * rng.below(4) as u32;
    s.restart.max_restarts = rng.below(6) as u32;
    s.restart.max_restart_window = rng.ms(20, 1000) + Duration::from_secs(1);
    s.restart.reset_after = rng.ms(10, 1000);
    if rng.chance(20) {
        s.restart.success_exit_codes = vec![3];
    }
    s.shutdown.stop_timeout = rng.ms(4, 500);
    s.main = rng.chance(3);
    s.supervisor = match rng.below(4) {
        0 | 1 => "root".to_owned(),
        _ if rng.chance(10) => "nosuch".to_owned(),
        _ if sups > 0 => format!("g{}", rng.below(sups)),
        _ => "root".to_owned(),
    };
    let deps = &mut s.deps;
    for other in names.iter().filter(|n| *n != name) {
        // "ghost" never exists, so it cannot close a cycle.
        let (first, second) = (other.as_str(), name);
        let (lower, upper) = if other == "ghost" || ranks.below(first, second) {
            (first, second)
        } else {
            (second, first)
        };
        if lower == name {
            // Only `before` may point upwards.
            if rng.below(100) < 4 {
                deps.before.push(other.clone());
            }
            continue;
        }
        debug_assert_eq!(upper, name);
        match rng.below(100) {
            0..=11 => deps.requires.push(other.clone()),
            12..=19 => deps.after.push(other.clone()),
            20..=25 => deps.wants.push(other.clone()),
            _ => {}
        }
    }
    if rng.chance(5) && !deps.requires.is_empty() {
        // A duplicated edge.
        let d = deps.requires[0].clone();
        deps.requires.push(d);
    }
    s
}

fn random_supervisor(rng: &mut Rng, k: usize) -> SupervisorConfig {
    let parent = match rng.below(4) {
        0 if k > 0 => format!("g{}", rng.below(k)),
        1 => "nosuch".to_owned(),
        _ => "root".to_owned(),
    };
    SupervisorConfig {
        name: format!("g{k}"),
        file: None,
        parent: Some(parent),
        strategy: match rng.below(3) {
            0 => Strategy::OneForOne,
            1 => Strategy::OneForAll,
            _ => Strategy::RestForOne,
        },
        max_restarts: rng.below(5) as u32,
        max_restart_window: rng.ms(30, 1000) + Duration::from_secs(1),
    }
}

fn random_config(rng: &mut Rng, ranks: &Ranks, max_services: usize) -> Config {
    let n = 1 + rng.below(max_services);
    let n_invalid = if rng.chance(30) { 1 + rng.below(2) } else { 0 };
    let n_sups = rng.below(4);
    let mut root = SupervisorConfig::builtin_root();
    if rng.chance(30) {
        root.max_restarts = rng.below(4) as u32;
    }
    let mut supervisors = vec![root];
    supervisors.extend((0..n_sups).map(|k| random_supervisor(rng, k)));
    let names = dep_names(n, n_invalid);
    let services = (0..n)
        .map(|i| random_service(rng, ranks, &format!("s{i}"), &names, n_sups))
        .collect();
    let mut invalid: Vec<InvalidService> = (0..n_invalid)
        .map(|i| InvalidService {
            name: format!("bad{i}"),
            file: PathBuf::from(format!("/x/bad{i}.toml")),
            supervisor: None,
            reason: "unknown key `exc`".to_owned(),
        })
        .collect();
    if rng.chance(5) {
        // Shadowed by the valid service of the same name.
        invalid.push(InvalidService {
            name: "s0".to_owned(),
            file: PathBuf::from("/x/s0.toml"),
            supervisor: None,
            reason: "duplicate".to_owned(),
        });
    }
    Config {
        services,
        invalid,
        supervisors,
        diagnostics: Vec::new(),
    }
}

/// A reload's configuration: some services dropped, changed, added, made invalid or fixed.
fn mutate_config(rng: &mut Rng, ranks: &Ranks, cfg: &Config, generation: usize) -> Config {
    let mut next = cfg.clone();
    next.services.retain(|_| !rng.chance(10));
    let mut names: Vec<String> = next.services.iter().map(|s| s.name.clone()).collect();
    names.extend(next.invalid.iter().map(|i| i.name.clone()));
    names.push("ghost".to_owned());
    let n_sups = next.supervisors.len() - 1;
    if rng.chance(30) {
        next.supervisors.push(random_supervisor(rng, n_sups));
    }
    for s in &mut next.services {
        match rng.below(10) {
            0 => s.exec = vec![format!("/bin/v{generation}")],
            1 => *s = random_service(rng, ranks, &s.name.clone(), &names, n_sups),
            2 => s.supervisor = format!("g{}", rng.below(n_sups + 1)),
            _ => {}
        }
    }
    if rng.chance(15)
        && let Some(s) = next.services.pop()
    {
        next.invalid.push(InvalidService {
            name: s.name,
            file: s.file,
            supervisor: None,
            reason: format!("broken in generation {generation}"),
        });
    }
    if rng.chance(30)
        && let Some(i) = next.invalid.pop()
    {
        next.services
            .push(random_service(rng, ranks, &i.name, &names, n_sups));
    }
    for k in 0..rng.below(3) {
        let name = format!("n{generation}x{k}");
        next.services
            .push(random_service(rng, ranks, &name, &names, n_sups));
    }
    next
}

/// Everything an operator, the runtime or the next event can observe of a core.
fn observe(core: &Core) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in core.services.iter() {
        let _ = writeln!(
            out,
            "{} {:?} w={} bw={} pid={:?} r={} {:?} {:?} since={:?} sp={:?} rd={:?} seq={} \
             req={:?} miss={:?} soft={:?} dep={:?} rm={} rs={} rt={:?} bo={:?}",
            s.name,
            s.phase,
            s.wanted,
            s.boot_wanted,
            s.pid,
            s.restarts,
            s.reason,
            s.last_exit,
            s.since,
            s.spawned_at,
            s.ready_at,
            s.start_seq,
            s.requires,
            s.missing_requires,
            s.soft,
            s.dependents,
            s.removed,
            s.restored,
            s.restart_times,
            s.backoff,
        );
    }
    for sup in &core.supervisors {
        let _ = writeln!(
            out,
            "{} parent={:?} children={:?} sups={:?} failed={} rt={:?}",
            sup.cfg.name, sup.parent, sup.children, sup.child_sups, sup.failed, sup.restart_times
        );
    }
    let _ = writeln!(
        out,
        "booted={} complete={} down={} reported={} seq={} deadline={:?}",
        core.booted,
        core.startup_complete,
        core.shutting_down,
        core.shutdown_reported,
        core.start_seq,
        core.next_deadline()
    );
    out
}

/// Every service's `(requires, missing_requires, soft, dependents)` as `Core::link` computed
/// them before it stopped cloning configurations and scanning dependents (the oracle shares
/// `link`, so the differential test needs this reference for it).
type Links = Vec<(Vec<SvcId>, Vec<String>, Vec<SvcId>, Vec<SvcId>)>;

fn reference_links(core: &Core) -> Links {
    let n = core.services.len();
    let mut out: Links = vec![Default::default(); n];
    for i in 0..n {
        let s = &core.services[i];
        if s.removed {
            continue;
        }
        let Some(cfg) = s.cfg.clone() else {
            continue;
        };
        for name in &cfg.deps.requires {
            match core.by_name.get(name) {
                Some(&d) if d.0 != i => out[i].0.push(d),
                Some(_) => {}
                None => out[i].1.push(name.clone()),
            }
        }
        for name in cfg.deps.wants.iter().chain(&cfg.deps.after) {
            if let Some(&d) = core.by_name.get(name)
                && d.0 != i
                && !out[i].2.contains(&d)
            {
                out[i].2.push(d);
            }
        }
        for name in &cfg.deps.before {
            if let Some(&d) = core.by_name.get(name)
                && d.0 != i
                && !out[d.0].2.contains(&SvcId(i))
            {
                out[d.0].2.push(SvcId(i));
            }
        }
    }
    for i in 0..n {
        let deps: Vec<SvcId> = out[i].0.iter().chain(&out[i].2).copied().collect();
        for d in deps {
            if !out[d.0].3.contains(&SvcId(i)) {
                out[d.0].3.push(SvcId(i));
            }
        }
    }
    out
}

/// The core under test and the oracle, fed the same inputs, plus a fake runtime.
struct Twin {
    fast: Core,
    full: Core,
    cfg: Config,
    now: Time,
    next_pid: i32,
    /// Spawns the runtime has not answered yet.
    spawns: Vec<SvcId>,
    /// What happened so far, to read when a comparison fails.
    trail: Vec<String>,
    generation: usize,
    ranks: Ranks,
}

impl Twin {
    fn new(cfg: Config, ranks: Ranks) -> Self {
        let fast = Core::new(&cfg);
        let mut full = Core::new(&cfg);
        full.oracle = true;
        let twin = Twin {
            fast,
            full,
            cfg,
            now: Duration::ZERO,
            next_pid: 100,
            spawns: Vec::new(),
            trail: Vec::new(),
            generation: 0,
            ranks,
        };
        twin.compare("new");
        twin
    }

    fn compare(&self, what: &str) {
        let (a, b) = (observe(&self.fast), observe(&self.full));
        if a != b {
            panic!(
                "states differ after {what}\ntrail: {:#?}\nworklist:\n{a}\nfull rescan:\n{b}",
                self.trail
            );
        }
        let links: Links = self
            .fast
            .services
            .iter()
            .map(|s| {
                let (r, m) = (s.requires.clone(), s.missing_requires.clone());
                (r, m, s.soft.clone(), s.dependents.clone())
            })
            .collect();
        assert_eq!(
            links,
            reference_links(&self.fast),
            "links differ after {what}\ntrail: {:#?}",
            self.trail
        );
    }

    /// Applies the same input to both cores and checks they answer alike.
    fn apply(&mut self, what: String, f: impl Fn(&mut Core, Time) -> Vec<Action>) {
        let a = f(&mut self.fast, self.now);
        let b = f(&mut self.full, self.now);
        self.trail.push(what.clone());
        assert_eq!(
            a, b,
            "actions differ after {what}\ntrail: {:#?}",
            self.trail
        );
        self.compare(&what);
        for action in a {
            if let Action::Spawn(id) = action {
                self.spawns.push(id);
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let what = format!("{ev:?} at {:?}", self.now);
        self.apply(what, |core, now| core.handle(now, ev.clone()));
    }

    fn tick(&mut self) {
        let what = format!("tick at {:?}", self.now);
        self.apply(what, |core, now| core.tick(now));
    }

    fn reload(&mut self, cfg: Config) {
        let what = format!("reload {} at {:?}", self.generation, self.now);
        let a = self.fast.reload(self.now, &cfg);
        let b = self.full.reload(self.now, &cfg);
        self.trail.push(what.clone());
        assert_eq!(a, b, "reload differs\ntrail: {:#?}", self.trail);
        self.compare(&what);
        for action in a.1 {
            if let Action::Spawn(id) = action {
                self.spawns.push(id);
            }
        }
        self.cfg = cfg;
    }

    /// A slot, preferring those for which `pred` holds.
    fn pick(&self, rng: &mut Rng, pred: impl Fn(&crate::Service) -> bool) -> SvcId {
        let slots = self.fast.services.len();
        let fitting: Vec<usize> = (0..slots)
            .filter(|&i| pred(&self.fast.services[i]))
            .collect();
        if !fitting.is_empty() && !rng.chance(15) {
            SvcId(fitting[rng.below(fitting.len())])
        } else {
            SvcId(rng.below(slots))
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        match rng.below(100) {
            0..=29 if !self.spawns.is_empty() => {
                let svc = self.spawns.remove(rng.below(self.spawns.len()));
                if rng.chance(30) {
                    // The process exists but has not run its program yet; the outcome comes
                    // later (svmgr's asynchronous start).
                    self.next_pid += 1;
                    let pid = self.next_pid;
                    self.event(Event::Forked { svc, pid });
                    if rng.chance(50) {
                        self.spawns.push(svc);
                    }
                } else if rng.chance(85) {
                    self.next_pid += 1;
                    let pid = self.next_pid;
                    self.event(Event::Spawned { svc, pid });
                } else {
                    let error = "no such file".to_owned();
                    self.event(Event::SpawnFailed { svc, error });
                }
            }
            0..=44 => {
                let svc = self.pick(rng, |s| matches!(s.phase, crate::Phase::Starting { .. }));
                self.event(Event::Ready { svc });
            }
            45..=62 => {
                let svc = self.pick(rng, crate::Service::has_process);
                let status = match rng.below(6) {
                    0 | 1 => ExitStatus::Exited(0),
                    2 => ExitStatus::Exited(1),
                    3 => ExitStatus::Exited(3),
                    4 => ExitStatus::Signaled(9),
                    _ => ExitStatus::Signaled(15),
                };
                self.event(Event::Exited { svc, status });
            }
            63..=65 => {
                let svc = self.pick(rng, |s| matches!(s.phase, crate::Phase::Starting { .. }));
                let reason = "fd closed".to_owned();
                self.event(Event::ReadinessFailed { svc, reason });
            }
            66..=67 => {
                let svc = self.pick(rng, crate::Service::has_process);
                self.next_pid += 1;
                let pid = self.next_pid;
                self.event(Event::MainPid { svc, pid });
            }
            68..=80 => {
                // Often exactly to the next deadline (several may fall due at once), else a
                // random stretch that may pass several.
                match self.fast.next_deadline() {
                    Some(d) if rng.chance(60) => self.now = self.now.max(d),
                    _ => self.now += rng.ms(8, 400),
                }
                self.tick();
            }
            81..=89 => {
                let svc = self.pick(rng, |_| true);
                let ev = match rng.below(3) {
                    0 => Event::Start { svc },
                    1 => Event::Stop { svc },
                    _ => Event::Restart { svc },
                };
                self.event(ev);
            }
            90 => self.event(Event::Shutdown),
            91..=96 => {
                self.generation += 1;
                let cfg = mutate_config(rng, &self.ranks, &self.cfg, self.generation);
                self.reload(cfg);
            }
            _ => self.event(Event::Boot),
        }
    }

    fn restore_some(&mut self, rng: &mut Rng) {
        for i in 0..self.fast.services.len() {
            if !rng.chance(15) {
                continue;
            }
            self.next_pid += 1;
            let what = match rng.below(5) {
                0 | 1 => Restored::Running {
                    pid: self.next_pid,
                    ready: rng.chance(70),
                    restarts: rng.below(3) as u32,
                },
                2 => Restored::Done,
                3 => Restored::Stopped,
                _ => Restored::Failed("crashed before".to_owned()),
            };
            self.trail.push(format!("restore s{i} {what:?}"));
            self.fast.restore(self.now, SvcId(i), what.clone());
            self.full.restore(self.now, SvcId(i), what);
            self.compare("restore");
        }
    }
}

fn run_case(seed: u64, max_services: usize, steps: usize) {
    let mut rng = Rng::new(seed);
    let ranks = Ranks(rng.next());
    let cfg = random_config(&mut rng, &ranks, max_services);
    let mut twin = Twin::new(cfg, ranks);
    twin.trail.push(format!("seed {seed}"));
    if rng.chance(30) {
        twin.restore_some(&mut rng);
    }
    if rng.chance(95) {
        twin.event(Event::Boot);
    }
    for _ in 0..steps {
        twin.step(&mut rng);
    }
    if rng.chance(50) {
        twin.event(Event::Shutdown);
    }
    // Let everything that can still happen happen: answer every spawn, let stopping services
    // exit or fire their deadlines.
    for _ in 0..300 {
        let stopping = twin.pick(&mut rng, |s| {
            matches!(s.phase, crate::Phase::Stopping { .. })
        });
        if let Some(svc) = twin.spawns.pop() {
            twin.next_pid += 1;
            let pid = twin.next_pid;
            twin.event(Event::Spawned { svc, pid });
        } else if matches!(
            twin.fast.services[stopping.0].phase,
            crate::Phase::Stopping { .. }
        ) && rng.chance(70)
        {
            let status = ExitStatus::Signaled(15);
            twin.event(Event::Exited {
                svc: stopping,
                status,
            });
        } else if let Some(d) = twin.fast.next_deadline() {
            twin.now = twin.now.max(d);
            twin.tick();
        } else {
            break;
        }
    }
}

#[test]
fn worklist_settles_like_the_full_rescan_on_small_random_systems() {
    for seed in 0..4000 {
        run_case(seed, 8, 60);
    }
}

#[test]
fn worklist_settles_like_the_full_rescan_on_larger_random_systems() {
    for seed in 10_000..10_300 {
        run_case(seed, 40, 150);
    }
}

// ---- the frontier's cost --------------------------------------------------------------------

/// `n` services without dependencies, or layers of ten each requiring the whole layer before,
/// ready when they say so, as `cargo xtask bench startup` builds them.
fn startup_config(n: usize, layered: bool) -> Config {
    let services = (0..n)
        .map(|i| {
            let mut s = service(&format!("s{i}"));
            s.readiness.kind = Readiness::Fd;
            if layered && i >= 10 {
                let layer = i / 10;
                s.deps.requires = (0..10)
                    .map(|k| format!("s{}", (layer - 1) * 10 + k))
                    .collect();
            }
            s
        })
        .collect();
    Config {
        services,
        invalid: Vec::new(),
        supervisors: vec![SupervisorConfig::builtin_root()],
        diagnostics: Vec::new(),
    }
}

/// Boots `cfg` as svmgr would: every spawn succeeds and the service reports ready, and after
/// each event the loop ticks and asks for the next deadline. Returns how many frontier
/// decisions that took, and how long.
fn boot_all(cfg: &Config, oracle: bool) -> (u64, Duration) {
    let started = Instant::now();
    let now = Duration::ZERO;
    let mut core = Core::new(cfg);
    core.oracle = oracle;
    let mut queue = std::collections::VecDeque::from(core.handle(now, Event::Boot));
    let mut pid = 100;
    while let Some(a) = queue.pop_front() {
        if let Action::Spawn(svc) = a {
            pid += 1;
            queue.extend(core.handle(now, Event::Spawned { svc, pid }));
            queue.extend(core.tick(now));
            queue.extend(core.handle(now, Event::Ready { svc }));
            queue.extend(core.tick(now));
            std::hint::black_box(core.next_deadline());
        }
    }
    assert!(core.startup_complete());
    (core.settle_calls, started.elapsed())
}

#[test]
fn start_up_evaluates_each_service_a_bounded_number_of_times() {
    let n = 1000;
    let (flat, _) = boot_all(&startup_config(n, false), false);
    assert!(flat <= 5 * n as u64, "{flat} decisions for {n} services");
    // Each layer is evaluated again whenever a service of the layer before becomes ready.
    let (layered, _) = boot_all(&startup_config(n, true), false);
    assert!(
        layered <= 30 * n as u64,
        "{layered} decisions for {n} services"
    );
}

/// `cargo test --release -p dynamod-core -- --ignored --nocapture frontier_cost`: frontier
/// decisions and time for a start-up of 1000 services, worklist against the full rescan.
#[test]
#[ignore = "a measurement, not a test"]
fn frontier_cost() {
    for layered in [false, true] {
        let cfg = startup_config(1000, layered);
        for oracle in [true, false] {
            let mut times = Vec::new();
            let mut calls = 0;
            for _ in 0..7 {
                let (c, t) = boot_all(&cfg, oracle);
                calls = c;
                times.push(t);
            }
            times.sort();
            println!(
                "{} {}: {calls} settle_one calls, median {:?}",
                if layered { "layered x10" } else { "flat" },
                if oracle { "full rescan" } else { "worklist" },
                times[times.len() / 2]
            );
        }
    }
}
