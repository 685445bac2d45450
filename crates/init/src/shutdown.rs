//! The last steps of a shutdown (SPEC §2.7 steps 2–6), once svmgr has stopped the services
//! (step 1, in the event loop) or could not.
//!
//! Each wait ends **as soon as** no child is left (`waitid` reports `ECHILD`), never after a
//! fixed sleep: upstream always waited the full 5 s + 2 s.

use std::os::fd::AsFd;
use std::path::Path;

use dynamod_proto::ShutdownKind;
use dynamod_sys::nix::errno::Errno;
use dynamod_sys::nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use dynamod_sys::nix::sys::signal::Signal;
use dynamod_sys::nix::sys::signalfd::SignalFd;
use dynamod_sys::nix::unistd;
use dynamod_sys::process::{self, Reaped};
use dynamod_sys::reboot::{self, RebootAction};
use dynamod_sys::{entropy, kmsg, mount, mountinfo};

use crate::clock::now_ms;
use crate::emergency;
use crate::procs;
use crate::setup::{self, chain};
use crate::supervise::{Ctx, Outcome};

/// Bound on step 2 (after SIGTERM).
pub const TERM_WAIT_MS: u64 = 5_000;
/// Bound on step 3 (after SIGKILL).
pub const KILL_WAIT_MS: u64 = 2_000;

/// Runs steps 2–6 and ends the process (exit in a container or development run, reboot(2) on
/// a real machine). `system_prepared`: the boot set-up ran (so the seed is ours to save).
pub fn finish(ctx: &Ctx, signals: &SignalFd, outcome: Outcome, system_prepared: bool) -> ! {
    let kind = outcome.kind;
    let real_machine = !ctx.mode.exits_at_end();

    // Step 2: SIGTERM to everyone left, finishing as soon as nobody is.
    info!(
        "shutdown ({}): sending SIGTERM to all remaining processes",
        kind.as_str()
    );
    signal_all(ctx.mode.pid1, Signal::SIGTERM);
    if wait_until_no_children(signals, TERM_WAIT_MS) {
        info!("shutdown: no processes left");
    } else {
        // Step 3: SIGKILL for the ones that ignored SIGTERM.
        warn!("shutdown: processes still running after {TERM_WAIT_MS} ms; sending SIGKILL");
        signal_all(ctx.mode.pid1, Signal::SIGKILL);
        if wait_until_no_children(signals, KILL_WAIT_MS) {
            info!("shutdown: no processes left");
        } else {
            warn!("shutdown: processes still running {KILL_WAIT_MS} ms after SIGKILL; continuing");
        }
    }

    // Step 4: keep the entropy for the next boot, then flush everything.
    if system_prepared {
        match entropy::save_seed(Path::new(setup::SEED)) {
            Ok(()) => info!("shutdown: saved the random seed"),
            Err(e) => warn!("shutdown: random seed not saved: {}", chain(&e)),
        }
    }
    unistd::sync();
    info!("shutdown: synced filesystems");

    // Step 5: unmount in reverse order and make / read-only (real machine only: a container's
    // mounts belong to its engine and vanish with it).
    if real_machine {
        // A fresh kmsg rate-limit budget while /dev/kmsg can still be opened: the last lines
        // are the ones an operator looks for.
        kmsg::renew();
        unmount_all();
        unistd::sync();
    }

    // Step 6: the end.
    if !real_machine {
        let code = outcome.exit_code.unwrap_or(0).clamp(0, 255);
        info!("shutdown: exiting with status {code}");
        std::process::exit(code);
    }
    info!("shutdown: {} now", kind.as_str());
    let action = match kind {
        ShutdownKind::Poweroff => RebootAction::PowerOff,
        ShutdownKind::Reboot => RebootAction::Restart,
        ShutdownKind::Halt => RebootAction::Halt,
    };
    let err = reboot::reboot(action);
    emerg!("shutdown: {}; starting the emergency shell", chain(&err));
    emergency::exec_now(&ctx.shell)
}

/// Sends `sig` to every process we may stop: the whole PID namespace as PID 1 (`kill(-1)`
/// never reaches the caller), only our descendants otherwise. SIGCONT follows so stopped
/// processes can act on the signal.
fn signal_all(pid1: bool, sig: Signal) {
    if pid1 {
        for s in [sig, Signal::SIGCONT] {
            if let Err(e) = process::kill_all(s as i32)
                && e.raw_os_error() != Some(Errno::ESRCH as i32)
            {
                warn!("kill(-1, {}): {e}", s.as_str());
            }
        }
        return;
    }
    let me = unistd::getpid().as_raw();
    for pid in procs::descendants(me, &procs::scan(Path::new("/proc"))) {
        // Through a pidfd, so a PID recycled since the scan is not hit after we opened it.
        if let Ok(fd) = process::pidfd_open(pid) {
            let _ = process::pidfd_send_signal(fd.as_fd(), sig as i32);
            let _ = process::pidfd_send_signal(fd.as_fd(), Signal::SIGCONT as i32);
        }
    }
}

/// Reaps until no child is left (`true`) or `limit_ms` passed (`false`). Orphans reparent to
/// us (PID 1 or subreaper), so "no child" means "nothing left".
fn wait_until_no_children(signals: &SignalFd, limit_ms: u64) -> bool {
    let deadline = now_ms().saturating_add(limit_ms);
    loop {
        loop {
            match process::reap_one() {
                Ok(Reaped::Child { .. }) => {}
                Ok(Reaped::NoChildren) => return true,
                Ok(Reaped::NoneReady) => break,
                Err(e) => {
                    warn!("waitid: {e}");
                    break;
                }
            }
        }
        let now = now_ms();
        if now >= deadline {
            return false;
        }
        // Sleep until the next SIGCHLD (or other signal, which is drained and ignored now).
        let wait = PollTimeout::try_from(deadline - now).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, wait);
        while let Ok(Some(_)) = signals.read_signal() {}
    }
}

/// Unmounts every mount but `/` in reverse mount order, then remounts `/` read-only.
fn unmount_all() {
    info!("shutdown: unmounting filesystems");
    match mountinfo::read(Path::new(setup::MOUNTINFO)) {
        Ok(mounts) => {
            for m in mounts.iter().rev() {
                let target = m.mount_point.as_path();
                if target == Path::new("/") {
                    continue;
                }
                let result = match mount::unmount(target, false) {
                    // Busy (for instance /dev while our log fd is open): detach it instead.
                    Err(e) if e.errno() == Some(Errno::EBUSY) => mount::unmount(target, true),
                    other => other,
                };
                match result {
                    Ok(()) => {}
                    // Already gone with a parent that was detached.
                    Err(e) if matches!(e.errno(), Some(Errno::EINVAL) | Some(Errno::ENOENT)) => {}
                    Err(e) => warn!("shutdown: {}", chain(&e)),
                }
            }
        }
        Err(e) => warn!("shutdown: {}; unmounting nothing", chain(&e)),
    }
    match mount::remount_read_only(Path::new("/")) {
        Ok(()) => info!("shutdown: remounted / read-only"),
        Err(e) => warn!("shutdown: {}", chain(&e)),
    }
}
