//! Item 5: reaping. 10,000 orphans that exit at the same instant, reaped by PID 1: dynamod-init
//! against tini-static, catatonit, dumb-init and a trivial blocking-`wait()` init. The workload
//! (`c/zombies.c`) is PID 1's only child; it measures the wall time from releasing the orphans
//! to the last one being reaped, and the driver reads PID 1's CPU time around it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};

use super::ns::{Running, Spec, Wait};
use super::procs;
use super::setup;
use super::stats::{median, ratio};
use super::{Ctx, Section, Target};

/// The inits compared, in table order.
const INITS: [&str; 5] = [
    "dynamod-init",
    "tini-static",
    "catatonit",
    "dumb-init",
    "trivial wait() init",
];

/// Reaps `count` zombies under `init` once: (wall ns, PID 1 CPU ns).
fn once(ctx: &Ctx, init: &str, count: usize) -> Result<(f64, f64)> {
    let dirs = ctx.dirs()?;
    let zombies: OsString = ctx.bins.zombies.clone().into_os_string();
    let n: OsString = count.to_string().into();
    let mut spec = Spec {
        mount: dirs.mount.clone(),
        copy: None,
        chroot: false,
        wait: Wait::None,
        argv: Vec::new(),
        env: vec![("DYNAMOD_BENCH_ZOMBIES".to_owned(), count.to_string())],
    };
    match init {
        "dynamod-init" => {
            // Chrooted into the tmpfs: dynamod-init mounts /proc, /dev, /run… where it runs.
            let root = &dirs.stage;
            for d in [
                "proc", "sys", "dev", "run", "tmp", "bin", "sbin", "etc", "var/lib",
            ] {
                fs::create_dir_all(root.join(d))?;
            }
            super::trees::make_dev(root)?;
            fs::copy(ctx.bins.dm("dynamod-init"), root.join("sbin/dynamod-init"))?;
            fs::copy(&ctx.bins.zombies, root.join("bin/bench-zombies"))?;
            spec.copy = Some(root.clone());
            spec.chroot = true;
            // The workload stands in for the service manager.
            spec.argv = vec![
                "/sbin/dynamod-init".into(),
                "--svmgr".into(),
                "/bin/bench-zombies".into(),
            ];
        }
        "tini-static" | "catatonit" => {
            spec.argv = vec![setup::tool(init)?.into_os_string(), "--".into(), zombies, n];
        }
        "dumb-init" => spec.argv = vec![setup::tool(init)?.into_os_string(), zombies, n],
        _ => spec.argv = vec![ctx.bins.waitinit.clone().into_os_string(), zombies, n],
    }
    let result = (|| -> Result<_> {
        let mut run = Running::start(&ctx.bins.nsrun, &spec)?;
        run.wait_line("armed", Duration::from_secs(120))?;
        let cpu0 = procs::cpu_ns(run.pid1);
        let line = run.wait_line("reaped", Duration::from_secs(120))?;
        let cpu1 = procs::cpu_ns(run.pid1);
        let wall: f64 = line
            .split_whitespace()
            .nth(2)
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("bad report {line:?}"))?;
        run.finish()?;
        Ok((wall, cpu1.saturating_sub(cpu0) as f64))
    })();
    dirs.remove();
    result.with_context(|| format!("reaping under {init}"))
}

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let count = if ctx.quick { 2000 } else { 10_000 };
    let mut wall: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut vs_tini: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for round in 0..ctx.rounds {
        let mut this: Vec<(usize, f64)> = Vec::new();
        for k in 0..INITS.len() {
            let i = (k + round) % INITS.len();
            eprintln!("xtask: reaping round {} {}", round + 1, INITS[i]);
            let (w, c) = once(ctx, INITS[i], count)?;
            wall.entry(i).or_default().push(w / count as f64);
            cpu.entry(i).or_default().push(c / count as f64);
            this.push((i, w));
        }
        if let Some(&(_, tini)) = this.iter().find(|(i, _)| *i == 1) {
            for (i, w) in this {
                vs_tini.entry(i).or_default().push(w / tini);
            }
        }
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{count} orphans exit at once; wall time from their release to the last reap, per \
         zombie, and PID 1's CPU time over the same span, per zombie. Median of {} round(s); \
         \"× tini-static\" is the median of per-round wall-time ratios.\n",
        ctx.rounds
    );
    body.push_str(
        "| PID 1 | wall per zombie | PID 1 CPU per zombie | × tini-static (wall) |\n|---|---:|---:|---:|\n",
    );
    let mut targets = Vec::new();
    for (i, name) in INITS.iter().enumerate() {
        let w = wall.get(&i).and_then(|v| median(v));
        let c = cpu.get(&i).and_then(|v| median(v));
        let r = vs_tini.get(&i).and_then(|v| median(v));
        let us = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.2} µs", v / 1000.0));
        let _ = writeln!(body, "| {name} | {} | {} | {} |", us(w), us(c), ratio(r));
        if i == 0 {
            targets.push(Target {
                goal: "reaping at least as fast as tini".to_owned(),
                measured: format!("{} of tini-static's wall time", ratio(r)),
                met: r.map(|r| r <= 1.05),
            });
        }
    }
    body.push_str(
        "\n(\"At least as fast\" is taken as within 5 %, the spread between rounds on this \
         machine.)\n",
    );
    Ok(Section {
        title: "5. Reaping".to_owned(),
        body,
        targets,
    })
}
