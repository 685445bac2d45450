//! Virtual terminals of seat0: which one is in the foreground
//! (`/sys/class/tty/tty0/active`), switching (`VT_ACTIVATE` on `/dev/tty0`), and the console
//! mode of a session whose controller draws on it itself (graphics mode, keyboard off, as
//! systemd-logind sets them on `TakeControl` and restores on `ReleaseControl`).
//!
//! A machine (or a test) without `<sysfs>/class/tty/tty0/active` has no VTs: seat0 then reports
//! `CanTTY=no` and logind never touches a console.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use dynamod_sys::device as ioctl;

/// The VTs of seat0.
#[derive(Debug, Clone)]
pub struct Vt {
    dev: PathBuf,
    active_file: PathBuf,
}

impl Vt {
    /// The VTs, if the machine has them.
    pub fn detect(dev: &Path, sysfs: &Path) -> Option<Self> {
        let active_file = sysfs.join("class/tty/tty0/active");
        active_file.exists().then(|| Self {
            dev: dev.to_owned(),
            active_file,
        })
    }

    /// The sysfs file that reports the foreground VT.
    pub fn active_file(&self) -> &Path {
        &self.active_file
    }

    /// The VT in the foreground.
    pub fn active(&self) -> Option<u32> {
        parse_active(&std::fs::read_to_string(&self.active_file).ok()?)
    }

    fn open(&self, name: &str) -> io::Result<std::fs::File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(self.dev.join(name))
    }

    /// Switches to VT `n`.
    pub fn switch_to(&self, n: u32) -> io::Result<()> {
        let tty0 = self.open("tty0")?;
        ioctl::vt_activate(tty0.as_fd(), n)
    }

    /// Puts VT `n` in graphics mode with the keyboard off: the controller reads the keyboard
    /// through evdev and draws through DRM.
    pub fn prepare(&self, n: u32) -> io::Result<()> {
        let tty = self.open(&format!("tty{n}"))?;
        ioctl::kd_set_keyboard_mode(tty.as_fd(), ioctl::K_OFF)?;
        ioctl::kd_set_mode(tty.as_fd(), ioctl::KD_GRAPHICS)
    }

    /// Gives VT `n` back to the console: text mode, Unicode keyboard.
    pub fn restore(&self, n: u32) -> io::Result<()> {
        let tty = self.open(&format!("tty{n}"))?;
        ioctl::kd_set_mode(tty.as_fd(), ioctl::KD_TEXT)?;
        if ioctl::kd_keyboard_mode(tty.as_fd())? == ioctl::K_OFF {
            ioctl::kd_set_keyboard_mode(tty.as_fd(), ioctl::K_UNICODE)?;
        }
        Ok(())
    }
}

/// `tty3` → 3.
pub fn parse_active(text: &str) -> Option<u32> {
    text.trim().strip_prefix("tty")?.parse().ok()
}

/// The VT number of a terminal name (`tty3` → 3; `ttyS0`, `pts/1` → none).
pub fn vt_of_tty(tty: &str) -> Option<u32> {
    let n: u32 = tty.strip_prefix("tty")?.parse().ok()?;
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_vt_is_read_from_sysfs_text() {
        assert_eq!(parse_active("tty2\n"), Some(2));
        assert_eq!(parse_active(""), None);
        assert_eq!(vt_of_tty("tty7"), Some(7));
        for other in ["tty0", "ttyS0", "pts/3", "console"] {
            assert_eq!(vt_of_tty(other), None, "{other}");
        }
    }

    #[test]
    fn a_machine_without_tty0_has_no_vts() {
        assert!(Vt::detect(Path::new("/dev"), Path::new("/nonexistent")).is_none());
    }
}
