//! Everything a benchmark run needs before it measures: the peers and tools from Debian, the
//! benchmark's C programs (compiled here, so every manager runs the very same binaries), the
//! static dynamod binaries, and a description of the machine and of the versions measured.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, busybox, cmd};

/// Debian packages the benchmarks use: the peers, the compilers and the profiler.
pub const PACKAGES: [&str; 11] = [
    "tini",
    "dumb-init",
    "catatonit",
    "runit",
    "s6",
    "supervisor",
    "hyperfine",
    "linux-perf",
    "gcc",
    "musl-tools",
    "busybox-static",
];

/// The C programs of `c/`, compiled statically with musl (`nsrun` with gcc: it runs on the
/// host side only).
const SOURCES: [(&str, &str); 6] = [
    ("bench-ready", include_str!("c/ready.c")),
    ("bench-floor", include_str!("c/floor.c")),
    ("bench-zombies", include_str!("c/zombies.c")),
    ("bench-waitinit", include_str!("c/waitinit.c")),
    ("bench-svmgr-nocg", include_str!("c/svmgr-nocg.c")),
    ("bench-nsrun", include_str!("c/nsrun.c")),
];

/// Paths of every program a benchmark runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// The launcher (`c/nsrun.c`).
    pub nsrun: PathBuf,
    /// The service program (`c/ready.c`).
    pub ready: PathBuf,
    /// The floor (`c/floor.c`).
    pub floor: PathBuf,
    /// The reaping workload (`c/zombies.c`).
    pub zombies: PathBuf,
    /// The trivial blocking-wait init (`c/waitinit.c`).
    pub waitinit: PathBuf,
    /// svmgr without cgroups, for runs under dynamod-init (`c/svmgr-nocg.c`).
    pub svmgr_nocg: PathBuf,
    /// The static dynamod binaries.
    pub dynamod: PathBuf,
}

impl Bins {
    /// One of the static dynamod binaries.
    pub fn dm(&self, name: &str) -> PathBuf {
        self.dynamod.join(name)
    }
}

/// Installs the Debian packages that are missing (as root).
pub fn ensure_packages() -> Result<()> {
    busybox::ensure_packages(&PACKAGES, "the benchmarks")
}

/// Compiles the C programs into `dir`.
pub fn compile(dir: &Path) -> Result<Bins> {
    let src = dir.join("src");
    fs::create_dir_all(&src).with_context(|| format!("create {}", src.display()))?;
    for (name, code) in SOURCES {
        let c = src.join(format!("{name}.c"));
        fs::write(&c, code).with_context(|| format!("write {}", c.display()))?;
        let out = dir.join(name);
        let (cc, extra): (&str, &[&str]) = if name == "bench-nsrun" {
            ("gcc", &["-O2"])
        } else {
            ("musl-gcc", &["-Os", "-static"])
        };
        cmd::run(
            Command::new(cc)
                .args(extra)
                .args(["-Wall", "-o"])
                .arg(&out)
                .arg(&c),
        )?;
    }
    Ok(Bins {
        nsrun: dir.join("bench-nsrun"),
        ready: dir.join("bench-ready"),
        floor: dir.join("bench-floor"),
        zombies: dir.join("bench-zombies"),
        waitinit: dir.join("bench-waitinit"),
        svmgr_nocg: dir.join("bench-svmgr-nocg"),
        dynamod: PathBuf::new(),
    })
}

/// The static dynamod binaries, built now or taken from `dir`, copied into `into` so that a
/// rebuild during the run (the release directory is shared) cannot change what is measured.
pub fn dynamod_bins(dir: Option<&Path>, into: &Path) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => build::build_static()?,
    };
    build::check_bin_dir(&dir)?;
    fs::create_dir_all(into).with_context(|| format!("create {}", into.display()))?;
    for name in build::REQUIRED {
        fs::copy(dir.join(name), into.join(name))
            .with_context(|| format!("copy {}", dir.join(name).display()))?;
    }
    // Absolute: the log benchmark runs with another working directory.
    into.canonicalize()
        .with_context(|| format!("resolve {}", into.display()))
}

/// A program of a Debian package, by name; fails with the package to install.
pub fn tool(name: &str) -> Result<PathBuf> {
    match cmd::which(name) {
        Some(p) => Ok(p),
        None => bail!("{name} is not installed (apt-get install -y the package that has it)"),
    }
}

/// `PACKAGE VERSION` lines for the report.
pub fn versions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in [
        "tini",
        "dumb-init",
        "catatonit",
        "runit",
        "s6",
        "supervisor",
        "linux-perf",
        "musl-tools",
    ] {
        let v = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", p]))
            .unwrap_or_else(|_| "not installed".to_owned());
        out.push((p.to_owned(), v));
    }
    if let Ok(py) = cmd::output(Command::new("python3").arg("--version")) {
        out.push(("python3 (supervisord)".to_owned(), py.trim().to_owned()));
    }
    if let Ok(rustc) = cmd::output(Command::new("rustc").arg("--version")) {
        out.push(("rustc".to_owned(), rustc.trim().to_owned()));
    }
    let commit = cmd::output(
        Command::new("git")
            .args(["-C"])
            .arg(build::workspace_root())
            .args(["describe", "--always", "--dirty"]),
    )
    .unwrap_or_else(|_| "unknown".to_owned());
    out.push(("dynamod (git)".to_owned(), commit.trim().to_owned()));
    out
}

/// A one-paragraph description of the machine.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|o| {
            o.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|l| l.trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    format!(
        "{os}, Linux {}, {cores} × {cpu}, {:.1} GiB of memory",
        kernel.trim(),
        mem as f64 / 1024.0 / 1024.0
    )
}

/// Size in bytes and whether the ELF file is static.
pub fn binary_size(path: &Path) -> Option<(u64, bool)> {
    let len = fs::metadata(path).ok()?.len();
    Some((len, build::check_static(path).is_ok()))
}
