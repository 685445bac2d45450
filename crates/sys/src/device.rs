//! The device and console ioctls logind needs: DRM master handover, evdev revocation, and
//! virtual-terminal switching and modes.
//!
//! Each call is a plain `ioctl(2)` on a descriptor the caller borrows, with an integer argument,
//! none, or (for `KDGKBMODE`) a pointer to a local integer, so no memory outlives the call.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `DRM_IOCTL_SET_MASTER` = `_IO('d', 0x1e)` (include/uapi/drm/drm.h).
const DRM_IOCTL_SET_MASTER: u64 = 0x641e;
/// `DRM_IOCTL_DROP_MASTER` = `_IO('d', 0x1f)`.
const DRM_IOCTL_DROP_MASTER: u64 = 0x641f;
/// `EVIOCREVOKE` = `_IOW('E', 0x91, int)` (include/uapi/linux/input.h).
const EVIOCREVOKE: u64 = 0x4004_4591;
/// `VT_ACTIVATE` (include/uapi/linux/vt.h).
const VT_ACTIVATE: u64 = 0x5606;
/// `KDSETMODE` (include/uapi/linux/kd.h).
const KDSETMODE: u64 = 0x4B3A;
/// `KDSKBMODE`.
const KDSKBMODE: u64 = 0x4B45;
/// `KDGKBMODE`.
const KDGKBMODE: u64 = 0x4B44;

/// `KD_TEXT`.
pub const KD_TEXT: i32 = 0x00;
/// `KD_GRAPHICS`.
pub const KD_GRAPHICS: i32 = 0x01;
/// `K_OFF`: the console does not interpret the keyboard.
pub const K_OFF: i32 = 0x04;
/// `K_UNICODE`.
pub const K_UNICODE: i32 = 0x03;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An ioctl whose third argument is an integer passed by value (or unused).
fn ioctl_int(fd: BorrowedFd<'_>, request: u64, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow; every request used with
    // this helper takes its argument by value (an integer or nothing), so the kernel reads no
    // memory of ours. The request type differs between libcs (c_ulong on glibc, c_int on
    // musl); the constants fit both.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    check(rc)
}

/// Makes the caller's open file the DRM master of its device (needs `CAP_SYS_ADMIN`).
pub fn drm_set_master(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(fd, DRM_IOCTL_SET_MASTER, 0)
}

/// Gives up DRM mastership, so the open file can no longer modeset.
pub fn drm_drop_master(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(fd, DRM_IOCTL_DROP_MASTER, 0)
}

/// Revokes an evdev open file for good: every descriptor sharing it (the session's copy
/// included) gets `ENODEV` from then on.
pub fn evdev_revoke(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(fd, EVIOCREVOKE, 0)
}

/// Asks the kernel to switch to virtual terminal `vt` (`fd`: any console, e.g. `/dev/tty0`).
pub fn vt_activate(fd: BorrowedFd<'_>, vt: u32) -> io::Result<()> {
    ioctl_int(fd, VT_ACTIVATE, libc::c_ulong::from(vt))
}

/// Sets a VT's display mode ([`KD_TEXT`] or [`KD_GRAPHICS`]).
pub fn kd_set_mode(fd: BorrowedFd<'_>, mode: i32) -> io::Result<()> {
    ioctl_int(fd, KDSETMODE, mode as libc::c_ulong)
}

/// Sets a VT's keyboard mode (e.g. [`K_OFF`] while a compositor reads evdev itself).
pub fn kd_set_keyboard_mode(fd: BorrowedFd<'_>, mode: i32) -> io::Result<()> {
    ioctl_int(fd, KDSKBMODE, mode as libc::c_ulong)
}

/// A VT's keyboard mode.
pub fn kd_keyboard_mode(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut mode: libc::c_int = 0;
    // SAFETY: KDGKBMODE writes one int through the pointer, which points at a live local.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            KDGKBMODE as _,
            &mut mode as *mut libc::c_int,
        )
    };
    check(rc)?;
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_headers() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr
        let ioc =
            |dir: u64, ty: u8, nr: u64, size: u64| dir << 30 | size << 16 | u64::from(ty) << 8 | nr;
        assert_eq!(DRM_IOCTL_SET_MASTER, ioc(0, b'd', 0x1e, 0));
        assert_eq!(DRM_IOCTL_DROP_MASTER, ioc(0, b'd', 0x1f, 0));
        assert_eq!(EVIOCREVOKE, ioc(1, b'E', 0x91, 4));
    }

    #[test]
    fn ioctls_on_a_plain_file_fail_cleanly() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsFd;
        assert!(drm_drop_master(f.as_fd()).is_err());
        assert!(evdev_revoke(f.as_fd()).is_err());
    }
}
