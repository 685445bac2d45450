//! `cargo xtask vm`: boots dynamod on the Debian kernel under QEMU (TCG) and checks what it
//! does there, scenario by scenario (see [`scenarios::ALL`] and `docs/vm.md`).
//!
//! * `cargo xtask vm --list` names the scenarios;
//! * `cargo xtask vm NAME…` runs some, `cargo xtask vm --all` runs them all;
//! * each prints `PASS` or `FAIL` with the reason; a cargo-style `test result:` line ends the
//!   run (so `cargo xtask test` counts the scenarios as tests); the exit status is non-zero if
//!   any failed.
//!
//! Preparation, once per run: QEMU and e2fsprogs (apt-get, when missing), the static binaries
//! and the probe fixture (musl), busybox, the kernel package (downloaded and unpacked into
//! `target/vm/kernel`, never installed), a reduced module tree, and the phase A initramfs.
//! Every scenario works in `target/vm/runs/NAME` (serial log, images) and boots one guest at
//! a time: two TCG guests would share the machine's two cores.

pub mod cpio;
pub mod disk;
pub mod guest;
pub mod host;
pub mod image;
pub mod kmods;
#[cfg(test)]
mod machine_set;
pub mod qemu;
pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{build, busybox, cmd};

/// Arguments of `cargo xtask vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Name the scenarios and what each proves.
    #[arg(long)]
    pub list: bool,
    /// Run every scenario.
    #[arg(long)]
    pub all: bool,
    /// Use the static binaries in DIR instead of building them (it must also hold `fixture`).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Scenarios to run.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Where the VM work happens: `target/vm`.
pub fn work_dir() -> PathBuf {
    build::target_dir().join("vm")
}

/// How a run of scenarios went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Scenarios that passed.
    pub passed: u64,
    /// Scenarios that failed.
    pub failed: u64,
}

/// Runs `cargo xtask vm`; returns the exit code.
pub fn run(args: &VmArgs) -> Result<u8> {
    if args.list {
        for s in &scenarios::ALL {
            println!("{:<13} {}", s.name, s.what);
        }
        return Ok(0);
    }
    let chosen: Vec<&scenarios::Scenario> = if args.all {
        scenarios::ALL.iter().collect()
    } else if args.names.is_empty() {
        bail!("name scenarios to run, or --all (--list names them)");
    } else {
        args.names
            .iter()
            .map(|n| {
                scenarios::ALL
                    .iter()
                    .find(|s| s.name == n)
                    .with_context(|| format!("no scenario {n:?} (--list names them)"))
            })
            .collect::<Result<_>>()?
    };
    let outcome = run_scenarios(&chosen, args.bin_dir.as_deref())?;
    Ok(if outcome.failed == 0 { 0 } else { 1 })
}

fn run_scenarios(chosen: &[&scenarios::Scenario], bin_dir: Option<&Path>) -> Result<Outcome> {
    let started = Instant::now();
    let ctx = prepare(bin_dir, chosen.iter().any(|s| s.live))?;
    eprintln!(
        "xtask: vm: prepared in {:.0} s (kernel {} from {})",
        started.elapsed().as_secs_f64(),
        ctx.inputs.kernel.release,
        ctx.inputs.kernel.package
    );
    let runs = work_dir().join("runs");
    let mut outcome = Outcome::default();
    for s in chosen {
        let dir = runs.join(s.name);
        let t = Instant::now();
        let result = fresh_dir(&dir).and_then(|()| (s.run)(&ctx, &dir));
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok(note) => {
                println!("vm: PASS {} ({secs:.0} s): {note}", s.name);
                outcome.passed += 1;
            }
            Err(e) => {
                println!("vm: FAIL {} ({secs:.0} s): {e:#}", s.name);
                println!("vm:      serial log: {}", dir.join("serial.log").display());
                outcome.failed += 1;
            }
        }
    }
    println!(
        "vm: {} passed, {} failed in {:.0} s",
        outcome.passed,
        outcome.failed,
        started.elapsed().as_secs_f64()
    );
    // The form `cargo xtask test` adds up, like cargo's own.
    println!(
        "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
        if outcome.failed == 0 { "ok" } else { "FAILED" },
        outcome.passed,
        outcome.failed
    );
    Ok(outcome)
}

/// Empties (or creates) a scenario's directory.
fn fresh_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

/// Everything the scenarios share.
fn prepare(bin_dir: Option<&Path>, live: bool) -> Result<scenarios::Ctx> {
    host::ensure_packages(&host::BASE_PACKAGES)?;
    if live {
        host::ensure_packages(&host::LIVE_PACKAGES)?;
    }
    let bin_dir = match bin_dir {
        Some(d) => d.to_owned(),
        None => {
            let d = build::build_static()?;
            build_fixture()?;
            d
        }
    };
    build::check_bin_dir(&bin_dir)?;
    let fixture = bin_dir.join("fixture");
    build::check_static(&fixture)?;
    let busybox = busybox::locate()?;
    let kernel = host::kernel()?;
    let modules = image::module_tree(&kernel)?;
    let inputs = image::Inputs {
        bin_dir,
        fixture,
        busybox,
        kernel,
        modules,
    };
    let work = work_dir();
    std::fs::create_dir_all(&work)?;
    let boot_initrd = work.join("boot-initramfs.gz");
    image::boot_initramfs(&inputs, &work, &boot_initrd)?;
    Ok(scenarios::Ctx {
        inputs,
        boot_initrd,
    })
}

/// The probe fixture of `crates/tests`, static, next to the product binaries.
fn build_fixture() -> Result<()> {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(build::workspace_root()).args([
        "build",
        "--release",
        "--target",
        build::TARGET,
        "-p",
        "dynamod-tests",
        "--bin",
        "fixture",
    ]);
    eprintln!("xtask: {}", cmd::display(&c));
    cmd::run(&mut c)
}
