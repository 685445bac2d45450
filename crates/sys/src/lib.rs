//! The kernel seam. Every system call dynamod makes that the standard library does not wrap goes
//! through this crate, and this is the only crate allowed to contain `unsafe` (each block carries
//! a `// SAFETY:` comment). Paths that tests want to redirect (`/proc`, `/sys/fs/cgroup`, `/run`)
//! are parameters, never constants buried in here.

#![allow(unsafe_code)]

pub use nix;

pub mod blkid;
pub mod cmdline;
pub mod device;
pub mod entropy;
pub mod fd;
pub mod hostname;
pub mod kmod;
pub mod kmsg;
pub mod loopdev;
pub mod machine_id;
pub mod mount;
pub mod mountinfo;
pub mod namespace;
pub mod process;
pub mod reboot;
pub mod spawn;
pub mod switch_root;
pub mod time;
pub mod uevent;
