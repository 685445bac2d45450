//! dynamod-init as PID 1 of a fresh PID, mount, UTS and IPC namespace, babysitting the fake
//! service manager (`src/bin/fake-svmgr.rs`).
//!
//! Each test boots its own namespace with `unshare`, private tmpfs mounts on `/run` and
//! `/var/lib` (so nothing init writes reaches the host), and reads init's log (its stderr) and
//! the fake svmgr's record file. Assertions are on the order of events, never on durations;
//! every wait has a generous timeout. Killing init's host PID ends the whole namespace, which is
//! how a failed test cleans up.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dynamod_tests::{TempDir, bin, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const T: Duration = Duration::from_secs(60);
const FAKE: &str = env!("CARGO_BIN_EXE_fake-svmgr");

/// One dynamod-init running as PID 1 of its own namespaces.
struct Booted {
    unshare: std::process::Child,
    init: i32,
    dir: TempDir,
}

impl Booted {
    /// Boots init with the fake svmgr; `env` configures both (the `DYNAMOD_*` variables reach
    /// the fake through init).
    fn start(tag: &str, env: &[(&str, &str)], extra_args: &[&str]) -> Self {
        let dir = TempDir::new(&format!("init-{tag}"));
        let log = File::create(dir.path().join("init.log")).unwrap();
        let record = dir.path().join("record");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--pid",
            "--fork",
            "--mount",
            "--uts",
            "--ipc",
            "--propagation",
            "private",
            "--mount-proc",
            "--",
            "/bin/sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && exec \"$0\" \"$@\"",
        ])
        .arg(bin("dynamod-init"))
        .args(["--svmgr", FAKE])
        .args(extra_args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DYNAMOD_HEARTBEAT_MS", "1000")
        .env("DYNAMOD_FAKE_RECORD", &record)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        let unshare = cmd.spawn().expect("run unshare");
        let upid = unshare.id();
        let init = wait_for("init's host pid", T, || {
            let kids =
                std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children")).ok()?;
            kids.split_whitespace().next()?.parse::<i32>().ok()
        });
        let booted = Self { unshare, init, dir };
        booted.wait_log("dynamod-init");
        booted
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("init.log")).unwrap_or_default()
    }

    fn record(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("record")).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        wait_for(&format!("log line {needle:?}"), T, || {
            self.log().contains(needle).then_some(())
        });
    }

    fn wait_record(&self, what: &str, cond: impl Fn(&str) -> bool) {
        wait_for(what, T, || cond(&self.record()).then_some(()));
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.init), sig).unwrap();
    }

    /// Waits for init (and so `unshare`) to exit; returns init's exit code.
    fn wait_exit(&mut self) -> i32 {
        let status = wait_for("init to exit", T, || self.unshare.try_wait().unwrap());
        status
            .code()
            .unwrap_or_else(|| panic!("unshare died of a signal; log:\n{}", self.log()))
    }

    /// Init's children that are zombies (as seen from the host).
    fn zombie_children(&self) -> Vec<i32> {
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.init))
            .unwrap_or_default();
        kids.split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(')')
                            .map(|(_, r)| r.trim_start().starts_with('Z'))
                    })
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            // SIGKILL to a namespace's init kills everything in it.
            let _ = kill(Pid::from_raw(self.init), Signal::SIGKILL);
            let _ = self.unshare.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- init log ----\n{}\n---- record ----\n{}",
                self.log(),
                self.record()
            );
        }
    }
}

/// Position of `needle` in `hay`, failing with the whole text when absent.
fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{hay}"))
}

fn count(hay: &str, prefix: &str) -> usize {
    hay.lines().filter(|l| l.starts_with(prefix)).count()
}

fn shell_script(dir: &Path, marker: &Path) -> PathBuf {
    let script = dir.join("emergency-shell");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho shell-ran >> {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn sigterm_stops_services_then_exits_zero_with_nothing_left() {
    let mut b = Booted::start("term", &[("DYNAMOD_FAKE_SLEEPER", "1")], &[]);
    b.wait_log("connected as fake-svmgr");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);

    assert!(b.record().contains("recv Shutdown poweroff"));
    let log = b.log();
    let asked = pos(&log, "asking svmgr to stop all services");
    let stopped = pos(&log, "svmgr stopped all services");
    let term = pos(&log, "sending SIGTERM to all remaining processes");
    let none = pos(&log, "shutdown: no processes left");
    let exit = pos(&log, "exiting with status 0");
    assert!(
        asked < stopped && stopped < term && term < none && none < exit,
        "{log}"
    );
    // Nothing needed SIGKILL: the wait ended as soon as the last process was gone.
    assert!(!log.contains("sending SIGKILL"), "{log}");
}

#[test]
fn svmgr_stuck_stopping_services_delays_shutdown_only_up_to_the_bound() {
    let mut b = Booted::start(
        "stuck",
        &[
            ("DYNAMOD_FAKE_IGNORE_SHUTDOWN", "1"),
            ("DYNAMOD_SHUTDOWN_SVMGR_MS", "300"),
        ],
        &[],
    );
    b.wait_log("connected as fake-svmgr");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
    let log = b.log();
    let gave_up = pos(&log, "svmgr did not finish stopping services within 300 ms");
    assert!(
        gave_up < pos(&log, "sending SIGTERM to all remaining processes"),
        "{log}"
    );
}

#[test]
fn process_ignoring_sigterm_is_killed_in_step_three() {
    let mut b = Booted::start("stubborn", &[("DYNAMOD_FAKE_STUBBORN", "1")], &[]);
    b.wait_log("connected as fake-svmgr");
    b.wait_record("the SIGTERM-immune child", |r| r.contains("kind=stubborn"));
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
    let log = b.log();
    let term = pos(&log, "sending SIGTERM to all remaining processes");
    let kill = pos(&log, "sending SIGKILL");
    let none = pos(&log, "shutdown: no processes left");
    assert!(term < kill && kill < none, "{log}");
}

#[test]
fn svmgr_starts_with_only_fd3_an_empty_signal_mask_and_its_environment() {
    // A shell wrapper reports the dispositions init handed over: the fake, being a Rust
    // program, has SIGPIPE ignored by its own runtime before main.
    let wdir = TempDir::new("init-hygiene-wrapper");
    let wrapper = wdir.path().join("svmgr-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ngrep -E '^Sig(Blk|Ign):' /proc/$$/status | sed 's/^/wrapper-/' \
             >> \"$DYNAMOD_FAKE_RECORD\"\nexec {FAKE}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut b = Booted::start("hygiene", &[], &["--svmgr", wrapper.to_str().unwrap()]);
    b.wait_record("fake svmgr greeted", |r| r.contains("hello version="));
    let r = b.record();
    assert!(r.contains("wrapper-SigBlk:\t0000000000000000\n"), "{r}");
    assert!(r.contains("wrapper-SigIgn:\t0000000000000000\n"), "{r}");
    assert!(r.contains("\nsigblk=0000000000000000\n"), "{r}");
    assert!(r.contains("\nfds=0,1,2,3\n"), "{r}");
    assert!(r.contains("env DYNAMOD_INIT_FD=3"), "{r}");
    assert!(r.contains("env DYNAMOD_HEARTBEAT_MS=1000"), "{r}");
    assert!(r.contains("env DYNAMOD_CONTAINER=1"), "{r}");
    assert!(r.contains("hello version=1 peer=dynamod-init"), "{r}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn every_orphan_is_reaped_and_reported_with_its_status() {
    const N: usize = 100;
    let b = Booted::start("orphans", &[("DYNAMOD_FAKE_ORPHANS", "100")], &[]);
    b.wait_record("every orphan reported", |r| count(r, "orphan pid=") >= N);
    let r = b.record();
    for line in r.lines().filter(|l| l.starts_with("orphan-spawned ")) {
        let pid = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("pid=");
        let code = line
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_start_matches("code=");
        let want = format!("orphan pid={pid} status=exited:{code}");
        assert!(r.contains(&want), "missing {want:?} in:\n{r}");
    }
    assert_eq!(count(&r, "orphan-spawned "), N);
    // Statuses 126, 127 and 128 are ordinary exit codes.
    for code in [126, 127, 128] {
        assert!(r.contains(&format!("status=exited:{code}")), "{r}");
    }
    assert!(
        b.zombie_children().is_empty(),
        "zombies left: {:?}",
        b.zombie_children()
    );
    let mut b = b;
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn orphans_of_a_crashed_svmgr_are_reported_to_its_successor() {
    const N: usize = 20;
    let mut b = Booted::start(
        "adopt",
        &[
            ("DYNAMOD_FAKE_ORPHANS", "20"),
            ("DYNAMOD_FAKE_ORPHANS_THEN_CRASH", "1"),
            ("DYNAMOD_FAKE_MISBEHAVE", "1"),
        ],
        &[],
    );
    // The orphans of the first svmgr (the second one makes its own batch, which exits on a
    // timer and is not looked at here).
    let first_batch = |r: &str| -> Vec<String> {
        let first = r.split_once("instance=2").map_or(r, |(f, _)| f);
        first
            .lines()
            .filter_map(|l| l.strip_prefix("orphan-spawned pid="))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    b.wait_record(
        "every orphan of the first svmgr reported to the second",
        |r| {
            let batch = first_batch(r);
            batch.len() == N
                && r.split_once("instance=2").is_some_and(|(_, second)| {
                    batch
                        .iter()
                        .all(|pid| second.contains(&format!("orphan pid={pid} status=exited:")))
                })
        },
    );
    let r = b.record();
    let (first, _) = r.split_once("instance=2").unwrap();
    // The first svmgr died before any of them exited.
    assert_eq!(count(first, "orphan pid="), 0, "{r}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn development_mode_stops_only_its_own_descendants() {
    let dir = TempDir::new("init-dev");
    let record = dir.path().join("record");
    let log = File::create(dir.path().join("init.log")).unwrap();
    // A process that is not init's descendant must survive init's shutdown.
    let mut bystander = Command::new("sleep").arg("1000").spawn().unwrap();
    let mut init = Command::new(bin("dynamod-init"))
        .args(["--allow-non-pid1", "--svmgr", FAKE])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DYNAMOD_FAKE_RECORD", &record)
        .env("DYNAMOD_FAKE_STUBBORN", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let child = wait_for("the fake's child", T, || {
        read(&record).lines().find_map(|l| {
            l.strip_prefix("child pid=")?
                .split_whitespace()
                .next()?
                .parse::<i32>()
                .ok()
        })
    });
    wait_for("svmgr connected", T, || {
        read(&dir.path().join("init.log"))
            .contains("connected as fake-svmgr")
            .then_some(())
    });
    kill(Pid::from_raw(init.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_for("init to exit", T, || init.try_wait().unwrap());
    let text = read(&dir.path().join("init.log"));
    let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("development mode"), "{text}");
    // The SIGTERM-immune child needed SIGKILL and is gone (reaped by init as subreaper).
    assert!(
        pos(&text, "sending SIGKILL") < pos(&text, "shutdown: no processes left"),
        "{text}"
    );
    assert!(!Path::new(&format!("/proc/{child}")).exists(), "{text}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn killed_svmgr_is_restarted_with_a_growing_delay() {
    let mut b = Booted::start(
        "backoff",
        &[
            ("DYNAMOD_FAKE_CRASH_AFTER_MS", "100"),
            ("DYNAMOD_FAKE_MISBEHAVE", "2"),
        ],
        &[],
    );
    b.wait_record("third svmgr instance", |r| r.contains("instance=3"));
    b.wait_log("connected as fake-svmgr");
    let log = b.log();
    let first = pos(&log, "svmgr exited (signal 9); restarting in 500 ms");
    let second = pos(&log, "svmgr exited (signal 9); restarting in 1000 ms");
    assert!(first < second, "{log}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn hung_svmgr_is_killed_and_replaced() {
    let mut b = Booted::start(
        "hang",
        &[
            ("DYNAMOD_HEARTBEAT_MS", "200"),
            ("DYNAMOD_FAKE_HANG_AFTER_MS", "300"),
            ("DYNAMOD_FAKE_MISBEHAVE", "1"),
        ],
        &[],
    );
    b.wait_record("second svmgr instance", |r| r.contains("instance=2"));
    let log = b.log();
    let hung = pos(&log, "svmgr hung (no heartbeat for ");
    let restart = pos(&log, "svmgr exited (signal 9); restarting in 500 ms");
    assert!(hung < restart, "{log}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn sighup_asks_svmgr_to_reload() {
    let mut b = Booted::start("reload", &[], &[]);
    b.wait_log("connected as fake-svmgr");
    b.signal(Signal::SIGHUP);
    b.wait_record("reload received", |r| r.contains("recv Reload"));
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn init_sends_heartbeats_to_svmgr() {
    let mut b = Booted::start("beats", &[("DYNAMOD_HEARTBEAT_MS", "100")], &[]);
    b.wait_record("two heartbeats from init", |r| {
        count(r, "recv Heartbeat") >= 2
    });
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn requested_shutdown_exits_with_the_main_service_status() {
    let mut b = Booted::start(
        "exitcode",
        &[
            ("DYNAMOD_FAKE_REQUEST_SHUTDOWN_MS", "200"),
            ("DYNAMOD_FAKE_EXIT_CODE", "7"),
        ],
        &[],
    );
    assert_eq!(b.wait_exit(), 7);
    let log = b.log();
    let req = pos(
        &log,
        "svmgr stopped all services and requests poweroff (exit status 7)",
    );
    assert!(req < pos(&log, "exiting with status 7"), "{log}");
    // The services were already stopped: init did not ask again.
    assert!(!b.record().contains("recv Shutdown"));
}

#[test]
fn sigusr2_stops_services_runs_the_shell_then_starts_svmgr_again() {
    let marker_dir = TempDir::new("init-usr2-marker");
    let marker = marker_dir.path().join("marker");
    let script = shell_script(marker_dir.path(), &marker);
    let script = script.to_str().unwrap();
    let mut b = Booted::start(
        "usr2",
        &[],
        &["--emergency-shell", script, "--console", "/dev/null"],
    );
    b.wait_log("connected as fake-svmgr");
    b.signal(Signal::SIGUSR2);
    b.wait_record("second svmgr instance", |r| r.contains("instance=2"));
    assert!(
        std::fs::read_to_string(&marker)
            .unwrap()
            .contains("shell-ran")
    );
    let r = b.record();
    assert!(pos(&r, "recv Shutdown halt") < pos(&r, "instance=2"), "{r}");
    let log = b.log();
    let shell = pos(&log, "emergency shell running");
    let back = pos(&log, "emergency shell exited (code 0); starting svmgr");
    assert!(shell < back, "{log}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn crash_loop_runs_the_emergency_shell_then_starts_svmgr_again() {
    let marker_dir = TempDir::new("init-loop-marker");
    let marker = marker_dir.path().join("marker");
    let script = shell_script(marker_dir.path(), &marker);
    let script = script.to_str().unwrap();
    let mut b = Booted::start(
        "crashloop",
        &[
            ("DYNAMOD_FAKE_CRASH_AFTER_MS", "20"),
            ("DYNAMOD_FAKE_MISBEHAVE", "6"),
        ],
        &["--emergency-shell", script, "--console", "/dev/null"],
    );
    b.wait_record("seventh svmgr instance", |r| r.contains("instance=7"));
    assert!(
        std::fs::read_to_string(&marker)
            .unwrap()
            .contains("shell-ran")
    );
    let log = b.log();
    let mut at = 0;
    for delay in [500, 1000, 2000, 4000, 8000] {
        let line = format!("restarting in {delay} ms");
        let p = pos(&log, &line);
        assert!(p > at, "{line:?} out of order in:\n{log}");
        at = p;
    }
    let looped = pos(&log, "crash loop (6 crashes within 60 s)");
    let back = pos(&log, "emergency shell exited (code 0); starting svmgr");
    assert!(at < looped && looped < back, "{log}");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn refuses_to_run_when_not_pid1() {
    let out = Command::new(bin("dynamod-init")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as PID 1"));
}

#[test]
fn unknown_argument_is_a_usage_error() {
    let out = Command::new(bin("dynamod-init"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown argument") && err.contains("usage:"),
        "{err}"
    );
}

#[test]
fn write_machine_id_creates_a_valid_read_only_id_once() {
    // A private mount namespace with a tmpfs on /etc, so the host's machine-id is untouched.
    let init = bin("dynamod-init");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /etc && \"$0\" --write-machine-id && cat /etc/machine-id && \
             stat -c %a /etc/machine-id && \"$0\" --write-machine-id && cat /etc/machine-id",
        )
        .arg(&init)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let id = lines[0];
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    assert_eq!(lines[1], "444");
    // The second run keeps the valid ID.
    assert_eq!(lines[2], id);
}
