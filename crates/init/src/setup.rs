//! Phase B and container set-up (SPEC §2.3 steps 1–6): API filesystems, `/run/dynamod`,
//! hostname, entropy, machine-id, Ctrl-Alt-Del.
//!
//! What to mount is decided by a pure function of the mount table ([`plan`]), so "never stack a
//! second instance" and "never expose the host's devices in a container" are unit-tested.

use std::path::Path;

use dynamod_sys::mount::{self, MsFlags};
use dynamod_sys::mountinfo::{self, MountEntry};
use dynamod_sys::nix::errno::Errno;
use dynamod_sys::reboot::{self, CadOutcome};
use dynamod_sys::{entropy, hostname, machine_id};

use crate::detect::Environment;

/// The mount table of this process.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// The saved random seed.
pub const SEED: &str = "/var/lib/dynamod/random-seed";
const RUN_DYNAMOD: &str = "/run/dynamod";
const HOSTNAME: &str = "/etc/hostname";
const MACHINE_ID: &str = "/etc/machine-id";
const URANDOM: &str = "/dev/urandom";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where a hybrid layout (cgroup v1 hierarchies in a tmpfs on [`CGROUP_ROOT`]) keeps cgroup2, as
/// systemd's hybrid mode does; svmgr finds it in the mount table.
const CGROUP_UNIFIED: &str = "/sys/fs/cgroup/unified";
/// Inode of the initial cgroup namespace (`PROC_CGROUP_INIT_INO` in include/linux/proc_ns.h).
const PROC_CGROUP_INIT_INO: u64 = 0xEFFF_FFFB;

/// One API filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiMount {
    /// Mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fs_type: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// Filesystem options.
    pub data: Option<&'static str>,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The API filesystems, in mount order (parents first).
pub const API_MOUNTS: [ApiMount; 7] = [
    ApiMount {
        target: "/proc",
        fs_type: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    ApiMount {
        target: "/sys",
        fs_type: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
    ApiMount {
        target: "/dev",
        fs_type: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    ApiMount {
        target: "/dev/pts",
        fs_type: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        // A private instance (newinstance) with a usable ptmx; gid 5 is "tty" by convention.
        data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    },
    ApiMount {
        target: "/dev/shm",
        fs_type: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    ApiMount {
        target: "/run",
        fs_type: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=0755"),
    },
    ApiMount {
        target: CGROUP_ROOT,
        fs_type: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
    },
];

/// What to do about one API filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is mounted there: mount it.
    Mount,
    /// Something is already mounted there (its type): leave it.
    Present(String),
    /// `/dev` in a container: it belongs to the engine; a devtmpfs would expose the host's devices.
    ContainerDev,
    /// `/sys/fs/cgroup` is a tmpfs holding cgroup v1 hierarchies: leave it alone.
    CgroupV1,
    /// A cgroup2 mount exposes the host's whole tree (the container shares the host's cgroup
    /// namespace): mount our own, namespaced view on top of it.
    HostCgroupView,
}

/// Decides, for each of [`API_MOUNTS`], what to do. `host_cgroup_view`: in a container, our
/// cgroup was not the root of our cgroup namespace before we entered a new one.
pub fn plan(
    mounts: &[MountEntry],
    container: bool,
    host_cgroup_view: bool,
) -> Vec<(ApiMount, Decision)> {
    API_MOUNTS
        .iter()
        .map(|m| {
            let present = mountinfo::find(mounts, Path::new(m.target));
            let decision = match (m.target, present) {
                ("/dev", None) if container => Decision::ContainerDev,
                (_, None) => Decision::Mount,
                (CGROUP_ROOT, Some(e)) if e.fs_type == "tmpfs" => Decision::CgroupV1,
                (CGROUP_ROOT, Some(e))
                    if e.fs_type == "cgroup2" && container && host_cgroup_view =>
                {
                    Decision::HostCgroupView
                }
                (_, Some(e)) => Decision::Present(e.fs_type.clone()),
            };
            (*m, decision)
        })
        .collect()
}

/// What to do about cgroup2 at [`CGROUP_UNIFIED`] when [`CGROUP_ROOT`] holds cgroup v1
/// hierarchies ([`Decision::CgroupV1`]): mount it unless something is already there.
pub fn plan_hybrid_cgroup2(mounts: &[MountEntry]) -> Decision {
    match mountinfo::find(mounts, Path::new(CGROUP_UNIFIED)) {
        Some(e) => Decision::Present(e.fs_type.clone()),
        None => Decision::Mount,
    }
}

/// Mounts `/proc` if the mount table cannot be read yet (it lives in `/proc`).
pub fn ensure_proc() {
    if mountinfo::read(Path::new(MOUNTINFO)).is_ok() {
        return;
    }
    let proc_mount = API_MOUNTS[0];
    match mount_one(&proc_mount) {
        Ok(()) => info!("mounted proc on /proc"),
        Err(e) => error!("{}", chain(&e)),
    }
}

fn mount_one(m: &ApiMount) -> Result<(), mount::MountError> {
    mount::ensure_dir(Path::new(m.target), 0o755)?;
    mount::mount(m.fs_type, Path::new(m.target), m.fs_type, m.flags, m.data)
}

/// Formats an error with its sources, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// Whether our cgroup (from `/proc/self/cgroup`, the `0::` line) is below the root of our
/// cgroup namespace, i.e. a cgroup2 mount made in this namespace would show more than our
/// subtree.
fn cgroup_is_below_namespace_root() -> bool {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim() != "/"))
        })
        .unwrap_or(false)
}

/// Whether this process is in the kernel's initial cgroup namespace.
fn in_initial_cgroup_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/cgroup").is_ok_and(|m| m.ino() == PROC_CGROUP_INIT_INO)
}

/// Step 1: mount what is missing. In a container, what the engine refuses (no CAP_SYS_ADMIN
/// without `--privileged`) is a warning, and one closing line sums up what could not be done.
pub fn mount_api_filesystems(env: Environment) {
    let container = env == Environment::Container;
    let host_view = container && cgroup_is_below_namespace_root();
    // Our cgroup is the root of our own (engine-made) namespace, or below the root of the
    // host's: either way a new namespace is rooted at the container's cgroup, never the host's
    // root.
    let own_subtree = host_view || !in_initial_cgroup_namespace();
    let mut unshared = false;
    let mut refused: Vec<String> = Vec::new();
    if container {
        // Enter a cgroup namespace rooted at our own cgroup first, so no cgroup2 we mount (nor
        // anything svmgr writes through it) can touch the host's tree.
        match mount::unshare_cgroup_namespace() {
            Ok(()) => unshared = true,
            Err(e) => {
                warn!("{}", chain(&e));
                refused.push("enter a cgroup namespace".to_owned());
            }
        }
    }
    // Without the new namespace, a cgroup2 mount would show the host's tree.
    let cgroup_allowed = !container || unshared || !host_view;
    let mounts = match mountinfo::read(Path::new(MOUNTINFO)) {
        Ok(m) => m,
        Err(e) => {
            warn!("{}; mounting without checking what is there", chain(&e));
            Vec::new()
        }
    };
    let mut present = Vec::new();
    for (m, decision) in plan(&mounts, container, host_view) {
        match decision {
            Decision::Present(t) => present.push(format!("{} ({t})", m.target)),
            Decision::ContainerDev => present.push("/dev (container's own)".to_owned()),
            Decision::CgroupV1 => {
                // Hybrid layout (Docker on a cgroup v1 host): cgroup2 goes beside the v1
                // hierarchies, where svmgr finds it, so services still get a cgroup each. In a
                // container only inside our own namespace rooted at the container's cgroup.
                if container && !(unshared && own_subtree) {
                    info!(
                        "{} is a cgroup v1 tmpfs; no cgroup2 mounted (no private cgroup namespace)",
                        m.target
                    );
                    continue;
                }
                let unified = ApiMount {
                    target: CGROUP_UNIFIED,
                    ..m
                };
                match plan_hybrid_cgroup2(&mounts) {
                    Decision::Present(t) => present.push(format!("{CGROUP_UNIFIED} ({t})")),
                    _ => match mount_one(&unified) {
                        Ok(()) => info!(
                            "{} is a cgroup v1 tmpfs; mounted cgroup2 on {CGROUP_UNIFIED}",
                            m.target
                        ),
                        Err(e) if container => {
                            warn!("{} (refused in this container; continuing)", chain(&e));
                            refused.push(format!("mount cgroup2 on {CGROUP_UNIFIED}"));
                        }
                        Err(e) => error!("{}", chain(&e)),
                    },
                }
            }
            Decision::Mount | Decision::HostCgroupView => {
                if m.fs_type == "cgroup2" && !cgroup_allowed {
                    warn!(
                        "not mounting cgroup2 on {}: it would expose the host's cgroups",
                        m.target
                    );
                    refused.push(format!("mount cgroup2 on {}", m.target));
                    continue;
                }
                match mount_one(&m) {
                    Ok(()) if decision == Decision::HostCgroupView => {
                        info!(
                            "mounted a namespaced cgroup2 over the host's view at {}",
                            m.target
                        );
                    }
                    Ok(()) => info!("mounted {} on {}", m.fs_type, m.target),
                    Err(e) if container => {
                        warn!("{} (refused in this container; continuing)", chain(&e));
                        refused.push(format!("mount {} on {}", m.fs_type, m.target));
                    }
                    Err(e) => error!("{}", chain(&e)),
                }
            }
        }
    }
    if !present.is_empty() {
        info!("already mounted: {}", present.join(", "));
    }
    if !refused.is_empty() {
        warn!("{}", limited_container_summary(&refused));
    }
}

/// The one line that says what a container without the privileges for it could not set up,
/// what that means, and how to get the full set-up.
pub fn limited_container_summary(refused: &[String]) -> String {
    format!(
        "limited container: could not {}; continuing without them (run the container \
         privileged for the full set-up)",
        refused.join(", ")
    )
}

/// Steps 2–6 after the mounts.
pub fn prepare_system(env: Environment) {
    let container = env == Environment::Container;

    // /run/dynamod: runtime state, control and notify sockets.
    if let Err(e) = mount::ensure_dir(Path::new(RUN_DYNAMOD), 0o755) {
        error!("{}", chain(&e));
    }

    set_hostname(container);

    // Entropy: feed the saved seed, then replace it at once so a crash never reuses it.
    match entropy::load_seed(Path::new(SEED), Path::new(URANDOM)) {
        Ok(entropy::SeedOutcome::Loaded(n)) => {
            info!("seeded the entropy pool with {n} saved bytes")
        }
        Ok(entropy::SeedOutcome::NoSeed) => info!("no saved random seed; created {SEED}"),
        Err(e) => warn!("random seed: {}", chain(&e)),
    }

    match machine_id::ensure(Path::new(MACHINE_ID)) {
        Ok(machine_id::MachineIdOutcome::Written(id)) => info!("generated machine id {id}"),
        Ok(machine_id::MachineIdOutcome::Present(_)) => {}
        Err(e) if e.is_not_writable() => {
            info!(
                "{MACHINE_ID} is missing or invalid and not writable yet; left to the machine-id service"
            );
        }
        Err(e) => warn!("{}", chain(&e)),
    }

    // Ctrl-Alt-Del becomes SIGINT to us (handled as a reboot) instead of an immediate reset.
    // In a container the key belongs to the host: EINVAL, or EPERM without CAP_SYS_BOOT, is
    // expected there and not worth a warning.
    match reboot::disable_ctrl_alt_del() {
        Ok(CadOutcome::Disabled | CadOutcome::NotInThisNamespace) => {}
        Err(_) if container => {}
        Err(e) => warn!("{}", chain(&e)),
    }
}

fn set_hostname(container: bool) {
    let current = hostname::current()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    if container && !hostname::is_unset(&current) {
        // The engine chose a name (docker run --hostname, compose hostname:); keep it.
        return;
    }
    match hostname::read_file(Path::new(HOSTNAME)) {
        Ok(Some(name)) if name == current => {}
        Ok(Some(name)) => match hostname::set(&name) {
            Ok(()) => info!("hostname set to {name}"),
            Err(e) if container && e_is_perm(&e) => {
                warn!("{} (not permitted in this container)", chain(&e))
            }
            Err(e) => warn!("{}", chain(&e)),
        },
        Ok(None) => {}
        Err(e) => warn!("{}", chain(&e)),
    }
}

fn e_is_perm(e: &hostname::HostnameError) -> bool {
    matches!(
        e,
        hostname::HostnameError::Set {
            source: Errno::EPERM,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(lines: &str) -> Vec<MountEntry> {
        mountinfo::parse(lines.as_bytes()).unwrap()
    }

    fn decisions(
        mounts: &[MountEntry],
        container: bool,
        host_view: bool,
    ) -> Vec<(&'static str, Decision)> {
        plan(mounts, container, host_view)
            .into_iter()
            .map(|(m, d)| (m.target, d))
            .collect()
    }

    #[test]
    fn empty_real_root_mounts_everything_in_order() {
        let d = decisions(&[], false, false);
        let targets: Vec<_> = d.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            targets,
            [
                "/proc",
                "/sys",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/run",
                "/sys/fs/cgroup"
            ]
        );
        assert!(d.iter().all(|(_, d)| *d == Decision::Mount));
    }

    #[test]
    fn mounted_targets_are_never_stacked() {
        let m = table(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             2 1 0:5 / /proc rw - proc proc rw\n\
             3 1 0:6 / /run rw - tmpfs tmpfs rw\n",
        );
        let d = decisions(&m, false, false);
        assert_eq!(d[0], ("/proc", Decision::Present("proc".into())));
        assert_eq!(d[5], ("/run", Decision::Present("tmpfs".into())));
        assert_eq!(d[1], ("/sys", Decision::Mount));
    }

    #[test]
    fn container_never_mounts_a_devtmpfs() {
        let d = decisions(&[], true, false);
        assert_eq!(d[2], ("/dev", Decision::ContainerDev));
        assert_eq!(d[3], ("/dev/pts", Decision::Mount));
    }

    #[test]
    fn cgroup_v1_tmpfs_is_left_alone() {
        let m = table("1 0 0:1 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n");
        assert_eq!(decisions(&m, true, false)[6].1, Decision::CgroupV1);
        assert_eq!(decisions(&m, false, false)[6].1, Decision::CgroupV1);
    }

    #[test]
    fn host_wide_cgroup2_in_a_container_gets_a_namespaced_mount() {
        let m = table("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(decisions(&m, true, true)[6].1, Decision::HostCgroupView);
        assert_eq!(
            decisions(&m, true, false)[6].1,
            Decision::Present("cgroup2".into())
        );
        assert_eq!(
            decisions(&m, false, true)[6].1,
            Decision::Present("cgroup2".into())
        );
    }

    #[test]
    fn hybrid_layout_mounts_cgroup2_beside_the_v1_hierarchies_once() {
        let v1 = table(
            "1 0 0:1 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
             2 1 0:2 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        assert_eq!(plan_hybrid_cgroup2(&v1), Decision::Mount);
        let hybrid = table(
            "1 0 0:1 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
             2 1 0:3 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(
            plan_hybrid_cgroup2(&hybrid),
            Decision::Present("cgroup2".into())
        );
    }

    #[test]
    fn limited_container_summary_names_every_refusal_and_the_remedy() {
        let line = limited_container_summary(&[
            "enter a cgroup namespace".to_owned(),
            "mount tmpfs on /run".to_owned(),
        ]);
        assert!(line.contains("could not enter a cgroup namespace, mount tmpfs on /run;"));
        assert!(line.contains("privileged"));
    }

    #[test]
    fn error_chain_joins_sources() {
        let e = mount::fs_magic(Path::new("/nonexistent/x")).unwrap_err();
        assert!(chain(&e).starts_with("statfs /nonexistent/x: "));
    }
}
