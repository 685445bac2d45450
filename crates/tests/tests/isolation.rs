//! What a service sees from inside: namespaces, mounts, fds, signal state — asserted by the
//! probe fixture, not assumed.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::HashMap;
use std::time::Duration;

use dynamod_tests::svmgr::Svmgr;

const T: Duration = Duration::from_secs(30);
const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

/// The fixture, copied where a private `/tmp` cannot hide it (the build tree may itself live
/// under `/tmp`, as in a CI checkout).
fn fixture_path() -> String {
    static COPY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = if root() {
            std::path::PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        }
        .join(format!("dynamod-test-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join("fixture");
        std::fs::copy(FIXTURE, &dst).unwrap();
        FixtureDir(dir.clone()).leak();
        dst.display().to_string()
    })
    .clone()
}

/// Removes the fixture copy when the test process exits.
struct FixtureDir(std::path::PathBuf);

impl FixtureDir {
    fn leak(self) {
        let dir = self.0.clone();
        std::mem::forget(self);
        extern "C" fn cleanup() {
            if let Some(d) = CLEANUP.get() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        let _ = CLEANUP.set(dir);
        let _ = atexit(cleanup);
    }
}

static CLEANUP: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

fn atexit(f: extern "C" fn()) -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: registers a plain extern "C" function with no arguments, as atexit(3) requires.
    unsafe {
        libc::atexit(f)
    }
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs one probe service with `extra` TOML appended and returns what it printed.
fn probe(tag: &str, extra: &str, writes: &[&str]) -> (Svmgr, HashMap<String, String>) {
    let mut args = vec![format!("\"{}\"", fixture_path()), "\"probe\"".to_owned()];
    args.extend(writes.iter().map(|w| format!("\"{w}\"")));
    let body = format!(
        "[service]\nname = \"probe\"\nexec = [{}]\n{extra}\n",
        args.join(", ")
    );
    let s = Svmgr::start(tag, &[("services/probe.toml", &body)]);
    s.wait_log("[probe] probe-end", T);
    let map = s
        .log()
        .iter()
        .filter_map(|l| l.strip_prefix("[probe] "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (s, map)
}

fn own_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn plain_service_gets_only_stdio_an_empty_mask_and_an_explicit_environment() {
    let (_s, p) = probe("hygiene", "", &[]);
    let fds: Vec<&str> = p["fds"].split(' ').collect();
    // 0: /dev/null, 1 and 2: the log pipes, and the fd of the probe's own read_dir.
    let names: Vec<&str> = fds.iter().map(|f| f.split(':').next().unwrap()).collect();
    assert_eq!(&names[..3], &["0", "1", "2"], "{fds:?}");
    assert!(fds[0].ends_with("/dev/null"));
    assert!(fds[1].contains("pipe:") && fds[2].contains("pipe:"));
    assert!(fds.len() <= 4, "no stray fds: {fds:?}");
    assert_eq!(p["sigblk"], "0000000000000000");
    assert_eq!(p["env"], "HOME,LOGNAME,PATH,USER");
}

#[test]
fn service_starts_with_default_signal_dispositions() {
    // A shell reports the state it inherited (a Rust program would ignore SIGPIPE itself).
    let body = "[service]\nname = \"sh\"\ntype = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \"grep -E '^Sig(Blk|Ign)' /proc/self/status\"]\n[restart]\npolicy = \"temporary\"\n";
    let s = Svmgr::start("dispositions", &[("services/sh.toml", body)]);
    s.wait_log("oneshot 'sh' completed", T);
    let log = s.log().join("\n");
    assert!(log.contains("[sh] SigBlk:\t0000000000000000"), "{log}");
    assert!(log.contains("[sh] SigIgn:\t0000000000000000"), "{log}");
}

#[test]
fn readiness_fd_and_notify_socket_are_the_only_extras() {
    let (_s, p) = probe(
        "hygiene-ready",
        "type = \"notify\"\n[readiness]\ntimeout = \"60s\"",
        &[],
    );
    assert!(p["env"].contains("NOTIFY_SOCKET"));
    let fds: Vec<&str> = p["fds"].split(' ').collect();
    assert!(fds.len() <= 4, "notify needs no inherited fd: {fds:?}");
    let (_s, p) = probe(
        "hygiene-fd",
        "[readiness]\ntype = \"fd\"\ntimeout = \"60s\"",
        &[],
    );
    let fds: Vec<&str> = p["fds"].split(' ').collect();
    assert!(fds.iter().any(|f| f.starts_with("3:pipe:")), "{fds:?}");
    assert!(fds.len() <= 5, "{fds:?}");
    assert!(p["env"].contains("DYNAMOD_READY_FD"));
}

#[test]
fn pid_namespace_makes_the_service_pid_1_with_its_own_proc() {
    if !root() {
        return;
    }
    let (_s, p) = probe("pidns", "[namespace]\nenable = [\"pid\"]", &[]);
    assert_eq!(p["pid"], "1");
    assert_ne!(p["ns.pid"], own_ns("pid"));
    assert_eq!(p["proc_count"], "1", "its /proc shows only itself");
}

#[test]
fn private_tmp_is_private_and_invisible_to_the_host() {
    if !root() {
        return;
    }
    let marker = format!("/tmp/dynamod-private-{}", std::process::id());
    let (_s, p) = probe("privtmp", "[namespace]\nprivate-tmp = true", &[&marker]);
    assert_eq!(p[&format!("write:{marker}")], "ok");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the host must not see it"
    );
    assert_ne!(p["ns.mnt"], own_ns("mnt"));
}

#[test]
fn protect_system_strict_makes_usr_and_etc_read_only_but_tmp_writable() {
    if !root() {
        return;
    }
    let (_s, p) = probe(
        "strict",
        "[namespace]\nprotect-system = \"strict\"\nprivate-tmp = true",
        &["/usr/dynamod-probe", "/etc/dynamod-probe", "/tmp/ok"],
    );
    assert_eq!(p["write:/usr/dynamod-probe"], "EROFS");
    assert_eq!(p["write:/etc/dynamod-probe"], "EROFS");
    assert_eq!(p["write:/tmp/ok"], "ok");
    assert!(!std::path::Path::new("/etc/dynamod-probe").exists());
}

#[test]
fn protect_system_full_protects_usr_and_etc() {
    if !root() {
        return;
    }
    let (_s, p) = probe(
        "full",
        "[namespace]\nprotect-system = \"full\"",
        &["/usr/dynamod-probe", "/etc/dynamod-probe"],
    );
    assert_eq!(p["write:/usr/dynamod-probe"], "EROFS");
    assert_eq!(p["write:/etc/dynamod-probe"], "EROFS");
}

#[test]
fn writable_and_read_only_bind_mounts() {
    if !root() {
        return;
    }
    let data = dynamod_tests::TempDir::new("bind-rw");
    let ro = dynamod_tests::TempDir::new("bind-ro");
    let extra = format!(
        "[namespace]\nprivate-tmp = true\nbind-mounts = [{{ source = \"{}\", target = \"/tmp/data\", writable = true }}, {{ source = \"{}\", target = \"/tmp/ro\" }}]",
        data.path().display(),
        ro.path().display()
    );
    let (_s, p) = probe("binds", &extra, &["/tmp/data/written", "/tmp/ro/written"]);
    assert_eq!(p["write:/tmp/data/written"], "ok");
    assert_eq!(p["write:/tmp/ro/written"], "EROFS");
    assert_eq!(
        std::fs::read(data.path().join("written")).unwrap(),
        b"probe"
    );
    assert!(!ro.path().join("written").exists());
}

#[test]
fn missing_bind_target_is_refused_with_a_clear_message_and_never_created() {
    if !root() {
        return;
    }
    let target = format!("/var/dynamod-no-such-{}", std::process::id());
    let body = format!(
        "[service]\nname = \"b\"\nexec = [\"sleep\", \"3900\"]\n[restart]\npolicy = \"temporary\"\n[namespace]\nbind-mounts = [{{ source = \"/etc\", target = \"{target}\" }}]\n"
    );
    let s = Svmgr::start("bind-missing", &[("services/b.toml", &body)]);
    s.wait_log("never creates it on the host", T);
    assert!(!std::path::Path::new(&target).exists());
}

#[test]
fn net_namespace_has_only_loopback_and_it_is_up() {
    if !root() {
        return;
    }
    let (_s, p) = probe("netns", "[namespace]\nenable = [\"net\"]", &[]);
    assert_eq!(p["ifaces"], "lo");
    assert_eq!(p["lo_up"], "true");
    assert_ne!(p["ns.net"], own_ns("net"));
}

#[test]
fn uts_ipc_and_cgroup_namespaces_are_new() {
    if !root() {
        return;
    }
    let (_s, p) = probe(
        "misc-ns",
        "[namespace]\nenable = [\"uts\", \"ipc\", \"cgroup\"]",
        &[],
    );
    for ns in ["uts", "ipc", "cgroup"] {
        assert_ne!(p[&format!("ns.{ns}")], own_ns(ns), "{ns}");
    }
}

#[test]
fn user_namespace_maps_root_inside_to_nobody_outside() {
    if !root() {
        return;
    }
    let (s, p) = probe("userns", "[namespace]\nenable = [\"user\"]", &[]);
    assert!(p["uid"].starts_with("0\t0"), "root inside: {}", p["uid"]);
    assert_ne!(p["ns.user"], own_ns("user"));
    // Seen from outside, the process runs as nobody.
    let pid = match s.request(&dynamod_proto::Request::Status {
        names: vec!["probe".into()],
    }) {
        dynamod_proto::Response::Status(v) => v[0].summary.pid.unwrap(),
        other => panic!("{other:?}"),
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains("65534"), "{uid}");
}
