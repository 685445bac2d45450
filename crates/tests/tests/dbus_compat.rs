//! The systemd compatibility layer against systemd's own client programs: `hostnamectl`,
//! `timedatectl`, `localectl`, `systemctl` (and `busctl`, `dbus-monitor`) talking to
//! dynamod-hostnamed and dynamod-sd1bridge on a private system bus, and a C program built
//! against the real `sd-daemon.h` running on the libsystemd shim under a real svmgr.
//!
//! Every test gets its own `dbus-daemon` (a `<type>system</type>` bus on a socket in a temp
//! dir, with the policy files of `config/dbus-1/`), and runs each client in a private mount
//! namespace whose `/run` is that test's run directory (so `/run/systemd/system` exists for
//! the clients and `/run/systemd/private` is the bridge's socket). hostnamed writes under a
//! temp root and changes the kernel hostname only inside its own UTS namespace. Everything
//! started is stopped on drop, also when a test fails.
//!
//! The tests need root (namespaces, mounts, the private socket); they install the Debian
//! packages they use when missing (`dbus`, `systemd`, `libsystemd-dev`, `gcc`).

#![allow(
    clippy::disallowed_methods,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dynamod_proto::{Request, Response, ServiceDetail, ServiceState};
use dynamod_tests::bus::{self, Outcome, Proc, unique};
use dynamod_tests::svmgr::Svmgr;
use dynamod_tests::{TempDir, wait_for, workspace_root};

/// Generous wait for conditions (the machine is shared and may be slow).
const T: Duration = Duration::from_secs(60);
/// A client that has not finished by then is killed and the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

// ---- prerequisites ----------------------------------------------------------------------

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// The tools these tests run, installed with apt-get when missing (once per test process).
fn ensure_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let wanted = [
            ("dbus", have("dbus-daemon") && have("dbus-monitor")),
            (
                "systemd",
                [
                    "systemctl",
                    "hostnamectl",
                    "timedatectl",
                    "localectl",
                    "busctl",
                ]
                .iter()
                .all(|c| have(c)),
            ),
            (
                "libsystemd-dev",
                Path::new("/usr/include/systemd/sd-daemon.h").exists(),
            ),
            ("gcc", have("gcc")),
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
        eprintln!("skipping {test}: needs root (namespaces, mounts, system bus policy)");
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

/// Builds the D-Bus daemons and the shim for the host, once per test process.
fn build_host() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "dynamod-hostnamed",
                "-p",
                "dynamod-sd1bridge",
                "-p",
                "dynamod-libsystemd",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the D-Bus crates failed");
    });
}

/// A daemon binary: from `DYNAMOD_BIN_DIR` (`cargo xtask test` builds them statically), else a
/// host build.
fn daemon_bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("DYNAMOD_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    build_host();
    let p = target_dir().join("debug").join(name);
    assert!(p.is_file(), "{} missing after the build", p.display());
    p
}

// ---- the bus ------------------------------------------------------------------------------

/// A private system bus: its own dbus-daemon, socket and `/run` for the clients.
struct Bus {
    dir: TempDir,
    daemon: Option<Proc>,
}

impl Bus {
    fn start(tag: &str) -> Self {
        let dir = TempDir::new(&format!("dbus-{tag}"));
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

    /// Runs a client in a private mount namespace with this bus's `/run`, as root or (with
    /// `nobody`) as uid/gid 65534 without supplementary groups.
    fn client(&self, nobody: bool, argv: &[&str]) -> Outcome {
        let mut script = String::from("mount --bind \"$0\" /run || exit 125\nexec");
        if nobody {
            script.push_str(" setpriv --reuid=65534 --regid=65534 --clear-groups");
        }
        script.push_str(" \"$@\"");
        let out_path = self.path(&format!("client-{}.out", unique()));
        let err_path = self.path(&format!("client-{}.err", unique()));
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(self.run_dir())
            .args(argv)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .env("SYSTEMD_PAGER", "")
            .env("PAGER", "cat")
            .env("SYSTEMD_COLORS", "0")
            .env("LC_ALL", "C.UTF-8")
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
        let o = self.client(false, argv);
        assert_eq!(o.code, 0, "{o}");
        o
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // The bus goes last-but-one: daemons held by the test are dropped before it.
        self.daemon.take();
    }
}

/// dynamod-hostnamed on `bus`, with its files under `root` and its own UTS namespace.
fn hostnamed(bus: &Bus, root: &Path, control_socket: &Path) -> Proc {
    let map = bus.path("kbd-model-map");
    std::fs::write(
        &map,
        "# keymap layout model variant options\n\
         us us pc105+inet - terminate:ctrl_alt_bksp\n\
         de de pc105 - terminate:ctrl_alt_bksp\n\
         fr fr pc105 - terminate:ctrl_alt_bksp\n",
    )
    .unwrap();
    let mut p = Proc::spawn(
        "dynamod-hostnamed",
        Command::new("unshare")
            .arg("--uts")
            .arg(daemon_bin("dynamod-hostnamed"))
            .arg("--bus")
            .arg(bus.address())
            .arg("--root")
            .arg(root)
            .arg("--control-socket")
            .arg(control_socket)
            .arg("--kbd-model-map")
            .arg(&map)
            .arg("--no-devices")
            .env("NO_COLOR", "1"),
        bus.path("hostnamed.log"),
    );
    p.wait_output("serving org.freedesktop.hostname1");
    p
}

/// dynamod-sd1bridge on `bus` in front of `svmgr`.
fn bridge(bus: &Bus, svmgr: &Svmgr, private_socket: bool) -> Proc {
    let mut cmd = Command::new(daemon_bin("dynamod-sd1bridge"));
    cmd.arg("--bus")
        .arg(bus.address())
        .arg("--control-socket")
        .arg(svmgr.socket())
        .arg("--run-dir")
        .arg(bus.run_dir());
    if !private_socket {
        cmd.arg("--no-private-socket");
    }
    let mut p = Proc::spawn("dynamod-sd1bridge", &mut cmd, bus.path("sd1bridge.log"));
    p.wait_output("serving org.freedesktop.systemd1");
    p
}

/// `dbus-monitor` watching PropertiesChanged on `bus`.
fn monitor(bus: &Bus) -> Proc {
    let mut p = Proc::spawn(
        "dbus-monitor",
        Command::new("dbus-monitor")
            .arg("--address")
            .arg(bus.address())
            .arg("type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"),
        bus.path(&format!("monitor-{}.log", unique())),
    );
    // dbus-monitor prints the NameLost of its own connection once it has become a monitor.
    p.wait_output("NameLost");
    p
}

fn svmgr_detail(s: &Svmgr, name: &str) -> ServiceDetail {
    match s.request(&Request::Status {
        names: vec![name.to_owned()],
    }) {
        Response::Status(mut v) => v.remove(0),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn wait_state(s: &Svmgr, name: &str, want: ServiceState) -> ServiceDetail {
    wait_for(&format!("{name} to be {want:?}"), T, || {
        let d = svmgr_detail(s, name);
        (d.summary.state == want).then_some(d)
    })
}

fn wait_startup(s: &Svmgr) {
    wait_for("startup to complete", T, || {
        match s.request(&Request::SystemState) {
            Response::SystemState(st) if st.startup_complete => Some(()),
            _ => None,
        }
    });
}

fn service(name: &str, body: &str) -> (String, String) {
    (
        format!("services/{name}.toml"),
        format!("[service]\nname = \"{name}\"\n{body}\n"),
    )
}

fn start_svmgr(tag: &str, files: &[(String, String)]) -> Svmgr {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Svmgr::start(tag, &refs)
}

fn hostname_root(bus: &Bus) -> PathBuf {
    let root = bus.path("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "dynamod-box\n").unwrap();
    std::fs::write(
        root.join("etc/machine-info"),
        "PRETTY_HOSTNAME=\"Dynamod Test Box\"\nCHASSIS=server\nLOCATION=\"rack 7\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=Dynamod\nPRETTY_NAME=\"Dynamod Test OS 1\"\nID=dynamod\n",
    )
    .unwrap();
    root
}

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

// ---- hostname1, timedate1, locale1 ----------------------------------------------------------

#[test]
fn hostnamectl_shows_our_values_and_changes_the_hostname() {
    if !runnable("hostnamectl_shows_our_values_and_changes_the_hostname") {
        return;
    }
    let host_before = host_hostname();
    let bus = Bus::start("hostname");
    let root = hostname_root(&bus);
    // hostnamectl also asks systemd1 for the virtualization and architecture.
    let svmgr = start_svmgr("hostname", &[]);
    let _bridge = bridge(&bus, &svmgr, true);
    let _hostnamed = hostnamed(&bus, &root, &svmgr.socket());

    let status = bus.ok(&["hostnamectl"]);
    for want in [
        "Static hostname: dynamod-box",
        "Pretty hostname: Dynamod Test Box",
        "Chassis: server",
        "Location: rack 7",
        "Operating System: Dynamod Test OS 1",
    ] {
        assert!(
            status.stdout.contains(want),
            "missing {want:?} in\n{status}"
        );
    }

    let watch = monitor(&bus);
    bus.ok(&["hostnamectl", "hostname", "foo"]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "foo\n"
    );
    wait_for("PropertiesChanged with the new hostname", T, || {
        let out = watch.output();
        (out.contains("org.freedesktop.hostname1") && out.contains("\"foo\"")).then_some(())
    });
    let status = bus.ok(&["hostnamectl"]);
    assert!(status.stdout.contains("Static hostname: foo"), "{status}");
    // The kernel hostname changed in hostnamed's UTS namespace only.
    let kernel = bus.ok(&[
        "busctl",
        "get-property",
        "org.freedesktop.hostname1",
        "/org/freedesktop/hostname1",
        "org.freedesktop.hostname1",
        "Hostname",
    ]);
    assert_eq!(kernel.stdout.trim(), "s \"foo\"", "{kernel}");
    assert_eq!(host_hostname(), host_before, "the host's hostname changed");

    // Validation: no newline can reach a file.
    let bad = bus.client(
        false,
        &["hostnamectl", "set-hostname", "--pretty", "two\nlines"],
    );
    assert_ne!(bad.code, 0, "{bad}");
    let info = std::fs::read_to_string(root.join("etc/machine-info")).unwrap();
    assert!(!info.contains("two"), "{info}");
    let bad = bus.client(false, &["hostnamectl", "chassis", "toaster"]);
    assert_ne!(bad.code, 0, "{bad}");
}

#[test]
fn timedatectl_shows_and_sets_the_time_zone() {
    if !runnable("timedatectl_shows_and_sets_the_time_zone") {
        return;
    }
    let bus = Bus::start("timedate");
    let root = bus.path("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let _hostnamed = hostnamed(&bus, &root, &bus.path("no-svmgr.sock"));

    let status = bus.ok(&["timedatectl"]);
    assert!(status.stdout.contains("Time zone: UTC"), "{status}");
    assert!(status.stdout.contains("NTP service: n/a"), "{status}");

    let watch = monitor(&bus);
    bus.ok(&["timedatectl", "set-timezone", "Europe/Paris"]);
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("../usr/share/zoneinfo/Europe/Paris")
    );
    wait_for("PropertiesChanged with the new time zone", T, || {
        watch.output().contains("\"Europe/Paris\"").then_some(())
    });
    let status = bus.ok(&["timedatectl"]);
    assert!(
        status.stdout.contains("Time zone: Europe/Paris"),
        "{status}"
    );

    // A zone outside the database, or a path escape, is refused and changes nothing.
    for bad in ["Mars/Olympus_Mons", "../../etc/passwd"] {
        let o = bus.client(false, &["timedatectl", "set-timezone", bad]);
        assert_ne!(o.code, 0, "{o}");
    }
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("../usr/share/zoneinfo/Europe/Paris")
    );

    bus.ok(&["timedatectl", "set-local-rtc", "1"]);
    assert!(
        std::fs::read_to_string(root.join("etc/adjtime"))
            .unwrap()
            .ends_with("LOCAL\n")
    );
    let zones = bus.ok(&["timedatectl", "list-timezones"]);
    assert!(zones.stdout.lines().any(|l| l == "Europe/Paris"), "{zones}");
}

#[test]
fn localectl_shows_and_sets_locale_and_keyboards() {
    if !runnable("localectl_shows_and_sets_locale_and_keyboards") {
        return;
    }
    let bus = Bus::start("locale");
    let root = bus.path("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/locale.conf"), "LANG=en_US.UTF-8\n").unwrap();
    let _hostnamed = hostnamed(&bus, &root, &bus.path("no-svmgr.sock"));

    let status = bus.ok(&["localectl"]);
    assert!(status.stdout.contains("LANG=en_US.UTF-8"), "{status}");

    bus.ok(&[
        "localectl",
        "set-locale",
        "LANG=de_DE.UTF-8",
        "LC_TIME=en_GB.UTF-8",
    ]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/locale.conf")).unwrap(),
        "LANG=de_DE.UTF-8\nLC_TIME=en_GB.UTF-8\n"
    );
    bus.ok(&["localectl", "set-keymap", "--no-convert", "fr"]);
    let vconsole = std::fs::read_to_string(root.join("etc/vconsole.conf")).unwrap();
    assert_eq!(vconsole, "KEYMAP=fr\n");
    bus.ok(&["localectl", "set-x11-keymap", "de", "pc105"]);
    // The X11 change converted the console keymap through the kbd-model-map.
    let vconsole = std::fs::read_to_string(root.join("etc/vconsole.conf")).unwrap();
    assert!(vconsole.contains("KEYMAP=de\n"), "{vconsole}");
    assert!(vconsole.contains("XKBLAYOUT=de\n"), "{vconsole}");
    let xorg = std::fs::read_to_string(root.join("etc/X11/xorg.conf.d/00-keyboard.conf")).unwrap();
    assert!(xorg.contains("Option \"XkbLayout\" \"de\""), "{xorg}");
    let status = bus.ok(&["localectl"]);
    for want in [
        "LANG=de_DE.UTF-8",
        "VC Keymap: de",
        "X11 Layout: de",
        "X11 Model: pc105",
    ] {
        assert!(
            status.stdout.contains(want),
            "missing {want:?} in\n{status}"
        );
    }

    let bad = bus.client(false, &["localectl", "set-locale", "LANG=x\nLC_ALL=y"]);
    assert_ne!(bad.code, 0, "{bad}");
    let bad = bus.client(false, &["localectl", "set-keymap", "../../etc/shadow"]);
    assert_ne!(bad.code, 0, "{bad}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/locale.conf")).unwrap(),
        "LANG=de_DE.UTF-8\nLC_TIME=en_GB.UTF-8\n"
    );
}

// ---- systemd1 -------------------------------------------------------------------------------

fn fixture_service(name: &str, args: &str, extra: &str) -> (String, String) {
    service(name, &format!("exec = [\"{FIXTURE}\", {args}]\n{extra}"))
}

#[test]
fn systemctl_lists_shows_and_controls_real_services() {
    if !runnable("systemctl_lists_shows_and_controls_real_services") {
        return;
    }
    let svmgr = start_svmgr(
        "systemctl",
        &[
            fixture_service("web", "\"sleep\"", ""),
            // Ready 1.5 s after it starts: a start must wait for it.
            fixture_service(
                "slow",
                "\"notify\", \"READY=1\", \"1500\"",
                "type = \"notify\"",
            ),
        ],
    );
    wait_startup(&svmgr);
    let bus = Bus::start("systemctl");
    let _bridge = bridge(&bus, &svmgr, true);
    let web = wait_state(&svmgr, "web", ServiceState::Running);
    let pid = web.summary.pid.unwrap();

    let list = bus.ok(&["systemctl", "list-units", "--no-pager", "--plain"]);
    let row = list
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("web.service"))
        .unwrap_or_else(|| panic!("no web.service row in\n{list}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["loaded", "active", "running"], "{row}");

    let status = bus.ok(&["systemctl", "status", "--no-pager", "-n0", "web.service"]);
    assert!(
        status.stdout.contains("Active: active (running)"),
        "{status}"
    );
    assert!(
        status.stdout.contains(&format!("Main PID: {pid}")),
        "{status}"
    );

    let active = bus.ok(&["systemctl", "is-active", "web.service"]);
    assert_eq!(active.stdout.trim(), "active");
    let show = bus.ok(&["systemctl", "show", "-p", "MainPID", "web.service"]);
    assert_eq!(show.stdout.trim(), format!("MainPID={pid}"));
    let running = bus.ok(&["systemctl", "is-system-running"]);
    assert_eq!(running.stdout.trim(), "running");
    // A PID is resolved to its unit (GetUnitByPID).
    let by_pid = bus.ok(&["systemctl", "status", "--no-pager", "-n0", &pid.to_string()]);
    assert!(by_pid.stdout.contains("web.service"), "{by_pid}");

    // stop, start, restart without --no-block: each returns once svmgr is done.
    bus.ok(&["systemctl", "stop", "web.service"]);
    assert_eq!(
        svmgr_detail(&svmgr, "web").summary.state,
        ServiceState::Stopped
    );
    let inactive = bus.client(false, &["systemctl", "is-active", "web.service"]);
    assert_eq!(
        (inactive.code, inactive.stdout.trim()),
        (3, "inactive"),
        "{inactive}"
    );
    // try-restart leaves a stopped unit stopped.
    bus.ok(&["systemctl", "try-restart", "web.service"]);
    assert_eq!(
        svmgr_detail(&svmgr, "web").summary.state,
        ServiceState::Stopped
    );
    bus.ok(&["systemctl", "start", "web.service"]);
    let started = svmgr_detail(&svmgr, "web");
    assert_eq!(started.summary.state, ServiceState::Running);
    bus.ok(&["systemctl", "restart", "web.service"]);
    let restarted = svmgr_detail(&svmgr, "web");
    assert_eq!(restarted.summary.state, ServiceState::Running);
    assert_ne!(restarted.summary.pid, started.summary.pid);
    bus.ok(&["systemctl", "reload-or-restart", "web.service"]);
    let reloaded = svmgr_detail(&svmgr, "web");
    assert_eq!(reloaded.summary.state, ServiceState::Running);
    assert_ne!(reloaded.summary.pid, restarted.summary.pid);

    // KillUnit signals the main process; svmgr restarts the permanent service.
    let before = reloaded.summary.pid;
    bus.ok(&[
        "systemctl",
        "kill",
        "--kill-whom=main",
        "--signal=SIGTERM",
        "web.service",
    ]);
    wait_for("web to be restarted after the kill", T, || {
        let d = svmgr_detail(&svmgr, "web");
        (d.summary.state == ServiceState::Running && d.summary.pid != before).then_some(())
    });

    // The job of a notify service ends when it is ready, not when it is spawned.
    bus.ok(&["systemctl", "restart", "slow.service"]);
    assert_eq!(
        svmgr_detail(&svmgr, "slow").summary.state,
        ServiceState::Running
    );

    let missing = bus.client(
        false,
        &["systemctl", "status", "--no-pager", "nope.service"],
    );
    assert_eq!(missing.code, 4, "{missing}");
    let missing = bus.client(false, &["systemctl", "start", "nope.service"]);
    assert_ne!(missing.code, 0, "{missing}");
    assert!(missing.stderr.contains("not found"), "{missing}");
}

#[test]
fn systemctl_reports_failed_units_and_a_degraded_system() {
    if !runnable("systemctl_reports_failed_units_and_a_degraded_system") {
        return;
    }
    let svmgr = start_svmgr(
        "degraded",
        &[
            fixture_service("ok", "\"sleep\"", ""),
            service(
                "broken",
                "exec = [\"/bin/sh\", \"-c\", \"exit 3\"]\n[restart]\npolicy = \"temporary\"",
            ),
        ],
    );
    wait_startup(&svmgr);
    wait_state(&svmgr, "broken", ServiceState::Failed);
    let bus = Bus::start("degraded");
    let _bridge = bridge(&bus, &svmgr, true);

    let state = bus.client(false, &["systemctl", "is-system-running"]);
    assert_eq!(
        (state.code, state.stdout.trim()),
        (1, "degraded"),
        "{state}"
    );
    let failed = bus.ok(&[
        "systemctl",
        "list-units",
        "--failed",
        "--no-pager",
        "--plain",
    ]);
    assert!(failed.stdout.contains("broken.service"), "{failed}");
    assert!(!failed.stdout.contains("ok.service"), "{failed}");
    let status = bus.client(
        false,
        &["systemctl", "status", "--no-pager", "-n0", "broken.service"],
    );
    assert_eq!(status.code, 3, "{status}");
    assert!(status.stdout.contains("Result: exit-code"), "{status}");
    let result = bus.ok(&[
        "systemctl",
        "show",
        "-p",
        "Result,ExecMainStatus",
        "broken.service",
    ]);
    assert!(result.stdout.contains("Result=exit-code"), "{result}");
    assert!(result.stdout.contains("ExecMainStatus=3"), "{result}");
}

#[test]
fn systemctl_jobs_complete_over_the_bus_without_the_private_socket() {
    if !runnable("systemctl_jobs_complete_over_the_bus_without_the_private_socket") {
        return;
    }
    let svmgr = start_svmgr(
        "busjobs",
        &[fixture_service(
            "slow",
            "\"notify\", \"READY=1\", \"1000\"",
            "type = \"notify\"",
        )],
    );
    wait_startup(&svmgr);
    let bus = Bus::start("busjobs");
    let _bridge = bridge(&bus, &svmgr, false);
    assert!(!bus.run_dir().join("systemd/private").exists());
    bus.ok(&["systemctl", "stop", "slow.service"]);
    assert_eq!(
        svmgr_detail(&svmgr, "slow").summary.state,
        ServiceState::Stopped
    );
    bus.ok(&["systemctl", "start", "slow.service"]);
    assert_eq!(
        svmgr_detail(&svmgr, "slow").summary.state,
        ServiceState::Running
    );
}

#[test]
fn systemctl_poweroff_stops_the_service_manager() {
    if !runnable("systemctl_poweroff_stops_the_service_manager") {
        return;
    }
    let mut svmgr = start_svmgr("poweroff", &[fixture_service("web", "\"sleep\"", "")]);
    wait_startup(&svmgr);
    let pid = wait_state(&svmgr, "web", ServiceState::Running)
        .summary
        .pid
        .unwrap();
    let bus = Bus::start("poweroff");
    let _bridge = bridge(&bus, &svmgr, true);
    // Without login1, systemctl falls back to StartUnit("poweroff.target").
    bus.ok(&["systemctl", "poweroff"]);
    // A standalone svmgr stops every service and exits.
    let status = svmgr.wait_exit(T);
    assert!(status.success(), "svmgr exited with {status}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the service survived the poweroff"
    );
}

// ---- authorization ----------------------------------------------------------------------------

#[test]
fn a_non_root_caller_is_refused_every_change_but_may_read() {
    if !runnable("a_non_root_caller_is_refused_every_change_but_may_read") {
        return;
    }
    let svmgr = start_svmgr("nobody", &[fixture_service("web", "\"sleep\"", "")]);
    wait_startup(&svmgr);
    let pid = wait_state(&svmgr, "web", ServiceState::Running).summary.pid;
    let bus = Bus::start("nobody");
    let root = hostname_root(&bus);
    std::fs::write(root.join("etc/locale.conf"), "LANG=en_US.UTF-8\n").unwrap();
    let _bridge = bridge(&bus, &svmgr, true);
    let _hostnamed = hostnamed(&bus, &root, &svmgr.socket());
    let snapshot = || -> Vec<(String, Option<String>)> {
        [
            "hostname",
            "machine-info",
            "locale.conf",
            "vconsole.conf",
            "adjtime",
            "localtime",
        ]
        .iter()
        .map(|f| {
            let p = root.join("etc").join(f);
            let content = std::fs::read_to_string(&p)
                .ok()
                .or_else(|| std::fs::read_link(&p).ok().map(|l| l.display().to_string()));
            ((*f).to_owned(), content)
        })
        .collect()
    };
    let before = snapshot();

    // Reads are open.
    let status = bus.client(true, &["hostnamectl"]);
    assert_eq!(status.code, 0, "{status}");
    let active = bus.client(true, &["systemctl", "is-active", "web.service"]);
    assert_eq!(active.code, 0, "{active}");
    let list = bus.client(true, &["systemctl", "list-units", "--no-pager"]);
    assert!(list.stdout.contains("web.service"), "{list}");

    let changes: &[&[&str]] = &[
        &["hostnamectl", "hostname", "evil"],
        &["hostnamectl", "set-hostname", "--transient", "evil"],
        &["hostnamectl", "chassis", "laptop"],
        &["hostnamectl", "icon-name", "evil"],
        &["hostnamectl", "deployment", "evil"],
        &["hostnamectl", "location", "evil"],
        &["timedatectl", "set-timezone", "Asia/Tokyo"],
        &["timedatectl", "set-local-rtc", "1"],
        &["timedatectl", "set-ntp", "true"],
        // Relative by zero: harmless even if it were (wrongly) allowed.
        &[
            "busctl",
            "call",
            "org.freedesktop.timedate1",
            "/org/freedesktop/timedate1",
            "org.freedesktop.timedate1",
            "SetTime",
            "xbb",
            "0",
            "true",
            "false",
        ],
        &["localectl", "set-locale", "LANG=C"],
        &["localectl", "set-keymap", "fr"],
        &["localectl", "set-x11-keymap", "fr"],
        &["systemctl", "stop", "web.service"],
        &["systemctl", "start", "web.service"],
        &["systemctl", "restart", "web.service"],
        &["systemctl", "try-restart", "web.service"],
        &["systemctl", "kill", "web.service"],
        &["systemctl", "daemon-reload"],
        &["systemctl", "poweroff"],
        &["systemctl", "reboot"],
        &[
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "PowerOff",
        ],
        &[
            "busctl",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "KillUnit",
            "ssi",
            "web.service",
            "main",
            "9",
        ],
    ];
    for argv in changes {
        let o = bus.client(true, argv);
        assert_ne!(o.code, 0, "a non-root change succeeded: {o}");
        assert!(
            o.stderr.to_lowercase().contains("access denied"),
            "not refused for lack of privilege: {o}"
        );
    }

    assert_eq!(snapshot(), before, "a refused change touched a file");
    let now = svmgr_detail(&svmgr, "web");
    assert_eq!(
        (now.summary.state, now.summary.pid),
        (ServiceState::Running, pid),
        "a refused change touched the service"
    );
}

// ---- libsystemd shim ------------------------------------------------------------------------

const PROBE_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-id128.h>

int main(void) {
    char id[SD_ID128_STRING_MAX];
    sd_id128_t r128;
    sd_id128_randomize(&r128);
    sd_journal_print(LOG_INFO, "shim-probe starting, id %s", sd_id128_to_string(r128, id));
    sd_journal_send("MESSAGE=shim-probe fields %d", 42, "PRIORITY=%i", LOG_NOTICE, NULL);
    printf("booted=%d listen=%d\n", sd_booted(), sd_listen_fds(0));
    fflush(stdout);
    int r = sd_notify(0, "READY=1\nSTATUS=shim probe ready");
    printf("notify=%d\n", r);
    fflush(stdout);
    for (;;)
        pause();
}
"#;

#[test]
fn a_program_linked_to_libsystemd_reaches_ready_through_the_shim() {
    if !runnable("a_program_linked_to_libsystemd_reaches_ready_through_the_shim") {
        return;
    }
    build_host();
    let work = TempDir::new("shim");
    let src = work.path().join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let exe = work.path().join("shim-probe");
    // Compiled and linked against the real sd-daemon.h and libsystemd.
    let cc = Command::new("gcc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lsystemd")
        .output()
        .expect("run gcc");
    assert!(
        cc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let needed = Command::new("objdump").arg("-p").arg(&exe).output();
    if let Ok(o) = needed {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("libsystemd.so.0"), "{text}");
        assert!(text.contains("LIBSYSTEMD_209"), "{text}");
    }
    let lib = work.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(
        target_dir().join("debug/libsystemd.so"),
        lib.join("libsystemd.so.0"),
    )
    .unwrap();

    let body = format!(
        "exec = [\"{}\"]\ntype = \"notify\"\n[service.environment]\nLD_LIBRARY_PATH = \"{}\"\n\
         [readiness]\ntimeout = \"60s\"",
        exe.display(),
        lib.display()
    );
    let svmgr = start_svmgr("shim", &[service("probe", &body)]);
    let d = wait_for("the probe to become ready or fail", T, || {
        let d = svmgr_detail(&svmgr, "probe");
        matches!(
            d.summary.state,
            ServiceState::Running | ServiceState::Failed
        )
        .then_some(d)
    });
    assert_eq!(
        d.summary.state,
        ServiceState::Running,
        "not ready through the shim: {d:?}\n{}",
        svmgr.log().join("\n")
    );
    assert_eq!(d.readiness, "notify (ready)");
    // It really runs on the shim, not on the real library.
    let pid = d.summary.pid.unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        maps.contains(&lib.join("libsystemd.so.0").display().to_string()),
        "the shim is not mapped:\n{maps}"
    );
    // The journal calls reached the service's log (through stderr), formatted.
    let logs = wait_for("the probe's output", T, || {
        let d = svmgr_detail(&svmgr, "probe");
        let all = d.recent_logs.join("\n");
        (all.contains("notify=1") && all.contains("shim-probe fields 42")).then_some(all)
    });
    assert!(logs.contains("<6>shim-probe starting, id "), "{logs}");
    assert!(logs.contains("<5>shim-probe fields 42"), "{logs}");
    assert!(logs.contains("listen=0"), "{logs}");
}
