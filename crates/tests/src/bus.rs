//! A private D-Bus system bus for the tests that drive systemd's own clients (`dbus_compat`,
//! `logind`): its own dbus-daemon with the project's policy files, background processes that are
//! stopped on drop, and what a client did.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{wait_for, workspace_root};

/// How long a bus test waits for anything.
const T: Duration = Duration::from_secs(60);

/// A number never returned twice in this process (for file names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The system bus socket of a bus started under `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("run/dbus/system_bus_socket")
}

/// Starts a dbus-daemon for a system bus under `dir`: `dir/run` is the `/run` clients see
/// (with `dbus/` and `systemd/system/`), the policy is the default deny-method-calls one plus
/// the project's `config/dbus-1/system.d`. Returns once the socket accepts connections.
pub fn start_daemon(dir: &Path) -> Proc {
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("dbus")).unwrap();
    std::fs::create_dir_all(run.join("systemd/system")).unwrap();
    let socket = socket(dir);
    let policy_dir = workspace_root().join("config/dbus-1/system.d");
    let config = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>{policy}</includedir>
</busconfig>
"#,
        socket = socket.display(),
        policy = policy_dir.display(),
    );
    let conf = dir.join("bus.conf");
    std::fs::write(&conf, config).unwrap();
    let mut daemon = Proc::spawn(
        "dbus-daemon",
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address"]),
        dir.join("dbus-daemon.log"),
    );
    daemon.wait_output("unix:path=");
    wait_for("the bus socket", T, || {
        std::os::unix::net::UnixStream::connect(&socket)
            .is_ok()
            .then_some(())
    });
    daemon
}

/// A background process, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    name: String,
    /// The process while it runs (`None` once stopped or seen to exit).
    pub child: Option<Child>,
    log: PathBuf,
    /// Stop with SIGKILL at once (an `unshare --fork --kill-child` wrapper, whose death takes
    /// its whole PID namespace along).
    pub kill_at_once: bool,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("dup log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
            kill_at_once: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the output contains `needle`; fails early if the process died.
    pub fn wait_output(&mut self, needle: &str) {
        let name = self.name.clone();
        let start = Instant::now();
        loop {
            if self.output().contains(needle) {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{name} exited ({status}) before printing {needle:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < T,
                "timed out waiting for {name} to print {needle:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `pred` holds for the output; the failure message shows the output.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while !pred(&self.output()) {
            assert!(
                start.elapsed() < T,
                "timed out after {T:?} waiting for {what}; {} printed:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let name = self.name.clone();
        let child = self.child.as_mut().expect("running");
        let status = wait_for(&format!("{name} to exit"), T, || {
            child.try_wait().ok().flatten()
        });
        self.child = None;
        status
    }

    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.kill_at_once {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a client did.
pub struct Outcome {
    /// The command line.
    pub argv: Vec<String>,
    /// Its exit code (-1 when killed by a signal).
    pub code: i32,
    /// What it printed.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} exited {}\n--- stdout\n{}--- stderr\n{}",
            self.argv, self.code, self.stdout, self.stderr
        )
    }
}
