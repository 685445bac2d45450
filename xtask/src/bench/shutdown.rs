//! Item 6: shutdown. 100 services, 10 of which ignore SIGTERM, with a 1 s stop timeout: the
//! time from asking the manager to stop to PID 1's exit. Bounded by the slowest timeout (about
//! 1 s) when services stop in parallel; the sum (10 s) when one at a time.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::ns::now_ns;
use super::setup;
use super::stats::{median, ms, opt_ms};
use super::trees::{Manager, Tree, svc_name};
use super::{Ctx, Section, Target, with_run};

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let n = 100;
    let rounds = if ctx.quick { 1 } else { 3 };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{n} services, the first 10 ignoring SIGTERM, 1 s stop timeout (dynamod `stop-timeout`, \
         s6 `timeout-kill`, supervisord `stopwaitsecs`, runit `sv -w 1 force-stop`). From the \
         request to PID 1's exit; median of {rounds} run(s).\n\n\
         | manager | how it is stopped | time to exit |\n|---|---|---:|"
    );
    let mut targets = Vec::new();
    for m in [
        Manager::Dynamod,
        Manager::S6,
        Manager::Runit,
        Manager::Supervisord,
    ] {
        let mut tree = Tree::flat(n);
        tree.ignore_term = 10;
        tree.stop_timeout = Duration::from_secs(1);
        let mut times = Vec::new();
        for _ in 0..rounds {
            eprintln!("xtask: shutdown {}", m.label());
            let t = with_run(ctx, m, &tree, |run, dirs| {
                run.wait_ready(Duration::from_secs(120))?;
                std::thread::sleep(Duration::from_millis(300));
                let t0 = now_ns();
                if m == Manager::Runit {
                    // runit's own stage 3: stop everything, SIGKILL what is left after the
                    // timeout, then end runsvdir.
                    let dirs: Vec<_> = (0..n)
                        .map(|i| run.host_path(&dirs.mount.join("scan").join(svc_name(i))))
                        .collect();
                    Command::new(setup::tool("sv")?)
                        .args(["-w", "1", "force-stop"])
                        .args(&dirs)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .context("sv force-stop")?;
                }
                run.terminate()?;
                let (_, at) = run.wait_exit(Duration::from_secs(120))?;
                Ok(at.saturating_sub(t0) as f64)
            })?;
            times.push(t);
        }
        let med = median(&times);
        let how = match m {
            Manager::Dynamod => "SIGTERM to dynamod-svmgr",
            Manager::S6 => "SIGTERM to s6-svscan",
            Manager::Runit => "`sv -w 1 force-stop` all, then SIGTERM to runsvdir",
            Manager::Supervisord => "SIGTERM to supervisord",
            Manager::Floor => "",
        };
        let _ = writeln!(body, "| {} | {how} | {} |", m.label(), opt_ms(med));
        if m == Manager::Dynamod {
            targets.push(Target {
                goal: "shutdown bounded by the slowest stop-timeout (1 s), not the sum (10 s)"
                    .to_owned(),
                measured: med.map_or("–".into(), ms),
                met: med.map(|v| v < 2e9),
            });
        }
    }
    Ok(Section {
        title: "6. Shutdown".to_owned(),
        body,
        targets,
    })
}
