//! dynamod-logind and pam_dynamod.so against real clients: `pamtester` (Debian's PAM test
//! driver) opens sessions through the module, `loginctl`, `busctl`, `systemd-inhibit`,
//! `systemctl` and `dbus-monitor` look at them, and a small python3-dbus session controller
//! takes control and devices the way a Wayland compositor does.
//!
//! Every test gets its own `dbus-daemon` (a `<type>system</type>` bus on a socket in a temp dir,
//! with the policy files of `config/dbus-1/`) and its own logind, which runs in a private mount
//! namespace: the tmpfs of each runtime directory is mounted there only, under a temporary
//! runtime root. sysfs, the device directory and the sd-login state directory are temporary
//! too (no VTs, so no console is ever touched). pamtester reads its PAM service from a
//! temporary `/etc/pam.d`, bind-mounted in a private mount namespace; a `pam_exec` step after
//! pam_dynamod holds each session open until the test lets it go. Clients run in private mount
//! namespaces whose `/run` is the test's run directory (systemd's clients need
//! `/run/systemd/system`). Session cgroups are off, except in the cgroup test, which uses a
//! base of its own under the host's cgroup2 mount and removes it afterwards. Everything started
//! is stopped on drop, also when a test fails.
//!
//! The tests need root; they install what they use when missing (`dbus`, `systemd`,
//! `pamtester`, `libpam0g-dev`, `python3-dbus`, `util-linux`).

#![allow(
    clippy::disallowed_methods,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use dynamod_proto::{Request, Response, ServiceState};
use dynamod_tests::bus::{self, Outcome, Proc, unique};
use dynamod_tests::svmgr::Svmgr;
use dynamod_tests::{TempDir, wait_for, workspace_root};

/// Generous wait for conditions (the machine is shared and may be slow).
const T: Duration = Duration::from_secs(60);
/// A client that has not finished by then is killed and the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");
const PYTHON: &str = "/usr/bin/python3";
const NOBODY: u32 = 65534;

// ---- prerequisites ----------------------------------------------------------------------

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn python_has_dbus() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import dbus"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tools these tests run, installed with apt-get when missing (once per test process).
fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let wanted = [
            ("dbus", have("dbus-daemon") && have("dbus-monitor")),
            (
                "systemd",
                ["loginctl", "busctl", "systemd-inhibit", "systemctl"]
                    .iter()
                    .all(|c| have(c)),
            ),
            ("pamtester", have("pamtester")),
            (
                "libpam0g-dev",
                Path::new("/usr/include/security/pam_modules.h").exists(),
            ),
            ("python3-dbus", python_has_dbus()),
            ("util-linux", have("unshare") && have("setpriv")),
        ];
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(p, _)| *p)
            .collect();
        if missing.is_empty() {
            return;
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let updated = Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
            assert!(updated && install(), "apt-get install {missing:?} failed");
        }
    });
}

/// Whether the test can run; prints why not.
fn runnable(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root (namespaces, mounts, PAM, system bus policy)");
        return false;
    }
    ensure_tools();
    true
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Builds logind and the PAM module for the host, once per test process.
fn build_host() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "dynamod-logind",
                "-p",
                "pam-dynamod",
            ])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of logind and the PAM module failed"
        );
    });
}

/// dynamod-logind: from `DYNAMOD_BIN_DIR` (`cargo xtask test` builds it statically), else a
/// host build.
fn logind_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("DYNAMOD_BIN_DIR") {
        let p = PathBuf::from(dir).join("dynamod-logind");
        if p.is_file() {
            return p;
        }
    }
    build_host();
    let p = target_dir().join("debug/dynamod-logind");
    assert!(p.is_file(), "{} missing after the build", p.display());
    p
}

/// The PAM module (always a host build: it is loaded into glibc programs).
fn pam_module() -> PathBuf {
    build_host();
    let p = target_dir().join("debug/libpam_dynamod.so");
    assert!(p.is_file(), "{} missing after the build", p.display());
    p
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

// ---- the bus ------------------------------------------------------------------------------

/// A private system bus and the temporary tree of one test.
struct Bus {
    dir: TempDir,
    daemon: Option<Proc>,
}

impl Bus {
    fn start(tag: &str) -> Self {
        let dir = TempDir::new(&format!("logind-{tag}"));
        std::fs::create_dir_all(dir.path().join("pam.d")).unwrap();
        let daemon = bus::start_daemon(dir.path());
        Self {
            dir,
            daemon: Some(daemon),
        }
    }

    fn address(&self) -> String {
        format!(
            "unix:path={}",
            self.run_dir().join("dbus/system_bus_socket").display()
        )
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The shell command line that runs the client in a private mount namespace with this
    /// bus's `/run`, as root or (with `uid`) as that user without supplementary groups.
    fn wrapped(&self, uid: Option<u32>, pid_ns: bool, argv: &[&str]) -> Command {
        let mut script = String::from("mount --bind \"$0\" /run || exit 125\nexec");
        if let Some(uid) = uid {
            script.push_str(&format!(
                " setpriv --reuid={uid} --regid={uid} --clear-groups"
            ));
        }
        script.push_str(" \"$@\"");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private"]);
        if pid_ns {
            cmd.args(["--pid", "--fork", "--kill-child"]);
        }
        cmd.args(["sh", "-c", &script])
            .arg(self.run_dir())
            .args(argv)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .env("SYSTEMD_PAGER", "")
            .env("PAGER", "cat")
            .env("SYSTEMD_COLORS", "0")
            .env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// Runs a client to completion.
    fn client(&self, uid: Option<u32>, argv: &[&str]) -> Outcome {
        let n = unique();
        let out_path = self.path(&format!("client-{n}.out"));
        let err_path = self.path(&format!("client-{n}.err"));
        let mut child = self
            .wrapped(uid, false, argv)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .expect("run unshare");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait client") {
                break s;
            }
            if start.elapsed() > CLIENT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{argv:?} did not finish within {CLIENT_TIMEOUT:?}; stderr:\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let o = Outcome {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out_path);
        let _ = std::fs::remove_file(err_path);
        assert_ne!(o.code, 125, "cannot bind /run for {argv:?}: {}", o.stderr);
        o
    }

    /// A root client that must succeed.
    fn ok(&self, argv: &[&str]) -> Outcome {
        let o = self.client(None, argv);
        assert_eq!(o.code, 0, "{o}");
        o
    }

    /// A client that keeps running (in its own PID namespace, so it and everything it starts
    /// go away together).
    fn background(&self, name: &str, argv: &[&str]) -> Proc {
        let log = self.path(&format!("{name}-{}.log", unique()));
        let mut p = Proc::spawn(name, &mut self.wrapped(None, true, argv), log);
        p.kill_at_once = true;
        p
    }

    /// `dbus-monitor` watching signals that match `rule`.
    fn monitor(&self, rule: &str) -> Proc {
        let mut p = Proc::spawn(
            "dbus-monitor",
            Command::new("dbus-monitor")
                .arg("--address")
                .arg(self.address())
                .arg(rule),
            self.path(&format!("monitor-{}.log", unique())),
        );
        // dbus-monitor prints the NameLost of its own connection once it has become a monitor.
        p.wait_output("NameLost");
        p
    }

    /// A Manager method through busctl.
    fn manager(&self, uid: Option<u32>, method: &str, args: &[&str]) -> Outcome {
        let mut argv = vec![
            "busctl",
            "call",
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            method,
        ];
        argv.extend_from_slice(args);
        self.client(uid, &argv)
    }

    fn manager_property(&self, name: &str) -> String {
        self.ok(&[
            "busctl",
            "get-property",
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            name,
        ])
        .stdout
        .trim()
        .to_owned()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.daemon.take();
    }
}

// ---- logind -----------------------------------------------------------------------------

/// dynamod-logind on a test bus, in its own mount namespace, with temporary roots.
struct Logind {
    proc: Proc,
    runtime_root: PathBuf,
    state_dir: PathBuf,
    sysfs: PathBuf,
}

impl Logind {
    fn start(bus: &Bus, extra: &[&str]) -> Self {
        let runtime_root = bus.path("user");
        let state_dir = bus.run_dir().join("systemd");
        let sysfs = bus.path("sys");
        let dev = bus.path("dev");
        std::fs::create_dir_all(sysfs.join("power")).unwrap();
        std::fs::write(sysfs.join("power/state"), "freeze mem disk\n").unwrap();
        std::fs::create_dir_all(dev.join("char")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private"])
            .arg(logind_bin())
            .arg("--bus")
            .arg(bus.address())
            .arg("--runtime-dir-root")
            .arg(&runtime_root)
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--sysfs")
            .arg(&sysfs)
            .arg("--dev")
            .arg(&dev)
            .arg("--udev-data")
            .arg(bus.path("udev"))
            .args(["--user-stop-delay", "0"]);
        if !extra.contains(&"--cgroup-root") {
            cmd.args(["--cgroup-root", "none"]);
        }
        if !extra.contains(&"--control-socket") {
            cmd.arg("--control-socket").arg(bus.path("no-svmgr.sock"));
        }
        cmd.args(extra).env("DYNAMOD_LOG", "debug");
        let mut proc = Proc::spawn("dynamod-logind", &mut cmd, bus.path("logind.log"));
        proc.wait_output("serving org.freedesktop.login1");
        Self {
            proc,
            runtime_root,
            state_dir,
            sysfs,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn log(&self) -> String {
        self.proc.output()
    }

    /// A path as logind sees it (through its mount namespace).
    fn inside(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap())
    }

    /// Whether `path` is a tmpfs mount point in logind's mount namespace.
    fn tmpfs_at(&self, path: &Path) -> bool {
        let mi = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap();
        mi.lines().any(|l| {
            let (pre, post) = l.split_once(" - ").unwrap_or(("", ""));
            pre.split_whitespace().nth(4) == Some(path.to_str().unwrap())
                && post.starts_with("tmpfs ")
        })
    }
}

// ---- PAM sessions -----------------------------------------------------------------------

const HOLD_SH: &str = r#"dir="$1"
[ "$PAM_TYPE" = open_session ] || exit 0
env > "$dir/env.tmp" && mv "$dir/env.tmp" "$dir/env"
echo $$ > "$dir/hold.pid"
n=0
while [ ! -e "$dir/go" ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done
exit 0
"#;

/// A login opened with pamtester through pam_dynamod.so, held open until dropped (or
/// [`PamSession::close`]).
struct PamSession {
    proc: Proc,
    dir: PathBuf,
    /// `XDG_SESSION_ID`.
    id: String,
    /// The environment the session got from PAM.
    env: Vec<(String, String)>,
}

impl PamSession {
    /// Opens a session for `user` with pamtester; `env` goes to pamtester's environment
    /// (`XDG_SEAT`, …), `items` to its `-I` options (`rhost=…`, `tty=…`).
    fn open(bus: &Bus, user: &str, env: &[(&str, &str)], items: &[&str]) -> Self {
        let n = unique();
        let service = format!("dynamod-test-{}-{n}", std::process::id());
        let dir = bus.path(&format!("pam-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let module = dir.join("pam_dynamod.so");
        std::fs::copy(pam_module(), &module).unwrap();
        std::fs::write(dir.join("hold.sh"), HOLD_SH).unwrap();
        std::fs::write(
            bus.path("pam.d").join(&service),
            format!(
                "auth     required pam_permit.so\n\
                 account  required pam_permit.so\n\
                 session  required {} debug\n\
                 session  required pam_exec.so /bin/sh {} {}\n",
                module.display(),
                dir.join("hold.sh").display(),
                dir.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/pam.d || exit 125\nexec pamtester -v \"$@\"")
            .arg(bus.path("pam.d"));
        for item in items {
            cmd.args(["-I", item]);
        }
        cmd.args([service.as_str(), user, "open_session", "close_session"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env_remove("XDG_SESSION_ID")
            .env_remove("XDG_SEAT")
            .env_remove("XDG_VTNR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("pamtester", &mut cmd, dir.join("pamtester.log"));
        let env_file = dir.join("env");
        let text = wait_for("the PAM session to open", T, || {
            if let Some(c) = proc.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("pamtester exited ({status}) early:\n{}", proc.output());
            }
            std::fs::read_to_string(&env_file).ok()
        });
        let env: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let id = env
            .iter()
            .find(|(k, _)| k == "XDG_SESSION_ID")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no XDG_SESSION_ID in the PAM environment:\n{text}"));
        Self { proc, dir, id, env }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The session leader (pamtester).
    fn leader(&self) -> u32 {
        self.proc.pid()
    }

    /// The pam_exec step holding the session open (a child of the leader).
    fn holder(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("hold.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Lets pamtester go on to close the session; returns its exit status.
    fn close(&mut self) -> std::process::ExitStatus {
        let _ = std::fs::write(self.dir.join("go"), "");
        self.proc.wait_exit()
    }
}

impl Drop for PamSession {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("go"), "");
        if self.proc.child.is_some() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(Ok(Some(_))) = self.proc.child.as_mut().map(Child::try_wait) {
                    self.proc.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ---- a session controller ---------------------------------------------------------------

const CONTROLLER_PY: &str = r#"
import os, sys, stat
import dbus
bus = dbus.SystemBus()
sess = None
def out(*a):
    print(*a, flush=True)
out("ready " + bus.get_unique_name())
for line in sys.stdin:
    w = line.split()
    if not w:
        continue
    try:
        if w[0] == "control":
            obj = bus.get_object("org.freedesktop.login1", w[1])
            sess = dbus.Interface(obj, "org.freedesktop.login1.Session")
            sess.TakeControl(w[2] == "force")
            out("ok")
        elif w[0] == "take":
            fd, inactive = sess.TakeDevice(dbus.UInt32(int(w[1])), dbus.UInt32(int(w[2])))
            fd = fd.take()
            st = os.fstat(fd)
            kind = "char" if stat.S_ISCHR(st.st_mode) else "other"
            written = os.write(fd, b"probe")
            out("fd %s %d:%d inactive=%s wrote=%d" % (kind, os.major(st.st_rdev), os.minor(st.st_rdev), bool(inactive), written))
        elif w[0] == "release":
            sess.ReleaseDevice(dbus.UInt32(int(w[1])), dbus.UInt32(int(w[2])))
            out("ok")
        elif w[0] == "release-control":
            sess.ReleaseControl()
            out("ok")
        elif w[0] == "quit":
            out("bye")
            break
        else:
            out("error unknown-command")
    except dbus.exceptions.DBusException as e:
        out("error %s %s" % (e.get_dbus_name(), e.get_dbus_message()))
"#;

/// A python3-dbus client that takes control of a session and its devices, driven line by
/// line.
struct Controller {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its unique bus name.
    name: String,
}

impl Controller {
    fn start(bus: &Bus, uid: Option<u32>) -> Self {
        let script = bus.path(&format!("controller-{}.py", unique()));
        std::fs::write(&script, CONTROLLER_PY).unwrap();
        let mut child = bus
            .wrapped(uid, false, &[PYTHON, script.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the python controller");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut c = Self {
            child,
            stdin,
            lines,
            name: String::new(),
        };
        let first = c.next_line();
        c.name = first
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("controller did not start: {first}"))
            .to_owned();
        c
    }

    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(CLIENT_TIMEOUT)
            .unwrap_or_else(|_| panic!("the controller did not answer"))
    }

    fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.next_line()
    }

    fn quit(mut self) {
        let _ = self.ask("quit");
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- helpers ----------------------------------------------------------------------------

fn session_path(id: &str) -> String {
    format!("/org/freedesktop/login1/session/{id}")
}

fn show(bus: &Bus, what: &str, name: &str) -> Vec<(String, String)> {
    bus.ok(&["loginctl", what, name])
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> &'a str {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {props:?}"))
}

fn listed(bus: &Bus, id: &str) -> bool {
    bus.ok(&["loginctl", "list-sessions", "--no-legend"])
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(id))
}

// ---- sessions through PAM ---------------------------------------------------------------

#[test]
fn a_pam_session_shows_in_loginctl_and_closing_removes_it_with_its_runtime_directory() {
    if !runnable(
        "a_pam_session_shows_in_loginctl_and_closing_removes_it_with_its_runtime_directory",
    ) {
        return;
    }
    let bus = Bus::start("pam");
    let logind = Logind::start(&bus, &[]);
    let signals = bus.monitor("type='signal',interface='org.freedesktop.login1.Manager'");
    let mut session = PamSession::open(&bus, "nobody", &[("XDG_SEAT", "seat0")], &[]);
    let id = session.id.clone();

    // The PAM environment carries the session.
    let runtime = logind.runtime_root.join(NOBODY.to_string());
    assert_eq!(
        session.var("XDG_RUNTIME_DIR"),
        Some(runtime.to_str().unwrap())
    );
    assert_eq!(session.var("XDG_SEAT"), Some("seat0"));
    assert_eq!(session.var("XDG_SESSION_CLASS"), Some("user"));

    // loginctl sees it.
    let list = bus.ok(&["loginctl", "list-sessions"]);
    let row: Vec<&str> = list
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(&row[1..4], ["65534", "nobody", "seat0"], "{list}");

    let props = show(&bus, "show-session", &id);
    assert_eq!(prop(&props, "Name"), "nobody");
    assert_eq!(prop(&props, "User"), "65534");
    assert_eq!(prop(&props, "Seat"), "seat0");
    assert_eq!(prop(&props, "Active"), "yes");
    assert_eq!(prop(&props, "State"), "active");
    assert_eq!(prop(&props, "Remote"), "no");
    assert_eq!(prop(&props, "Class"), "user");
    assert_eq!(prop(&props, "Leader"), session.leader().to_string());
    assert!(prop(&props, "Service").starts_with("dynamod-test-"));

    let users = bus.ok(&["loginctl", "list-users", "--no-legend"]);
    assert!(
        users.stdout.lines().any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c.first() == Some(&"65534") && c.get(1) == Some(&"nobody")
        }),
        "{users}"
    );
    let user = show(&bus, "show-user", "nobody");
    assert_eq!(prop(&user, "RuntimePath"), runtime.to_str().unwrap());
    assert_eq!(prop(&user, "State"), "active");
    assert_eq!(prop(&user, "Sessions"), id);

    let seats = bus.ok(&["loginctl", "list-seats", "--no-legend"]);
    assert!(seats.stdout.lines().any(|l| l.trim() == "seat0"), "{seats}");
    let seat = show(&bus, "show-seat", "seat0");
    assert_eq!(prop(&seat, "ActiveSession"), id);

    let status = bus.ok(&["loginctl", "session-status", &id]);
    for want in [
        format!("{id} - nobody (65534)"),
        format!("Leader: {}", session.leader()),
        "Seat: seat0".to_owned(),
        "State: active".to_owned(),
        format!("Unit: session-{id}.scope"),
    ] {
        assert!(
            status.stdout.contains(&want),
            "missing {want:?} in\n{status}"
        );
    }

    // The leader's process is found (GetSessionByPID).
    let by_pid = bus.manager(
        None,
        "GetSessionByPID",
        &["u", &session.leader().to_string()],
    );
    assert_eq!(
        by_pid.stdout.trim(),
        format!("o \"{}\"", session_path(&id)),
        "{by_pid}"
    );

    // The runtime directory is a tmpfs owned by the user, mode 0700 (seen from logind's
    // mount namespace, where it is mounted).
    assert!(runtime.is_dir());
    assert!(
        logind.tmpfs_at(&runtime),
        "no tmpfs on {}",
        runtime.display()
    );
    let meta = std::fs::metadata(logind.inside(&runtime)).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (NOBODY, NOBODY, 0o700)
    );

    // The sd-login state files describe it.
    let file = std::fs::read_to_string(logind.state_dir.join("sessions").join(&id)).unwrap();
    for line in ["UID=65534", "SEAT=seat0", "ACTIVE=1", "STATE=active"] {
        assert!(file.lines().any(|l| l == line), "{line} missing:\n{file}");
    }

    // Closing the PAM session removes the session, the user and the runtime directory.
    assert!(
        session.close().success(),
        "pamtester failed:\n{}",
        session.proc.output()
    );
    wait_for("the session to disappear", T, || {
        (!listed(&bus, &id)).then_some(())
    });
    wait_for("the runtime directory to go", T, || {
        (!runtime.exists()).then_some(())
    });
    assert!(!logind.tmpfs_at(&runtime));
    let users = bus.ok(&["loginctl", "list-users", "--no-legend"]);
    assert!(!users.stdout.contains("nobody"), "{users}");
    assert!(!logind.state_dir.join("sessions").join(&id).exists());
    wait_for(
        "SessionNew, UserNew, SessionRemoved and UserRemoved",
        T,
        || {
            let out = signals.output();
            ["SessionNew", "UserNew", "SessionRemoved", "UserRemoved"]
                .iter()
                .all(|s| out.contains(&format!("member={s}")))
                .then_some(())
        },
    );
    assert!(
        logind
            .log()
            .contains(&format!("session removed session={id}"))
    );
}

#[test]
fn remote_sessions_never_land_on_a_seat() {
    if !runnable("remote_sessions_never_land_on_a_seat") {
        return;
    }
    let bus = Bus::start("remote");
    let _logind = Logind::start(&bus, &[]);
    // Even with XDG_SEAT=seat0 in the environment, a login from another host gets no seat.
    let session = PamSession::open(
        &bus,
        "nobody",
        &[("XDG_SEAT", "seat0")],
        &["rhost=client.example.org", "tty=pts/7"],
    );
    assert_eq!(session.var("XDG_SEAT"), None);
    let props = show(&bus, "show-session", &session.id);
    assert_eq!(prop(&props, "Remote"), "yes");
    assert_eq!(prop(&props, "RemoteHost"), "client.example.org");
    assert!(
        !props.iter().any(|(k, v)| k == "Seat" && !v.is_empty()),
        "{props:?}"
    );
    let seat = show(&bus, "show-seat", "seat0");
    assert!(
        !seat
            .iter()
            .any(|(k, v)| k == "Sessions" && v.contains(&session.id)),
        "{seat:?}"
    );
    // Asking logind directly for a remote session on seat0 is refused.
    let direct = bus.manager(
        None,
        "CreateSession",
        &[
            "uusssssussbssa(sv)",
            "65534",
            "1",
            "sshd",
            "tty",
            "user",
            "",
            "seat0",
            "0",
            "",
            "",
            "true",
            "",
            "evil.example.org",
            "0",
        ],
    );
    assert_ne!(direct.code, 0, "{direct}");
    assert!(
        direct.stderr.contains("Remote sessions cannot be attached"),
        "{direct}"
    );
}

// ---- authorization ----------------------------------------------------------------------

#[test]
fn a_user_cannot_terminate_another_users_session_but_may_end_its_own() {
    if !runnable("a_user_cannot_terminate_another_users_session_but_may_end_its_own") {
        return;
    }
    let bus = Bus::start("authz");
    let _logind = Logind::start(&bus, &[]);
    let roots = PamSession::open(&bus, "root", &[], &[]);
    let mine = PamSession::open(&bus, "nobody", &[], &[]);
    let nobody = Some(NOBODY);

    for argv in [
        vec!["loginctl", "terminate-session", roots.id.as_str()],
        vec!["loginctl", "kill-session", roots.id.as_str()],
        vec!["loginctl", "lock-session", roots.id.as_str()],
        vec!["loginctl", "terminate-user", "root"],
        vec!["loginctl", "kill-user", "root"],
    ] {
        let o = bus.client(nobody, &argv);
        assert_ne!(o.code, 0, "a non-root user acted on root's session: {o}");
        assert!(
            o.stderr.to_lowercase().contains("access denied"),
            "not refused for lack of privilege: {o}"
        );
    }
    // Creating sessions is root's (PAM's) business.
    let create = bus.manager(
        nobody,
        "CreateSession",
        &[
            "uusssssussbssa(sv)",
            "65534",
            "1",
            "x",
            "",
            "",
            "",
            "",
            "0",
            "",
            "",
            "false",
            "",
            "",
            "0",
        ],
    );
    assert_ne!(create.code, 0, "{create}");
    assert!(
        create.stderr.to_lowercase().contains("access denied"),
        "{create}"
    );
    // Reads stay open.
    let list = bus.client(nobody, &["loginctl", "list-sessions", "--no-legend"]);
    assert_eq!(list.code, 0, "{list}");
    assert!(list.stdout.contains(&roots.id), "{list}");
    assert!(alive(roots.leader()), "root's session leader was hit");

    // Its own session it may end: the leader and the process holding the session get SIGTERM.
    let holder = mine.holder();
    let o = bus.client(nobody, &["loginctl", "terminate-session", &mine.id]);
    assert_eq!(o.code, 0, "{o}");
    wait_for("the user's session to go", T, || {
        (!listed(&bus, &mine.id)).then_some(())
    });
    wait_for("its processes to end", T, || {
        (!alive(mine.leader()) && !alive(holder)).then_some(())
    });
    assert!(listed(&bus, &roots.id));
    assert!(alive(roots.leader()));
}

// ---- inhibitors and power actions -------------------------------------------------------

fn inhibitor_listed(bus: &Bus, who: &str) -> bool {
    bus.manager(None, "ListInhibitors", &[])
        .stdout
        .contains(&format!("\"{who}\""))
}

#[test]
fn inhibitors_block_or_delay_power_off_which_is_announced_and_goes_through_svmgr() {
    if !runnable("inhibitors_block_or_delay_power_off_which_is_announced_and_goes_through_svmgr") {
        return;
    }
    let svc = (
        "services/web.toml".to_owned(),
        format!("[service]\nname = \"web\"\nexec = [\"{FIXTURE}\", \"sleep\"]\n"),
    );
    let mut svmgr = Svmgr::start("logind-power", &[(svc.0.as_str(), svc.1.as_str())]);
    wait_for("web to run", T, || {
        match svmgr.request(&Request::Status {
            names: vec!["web".into()],
        }) {
            Response::Status(v)
                if v.first()
                    .is_some_and(|d| d.summary.state == ServiceState::Running) =>
            {
                Some(())
            }
            _ => None,
        }
    });
    let bus = Bus::start("power");
    let socket = svmgr.socket();
    let logind = Logind::start(
        &bus,
        &[
            "--control-socket",
            socket.to_str().unwrap(),
            // Long enough that only the release of the inhibitor can end the delay.
            "--inhibit-delay-max",
            "600s",
        ],
    );
    let signals = bus.monitor("type='signal',interface='org.freedesktop.login1.Manager'");
    let svmgr_alive = || {
        matches!(
            dynamod_tests::svmgr::request(&socket, &Request::SystemState),
            Ok(Response::SystemState(_))
        )
    };

    // Nobody without a session may power off at all.
    let o = bus.manager(Some(NOBODY), "PowerOff", &["b", "false"]);
    assert!(
        o.code != 0 && o.stderr.to_lowercase().contains("access denied"),
        "{o}"
    );
    let can = bus.manager(Some(NOBODY), "CanPowerOff", &[]);
    assert_eq!(can.stdout.trim(), "s \"no\"", "{can}");

    // A block inhibitor: listed, and it refuses a power-off that asks to honour it.
    let mut block = bus.background(
        "systemd-inhibit",
        &[
            "systemd-inhibit",
            "--what=shutdown",
            "--mode=block",
            "--who=burner",
            "--why=writing a disc",
            "sleep",
            "600",
        ],
    );
    wait_for("the block inhibitor to be listed", T, || {
        inhibitor_listed(&bus, "burner").then_some(())
    });
    let list = bus.manager(None, "ListInhibitors", &[]);
    assert!(
        list.stdout
            .contains("\"shutdown\" \"burner\" \"writing a disc\" \"block\" 0"),
        "{list}"
    );
    let listed_by_client = bus.ok(&["systemd-inhibit", "--list"]);
    assert!(
        listed_by_client.stdout.contains("burner"),
        "{listed_by_client}"
    );
    assert_eq!(bus.manager_property("BlockInhibited"), "s \"shutdown\"");
    let refused = bus.manager(None, "PowerOffWithFlags", &["t", "1"]);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused.stderr.to_lowercase().contains("access denied"),
        "{refused}"
    );
    assert!(
        svmgr_alive(),
        "svmgr was shut down despite the block inhibitor"
    );
    assert!(
        !signals.output().contains("PrepareForShutdown"),
        "a refused power-off was announced:\n{}",
        signals.output()
    );
    block.stop();
    wait_for("the block inhibitor to go", T, || {
        (!inhibitor_listed(&bus, "burner")).then_some(())
    });

    // A delay inhibitor: PowerOff is accepted, PrepareForShutdown(true) goes out, and the
    // shutdown waits until the inhibitor is released.
    let mut delay = bus.background(
        "systemd-inhibit",
        &[
            "systemd-inhibit",
            "--what=shutdown",
            "--mode=delay",
            "--who=saver",
            "--why=saving state",
            "sleep",
            "600",
        ],
    );
    wait_for("the delay inhibitor to be listed", T, || {
        inhibitor_listed(&bus, "saver").then_some(())
    });
    assert_eq!(bus.manager_property("DelayInhibited"), "s \"shutdown\"");
    let accepted = bus.manager(None, "PowerOff", &["b", "false"]);
    assert_eq!(accepted.code, 0, "{accepted}");
    let again = bus.manager(None, "PowerOff", &["b", "false"]);
    assert_ne!(
        again.code, 0,
        "a second power-off while one is pending: {again}"
    );
    assert!(again.stderr.contains("in progress"), "{again}");
    wait_for("PrepareForShutdown(true)", T, || {
        let out = signals.output();
        out.split("member=PrepareForShutdown")
            .nth(1)
            .is_some_and(|rest| rest.trim_start().starts_with("boolean true"))
            .then_some(())
    });
    assert_eq!(bus.manager_property("PreparingForShutdown"), "b true");
    assert!(
        svmgr_alive(),
        "the shutdown did not wait for the delay inhibitor"
    );
    delay.stop();
    let status = svmgr.wait_exit(T);
    assert!(status.success(), "svmgr exited with {status}");
    assert!(
        logind.log().contains("svmgr is shutting down (poweroff)"),
        "{}",
        logind.log()
    );
}

#[test]
fn suspend_writes_the_sleep_state_between_prepare_for_sleep_signals() {
    if !runnable("suspend_writes_the_sleep_state_between_prepare_for_sleep_signals") {
        return;
    }
    let bus = Bus::start("sleep");
    let logind = Logind::start(&bus, &[]);
    let signals = bus.monitor(
        "type='signal',interface='org.freedesktop.login1.Manager',member='PrepareForSleep'",
    );
    assert_eq!(
        bus.manager(None, "CanSuspend", &[]).stdout.trim(),
        "s \"yes\""
    );
    bus.ok(&[
        "busctl",
        "call",
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "Suspend",
        "b",
        "false",
    ]);
    assert_eq!(
        std::fs::read_to_string(logind.sysfs.join("power/state")).unwrap(),
        "mem"
    );
    wait_for("PrepareForSleep(true) then (false)", T, || {
        let out = signals.output();
        let t = out.find("boolean true")?;
        let f = out.find("boolean false")?;
        (t < f).then_some(())
    });
    std::fs::write(logind.sysfs.join("power/state"), "freeze\n").unwrap();
    assert_eq!(
        bus.manager(None, "CanHibernate", &[]).stdout.trim(),
        "s \"na\""
    );
}

// ---- control and devices ----------------------------------------------------------------

/// A copy of `/dev/null` (1:3) under the test's device directory, which logind may hand out.
fn test_device(bus: &Bus) {
    let node = bus.path("dev/char/1:3");
    std::fs::create_dir_all(node.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&node);
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
}

#[test]
fn take_control_and_take_device_give_one_controller_a_working_fd() {
    if !runnable("take_control_and_take_device_give_one_controller_a_working_fd") {
        return;
    }
    let bus = Bus::start("devices");
    test_device(&bus);
    let _logind = Logind::start(&bus, &["--allow-device", "1:3"]);
    let session = PamSession::open(&bus, "root", &[("XDG_SEAT", "seat0")], &[]);
    let path = session_path(&session.id);

    let mut first = Controller::start(&bus, None);
    assert_eq!(first.ask(&format!("control {path} no")), "ok");
    // The controller gets a working descriptor of exactly that device, active.
    assert_eq!(first.ask("take 1 3"), "fd char 1:3 inactive=False wrote=5");
    assert!(
        first
            .ask("take 1 3")
            .starts_with("error org.freedesktop.login1.DeviceIsTaken")
    );
    // Devices that are not DRM or input devices are not handed out (here: /dev/mem).
    assert!(
        first
            .ask("take 1 1")
            .starts_with("error org.freedesktop.DBus.Error.AccessDenied")
    );
    let file =
        std::fs::read_to_string(bus.run_dir().join("systemd/sessions").join(&session.id)).unwrap();
    assert!(
        file.contains(&format!("CONTROLLER={}", first.name)),
        "{file}"
    );
    assert!(file.contains("DEVICES=1:3"), "{file}");

    // A second controller is refused, and cannot take devices.
    let mut second = Controller::start(&bus, None);
    let refused = second.ask(&format!("control {path} no"));
    assert!(refused.starts_with("error System.Error.EBUSY"), "{refused}");
    assert!(
        second
            .ask("take 1 3")
            .starts_with("error org.freedesktop.login1.NotInControl")
    );
    // Another user may not even try.
    let mut stranger = Controller::start(&bus, Some(NOBODY));
    let denied = stranger.ask(&format!("control {path} no"));
    assert!(
        denied.starts_with("error org.freedesktop.DBus.Error.AccessDenied"),
        "{denied}"
    );
    let denied = stranger.ask(&format!("control {path} force"));
    assert!(
        denied.starts_with("error org.freedesktop.DBus.Error.AccessDenied"),
        "{denied}"
    );
    stranger.quit();

    // When the controller leaves the bus, control is free again.
    first.quit();
    wait_for("the second controller to get control", T, || {
        (second.ask(&format!("control {path} no")) == "ok").then_some(())
    });
    assert_eq!(second.ask("take 1 3"), "fd char 1:3 inactive=False wrote=5");
    assert_eq!(second.ask("release 1 3"), "ok");
    assert!(
        second
            .ask("release 1 3")
            .starts_with("error org.freedesktop.login1.DeviceNotTaken")
    );
    assert_eq!(second.ask("release-control"), "ok");
    second.quit();
}

#[test]
fn devices_are_paused_and_resumed_when_the_foreground_session_changes() {
    if !runnable("devices_are_paused_and_resumed_when_the_foreground_session_changes") {
        return;
    }
    let bus = Bus::start("switch");
    test_device(&bus);
    let _logind = Logind::start(&bus, &["--allow-device", "1:3"]);
    let one = PamSession::open(&bus, "root", &[("XDG_SEAT", "seat0")], &[]);
    let two = PamSession::open(&bus, "root", &[("XDG_SEAT", "seat0")], &[]);
    // The first session on the seat is in the foreground.
    assert_eq!(prop(&show(&bus, "show-session", &one.id), "Active"), "yes");
    assert_eq!(
        prop(&show(&bus, "show-session", &two.id), "State"),
        "online"
    );

    let mut c = Controller::start(&bus, None);
    assert_eq!(
        c.ask(&format!("control {} no", session_path(&one.id))),
        "ok"
    );
    assert_eq!(c.ask("take 1 3"), "fd char 1:3 inactive=False wrote=5");
    let mut background = Controller::start(&bus, None);
    assert_eq!(
        background.ask(&format!("control {} no", session_path(&two.id))),
        "ok"
    );
    // A background session's devices come muted.
    assert_eq!(
        background.ask("take 1 3"),
        "fd char 1:3 inactive=True wrote=5"
    );

    let watch = bus.monitor("type='signal',interface='org.freedesktop.login1.Session'");
    bus.ok(&["loginctl", "activate", &two.id]);
    assert_eq!(prop(&show(&bus, "show-session", &two.id), "Active"), "yes");
    assert_eq!(prop(&show(&bus, "show-session", &one.id), "Active"), "no");
    assert_eq!(
        prop(&show(&bus, "show-seat", "seat0"), "ActiveSession"),
        two.id
    );
    // The old foreground's controller is told its device is paused, the new one's that it
    // is back (with a descriptor) — each only to its own controller.
    let pause_to = |name: &str, id: &str| {
        let (name, path) = (format!("destination={name} "), session_path(id));
        move |out: &str| {
            out.split("\nsignal ").any(|m| {
                m.contains("member=PauseDevice")
                    && m.contains(&name)
                    && m.contains(&path)
                    && m.contains("string \"force\"")
            })
        }
    };
    let resume_to = |name: &str, id: &str| {
        let (name, path) = (format!("destination={name} "), session_path(id));
        move |out: &str| {
            out.split("\nsignal ").any(|m| {
                m.contains("member=ResumeDevice") && m.contains(&name) && m.contains(&path)
            })
        }
    };
    watch.wait_until(
        "PauseDevice to the first controller",
        pause_to(&c.name, &one.id),
    );
    watch.wait_until(
        "ResumeDevice to the second controller",
        resume_to(&background.name, &two.id),
    );
    bus.ok(&["loginctl", "activate", &one.id]);
    watch.wait_until(
        "ResumeDevice to the first controller",
        resume_to(&c.name, &one.id),
    );
    watch.wait_until(
        "PauseDevice to the second controller",
        pause_to(&background.name, &two.id),
    );
    c.quit();
    background.quit();
}

// ---- cgroups ----------------------------------------------------------------------------

fn cgroup2_mount() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(pre.split_whitespace().nth(4)?))
    })
}

/// A base cgroup for one test under the host's cgroup2 mount, removed (bottom-up) on drop.
struct CgroupBase(PathBuf);

impl Drop for CgroupBase {
    fn drop(&mut self) {
        fn rm(p: &Path) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        rm(&e.path());
                    }
                }
            }
            let _ = std::fs::write(p.join("cgroup.kill"), "1");
            let _ = std::fs::remove_dir(p);
        }
        rm(&self.0);
    }
}

fn own_cgroup(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn sessions_live_in_their_own_cgroups_and_terminating_one_ends_all_its_processes() {
    if !runnable("sessions_live_in_their_own_cgroups_and_terminating_one_ends_all_its_processes") {
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipping: no cgroup2 mount");
        return;
    };
    let base = CgroupBase(mount.join(format!("dynamod-test-logind-{}", std::process::id())));
    std::fs::create_dir_all(&base.0).unwrap();
    let bus = Bus::start("cgroups");
    let logind = Logind::start(&bus, &["--cgroup-root", base.0.to_str().unwrap()]);
    let session = PamSession::open(&bus, "nobody", &[], &[]);
    let rel = format!(
        "/{}/user-65534.slice/session-{}.scope",
        base.0.strip_prefix(&mount).unwrap().display(),
        session.id
    );
    let holder = session.holder();
    // The leader was moved in when the session was created, so what it started since is in
    // the session's cgroup too.
    assert_eq!(own_cgroup(session.leader()), rel);
    assert_eq!(own_cgroup(holder), rel);
    let by_pid = bus.manager(None, "GetSessionByPID", &["u", &holder.to_string()]);
    assert_eq!(
        by_pid.stdout.trim(),
        format!("o \"{}\"", session_path(&session.id)),
        "{by_pid}"
    );
    let user_by_pid = bus.manager(None, "GetUserByPID", &["u", &holder.to_string()]);
    assert_eq!(
        user_by_pid.stdout.trim(),
        "o \"/org/freedesktop/login1/user/_65534\"",
        "{user_by_pid}"
    );
    let scope = base
        .0
        .join(rel.trim_start_matches('/').split_once('/').unwrap().1);
    assert!(scope.is_dir(), "{}", scope.display());

    bus.ok(&["loginctl", "terminate-session", &session.id]);
    wait_for("every process of the session to end", T, || {
        (!alive(session.leader()) && !alive(holder)).then_some(())
    });
    wait_for("the session to go", T, || {
        (!listed(&bus, &session.id)).then_some(())
    });
    wait_for("its cgroup to be removed", T, || {
        (!scope.exists()).then_some(())
    });
    assert!(logind.log().contains("session removed"), "{}", logind.log());
}

#[test]
fn systemctl_poweroff_goes_through_logind_to_svmgrs_ordered_shutdown() {
    if !runnable("systemctl_poweroff_goes_through_logind_to_svmgrs_ordered_shutdown") {
        return;
    }
    let svc = (
        "services/web.toml".to_owned(),
        format!("[service]\nname = \"web\"\nexec = [\"{FIXTURE}\", \"sleep\"]\n"),
    );
    let mut svmgr = Svmgr::start("logind-systemctl", &[(svc.0.as_str(), svc.1.as_str())]);
    let bus = Bus::start("systemctl");
    let socket = svmgr.socket();
    let logind = Logind::start(&bus, &["--control-socket", socket.to_str().unwrap()]);
    let signals = bus.monitor(
        "type='signal',interface='org.freedesktop.login1.Manager',member='PrepareForShutdown'",
    );
    // systemctl asks login1 first (PowerOffWithFlags); there is no systemd1 on this bus.
    bus.ok(&["systemctl", "poweroff"]);
    signals.wait_until("PrepareForShutdown(true)", |out| {
        out.contains("boolean true")
    });
    let status = svmgr.wait_exit(T);
    assert!(status.success(), "svmgr exited with {status}");
    assert!(
        logind.log().contains("svmgr is shutting down (poweroff)"),
        "{}",
        logind.log()
    );
}
