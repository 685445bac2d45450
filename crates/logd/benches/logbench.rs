//! Log throughput and memory, side by side with runit's `svlogd` and s6's `s6-log`.
//!
//! ```text
//! cargo bench -p dynamod-logd --bench logbench [-- --lines N --runs R --services S]
//! ```
//!
//! Environment: `DYNAMOD_BIN_DIR` is the directory holding release builds of `dynamod-svmgr` and
//! `dynamod-logd` (default: `target/release` of this workspace, built by `cargo build
//! --release`). `svlogd` and `s6-log` come from Debian's `runit` and `s6` packages; a peer that
//! is not installed is reported as missing, not skipped silently.
//!
//! What is measured, in one run so the numbers are comparable on a noisy machine:
//!
//! 1. **Throughput**: one writer prints N lines of 100 bytes as fast as it can (`yes | head -n
//!    N`). For dynamod the writer is a service of a real `dynamod-svmgr` with `dynamod-logd` as a
//!    service, and the time runs from the writer's start until the N-th line is in the log
//!    file. For the peers the writer is piped into `svlogd -tt DIR` and `s6-log T n100
//!    s100000000 DIR` (both timestamping each line, as dynamod does, with rotation limits high
//!    enough to keep every line), and the time runs until the logger exits after storing
//!    everything. The median of R runs is reported, and ratios dynamod/peer (below 1
//!    means dynamod is faster).
//! 2. **Memory**: logd's resident set (`Pss` from `/proc/PID/smaps_rollup`) idle, and after 100
//!    services printed 1000 lines each.
//!
//! N defaults to 100 000 so the whole output fits in svmgr's 16 MiB buffer even if logd falls
//! behind: a benchmark that drops lines would be measuring something else.

// A benchmark driver starts processes directly, like the integration tests.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 99 characters: with the newline, 100 bytes a line.
const LINE: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzA";
const LIMIT: Duration = Duration::from_secs(300);

struct Args {
    lines: u64,
    runs: usize,
    services: usize,
}

fn args() -> Args {
    let mut a = Args {
        lines: 100_000,
        runs: 3,
        services: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--lines" => a.lines = num().unwrap_or(a.lines),
            "--runs" => a.runs = num().map_or(a.runs, |n| n as usize),
            "--services" => a.services = num().map_or(a.services, |n| n as usize),
            // `cargo bench` passes `--bench`; other harness flags are ignored too.
            _ => {}
        }
    }
    a
}

fn bin_dir() -> PathBuf {
    std::env::var_os("DYNAMOD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/release")
                .to_path_buf()
        })
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dynamod-logbench-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Counts newlines appended to a file, reading only what is new.
struct LineCounter {
    path: PathBuf,
    offset: u64,
    lines: u64,
}

impl LineCounter {
    fn poll(&mut self) -> u64 {
        let mut buf = Vec::new();
        let read = fs::File::open(&self.path).and_then(|mut f| {
            f.seek(SeekFrom::Start(self.offset))?;
            f.read_to_end(&mut buf)
        });
        if read.is_ok() {
            self.offset += buf.len() as u64;
            self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.lines
    }
}

/// svmgr with logd and the given extra services, in `dir`.
struct Dynamod {
    child: Child,
}

impl Dynamod {
    fn start(dir: &Path, services: &[(String, String)]) -> Self {
        let bins = bin_dir();
        for sub in ["services", "supervisors", "run", "logs"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let logd = format!(
            "[service]\nname = \"dynamod-logd\"\nexec = [\"{}\", \"--socket\", \"{}\", \"--dir\", \
             \"{}\", \"--config-dir\", \"none\", \"--max-size\", \"1G\"]\n",
            bins.join("dynamod-logd").display(),
            dir.join("run/log.sock").display(),
            dir.join("logs").display()
        );
        fs::write(dir.join("services/dynamod-logd.toml"), logd).unwrap();
        for (name, text) in services {
            fs::write(dir.join(format!("services/{name}.toml")), text).unwrap();
        }
        let child = Command::new(bins.join("dynamod-svmgr"))
            .arg("--services")
            .arg(dir.join("services"))
            .arg("--supervisors")
            .arg(dir.join("supervisors"))
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            .args(["--cgroup-root", "none"])
            .env("DYNAMOD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dynamod-svmgr (set DYNAMOD_BIN_DIR to the release binaries)");
        Self { child }
    }
}

impl Drop for Dynamod {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SIGTERM through kill(1): no unsafe code and no extra dependency here.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One dynamod run: seconds from the writer's go to the N-th stored line.
fn run_dynamod(lines: u64) -> f64 {
    let scratch = Scratch::new("dynamod");
    let dir = &scratch.0;
    let go = dir.join("go");
    let writer = format!(
        "[service]\nname = \"writer\"\ntype = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \
         \"while [ ! -e {} ]; do sleep 0.01; done; yes {LINE} | head -n {lines}\"]\n\
         [restart]\npolicy = \"temporary\"\n[readiness]\ntimeout = \"1h\"\n",
        go.display()
    );
    let _svmgr = Dynamod::start(dir, &[("writer".into(), writer)]);
    wait_until("logd's socket", || dir.join("run/logd.sock").exists());
    let mut counter = LineCounter {
        path: dir.join("logs/writer.log"),
        offset: 0,
        lines: 0,
    };
    let start = Instant::now();
    fs::write(&go, b"").unwrap();
    wait_until("every line stored", || counter.poll() >= lines);
    start.elapsed().as_secs_f64()
}

/// One peer run: `yes | head -n N | LOGGER ARGS DIR`, seconds until the logger exits.
fn run_peer(logger: &Path, args: &[&str], lines: u64) -> f64 {
    let scratch = Scratch::new("peer");
    let logdir = scratch.0.join("log");
    fs::create_dir_all(&logdir).unwrap();
    // svlogd reads its limits from DIR/config: one big file, like dynamod's --max-size 1G.
    fs::write(logdir.join("config"), "s1000000000\nn100\n").unwrap();
    let script = format!(
        "yes {LINE} | head -n {lines} | \"$0\" {} \"$1\"",
        args.join(" ")
    );
    let start = Instant::now();
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(logger)
        .arg(&logdir)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "{} failed: {status}", logger.display());
    let stored: u64 = fs::read_dir(&logdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && e.file_name() != "config")
        .map(|e| {
            fs::read(e.path())
                .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
                .unwrap_or(0)
        })
        .sum();
    assert!(
        stored >= lines,
        "{} stored {stored} of {lines} lines",
        logger.display()
    );
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `Pss` of a process in KiB.
fn pss_kib(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The PID of the logd whose command line mentions `dir`.
fn logd_pid(dir: &Path) -> Option<i32> {
    let needle = dir.join("logs").display().to_string();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.contains("dynamod-logd") && cmd.contains(&needle)).then_some(pid)
    })
}

/// logd's memory idle and after `services` services printed 1000 lines each.
fn memory(services: usize) -> (u64, u64) {
    let scratch = Scratch::new("memory");
    let dir = &scratch.0;
    let go = dir.join("go");
    let list: Vec<(String, String)> = (0..services)
        .map(|i| {
            let name = format!("svc{i:03}");
            let text = format!(
                "[service]\nname = \"{name}\"\nexec = [\"/bin/sh\", \"-c\", \
                 \"while [ ! -e {} ]; do sleep 0.05; done; yes {LINE} | head -n 1000; \
                 exec sleep 3600\"]\n",
                go.display()
            );
            (name, text)
        })
        .collect();
    let _svmgr = Dynamod::start(dir, &list);
    wait_until("logd", || logd_pid(dir).is_some());
    let pid = logd_pid(dir).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let idle = pss_kib(pid).unwrap_or(0);
    fs::write(&go, b"").unwrap();
    let mut counters: Vec<LineCounter> = list
        .iter()
        .map(|(n, _)| LineCounter {
            path: dir.join(format!("logs/{n}.log")),
            offset: 0,
            lines: 0,
        })
        .collect();
    wait_until("every service's lines", || {
        counters.iter_mut().all(|c| c.poll() >= 1000)
    });
    (idle, pss_kib(pid).unwrap_or(0))
}

fn main() {
    let a = args();
    let bins = bin_dir();
    for b in ["dynamod-svmgr", "dynamod-logd"] {
        assert!(
            bins.join(b).is_file(),
            "{} missing: run `cargo build --release` or set DYNAMOD_BIN_DIR",
            bins.join(b).display()
        );
    }
    println!(
        "log throughput: {} lines of {} bytes, median of {} runs",
        a.lines,
        LINE.len() + 1,
        a.runs
    );
    let ours = median((0..a.runs).map(|_| run_dynamod(a.lines)).collect());
    println!(
        "  dynamod (svmgr + logd)  {ours:8.3} s  {:10.0} lines/s",
        a.lines as f64 / ours
    );
    // Both peers timestamp every line and keep everything in one file or few large ones.
    for (name, args) in [
        ("svlogd", vec!["-tt"]),
        ("s6-log", vec!["T", "n100", "s100000000"]),
    ] {
        match tool(name) {
            Some(path) => {
                let t = median(
                    (0..a.runs)
                        .map(|_| run_peer(&path, &args, a.lines))
                        .collect(),
                );
                println!(
                    "  {name:<22}  {t:8.3} s  {:10.0} lines/s   dynamod/{name} = {:.2}",
                    a.lines as f64 / t,
                    ours / t
                );
            }
            None => println!("  {name:<22}  missing (apt-get install runit s6)"),
        }
    }
    let (idle, busy) = memory(a.services);
    println!(
        "logd memory (Pss): {idle} KiB idle, {busy} KiB after {} services printed 1000 lines each",
        a.services
    );
}
