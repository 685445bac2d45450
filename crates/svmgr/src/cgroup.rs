//! Per-service cgroups (cgroup v2).
//!
//! Each service gets `<base>/<supervisor path>/<service>`, where `<base>` is
//! `<cgroup2 mount><svmgr's own cgroup>/dynamod` (so `/sys/fs/cgroup/dynamod` when svmgr runs in
//! the root cgroup, as under dynamod-init). The process is placed there by `clone3
//! (CLONE_INTO_CGROUP)`, so it is inside before its first instruction, and its limits are written
//! before the spawn. Controllers are enabled top-down on the inner nodes, which never hold
//! processes (cgroup v2's "no internal processes" rule). Stopping ends with `cgroup.kill`.
//!
//! The cgroup2 mount is found in `/proc/self/mountinfo` — never assumed to be at
//! `/sys/fs/cgroup` (hybrid hosts mount it at `/sys/fs/cgroup/unified`). Where there is none, or
//! it is not writable, svmgr falls back to process groups and says so once.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use dynamod_config::{CgroupLimits, Limit};
use dynamod_proto::CgroupUsage;

/// The controllers dynamod manages, in the order they are enabled.
pub const CONTROLLERS: [&str; 4] = ["cpu", "io", "memory", "pids"];

/// Where cgroups go, as chosen on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupSetting {
    /// Find the cgroup2 mount and svmgr's own cgroup.
    Auto,
    /// Use this directory (inside a cgroup2 mount) as the base.
    Base(PathBuf),
    /// Do not use cgroups.
    Disabled,
}

/// The cgroup2 mount point from `/proc/self/mountinfo` text (the first, preferring
/// `/sys/fs/cgroup`).
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        if let Some(mp) = pre.split_whitespace().nth(4) {
            found.push(PathBuf::from(unescape_mountinfo(mp)));
        }
    }
    found
        .iter()
        .find(|p| *p == Path::new("/sys/fs/cgroup"))
        .cloned()
        .or_else(|| found.into_iter().next())
}

/// Decodes the `\NNN` octal escapes of mountinfo fields.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// svmgr's own cgroup path from `/proc/self/cgroup` text (the `0::` line).
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// The cgroup tree dynamod manages.
#[derive(Debug)]
pub struct Cgroups {
    base: PathBuf,
}

/// What `detect` decided.
#[derive(Debug)]
pub enum Detected {
    /// Cgroups in use.
    Cgroups(Cgroups),
    /// Process groups instead, and why.
    ProcessGroups(String),
}

/// Chooses the cgroup base and checks that it is writable.
pub fn detect(setting: &CgroupSetting) -> Detected {
    let base = match setting {
        CgroupSetting::Disabled => {
            return Detected::ProcessGroups("disabled on the command line".into());
        }
        CgroupSetting::Base(p) => p.clone(),
        CgroupSetting::Auto => {
            let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let Some(mount) = find_cgroup2_mount(&mi) else {
                return Detected::ProcessGroups("no cgroup2 file system is mounted".into());
            };
            let own = own_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
                .unwrap_or_else(|| "/".into());
            mount.join(own.trim_start_matches('/')).join("dynamod")
        }
    };
    if let Err(e) = std::fs::create_dir_all(&base) {
        return Detected::ProcessGroups(format!("cannot create {}: {e}", base.display()));
    }
    // The base may exist from an earlier run on a file system that is read-only now: only a
    // real mkdir tells.
    let probe = base.join(format!(".probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            Detected::Cgroups(Cgroups { base })
        }
        Err(e) => {
            Detected::ProcessGroups(format!("cannot create cgroups in {}: {e}", base.display()))
        }
    }
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
}

fn limit_value(l: Limit) -> String {
    match l {
        Limit::Max => "max".to_owned(),
        Limit::Value(v) => v.to_string(),
    }
}

/// The limit files a `[cgroup]` table writes, as (file, value, controller).
pub fn limit_writes(l: &CgroupLimits) -> Vec<(&'static str, String, &'static str)> {
    let mut w = Vec::new();
    if let Some(v) = l.memory_max {
        w.push(("memory.max", limit_value(v), "memory"));
    }
    if let Some(v) = l.memory_high {
        w.push(("memory.high", limit_value(v), "memory"));
    }
    if let Some(v) = l.cpu_weight {
        w.push(("cpu.weight", v.to_string(), "cpu"));
    }
    if let Some(c) = l.cpu_max {
        let quota = c
            .quota_us
            .map_or_else(|| "max".to_owned(), |q| q.to_string());
        w.push(("cpu.max", format!("{quota} {}", c.period_us), "cpu"));
    }
    if let Some(v) = l.pids_max {
        w.push(("pids.max", limit_value(v), "pids"));
    }
    if let Some(v) = l.io_weight {
        w.push(("io.weight", format!("default {v}"), "io"));
    }
    w
}

/// A service's cgroup, ready for `CLONE_INTO_CGROUP`.
#[derive(Debug)]
pub struct Prepared {
    /// Its directory.
    pub path: PathBuf,
    /// An `O_DIRECTORY` fd of it.
    pub dir: OwnedFd,
    /// Limits that could not be applied, for the log.
    pub warnings: Vec<String>,
}

impl Cgroups {
    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Enables every available managed controller in `dir`'s `cgroup.subtree_control`.
    fn enable_controllers(dir: &Path) {
        let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        for c in CONTROLLERS {
            if available.split_whitespace().any(|a| a == c) {
                // Fails harmlessly where the node holds processes; the limit write reports it.
                let _ = write(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
    }

    /// Creates `<base>/<rel>` with its inner nodes, enables controllers on the way down and
    /// writes the limits.
    pub fn prepare(&self, rel: &Path, limits: &CgroupLimits) -> io::Result<Prepared> {
        let path = self.base.join(rel);
        std::fs::create_dir_all(&path)?;
        // Parent of base (may hold svmgr itself: then controllers stay unavailable), base, and
        // every supervisor directory down to the leaf's parent.
        let mut inner = Vec::new();
        if let Some(p) = self.base.parent() {
            inner.push(p.to_path_buf());
        }
        let mut cur = self.base.clone();
        inner.push(cur.clone());
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            cur = cur.join(c);
            inner.push(cur.clone());
        }
        for dir in &inner {
            Self::enable_controllers(dir);
        }
        let mut warnings = Vec::new();
        for (file, value, controller) in limit_writes(limits) {
            if let Err(e) = write(&path.join(file), &value) {
                warnings.push(format!(
                    "{file} = {value} not applied ({controller} controller: {e})"
                ));
            }
        }
        let dir = dynamod_sys::nix::fcntl::open(
            &path,
            dynamod_sys::nix::fcntl::OFlag::O_DIRECTORY
                | dynamod_sys::nix::fcntl::OFlag::O_RDONLY
                | dynamod_sys::nix::fcntl::OFlag::O_CLOEXEC,
            dynamod_sys::nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(Prepared {
            path,
            dir,
            warnings,
        })
    }
}

/// PIDs in a cgroup.
pub fn procs(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether no process is left in the cgroup (a missing cgroup counts as empty).
pub fn is_empty(path: &Path) -> bool {
    match std::fs::read_to_string(path.join("cgroup.events")) {
        Ok(ev) => ev.lines().any(|l| l == "populated 0"),
        Err(_) => procs(path).is_empty(),
    }
}

/// SIGKILLs everything in the cgroup: `cgroup.kill` (Linux 5.14), else each PID in turn.
pub fn kill(path: &Path) {
    if write(&path.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // Repeat: processes may fork while we iterate.
    for _ in 0..10 {
        let pids = procs(path);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = dynamod_sys::process::kill_pid(pid, 9);
        }
    }
}

/// Removes an empty cgroup directory.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_dir(path);
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `memory.events` `oom_kill`.
pub fn oom_kills(path: &Path) -> Option<u64> {
    keyed(&path.join("memory.events"), "oom_kill")
}

/// Usage figures for `dynamodctl status`.
pub fn usage(path: &Path) -> CgroupUsage {
    CgroupUsage {
        memory_current: read_u64(&path.join("memory.current")),
        memory_peak: read_u64(&path.join("memory.peak")),
        cpu_usec: keyed(&path.join("cpu.stat"), "usage_usec"),
        tasks: read_u64(&path.join("pids.current")).or_else(|| {
            std::fs::read_to_string(path.join("cgroup.procs"))
                .ok()
                .map(|t| t.lines().count() as u64)
        }),
        oom_kills: oom_kills(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamod_config::CpuMax;

    #[test]
    fn finds_cgroup2_on_a_hybrid_host_and_prefers_sys_fs_cgroup() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "41 31 0:38 / /x\\040y rw - cgroup2 cgroup2 rw\n\
                       42 31 0:39 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            find_cgroup2_mount("1 1 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/trailing\\04"), "/trailing\\04");
    }

    #[test]
    fn own_cgroup_comes_from_the_unified_line() {
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/user.slice/a\n").as_deref(),
            Some("/user.slice/a")
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn limits_map_to_cgroup_files() {
        let l = CgroupLimits {
            memory_max: Some(Limit::Value(32 << 20)),
            memory_high: Some(Limit::Max),
            cpu_weight: Some(200),
            cpu_max: Some(CpuMax {
                quota_us: Some(50_000),
                period_us: 100_000,
            }),
            pids_max: Some(Limit::Value(5)),
            io_weight: Some(50),
        };
        let w: Vec<(&str, String)> = limit_writes(&l)
            .into_iter()
            .map(|(f, v, _)| (f, v))
            .collect();
        assert_eq!(
            w,
            vec![
                ("memory.max", "33554432".to_owned()),
                ("memory.high", "max".to_owned()),
                ("cpu.weight", "200".to_owned()),
                ("cpu.max", "50000 100000".to_owned()),
                ("pids.max", "5".to_owned()),
                ("io.weight", "default 50".to_owned()),
            ]
        );
        let unlimited = CgroupLimits {
            cpu_max: Some(CpuMax {
                quota_us: None,
                period_us: 100_000,
            }),
            ..Default::default()
        };
        assert_eq!(limit_writes(&unlimited)[0].1, "max 100000");
    }

    #[test]
    fn prepare_writes_limits_in_a_plain_directory_tree() {
        // A plain directory stands in for cgroupfs: files are created by the writes.
        let dir = std::env::temp_dir().join(format!("dynamod-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cg = Cgroups {
            base: dir.join("dynamod"),
        };
        std::fs::create_dir_all(cg.base()).unwrap();
        let l = CgroupLimits {
            pids_max: Some(Limit::Value(5)),
            ..Default::default()
        };
        let p = cg.prepare(Path::new("root/early/svc"), &l).unwrap();
        assert_eq!(
            std::fs::read_to_string(p.path.join("pids.max")).unwrap(),
            "5"
        );
        assert!(p.warnings.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usage_reads_what_exists() {
        let dir = std::env::temp_dir().join(format!("dynamod-cgu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.current"), "4096\n").unwrap();
        std::fs::write(dir.join("cpu.stat"), "usage_usec 77\nuser_usec 1\n").unwrap();
        std::fs::write(dir.join("memory.events"), "low 0\noom 1\noom_kill 2\n").unwrap();
        std::fs::write(dir.join("cgroup.procs"), "1\n2\n").unwrap();
        let u = usage(&dir);
        assert_eq!(u.memory_current, Some(4096));
        assert_eq!(u.cpu_usec, Some(77));
        assert_eq!(u.oom_kills, Some(2));
        assert_eq!(u.tasks, Some(2));
        assert_eq!(u.memory_peak, None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
