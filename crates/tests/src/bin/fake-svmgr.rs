//! A stand-in for `dynamod-svmgr` that speaks init's protocol and misbehaves on request, so the
//! integration tests can drive `dynamod-init` through crashes, hangs, orphans and shutdowns.
//!
//! It is configured by environment variables, which `dynamod-init` passes on because they start
//! with `DYNAMOD_`:
//!
//! | variable | effect |
//! |---|---|
//! | `DYNAMOD_FAKE_RECORD` | file to append what it sees and receives to (one fact per line) |
//! | `DYNAMOD_FAKE_MISBEHAVE` | only the first N instances misbehave (default: all) |
//! | `DYNAMOD_FAKE_CRASH_AFTER_MS` | SIGKILL itself after this long |
//! | `DYNAMOD_FAKE_HANG_AFTER_MS` | SIGSTOP itself after this long (stops heartbeating) |
//! | `DYNAMOD_FAKE_ORPHANS` | once connected, leave this many orphans that exit together |
//! | `DYNAMOD_FAKE_ORPHANS_THEN_CRASH` | …then SIGKILL itself; they exit once it is reaped |
//! | `DYNAMOD_FAKE_SLEEPER` | start a child that exits on SIGTERM |
//! | `DYNAMOD_FAKE_STUBBORN` | start a child that ignores SIGTERM |
//! | `DYNAMOD_FAKE_REQUEST_SHUTDOWN_MS` | send `RequestShutdown{poweroff}` after this long |
//! | `DYNAMOD_FAKE_EXIT_CODE` | the `exit_code` of that request |
//! | `DYNAMOD_FAKE_IGNORE_SHUTDOWN` | never answer `Shutdown` (an svmgr stuck stopping services) |
//!
//! Record lines: `start pid=P instance=N`, `sigblk=HEX`, `sigign=HEX` (SIGPIPE is always
//! ignored there: Rust's runtime does it before `main`), `fds=0,1,2,3`,
//! `env K=V`, `hello version=V peer=NAME`, `recv MSG`, `child pid=P kind=K`,
//! `orphan-spawned pid=P code=C`,
//! `orphan pid=P status=exited:C|signaled:S`.
//!
//! Helper modes (argv\[1\]): `orphan-maker N RECORD WATCH_PID` and
//! `orphan-child DEADLINE_MS CODE WATCH_PID` (WATCH_PID 0: exit at the deadline; otherwise exit
//! once that process has been reaped).

// A test helper: failing loudly on a broken set-up is what it should do, and the processes it
// starts are meant to outlive it (init reaps them).
#![allow(
    clippy::disallowed_methods,
    clippy::expect_used,
    clippy::zombie_processes
)]

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamod_proto::{ExitStatus, FrameDecoder, Hello, InitMsg, ShutdownKind, SvmgrMsg};
use nix::sys::signal::{Signal, raise};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn record(path: Option<&Path>, line: &str) {
    if let Some(p) = path
        && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `fds=...` without the directory fd used to list them.
fn open_fds() -> String {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    // The listing's own fd points at the fd directory itself.
                    std::fs::read_link(e.path())
                        .map(|t| !t.to_string_lossy().ends_with("/fd"))
                        .unwrap_or(false)
                })
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        })
        .unwrap_or_default()
}

fn ignores_sigterm(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

fn orphan_maker(n: u32, rec: &Path, watch: &str) {
    let me = std::env::current_exe().expect("own path");
    // Every orphan exits at the same moment, so their SIGCHLDs coalesce at init.
    let deadline = unix_ms() + 700;
    for i in 0..n {
        let code = 126 + (i % 3);
        let child = std::process::Command::new(&me)
            .args([
                "orphan-child",
                &deadline.to_string(),
                &code.to_string(),
                watch,
            ])
            .spawn()
            .expect("spawn orphan");
        record(
            Some(rec),
            &format!("orphan-spawned pid={} code={code}", child.id()),
        );
    }
    // Exit without waiting: the children are re-parented to init.
}

/// Whether `pid` has been reaped. A zombie leader is not enough: its other threads may still
/// be exiting with the socket open.
fn is_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn orphan_child(deadline: u64, code: i32, watch: u32) -> ! {
    if watch != 0 {
        while !is_gone(watch) {
            std::thread::sleep(Duration::from_millis(10));
        }
    } else {
        let now = unix_ms();
        if deadline > now {
            std::thread::sleep(Duration::from_millis(deadline - now));
        }
    }
    std::process::exit(code)
}

fn send(w: &Mutex<UnixStream>, msg: &SvmgrMsg) {
    let frame = dynamod_proto::encode(msg).expect("encode");
    if let Ok(mut s) = w.lock() {
        let _ = s.write_all(&frame);
    }
}

fn after(ms: u64, f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        f();
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("orphan-maker") => {
            orphan_maker(
                args[2].parse().expect("count"),
                Path::new(&args[3]),
                &args[4],
            );
            return;
        }
        Some("orphan-child") => orphan_child(
            args[2].parse().expect("deadline"),
            args[3].parse().expect("code"),
            args[4].parse().expect("watch pid"),
        ),
        _ => {}
    }

    // What init gave us, before this process opens anything itself.
    let fds = open_fds();
    let sigblk = status_field("SigBlk:");
    let sigign = status_field("SigIgn:");

    let rec: Option<PathBuf> = std::env::var_os("DYNAMOD_FAKE_RECORD").map(PathBuf::from);
    let rec = rec.as_deref();
    let instance = rec
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().filter(|l| l.starts_with("start ")).count() as u64)
        .unwrap_or(0)
        + 1;
    record(
        rec,
        &format!("start pid={} instance={instance}", std::process::id()),
    );
    record(rec, &format!("sigblk={sigblk}"));
    record(rec, &format!("sigign={sigign}"));
    record(rec, &format!("fds={fds}"));
    for k in [
        "DYNAMOD_INIT_FD",
        "DYNAMOD_HEARTBEAT_MS",
        "DYNAMOD_CONTAINER",
        "PATH",
        "HOME",
    ] {
        if let Ok(v) = std::env::var(k) {
            record(rec, &format!("env {k}={v}"));
        }
    }

    let fd: i32 = std::env::var("DYNAMOD_INIT_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("DYNAMOD_INIT_FD");
    let sock = UnixStream::from(dynamod_sys::fd::take_inherited(fd).expect("init fd"));
    let writer = Arc::new(Mutex::new(sock.try_clone().expect("clone socket")));
    let mut reader = sock;
    let period = env_u64("DYNAMOD_HEARTBEAT_MS").unwrap_or(5000);
    let misbehave = env_u64("DYNAMOD_FAKE_MISBEHAVE").is_none_or(|n| instance <= n);

    send(&writer, &SvmgrMsg::Hello(Hello::new("fake-svmgr")));
    {
        let w = Arc::clone(&writer);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(period));
                send(&w, &SvmgrMsg::Heartbeat);
            }
        });
    }
    if misbehave {
        if let Some(ms) = env_u64("DYNAMOD_FAKE_CRASH_AFTER_MS") {
            after(ms, || {
                let _ = raise(Signal::SIGKILL);
            });
        }
        if let Some(ms) = env_u64("DYNAMOD_FAKE_HANG_AFTER_MS") {
            after(ms, || {
                let _ = raise(Signal::SIGSTOP);
            });
        }
    }
    // Held, never waited for: when this process dies they are re-parented to init.
    let mut children = Vec::new();
    if std::env::var_os("DYNAMOD_FAKE_SLEEPER").is_some() {
        let c = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("sleeper");
        record(rec, &format!("child pid={} kind=sleeper", c.id()));
        children.push(c);
    }
    if std::env::var_os("DYNAMOD_FAKE_STUBBORN").is_some() {
        let c = std::process::Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; exec sleep 1000"])
            .spawn()
            .expect("stubborn child");
        // Announce it only once SIGTERM is really ignored (bit 15 of SigIgn), so a test cannot
        // signal it before the shell ran `trap`.
        while !ignores_sigterm(c.id()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        record(rec, &format!("child pid={} kind=stubborn", c.id()));
        children.push(c);
    }
    if let Some(ms) = env_u64("DYNAMOD_FAKE_REQUEST_SHUTDOWN_MS") {
        let w = Arc::clone(&writer);
        let exit_code = env_u64("DYNAMOD_FAKE_EXIT_CODE").map(|c| c as i32);
        after(ms, move || {
            send(
                &w,
                &SvmgrMsg::RequestShutdown {
                    kind: ShutdownKind::Poweroff,
                    exit_code,
                },
            );
        });
    }

    let _children = children;
    let mut dec = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    let mut greeted = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => {
                record(rec, "eof");
                break;
            }
            Ok(n) => n,
        };
        dec.push(&buf[..n]);
        while let Ok(Some(msg)) = dec.next::<InitMsg>() {
            match msg {
                InitMsg::Hello(h) => {
                    record(rec, &format!("hello version={} peer={}", h.version, h.peer));
                    if !greeted {
                        greeted = true;
                        if let (Some(n), Some(r)) = (env_u64("DYNAMOD_FAKE_ORPHANS"), rec) {
                            let then_crash = misbehave
                                && std::env::var_os("DYNAMOD_FAKE_ORPHANS_THEN_CRASH").is_some();
                            let watch = if then_crash { std::process::id() } else { 0 };
                            let me = std::env::current_exe().expect("own path");
                            let _ = std::process::Command::new(me)
                                .args(["orphan-maker", &n.to_string()])
                                .arg(r)
                                .arg(watch.to_string())
                                .status();
                            if then_crash {
                                let _ = raise(Signal::SIGKILL);
                            }
                        }
                    }
                }
                InitMsg::Heartbeat => {
                    record(rec, "recv Heartbeat");
                    send(&writer, &SvmgrMsg::HeartbeatAck);
                }
                InitMsg::HeartbeatAck | InitMsg::Parked { .. } => {}
                InitMsg::Shutdown { kind } => {
                    // The children are left running on purpose: they stand for processes
                    // svmgr does not know about, which init's own SIGTERM/SIGKILL must end.
                    record(rec, &format!("recv Shutdown {}", kind.as_str()));
                    if std::env::var_os("DYNAMOD_FAKE_IGNORE_SHUTDOWN").is_none() {
                        send(&writer, &SvmgrMsg::ShutdownComplete);
                    }
                }
                InitMsg::Reload => record(rec, "recv Reload"),
                InitMsg::OrphanExited { pid, status } => {
                    let s = match status {
                        ExitStatus::Exited(c) => format!("exited:{c}"),
                        ExitStatus::Signaled(s) => format!("signaled:{s}"),
                    };
                    record(rec, &format!("orphan pid={pid} status={s}"));
                }
            }
        }
    }
}
