//! Item 4: restart latency. SIGKILL to a service, then the time until its new process has
//! signalled readiness (the service program stamps CLOCK_MONOTONIC into a FIFO right after
//! signalling), for a service that had run for more than a second and for one killed again at
//! once (where the managers' throttles show). dynamod's service has `restart.delay = "0s"`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::ns::{Running, now_ns};
use super::procs;
use super::stats::{median, ms, opt_ms, percentile};
use super::trees::{Manager, Tree, svc_name};
use super::{Ctx, Section, Target, with_run};

/// Reads "PID NS" lines from the stamp FIFO.
struct Stamps {
    fifo: File,
    // Held open so the FIFO always has a writer and poll() never reports a hang-up.
    _writer: File,
    buf: String,
}

impl Stamps {
    fn open(path: &std::path::Path) -> Result<Self> {
        let fifo = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let writer = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("open {} for writing", path.display()))?;
        Ok(Stamps {
            fifo,
            _writer: writer,
            buf: String::new(),
        })
    }

    /// The next stamp: the service's PID inside the namespace and its CLOCK_MONOTONIC stamp.
    fn next(&mut self, timeout: Duration) -> Result<(i32, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find('\n') {
                let line: String = self.buf.drain(..=pos).collect();
                let mut w = line.split_whitespace();
                let pid = w.next().and_then(|p| p.parse().ok());
                let ns = w.next().and_then(|p| p.parse().ok());
                if let (Some(pid), Some(ns)) = (pid, ns) {
                    return Ok((pid, ns));
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the service did not come back within {timeout:?}");
            }
            let ms = u16::try_from(left.as_millis().min(10_000)).unwrap_or(10_000);
            let mut fds = [PollFd::new(self.fifo.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ms))?;
            let mut chunk = [0u8; 256];
            match self.fifo.read(&mut chunk) {
                Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("read the stamp FIFO"),
            }
        }
    }
}

/// The host PID of the stamped service's current process.
fn find_service(run: &Running, ctx: &Ctx) -> Option<i32> {
    let tail = format!("/{}", svc_name(0));
    procs::in_namespace(&run.ns).into_iter().find(|&p| {
        procs::is_service(p, &ctx.bins.ready)
            && (procs::cmdline(p).contains("--stamp") || procs::cwd(p).ends_with(&tail))
    })
}

/// Kills the host process `pid` (a member of the run's namespace) and waits for the next stamp.
fn kill_and_wait(stamps: &mut Stamps, pid: i32) -> Result<(f64, i32)> {
    let t0 = now_ns();
    kill(Pid::from_raw(pid), Signal::SIGKILL).context("kill the service")?;
    let (inner, at) = stamps.next(Duration::from_secs(30))?;
    Ok((at.saturating_sub(t0) as f64, inner))
}

/// Runs the comparison.
pub fn run(ctx: &Ctx) -> Result<Section> {
    let rounds = if ctx.quick { 2 } else { 10 };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "10 services run; the first one is killed with SIGKILL {rounds} times after running for \
         1.2 s (\"long-running\"), and each time its replacement is killed again as soon as it \
         is ready (\"at once\"). Time from `kill()` to the new process's readiness stamp.\n"
    );
    body.push_str(
        "| manager | long-running: median | p99 | killed at once: median | p99 |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut targets = Vec::new();
    for m in [
        Manager::Dynamod,
        Manager::S6,
        Manager::Runit,
        Manager::Supervisord,
    ] {
        eprintln!("xtask: restart {}", m.label());
        let mut tree = Tree::flat(10);
        tree.stamp = true;
        let (long, quick) = with_run(ctx, m, &tree, |run, dirs| {
            run.wait_ready(Duration::from_secs(120))?;
            let fifo = match m {
                Manager::S6 | Manager::Runit => {
                    dirs.mount.join("scan").join(svc_name(0)).join("stamp")
                }
                _ => dirs.mount.join("stamp"),
            };
            let mut stamps = Stamps::open(&run.host_path(&fifo))?;
            let mut long = Vec::new();
            let mut quick = Vec::new();
            // runit reports "run" as soon as it has forked, possibly before the child has
            // executed the service program: look again for a while.
            let mut current = None;
            for _ in 0..500 {
                current = find_service(run, ctx);
                if current.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut current = current.context("find the service's process")?;
            for _ in 0..rounds {
                std::thread::sleep(Duration::from_millis(1200));
                let (t, inner) = kill_and_wait(&mut stamps, current)?;
                long.push(t);
                let host = procs::host_pid(&run.ns, inner).context("find the restarted process")?;
                let (t, inner) = kill_and_wait(&mut stamps, host)?;
                quick.push(t);
                current = procs::host_pid(&run.ns, inner).context("find the restarted process")?;
            }
            Ok((long, quick))
        })?;
        let lm = median(&long);
        let _ = writeln!(
            body,
            "| {} | {} | {} | {} | {} |",
            m.label(),
            opt_ms(lm),
            opt_ms(percentile(&long, 99.0)),
            opt_ms(median(&quick)),
            opt_ms(percentile(&quick, 99.0)),
        );
        if m == Manager::Dynamod {
            targets.push(Target {
                goal: "restart after SIGKILL within 1.5 ms of the kill (delay 0)".to_owned(),
                measured: lm.map_or("–".into(), ms),
                met: lm.map(|v| v <= 1.5e6),
            });
        }
    }
    Ok(Section {
        title: "4. Restart latency".to_owned(),
        body,
        targets,
    })
}
