//! Item 2: memory. PSS and RSS (`/proc/PID/smaps_rollup`), kernel stacks (16 KiB a thread) and
//! page tables (`VmPTE`) of each manager's own processes with N services; the idle container
//! inits; the sizes of the binaries.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};

use super::ns::{Running, Spec, Wait};
use super::procs::{self, Mem};
use super::setup;
use super::stats::kib;
use super::trees::{self, Manager, Tree};
use super::{Ctx, Section, Target, manager_pids, with_run};

/// The service manager's memory with N services, after it settled.
fn managed(ctx: &Ctx, m: Manager, n: usize) -> Result<Mem> {
    with_run(ctx, m, &Tree::flat(n), |run, _| {
        run.wait_ready(Duration::from_secs(300))?;
        std::thread::sleep(settle(ctx));
        let mut total = Mem::default();
        for pid in manager_pids(run, &ctx.bins.ready) {
            total.add(procs::mem(pid));
        }
        Ok(total)
    })
}

fn settle(ctx: &Ctx) -> Duration {
    Duration::from_millis(if ctx.quick { 300 } else { 1000 })
}

/// An idle init with one sleeping child: the memory of PID 1 (and of svmgr and logd for
/// dynamod-init).
struct Idle {
    label: &'static str,
    rows: Vec<(String, Mem)>,
}

fn idle_init(ctx: &Ctx, label: &'static str, argv: Vec<OsString>) -> Result<Idle> {
    let dirs = ctx.dirs()?;
    let spec = Spec {
        mount: dirs.mount.clone(),
        copy: None,
        chroot: false,
        wait: Wait::None,
        argv,
        env: Vec::new(),
    };
    let result = (|| -> Result<_> {
        let run = Running::start(&ctx.bins.nsrun, &spec)?;
        std::thread::sleep(settle(ctx));
        let rows = vec![(label.to_owned(), procs::mem(run.pid1))];
        run.finish()?;
        Ok(Idle { label, rows })
    })();
    dirs.remove();
    result.with_context(|| format!("idle {label}"))
}

/// dynamod-init as PID 1 of a chroot on the tmpfs, with svmgr (without cgroups), logd and one
/// sleeping service.
fn idle_dynamod(ctx: &Ctx) -> Result<Idle> {
    let dirs = ctx.dirs()?;
    let root = &dirs.stage;
    let b = &ctx.bins;
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "bin",
        "sbin",
        "usr/lib/dynamod",
        "etc/dynamod/services",
        "etc/dynamod/supervisors",
        "var/log/dynamod",
        "var/lib/dynamod",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for (src, dst) in [
        (b.dm("dynamod-init"), "sbin/dynamod-init"),
        (b.dm("dynamod-svmgr"), "usr/lib/dynamod/dynamod-svmgr"),
        (b.dm("dynamod-logd"), "usr/lib/dynamod/dynamod-logd"),
        (b.svmgr_nocg.clone(), "usr/lib/dynamod/bench-svmgr-nocg"),
        (b.ready.clone(), "bin/bench-ready"),
    ] {
        fs::copy(&src, root.join(dst)).with_context(|| format!("copy {}", src.display()))?;
    }
    trees::make_dev(root)?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    fs::write(
        root.join("etc/dynamod/services/dynamod-logd.toml"),
        "[service]\nname = \"dynamod-logd\"\nexec = [\"/usr/lib/dynamod/dynamod-logd\"]\n",
    )?;
    fs::write(
        root.join("etc/dynamod/services/idle.toml"),
        "[service]\nname = \"idle\"\nexec = [\"/bin/bench-ready\", \"--none\"]\n",
    )?;
    let spec = Spec {
        mount: dirs.mount.clone(),
        copy: Some(root.clone()),
        chroot: true,
        wait: Wait::Line("startup complete".to_owned(), 1),
        argv: vec![
            "/sbin/dynamod-init".into(),
            "--svmgr".into(),
            "/usr/lib/dynamod/bench-svmgr-nocg".into(),
        ],
        env: Vec::new(),
    };
    let result = (|| -> Result<_> {
        let mut run = Running::start(&ctx.bins.nsrun, &spec)?;
        run.wait_ready(Duration::from_secs(60))?;
        std::thread::sleep(settle(ctx));
        let mut rows = vec![("dynamod-init".to_owned(), procs::mem(run.pid1))];
        for pid in procs::in_namespace(&run.ns) {
            let exe = procs::exe(pid);
            for name in ["dynamod-svmgr", "dynamod-logd"] {
                if exe.ends_with(name) {
                    rows.push((
                        format!("{name} (under dynamod-init, 2 services)"),
                        procs::mem(pid),
                    ));
                }
            }
        }
        run.finish()?;
        Ok(Idle {
            label: "dynamod-init",
            rows,
        })
    })();
    dirs.remove();
    result.context("idle dynamod-init")
}

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let mut body = String::new();
    let mut targets = Vec::new();
    let sizes = ctx.sizes();
    let _ = writeln!(
        body,
        "The manager's own processes (every process of the namespace but the services) with N \
         services, {} ms after all were ready. Kernel stacks count 16 KiB per thread; page \
         tables are `VmPTE`. \"Per service\" is the slope between the two largest N.\n",
        settle(ctx).as_millis()
    );
    body.push_str(
        "| manager | N | processes | PSS | RSS | kernel stacks | page tables | per service (PSS / RSS) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in Manager::ALL {
        let mut rows = Vec::new();
        for &n in &sizes {
            eprintln!("xtask: memory {} n={n}", m.label());
            rows.push((n, managed(ctx, m, n)?));
        }
        let slope = match rows.as_slice() {
            [.., (n1, a), (n2, b)] if n2 > n1 => {
                let dn = (n2 - n1) as f64;
                Some((
                    (b.pss as f64 - a.pss as f64) / dn,
                    (b.rss as f64 - a.rss as f64) / dn,
                    (b.pss + b.kstack + b.pte) as f64 - (a.pss + a.kstack + a.pte) as f64,
                ))
            }
            _ => None,
        };
        for (i, (n, mem)) in rows.iter().enumerate() {
            let per = match (i + 1 == rows.len(), slope) {
                (true, Some((p, r, _))) => format!("{p:.1} kB / {r:.1} kB"),
                _ => String::new(),
            };
            let _ = writeln!(
                body,
                "| {} | {n} | {} | {} | {} | {} | {} | {per} |",
                m.label(),
                mem.procs,
                kib(mem.pss as f64),
                kib(mem.rss as f64),
                kib(mem.kstack as f64),
                kib(mem.pte as f64),
            );
        }
        if m == Manager::Dynamod
            && let (Some((_, r, _)), Some((n, mem))) = (slope, rows.last())
        {
            targets.push(Target {
                goal: "dynamod-svmgr under 8 kB per service".to_owned(),
                measured: format!("{r:.1} kB RSS per service"),
                met: Some(r < 8.0),
            });
            targets.push(Target {
                goal: format!("dynamod-svmgr under 8 MiB RSS at {n} services"),
                measured: kib(mem.rss as f64),
                met: Some(mem.rss < 8 * 1024),
            });
        }
    }

    // Idle container inits, each with one sleeping child.
    let ready = ctx.bins.ready.clone().into_os_string();
    let mut idles = vec![idle_dynamod(ctx)?];
    for (label, prog, sep) in [
        ("tini-static", "tini-static", true),
        ("tini", "tini", true),
        ("catatonit", "catatonit", true),
        ("dumb-init", "dumb-init", false),
    ] {
        let mut argv: Vec<OsString> = vec![setup::tool(prog)?.into_os_string()];
        if sep {
            argv.push("--".into());
        }
        argv.push(ready.clone());
        argv.push("--none".into());
        idles.push(idle_init(ctx, label, argv)?);
    }
    idles.push(idle_init(
        ctx,
        "trivial wait() init",
        vec![
            ctx.bins.waitinit.clone().into_os_string(),
            ready.clone(),
            "--none".into(),
        ],
    )?);
    body.push_str(
        "\nIdle container inits (PID 1 with one sleeping child):\n\n\
         | process | PSS | RSS | kernel stacks | page tables |\n|---|---:|---:|---:|---:|\n",
    );
    let mut tini_rss = None;
    let mut init_rss = None;
    for idle in &idles {
        for (name, mem) in &idle.rows {
            let _ = writeln!(
                body,
                "| {name} | {} | {} | {} | {} |",
                kib(mem.pss as f64),
                kib(mem.rss as f64),
                kib(mem.kstack as f64),
                kib(mem.pte as f64)
            );
        }
        if let Some((_, mem)) = idle.rows.first() {
            match idle.label {
                "tini-static" => tini_rss = Some(mem.rss),
                "dynamod-init" => init_rss = Some(mem.rss),
                _ => {}
            }
        }
    }
    if let (Some(ours), Some(tini)) = (init_rss, tini_rss) {
        targets.push(Target {
            goal: "dynamod-init idle at or below tini-static's RSS".to_owned(),
            measured: format!("{} against {}", kib(ours as f64), kib(tini as f64)),
            met: Some(ours <= tini),
        });
    }

    // Binary sizes.
    body.push_str("\nBinaries:\n\n| binary | size | static |\n|---|---:|---|\n");
    let mut sizes_of = Vec::new();
    for name in [
        "dynamod-init",
        "dynamod-svmgr",
        "dynamod-logd",
        "dynamodctl",
    ] {
        sizes_of.push((name.to_owned(), ctx.bins.dm(name)));
    }
    for name in [
        "tini-static",
        "tini",
        "catatonit",
        "dumb-init",
        "s6-svscan",
        "s6-supervise",
        "runsvdir",
        "runsv",
    ] {
        if let Ok(p) = setup::tool(name) {
            sizes_of.push((name.to_owned(), p));
        }
    }
    let mut init_size = None;
    let mut tini_size = None;
    for (name, path) in &sizes_of {
        if let Some((len, is_static)) = setup::binary_size(path) {
            let _ = writeln!(
                body,
                "| {name} | {} | {} |",
                kib(len as f64 / 1024.0),
                if is_static { "yes" } else { "no (dynamic)" }
            );
            match name.as_str() {
                "dynamod-init" => init_size = Some(len),
                "tini-static" => tini_size = Some(len),
                _ => {}
            }
        }
    }
    body.push_str(
        "\nsupervisord is Python (`/usr/bin/python3` and its modules); s6 and runit link \
         dynamically against libc (and s6 against libskarnet).\n",
    );
    if let (Some(ours), Some(tini)) = (init_size, tini_size) {
        targets.push(Target {
            goal: "dynamod-init static binary no larger than tini-static".to_owned(),
            measured: format!(
                "{} against {}",
                kib(ours as f64 / 1024.0),
                kib(tini as f64 / 1024.0)
            ),
            met: Some(ours <= tini),
        });
    }
    Ok(Section {
        title: "2. Memory".to_owned(),
        body,
        targets,
    })
}
