//! The real `dynamodctl` binary against a fake svmgr on a temporary socket: output, requests
//! sent, and exit statuses.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use dynamod_proto::{
    ErrorKind, FrameDecoder, Hello, NodeKind, PROTOCOL_VERSION, Request, Response, ServiceState,
    ServiceSummary, ShutdownKind, SystemState, TreeNode,
};

/// What the fake svmgr does with a request.
enum Reply {
    /// Answer it.
    Answer(Response),
    /// Hang up without answering.
    Close,
    /// Never answer; wait for the client to give up.
    Ignore,
}

struct FakeSvmgr {
    dir: PathBuf,
    requests: mpsc::Receiver<Request>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSvmgr {
    /// Serves one connection: hello (with `version`), then one request answered by `reply`.
    fn start(version: u16, reply: impl FnOnce(&Request) -> Reply + Send + 'static) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dynamodctl-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join("control.sock")).unwrap();
        let (tx, requests) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut dec = FrameDecoder::new();
            match read(&mut stream, &mut dec) {
                Some(Request::Hello(h)) => assert_eq!(h.peer, "dynamodctl"),
                other => panic!("expected hello, got {other:?}"),
            }
            let hello = Response::Hello(Hello {
                version,
                peer: "dynamod-svmgr".into(),
            });
            write(&mut stream, &hello);
            let Some(req) = read(&mut stream, &mut dec) else {
                return;
            };
            let reply = reply(&req);
            tx.send(req).unwrap();
            match reply {
                Reply::Answer(r) => write(&mut stream, &r),
                Reply::Close => {}
                Reply::Ignore => {
                    let mut sink = Vec::new();
                    let _ = stream.read_to_end(&mut sink);
                }
            }
        });
        Self {
            dir,
            requests,
            thread: Some(thread),
        }
    }

    fn answering(response: Response) -> Self {
        Self::start(PROTOCOL_VERSION, move |_| Reply::Answer(response))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    fn run(&self, args: &[&str]) -> Output {
        ctl()
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap()
    }

    /// The request the server got (after the client finished).
    fn request(mut self) -> Request {
        self.thread.take().unwrap().join().unwrap();
        self.requests.try_recv().unwrap()
    }
}

impl Drop for FakeSvmgr {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(stream: &mut UnixStream, dec: &mut FrameDecoder) -> Option<Request> {
    let mut buf = [0; 4096];
    loop {
        if let Some(r) = dec.next::<Request>().unwrap() {
            return Some(r);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => dec.push(&buf[..n]),
        }
    }
}

fn write(stream: &mut UnixStream, r: &Response) {
    let _ = stream.write_all(&dynamod_proto::encode(r).unwrap());
}

fn ctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dynamodctl"));
    c.env_remove("DYNAMOD_SOCKET")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn summaries() -> Vec<ServiceSummary> {
    let s = |name: &str, state, pid, kind: &str| ServiceSummary {
        name: name.into(),
        state,
        pid,
        supervisor: "root".into(),
        kind: kind.into(),
        reason: None,
    };
    vec![
        s("syslog", ServiceState::Running, Some(12), "simple"),
        s("network", ServiceState::Done, None, "oneshot"),
    ]
}

#[test]
fn list_prints_a_plain_table_when_stdout_is_not_a_terminal() {
    let svmgr = FakeSvmgr::answering(Response::List(summaries()));
    let out = svmgr.run(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "\
SERVICE  STATE    PID  SUPERVISOR  TYPE
network  done     -    root        oneshot
syslog   running  12   root        simple

2 services: 1 running, 1 done
"
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(svmgr.request(), Request::List);
}

#[test]
fn list_json_has_the_documented_shape() {
    let svmgr = FakeSvmgr::answering(Response::List(summaries()));
    let out = svmgr.run(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"][0]["name"], "network");
    assert_eq!(v["services"][1]["pid"], 12);
    assert_eq!(v["services"][1]["type"], "simple");
}

#[test]
fn tree_is_drawn_from_the_root() {
    let tree = TreeNode {
        name: "root".into(),
        node: NodeKind::Supervisor {
            strategy: "one-for-one".into(),
            state: "running".into(),
        },
        children: vec![TreeNode {
            name: "syslog".into(),
            node: NodeKind::Service {
                state: ServiceState::Running,
                pid: Some(12),
            },
            children: vec![],
        }],
    };
    let svmgr = FakeSvmgr::answering(Response::Tree(tree));
    let out = svmgr.run(&["tree"]);
    assert_eq!(
        stdout(&out),
        "root [one-for-one]\n└─ syslog  running  pid 12\n"
    );
    assert_eq!(svmgr.request(), Request::Tree);
}

#[test]
fn unknown_service_exits_4_with_one_prefixed_line() {
    let svmgr = FakeSvmgr::answering(Response::Error {
        kind: ErrorKind::UnknownService,
        message: "no service named 'nope'".into(),
    });
    let out = svmgr.run(&["status", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        "dynamodctl: status nope: no service named 'nope'\n"
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(
        svmgr.request(),
        Request::Status {
            names: vec!["nope".into()]
        }
    );
}

#[test]
fn permission_denied_exits_3() {
    let svmgr = FakeSvmgr::answering(Response::Error {
        kind: ErrorKind::PermissionDenied,
        message: "only root may start services".into(),
    });
    let out = svmgr.run(&["start", "web"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "dynamodctl: start web: only root may start services\n"
    );
}

#[test]
fn a_failed_operation_exits_1() {
    let svmgr = FakeSvmgr::answering(Response::Error {
        kind: ErrorKind::Failed,
        message: "web failed to become ready: readiness timed out after 30s".into(),
    });
    let out = svmgr.run(&["restart", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dynamodctl: restart web: web failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn start_waits_by_default_and_prints_svmgr_message() {
    let svmgr = FakeSvmgr::answering(Response::Done {
        message: "web: running\ndb: running".into(),
    });
    let out = svmgr.run(&["start", "web", "db"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "web: running\ndb: running\n");
    assert_eq!(
        svmgr.request(),
        Request::Start {
            names: vec!["web".into(), "db".into()],
            no_block: false
        }
    );
}

#[test]
fn no_block_is_passed_to_svmgr() {
    let svmgr = FakeSvmgr::answering(Response::Done {
        message: "stopping web".into(),
    });
    let out = svmgr.run(&["stop", "--no-block", "web"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        svmgr.request(),
        Request::Stop {
            names: vec!["web".into()],
            no_block: true
        }
    );
}

#[test]
fn unreachable_svmgr_exits_5() {
    let dir = std::env::temp_dir().join(format!("dynamodctl-none-{}", std::process::id()));
    let out = ctl()
        .arg("--socket")
        .arg(dir.join("missing.sock"))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert!(
        err.starts_with("dynamodctl: cannot reach svmgr at "),
        "{err}"
    );
    assert!(
        err.contains("missing.sock: No such file or directory"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn the_socket_can_come_from_the_environment() {
    let svmgr = FakeSvmgr::answering(Response::List(vec![]));
    let out = ctl()
        .env("DYNAMOD_SOCKET", svmgr.socket())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0 services\n");
}

#[test]
fn another_protocol_version_is_a_clear_error() {
    let svmgr = FakeSvmgr::start(PROTOCOL_VERSION + 98, |_| Reply::Close);
    let out = svmgr.run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "dynamodctl: svmgr speaks protocol version {}, this dynamodctl speaks {}\n",
            PROTOCOL_VERSION + 98,
            PROTOCOL_VERSION
        )
    );
}

fn system(startup_complete: bool, failed: u32) -> Response {
    Response::SystemState(SystemState {
        state: if failed > 0 { "degraded" } else { "running" }.into(),
        startup_complete,
        counts: vec![(ServiceState::Running, 3), (ServiceState::Failed, failed)],
        uptime_ms: 61_000,
    })
}

#[test]
fn is_healthy_exits_0_when_started_and_nothing_failed() {
    let svmgr = FakeSvmgr::answering(system(true, 0));
    let out = svmgr.run(&["is-healthy"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "healthy: 3 services: 3 running; up 1min 1s\n");
    assert_eq!(svmgr.request(), Request::SystemState);
}

#[test]
fn is_healthy_exits_1_with_a_reason_when_a_service_failed() {
    let svmgr = FakeSvmgr::answering(system(true, 1));
    let out = svmgr.run(&["is-healthy"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "unhealthy: 1 service failed\n");
    assert_eq!(stderr(&out), "");
}

#[test]
fn is_healthy_json_reports_the_verdict() {
    let svmgr = FakeSvmgr::answering(system(false, 0));
    let out = svmgr.run(&["is-healthy", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["reason"], "start-up not complete (svmgr is running)");
}

#[test]
fn shutdown_accepts_a_hang_up_as_the_system_going_down() {
    let svmgr = FakeSvmgr::start(PROTOCOL_VERSION, |_| Reply::Close);
    let out = svmgr.run(&["shutdown", "reboot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "reboot in progress (svmgr closed the connection)\n"
    );
    assert_eq!(
        svmgr.request(),
        Request::Shutdown {
            kind: ShutdownKind::Reboot
        }
    );
}

#[test]
fn other_commands_treat_a_hang_up_as_a_failure() {
    let svmgr = FakeSvmgr::start(PROTOCOL_VERSION, |_| Reply::Close);
    let out = svmgr.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "dynamodctl: reload: svmgr closed the connection without answering\n"
    );
}

#[test]
fn timeout_gives_up_on_a_silent_svmgr() {
    let svmgr = FakeSvmgr::start(PROTOCOL_VERSION, |_| Reply::Ignore);
    let out = svmgr.run(&["--timeout", "300ms", "start", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dynamodctl: start web: no answer from svmgr within 300ms"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let out = ctl().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ctl().args(["shutdown", "sideways"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ctl().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("is-healthy"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let svmgr = FakeSvmgr::answering(Response::List(summaries()));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ctl()
        .arg("--socket")
        .arg(svmgr.socket())
        .arg("list")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn output_from_services_cannot_reach_the_terminal_raw() {
    let svmgr = FakeSvmgr::answering(Response::Done {
        message: "web: \x1b]0;pwned\x07ok".into(),
    });
    let out = svmgr.run(&["start", "web"]);
    assert_eq!(stdout(&out), "web: \\x1b]0;pwned\\x07ok\n");
}

/// Waits for `child` at most a minute, so a hang fails the test instead of stalling it.
fn finish(mut child: std::process::Child) -> Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dynamodctl hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_hello_and_the_request_go_out_before_svmgr_answers_the_hello() {
    let dir = std::env::temp_dir().join(format!("dynamodctl-pipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        // A client that waited for the hello before asking would send nothing more: give up
        // then instead of waiting forever.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut dec = FrameDecoder::new();
        let first = read(&mut stream, &mut dec);
        let second = read(&mut stream, &mut dec);
        write(&mut stream, &Response::Hello(Hello::new("dynamod-svmgr")));
        write(&mut stream, &Response::List(summaries()));
        (first, second)
    });
    let child = ctl()
        .arg("--socket")
        .arg(&socket)
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(child);
    let (first, second) = server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(first, Some(Request::Hello(_))), "{first:?}");
    assert_eq!(second, Some(Request::List));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("SERVICE  STATE"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_full_accept_queue_ends_in_no_answer_instead_of_a_hang() {
    use std::os::fd::AsRawFd;

    use dynamod_sys::nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
    };

    let dir = std::env::temp_dir().join(format!("dynamodctl-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("control.sock");
    // A listener that never accepts, with room for one pending connection, which is taken.
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(listener.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let _pending = UnixStream::connect(&path).unwrap();
    let child = ctl()
        .arg("--socket")
        .arg(&path)
        .args(["status", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(child);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "dynamodctl: svmgr at {} did not answer within 5s\n",
            path.display()
        )
    );
}
