//! One manager run as PID 1 of fresh namespaces, through the `bench-nsrun` launcher (see
//! `c/nsrun.c`): its output, the moments it reports (PID 1 started, services ready, PID 1 gone)
//! and a clean end whatever happens.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::procs;

/// How the launcher decides that the services are ready.
#[derive(Debug, Clone)]
pub enum Wait {
    /// It does not.
    None,
    /// The COUNTth output line containing TEXT.
    Line(String, usize),
    /// Every service of this s6 scan directory is up and ready.
    S6(PathBuf),
    /// Every service of this runit scan directory is running.
    Runit(PathBuf),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Empty host directory: the tmpfs goes there, in the run's own mount namespace.
    pub mount: PathBuf,
    /// Tree copied onto the tmpfs before PID 1 starts.
    pub copy: Option<PathBuf>,
    /// PID 1 chroots into the tmpfs.
    pub chroot: bool,
    /// Readiness detection.
    pub wait: Wait,
    /// PID 1's program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

enum Event {
    Out(String),
    Report(String),
}

/// A running launcher and the PID 1 it started.
pub struct Running {
    child: Child,
    rx: Receiver<(Instant, Event)>,
    /// PID 1 of the new namespace, as the host sees it.
    pub pid1: i32,
    /// The namespace (`pid:[INODE]`).
    pub ns: String,
    /// CLOCK_MONOTONIC nanoseconds just before PID 1's execve.
    pub start_ns: u64,
    ready_ns: Option<u64>,
    exit: Option<(i32, u64)>,
    /// Output lines of the manager, oldest first.
    pub output: Vec<String>,
    pending: VecDeque<String>,
}

/// Reads CLOCK_MONOTONIC in nanoseconds (the clock the launcher and the C programs stamp with).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

impl Running {
    /// Starts the launcher and waits until PID 1 exists.
    pub fn start(nsrun: &Path, spec: &Spec) -> Result<Self> {
        let mut cmd = Command::new(nsrun);
        cmd.arg("--mount")
            .arg(&spec.mount)
            .args(["--nofile", "65536"]);
        if let Some(copy) = &spec.copy {
            cmd.arg("--copy").arg(copy);
        }
        if spec.chroot {
            cmd.arg("--chroot");
        }
        match &spec.wait {
            Wait::None => {}
            Wait::Line(text, count) => {
                cmd.args(["--wait-line", text, &count.to_string()]);
            }
            Wait::S6(dir) => {
                cmd.arg("--wait-s6").arg(dir);
            }
            Wait::Runit(dir) => {
                cmd.arg("--wait-runit").arg(dir);
            }
        }
        cmd.arg("--").args(&spec.argv);
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", nsrun.display()))?;
        let (tx, rx) = channel();
        let out = child.stdout.take().context("launcher stdout")?;
        let err = child.stderr.take().context("launcher stderr")?;
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), Event::Out(line))).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let ev = match line.strip_prefix("@nsrun ") {
                    Some(rest) => Event::Report(rest.to_owned()),
                    None => Event::Out(line),
                };
                if tx2.send((Instant::now(), ev)).is_err() {
                    break;
                }
            }
        });
        let mut run = Running {
            child,
            rx,
            pid1: 0,
            ns: String::new(),
            start_ns: 0,
            ready_ns: None,
            exit: None,
            output: Vec::new(),
            pending: VecDeque::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while run.pid1 == 0 || run.start_ns == 0 {
            if !run.next_event(deadline)? {
                bail!("the launcher never started PID 1:\n{}", run.tail());
            }
        }
        for _ in 0..100 {
            if let Some(ns) = procs::pid_ns(run.pid1) {
                run.ns = ns;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(run)
    }

    /// Handles one event; false when the deadline passed or the launcher is gone.
    fn next_event(&mut self, deadline: Instant) -> Result<bool> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let (_, ev) = match self.rx.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return Ok(false),
        };
        match ev {
            Event::Out(line) => {
                self.pending.push_back(line.clone());
                self.output.push(line);
            }
            Event::Report(r) => {
                let mut words = r.split_whitespace();
                let what = words.next().unwrap_or_default();
                let nums: Vec<i64> = words.filter_map(|w| w.parse().ok()).collect();
                let at = |i: usize| nums.get(i).copied().unwrap_or(0);
                match what {
                    "pid1" => self.pid1 = i32::try_from(at(0)).unwrap_or(0),
                    "start" => self.start_ns = u64::try_from(at(0)).unwrap_or(0),
                    "ready" => self.ready_ns = Some(u64::try_from(at(0)).unwrap_or(0)),
                    "exit" => {
                        self.exit = Some((
                            i32::try_from(at(0)).unwrap_or(0),
                            u64::try_from(at(1)).unwrap_or(0),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(true)
    }

    /// The last lines of output, for error messages.
    pub fn tail(&self) -> String {
        let from = self.output.len().saturating_sub(15);
        self.output[from..].join("\n")
    }

    /// Waits until the services are ready; returns the CLOCK_MONOTONIC stamp.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ns) = self.ready_ns {
                return Ok(ns);
            }
            if self.exit.is_some() {
                bail!(
                    "PID 1 exited before its services were ready:\n{}",
                    self.tail()
                );
            }
            if !self.next_event(deadline)? {
                bail!("services not ready within {timeout:?}:\n{}", self.tail());
            }
        }
    }

    /// Waits for an output line containing `text` (lines already seen count once) and
    /// returns it.
    pub fn wait_line(&mut self, text: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(line) = self.pending.pop_front() {
                if line.contains(text) {
                    return Ok(line);
                }
            }
            if self.exit.is_some() {
                bail!("PID 1 exited before printing {text:?}:\n{}", self.tail());
            }
            if !self.next_event(deadline)? {
                bail!("no {text:?} within {timeout:?}:\n{}", self.tail());
            }
        }
    }

    /// Waits until PID 1 is gone; returns its wait status and the CLOCK_MONOTONIC stamp.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(i32, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.exit {
                return Ok(e);
            }
            if !self.next_event(deadline)? {
                bail!("PID 1 still running after {timeout:?}");
            }
        }
    }

    /// Sends SIGTERM to PID 1 (through the launcher, which owns it).
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends SIGINT to PID 1 (through the launcher).
    pub fn interrupt(&self) -> Result<()> {
        self.signal(Signal::SIGINT)
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        kill(pid, sig).context("signal the launcher")
    }

    /// A path inside the run's mount namespace, reachable from the host.
    pub fn host_path(&self, inner: &Path) -> PathBuf {
        let rel = inner.strip_prefix("/").unwrap_or(inner);
        PathBuf::from(format!("/proc/{}/root", self.child.id())).join(rel)
    }

    /// Kills PID 1 (so the kernel kills the rest of its namespace), waits for the launcher,
    /// and checks that nothing of the namespace is left.
    pub fn finish(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        let launcher = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        if self.exit.is_none() {
            let _ = kill(launcher, Signal::SIGUSR1);
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.exit.is_none() && self.next_event(deadline)? {}
        }
        if self.exit.is_none() {
            // The launcher is stuck: killing it kills PID 1 too (PR_SET_PDEATHSIG).
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if !self.ns.is_empty() {
            for _ in 0..200 {
                if procs::in_namespace(&self.ns).is_empty() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            bail!("processes of {} are still alive after the run", self.ns);
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.shut_down();
        }
    }
}
