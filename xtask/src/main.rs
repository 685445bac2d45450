//! `cargo xtask`: the project's automation, written in Rust so it needs nothing but cargo.
//!
//! * `build` — the static (musl) release binaries every installation uses.
//! * `install --destdir DIR` — lays out an installation (SPEC §1); the Dockerfile, the sandbox
//!   and the VM image all go through the same function ([`layout::install`]).
//! * `sandbox` — boots dynamod as PID 1 in fresh namespaces on this machine, like
//!   `docker compose up`; `sandbox exec CMD…` runs a command inside it, like `docker exec`.
//! * `test` — fmt, clippy, the static build and the whole test suite, as CI runs it.
//!
//! Unlike the product crates, xtask may use `std::process::Command` directly: it is a developer
//! tool that drives cargo, apt-get and nsenter.

#![allow(clippy::disallowed_methods)]

mod bench;
mod build;
mod busybox;
mod cmd;
mod docker_test;
mod fuzz;
mod layout;
mod rootfs;
mod sandbox;
mod test_cmd;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::layout::ServiceSet;
use crate::sandbox::Volume;

/// Command line of `cargo xtask`.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "dynamod's build, install, sandbox and test automation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the static (musl) release binaries and print the directory holding them.
    Build,
    /// Lay out an installation (binaries, configuration, runtime directories) under DESTDIR.
    Install(InstallArgs),
    /// Boot dynamod as PID 1 in fresh namespaces, in the foreground (like `docker compose up`).
    Sandbox(SandboxArgs),
    /// Run fmt, clippy, the static build and every test, installing what they need.
    Test,
    /// Benchmarks side by side with s6, runit, supervisord and tini (writes docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// The seed's Docker scenario with a real Docker engine (installs and starts its own).
    DockerTest(docker_test::DockerTestArgs),
    /// Run the fuzz targets for a bounded time each (fuzz/run.sh; CI: 60 s each).
    Fuzz(fuzz::FuzzArgs),
    /// Boot dynamod on the Debian kernel under QEMU and check the VM scenarios (--list names them).
    Vm(vm::VmArgs),
    /// Internal: the sandbox's PID 1 before it becomes dynamod-init.
    #[command(name = "__sandbox-stage2", hide = true)]
    SandboxStage2(sandbox::stage2::Stage2Args),
}

#[derive(Args)]
struct InstallArgs {
    /// Root of the installation (`/` for a real install, a rootfs directory otherwise).
    #[arg(long, value_name = "DIR")]
    destdir: PathBuf,
    /// Which service files go to /etc/dynamod/services.
    #[arg(long, value_enum, default_value_t = ServiceSet::Docker)]
    services: ServiceSet,
    /// Take the binaries from this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Args)]
#[command(subcommand_negates_reqs = true)]
struct SandboxArgs {
    #[command(subcommand)]
    action: Option<SandboxAction>,
    /// Bind a host file or directory into the sandbox (repeatable), like `docker run -v`.
    #[arg(long = "volume", short = 'v', value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<Volume>,
    /// Which service files go to /etc/dynamod/services.
    #[arg(long, value_enum, default_value_t = ServiceSet::Docker)]
    services: ServiceSet,
    /// Where the pid file and the rootfs live [default: target/sandbox].
    #[arg(long, value_name = "DIR", global = true)]
    state_dir: Option<PathBuf>,
    /// Do not build; use the binaries already in --bin-dir (or the default release directory).
    #[arg(long)]
    no_build: bool,
    /// Take the binaries from this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Run this program as PID 1 instead of /sbin/dynamod-init (a path inside the sandbox; for
    /// testing the sandbox itself, e.g. `--init /bin/sh --init-arg -c --init-arg 'SCRIPT'`).
    #[arg(long, value_name = "PATH")]
    init: Option<String>,
    /// An argument for --init (repeatable).
    #[arg(long = "init-arg", value_name = "ARG", allow_hyphen_values = true)]
    init_args: Vec<String>,
}

#[derive(Subcommand)]
enum SandboxAction {
    /// Run a command inside the running sandbox (all its namespaces and its root), like
    /// `docker exec`; exits with the command's status.
    Exec {
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Cmd::Build => {
            let dir = build::build_static()?;
            println!("{}", dir.display());
            Ok(0)
        }
        Cmd::Install(args) => {
            let bin_dir = match args.bin_dir {
                Some(dir) => dir,
                None => build::build_static()?,
            };
            build::check_bin_dir(&bin_dir)?;
            let opts = layout::InstallOptions {
                bin_dir: &bin_dir,
                services: args.services,
            };
            let installed = layout::install(&args.destdir, &opts)?;
            for path in &installed.paths {
                println!("{}", path.display());
            }
            Ok(0)
        }
        Cmd::Sandbox(args) => {
            let state_dir = sandbox::state_dir(args.state_dir)?;
            match args.action {
                Some(SandboxAction::Exec { command }) => sandbox::exec::run(&state_dir, &command),
                None => {
                    let init = args.init.map(|program| (program, args.init_args));
                    let opts = sandbox::SandboxOptions {
                        state_dir,
                        volumes: args.volumes,
                        services: args.services,
                        build: !args.no_build && args.bin_dir.is_none(),
                        bin_dir: args.bin_dir,
                        init,
                    };
                    sandbox::run(&opts)
                }
            }
        }
        Cmd::Test => test_cmd::run(),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::DockerTest(args) => docker_test::run(&args),
        Cmd::Fuzz(args) => fuzz::run(&args),
        Cmd::Vm(args) => vm::run(&args),
        Cmd::SandboxStage2(args) => Ok(sandbox::stage2::run(&args)),
    }
}
