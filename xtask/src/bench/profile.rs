//! Where dynamod-svmgr's start-up of N services goes: a `perf record` CPU-clock profile (user and
//! kernel, with symbols from a build that keeps them) and `perf trace -s` system-call times,
//! which show the time svmgr spends blocked as well as running.
//!
//! Callgrind would count instructions exactly, but Debian 12's valgrind (3.19) does not know
//! `pidfd_open` (syscall 434), which svmgr needs for every spawn once valgrind has refused
//! `clone3`; the virtual machines these benchmarks run on have no hardware counters for
//! `perf stat -e instructions` either. Sampling is what is left; the samples are CPU-clock
//! ticks, so their shares are what to read, not their count.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::ns::{Running, Spec};
use super::trees::{self, Manager, Tree};
use super::{Ctx, Section, setup};
use crate::{build, cmd};

/// Builds dynamod-svmgr with symbols (release profile otherwise) in its own target directory.
fn svmgr_with_symbols() -> Result<PathBuf> {
    let target = build::target_dir().join("bench/profile-build");
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(build::workspace_root())
        .args([
            "build",
            "--release",
            "--target",
            build::TARGET,
            "-p",
            "dynamod-svmgr",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_STRIP", "false")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only");
    eprintln!("xtask: {} (with symbols)", cmd::display(&cargo));
    cmd::run(&mut cargo)?;
    Ok(target.join(build::TARGET).join("release/dynamod-svmgr"))
}

/// Starts N services under svmgr wrapped in `wrapper` (perf), waits for readiness, then stops
/// the wrapper with SIGINT, on which perf writes its data and ends the workload.
fn wrapped(ctx: &Ctx, n: usize, svmgr: &Path, wrapper: Vec<OsString>) -> Result<()> {
    let dirs = ctx.dirs()?;
    let mut bins = ctx.bins.clone();
    bins.dynamod = svmgr.parent().map(Path::to_path_buf).unwrap_or_default();
    let spec: Spec = trees::stage(Manager::Dynamod, &Tree::flat(n), &bins, &dirs)?;
    let mut argv = wrapper;
    argv.extend(spec.argv.iter().cloned());
    let spec = Spec { argv, ..spec };
    let result = (|| -> Result<_> {
        let mut run = Running::start(&ctx.bins.nsrun, &spec)?;
        run.wait_ready(Duration::from_secs(300))?;
        run.interrupt()?;
        run.wait_exit(Duration::from_secs(120))?;
        run.finish()
    })();
    dirs.remove();
    result.with_context(|| format!("profile dynamod-svmgr with {n} services"))
}

/// The first `k` lines of a `perf report` table (comments and blank lines dropped).
fn report_lines(text: &str, k: usize) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(k)
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The system-call table of the `dynamod-svmgr` process in a `perf trace -s` summary: the block
/// with the most events (forked children carry the same name until they exec).
fn svmgr_syscalls(text: &str, k: usize) -> String {
    let mut blocks: Vec<(u64, Vec<String>)> = Vec::new();
    let mut current: Option<(u64, Vec<String>)> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.contains(" events, ") && t.contains(" (") && !t.starts_with("syscall") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            if t.starts_with("dynamod-svmgr (") {
                let events = t
                    .split_once("), ")
                    .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
                current = Some((events, vec![t.to_owned()]));
            }
            continue;
        }
        if let Some((_, lines)) = current.as_mut()
            && !t.is_empty()
            && lines.len() < k + 4
        {
            lines.push(line.trim_end().to_owned());
        }
    }
    blocks.extend(current);
    blocks
        .into_iter()
        .max_by_key(|(events, _)| *events)
        .map(|(_, lines)| lines.join("\n"))
        .unwrap_or_default()
}

/// Runs the profile.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let perf = setup::tool("perf")?;
    let svmgr = svmgr_with_symbols()?;
    let n = ctx.largest();
    let data = ctx.work.join(format!("perf-{n}.data"));
    let trace = ctx.work.join(format!("perf-trace-{n}.txt"));

    eprintln!("xtask: profile perf record n={n}");
    wrapped(
        ctx,
        n,
        &svmgr,
        vec![
            perf.clone().into_os_string(),
            "record".into(),
            "-q".into(),
            "-e".into(),
            "cpu-clock".into(),
            "-F".into(),
            "10000".into(),
            "-o".into(),
            data.clone().into_os_string(),
            "--".into(),
        ],
    )?;
    let by_dso = cmd::output(
        Command::new(&perf)
            .args(["report", "--stdio", "--sort", "comm,dso", "-i"])
            .arg(&data),
    )?;
    let by_sym = cmd::output(
        Command::new(&perf)
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--comm",
                "dynamod-svmgr",
                "--sort",
                "sym",
                "-i",
            ])
            .arg(&data),
    )?;

    eprintln!("xtask: profile perf trace n={n}");
    wrapped(
        ctx,
        n,
        &svmgr,
        vec![
            perf.into_os_string(),
            "trace".into(),
            "-s".into(),
            "-o".into(),
            trace.clone().into_os_string(),
            "--".into(),
        ],
    )?;
    let syscalls = std::fs::read_to_string(&trace).unwrap_or_default();

    let mut body = String::new();
    let _ = writeln!(
        body,
        "dynamod-svmgr (release build with symbols) starting {n} services as in the start-up \
         benchmark, profiled from its start until all were ready. Callgrind cannot run svmgr \
         here: Debian 12's valgrind 3.19 refuses `clone3` and does not know `pidfd_open` \
         (syscall 434), so every spawn fails under it; the VM has no hardware counters for \
         `perf stat` either. These are CPU-clock samples (`perf record -e cpu-clock`), user and \
         kernel, and `perf trace -s` (which slows every system call, so its times are inflated; \
         the proportions are what matter).\n"
    );
    let _ = writeln!(
        body,
        "Samples by process and object:\n\n```text\n{}\n```\n",
        report_lines(&by_dso, 15)
    );
    let _ = writeln!(
        body,
        "svmgr's own samples by symbol (kernel symbols are the work of its system calls):\n\n\
         ```text\n{}\n```\n",
        report_lines(&by_sym, 40)
    );
    let _ = writeln!(
        body,
        "svmgr's system calls over the same start-up (`perf trace -s`):\n\n```text\n{}\n```",
        svmgr_syscalls(&syscalls, 14)
    );
    Ok(Section {
        title: "Profile: where svmgr's start-up goes".to_owned(),
        body,
        targets: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_report_comments_are_dropped() {
        let text = "# Samples: 10\n#\n    50.00%  dynamod-svmgr  [kernel]\n\n    25.00%  x  y\n";
        assert_eq!(
            report_lines(text, 5),
            "    50.00%  dynamod-svmgr  [kernel]\n    25.00%  x  y"
        );
    }

    #[test]
    fn the_busiest_svmgr_table_is_cut_out_of_a_trace_summary() {
        let text = " dynamod-svmgr (256), 5 events, 0.0%\n\n   syscall calls\n   write 1\n\n \
                    bench-ready (5), 3 events, 0.1%\n   read 1\n\n \
                    dynamod-svmgr (2), 900 events, 40.0%\n\n   syscall calls\n   \
                    ------- -----\n   read 10\n   clone3 5\n\n other (3), 2 events, 0.0%\n   x 1\n";
        let got = svmgr_syscalls(text, 10);
        assert!(got.starts_with("dynamod-svmgr (2)"), "{got}");
        assert!(got.contains("clone3 5"));
        assert!(!got.contains("write 1") && !got.contains("x 1"));
    }
}
