//! The service trees each manager is given: the same N services (`bench-ready`), written in each
//! manager's own format into a staging directory that the launcher copies onto a tmpfs.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::ns::{Spec, Wait};
use super::setup::Bins;

/// A service manager under test, or the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// The minimal C program (`c/floor.c`).
    Floor,
    /// `dynamod-svmgr` as PID 1 (standalone, without cgroups).
    Dynamod,
    /// `s6-svscan` with one `s6-supervise` per service.
    S6,
    /// `runsvdir` with one `runsv` per service.
    Runit,
    /// `supervisord`.
    Supervisord,
}

impl Manager {
    /// Every manager with services, floor first.
    pub const ALL: [Manager; 5] = [
        Manager::Floor,
        Manager::Dynamod,
        Manager::S6,
        Manager::Runit,
        Manager::Supervisord,
    ];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Manager::Floor => "floor (C fork+exec)",
            Manager::Dynamod => "dynamod-svmgr",
            Manager::S6 => "s6-svscan + s6-supervise",
            Manager::Runit => "runsvdir + runsv",
            Manager::Supervisord => "supervisord",
        }
    }
}

/// The services to give a manager.
#[derive(Debug, Clone)]
pub struct Tree {
    /// How many.
    pub n: usize,
    /// Layers of this width, each requiring every service of the layer before; `None` for no
    /// dependencies.
    pub layer_width: Option<usize>,
    /// The first this many services ignore SIGTERM.
    pub ignore_term: usize,
    /// Service 0 writes a stamp to the `stamp` FIFO after readiness (restart benchmark).
    pub stamp: bool,
    /// Stop timeout before SIGKILL.
    pub stop_timeout: Duration,
}

impl Tree {
    /// N services, no dependencies, nothing special.
    pub fn flat(n: usize) -> Self {
        Tree {
            n,
            layer_width: None,
            ignore_term: 0,
            stamp: false,
            stop_timeout: Duration::from_secs(1),
        }
    }
}

/// The name of service `i`.
pub fn svc_name(i: usize) -> String {
    format!("svc{i:04}")
}

/// Where the benchmark puts one run's staging tree and mount point.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// Written by the driver on the host.
    pub stage: PathBuf,
    /// Empty on the host; the run's tmpfs inside its mount namespace.
    pub mount: PathBuf,
}

impl RunDirs {
    /// Fresh directories `stage-K` and `m-K` under `root`.
    pub fn new(root: &Path, k: usize) -> Result<Self> {
        let dirs = RunDirs {
            stage: root.join(format!("stage-{k}")),
            mount: root.join(format!("m-{k}")),
        };
        for d in [&dirs.stage, &dirs.mount] {
            if d.exists() {
                fs::remove_dir_all(d).with_context(|| format!("remove {}", d.display()))?;
            }
            fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        Ok(dirs)
    }

    /// Removes both (the mount point is an empty directory on the host side).
    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.stage);
        let _ = fs::remove_dir(&self.mount);
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", path.display()))
}

/// Services that service `i` requires (every one of the previous layer).
fn requires(tree: &Tree, i: usize) -> Vec<usize> {
    match tree.layer_width {
        Some(w) if w > 0 && i >= w => {
            let layer = i / w;
            ((layer - 1) * w..layer * w).collect()
        }
        _ => Vec::new(),
    }
}

/// Writes `tree` for `manager` into `dirs.stage` and returns how to launch it.
pub fn stage(manager: Manager, tree: &Tree, bins: &Bins, dirs: &RunDirs) -> Result<Spec> {
    let m = &dirs.mount;
    let st = &dirs.stage;
    let ready = bins.ready.as_os_str().to_owned();
    let os = |s: &str| OsString::from(s);
    let (argv, wait) = match manager {
        Manager::Floor => {
            let width = tree.layer_width.unwrap_or(0);
            (
                vec![
                    bins.floor.clone().into_os_string(),
                    os(&tree.n.to_string()),
                    os(&width.to_string()),
                    ready,
                ],
                Wait::Line("ready".to_owned(), 1),
            )
        }
        Manager::Dynamod => {
            // Every child's restart counts against its supervisor's intensity too (10 within
            // 300 s by default): the restart benchmark kills the same service 20 times.
            write(
                &st.join("supervisors/root.toml"),
                "[supervisor]\nname = \"root\"\n\n[restart]\nmax-restarts = 1000000\n",
            )?;
            fs::create_dir_all(st.join("run"))?;
            for i in 0..tree.n {
                let name = svc_name(i);
                let mut exec = format!("\"{}\", \"--fd-env\"", bins.ready.display());
                if i < tree.ignore_term {
                    exec.push_str(", \"--ignore-term\"");
                }
                if tree.stamp && i == 0 {
                    let _ = write!(exec, ", \"--stamp\", \"{}\"", m.join("stamp").display());
                }
                let mut text = format!(
                    "[service]\nname = \"{name}\"\nexec = [{exec}]\n\n[readiness]\ntype = \"fd\"\n\n\
                     [restart]\ndelay = \"0s\"\nmax-restarts = 1000000\n\n\
                     [shutdown]\nstop-timeout = \"{}ms\"\n",
                    tree.stop_timeout.as_millis()
                );
                let req = requires(tree, i);
                if !req.is_empty() {
                    let names: Vec<String> = req
                        .iter()
                        .map(|&j| format!("\"{}\"", svc_name(j)))
                        .collect();
                    let _ = write!(
                        text,
                        "\n[dependencies]\nrequires = [{}]\n",
                        names.join(", ")
                    );
                }
                write(&st.join("services").join(format!("{name}.toml")), &text)?;
            }
            if tree.stamp {
                mkfifo(&st.join("stamp"))?;
            }
            (
                vec![
                    bins.dm("dynamod-svmgr").into_os_string(),
                    os("--services"),
                    m.join("services").into_os_string(),
                    os("--supervisors"),
                    m.join("supervisors").into_os_string(),
                    os("--runtime-dir"),
                    m.join("run").into_os_string(),
                    os("--cgroup-root"),
                    os("none"),
                ],
                Wait::Line("startup complete".to_owned(), 1),
            )
        }
        Manager::S6 | Manager::Runit => {
            let scan = st.join("scan");
            fs::create_dir_all(&scan)?;
            for i in 0..tree.n {
                let dir = scan.join(svc_name(i));
                fs::create_dir_all(dir.join("supervise"))?;
                symlink(&bins.ready, dir.join("run"))
                    .with_context(|| format!("symlink {}/run", dir.display()))?;
                if manager == Manager::S6 {
                    write(&dir.join("notification-fd"), "3\n")?;
                    write(
                        &dir.join("timeout-kill"),
                        &format!("{}\n", tree.stop_timeout.as_millis()),
                    )?;
                }
                if i < tree.ignore_term {
                    write(&dir.join("ignore-term"), "")?;
                }
                if tree.stamp && i == 0 {
                    mkfifo(&dir.join("stamp"))?;
                }
            }
            // runsvdir waits a second before its first scan when the directory changed in the
            // current second; a tree staged just now would pay that in every run.
            let past = SystemTime::now() - Duration::from_secs(10);
            fs::File::open(&scan)
                .and_then(|f| f.set_modified(past))
                .with_context(|| format!("set the mtime of {}", scan.display()))?;
            let scan_m = m.join("scan");
            if manager == Manager::S6 {
                let mut argv = vec![os("s6-svscan")];
                if tree.n > 500 {
                    // s6-svscan supervises at most 500 services unless told otherwise.
                    argv.push(os("-c"));
                    argv.push(os(&(tree.n * 2).to_string()));
                }
                argv.push(scan_m.clone().into_os_string());
                (argv, Wait::S6(scan_m))
            } else {
                (
                    vec![os("runsvdir"), scan_m.clone().into_os_string()],
                    Wait::Runit(scan_m),
                )
            }
        }
        Manager::Supervisord => {
            let conf = supervisord_conf(tree, bins, m);
            write(&st.join("supervisord.conf"), &conf)?;
            if tree.stamp {
                mkfifo(&st.join("stamp"))?;
            }
            (
                vec![
                    os("supervisord"),
                    os("-c"),
                    m.join("supervisord.conf").into_os_string(),
                ],
                Wait::Line("entered RUNNING state".to_owned(), tree.n),
            )
        }
    };
    Ok(Spec {
        mount: m.clone(),
        copy: Some(st.clone()),
        chroot: false,
        wait,
        argv,
        env: Vec::new(),
    })
}

/// supervisord's configuration: no daemon, its log on stdout, a control socket, and one
/// program per service that counts as running at once (`startsecs=0`: it has no readiness).
fn supervisord_conf(tree: &Tree, bins: &Bins, m: &Path) -> String {
    let mut c = format!(
        "[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\n\
         pidfile={m}/supervisord.pid\nminfds=16384\nuser=root\n\n\
         [unix_http_server]\nfile={m}/supervisor.sock\n\n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://{m}/supervisor.sock\n",
        m = m.display()
    );
    let stop_secs = tree.stop_timeout.as_secs().max(1);
    for i in 0..tree.n {
        let mut command = format!("{} --none", bins.ready.display());
        if i < tree.ignore_term {
            command.push_str(" --ignore-term");
        }
        if tree.stamp && i == 0 {
            let _ = write!(command, " --stamp {}/stamp", m.display());
        }
        let _ = write!(
            c,
            "\n[program:{}]\ncommand={command}\nstartsecs=0\nautorestart=true\n\
             stopwaitsecs={stop_secs}\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
            svc_name(i)
        );
    }
    c
}

/// The control socket or directory of service `i` for a manager's status command, as a path
/// inside the run.
pub fn status_target(manager: Manager, m: &Path, i: usize) -> PathBuf {
    match manager {
        Manager::S6 | Manager::Runit => m.join("scan").join(svc_name(i)),
        Manager::Dynamod => m.join("run/control.sock"),
        Manager::Supervisord => m.join("supervisor.sock"),
        Manager::Floor => PathBuf::new(),
    }
}

/// The device nodes a container engine would put in `/dev` (dynamod-init leaves a container's
/// `/dev` to the engine), for a chroot on the tmpfs.
pub fn make_dev(root: &Path) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let dev = root.join("dev");
    fs::create_dir_all(&dev)?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = dev.join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .with_context(|| format!("mknod {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layered_services_require_the_whole_previous_layer() {
        let mut t = Tree::flat(30);
        t.layer_width = Some(10);
        assert!(requires(&t, 9).is_empty());
        assert_eq!(requires(&t, 10), (0..10).collect::<Vec<_>>());
        assert_eq!(requires(&t, 29), (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn flat_services_require_nothing() {
        assert!(requires(&Tree::flat(100), 57).is_empty());
    }

    #[test]
    fn service_names_sort_in_start_order() {
        assert_eq!(svc_name(7), "svc0007");
        assert!(svc_name(99) < svc_name(100));
    }
}
