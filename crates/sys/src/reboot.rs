//! reboot(2): the final power-off/restart/halt, and disabling Ctrl-Alt-Del.

use std::convert::Infallible;

use nix::errno::Errno;
use nix::sys::reboot::RebootMode;

/// What reboot(2) should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootAction {
    /// `RB_POWER_OFF`.
    PowerOff,
    /// `RB_AUTOBOOT`.
    Restart,
    /// `RB_HALT_SYSTEM`.
    Halt,
}

/// reboot(2) refused.
#[derive(Debug, thiserror::Error)]
pub enum RebootError {
    /// The power-off/restart/halt call returned.
    #[error("reboot({action:?})")]
    Reboot {
        /// What was asked.
        action: RebootAction,
        /// errno.
        #[source]
        source: Errno,
    },
    /// `RB_DISABLE_CAD` failed for a reason other than running in a PID namespace.
    #[error("disable ctrl-alt-del")]
    DisableCad(#[source] Errno),
}

/// The result of [`disable_ctrl_alt_del`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CadOutcome {
    /// The kernel now sends SIGINT to PID 1 on Ctrl-Alt-Del instead of rebooting at once.
    Disabled,
    /// The call is not available in a non-initial PID namespace (it returns `EINVAL` there,
    /// reboot(2) "NOTES"); nothing to do.
    NotInThisNamespace,
}

/// `reboot(RB_DISABLE_CAD)`: Ctrl-Alt-Del becomes SIGINT to PID 1.
pub fn disable_ctrl_alt_del() -> Result<CadOutcome, RebootError> {
    match nix::sys::reboot::set_cad_enabled(false) {
        Ok(()) => Ok(CadOutcome::Disabled),
        Err(Errno::EINVAL) => Ok(CadOutcome::NotInThisNamespace),
        Err(e) => Err(RebootError::DisableCad(e)),
    }
}

/// Powers off, restarts or halts now. Returns only on failure. The caller must have synced
/// and unmounted: the kernel does neither.
pub fn reboot(action: RebootAction) -> RebootError {
    let mode = match action {
        RebootAction::PowerOff => RebootMode::RB_POWER_OFF,
        RebootAction::Restart => RebootMode::RB_AUTOBOOT,
        RebootAction::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    let result: Result<Infallible, Errno> = nix::sys::reboot::reboot(mode);
    match result {
        Err(source) => RebootError::Reboot { action, source },
    }
}
