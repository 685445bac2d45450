//! Issue 6's log benchmark (`crates/logd/benches/logbench.rs`): dynamod's log path (service →
//! svmgr → logd → files) against `svlogd` and `s6-log`, run through cargo with the static
//! binaries, its report included as it prints it.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::Result;

use super::{Ctx, Section};
use crate::{build, cmd};

/// Runs the log benchmark.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let (lines, runs) = if ctx.quick {
        ("20000", "1")
    } else {
        ("100000", "3")
    };
    let mut bench = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    bench
        .current_dir(build::workspace_root())
        .args([
            "bench",
            "-p",
            "dynamod-logd",
            "--bench",
            "logbench",
            "--",
            "--lines",
            lines,
            "--runs",
            runs,
        ])
        .env("DYNAMOD_BIN_DIR", &ctx.bins.dynamod);
    eprintln!("xtask: {}", cmd::display(&bench));
    let mut body = String::new();
    let _ = writeln!(
        body,
        "One service writes {lines} lines of 100 bytes as fast as it can; dynamod's path is the \
         service's pipe → dynamod-svmgr → dynamod-logd → a file; the peers read the same stream \
         on a pipe (`svlogd -tt`, `s6-log T`). Run with `cargo bench -p dynamod-logd --bench \
         logbench -- --lines {lines} --runs {runs}`; its output:\n"
    );
    match cmd::output(&mut bench) {
        Ok(out) => {
            let _ = writeln!(body, "```text\n{}\n```", out.trim_end());
        }
        Err(e) => {
            let _ = writeln!(body, "The log benchmark failed: `{e:#}`");
        }
    }
    Ok(Section {
        title: "Log throughput (issue 6)".to_owned(),
        body,
        targets: Vec::new(),
    })
}
