//! Session devices: what `TakeDevice` may hand out, opening it, and muting or restoring it when
//! its session goes to the background or comes back.
//!
//! Like systemd-logind, only DRM cards (`/dev/dri/card*`, subsystem `drm`) and evdev nodes
//! (`/dev/input/event*`, subsystem `input`) are handed out, identified through
//! `/sys/dev/char/MAJOR:MINOR`; render nodes (`renderD*`) too, since they need no mastership.
//! Operators (and tests) may allow further character devices by number; those are handed out as
//! they are and cannot be muted at the kernel level.
//!
//! Muting is what keeps a background session from seeing the screen or the keyboard:
//! * DRM: logind keeps its own copy of the open file and drops DRM mastership on it when the
//!   session goes to the background (`DRM_IOCTL_DROP_MASTER`), and sets it again when the
//!   session comes back (`DRM_IOCTL_SET_MASTER`); the controller keeps its descriptor.
//! * evdev: the open file is revoked (`EVIOCREVOKE`), which makes every copy useless; coming
//!   back opens the device again and sends the new descriptor with `ResumeDevice`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use dynamod_sys::device as ioctl;

/// `DRM_MAJOR`.
const DRM_MAJOR: u32 = 226;

/// How a device is muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A DRM card: mastership is dropped and set again.
    Drm,
    /// An evdev node: revoked, and opened again on resume.
    Evdev,
    /// Anything else handed out (render nodes, allowed extra devices): never muted.
    Other,
}

/// A device taken by a session's controller.
#[derive(Debug)]
pub struct Device {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// How it is muted.
    pub kind: Kind,
    /// logind's own open file (the controller received a duplicate).
    pub fd: OwnedFd,
    /// Whether it is muted right now.
    pub paused: bool,
}

/// Why a device cannot be handed out.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device logind hands out.
    #[error("device {major}:{minor} is not a DRM card, render node or input event device")]
    NotAllowed {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// It belongs to another seat.
    #[error("device {major}:{minor} belongs to seat {seat}")]
    OtherSeat {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// Its seat.
        seat: String,
    },
    /// No device node was found for the numbers.
    #[error("no device node for {major}:{minor}")]
    NoNode {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// Opening failed.
    #[error("open {}", path.display())]
    Open {
        /// The node.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The node is not the character device asked for (e.g. a symlink was swapped).
    #[error("{} is not the character device {major}:{minor}", path.display())]
    Mismatch {
        /// The node.
        path: PathBuf,
        /// Major number asked for.
        major: u32,
        /// Minor number asked for.
        minor: u32,
    },
}

/// Where devices are looked up, and which extra ones may be handed out.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The device directory (`/dev`).
    pub dev: PathBuf,
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// udev's database (`/run/udev/data`), for `ID_SEAT`.
    pub udev_data: PathBuf,
    /// Extra character devices that may be handed out.
    pub allowed: Vec<(u32, u32)>,
}

impl DeviceConfig {
    /// What kind of device `major:minor` is, or why it may not be handed out.
    pub fn identify(&self, major: u32, minor: u32) -> Result<Kind, DeviceError> {
        let not_allowed = || DeviceError::NotAllowed { major, minor };
        let from_sysfs = self.sysfs_identity(major, minor);
        let kind = match from_sysfs.as_ref().map(|(s, n)| (s.as_str(), n.as_str())) {
            Some(("drm", name)) if name.starts_with("card") => Some(Kind::Drm),
            Some(("drm", name)) if name.starts_with("renderD") => Some(Kind::Other),
            Some(("input", name)) if name.starts_with("event") => Some(Kind::Evdev),
            _ => None,
        };
        match kind {
            Some(k) => Ok(k),
            None if self.allowed.contains(&(major, minor)) => Ok(match major {
                DRM_MAJOR if minor < 64 => Kind::Drm,
                _ => Kind::Other,
            }),
            None => Err(not_allowed()),
        }
    }

    /// The subsystem and kernel name of a character device, from sysfs.
    fn sysfs_identity(&self, major: u32, minor: u32) -> Option<(String, String)> {
        let dir = self.sys.join(format!("dev/char/{major}:{minor}"));
        let real = std::fs::canonicalize(&dir).ok()?;
        let name = real.file_name()?.to_string_lossy().into_owned();
        let subsystem = std::fs::read_link(real.join("subsystem")).ok()?;
        let subsystem = subsystem.file_name()?.to_string_lossy().into_owned();
        Some((subsystem, name))
    }

    /// The seat a device belongs to: udev's `ID_SEAT`, else `seat0`.
    pub fn seat_of(&self, major: u32, minor: u32) -> String {
        std::fs::read_to_string(self.udev_data.join(format!("c{major}:{minor}")))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("E:ID_SEAT="))
                    .map(str::to_owned)
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "seat0".to_owned())
    }

    /// Checks that `major:minor` may be handed out to a session on `seat`.
    pub fn check(&self, major: u32, minor: u32, seat: &str) -> Result<Kind, DeviceError> {
        let kind = self.identify(major, minor)?;
        let dev_seat = self.seat_of(major, minor);
        if dev_seat != seat {
            return Err(DeviceError::OtherSeat {
                major,
                minor,
                seat: dev_seat,
            });
        }
        Ok(kind)
    }

    /// The device node for `major:minor`: `<dev>/char/M:m` (udev's links), else the `DEVNAME`
    /// sysfs reports, under `<dev>`.
    fn node(&self, major: u32, minor: u32) -> Option<PathBuf> {
        let by_number = self.dev.join(format!("char/{major}:{minor}"));
        if by_number.exists() {
            return Some(by_number);
        }
        let uevent =
            std::fs::read_to_string(self.sys.join(format!("dev/char/{major}:{minor}/uevent")))
                .ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        if name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return None;
        }
        Some(self.dev.join(name))
    }

    /// Opens `major:minor` read-write, non-blocking, close-on-exec, without making it a
    /// controlling terminal, and checks that what was opened really is that device.
    pub fn open(&self, major: u32, minor: u32) -> Result<OwnedFd, DeviceError> {
        let path = self
            .node(major, minor)
            .ok_or(DeviceError::NoNode { major, minor })?;
        open_checked(&path, major, minor)
    }
}

fn open_checked(path: &Path, major: u32, minor: u32) -> Result<OwnedFd, DeviceError> {
    let open_err = |source| DeviceError::Open {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    let rdev = meta.rdev();
    let same = meta.file_type().is_char_device()
        && nix::sys::stat::major(rdev) == u64::from(major)
        && nix::sys::stat::minor(rdev) == u64::from(minor);
    if !same {
        return Err(DeviceError::Mismatch {
            path: path.to_owned(),
            major,
            minor,
        });
    }
    Ok(OwnedFd::from(file))
}

impl Device {
    /// Mutes the device (the session went to the background). Failures are logged: the
    /// session is switched away in any case.
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        let result = match self.kind {
            Kind::Drm => ioctl::drm_drop_master(self.fd.as_fd()),
            Kind::Evdev => ioctl::evdev_revoke(self.fd.as_fd()),
            Kind::Other => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(
                major = self.major,
                minor = self.minor,
                "cannot mute a session device: {e}"
            );
        }
        self.paused = true;
    }

    /// Restores the device (the session came to the foreground). For evdev this opens the
    /// device again (the old open file stays revoked).
    pub fn resume(&mut self, cfg: &DeviceConfig) -> Result<(), DeviceError> {
        if !self.paused {
            return Ok(());
        }
        match self.kind {
            Kind::Drm => {
                if let Err(e) = ioctl::drm_set_master(self.fd.as_fd()) {
                    tracing::warn!(
                        major = self.major,
                        minor = self.minor,
                        "cannot make a session's DRM device master again: {e}"
                    );
                }
            }
            Kind::Evdev => self.fd = cfg.open(self.major, self.minor)?,
            Kind::Other => {}
        }
        self.paused = false;
        Ok(())
    }

    /// Called right after opening: an active session's DRM card becomes master, an inactive
    /// session's device starts muted.
    pub fn start(&mut self, active: bool) {
        if active {
            if self.kind == Kind::Drm
                && let Err(e) = ioctl::drm_set_master(self.fd.as_fd())
            {
                tracing::warn!(
                    major = self.major,
                    minor = self.minor,
                    "cannot make a DRM device master: {e}"
                );
            }
            self.paused = false;
        } else {
            // A fresh open of a card may have become master on its own: drop it.
            self.paused = false;
            self.pause();
        }
    }

    /// A duplicate of logind's descriptor for the controller.
    pub fn duplicate(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("dynamod-logind-dev-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn config(root: &Path, allowed: Vec<(u32, u32)>) -> DeviceConfig {
        DeviceConfig {
            dev: root.join("dev"),
            sys: root.join("sys"),
            udev_data: root.join("udev"),
            allowed,
        }
    }

    /// A sysfs-like tree: `sys/dev/char/M:m -> ../../devices/<name>` with a `subsystem` link.
    fn sysfs_device(root: &Path, major: u32, minor: u32, subsystem: &str, name: &str) {
        let devdir = root.join("sys/devices").join(name);
        std::fs::create_dir_all(&devdir).unwrap();
        let class = root.join("sys/class").join(subsystem);
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(&class, devdir.join("subsystem")).unwrap();
        std::fs::write(
            devdir.join("uevent"),
            format!("MAJOR={major}\nDEVNAME=x/{name}\n"),
        )
        .unwrap();
        let chardir = root.join("sys/dev/char");
        std::fs::create_dir_all(&chardir).unwrap();
        std::os::unix::fs::symlink(&devdir, chardir.join(format!("{major}:{minor}"))).unwrap();
    }

    #[test]
    fn only_drm_cards_render_nodes_and_event_devices_are_handed_out() {
        let root = tree("identify");
        sysfs_device(&root, 226, 0, "drm", "card0");
        sysfs_device(&root, 226, 128, "drm", "renderD128");
        sysfs_device(&root, 13, 64, "input", "event0");
        sysfs_device(&root, 13, 32, "input", "mouse0");
        sysfs_device(&root, 4, 1, "tty", "tty1");
        let cfg = config(&root, vec![(1, 3)]);
        assert_eq!(cfg.identify(226, 0).unwrap(), Kind::Drm);
        assert_eq!(cfg.identify(226, 128).unwrap(), Kind::Other);
        assert_eq!(cfg.identify(13, 64).unwrap(), Kind::Evdev);
        assert!(matches!(
            cfg.identify(13, 32),
            Err(DeviceError::NotAllowed { .. })
        ));
        assert!(cfg.identify(4, 1).is_err());
        assert!(
            cfg.identify(1, 1).is_err(),
            "/dev/mem must never be handed out"
        );
        assert_eq!(cfg.identify(1, 3).unwrap(), Kind::Other);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_seat_comes_from_udev_and_defaults_to_seat0() {
        let root = tree("seat");
        std::fs::create_dir_all(root.join("udev")).unwrap();
        std::fs::write(root.join("udev/c13:65"), "E:ID_INPUT=1\nE:ID_SEAT=seat1\n").unwrap();
        let cfg = config(&root, vec![(13, 65), (13, 66)]);
        assert_eq!(cfg.seat_of(13, 65), "seat1");
        assert_eq!(cfg.seat_of(13, 66), "seat0");
        assert!(matches!(
            cfg.check(13, 65, "seat0"),
            Err(DeviceError::OtherSeat { .. })
        ));
        assert!(cfg.check(13, 66, "seat0").is_ok());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn opening_checks_the_device_numbers() {
        let root = tree("open");
        std::fs::create_dir_all(root.join("dev/char")).unwrap();
        // /dev/null under the number of /dev/zero: refused.
        std::os::unix::fs::symlink("/dev/null", root.join("dev/char/1:5")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("dev/char/1:3")).unwrap();
        let cfg = config(&root, vec![(1, 3), (1, 5)]);
        assert!(cfg.open(1, 3).is_ok());
        assert!(matches!(cfg.open(1, 5), Err(DeviceError::Mismatch { .. })));
        assert!(matches!(cfg.open(1, 7), Err(DeviceError::NoNode { .. })));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn other_devices_pause_and_resume_without_reopening() {
        let root = tree("pause");
        std::fs::create_dir_all(root.join("dev/char")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("dev/char/1:3")).unwrap();
        let cfg = config(&root, vec![(1, 3)]);
        let mut d = Device {
            major: 1,
            minor: 3,
            kind: Kind::Other,
            fd: cfg.open(1, 3).unwrap(),
            paused: false,
        };
        d.start(false);
        assert!(d.paused);
        d.resume(&cfg).unwrap();
        assert!(!d.paused);
        d.pause();
        assert!(d.paused);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
