//! `cargo xtask test`: everything CI runs, on a fresh machine.
//!
//! 1. Installs what the tests need: the musl target (rustup), `busybox-static` and `util-linux`
//!    (apt-get, as root).
//! 2. `cargo fmt --all --check` and `cargo clippy --workspace --all-targets -- -D warnings`.
//! 3. The static release binaries.
//! 4. `cargo test --workspace --no-fail-fast` with `DYNAMOD_BIN_DIR` (the static binaries) and
//!    `DYNAMOD_XTASK` (this binary, for the sandbox tests).
//! 5. `cargo xtask docker-test` with those binaries (a real Docker engine; about 30 s).
//! 6. `cargo xtask fuzz`: every fuzz target for 60 s (`DYNAMOD_FUZZ_SECONDS` overrides).
//! 7. `cargo xtask vm --all`: the VM scenarios under QEMU, each counted as one test.
//!
//! It ends with `N passed, M failed`, the sum of cargo's `test result:` lines, and exits
//! non-zero when any step or test failed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::{build, busybox, cmd};

/// Debian packages the tests use: busybox for the sandbox's rootfs, nsenter for `sandbox exec`.
const APT_PACKAGES: [&str; 2] = ["busybox-static", "util-linux"];

/// Runs the whole suite; returns the exit code.
pub fn run() -> Result<u8> {
    build::ensure_musl_target()?;
    ensure_packages()?;
    let mut failed_steps: Vec<&str> = Vec::new();

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    if !step(&mut fmt)? {
        failed_steps.push("cargo fmt --check");
    }
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    if !step(&mut clippy)? {
        failed_steps.push("cargo clippy");
    }

    let bin_dir = match build::build_static() {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            failed_steps.push("static build");
            return finish(&failed_steps, Totals::default());
        }
    };
    let xtask = std::env::current_exe().context("find the xtask binary")?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--no-fail-fast"])
        .env("DYNAMOD_BIN_DIR", &bin_dir)
        .env("DYNAMOD_XTASK", &xtask);
    let (ok, mut totals) = run_tests(&mut test)?;
    if !ok {
        failed_steps.push("cargo test");
    }
    // The seed's Docker scenario with a real engine: its checks end in a `test result:` line.
    let mut docker = Command::new(&xtask);
    docker.arg("docker-test").arg("--bin-dir").arg(&bin_dir);
    let (ok, docker_totals) = run_tests(&mut docker)?;
    if !ok {
        failed_steps.push("docker-test");
    }
    totals.passed += docker_totals.passed;
    totals.failed += docker_totals.failed;
    // The fuzz targets, 60 s each (DYNAMOD_FUZZ_SECONDS overrides), counted per target.
    let (passed, failed) = crate::fuzz::run_for_test()?;
    if failed > 0 {
        failed_steps.push("fuzz");
    }
    totals.passed += passed;
    totals.failed += failed;
    // The VM scenarios on a real kernel under QEMU (about 5 minutes): one test each.
    let mut vm = Command::new(&xtask);
    // vm builds its own static binaries and fixture (a no-op after the build above).
    vm.args(["vm", "--all"]);
    let (ok, vm_totals) = run_tests(&mut vm)?;
    if !ok {
        failed_steps.push("vm --all");
    }
    totals.passed += vm_totals.passed;
    totals.failed += vm_totals.failed;
    finish(&failed_steps, totals)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(build::workspace_root());
    cmd
}

/// Runs one step with inherited output; reports whether it succeeded.
fn step(cmd: &mut Command) -> Result<bool> {
    eprintln!("xtask: {}", cmd::display(cmd));
    Ok(cmd::status(cmd)?.success())
}

/// Installs the Debian packages the tests need when they are missing.
fn ensure_packages() -> Result<()> {
    busybox::ensure_packages(&APT_PACKAGES, "the tests")
}

/// Passed and failed test counts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds the counts of one `test result: …` line; other lines are ignored.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let count = |what: &str| {
            rest.split(';')
                .filter_map(|part| {
                    part.trim()
                        .trim_start_matches(|c: char| !c.is_ascii_digit())
                        .split_once(' ')
                })
                .find(|(_, name)| *name == what)
                .and_then(|(n, _)| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += count("passed");
        self.failed += count("failed");
    }
}

/// Runs `cargo test`, echoing its output while adding up the `test result:` lines.
fn run_tests(cmd: &mut Command) -> Result<(bool, Totals)> {
    eprintln!("xtask: {}", cmd::display(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("run `{}`", cmd::display(cmd)))?;
    let mut totals = Totals::default();
    if let Some(out) = child.stdout.take() {
        let mut stdout = std::io::stdout();
        for line in BufReader::new(out).lines() {
            let line = line.context("read cargo test's output")?;
            totals.add_line(&line);
            let _ = writeln!(stdout, "{line}");
        }
    }
    let status = child.wait().context("wait for cargo test")?;
    Ok((status.success(), totals))
}

fn finish(failed_steps: &[&str], totals: Totals) -> Result<u8> {
    for step in failed_steps {
        eprintln!("xtask: FAILED: {step}");
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    Ok(if failed_steps.is_empty() && totals.failed == 0 {
        0
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_summed() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 5 tests");
        t.add_line("test foo ... ok");
        assert_eq!(
            t,
            Totals {
                passed: 15,
                failed: 2
            }
        );
    }

    #[test]
    fn unrelated_lines_count_nothing() {
        let mut t = Totals::default();
        t.add_line("test result is not what this is");
        t.add_line("   Doc-tests dynamod_proto");
        assert_eq!(t, Totals::default());
    }
}
