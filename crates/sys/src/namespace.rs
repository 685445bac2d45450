//! Namespaces and mount isolation for a service, prepared in the parent and applied in the
//! child between `clone3` and `execve`.
//!
//! The namespaces themselves are created by `clone3` flags (so a `pid` namespace makes the
//! service PID 1 of it, not its children). [`NamespacePlan::apply`] then runs in the child with
//! raw system calls only: mount propagation, a fresh `/proc`, read-only views, a private `/tmp`,
//! bind mounts, and the loopback interface. Every path was turned into a `CString` beforehand.
//!
//! Bind-mount targets are never created on the host: a target that does not exist is refused
//! when the plan is built, unless it lies inside the service's private `/tmp`, which is created
//! inside the namespace.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// `CLONE_NEWPID`.
    Pid,
    /// `CLONE_NEWNS`.
    Mnt,
    /// `CLONE_NEWNET`.
    Net,
    /// `CLONE_NEWUTS`.
    Uts,
    /// `CLONE_NEWIPC`.
    Ipc,
    /// `CLONE_NEWUSER`.
    User,
    /// `CLONE_NEWCGROUP`.
    Cgroup,
}

impl Ns {
    fn flag(self) -> u64 {
        (match self {
            Ns::Pid => libc::CLONE_NEWPID,
            Ns::Mnt => libc::CLONE_NEWNS,
            Ns::Net => libc::CLONE_NEWNET,
            Ns::Uts => libc::CLONE_NEWUTS,
            Ns::Ipc => libc::CLONE_NEWIPC,
            Ns::User => libc::CLONE_NEWUSER,
            Ns::Cgroup => libc::CLONE_NEWCGROUP,
        }) as u64
    }
}

/// `protect-system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protect {
    /// `/usr`, `/boot`, `/etc` read-only.
    Full,
    /// Everything read-only except `/dev`, `/proc`, `/sys`, `/run`, `/tmp`.
    Strict,
}

#[derive(Debug)]
enum Op {
    Rprivate,
    Proc,
    BindSelf(CString),
    SetReadOnly(CString),
    ClearReadOnly(CString),
    Tmpfs(CString),
    Mkdir(CString),
    Touch(CString),
    /// Attach the detached copy of bind source number `idx` at `dst`.
    Bind {
        idx: usize,
        dst: CString,
        readonly: bool,
    },
}

/// Most bind mounts one service may have.
pub const MAX_BINDS: usize = 64;

/// Why a plan cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A path contains a NUL byte.
    #[error("{0}: path contains a NUL byte")]
    Nul(String),
    /// A bind-mount source is missing.
    #[error("bind-mount source {0} does not exist")]
    MissingSource(String),
    /// More than [`MAX_BINDS`] bind mounts.
    #[error("more than {MAX_BINDS} bind mounts")]
    TooManyBinds,
    /// A bind-mount target is missing and cannot be created without touching the host.
    #[error(
        "bind-mount target {0} does not exist (dynamod never creates it on the host; create it, or put it under a private /tmp)"
    )]
    MissingTarget(String),
}

/// Everything needed to isolate one service.
#[derive(Debug, Default)]
pub struct NamespacePlan {
    flags: u64,
    ops: Vec<Op>,
    /// Bind sources, cloned (open_tree) before any mount changes what their paths resolve to.
    bind_sources: Vec<CString>,
    lo_up: bool,
    user_map: Option<(u32, u32)>,
}

fn c(p: &Path) -> Result<CString, PlanError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| PlanError::Nul(p.display().to_string()))
}

impl NamespacePlan {
    /// Builds the plan. `mnt` is added when a mount option or `pid` needs it.
    pub fn new(
        namespaces: &[Ns],
        private_tmp: bool,
        protect: Option<Protect>,
        binds: &[(PathBuf, PathBuf, bool)],
        root: &Path,
    ) -> Result<Self, PlanError> {
        let mut plan = NamespacePlan::default();
        for ns in namespaces {
            if *ns == Ns::User {
                // Entered by the child after dropping to the mapped ids (see spawn).
                plan.user_map = Some((65534, 65534));
            } else {
                plan.flags |= ns.flag();
            }
        }
        let needs_mnt =
            namespaces.contains(&Ns::Pid) || private_tmp || protect.is_some() || !binds.is_empty();
        if needs_mnt || namespaces.contains(&Ns::Mnt) {
            plan.flags |= libc::CLONE_NEWNS as u64;
            plan.ops.push(Op::Rprivate);
        }
        if namespaces.contains(&Ns::Pid) {
            plan.ops.push(Op::Proc);
        }
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        match protect {
            Some(Protect::Strict) => {
                let writable: Vec<PathBuf> = ["/dev", "/proc", "/sys", "/run", "/tmp"]
                    .iter()
                    .map(|p| at(p))
                    .filter(|p| p.is_dir())
                    .collect();
                for w in &writable {
                    plan.ops.push(Op::BindSelf(c(w)?));
                }
                plan.ops.push(Op::SetReadOnly(c(&at("/"))?));
                for w in &writable {
                    plan.ops.push(Op::ClearReadOnly(c(w)?));
                }
            }
            Some(Protect::Full) => {
                for p in ["/usr", "/boot", "/etc"] {
                    let p = at(p);
                    if p.is_dir() {
                        plan.ops.push(Op::BindSelf(c(&p)?));
                        plan.ops.push(Op::SetReadOnly(c(&p)?));
                    }
                }
            }
            None => {}
        }
        let tmp = at("/tmp");
        if private_tmp {
            plan.ops.push(Op::Tmpfs(c(&tmp)?));
        }
        for (src, dst, writable) in binds {
            if !src.exists() {
                return Err(PlanError::MissingSource(src.display().to_string()));
            }
            let dst_at = at(&dst.display().to_string());
            if private_tmp && dst_at.starts_with(&tmp) && dst_at != tmp {
                // Inside the fresh /tmp nothing exists yet: create the path there.
                let rel: Vec<_> = dst_at
                    .strip_prefix(&tmp)
                    .map(|r| r.components().collect())
                    .unwrap_or_default();
                let mut cur = tmp.clone();
                for (i, comp) in rel.iter().enumerate() {
                    cur.push(comp);
                    if i + 1 == rel.len() && !src.is_dir() {
                        plan.ops.push(Op::Touch(c(&cur)?));
                    } else {
                        plan.ops.push(Op::Mkdir(c(&cur)?));
                    }
                }
            } else if !dst_at.exists() {
                return Err(PlanError::MissingTarget(dst.display().to_string()));
            }
            if plan.bind_sources.len() == MAX_BINDS {
                return Err(PlanError::TooManyBinds);
            }
            plan.ops.push(Op::Bind {
                idx: plan.bind_sources.len(),
                dst: c(&dst_at)?,
                readonly: !writable,
            });
            plan.bind_sources.push(c(src)?);
        }
        plan.lo_up = namespaces.contains(&Ns::Net);
        Ok(plan)
    }

    /// Maps uid 0 and gid 0 inside the user namespace to `uid`/`gid` outside.
    pub fn map_root_to(&mut self, uid: u32, gid: u32) {
        self.user_map = Some((uid, gid));
    }

    /// The `clone3` flags.
    pub fn clone_flags(&self) -> u64 {
        self.flags
    }

    /// With a user namespace: the ids that root inside maps to outside.
    pub fn user_map(&self) -> Option<(u32, u32)> {
        self.user_map
    }

    /// In the parent, after clone: writes the user namespace's id maps for `pid`.
    pub fn write_maps(&self, pid: i32) -> io::Result<()> {
        let Some((uid, gid)) = self.user_map else {
            return Ok(());
        };
        let proc = PathBuf::from(format!("/proc/{pid}"));
        std::fs::write(proc.join("uid_map"), format!("0 {uid} 1\n"))?;
        std::fs::write(proc.join("setgroups"), "deny")?;
        std::fs::write(proc.join("gid_map"), format!("0 {gid} 1\n"))?;
        Ok(())
    }

    /// In the child: applies every step. Raw system calls only.
    pub fn apply(&self) -> io::Result<()> {
        // SAFETY: each call takes pointers to NUL-terminated strings owned by `self` (alive in
        // the child's copy of the address space) or to stack buffers, and integer flags.
        unsafe {
            // Detached copies of every bind source, taken while the paths still mean what the
            // configuration says (a private /tmp would hide a source under /tmp).
            let mut trees = [-1 as libc::c_int; MAX_BINDS];
            for (i, src) in self.bind_sources.iter().enumerate().take(MAX_BINDS) {
                let fd = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    src.as_ptr(),
                    OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
                ) as libc::c_int;
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                trees[i] = fd;
            }
            for op in &self.ops {
                let rc = match op {
                    Op::Rprivate => libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ),
                    Op::Proc => libc::mount(
                        c"proc".as_ptr(),
                        c"/proc".as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ),
                    Op::BindSelf(p) => libc::mount(
                        p.as_ptr(),
                        p.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ),
                    Op::SetReadOnly(p) => mount_setattr(p, MOUNT_ATTR_RDONLY, 0),
                    Op::ClearReadOnly(p) => mount_setattr(p, 0, MOUNT_ATTR_RDONLY),
                    Op::Tmpfs(p) => libc::mount(
                        c"tmpfs".as_ptr(),
                        p.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c"mode=1777".as_ptr().cast(),
                    ),
                    Op::Mkdir(p) => {
                        let r = libc::mkdir(p.as_ptr(), 0o755);
                        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST)
                        {
                            0
                        } else {
                            r
                        }
                    }
                    Op::Touch(p) => {
                        let fd = libc::open(
                            p.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                            0
                        } else {
                            fd
                        }
                    }
                    Op::Bind { idx, dst, readonly } => {
                        let r = libc::syscall(
                            libc::SYS_move_mount,
                            trees[*idx],
                            c"".as_ptr(),
                            libc::AT_FDCWD,
                            dst.as_ptr(),
                            MOVE_MOUNT_F_EMPTY_PATH,
                        ) as libc::c_int;
                        if r == 0 && *readonly {
                            mount_setattr(dst, MOUNT_ATTR_RDONLY, 0)
                        } else {
                            r
                        }
                    }
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if self.lo_up {
                loopback_up()?;
            }
        }
        Ok(())
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` recursively on the mount at `path`.
///
/// # Safety
/// `path` must stay alive during the call (it does: borrowed).
unsafe fn mount_setattr(path: &CString, set: u64, clr: u64) -> libc::c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path pointer, a correctly laid out mount_attr and its size.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as libc::c_int
    }
}

/// Brings `lo` up in the current network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS).
fn loopback_up() -> io::Result<()> {
    // struct ifreq: 16-byte name, then a union whose first member we use is `short ifr_flags`.
    let mut ifr = [0u8; 40];
    ifr[..2].copy_from_slice(b"lo");
    // SAFETY: socket/ioctl/close with a 40-byte ifreq buffer as the kernel expects.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, ifr.as_mut_ptr()) < 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let flags = i16::from_ne_bytes([ifr[16], ifr[17]]) | libc::IFF_UP as i16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, ifr.as_mut_ptr());
        let e = io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_mount_options_imply_a_mount_namespace() {
        let p = NamespacePlan::new(&[Ns::Pid], false, None, &[], Path::new("/")).unwrap();
        assert_ne!(p.clone_flags() & libc::CLONE_NEWNS as u64, 0);
        assert_ne!(p.clone_flags() & libc::CLONE_NEWPID as u64, 0);
        let p = NamespacePlan::new(&[], true, None, &[], Path::new("/")).unwrap();
        assert_ne!(p.clone_flags() & libc::CLONE_NEWNS as u64, 0);
        let p = NamespacePlan::new(&[Ns::Net], false, None, &[], Path::new("/")).unwrap();
        assert_eq!(p.clone_flags(), libc::CLONE_NEWNET as u64);
    }

    #[test]
    fn missing_bind_targets_are_refused_unless_under_private_tmp() {
        let root = std::env::temp_dir();
        let src = PathBuf::from("/etc");
        let err = NamespacePlan::new(
            &[],
            false,
            None,
            &[(src.clone(), PathBuf::from("/no/such/target"), false)],
            &root,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::MissingTarget(_)), "{err}");
        let ok = NamespacePlan::new(
            &[],
            true,
            None,
            &[(src, PathBuf::from("/tmp/inside/x"), true)],
            Path::new("/"),
        );
        assert!(ok.is_ok());
        let err = NamespacePlan::new(
            &[],
            false,
            None,
            &[(PathBuf::from("/no/src"), PathBuf::from("/tmp"), false)],
            Path::new("/"),
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::MissingSource(_)));
    }
}
