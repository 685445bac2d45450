//! `cargo xtask bench`: dynamod measured side by side with s6, runit, supervisord and the
//! container inits (tini, catatonit, dumb-init), in one run on one machine (issue 12).
//!
//! Every manager runs as PID 1 of its own PID namespace, with its service tree copied onto a
//! tmpfs in its own mount namespace, through the `bench-nsrun` launcher ([`ns`]); when PID 1 is
//! killed the kernel kills the rest of the namespace and the tmpfs disappears with it, so each
//! run starts clean and leaves nothing behind. Every service is the same small static C program
//! (`c/ready.c`) that signals readiness in the manager's own way and sleeps.
//!
//! Figures are medians of per-round ratios against a floor measured in the same round (wall time
//! on these shared machines is noisy; ratios taken seconds apart are not), and callgrind
//! instruction counts where wall time says too little. The result is `docs/benchmarks.md`.
//! These are benchmarks, not tests: nothing here has a threshold that fails a build.
//!
//! | name | what (issue 12 item) |
//! |---|---|
//! | `startup` | 1: time and CPU from manager start to all ready, N = 10, 100, 1000, flat and layered |
//! | `memory` | 2: PSS, RSS, kernel stacks and page tables; idle inits; binary sizes |
//! | `control` | 3: `dynamodctl status`/`list` against `s6-svstat`, `sv status`, `supervisorctl` |
//! | `restart` | 4: SIGKILL → new process ready, after > 1 s of running and at once |
//! | `reaping` | 5: 10,000 orphaned zombies reaped by PID 1 |
//! | `shutdown` | 6: 100 services, 10 ignoring SIGTERM, 1 s stop timeout |
//! | `profile` | callgrind instruction counts of svmgr's start-up against the floor |
//! | `logs` | issue 6: log throughput against svlogd and s6-log (`crates/logd/benches`) |

mod control;
mod logs;
mod memory;
mod ns;
mod procs;
mod profile;
mod reaping;
mod report;
mod restart;
mod setup;
mod shutdown;
mod startup;
mod stats;
mod trees;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{build, cmd};

/// Every benchmark, in the order they run and appear in the report.
pub const NAMES: [&str; 8] = [
    "startup", "memory", "control", "restart", "reaping", "shutdown", "profile", "logs",
];

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer rounds and services: a smoke run of a minute or two, not figures to publish.
    #[arg(long)]
    quick: bool,
    /// Rounds of each comparison (default 5, 1 with --quick).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Where the report goes [default: docs/benchmarks.md; target/bench/benchmarks-quick.md
    /// with --quick].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Take the static dynamod binaries from this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Benchmarks to run (default: all): startup, memory, control, restart, reaping, shutdown,
    /// profile, logs.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

/// What every benchmark shares.
pub struct Ctx {
    /// The programs.
    pub bins: setup::Bins,
    /// Scratch directory of this run (staging trees, mount points, profiles).
    pub work: PathBuf,
    /// Smoke-run sizes.
    pub quick: bool,
    /// Rounds of each comparison.
    pub rounds: usize,
    next: Cell<usize>,
}

impl Ctx {
    /// Fresh staging and mount directories for one run.
    pub fn dirs(&self) -> Result<trees::RunDirs> {
        let k = self.next.get();
        self.next.set(k + 1);
        trees::RunDirs::new(&self.work, k)
    }

    /// The service counts of the start-up and memory comparisons.
    pub fn sizes(&self) -> Vec<usize> {
        if self.quick {
            vec![10, 100]
        } else {
            vec![10, 100, 1000]
        }
    }

    /// The largest service count (the control benchmark's).
    pub fn largest(&self) -> usize {
        self.sizes().last().copied().unwrap_or(10)
    }
}

/// One part of the report.
pub struct Section {
    /// Heading.
    pub title: String,
    /// Markdown body.
    pub body: String,
    /// Issue 12's targets this part measured.
    pub targets: Vec<Target>,
}

/// A target of issue 12 and how the measurement compares.
pub struct Target {
    /// The goal, as the issue states it.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Whether it was met (`None`: not measurable here).
    pub met: Option<bool>,
}

/// Runs the benchmarks; returns the exit code.
pub fn run(args: &BenchArgs) -> Result<u8> {
    if !cmd::is_root() {
        bail!("the benchmarks create namespaces and mounts: run them as root");
    }
    for name in &args.names {
        if !NAMES.contains(&name.as_str()) {
            bail!(
                "unknown benchmark {name:?}; choose from {}",
                NAMES.join(", ")
            );
        }
    }
    let selected: Vec<&str> = if args.names.is_empty() {
        NAMES.to_vec()
    } else {
        NAMES
            .into_iter()
            .filter(|n| args.names.iter().any(|a| a == n))
            .collect()
    };
    let began = Instant::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    setup::ensure_packages()?;
    build::ensure_musl_target()?;
    let target = build::target_dir().join("bench");
    let mut bins = setup::compile(&target.join("bin"))?;
    bins.dynamod = setup::dynamod_bins(args.bin_dir.as_deref(), &target.join("dynamod"))?;

    // Short paths: a control socket path must fit in 108 bytes even behind /proc/PID/root.
    let work = PathBuf::from(format!("/tmp/dynamod-bench.{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let ctx = Ctx {
        bins,
        work: work.clone(),
        quick: args.quick,
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 5 }).max(1),
        next: Cell::new(0),
    };
    let result = run_selected(&ctx, &selected);
    let _ = std::fs::remove_dir_all(&work);
    let sections = result?;

    let out = match &args.out {
        Some(p) => p.clone(),
        None if args.quick => target.join("benchmarks-quick.md"),
        None => build::workspace_root().join("docs/benchmarks.md"),
    };
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let text = report::render(
        &ctx,
        &sections,
        &selected,
        began.elapsed(),
        (&load_before, &load_after),
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, text).with_context(|| format!("write {}", out.display()))?;
    eprintln!(
        "xtask: benchmarks done in {:.0} s; report in {}",
        began.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(0)
}

fn run_selected(ctx: &Ctx, selected: &[&str]) -> Result<Vec<Section>> {
    let mut sections = Vec::new();
    for name in selected {
        eprintln!("xtask: bench {name}");
        let t = Instant::now();
        let section = match *name {
            "startup" => startup::run(ctx),
            "memory" => memory::run(ctx),
            "control" => control::run(ctx),
            "restart" => restart::run(ctx),
            "reaping" => reaping::run(ctx),
            "shutdown" => shutdown::run(ctx),
            "profile" => profile::run(ctx),
            "logs" => logs::run(ctx),
            _ => continue,
        };
        // One benchmark failing (a peer missing, a manager misbehaving) must not cost the
        // others' figures: the report says what failed.
        let mut section = section.unwrap_or_else(|e| {
            eprintln!("xtask: benchmark {name} failed: {e:#}");
            Section {
                title: format!("{name}: failed"),
                body: format!("This benchmark failed:\n\n```text\n{e:#}\n```\n"),
                targets: Vec::new(),
            }
        });
        section.body.push_str(&format!(
            "\n_({name}: {:.0} s)_\n",
            t.elapsed().as_secs_f64()
        ));
        sections.push(section);
    }
    Ok(sections)
}

/// Runs `manager` with `tree` to readiness, hands the run to `f`, then ends it cleanly.
pub fn with_run<T>(
    ctx: &Ctx,
    manager: trees::Manager,
    tree: &trees::Tree,
    f: impl FnOnce(&mut ns::Running, &trees::RunDirs) -> Result<T>,
) -> Result<T> {
    let dirs = ctx.dirs()?;
    let spec = trees::stage(manager, tree, &ctx.bins, &dirs)?;
    let result = (|| -> Result<_> {
        let mut run = ns::Running::start(&ctx.bins.nsrun, &spec)?;
        let out = f(&mut run, &dirs);
        let end = run.finish();
        let out = out?;
        end?;
        Ok(out)
    })();
    dirs.remove();
    result.with_context(|| format!("{} with {} services", manager.label(), tree.n))
}

/// Host PIDs of the manager's own processes in a run (everything but the services).
pub fn manager_pids(run: &ns::Running, ready: &Path) -> Vec<i32> {
    procs::in_namespace(&run.ns)
        .into_iter()
        .filter(|&p| !procs::is_service(p, ready))
        .collect()
}
