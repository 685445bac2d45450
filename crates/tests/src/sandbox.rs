//! Harness for the sandbox tests: a [`Sandbox`] is one `cargo xtask sandbox` run with a state
//! directory (pid file and rootfs) of its own, so tests run in parallel.
//!
//! It uses the built xtask binary (`$DYNAMOD_XTASK`, set by `cargo xtask test`; otherwise built
//! once with `cargo build -p xtask`) with `--no-build` and the static binaries of
//! `$DYNAMOD_BIN_DIR` (otherwise built once with `xtask build`). The console output (stdout and
//! stderr of xtask) is captured, with carriage returns and terminal escapes removed.
//!
//! Nothing here can hang a test: every wait has a timeout and fails with the log so far, and
//! dropping a [`Sandbox`] (also while unwinding from a failed assertion, when it prints the
//! console log) kills its PID 1, which takes everything in its PID namespace with it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{TempDir, workspace_root};

/// Generous bound for a boot (parallel tests share two cores).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Generous bound for one operation (an exec, a restart, a stop).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The xtask binary the tests drive.
pub fn xtask() -> &'static Path {
    static XTASK: OnceLock<PathBuf> = OnceLock::new();
    XTASK.get_or_init(|| {
        if let Some(path) = std::env::var_os("DYNAMOD_XTASK") {
            return PathBuf::from(path);
        }
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "xtask"])
            .status()
            .expect("run cargo build -p xtask");
        assert!(status.success(), "cargo build -p xtask failed");
        target_dir().join("debug/xtask")
    })
}

/// The directory of static (musl) product binaries the sandbox's rootfs is built from.
pub fn static_bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DYNAMOD_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let out = Command::new(xtask())
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .expect("run xtask build");
        assert!(out.status.success(), "xtask build failed");
        let text = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            text.lines()
                .last()
                .expect("xtask build printed no directory")
                .trim(),
        )
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Panics with a clear message unless this process can create a sandbox: root, or unprivileged
/// user namespaces.
pub fn require_privileges() {
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let allowed = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    assert!(
        max > 0 && allowed,
        "the sandbox tests need root or unprivileged user namespaces (max_user_namespaces = {max})"
    );
}

/// A step run on the state directory before xtask starts.
type Prepare = Box<dyn FnOnce(&Path)>;

/// How a sandbox should be started.
#[derive(Default)]
pub struct SandboxBuilder {
    files: Vec<(String, String, bool)>,
    volumes: Vec<(PathBuf, String, bool)>,
    init: Option<String>,
    prepare: Vec<Prepare>,
}

impl SandboxBuilder {
    /// Adds a service file, bound read-only at `/etc/dynamod/services/<name>.toml` (the seed's
    /// "Adding your own services").
    pub fn service(self, name: &str, toml: &str) -> Self {
        self.file(&format!("/etc/dynamod/services/{name}.toml"), toml, true)
    }

    /// Adds a file with `contents`, bound at `container` (read-only when asked).
    pub fn file(mut self, container: &str, contents: &str, read_only: bool) -> Self {
        self.files
            .push((container.to_owned(), contents.to_owned(), read_only));
        self
    }

    /// Binds a host file or directory at `container`.
    pub fn volume(mut self, host: &Path, container: &str, read_only: bool) -> Self {
        self.volumes
            .push((host.to_path_buf(), container.to_owned(), read_only));
        self
    }

    /// Runs `/bin/sh -c script` as PID 1 instead of dynamod-init (to test the sandbox itself).
    pub fn stand_in_init(mut self, script: &str) -> Self {
        self.init = Some(script.to_owned());
        self
    }

    /// Runs `f` on the state directory before xtask starts.
    pub fn prepare(mut self, f: impl FnOnce(&Path) + 'static) -> Self {
        self.prepare.push(Box::new(f));
        self
    }

    /// Starts the sandbox and waits until its PID 1 is recorded.
    pub fn start(self) -> Sandbox {
        require_privileges();
        let dir = TempDir::new("sandbox");
        let mut cmd = Command::new(xtask());
        cmd.arg("sandbox")
            .arg("--no-build")
            .arg("--bin-dir")
            .arg(static_bin_dir())
            .arg("--state-dir")
            .arg(dir.path());
        let volumes_dir = dir.path().join("volumes");
        for (i, (container, contents, read_only)) in self.files.iter().enumerate() {
            let name = Path::new(container).file_name().expect("a file name");
            let host = volumes_dir.join(i.to_string()).join(name);
            std::fs::create_dir_all(host.parent().expect("a parent")).expect("create volume dir");
            std::fs::write(&host, contents).expect("write volume file");
            cmd.arg("--volume")
                .arg(volume_arg(&host, container, *read_only));
        }
        for (host, container, read_only) in &self.volumes {
            cmd.arg("--volume")
                .arg(volume_arg(host, container, *read_only));
        }
        if let Some(script) = &self.init {
            cmd.args(["--init", "/bin/sh", "--init-arg=-c"])
                .arg(format!("--init-arg={script}"));
        }
        for f in self.prepare {
            f(dir.path());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xtask sandbox");
        let log = Arc::new(Log::default());
        let readers = start_readers(&log, child.stdout.take(), child.stderr.take());
        let mut sandbox = Sandbox {
            dir,
            child,
            log,
            readers,
            pid1: 0,
            pidns: PathBuf::new(),
            _pinned: None,
        };
        sandbox.wait_for_pid1();
        sandbox
    }
}

fn volume_arg(host: &Path, container: &str, read_only: bool) -> String {
    let mode = if read_only { ":ro" } else { "" };
    format!("{}:{container}{mode}", host.display())
}

/// Console output collected from xtask.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    raw: Vec<u8>,
    open_streams: u32,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn start_readers(
    log: &Arc<Log>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
) -> Vec<thread::JoinHandle<()>> {
    let streams: Vec<Box<dyn Read + Send>> = [
        stdout.map(|s| Box::new(s) as Box<dyn Read + Send>),
        stderr.map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    log.lock().open_streams = u32::try_from(streams.len()).unwrap_or(0);
    streams
        .into_iter()
        .map(|mut stream| {
            let log = Arc::clone(log);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            log.lock().raw.extend_from_slice(&buf[..n]);
                            log.changed.notify_all();
                        }
                    }
                }
                log.lock().open_streams -= 1;
                log.changed.notify_all();
            })
        })
        .collect()
}

/// Removes carriage returns and terminal escape sequences (colours, cursor queries).
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A running sandbox.
pub struct Sandbox {
    dir: TempDir,
    child: Child,
    log: Arc<Log>,
    readers: Vec<thread::JoinHandle<()>>,
    pid1: i32,
    pidns: PathBuf,
    /// An open handle on the PID namespace: while it is held, no other namespace (a parallel
    /// test's sandbox) can get the same `pid:[inode]` name.
    _pinned: Option<std::fs::File>,
}

impl Sandbox {
    /// A builder for a sandbox with options.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// A sandbox with the default (container) services.
    pub fn start() -> Self {
        Self::builder().start()
    }

    fn wait_for_pid1(&mut self) {
        let start = Instant::now();
        loop {
            let pid = std::fs::read_to_string(self.dir.path().join("pid"));
            let ns = std::fs::read_to_string(self.dir.path().join("pidns"));
            if let (Ok(pid), Ok(ns)) = (pid, ns)
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                let pinned = std::fs::File::open(format!("/proc/{pid}/ns/pid")).ok();
                // Only a handle opened while it still is the recorded namespace pins it.
                let live = std::fs::read_link(format!("/proc/{pid}/ns/pid"));
                if live.is_ok_and(|live| live.as_os_str() == ns.trim()) {
                    self._pinned = pinned;
                }
                self.pid1 = pid;
                self.pidns = PathBuf::from(ns.trim());
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_readers(Duration::from_secs(10));
                panic!(
                    "xtask sandbox exited ({status}) before starting PID 1\n{}",
                    self.dump()
                );
            }
            assert!(
                start.elapsed() < BOOT_TIMEOUT,
                "timed out waiting for the sandbox's PID 1\n{}",
                self.dump()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The state directory (pid file, rootfs).
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Host PID of the sandbox's PID 1.
    pub fn pid1(&self) -> i32 {
        self.pid1
    }

    /// The console log so far, cleaned.
    pub fn log(&self) -> String {
        clean(&self.log.lock().raw)
    }

    fn dump(&self) -> String {
        format!("--- sandbox log ---\n{}\n--- end of log ---", self.log())
    }

    /// Waits until the log contains `needle`; fails at once if the sandbox's output ended.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        self.wait_log_until(&format!("{needle:?}"), timeout, |log| log.contains(needle));
    }

    /// Waits until `needle` appears in the log after the first `anchor`.
    pub fn wait_log_after(&self, anchor: &str, needle: &str, timeout: Duration) {
        let what = format!("{needle:?} after {anchor:?}");
        self.wait_log_until(&what, timeout, |log| {
            log.find(anchor)
                .is_some_and(|at| log[at + anchor.len()..].contains(needle))
        });
    }

    /// Waits until `done(log)` holds; fails at once if the sandbox's output ended.
    pub fn wait_log_until(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.log.lock();
        loop {
            let log = clean(&state.raw);
            if done(&log) {
                return;
            }
            assert!(
                state.open_streams > 0,
                "the sandbox's output ended before {what} appeared\n--- sandbox log ---\n{log}"
            );
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out after {timeout:?} waiting for {what}\n--- sandbox log ---\n{log}"
            );
            state = self
                .log
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Runs a command inside the sandbox (`xtask sandbox exec`) and returns its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(xtask());
        cmd.arg("sandbox")
            .arg("--state-dir")
            .arg(self.dir.path())
            .arg("exec")
            .args(args);
        run_bounded(&mut cmd, TIMEOUT)
            .unwrap_or_else(|| panic!("`sandbox exec {args:?}` did not finish\n{}", self.dump()))
    }

    /// Runs a command inside the sandbox, fails unless it exits 0, and returns its stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "`{}` failed ({}): stdout: {} stderr: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dump()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sh -c script` inside the sandbox; fails unless it exits 0.
    pub fn sh(&self, script: &str) -> String {
        self.exec_ok(&["/bin/sh", "-c", script])
    }

    /// `dynamodctl ARGS…` inside the sandbox; fails unless it exits 0.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["dynamodctl"];
        all.extend_from_slice(args);
        self.exec_ok(&all)
    }

    /// The processes inside, from busybox `ps`: (PID, state letters, command name).
    pub fn ps(&self) -> Vec<(i32, String, String)> {
        self.exec_ok(&["ps", "-o", "pid,stat,comm"])
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split_whitespace();
                let pid = cols.next()?.parse().ok()?;
                let stat = cols.next()?.to_owned();
                Some((pid, stat, cols.next().unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// Sends SIGTERM to xtask (which forwards it to PID 1) and waits for xtask to exit.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        self.sigterm_xtask();
        self.wait_exit(TIMEOUT)
    }

    /// Sends SIGTERM to xtask without waiting (a second one makes it SIGKILL PID 1).
    pub fn sigterm_xtask(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits for xtask to exit on its own (its PID 1 ended) and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for xtask") {
                self.join_readers(Duration::from_secs(10));
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "the sandbox did not exit within {timeout:?}\n{}",
                self.dump()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_readers(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = self.log.lock();
        while state.open_streams > 0 && Instant::now() < deadline {
            state = self
                .log
                .changed
                .wait_timeout(state, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        drop(state);
        if self.log.lock().open_streams == 0 {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
    }

    /// Host PIDs and names of processes still in the sandbox's PID namespace.
    pub fn processes_left(&self) -> Vec<(i32, String)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if std::fs::read_link(entry.path().join("ns/pid")).is_ok_and(|ns| ns == self.pidns) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push((pid, comm.trim().to_owned()));
            }
        }
        found
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if thread::panicking() {
            // The failed test's context: everything the console showed.
            eprintln!("{}", self.dump());
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGKILL to PID 1 ends its whole namespace; xtask then cleans up and exits. Check the
        // namespace first so a reused PID is never hit.
        let ns = std::fs::read_link(format!("/proc/{}/ns/pid", self.pid1));
        if self.pid1 > 0 && ns.is_ok_and(|ns| ns == self.pidns) {
            let pid = nix::unistd::Pid::from_raw(self.pid1);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with piped output; `None` (after killing it) if it runs longer than `timeout`.
/// Output still held open by a process that outlives it is collected for at most 10 s more.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {cmd:?}: {err}"));
    let collect = |stream: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            if let Some(mut stream) = stream {
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            }
            let _ = tx.send(());
        });
        (rx, buf)
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let take = |(rx, buf): (mpsc::Receiver<()>, Arc<Mutex<Vec<u8>>>)| {
        let _ = rx.recv_timeout(Duration::from_secs(10));
        buf.lock().unwrap_or_else(|p| p.into_inner()).clone()
    };
    Some(Output {
        status,
        stdout: take(out),
        stderr: take(err),
    })
}

/// Asserts that `needles` occur in `haystack` in this order (each after the previous one).
pub fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match haystack[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!(
                "{needle:?} does not follow the earlier lines {needles:?}\n--- text ---\n{haystack}"
            ),
        }
    }
}

// ---- helpers shared by the sandbox-based test files ----

/// `dynamodctl list --json` as name → object.
pub fn list(sb: &Sandbox) -> BTreeMap<String, Value> {
    let text = sb.ctl(&["list", "--json"]);
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`dynamodctl list --json` is not JSON ({e}): {text}"));
    let items = match &json {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .values()
            .find_map(|v| {
                v.as_array()
                    .filter(|a| a.iter().all(|i| i.get("name").is_some()))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no service array in {text}")),
        _ => panic!("unexpected `list --json`: {text}"),
    };
    items
        .into_iter()
        .map(|item| {
            let name = find(&item, "name")
                .and_then(Value::as_str)
                .expect("name")
                .to_owned();
            (name, item)
        })
        .collect()
}

/// The first value under `key`, depth first.
pub fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

pub fn state_of(list: &BTreeMap<String, Value>, name: &str) -> String {
    let item = list
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not listed: {list:?}"));
    find(item, "state")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub fn pid_of(list: &BTreeMap<String, Value>, name: &str) -> Option<i64> {
    list.get(name)
        .and_then(|item| find(item, "pid"))
        .and_then(Value::as_i64)
}

/// Live (non-zombie) processes inside whose command name is `comm`.
pub fn live(sb: &Sandbox, comm: &str) -> Vec<i32> {
    sb.ps()
        .into_iter()
        .filter(|(_, stat, name)| name == comm && !stat.starts_with('Z'))
        .map(|(pid, _, _)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_carriage_returns_and_escapes() {
        let raw = b"\x1b[32m INFO\x1b[0m loaded 8\r\nlogin: \x1b[6nok\x1bc";
        assert_eq!(clean(raw), " INFO loaded 8\nlogin: ok");
    }

    #[test]
    fn in_order_accepts_ordered_needles() {
        assert_in_order("a b c a", &["b", "c", "a"]);
    }

    #[test]
    #[should_panic(expected = "does not follow")]
    fn in_order_refuses_reversed_needles() {
        assert_in_order("a b c", &["c", "a"]);
    }
}
