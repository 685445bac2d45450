//! dynamodctl against a real dynamod-svmgr: every command, the JSON schemas, access control,
//! many clients at once, offline checks, the graph and the boot analysis.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamod_proto::{Request, Response, ServiceState};
use dynamod_tests::sandbox::{BOOT_TIMEOUT, Sandbox};
use dynamod_tests::svmgr::{Svmgr, unsafe_kill};
use dynamod_tests::{TempDir, bin, wait_for, workspace_root};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

fn service(name: &str, body: &str) -> (String, String) {
    (
        format!("services/{name}.toml"),
        format!("[service]\nname = \"{name}\"\n{body}\n"),
    )
}

fn start(tag: &str, files: &[(String, String)]) -> Svmgr {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Svmgr::start(tag, &refs)
}

/// prep (a oneshot) → db (notify, ready after a moment) → web: a chain worth analysing.
fn chain_files() -> Vec<(String, String)> {
    vec![
        service(
            "prep",
            "type = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \"sleep 0.2; echo prepared\"]\n\
             [restart]\npolicy = \"temporary\"",
        ),
        service(
            "db",
            &format!(
                "type = \"notify\"\nexec = [\"{FIXTURE}\", \"notify\", \"READY=1\", \"300\"]\n\
                 [dependencies]\nrequires = [\"prep\"]"
            ),
        ),
        service(
            "web",
            "exec = [\"sleep\", \"3700\"]\n[dependencies]\nrequires = [\"db\"]",
        ),
        service(
            "cache",
            "exec = [\"sleep\", \"3701\"]\n[dependencies]\nbefore = [\"web\"]",
        ),
    ]
}

fn ctl_cmd(socket: &Path) -> Command {
    let mut c = Command::new(bin("dynamodctl"));
    c.arg("--socket")
        .arg(socket)
        .env_remove("DYNAMOD_SOCKET")
        .env_remove("DYNAMOD_LOGD_SOCKET")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    c
}

fn ctl(socket: &Path, args: &[&str]) -> Output {
    ctl_cmd(socket).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The object's keys, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[track_caller]
fn assert_keys(v: &Value, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(keys(v), want, "{v:#}");
}

const SERVICE_KEYS: [&str; 6] = ["name", "state", "pid", "supervisor", "type", "reason"];

fn wait_ready(s: &Svmgr, name: &str) {
    wait_for(&format!("{name} ready"), T, || {
        match s.request(&Request::Status {
            names: vec![name.into()],
        }) {
            Response::Status(d)
                if matches!(
                    d[0].summary.state,
                    ServiceState::Running | ServiceState::Done
                ) =>
            {
                Some(())
            }
            _ => None,
        }
    });
}

#[test]
fn read_commands_print_text_and_json_of_the_documented_shape() {
    let s = start("ctl-read", &chain_files());
    s.wait_log("startup complete", T);
    let sock = s.socket();

    let list = ok(&ctl(&sock, &["list"]));
    assert!(list.starts_with("SERVICE  STATE"), "{list}");
    assert!(list.contains("4 services: 3 running, 1 done"), "{list}");
    let v = json(&ctl(&sock, &["list", "--json"]));
    assert_keys(&v, &["services"]);
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache", "db", "prep", "web"]);
    for svc in v["services"].as_array().unwrap() {
        assert_keys(svc, &SERVICE_KEYS);
    }

    let tree = ok(&ctl(&sock, &["tree"]));
    assert!(tree.starts_with("root [one-for-one]\n"), "{tree}");
    let v = json(&ctl(&sock, &["tree", "--json"]));
    assert_keys(&v, &["kind", "name", "strategy", "state", "children"]);
    assert_keys(&v["children"][0], &["kind", "name", "state", "pid"]);

    let status = ok(&ctl(&sock, &["status", "prep", "web"]));
    assert!(status.contains("● prep: done"), "{status}");
    assert!(status.contains("    prepared"), "recent output: {status}");
    assert!(status.contains("exited 0 at "), "{status}");
    assert!(
        status.contains("Dependencies: requires db; after cache"),
        "{status}"
    );
    let v = json(&ctl(&sock, &["status", "--json", "web", "prep"]));
    assert_keys(&v, &["services"]);
    let web = &v["services"][0];
    let mut detail_keys: Vec<&str> = SERVICE_KEYS.to_vec();
    detail_keys.extend([
        "file",
        "exec",
        "restart",
        "readiness",
        "since_ms",
        "since_unix_ms",
        "last_exit",
        "dependencies",
        "cgroup",
        "usage",
        "recent_logs",
        "log_dropped",
        "spawned_ms",
        "ready_ms",
    ]);
    assert_keys(web, &detail_keys);
    assert_eq!(web["name"], "web");
    assert_keys(&web["restart"], &["policy", "count", "next_in_ms"]);
    assert_keys(&web["dependencies"], &["requires", "wants", "after"]);
    assert_eq!(web["dependencies"]["after"], serde_json::json!(["cache"]));
    let prep = &v["services"][1];
    assert_keys(
        &prep["last_exit"],
        &[
            "how",
            "code",
            "signal",
            "signal_name",
            "shell_code",
            "at_unix_ms",
        ],
    );
    assert_eq!(prep["last_exit"]["code"], 0);

    let health = ok(&ctl(&sock, &["is-healthy"]));
    assert!(health.starts_with("healthy: 4 services"), "{health}");
    let v = json(&ctl(&sock, &["is-healthy", "--json"]));
    assert_keys(
        &v,
        &[
            "healthy",
            "reason",
            "state",
            "startup_complete",
            "uptime_ms",
            "counts",
        ],
    );

    let out = ctl(&sock, &["status", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn changing_commands_report_what_svmgr_did() {
    let s = start("ctl-change", &chain_files());
    s.wait_log("startup complete", T);
    let sock = s.socket();
    assert_eq!(ok(&ctl(&sock, &["stop", "cache"])), "cache stopped\n");
    assert_eq!(ok(&ctl(&sock, &["start", "cache"])), "cache running\n");
    let v = json(&ctl(&sock, &["restart", "--json", "cache"]));
    assert_keys(&v, &["message"]);
    assert_eq!(v["message"], "cache running");
    let reload = ok(&ctl(&sock, &["reload"]));
    assert!(reload.starts_with("reloaded: 0 added"), "{reload}");
    let out = ctl(&sock, &["start", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    // svmgr may exit before its answer is read; dynamodctl takes that as success too.
    let down = ok(&ctl(&sock, &["shutdown", "poweroff"]));
    assert!(
        down == "poweroff initiated\n"
            || down == "poweroff in progress (svmgr closed the connection)\n",
        "{down}"
    );
}

#[test]
fn is_healthy_fails_while_a_service_is_failed() {
    let s = start(
        "ctl-unhealthy",
        &[service(
            "bad",
            "exec = [\"/bin/sh\", \"-c\", \"exit 3\"]\n[restart]\npolicy = \"transient\"\n\
             max-restarts = 1\ndelay = \"50ms\"",
        )],
    );
    // A simple service is up at once, so start-up completes before it fails for good.
    wait_for("bad to fail", T, || {
        match s.request(&Request::Status {
            names: vec!["bad".into()],
        }) {
            Response::Status(d) if d[0].summary.state == ServiceState::Failed => Some(()),
            _ => None,
        }
    });
    let out = ctl(&s.socket(), &["is-healthy"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "unhealthy: 1 service failed\n");
}

#[test]
fn wait_returns_once_services_are_ready_and_fails_fast_on_a_failure() {
    let s = start(
        "ctl-wait",
        &[
            service(
                "slow",
                &format!(
                    "type = \"notify\"\nexec = [\"{FIXTURE}\", \"notify\", \"READY=1\", \"700\"]"
                ),
            ),
            service(
                "doomed",
                "exec = [\"/bin/sh\", \"-c\", \"sleep 0.3; exit 1\"]\n[restart]\n\
                 policy = \"temporary\"",
            ),
            service("idle", "exec = [\"sleep\", \"3702\"]"),
        ],
    );
    let sock = s.socket();
    // Starting at once: the wait must cover the notify delay.
    let out = ok(&ctl(&sock, &["--timeout", "60s", "wait", "slow", "idle"]));
    assert_eq!(out, "slow running\nidle running\n");

    let out = ctl(&sock, &["--timeout", "60s", "wait", "doomed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dynamodctl: wait doomed: doomed is "),
        "{}",
        stderr(&out)
    );

    let v = json(&ctl(&sock, &["--timeout", "60s", "wait", "--json"]));
    assert_keys(&v, &["ok", "waited_ms", "reason", "services", "state"]);
    assert_eq!(v["ok"], true);

    ok(&ctl(&sock, &["stop", "idle"]));
    let out = ctl(&sock, &["--timeout", "300ms", "wait", "idle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("timed out after") && stderr(&out).contains("idle (stopped)"),
        "{}",
        stderr(&out)
    );
    let v = json(&ctl(
        &sock,
        &["--timeout", "300ms", "wait", "--json", "idle"],
    ));
    assert_eq!(v["ok"], false);
    assert_eq!(v["services"][0]["state"], "stopped");

    assert_eq!(ctl(&sock, &["wait", "nope"]).status.code(), Some(4));
}

#[test]
fn wait_outlasts_an_svmgr_that_is_not_up_yet() {
    let dir = TempDir::new("ctl-wait-early");
    let out = ctl(
        &dir.path().join("missing.sock"),
        &["--timeout", "300ms", "wait"],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn non_root_can_read_but_not_change() {
    let s = start(
        "ctl-nonroot",
        &[service("d", "exec = [\"sleep\", \"3703\"]")],
    );
    s.wait_log("startup complete", T);
    let as_nobody = |args: &[&str]| {
        // setpriv drops to nobody with no supplementary groups before dynamodctl runs.
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin("dynamodctl"))
            .arg("--socket")
            .arg(s.socket())
            .args(args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    };
    let list = as_nobody(&["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert!(stdout(&list).contains("d  "), "{}", stdout(&list));
    let status = as_nobody(&["status", "d"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let stop = as_nobody(&["stop", "d"]);
    assert_eq!(stop.status.code(), Some(3), "{}", stderr(&stop));
    assert_eq!(
        stderr(&stop),
        "dynamodctl: stop d: permission denied: only root may change services\n"
    );
    assert_eq!(as_nobody(&["reload"]).status.code(), Some(3));
    assert_eq!(as_nobody(&["shutdown", "halt"]).status.code(), Some(3));
    // Still running.
    assert!(ok(&ctl(&s.socket(), &["status", "d"])).contains("d: running"));
}

/// svmgr started here (not through the shared harness) to pass `--control-group`.
struct GroupSvmgr {
    dir: TempDir,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl GroupSvmgr {
    fn start(group: &str) -> Self {
        let dir = TempDir::new("ctl-group");
        for sub in ["services", "supervisors", "run", "etc"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("services/d.toml"),
            "[service]\nname = \"d\"\nexec = [\"sleep\", \"3704\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\noperators:x:4242:\n",
        )
        .unwrap();
        let d = dir.path();
        let mut child = Command::new(bin("dynamod-svmgr"))
            .arg("--services")
            .arg(d.join("services"))
            .arg("--supervisors")
            .arg(d.join("supervisors"))
            .arg("--runtime-dir")
            .arg(d.join("run"))
            .arg("--etc")
            .arg(d.join("etc"))
            .args(["--cgroup-root", "none", "--control-group", group])
            .env("NO_COLOR", "1")
            .env_remove("DYNAMOD_INIT_FD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let me = Self { dir, child, log };
        wait_for("startup", T, || {
            me.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("startup complete"))
                .then_some(())
        });
        me
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }
}

impl Drop for GroupSvmgr {
    fn drop(&mut self) {
        unsafe_kill(self.child.id() as i32, libc::SIGTERM);
        let _ = wait_for_exit(&mut self.child, Duration::from_secs(15));
    }
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

#[test]
fn the_control_group_may_change_things_like_root() {
    let s = GroupSvmgr::start("operators");
    let run = |groups: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534"])
            .arg(groups)
            .arg("--")
            .arg(bin("dynamodctl"))
            .arg("--socket")
            .arg(s.socket())
            .args(args)
            .output()
            .unwrap()
    };
    // A supplementary member may stop and start.
    let out = run("--groups=4242", &["stop", "d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "d stopped\n");
    let out = run("--groups=4242", &["start", "d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A primary-group member too.
    let primary = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=4242", "--clear-groups", "--"])
        .arg(bin("dynamodctl"))
        .arg("--socket")
        .arg(s.socket())
        .args(["restart", "d"])
        .output()
        .unwrap();
    assert_eq!(primary.status.code(), Some(0), "{}", stderr(&primary));
    // Anyone else may not, and is told who may.
    let out = run("--clear-groups", &["stop", "d"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "dynamodctl: stop d: permission denied: only root and members of group 'operators' \
         may change services\n"
    );
}

#[test]
fn a_hundred_status_clients_a_silent_one_and_a_flood_all_get_answers_during_a_crash_loop() {
    let s = start(
        "ctl-many",
        &[
            // Its own supervisor tolerates the loop (root would give up after 10 restarts).
            (
                "supervisors/loop.toml".to_owned(),
                "[supervisor]\nname = \"loop\"\n[restart]\nmax-restarts = 1000000\n\
                 max-restart-window = \"1s\"\n"
                    .to_owned(),
            ),
            service(
                "crasher",
                "supervisor = \"loop\"\nexec = [\"/bin/sh\", \"-c\", \"exit 1\"]\n\
                 [restart]\ndelay = \"10ms\"\nmax-delay = \"20ms\"\nmax-restarts = 100000\n\
                 max-restart-window = \"1s\"",
            ),
            service("steady", "exec = [\"sleep\", \"3705\"]"),
        ],
    );
    s.wait_log("startup complete", T);
    let restarts = || match s.request(&Request::Status {
        names: vec!["crasher".into()],
    }) {
        Response::Status(d) => d[0].restarts,
        other => panic!("{other:?}"),
    };
    let before = restarts();
    // One client connects and never writes; another announces a frame over the limit.
    let silent = UnixStream::connect(s.socket()).unwrap();
    let mut flood = UnixStream::connect(s.socket()).unwrap();
    let mut header = b"DM".to_vec();
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    flood.write_all(&header).unwrap();
    let children: Vec<Child> = (0..100)
        .map(|_| {
            ctl_cmd(&s.socket())
                .args(["status", "crasher", "steady"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = ok(&out);
        assert!(text.contains("● crasher: "), "{text}");
        assert!(text.contains("● steady: running"), "{text}");
    }
    // The oversized frame was refused, not buffered: svmgr answered and closed.
    flood
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = flood.read_to_end(&mut buf);
    assert!(!buf.is_empty(), "an error frame before the hang-up");
    wait_for("the crash loop to go on", T, || {
        (restarts() > before).then_some(())
    });
    drop(silent);
}

fn check_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new("ctl-check");
    for sub in ["services", "supervisors"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for (path, text) in files {
        std::fs::write(dir.path().join(path), text).unwrap();
    }
    dir
}

/// `dynamodctl check .` run inside the directory, so the snapshots hold relative paths.
fn check_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("dynamodctl"))
        .current_dir(dir)
        .arg("check")
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

#[test]
fn check_reports_broken_files_like_a_compiler() {
    let dir = check_dir(&[
        (
            "services/typo.toml",
            "[service]\nname = \"typo\"\nexce = [\"/bin/true\"]\n",
        ),
        (
            "services/badtype.toml",
            "[service]\nname = \"badtype\"\nexec = \"/bin/true\"\ntype = \"daemon\"\n",
        ),
        (
            "services/a.toml",
            "[service]\nname = \"a\"\nexec = [\"/bin/a\"]\n[dependencies]\nrequires = [\"b\"]\n",
        ),
        (
            "services/b.toml",
            "[service]\nname = \"b\"\nexec = [\"/bin/b\"]\n[dependencies]\nafter = [\"a\"]\n",
        ),
        ("services/syntax.toml", "[service\nname = \"syntax\"\n"),
        (
            "services/named.toml",
            "[service]\nname = \"other\"\nexec = [\"/bin/x\"]\n",
        ),
        (
            "supervisors/s.toml",
            "[supervisor]\nname = \"s\"\nstrategy = \"one-for-none\"\n",
        ),
    ]);
    let out = check_in(dir.path(), &["."]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "\
./supervisors/s.toml:3:12: error: invalid value `one-for-none` for `supervisor.strategy`: expected one of `one-for-one`, `one-for-all`, `rest-for-one`; did you mean `one-for-one`?
./services/a.toml:5:13: error: dependency cycle: a -> b -> a
./services/b.toml:5:10: error: dependency cycle: b -> a -> b
./services/badtype.toml:3:8: error: `service.exec` must be an array of strings such as [\"/usr/bin/foo\", \"--bar\"], found a string
./services/badtype.toml:4:8: error: invalid value `daemon` for `service.type`: expected one of `simple`, `oneshot`, `forking`, `notify`
./services/named.toml:2:8: warning: name `other` does not match the file name `named.toml`
./services/syntax.toml:1:9: error: invalid TOML: unclosed table, expected `]`
./services/typo.toml:1:1: error: missing required key `exec` in [service]
./services/typo.toml:3:1: error: unknown key `exce` in [service]; did you mean `exec`?
checked 6 services (5 invalid) and 1 supervisor: 8 errors, 1 warning
"
    );
    let v = json(&check_in(dir.path(), &[".", "--json"]));
    assert_keys(
        &v,
        &[
            "ok",
            "services",
            "invalid_services",
            "supervisors",
            "errors",
            "warnings",
            "diagnostics",
        ],
    );
    assert_eq!(
        (v["ok"].clone(), v["errors"].clone()),
        (false.into(), 8.into())
    );
    assert_keys(
        &v["diagnostics"][0],
        &["file", "line", "col", "severity", "message"],
    );
}

#[test]
fn check_names_unknown_references_and_supervisor_cycles() {
    let dir = check_dir(&[
        (
            "services/web.toml",
            "[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n[dependencies]\n\
             requires = [\"database\"]\nwants = [\"cache\"]\nafter = [\"zzz\"]\n",
        ),
        (
            "services/job.toml",
            "[service]\nname = \"job\"\nexec = [\"/bin/job\"]\nsupervisor = \"nosuch\"\n",
        ),
        (
            "supervisors/a.toml",
            "[supervisor]\nname = \"a\"\nparent = \"b\"\n",
        ),
        (
            "supervisors/b.toml",
            "[supervisor]\nname = \"b\"\nparent = \"a\"\n",
        ),
    ]);
    let out = check_in(dir.path(), &["."]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "\
./supervisors/a.toml:3:10: error: supervisor parent cycle: a -> b -> a
./supervisors/b.toml:3:10: error: supervisor parent cycle: b -> a -> b
./services/job.toml:4:14: error: unknown supervisor `nosuch`
./services/web.toml:5:13: error: requires unknown service `database`
./services/web.toml:6:10: warning: wants unknown service `cache`
./services/web.toml:7:10: warning: ordered after unknown service `zzz`
checked 2 services (1 invalid) and 1 supervisor: 4 errors, 2 warnings
"
    );
    // Warnings alone do not fail a deployment.
    let warn_only = check_dir(&[(
        "services/web.toml",
        "[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n[dependencies]\nwants = [\"cache\"]\n",
    )]);
    let out = check_in(warn_only.path(), &["."]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn check_passes_on_the_shipped_configurations() {
    let root = workspace_root();
    let out = Command::new(bin("dynamodctl"))
        .arg("check")
        .arg(root.join("config"))
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.ends_with(": no problems\n"), "{text}");
    let out = Command::new(bin("dynamodctl"))
        .arg("check")
        .arg("--services")
        .arg(root.join("docker/services"))
        .arg("--supervisors")
        .arg(root.join("config/supervisors"))
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.starts_with("checked 8 services and 3 supervisors"),
        "{text}"
    );
}

/// Graphviz's `dot`, installed from Debian's packages when missing.
fn dot() -> &'static str {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let have = Command::new("dot").arg("-V").output().is_ok();
        if !have {
            let out = Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "graphviz"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .expect("run apt-get");
            assert!(
                out.status.success(),
                "apt-get install graphviz failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    "dot"
}

fn dot_accepts(text: &str) -> String {
    let mut child = Command::new(dot())
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "dot refused the graph: {}\n{text}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn graph_dot_is_accepted_by_graphviz_from_svmgr_and_from_a_directory() {
    let s = start("ctl-graph", &chain_files());
    s.wait_log("startup complete", T);
    let text = ok(&ctl(&s.socket(), &["graph"]));
    assert!(
        text.contains("\"web\" -> \"db\" [label=\"requires\", style=solid];"),
        "{text}"
    );
    assert!(
        text.contains("\"web\" -> \"cache\" [label=\"after\", style=dotted];"),
        "{text}"
    );
    assert!(text.contains("label=\"web\\nrunning\""), "{text}");
    let svg = dot_accepts(&text);
    assert!(svg.contains("<svg"), "{svg}");
    assert_eq!(ok(&ctl(&s.socket(), &["graph", "--dot"])), text);

    let v = json(&ctl(&s.socket(), &["graph", "--json"]));
    assert_keys(&v, &["source", "config_dir", "nodes", "edges"]);
    assert_eq!(v["source"], "svmgr");
    assert_keys(
        &v["nodes"][0],
        &["name", "supervisor", "type", "state", "missing"],
    );
    assert_keys(&v["edges"][0], &["from", "to", "kind"]);

    // From the files: the same edges, no states; svmgr is not asked.
    let offline = ctl(
        Path::new("/nonexistent/control.sock"),
        &["graph", "--config", s.dir.path().to_str().unwrap()],
    );
    let text = ok(&offline);
    assert!(
        text.contains("\"web\" -> \"db\" [label=\"requires\", style=solid];"),
        "{text}"
    );
    assert!(
        text.contains("\"web\" -> \"cache\" [label=\"after\", style=dotted];"),
        "{text}"
    );
    dot_accepts(&text);
    dot_accepts(&ok(&Command::new(bin("dynamodctl"))
        .args(["graph", "--config"])
        .arg(workspace_root().join("config"))
        .output()
        .unwrap()));
}

#[test]
fn analyze_names_the_critical_chain_and_draws_it() {
    let s = start("ctl-analyze", &chain_files());
    s.wait_log("startup complete", T);
    wait_ready(&s, "web");
    let svg = s.path("boot.svg");
    let text = ok(&ctl(
        &s.socket(),
        &["analyze", "--svg", svg.to_str().unwrap()],
    ));
    assert!(text.contains("start-up complete"), "{text}");
    let chain = text
        .split("critical chain (ends at web, ready at ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let names: Vec<&str> = chain
        .lines()
        .skip(1)
        .map(|l| {
            l.trim_start()
                .trim_start_matches("└─ ")
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["web", "db", "prep"], "{text}");
    let image = std::fs::read_to_string(&svg).unwrap();
    assert!(image.starts_with("<svg"), "{image}");
    for n in ["prep", "db", "web", "cache"] {
        assert!(image.contains(&format!(">{n}</text>")), "{n}: {image}");
    }

    let v = json(&ctl(&s.socket(), &["analyze", "--json"]));
    assert_keys(
        &v,
        &[
            "started_unix_ms",
            "uptime_ms",
            "startup_complete",
            "last_ready_ms",
            "services",
            "critical_chain",
        ],
    );
    assert_keys(
        &v["services"][0],
        &["name", "state", "type", "spawned_ms", "ready_ms"],
    );
    let chain: Vec<&str> = v["critical_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["web", "db", "prep"]);
    // The chain's links are ordered in time: each dependency was ready before its dependent
    // was spawned.
    let link = |i: usize, k: &str| v["critical_chain"][i][k].as_u64().unwrap();
    assert!(link(1, "ready_ms") <= link(0, "spawned_ms"));
    assert!(link(2, "ready_ms") <= link(1, "spawned_ms"));

    let out = ctl(&s.socket(), &["analyze", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn analyze_on_the_sandbox_boot_names_the_critical_chain() {
    let sb = Sandbox::start();
    sb.wait_log("startup complete", BOOT_TIMEOUT);
    let text = sb.ctl(&["analyze"]);
    assert!(text.contains("critical chain (ends at "), "{text}");
    let v: Value = serde_json::from_str(&sb.ctl(&["analyze", "--json"])).unwrap();
    let services: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let chain = v["critical_chain"].as_array().unwrap();
    assert!(!chain.is_empty(), "{v:#}");
    for link in chain {
        assert!(services.contains(&link["name"].as_str().unwrap()), "{v:#}");
    }
}

#[test]
fn generate_writes_man_pages_and_completions_for_the_install_step() {
    let dir = TempDir::new("ctl-generate");
    let out = Command::new(bin("dynamodctl"))
        .arg("generate")
        .arg(dir.path())
        .output()
        .unwrap();
    let listed = ok(&out);
    for rel in [
        "share/man/man1/dynamodctl.1",
        "share/man/man1/dynamodctl-logs.1",
        "share/bash-completion/completions/dynamodctl",
        "share/zsh/site-functions/_dynamodctl",
        "share/fish/vendor_completions.d/dynamodctl.fish",
    ] {
        let p = dir.path().join(rel);
        assert!(p.is_file(), "{rel} missing; listed:\n{listed}");
        assert!(listed.contains(p.to_str().unwrap()), "{listed}");
    }
    let bash = Command::new("bash")
        .arg("-n")
        .arg(
            dir.path()
                .join("share/bash-completion/completions/dynamodctl"),
        )
        .output()
        .unwrap();
    assert!(bash.status.success(), "{}", stderr(&bash));
    let page = std::fs::read_to_string(dir.path().join("share/man/man1/dynamodctl.1")).unwrap();
    assert!(page.contains("EXIT STATUS"), "{page}");
}
