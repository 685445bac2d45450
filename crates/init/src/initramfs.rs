//! Phase A (SPEC §2.2): find the real root from an initramfs, switch to it and re-exec.
//!
//! FIXME: not implemented yet (a later issue). [`switch_to_real_root`] reports that plainly so
//! the caller drops to the emergency shell instead of silently booting on the initramfs.

use dynamod_sys::cmdline::Cmdline;

/// Why phase A did not hand over to the real root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseAError {
    /// This build cannot do phase A yet.
    NotSupported,
}

impl std::fmt::Display for PhaseAError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSupported => f.write_str("initramfs boot (phase A) is not supported yet"),
        }
    }
}

/// Mounts the root named on `cmdline`, moves the API filesystems, switches root and re-execs
/// dynamod-init from it. Returns only on failure.
pub fn switch_to_real_root(cmdline: &Cmdline) -> PhaseAError {
    let _ = cmdline;
    PhaseAError::NotSupported
}
