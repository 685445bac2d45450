//! Loop devices (loop(4)): attach a file (a squashfs image on a live medium) read-only to a
//! free `/dev/loopN`, so it can be mounted like a disk.
//!
//! The device is configured in one step with `LOOP_CONFIGURE` (Linux 5.8), falling back to
//! `LOOP_SET_FD` + `LOOP_SET_STATUS64` on older kernels. It is marked autoclear: it detaches by
//! itself when the last mount of it goes away.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

// From include/uapi/linux/loop.h.
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaching a loop device failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The backing file could not be opened.
    #[error("open {path}")]
    OpenBacking {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `/dev/loop-control` could not be used (is the loop driver loaded?).
    #[error("get a free loop device from {path}")]
    GetFree {
        /// The control device.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The loop device node could not be opened.
    #[error("open {path}")]
    OpenDevice {
        /// The node.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuring ioctl failed.
    #[error("attach {backing} to {device}")]
    Attach {
        /// The file.
        backing: PathBuf,
        /// The loop device.
        device: PathBuf,
        /// errno.
        #[source]
        source: Errno,
    },
}

fn info_for(backing: &Path) -> LoopInfo64 {
    let mut name = [0u8; LO_NAME_SIZE];
    let bytes = backing.as_os_str().as_encoded_bytes();
    let n = bytes.len().min(LO_NAME_SIZE - 1);
    name[..n].copy_from_slice(&bytes[..n]);
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        lo_file_name: name,
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

fn ioctl_ptr<T>(fd: &File, request: libc::c_ulong, arg: &T) -> Result<(), Errno> {
    // SAFETY: `request` is a loop ioctl whose argument is a pointer to a `T` laid out as the
    // kernel expects (`#[repr(C)]` copies of the uapi structs); the kernel only reads it, and
    // `arg` outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, std::ptr::from_ref(arg)) };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

fn ioctl_int(fd: &File, request: libc::c_ulong, arg: libc::c_long) -> Result<i32, Errno> {
    // SAFETY: `request` is a loop ioctl taking an integer argument; no memory is passed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

/// An attached loop device. Autoclear detaches it when its last user goes away, so this
/// handle must live until the device is mounted (the mount then keeps it).
#[derive(Debug)]
pub struct Attached {
    /// The node, `/dev/loopN`.
    pub path: PathBuf,
    /// Keeps the device open (and attached) until the caller has mounted it.
    _device: File,
}

/// Attaches `backing` read-only (and autoclear) to a free loop device under `dev_dir`.
pub fn attach_read_only(backing: &Path, dev_dir: &Path) -> Result<Attached, LoopError> {
    let file = File::open(backing).map_err(|source| LoopError::OpenBacking {
        path: backing.to_owned(),
        source,
    })?;
    let control_path = dev_dir.join("loop-control");
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&control_path)
        .map_err(|source| LoopError::GetFree {
            path: control_path.clone(),
            source,
        })?;
    // Another process may take the same free device between GET_FREE and the attach (EBUSY):
    // ask again a few times.
    let mut last = Errno::EBUSY;
    for _ in 0..8 {
        let n = ioctl_int(&control, LOOP_CTL_GET_FREE, 0).map_err(|e| LoopError::GetFree {
            path: control_path.clone(),
            source: e.into(),
        })?;
        let device = dev_dir.join(format!("loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .open(&device)
            .map_err(|source| LoopError::OpenDevice {
                path: device.clone(),
                source,
            })?;
        match configure(&dev, &file, backing) {
            Ok(()) => {
                return Ok(Attached {
                    path: device,
                    _device: dev,
                });
            }
            Err(Errno::EBUSY) => last = Errno::EBUSY,
            Err(source) => {
                return Err(LoopError::Attach {
                    backing: backing.to_owned(),
                    device,
                    source,
                });
            }
        }
    }
    Err(LoopError::Attach {
        backing: backing.to_owned(),
        device: dev_dir.join("loop?"),
        source: last,
    })
}

fn configure(dev: &File, backing: &File, backing_path: &Path) -> Result<(), Errno> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    let config = LoopConfig {
        fd,
        block_size: 0,
        info: info_for(backing_path),
        reserved: [0; 8],
    };
    match ioctl_ptr(dev, LOOP_CONFIGURE, &config) {
        // Before Linux 5.8: the two-step attach.
        Err(Errno::EINVAL | Errno::ENOTTY) => {
            ioctl_int(dev, LOOP_SET_FD, libc::c_long::from(backing.as_raw_fd()))?;
            if let Err(e) = ioctl_ptr(dev, LOOP_SET_STATUS64, &config.info) {
                let _ = ioctl_int(dev, LOOP_CLR_FD, 0);
                return Err(e);
            }
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn long_backing_names_are_cut_and_terminated() {
        let long = "/x".repeat(100);
        let info = info_for(Path::new(&long));
        assert_eq!(info.lo_file_name[LO_NAME_SIZE - 1], 0);
        assert_eq!(&info.lo_file_name[..2], b"/x");
        assert_eq!(info.lo_flags, LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR);
    }

    #[test]
    fn missing_backing_file_is_reported_with_its_path() {
        let e = attach_read_only(Path::new("/nonexistent/root.squashfs"), Path::new("/dev"))
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/root.squashfs"));
    }
}
