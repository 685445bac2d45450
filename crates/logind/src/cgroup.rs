//! A cgroup for every session, under a root of their own beside svmgr's services:
//! `<root>/user-<uid>.slice/session-<id>.scope`, with `<root>` =
//! `<cgroup2 mount>/dynamod-sessions` by default (configurable, or `none`).
//!
//! The session's leader is moved in when the session is created, so everything it starts
//! afterwards is in the session's cgroup: logind can list, signal and kill a whole session or a
//! whole user (`cgroup.kill`), tell when a closing session has no processes left
//! (`cgroup.events`), and find the session of any process from `/proc/PID/cgroup`. The names
//! follow systemd's (`session-<id>.scope` inside a `.slice`), so tools that parse cgroup paths
//! find the session id.

use std::io;
use std::path::{Path, PathBuf};

/// Where session cgroups go, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupRoot {
    /// `<cgroup2 mount>/dynamod-sessions`.
    Auto,
    /// No session cgroups.
    None,
    /// This directory, inside a cgroup2 mount.
    Dir(PathBuf),
}

impl std::str::FromStr for CgroupRoot {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            p if p.starts_with('/') => Ok(Self::Dir(PathBuf::from(p))),
            other => Err(format!(
                "{other:?} is not `auto`, `none` or an absolute path"
            )),
        }
    }
}

/// Setting up or using session cgroups failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 file system is mounted (or none holds the configured root).
    #[error("no cgroup2 file system holds {0}")]
    NoCgroup2(String),
    /// The mount table could not be read.
    #[error("read the mount table")]
    Mountinfo(#[source] dynamod_sys::mountinfo::MountinfoError),
    /// A cgroup file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The session cgroups.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// The root directory.
    root: PathBuf,
    /// The root as it appears in `/proc/PID/cgroup` (relative to the cgroup2 mount's root).
    rel: String,
}

impl Cgroups {
    /// Finds the cgroup2 mount and creates the root; `Ok(None)` for [`CgroupRoot::None`].
    pub fn setup(root: &CgroupRoot, mountinfo: &Path) -> Result<Option<Self>, CgroupError> {
        let dir = match root {
            CgroupRoot::None => return Ok(None),
            CgroupRoot::Auto => None,
            CgroupRoot::Dir(d) => Some(d.clone()),
        };
        let entries = dynamod_sys::mountinfo::read(mountinfo).map_err(CgroupError::Mountinfo)?;
        let cgroup2: Vec<_> = entries.iter().filter(|e| e.fs_type == "cgroup2").collect();
        let (mount, dir) = match dir {
            None => {
                let m = cgroup2
                    .iter()
                    .find(|e| e.mount_point == Path::new("/sys/fs/cgroup"))
                    .or_else(|| cgroup2.first())
                    .ok_or_else(|| CgroupError::NoCgroup2("the session cgroups".into()))?;
                (*m, m.mount_point.join("dynamod-sessions"))
            }
            Some(d) => {
                let m = cgroup2
                    .iter()
                    .filter(|e| d.starts_with(&e.mount_point))
                    .max_by_key(|e| e.mount_point.as_os_str().len())
                    .ok_or_else(|| CgroupError::NoCgroup2(d.display().to_string()))?;
                (*m, d)
            }
        };
        let suffix = dir
            .strip_prefix(&mount.mount_point)
            .unwrap_or(Path::new(""));
        let rel = mount.root.join(suffix).to_string_lossy().into_owned();
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(Some(Self { root: dir, rel }))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn user_dir(&self, uid: u32) -> PathBuf {
        self.root.join(format!("user-{uid}.slice"))
    }

    /// Creates the cgroup of session `id` of `uid` and moves `leader` into it.
    pub fn create_session(&self, uid: u32, id: &str, leader: u32) -> Result<PathBuf, CgroupError> {
        let dir = self.user_dir(uid).join(format!("session-{id}.scope"));
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let procs = dir.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, leader.to_string()) {
            let _ = std::fs::remove_dir(&dir);
            return Err(io_err("move the session leader into", &procs)(e));
        }
        Ok(dir)
    }

    /// Every process in `dir` and below.
    pub fn procs(dir: &Path) -> Vec<u32> {
        let mut out = Vec::new();
        collect(dir, &mut out);
        out
    }

    /// Whether any process is left in `dir` or below.
    pub fn populated(dir: &Path) -> bool {
        match std::fs::read_to_string(dir.join("cgroup.events")) {
            Ok(text) => text.lines().any(|l| l.trim() == "populated 1"),
            Err(_) => !Self::procs(dir).is_empty(),
        }
    }

    /// Sends `sig` to every process in `dir` and below, each through a pidfd.
    pub fn signal(dir: &Path, sig: i32) {
        for pid in Self::procs(dir) {
            signal_pid(pid, sig);
        }
    }

    /// Kills everything in `dir` and below (`cgroup.kill`, else SIGKILL one by one).
    pub fn kill(dir: &Path) {
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            Self::signal(dir, libc::SIGKILL);
        }
    }

    /// The cgroup of user `uid` (all its sessions).
    pub fn user(&self, uid: u32) -> PathBuf {
        self.user_dir(uid)
    }

    /// Removes an empty session cgroup.
    pub fn remove(dir: &Path) -> Result<(), CgroupError> {
        match std::fs::remove_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", dir)(e)),
        }
    }

    /// Removes user `uid`'s slice once it is empty.
    pub fn remove_user(&self, uid: u32) -> Result<(), CgroupError> {
        Self::remove(&self.user_dir(uid))
    }

    /// Removes leftovers of an earlier logind: empty session and user cgroups.
    pub fn remove_stale(&self) {
        let Ok(users) = std::fs::read_dir(&self.root) else {
            return;
        };
        for user in users.flatten() {
            if let Ok(sessions) = std::fs::read_dir(user.path()) {
                for s in sessions.flatten() {
                    if s.path().is_dir() && !Self::populated(&s.path()) {
                        let _ = std::fs::remove_dir(s.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(user.path());
        }
    }

    /// The session id a process belongs to, from its `/proc/PID/cgroup`.
    pub fn session_of(&self, proc_cgroup: &str) -> Option<String> {
        let path = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
        let rest = path.strip_prefix(self.rel.trim_end_matches('/'))?;
        let mut parts = rest.trim_start_matches('/').split('/');
        let user = parts.next()?;
        let scope = parts.next()?;
        user.strip_prefix("user-")?.strip_suffix(".slice")?;
        let id = scope.strip_prefix("session-")?.strip_suffix(".scope")?;
        (!id.is_empty()).then(|| id.to_owned())
    }
}

fn collect(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&e.path(), out);
            }
        }
    }
}

/// Sends `sig` to `pid` through a pidfd (a process that is already gone is not an error).
pub fn signal_pid(pid: u32, sig: i32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    match dynamod_sys::process::pidfd_open(pid) {
        Ok(fd) => {
            use std::os::fd::AsFd;
            if let Err(e) = dynamod_sys::process::pidfd_send_signal(fd.as_fd(), sig)
                && e.raw_os_error() != Some(libc::ESRCH)
            {
                tracing::debug!(pid, sig, "cannot signal: {e}");
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
        Err(e) => tracing::debug!(pid, "cannot open a pidfd: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroups(rel: &str) -> Cgroups {
        Cgroups {
            root: PathBuf::from("/sys/fs/cgroup").join(rel.trim_start_matches('/')),
            rel: rel.to_owned(),
        }
    }

    #[test]
    fn the_root_option_parses_auto_none_and_paths() {
        assert_eq!("auto".parse::<CgroupRoot>(), Ok(CgroupRoot::Auto));
        assert_eq!("none".parse::<CgroupRoot>(), Ok(CgroupRoot::None));
        assert_eq!(
            "/sys/fs/cgroup/x".parse::<CgroupRoot>(),
            Ok(CgroupRoot::Dir("/sys/fs/cgroup/x".into()))
        );
        assert!("relative".parse::<CgroupRoot>().is_err());
    }

    #[test]
    fn a_process_is_mapped_to_its_session_through_proc_cgroup() {
        let cg = cgroups("/dynamod-sessions");
        let text = "1:name=systemd:/\n0::/dynamod-sessions/user-1000.slice/session-c4.scope\n";
        assert_eq!(cg.session_of(text).as_deref(), Some("c4"));
        let deeper = "0::/dynamod-sessions/user-1000.slice/session-c4.scope/app\n";
        assert_eq!(cg.session_of(deeper).as_deref(), Some("c4"));
        for other in [
            "0::/dynamod/root/web\n",
            "0::/dynamod-sessions/user-1000.slice\n",
            "0::/dynamod-sessionsX/user-1.slice/session-c1.scope\n",
            "0::/dynamod-sessions/user-1000.slice/session-.scope\n",
            "",
        ] {
            assert_eq!(cg.session_of(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_test_base_inside_the_mount_is_found_relative_to_it() {
        let cg = cgroups("/dynamod-test-7/sessions");
        let text = "0::/dynamod-test-7/sessions/user-0.slice/session-c1.scope\n";
        assert_eq!(cg.session_of(text).as_deref(), Some("c1"));
    }
}
