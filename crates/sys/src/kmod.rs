//! Loading kernel modules (finit_module(2)) and naming the running kernel (uname(2)).
//!
//! Which modules to load, and in what order, is decided by the caller from the module tree's
//! index files (`modules.dep`, `modules.alias`, …); this module only hands one file to the
//! kernel.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Loading a module failed.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    /// The module file could not be opened.
    #[error("open {path}")]
    Open {
        /// The `.ko` file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused it (`ENOEXEC`: wrong format or kernel; `ENOENT`/`EINVAL` from the
    /// module's init function; `ENODEV`: no matching hardware).
    #[error("load {path}")]
    Load {
        /// The `.ko` file.
        path: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
}

/// What [`load_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The kernel linked and initialised the module.
    Now,
    /// A module of that name was already loaded (`EEXIST`).
    Already,
}

/// Hands the module file at `path` to the kernel with `params` (`"name=value …"`, usually
/// empty). Compressed modules are decompressed by the kernel when it supports it
/// (`MODULE_INIT_COMPRESSED_FILE`, Linux 6.4); this loader passes no flags, so it needs plain
/// `.ko` files or a kernel that detects the compression itself.
pub fn load_file(path: &Path, params: &str) -> Result<Loaded, KmodError> {
    let file = File::open(path).map_err(|source| KmodError::Open {
        path: path.to_owned(),
        source,
    })?;
    let params = CString::new(params.replace('\0', "")).unwrap_or_default();
    // SAFETY: finit_module reads the module from an open fd and a NUL-terminated parameter
    // string that lives until the call returns; flags are 0.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        return Ok(Loaded::Now);
    }
    match Errno::last() {
        Errno::EEXIST => Ok(Loaded::Already),
        source => Err(KmodError::Load {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The running kernel's release (`uname -r`), which names its module directory
/// `/lib/modules/<release>`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_not_empty() {
        assert!(!kernel_release().is_empty());
    }

    #[test]
    fn missing_file_is_an_open_error() {
        let e = load_file(Path::new("/nonexistent/x.ko"), "").unwrap_err();
        assert!(matches!(e, KmodError::Open { .. }));
    }
}
