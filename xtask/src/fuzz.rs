//! `cargo xtask fuzz`: runs the libFuzzer targets in `fuzz/` for a bounded time each
//! (`fuzz/run.sh` does the work: it installs cargo-fuzz and builds with the stable toolchain).

use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

use crate::{build, cmd};

/// The fuzz targets, in the order `fuzz/run.sh` runs them.
pub const TARGETS: [&str; 6] = [
    "config_service",
    "config_supervisor",
    "config_load",
    "envfile",
    "proto_frames",
    "notify",
];

/// Arguments of `cargo xtask fuzz`.
#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds per target (0 replays the seeds and the saved corpus only).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Targets to run (default: all).
    targets: Vec<String>,
}

fn script(seconds: u64, targets: &[String]) -> Command {
    let mut c = Command::new("sh");
    c.arg(build::workspace_root().join("fuzz/run.sh"))
        .arg("--seconds")
        .arg(seconds.to_string())
        .args(targets)
        .current_dir(build::workspace_root());
    c
}

/// `cargo xtask fuzz`: forwards to `fuzz/run.sh` and passes its exit status through.
pub fn run(args: &FuzzArgs) -> Result<u8> {
    let mut c = script(args.seconds, &args.targets);
    eprintln!("xtask: {}", cmd::display(&c));
    let status = cmd::status(&mut c).context("run fuzz/run.sh")?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1))
}

/// For `cargo xtask test`: every target for `DYNAMOD_FUZZ_SECONDS` (default 60) seconds, one at
/// a time; returns (passed, failed) counted per target.
pub fn run_for_test() -> Result<(u64, u64)> {
    let seconds = std::env::var("DYNAMOD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (mut passed, mut failed) = (0, 0);
    for t in TARGETS {
        let mut c = script(seconds, &[t.to_owned()]);
        eprintln!("xtask: {}", cmd::display(&c));
        if cmd::status(&mut c).context("run fuzz/run.sh")?.success() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("fuzz: {passed} passed, {failed} failed");
    Ok((passed, failed))
}
