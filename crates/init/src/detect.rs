//! Where dynamod-init is running (SPEC §2.1): an initramfs, a container, or a real root.
//!
//! The decision is a pure function of [`Facts`] so every combination is unit-tested; only
//! [`Facts::gather`] touches the system.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dynamod_sys::cmdline::Cmdline;

/// Inode of the initial PID namespace (`PROC_PID_INIT_INO` in include/linux/proc_ns.h).
pub const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// What was observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `container=` is set to something non-empty in our environment (systemd's convention,
    /// set by Podman, LXC, systemd-nspawn).
    pub container_var: bool,
    /// `/.dockerenv` exists.
    pub dockerenv: bool,
    /// `/run/.containerenv` exists (Podman).
    pub containerenv: bool,
    /// Inode of `/proc/self/ns/pid`, if readable.
    pub pid_ns_inode: Option<u64>,
    /// `/` is ramfs or tmpfs.
    pub root_on_ram: bool,
    /// `root=` or `dynamod.live` is on the kernel command line.
    pub cmdline_names_a_root: bool,
}

/// The environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// PID 1 of a container: no devtmpfs, no reboot(2), exit at the end.
    Container,
    /// Booted into an initramfs that must find and switch to the real root (phase A).
    Initramfs,
    /// A real machine whose root is already mounted (phase B).
    RealRoot,
}

impl Environment {
    /// Lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Initramfs => "initramfs",
            Self::RealRoot => "real root",
        }
    }
}

/// The decision and its grounds, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The environment.
    pub env: Environment,
    /// Why.
    pub reason: &'static str,
    /// A container hint that was overruled by the PID namespace test.
    pub overruled: Option<&'static str>,
}

fn container_hint(f: &Facts) -> Option<&'static str> {
    if f.container_var {
        Some("container= is set")
    } else if f.dockerenv {
        Some("/.dockerenv exists")
    } else if f.containerenv {
        Some("/run/.containerenv exists")
    } else {
        None
    }
}

/// Decides the environment of a PID 1 and says why.
///
/// The PID namespace is the decisive test when it can be read: PID 1 of the initial namespace
/// is the kernel's init, whatever files lie around (a root filesystem made from a container
/// image keeps its `/.dockerenv`), and PID 1 of any other namespace is a container. The
/// environment and file hints decide only when `/proc/self/ns/pid` cannot be read. Container
/// evidence wins over the initramfs test: a container sees the host's `/proc/cmdline` (with
/// its `root=`) and may have a tmpfs root.
pub fn classify(f: &Facts) -> Classification {
    let hint = container_hint(f);
    let initial_ns = match f.pid_ns_inode {
        Some(ino) if ino != PROC_PID_INIT_INO => {
            return Classification {
                env: Environment::Container,
                reason: "not the initial PID namespace",
                overruled: None,
            };
        }
        Some(_) => true,
        None => false,
    };
    if !initial_ns && let Some(reason) = hint {
        return Classification {
            env: Environment::Container,
            reason,
            overruled: None,
        };
    }
    let overruled = if initial_ns { hint } else { None };
    if f.root_on_ram && f.cmdline_names_a_root {
        return Classification {
            env: Environment::Initramfs,
            reason: "root is ramfs/tmpfs and the command line names a root",
            overruled,
        };
    }
    Classification {
        env: Environment::RealRoot,
        reason: if initial_ns {
            "initial PID namespace"
        } else {
            "no container evidence"
        },
        overruled,
    }
}

impl Facts {
    /// Looks at the running system. `/proc` must be mounted for the namespace test.
    pub fn gather(cmdline: &Cmdline) -> Self {
        Self {
            container_var: std::env::var_os("container").is_some_and(|v| !v.is_empty()),
            dockerenv: Path::new("/.dockerenv").exists(),
            containerenv: Path::new("/run/.containerenv").exists(),
            pid_ns_inode: std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino()),
            root_on_ram: dynamod_sys::mount::is_ram_backed(Path::new("/")).unwrap_or(false),
            cmdline_names_a_root: cmdline.contains("root") || cmdline.contains("dynamod.live"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Facts {
        Facts {
            pid_ns_inode: Some(PROC_PID_INIT_INO),
            ..Facts::default()
        }
    }

    fn unknown_ns() -> Facts {
        Facts {
            pid_ns_inode: None,
            ..Facts::default()
        }
    }

    #[test]
    fn plain_host_is_a_real_root() {
        assert_eq!(classify(&host()).env, Environment::RealRoot);
    }

    #[test]
    fn another_pid_namespace_is_a_container() {
        let f = Facts {
            pid_ns_inode: Some(4026532000),
            ..Facts::default()
        };
        assert_eq!(classify(&f).env, Environment::Container);
    }

    #[test]
    fn each_hint_alone_means_container_when_the_namespace_is_unknown() {
        for f in [
            Facts {
                container_var: true,
                ..unknown_ns()
            },
            Facts {
                dockerenv: true,
                ..unknown_ns()
            },
            Facts {
                containerenv: true,
                ..unknown_ns()
            },
        ] {
            assert_eq!(classify(&f).env, Environment::Container, "{f:?}");
        }
    }

    #[test]
    fn initial_namespace_overrules_a_leftover_dockerenv() {
        let c = classify(&Facts {
            dockerenv: true,
            ..host()
        });
        assert_eq!(c.env, Environment::RealRoot);
        assert_eq!(c.overruled, Some("/.dockerenv exists"));
    }

    #[test]
    fn ram_root_with_root_parameter_is_an_initramfs() {
        let f = Facts {
            root_on_ram: true,
            cmdline_names_a_root: true,
            ..host()
        };
        assert_eq!(classify(&f).env, Environment::Initramfs);
    }

    #[test]
    fn ram_root_without_root_parameter_is_a_real_root() {
        let f = Facts {
            root_on_ram: true,
            ..host()
        };
        assert_eq!(classify(&f).env, Environment::RealRoot);
    }

    #[test]
    fn container_on_tmpfs_seeing_the_hosts_root_parameter_is_still_a_container() {
        let f = Facts {
            root_on_ram: true,
            cmdline_names_a_root: true,
            pid_ns_inode: Some(4026532000),
            ..Facts::default()
        };
        assert_eq!(classify(&f).env, Environment::Container);
        let g = Facts {
            root_on_ram: true,
            cmdline_names_a_root: true,
            dockerenv: true,
            ..unknown_ns()
        };
        assert_eq!(classify(&g).env, Environment::Container);
    }

    #[test]
    fn nothing_known_is_a_real_root() {
        assert_eq!(classify(&unknown_ns()).env, Environment::RealRoot);
    }
}
