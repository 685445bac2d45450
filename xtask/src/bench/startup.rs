//! Item 1: start-up. Time from the manager's execve to "all N services ready", and the CPU
//! time the manager's own processes used by then, for N = 10, 100, 1000, without dependencies
//! and as layers of 10 (each layer requiring every service of the layer before). The floor runs
//! in every round; figures are medians of per-round ratios to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use super::stats::{median, ms, ratio};
use super::trees::{Manager, Tree};
use super::{Ctx, Section, Target, manager_pids, procs, with_run};

/// One start-up: wall and CPU time in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From the manager's execve to all ready.
    pub wall: f64,
    /// CPU used by the manager's processes (not the services) by then.
    pub cpu: f64,
}

/// Starts `tree` under `manager` once.
pub fn once(ctx: &Ctx, manager: Manager, tree: &Tree) -> Result<Sample> {
    with_run(ctx, manager, tree, |run, _| {
        let ready = run.wait_ready(Duration::from_secs(300))?;
        let cpu: u64 = manager_pids(run, &ctx.bins.ready)
            .into_iter()
            .map(procs::cpu_ns)
            .sum();
        Ok(Sample {
            wall: ready.saturating_sub(run.start_ns) as f64,
            cpu: cpu as f64,
        })
    })
}

type Key = (bool, usize, usize); // (layered, n, manager index)

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let mut samples: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let mut wall_ratios: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    let mut cpu_ratios: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for round in 0..ctx.rounds {
        for &n in &ctx.sizes() {
            for layered in [false, true] {
                let managers: Vec<Manager> = if layered {
                    vec![Manager::Floor, Manager::Dynamod]
                } else {
                    Manager::ALL.to_vec()
                };
                // Rotate the order each round so no manager always runs first or last.
                let k = managers.len();
                let order: Vec<Manager> = (0..k).map(|i| managers[(i + round) % k]).collect();
                let mut tree = Tree::flat(n);
                if layered {
                    tree.layer_width = Some(10);
                }
                let mut this_round: Vec<(Manager, Sample)> = Vec::new();
                for m in order {
                    eprintln!(
                        "xtask: startup round {} n={n}{} {}",
                        round + 1,
                        if layered { " layered" } else { "" },
                        m.label()
                    );
                    let s = once(ctx, m, &tree)?;
                    this_round.push((m, s));
                    samples.entry((layered, n, idx(m))).or_default().push(s);
                }
                let floor = this_round
                    .iter()
                    .find(|(m, _)| *m == Manager::Floor)
                    .map(|(_, s)| *s);
                if let Some(f) = floor {
                    for (m, s) in &this_round {
                        let key = (layered, n, idx(*m));
                        wall_ratios.entry(key).or_default().push(s.wall / f.wall);
                        cpu_ratios.entry(key).or_default().push(s.cpu / f.cpu);
                    }
                }
            }
        }
    }

    let mut body = String::new();
    let _ = writeln!(
        body,
        "Time from the manager's `execve` (stamped by the launcher) to the moment the last of N \
         services is known ready, and the CPU time the manager's own processes used by then \
         (`schedstat` of every thread of every non-service process in the namespace: \
         `s6-svscan` and every `s6-supervise`, `runsvdir` and every `runsv`, `supervisord`, \
         `dynamod-svmgr`, the floor). Median of {} round(s); the ratios are the medians of the \
         per-round ratios to the floor of the same round.\n",
        ctx.rounds
    );
    body.push_str(
        "| graph | N | manager | wall | × floor | CPU | × floor CPU |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    let mut targets = Vec::new();
    for (&(layered, n, mi), v) in &samples {
        let m = Manager::ALL[mi];
        let wall = median(&v.iter().map(|s| s.wall).collect::<Vec<_>>());
        let cpu = median(&v.iter().map(|s| s.cpu).collect::<Vec<_>>());
        let wr = wall_ratios.get(&(layered, n, mi)).and_then(|r| median(r));
        let cr = cpu_ratios.get(&(layered, n, mi)).and_then(|r| median(r));
        let _ = writeln!(
            body,
            "| {} | {n} | {} | {} | {} | {} | {} |",
            if layered { "layered ×10" } else { "flat" },
            m.label(),
            wall.map_or("–".into(), ms),
            ratio(wr),
            cpu.map_or("–".into(), ms),
            ratio(cr),
        );
        if m == Manager::Dynamod && !layered && n == ctx.largest() {
            targets.push(Target {
                goal: format!("start-up of {n} services within 1.3× the floor (wall)"),
                measured: ratio(wr),
                met: wr.map(|r| r <= 1.3),
            });
            targets.push(Target {
                goal: format!("start-up of {n} services within 1.3× the floor (CPU)"),
                measured: ratio(cr),
                met: cr.map(|r| r <= 1.3),
            });
        }
    }
    body.push_str(
        "\nReadiness: dynamod `[readiness] type = \"fd\"` (a newline on `$DYNAMOD_READY_FD`, \
         detected when svmgr logs `startup complete`); s6 `notification-fd` (every \
         `supervise/status` saying up and ready, watched with inotify); runit has no readiness \
         (every `supervise/stat` saying `run`); supervisord has none either (`startsecs=0`, \
         every `entered RUNNING state` log line). s6, runit and supervisord have no \
         dependencies, so only dynamod and the floor run the layered graph. dynamod-svmgr runs \
         standalone as PID 1 with `--cgroup-root none` (the peers create no cgroups either).\n",
    );
    Ok(Section {
        title: "1. Start-up".to_owned(),
        body,
        targets,
    })
}

fn idx(m: Manager) -> usize {
    Manager::ALL.iter().position(|&x| x == m).unwrap_or(0)
}
