//! A Docker engine of our own: `dockerd` with its own data root, exec root, pid file, socket and
//! configuration under the run's work directory, never a system daemon's.
//!
//! It runs in new network and mount namespaces (`unshare --net --mount`): its default bridge
//! (which BuildKit's `RUN` steps need), the bridges Compose creates, and every mount the engine
//! makes live there and vanish with it, so the host's network and mount table never change.
//! `--iptables=false` keeps it from touching packet filtering even there (nothing needs to reach
//! the outside). `setpriv --pdeathsig TERM` stops it if xtask dies without
//! cleaning up; otherwise [`Engine::stop`] ends it by its PID (and then any containerd or shim
//! it left behind, found by the work directory in their command line).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::caps;
use crate::cmd;

/// The Docker client of the `docker.io` package: it has BuildKit built in (with
/// `DOCKER_BUILDKIT=1`) and finds the Compose plugin in `$DOCKER_CONFIG/cli-plugins`.
pub const DOCKER_CLIENT: &str = "/usr/bin/docker";

/// How long the engine may take to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop on SIGTERM (it stops running containers first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `dockerd` of our own.
#[derive(Debug)]
pub struct Engine {
    /// The work directory: `data/`, `exec/`, `docker.sock`, `daemon.json`, `dockerd.log`, …
    dir: PathBuf,
    /// The daemon (setpriv and unshare exec into it: same PID).
    child: Option<Child>,
    /// Whether the capability wrapper is the default runtime.
    wrapped: bool,
}

impl Engine {
    /// Starts an engine whose state lives under `dir` (created if missing).
    pub fn start(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir.join("client/cli-plugins"))
            .with_context(|| format!("create {}", dir.display()))?;
        let mut engine = Self {
            dir: dir.to_path_buf(),
            child: None,
            wrapped: false,
        };
        engine.spawn()?;
        Ok(engine)
    }

    /// The socket the engine listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `$DOCKER_CONFIG` for the client (holds the Compose plugin).
    pub fn client_config(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// Whether the capability wrapper had to be installed.
    pub fn wrapped(&self) -> bool {
        self.wrapped
    }

    /// PID of the daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A `docker` command talking to this engine.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new(DOCKER_CLIENT);
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.client_config())
            .env("DOCKER_BUILDKIT", "1")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        cmd
    }

    /// Runs a `docker` command and returns its output (any exit status).
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.docker();
        cmd.args(args).stdin(Stdio::null());
        cmd.output()
            .with_context(|| format!("run `{}`", cmd::display(&cmd)))
    }

    /// Runs a `docker` command, fails unless it exits 0, returns its stdout.
    pub fn out(&self, args: &[&str]) -> Result<String> {
        cmd::output(self.docker().args(args))
    }

    fn spawn(&mut self) -> Result<()> {
        let dir = &self.dir;
        let config = dir.join("daemon.json");
        if !config.exists() {
            fs::write(&config, caps::daemon_json(None))
                .with_context(|| format!("write {}", config.display()))?;
        }
        let log = fs::File::create(dir.join("dockerd.log")).context("create dockerd.log")?;
        let err = log.try_clone().context("dup dockerd.log")?;
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "TERM", "--"])
            .args([
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
            ])
            .arg("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--config-file")
            .arg(&config)
            .args(["--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        eprintln!("docker-test: {}", cmd::display(&cmd));
        let child = cmd.spawn().context("start dockerd")?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls `docker version` until the daemon answers.
    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("poll dockerd")?
            {
                self.child = None;
                bail!(
                    "dockerd exited at start ({status}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            let answered = self
                .run(&["version", "--format", "{{.Server.Version}}"])
                .is_ok_and(|o| o.status.success());
            if answered {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "dockerd did not answer within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Makes `--privileged` work: probes it with `image`, and when runc cannot apply the
    /// capabilities this machine lacks, restarts the engine with the wrapper of [`caps`] as its
    /// default runtime and probes again.
    pub fn ensure_privileged(&mut self, image: &str) -> Result<()> {
        let probe = |engine: &Self| {
            engine.run(&[
                "run",
                "--rm",
                "--privileged",
                "--network",
                "none",
                image,
                "true",
            ])
        };
        let first = probe(self)?;
        if first.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&first.stderr).trim().to_owned();
        if !why.contains("apply caps") {
            bail!("`docker run --privileged` fails: {why}");
        }
        let missing = caps::missing_here()?;
        if missing.is_empty() {
            bail!("`docker run --privileged` fails ({why}) but no capability is missing here");
        }
        let runc = cmd::which("runc").context("runc is not installed")?;
        let wrapper = self.dir.join("runtime-wrapper.sh");
        fs::write(&wrapper, caps::wrapper_script(&runc, &missing))
            .with_context(|| format!("write {}", wrapper.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))?;
        }
        eprintln!(
            "docker-test: --privileged fails here ({why}); restarting dockerd with a runtime \
             wrapper that drops {} (absent from this machine's bounding set)",
            missing.join(", ")
        );
        self.stop()?;
        fs::write(
            self.dir.join("daemon.json"),
            caps::daemon_json(Some(&wrapper)),
        )?;
        self.spawn()?;
        self.wrapped = true;
        let second = probe(self)?;
        if !second.status.success() {
            bail!(
                "`docker run --privileged` still fails with the wrapper: {}",
                String::from_utf8_lossy(&second.stderr).trim()
            );
        }
        Ok(())
    }

    /// Stops the daemon by its PID (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]), then ends
    /// any containerd or shim of this engine that outlived it.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("dockerd's PID")?);
        let _ = kill(pid, Signal::SIGTERM);
        let started = Instant::now();
        loop {
            if child.try_wait().context("wait for dockerd")?.is_some() {
                break;
            }
            if started.elapsed() > STOP_TIMEOUT {
                eprintln!("docker-test: dockerd ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.end_leftovers();
        Ok(())
    }

    /// Kills processes whose command line names this engine's work directory (containerd and
    /// its shims, which are started with paths under it), by PID.
    fn end_leftovers(&self) {
        let marker = self.dir.to_string_lossy().into_owned();
        for pid in processes_mentioning(&marker) {
            if pid == std::process::id() {
                continue;
            }
            eprintln!("docker-test: ending leftover engine process {pid}");
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("docker-test: stopping dockerd: {e:#}");
        }
    }
}

/// PIDs of processes whose command line contains `marker`.
fn processes_mentioning(marker: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                raw.split(|b| *b == 0)
                    .any(|arg| String::from_utf8_lossy(arg).contains(marker))
            })
        })
        .collect()
}
