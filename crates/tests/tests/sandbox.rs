//! The sandbox (`cargo xtask sandbox`): dynamod as PID 1 of fresh namespaces, laid out like the
//! Docker image.
//!
//! Two groups:
//! * `machinery_*` — the sandbox itself, with a busybox `sh` as a stand-in PID 1: namespaces,
//!   the private `/dev` and its pty console, volumes, signal forwarding, exit status, `exec`.
//! * the rest — dynamod's acceptance tests in a container, against SPEC.md and the seed's boot
//!   log (`docs/docker.md`), through `dynamodctl` inside the sandbox.
//!
//! The acceptance tests read `dynamodctl … --json` as docs/operations.md documents it (a list
//! is `{"services": [{name, state, pid, supervisor, …}]}`, a tree is nested objects with `name`
//! and `children`), looking fields up by name so that added fields never break them.

#![allow(
    clippy::disallowed_methods,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::Duration;

use dynamod_tests::sandbox::{
    BOOT_TIMEOUT, Sandbox, TIMEOUT, assert_in_order, list, live, pid_of, state_of, xtask,
};
use dynamod_tests::{TempDir, wait_for};
use serde_json::Value;

/// The container services of the seed and the state each has once boot is complete.
const SERVICES: [(&str, &str); 8] = [
    ("bootmisc", "done"),
    ("hostname", "done"),
    ("network", "done"),
    ("sysctl", "done"),
    ("machine-id", "done"),
    ("dynamod-logd", "running"),
    ("syslog", "running"),
    ("agetty-tty1", "running"),
];

const ONESHOTS: [&str; 5] = ["bootmisc", "hostname", "network", "sysctl", "machine-id"];

/// A stand-in PID 1 that says it is up, then waits for SIGTERM and exits 0.
const STAND_IN: &str = "echo stand-in up; trap 'echo stand-in stopping; exit 0' TERM; \
                        sleep 1000000 & wait";

// ---------------------------------------------------------------------------------------------
// The sandbox machinery, with a stand-in PID 1.
// ---------------------------------------------------------------------------------------------

#[test]
fn machinery_stand_in_init_is_pid1_of_private_namespaces() {
    let sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);

    let cmdline = sb.exec_ok(&["cat", "/proc/1/cmdline"]);
    assert!(
        cmdline.starts_with("/bin/sh\0-c\0echo stand-in up"),
        "{cmdline:?}"
    );
    assert_eq!(sb.exec_ok(&["hostname"]).trim(), "dynamod-sandbox");
    let environ = sb.exec_ok(&["cat", "/proc/1/environ"]);
    assert!(
        environ
            .split('\0')
            .any(|v| v == "container=dynamod-sandbox"),
        "{environ:?}"
    );
    assert!(
        environ.split('\0').any(|v| v.starts_with("TERM=")),
        "{environ:?}"
    );

    // Its own network namespace: only a loopback interface, down until someone brings it up.
    let links = sb.exec_ok(&["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");

    // Every namespace differs from the host's (this test process's).
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{}/ns/{ns}", sb.pid1())).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "the sandbox shares the host's {ns} namespace");
    }
    // The empty signal mask PID 1 must start with (xtask blocks signals it reads itself).
    let status = std::fs::read_to_string(format!("/proc/{}/status", sb.pid1())).unwrap();
    let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
    assert!(blocked.ends_with("0000000000000000"), "{blocked}");
}

#[test]
fn machinery_rootfs_has_the_install_layout_and_busybox() {
    let sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);

    for path in [
        "/sbin/dynamod-init",
        "/usr/lib/dynamod/dynamod-svmgr",
        "/usr/lib/dynamod/dynamod-logd",
        "/usr/bin/dynamodctl",
    ] {
        sb.sh(&format!("test -x {path}"));
    }
    let services = sb.exec_ok(&["ls", "/etc/dynamod/services"]);
    let services: Vec<&str> = services.split_whitespace().collect();
    let mut expected: Vec<String> = SERVICES.iter().map(|(n, _)| format!("{n}.toml")).collect();
    expected.sort();
    assert_eq!(services, expected);
    let supervisors = sb.exec_ok(&["ls", "/etc/dynamod/supervisors"]);
    assert_eq!(
        supervisors.split_whitespace().collect::<Vec<_>>(),
        ["desktop.toml", "early-boot.toml", "root.toml"]
    );
    let modes = sb.exec_ok(&[
        "stat",
        "-c",
        "%a %n",
        "/var/lib/dynamod",
        "/tmp",
        "/run/dynamod",
    ]);
    assert_eq!(
        modes.lines().collect::<Vec<_>>(),
        ["700 /var/lib/dynamod", "1777 /tmp", "755 /run/dynamod"]
    );
    for applet in [
        "sh", "getty", "syslogd", "ip", "sysctl", "hostname", "ps", "kill", "mount",
    ] {
        sb.sh(&format!("command -v {applet} >/dev/null"));
    }
    assert_eq!(
        sb.exec_ok(&["cat", "/etc/hostname"]).trim(),
        "dynamod-sandbox"
    );
    let passwd = sb.exec_ok(&["cat", "/etc/passwd"]);
    for user in ["root:", "daemon:", "nobody:"] {
        assert!(passwd.lines().any(|l| l.starts_with(user)), "{passwd}");
    }
    let group = sb.exec_ok(&["cat", "/etc/group"]);
    assert!(group.lines().any(|l| l.starts_with("nogroup:")), "{group}");
    sb.sh("grep -q '^ID=' /etc/os-release");
    // Only keys of the network namespace: `sysctl -p` must work without touching the host.
    let sysctl = sb.exec_ok(&["sysctl", "-p", "/etc/sysctl.conf"]);
    assert!(sysctl.contains("net.ipv4.ip_local_port_range"), "{sysctl}");
}

#[test]
fn machinery_dev_is_private_with_a_pty_console() {
    let sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);

    let dev = sb.exec_ok(&["ls", "/dev"]);
    let dev: Vec<&str> = dev.split_whitespace().collect();
    for name in [
        "console", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "urandom", "zero",
    ] {
        assert!(dev.contains(&name), "/dev lacks {name}: {dev:?}");
    }
    for absent in ["tty", "tty1", "kmsg", "mem", "sda", "vda"] {
        assert!(
            !dev.contains(&absent),
            "/dev has the host's {absent}: {dev:?}"
        );
    }
    assert_eq!(sb.exec_ok(&["readlink", "/dev/ptmx"]).trim(), "pts/ptmx");
    assert_eq!(sb.exec_ok(&["readlink", "/dev/fd"]).trim(), "/proc/self/fd");
    // The console is a pty (major 136..143), and PID 1's stdio is that same terminal.
    let console = sb.exec_ok(&["stat", "-L", "-c", "%t %T", "/dev/console"]);
    let major = u32::from_str_radix(console.split_whitespace().next().unwrap(), 16).unwrap();
    assert!(
        (136..=143).contains(&major),
        "console is not a pty: {console}"
    );
    let stdio = sb.exec_ok(&["stat", "-L", "-c", "%t %T", "/proc/1/fd/0", "/proc/1/fd/1"]);
    assert!(
        stdio.lines().all(|l| l == console.trim()),
        "{stdio} vs {console}"
    );
    sb.sh("echo written by exec > /dev/console");
    sb.wait_log("written by exec", TIMEOUT);
    // The devices are the real ones.
    assert_eq!(
        sb.sh("echo x > /dev/null; head -c 4 /dev/zero | wc -c")
            .trim(),
        "4"
    );
}

#[test]
fn machinery_volumes_are_bound_and_read_only_ones_refuse_writes() {
    let shared = TempDir::new("sandbox-volume");
    std::fs::write(shared.path().join("from-host"), "hello from the host\n").unwrap();
    let sb = Sandbox::builder()
        .stand_in_init(STAND_IN)
        .file("/etc/extra/config.txt", "read only\n", true)
        .volume(shared.path(), "/srv/shared", false)
        .start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);

    assert_eq!(sb.exec_ok(&["cat", "/etc/extra/config.txt"]), "read only\n");
    let write = sb.exec(&["/bin/sh", "-c", "echo changed > /etc/extra/config.txt"]);
    assert!(!write.status.success(), "a :ro volume accepted a write");
    assert_eq!(
        sb.exec_ok(&["cat", "/srv/shared/from-host"]),
        "hello from the host\n"
    );
    sb.sh("echo from the sandbox > /srv/shared/from-sandbox");
    let back = std::fs::read_to_string(shared.path().join("from-sandbox")).unwrap();
    assert_eq!(back, "from the sandbox\n");
}

#[test]
fn machinery_sigterm_to_xtask_stops_pid1_and_reports_exit_0() {
    let mut sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);
    // Something besides PID 1 runs in the namespace; it must be gone afterwards too.
    sb.sh("sleep 1000000 >/dev/null 2>&1 &");
    assert!(sb.processes_left().len() >= 2);

    let status = sb.sigterm_and_wait();
    assert_eq!(status.code(), Some(0), "{}", sb.log());
    // xtask's notes (stderr) and the console (stdout) are read apart: order only within one.
    let log = sb.log();
    assert_in_order(&log, &["stand-in up", "stand-in stopping"]);
    assert!(log.contains("SIGTERM: stopping the sandbox"), "{log}");
    assert!(log.contains("nothing left in the sandbox"), "{log}");
    assert_eq!(sb.processes_left(), Vec::<(i32, String)>::new());
    assert!(
        !sb.state_dir().join("pid").exists(),
        "the pid file outlived the sandbox"
    );
}

#[test]
fn machinery_second_sigterm_kills_a_pid1_that_ignores_the_first() {
    let script = "trap '' TERM; echo stand-in up; sleep 1000000 & wait";
    let mut sb = Sandbox::builder().stand_in_init(script).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);
    sb.sigterm_xtask();
    sb.wait_log("again to kill it", TIMEOUT);
    // The ignored SIGTERM changed nothing.
    assert_eq!(sb.exec_ok(&["cat", "/proc/1/comm"]), "sh\n");
    sb.sigterm_xtask();
    let status = sb.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(137), "{}", sb.log());
    assert!(sb.log().contains("killed by signal 9"), "{}", sb.log());
    assert_eq!(sb.processes_left(), Vec::<(i32, String)>::new());
}

#[test]
fn machinery_exit_code_of_pid1_becomes_xtasks() {
    let mut sb = Sandbox::builder()
        .stand_in_init("echo stand-in up; sleep 1; exit 3")
        .start();
    let status = sb.wait_exit(BOOT_TIMEOUT);
    assert_eq!(status.code(), Some(3), "{}", sb.log());
    assert!(
        sb.log().contains("PID 1 exited with code 3"),
        "{}",
        sb.log()
    );
}

#[test]
fn machinery_exec_propagates_exit_codes_and_signals() {
    let sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);
    assert_eq!(sb.exec(&["/bin/sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(
        sb.exec(&["/bin/sh", "-c", "kill -9 $$"]).status.code(),
        Some(137)
    );
    assert_eq!(sb.exec(&["true"]).status.code(), Some(0));
    // It runs inside: PID namespace, root and working directory of the sandbox.
    assert_eq!(
        sb.exec_ok(&["/bin/sh", "-c", "pwd; cat /proc/1/comm"]),
        "/\nsh\n"
    );
}

#[test]
fn machinery_exec_without_a_running_sandbox_fails_clearly() {
    let empty = TempDir::new("sandbox-none");
    let out = std::process::Command::new(xtask())
        .arg("sandbox")
        .arg("--state-dir")
        .arg(empty.path())
        .args(["exec", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no sandbox is running"), "{stderr}");
}

#[test]
fn machinery_second_sandbox_on_the_same_state_dir_is_refused() {
    let sb = Sandbox::builder().stand_in_init(STAND_IN).start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);
    let out = std::process::Command::new(xtask())
        .args(["sandbox", "--no-build", "--state-dir"])
        .arg(sb.state_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    // The running one was not disturbed.
    assert_eq!(sb.exec_ok(&["cat", "/proc/1/comm"]), "sh\n");
}

#[test]
fn machinery_rootfs_is_rebuilt_from_scratch_each_run() {
    let sb = Sandbox::builder()
        .stand_in_init(STAND_IN)
        .prepare(|state| {
            std::fs::create_dir_all(state.join("rootfs/etc")).unwrap();
            std::fs::write(state.join("rootfs/etc/stray"), "left from an old run").unwrap();
        })
        .start();
    sb.wait_log("stand-in up", BOOT_TIMEOUT);
    let out = sb.exec(&["test", "-e", "/etc/stray"]);
    assert!(
        !out.status.success(),
        "a file from an earlier rootfs survived"
    );
}

#[test]
fn machinery_busybox_getty_leaves_the_console_writable() {
    // BusyBox getty takes the console as its controlling terminal and resets its modes, but
    // calls no vhangup(): the other writers (PID 1 here, svmgr and services in dynamod) keep
    // reaching the console after it has set the line up and printed its prompt. (Its
    // tcflush(TCIOFLUSH) during that setup can drop what others wrote in that instant, so the
    // stand-in keeps writing rather than writing once.)
    let script = "trap 'kill $G; exit 0' TERM; /sbin/getty -L 38400 console xterm & G=$!; \
                  i=0; while :; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done";
    let sb = Sandbox::builder().stand_in_init(script).start();
    sb.wait_log("login:", BOOT_TIMEOUT);
    sb.wait_log_after("login:", "tick ", TIMEOUT);
    sb.sh("echo exec writes too > /dev/console");
    sb.wait_log_after("login:", "exec writes too", TIMEOUT);
}

// ---------------------------------------------------------------------------------------------
// dynamod in the sandbox (pass once the product has landed).
// ---------------------------------------------------------------------------------------------

/// Starts the default sandbox and waits for the end of start-up.
fn booted(builder: dynamod_tests::sandbox::SandboxBuilder, ready: usize) -> Sandbox {
    let sb = builder.start();
    sb.wait_log(
        &format!("startup complete: {ready} ready, 0 blocked"),
        BOOT_TIMEOUT,
    );
    sb
}

/// Waits until `name` is running with a PID and returns the PID.
fn wait_running(sb: &Sandbox, name: &str, not_pid: Option<i64>) -> i64 {
    wait_for(
        &format!("{name} running (not as PID {not_pid:?})"),
        TIMEOUT,
        || {
            let list = list(sb);
            let pid = pid_of(&list, name)?;
            (state_of(&list, name) == "running" && Some(pid) != not_pid).then_some(pid)
        },
    )
}

/// Waits until `pid` is the only live process named `comm` (a service is running from its
/// spawn on, so its `sh -c '…; exec prog'` may not have become `prog` yet).
fn wait_only(sb: &Sandbox, comm: &str, pid: i64) {
    let pid = i32::try_from(pid).unwrap();
    wait_for(&format!("{pid} to be the only {comm}"), TIMEOUT, || {
        (live(sb, comm) == [pid]).then_some(())
    });
}

/// Whether `pid` is a live (non-zombie) process inside.
fn alive(sb: &Sandbox, pid: i64) -> bool {
    sb.ps()
        .iter()
        .any(|(p, stat, _)| i64::from(*p) == pid && !stat.starts_with('Z'))
}

/// Whether `line` has `word` as one of its words (table cells, tree lines).
fn has_word(line: &str, word: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || "│|,()[]:'\"".contains(c))
        .any(|w| w == word)
}

#[test]
fn boot_prints_the_seed_boot_log() {
    let sb = booted(Sandbox::builder(), 8);
    let log = sb.log();
    assert_in_order(
        &log,
        &[
            "dynamod-svmgr starting",
            "loaded 8 service definition(s)",
            "loaded 3 supervisor definition(s)",
            "starting services via dependency frontier",
            "startup complete: 8 ready, 0 blocked",
        ],
    );
    for oneshot in ONESHOTS {
        let line = format!("oneshot '{oneshot}' completed (code 0)");
        assert!(log.contains(&line), "missing {line:?}\n{log}");
    }
    assert_in_order(
        &log,
        &["oneshot 'bootmisc' completed (code 0)", "startup complete"],
    );
    assert!(
        log.contains("dynamod-init:"),
        "init logs nothing on the console\n{log}"
    );
}

#[test]
fn ctl_list_tree_and_status_show_the_container_services() {
    let sb = booted(Sandbox::builder(), 8);

    // list: one line per service with its state.
    let text = sb.ctl(&["list"]);
    for (name, state) in SERVICES {
        assert!(
            text.lines()
                .any(|l| has_word(l, name) && has_word(l, state)),
            "`dynamodctl list` shows no line with {name} {state}:\n{text}"
        );
    }
    let list = list(&sb);
    for (name, state) in SERVICES {
        assert_eq!(state_of(&list, name), state, "{name}");
    }

    // tree: root with early-boot and desktop under it, each service under its supervisor.
    let tree: Value = serde_json::from_str(&sb.ctl(&["tree", "--json"])).expect("tree --json");
    let mut parent = BTreeMap::new();
    fn walk(node: &Value, up: Option<&str>, parent: &mut BTreeMap<String, String>) {
        let Some(name) = node.get("name").and_then(Value::as_str) else {
            return;
        };
        if let Some(up) = up {
            parent.insert(name.to_owned(), up.to_owned());
        }
        for child in node
            .get("children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(child, Some(name), parent);
        }
    }
    walk(&tree, None, &mut parent);
    assert_eq!(
        tree.get("name").and_then(Value::as_str),
        Some("root"),
        "{tree}"
    );
    for (child, sup) in [
        ("early-boot", "root"),
        ("desktop", "root"),
        ("bootmisc", "early-boot"),
        ("hostname", "early-boot"),
        ("network", "early-boot"),
        ("sysctl", "early-boot"),
        ("machine-id", "early-boot"),
        ("dynamod-logd", "early-boot"),
        ("syslog", "root"),
        ("agetty-tty1", "root"),
    ] {
        assert_eq!(
            parent.get(child).map(String::as_str),
            Some(sup),
            "{child} in {tree}"
        );
    }
    let tree_text = sb.ctl(&["tree"]);
    for name in ["root", "early-boot", "desktop", "syslog"] {
        assert!(
            tree_text.lines().any(|l| has_word(l, name)),
            "{name} not in:\n{tree_text}"
        );
    }

    // status: state, PID, supervisor and uptime.
    let pid = pid_of(&list, "syslog").expect("syslog has a PID");
    let status = sb.ctl(&["status", "syslog"]);
    let lower = status.to_lowercase();
    assert!(lower.contains("running"), "{status}");
    assert!(
        status.lines().any(|l| has_word(l, &pid.to_string())),
        "no PID {pid}:\n{status}"
    );
    assert!(
        status.lines().any(|l| has_word(l, "root")),
        "no supervisor:\n{status}"
    );
    assert!(
        lower.contains("uptime") || lower.contains("since"),
        "no uptime:\n{status}"
    );
}

#[test]
fn stopped_service_stays_stopped_until_started_and_restart_keeps_one_copy() {
    let sb = booted(Sandbox::builder(), 8);
    let first = wait_running(&sb, "syslog", None);

    sb.ctl(&["stop", "syslog"]);
    assert_eq!(state_of(&list(&sb), "syslog"), "stopped");
    assert_eq!(live(&sb, "syslogd"), Vec::<i32>::new());
    // An operator's stop is not a crash: still stopped well after the 1 s restart delay.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(state_of(&list(&sb), "syslog"), "stopped");
    assert_eq!(live(&sb, "syslogd"), Vec::<i32>::new());

    sb.ctl(&["start", "syslog"]);
    let second = wait_running(&sb, "syslog", Some(first));
    wait_only(&sb, "syslogd", second);

    // A restart stops the old copy before it starts the new one: never two.
    sb.ctl(&["restart", "syslog"]);
    assert!(
        !alive(&sb, second),
        "the old syslogd survived the restart: {:?}",
        sb.ps()
    );
    let third = wait_running(&sb, "syslog", Some(second));
    wait_only(&sb, "syslogd", third);
}

#[test]
fn killed_service_is_restarted_with_a_new_pid() {
    let sb = booted(Sandbox::builder(), 8);
    let old = wait_running(&sb, "syslog", None);
    sb.exec_ok(&["kill", "-9", &old.to_string()]);
    let new = wait_running(&sb, "syslog", Some(old));
    assert_ne!(new, old);
    wait_only(&sb, "syslogd", new);
}

#[test]
fn double_forking_service_leaves_no_zombie() {
    // The inner shell backgrounds a sleep and exits at once: the sleep is orphaned, reparented
    // to a subreaper or to PID 1, and must be reaped when it exits.
    let service = r#"
[service]
name = "double-fork"
exec = ["/bin/sh", "-c", "sh -c 'sleep 2 &'; exec sleep 1000000"]

[dependencies]
after = ["bootmisc"]
"#;
    let sb = booted(Sandbox::builder().service("double-fork", service), 9);
    let main = wait_running(&sb, "double-fork", None);
    let main = i32::try_from(main).unwrap();
    // Once the main process is `sleep` (exec'd), the inner shell has already run; from then on
    // the only other sleep is the orphan, which must exit and be reaped.
    let ps = wait_for("the orphaned sleep to exit and be reaped", TIMEOUT, || {
        let ps = sb.ps();
        let main_execd = ps.iter().any(|(pid, _, c)| *pid == main && c == "sleep");
        let only_main = ps
            .iter()
            .filter(|(_, _, c)| c == "sleep")
            .all(|(pid, _, _)| *pid == main);
        (main_execd && only_main).then_some(ps)
    });
    let zombies: Vec<_> = ps
        .iter()
        .filter(|(_, stat, _)| stat.starts_with('Z'))
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
}

#[test]
fn sigterm_stops_services_in_reverse_dependency_order_and_exits_0() {
    let chain_a = r#"
[service]
name = "chain-a"
exec = ["/bin/sleep", "1000000"]
[dependencies]
after = ["bootmisc"]
"#;
    let chain_b = r#"
[service]
name = "chain-b"
exec = ["/bin/sleep", "1000000"]
[dependencies]
requires = ["chain-a"]
"#;
    let chain_c = r#"
[service]
name = "chain-c"
exec = ["/bin/sleep", "1000000"]
[dependencies]
requires = ["chain-b"]
"#;
    let mut sb = booted(
        Sandbox::builder()
            .service("chain-a", chain_a)
            .service("chain-b", chain_b)
            .service("chain-c", chain_c),
        11,
    );
    let status = sb.sigterm_and_wait();
    let log = sb.log();
    assert_eq!(status.code(), Some(0), "PID 1 did not exit 0\n{log}");
    assert_in_order(
        &log,
        &[
            "stopping 'chain-c'",
            "stopping 'chain-b'",
            "stopping 'chain-a'",
        ],
    );
    for name in ["syslog", "agetty-tty1", "dynamod-logd", "chain-a"] {
        assert_in_order(&log, &["startup complete", &format!("stopping '{name}'")]);
        assert_in_order(
            &log,
            &[&format!("stopping '{name}'"), "all services stopped"],
        );
        // Everything after bootmisc stops before it, if a done oneshot is "stopped" at all.
        if log.contains("stopping 'bootmisc'") {
            assert_in_order(
                &log,
                &[&format!("stopping '{name}'"), "stopping 'bootmisc'"],
            );
        }
    }
    assert!(log.contains("nothing left in the sandbox"), "{log}");
    assert_eq!(sb.processes_left(), Vec::<(i32, String)>::new());
}

#[test]
fn broken_service_files_are_reported_and_the_rest_boots() {
    let unknown_key = "[service]\nname = \"bad-key\"\nexec = [\"/bin/true\"]\ncolour = \"blue\"\n";
    let bad_duration = "[service]\nname = \"bad-duration\"\nexec = [\"/bin/sleep\", \"1000\"]\n\n\
                        [restart]\ndelay = \"soon\"\n";
    let missing_exec = "[service]\nname = \"no-exec\"\ntype = \"oneshot\"\n";
    let sb = booted(
        Sandbox::builder()
            .service("bad-key", unknown_key)
            .service("bad-duration", bad_duration)
            .service("no-exec", missing_exec),
        8,
    );
    let log = sb.log();
    for (file, line) in [
        ("bad-key.toml", ":4"),
        ("bad-duration.toml", ":6"),
        ("no-exec.toml", ":"),
    ] {
        let at = format!("/etc/dynamod/services/{file}{line}");
        assert!(log.contains(&at), "no error located at {at}\n{log}");
    }
    let list = list(&sb);
    for name in ["bad-key", "bad-duration", "no-exec"] {
        assert_eq!(state_of(&list, name), "invalid", "{name}");
    }
    for (name, state) in SERVICES {
        assert_eq!(state_of(&list, name), state, "{name}");
    }
}

#[test]
fn service_added_with_a_volume_is_loaded() {
    let myapp = r#"
[service]
name = "myapp"
exec = ["/bin/sh", "-c", "echo myapp up; exec sleep 1000000"]

[restart]
policy = "permanent"
delay = "2s"

[dependencies]
after = ["network"]
"#;
    let sb = booted(Sandbox::builder().service("myapp", myapp), 9);
    assert!(
        sb.log().contains("loaded 9 service definition(s)"),
        "{}",
        sb.log()
    );
    let pid = wait_running(&sb, "myapp", None);
    let text = sb.ctl(&["list"]);
    assert!(
        text.lines()
            .any(|l| has_word(l, "myapp") && has_word(l, "running")),
        "{text}"
    );
    let status = sb.ctl(&["status", "myapp"]);
    assert!(status.to_lowercase().contains("running"), "{status}");
    assert!(
        status.lines().any(|l| has_word(l, &pid.to_string())),
        "{status}"
    );
}

#[test]
fn killed_svmgr_is_restarted_by_init_and_ctl_works_again() {
    let sb = booted(Sandbox::builder(), 8);
    let syslogd = wait_running(&sb, "syslog", None);
    wait_only(&sb, "syslogd", syslogd);
    let svmgr = live(&sb, "dynamod-svmgr");
    assert_eq!(svmgr.len(), 1, "{:?}", sb.ps());
    sb.exec_ok(&["kill", "-9", &svmgr[0].to_string()]);

    sb.wait_log("svmgr exited (", TIMEOUT);
    sb.wait_log("restarting in ", TIMEOUT);
    assert!(sb.log().contains("dynamod-init:"), "{}", sb.log());
    let list = wait_for("dynamodctl list to answer again", TIMEOUT, || {
        let out = sb.exec(&["dynamodctl", "list", "--json"]);
        out.status.success().then(|| list(&sb))
    });
    let new_svmgr = live(&sb, "dynamod-svmgr");
    assert_eq!(new_svmgr.len(), 1, "{:?}", sb.ps());
    assert_ne!(new_svmgr[0], svmgr[0]);
    // The running services were adopted, not duplicated or restarted.
    assert_eq!(pid_of(&list, "syslog"), Some(syslogd), "{list:?}");
    assert_eq!(live(&sb, "syslogd"), vec![i32::try_from(syslogd).unwrap()]);
}
