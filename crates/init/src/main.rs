//! `dynamod-init`: PID 1 (SPEC §2).
//!
//! It mounts the API filesystems, prepares the system, starts `dynamod-svmgr` and babysits it
//! (heartbeats, restart with backoff, emergency shell on a crash loop), reaps every orphan, and
//! runs the shutdown. It depends only on the syscall seam and the wire protocol, never panics
//! (a panic as PID 1 execs the emergency shell), never exits while it is a machine's PID 1, and
//! allocates nothing per event once its loop runs.
//!
//! Boot, in order (each step is a function below or a module):
//! 1. arguments, `--write-machine-id` helper mode, the PID 1 check;
//! 2. `/proc`, the kernel command line and environment detection ([`detect`]);
//! 3. phase A in an initramfs ([`initramfs`]), else the phase B / container set-up ([`setup`]);
//! 4. signals into a signalfd and the event loop ([`supervise`]);
//! 5. the final shutdown steps ([`shutdown`]).

#[macro_use]
mod log;

mod args;
mod backoff;
mod clock;
mod detect;
mod emergency;
mod initramfs;
mod link;
mod live;
mod modprobe;
mod names;
mod orphans;
mod procs;
mod rootdev;
mod rootspec;
mod settings;
mod setup;
mod shutdown;
mod supervise;
mod svmgr;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;

use dynamod_sys::cmdline::Cmdline;
use dynamod_sys::{kmsg, machine_id, process};

use crate::args::{Invocation, RunArgs};
use crate::detect::{Environment, Facts};
use crate::emergency::ShellConfig;
use crate::settings::Settings;
use crate::setup::chain;
use crate::supervise::{Ctx, Init, RunMode};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() {
    kmsg::set_program("dynamod-init");
    let pid = std::process::id();
    let pid1 = pid == 1;
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (invocation, ignored) = match args::parse(&argv, pid1) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "dynamod-init: {e}\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    match invocation {
        Invocation::WriteMachineId => std::process::exit(write_machine_id()),
        Invocation::Run(run) => {
            if !pid1 && !run.allow_non_pid1 {
                let _ = writeln!(
                    std::io::stderr(),
                    "dynamod-init: must run as PID 1 (this is PID {pid}); \
                     --allow-non-pid1 runs it for development"
                );
                std::process::exit(1);
            }
            boot(run, pid1, &ignored)
        }
    }
}

/// `--write-machine-id`: make sure `/etc/machine-id` is valid. Mounts nothing (mounting here
/// would hide the running system's `/run`).
fn write_machine_id() -> i32 {
    match machine_id::ensure(Path::new("/etc/machine-id")) {
        Ok(machine_id::MachineIdOutcome::Written(id)) => {
            info!("wrote /etc/machine-id ({id})");
            0
        }
        Ok(machine_id::MachineIdOutcome::Present(_)) => 0,
        Err(e) => {
            error!("{}", chain(&e));
            1
        }
    }
}

fn boot(run: RunArgs, pid1: bool, ignored: &[OsString]) -> ! {
    let shell = ShellConfig {
        program: run.emergency_shell.clone(),
        console: run.console.clone(),
    };
    emergency::install_panic_hook(pid1, shell.clone());
    info!("version {VERSION} starting (pid {})", std::process::id());
    if !ignored.is_empty() {
        info!("ignoring arguments {ignored:?}");
    }

    // /proc first: detection and the mount table need it.
    if pid1 {
        setup::ensure_proc();
    }
    let cmdline = Cmdline::read(Path::new("/proc/cmdline")).unwrap_or_default();
    let class = detect::classify(&Facts::gather(&cmdline));
    let env = class.env;
    let mode = RunMode { pid1, env };
    // The command line is the host's in a container, and not ours in a development run.
    let own_cmdline = (pid1 && env != Environment::Container).then_some(&cmdline);

    let mut emergency_first = false;
    let system_prepared = pid1;
    if pid1 {
        info!("environment: {} ({})", env.as_str(), class.reason);
        if let Some(hint) = class.overruled {
            info!("ignoring container hint ({hint}): this is the initial PID namespace");
        }
        if env == Environment::Initramfs {
            // Phase A switches to the real root and re-executes us there; it never returns.
            initramfs::boot(&cmdline, &shell);
        }
        setup::mount_api_filesystems(env);
        if env != Environment::Container && kmsg::use_kmsg(Path::new("/dev/kmsg")).is_err() {
            warn!("cannot open /dev/kmsg; logging to the console");
        }
        setup::prepare_system(env);
    } else {
        info!(
            "not PID 1: development mode ({}); system set-up skipped",
            env.as_str()
        );
        if let Err(e) = process::set_child_subreaper() {
            fatal(
                &shell,
                pid1,
                format_args!("cannot become a child subreaper: {e}"),
            );
        }
    }

    let (settings, bad) = Settings::resolve(|k| std::env::var(k).ok(), own_cmdline);
    for b in bad {
        warn!("ignoring unusable {}={:?}", b.source, b.value);
    }
    if settings.emergency_boot {
        info!("dynamod.emergency on the command line: emergency shell first");
        emergency_first = true;
    }

    let signals = match supervise::block_signals() {
        Ok(s) => s,
        Err(e) => fatal(&shell, pid1, format_args!("{e}")),
    };
    let ctx = Ctx {
        mode,
        settings,
        svmgr_path: run.svmgr,
        shell: shell.clone(),
    };
    let init = match Init::new(ctx.clone(), signals) {
        Ok(i) => i,
        Err(e) => fatal(&shell, pid1, format_args!("{e}")),
    };
    let (outcome, signals) = init.run(emergency_first);
    shutdown::finish(&ctx, &signals, outcome, system_prepared)
}

/// A failure that leaves init unable to do its job. PID 1 must not exit, so it becomes the
/// emergency shell; a development run exits 1.
fn fatal(shell: &ShellConfig, pid1: bool, what: std::fmt::Arguments<'_>) -> ! {
    emerg!("fatal: {what}");
    if pid1 {
        emergency::exec_now(shell);
    }
    std::process::exit(1)
}
