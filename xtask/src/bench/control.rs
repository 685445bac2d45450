//! Item 3: control latency with the largest N running: how long a status query takes from the
//! command's start to its exit, against `/bin/true` (the cost of starting any program) measured
//! alternately in the same run.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::setup;
use super::stats::{median, ms, percentile, ratio};
use super::trees::{Manager, Tree, status_target, svc_name};
use super::{Ctx, Section, Target, with_run};

/// Runs `argv` once; its wall time in nanoseconds.
fn time(argv: &[OsString]) -> Result<f64> {
    let t = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let ns = t.elapsed().as_nanos() as f64;
    if !status.success() {
        bail!("{:?} failed ({status})", argv);
    }
    Ok(ns)
}

struct Row {
    manager: Manager,
    what: String,
    times: Vec<f64>,
    floor: Vec<f64>,
}

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let n = ctx.largest();
    let probe = n / 2;
    let runs = if ctx.quick { 10 } else { 50 };
    let truth: OsString = setup::tool("true")?.into_os_string();
    let mut rows: Vec<Row> = Vec::new();
    for m in [
        Manager::Dynamod,
        Manager::S6,
        Manager::Runit,
        Manager::Supervisord,
    ] {
        eprintln!("xtask: control {} n={n}", m.label());
        let mut got = with_run(ctx, m, &Tree::flat(n), |run, dirs| {
            run.wait_ready(Duration::from_secs(300))?;
            let target = run.host_path(&status_target(m, &dirs.mount, probe));
            let t = target.clone().into_os_string();
            let cmds: Vec<(String, Vec<OsString>)> = match m {
                Manager::Dynamod => {
                    let ctl = ctx.bins.dm("dynamodctl").into_os_string();
                    vec![
                        (
                            format!("dynamodctl status {}", svc_name(probe)),
                            vec![
                                ctl.clone(),
                                "--socket".into(),
                                t.clone(),
                                "status".into(),
                                svc_name(probe).into(),
                            ],
                        ),
                        (
                            format!("dynamodctl list ({n} services)"),
                            vec![ctl, "--socket".into(), t, "list".into()],
                        ),
                    ]
                }
                Manager::S6 => vec![(
                    "s6-svstat".to_owned(),
                    vec![setup::tool("s6-svstat")?.into_os_string(), t],
                )],
                Manager::Runit => vec![(
                    "sv status".to_owned(),
                    vec![setup::tool("sv")?.into_os_string(), "status".into(), t],
                )],
                Manager::Supervisord => {
                    let mut url = OsString::from("unix://");
                    url.push(&t);
                    vec![(
                        format!("supervisorctl status {}", svc_name(probe)),
                        vec![
                            setup::tool("supervisorctl")?.into_os_string(),
                            "-s".into(),
                            url,
                            "status".into(),
                            svc_name(probe).into(),
                        ],
                    )]
                }
                Manager::Floor => Vec::new(),
            };
            let mut out = Vec::new();
            for (what, argv) in cmds {
                let mut row = Row {
                    manager: m,
                    what,
                    times: Vec::new(),
                    floor: Vec::new(),
                };
                // supervisorctl takes about a second: fewer runs keep the benchmark short.
                let k = if m == Manager::Supervisord {
                    runs.min(20)
                } else {
                    runs
                };
                time(&argv)?; // warm the page cache
                for _ in 0..k {
                    row.floor.push(time(std::slice::from_ref(&truth))?);
                    row.times.push(time(&argv)?);
                }
                out.push(row);
            }
            Ok(out)
        })?;
        rows.append(&mut got);
    }

    let mut body = String::new();
    let _ = writeln!(
        body,
        "{n} services running; each command started {runs} times (supervisorctl at most 20), \
         alternating with `/bin/true`, from the host (paths through `/proc/PID/root`). Wall time \
         from spawn to exit as the caller sees it.\n"
    );
    body.push_str(
        "| manager | command | median | p99 | `/bin/true` median | × `/bin/true` |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let mut targets = Vec::new();
    for row in &rows {
        let med = median(&row.times);
        let p99 = percentile(&row.times, 99.0);
        let fl = median(&row.floor);
        let r = med.zip(fl).map(|(a, b)| a / b);
        let _ = writeln!(
            body,
            "| {} | `{}` | {} | {} | {} | {} |",
            row.manager.label(),
            row.what,
            med.map_or("–".into(), ms),
            p99.map_or("–".into(), ms),
            fl.map_or("–".into(), ms),
            ratio(r)
        );
        if row.manager == Manager::Dynamod {
            if row.what.contains("status") {
                targets.push(Target {
                    goal: "`dynamodctl status` within 1.2× of `/bin/true`".to_owned(),
                    measured: ratio(r),
                    met: r.map(|r| r <= 1.2),
                });
            } else {
                targets.push(Target {
                    goal: format!("`dynamodctl list` of {n} services under 10 ms"),
                    measured: med.map_or("–".into(), ms),
                    met: med.map(|m| m < 10e6),
                });
            }
        }
    }
    Ok(Section {
        title: "3. Control latency".to_owned(),
        body,
        targets,
    })
}
