//! The real `dynamod-logd` binary against a test that plays svmgr on a temporary socket.

#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dynamod_logd::format::parse_line;
use dynamod_proto::{FrameDecoder, Hello, LogMsg, LogRecord, PROTOCOL_VERSION, Stream};
use dynamod_sys::nix::sys::signal::{Signal, kill};
use dynamod_sys::nix::unistd::Pid;

/// Generous: the machine is shared and slow at times; nothing waits this long when it works.
const PATIENCE: Duration = Duration::from_secs(60);

struct Env {
    root: PathBuf,
}

impl Env {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("dynamod-logd-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    fn socket(&self) -> PathBuf {
        self.root.join("log.sock")
    }

    fn dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn listen(&self) -> UnixListener {
        let l = UnixListener::bind(self.socket()).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    }

    fn logd(&self, extra: &[&str]) -> Logd {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("stderr"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dynamod-logd"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--dir")
            .arg(self.dir())
            .args(extra)
            .env_remove("DYNAMOD_LOG_SOCKET")
            .env_remove("DYNAMOD_LOG_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Logd { child: Some(child) }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.root.join("stderr")).unwrap_or_default()
    }

    /// Every stored line of `service`, oldest first, across rotated files.
    fn lines(&self, service: &str) -> Vec<(u64, Vec<u8>, bool)> {
        let base = self.dir().join(format!("{service}.log"));
        let mut files: Vec<PathBuf> = (1..100)
            .map(|n| PathBuf::from(format!("{}.{n}", base.display())))
            .filter(|p| p.exists())
            .collect();
        files.reverse();
        files.push(base);
        let mut out = Vec::new();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_default();
            assert!(
                data.is_empty() || data.ends_with(b"\n"),
                "{} ends mid-line",
                f.display()
            );
            for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let l = parse_line(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
                out.push((l.seq, l.text, l.partial));
            }
        }
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The child, killed on drop so a failing test leaves nothing behind.
struct Logd {
    child: Option<Child>,
}

impl Logd {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    fn sigkill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        let mut c = self.child.take().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "logd ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Logd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The svmgr side of one connection.
struct Conn {
    stream: UnixStream,
    decoder: FrameDecoder,
    acked: u64,
    sent_max: u64,
}

impl Conn {
    fn accept(listener: &UnixListener) -> Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    return Self {
                        stream,
                        decoder: FrameDecoder::new(),
                        acked: 0,
                        sent_max: 0,
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "logd never connected");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    fn recv(&mut self) -> Option<LogMsg> {
        let mut buf = [0; 4096];
        loop {
            if let Some(m) = self.decoder.next::<LogMsg>().unwrap() {
                return Some(m);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                // Linux reports a peer that died with unread data as a reset, after the data.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) => panic!("read from logd: {e}"),
            }
        }
    }

    fn handshake(listener: &UnixListener) -> Self {
        let mut c = Self::accept(listener);
        match c.recv() {
            Some(LogMsg::Hello(h)) => {
                assert_eq!(h.peer, "dynamod-logd");
                assert_eq!(h.version, PROTOCOL_VERSION);
            }
            other => panic!("expected hello, got {other:?}"),
        }
        c.send(&LogMsg::Hello(Hello::new("dynamod-svmgr")));
        c
    }

    fn send(&mut self, msg: &LogMsg) {
        if let LogMsg::Records(recs) = msg {
            self.sent_max = recs.iter().map(|r| r.seq).fold(self.sent_max, u64::max);
        }
        self.stream
            .write_all(&dynamod_proto::encode(msg).unwrap())
            .unwrap();
    }

    fn wait_ack(&mut self, seq: u64) {
        while self.acked < seq {
            match self.recv() {
                Some(LogMsg::Ack { seq: a }) => {
                    assert!(a > self.acked, "acks must grow: {a} after {}", self.acked);
                    assert!(a <= self.sent_max, "ack {a} beyond what was sent");
                    self.acked = a;
                }
                other => panic!(
                    "expected ack up to {seq}, got {other:?} after {}",
                    self.acked
                ),
            }
        }
    }
}

fn record(seq: u64, service: &str, text: &[u8]) -> LogRecord {
    LogRecord {
        seq,
        service: service.into(),
        pid: 4242,
        stream: if seq.is_multiple_of(2) {
            Stream::Out
        } else {
            Stream::Err
        },
        time_us: 1_796_401_288_000_000 + seq,
        line: text.to_vec(),
        partial: false,
    }
}

#[test]
fn records_land_in_per_service_files_and_are_acked() {
    let env = Env::new();
    let listener = env.listen();
    let mut logd = env.logd(&[]);
    let mut conn = Conn::handshake(&listener);
    let mut partial = record(3, "web", b"no newline yet");
    partial.partial = true;
    conn.send(&LogMsg::Records(vec![
        record(1, "web", b"GET / 200"),
        record(2, "db", b"bin\x00\xff\r\x1b[31mred\\"),
        partial,
    ]));
    conn.wait_ack(3);
    assert_eq!(
        env.lines("web"),
        [
            (1, b"GET / 200".to_vec(), false),
            (3, b"no newline yet".to_vec(), true)
        ]
    );
    assert_eq!(
        env.lines("db"),
        [(2, b"bin\x00\xff\r\x1b[31mred\\".to_vec(), false)]
    );
    let raw = std::fs::read_to_string(env.dir().join("web.log")).unwrap();
    assert!(
        raw.starts_with("2026-12-04T16:21:28.000001Z err 4242 1 GET / 200\n"),
        "{raw}"
    );
    let st = logd.terminate();
    assert_eq!(st.code(), Some(0), "stderr: {}", env.stderr());
}

#[test]
fn sigkill_mid_stream_then_resend_stores_every_line_exactly_once_in_order() {
    let env = Env::new();
    let listener = env.listen();
    let args = ["--max-size", "8K", "--max-files", "90"];
    let services = ["alpha", "beta", "gamma"];
    let total = 3_000u64;
    let all: Vec<LogRecord> = (1..=total)
        .map(|s| {
            let svc = services[(s * 7 % 3) as usize];
            record(
                s,
                svc,
                format!("{svc} line {s} {}", "x".repeat((s % 17) as usize)).as_bytes(),
            )
        })
        .collect();

    // First life: send the first half without waiting, take one ack, then kill logd while it is
    // still busy with the rest.
    let mut logd = env.logd(&args);
    let mut conn = Conn::handshake(&listener);
    for chunk in all[..1_500].chunks(25) {
        conn.send(&LogMsg::Records(chunk.to_vec()));
    }
    conn.wait_ack(1);
    logd.sigkill();
    // Drain what logd acknowledged before it died: svmgr keeps everything after that.
    while let Some(msg) = conn.recv() {
        if let LogMsg::Ack { seq } = msg {
            conn.acked = seq;
        }
    }
    let acked = conn.acked;

    // Second life: svmgr re-sends everything unacknowledged, then the rest.
    let mut logd = env.logd(&args);
    let mut conn = Conn::handshake(&listener);
    for chunk in all[acked as usize..].chunks(40) {
        conn.send(&LogMsg::Records(chunk.to_vec()));
    }
    conn.wait_ack(total);

    for svc in services {
        let want: Vec<(u64, Vec<u8>, bool)> = all
            .iter()
            .filter(|r| r.service == svc)
            .map(|r| (r.seq, r.line.clone(), false))
            .collect();
        let got = env.lines(svc);
        assert_eq!(
            got.len(),
            want.len(),
            "{svc}: acked {acked} before the kill"
        );
        assert_eq!(got, want, "{svc}");
    }
    assert!(
        env.dir().join("alpha.log.1").exists(),
        "rotation was exercised"
    );
    assert_eq!(logd.terminate().code(), Some(0));
}

#[test]
fn waits_for_a_missing_socket_and_reconnects_when_svmgr_restarts() {
    let env = Env::new();
    let mut logd = env.logd(&[]);
    // Nobody listens yet: logd retries with backoff.
    std::thread::sleep(Duration::from_millis(200));
    let listener = env.listen();
    let mut conn = Conn::handshake(&listener);
    conn.send(&LogMsg::Records(vec![record(1, "svc", b"before")]));
    conn.wait_ack(1);
    drop(conn); // svmgr "restarts": the connection closes
    let mut conn = Conn::handshake(&listener);
    conn.send(&LogMsg::Records(vec![
        record(1, "svc", b"before"),
        record(2, "svc", b"after"),
    ]));
    conn.wait_ack(2);
    assert_eq!(
        env.lines("svc"),
        [
            (1, b"before".to_vec(), false),
            (2, b"after".to_vec(), false)
        ]
    );
    assert!(
        env.stderr().contains("waiting for svmgr"),
        "{}",
        env.stderr()
    );
    assert_eq!(logd.terminate().code(), Some(0));
}

#[test]
fn a_peer_with_another_protocol_version_is_refused() {
    let env = Env::new();
    let listener = env.listen();
    let mut logd = env.logd(&[]);
    let mut conn = Conn::accept(&listener);
    assert!(matches!(conn.recv(), Some(LogMsg::Hello(_))));
    conn.send(&LogMsg::Hello(Hello {
        version: PROTOCOL_VERSION + 1,
        peer: "future".into(),
    }));
    assert_eq!(conn.recv(), None, "logd must hang up");
    let mut text = String::new();
    let deadline = Instant::now() + PATIENCE;
    while !text.contains("protocol version") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        text = env.stderr();
    }
    assert!(text.contains("protocol version"), "{text}");
    assert_eq!(logd.terminate().code(), Some(0));
}

#[test]
fn sigterm_while_waiting_for_svmgr_exits_zero() {
    let env = Env::new();
    let mut logd = env.logd(&[]);
    let deadline = Instant::now() + PATIENCE;
    while !env.stderr().contains("waiting for svmgr") {
        assert!(
            Instant::now() < deadline,
            "no waiting notice: {}",
            env.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(logd.terminate().code(), Some(0));
    assert!(
        !Path::new(&env.dir()).exists(),
        "nothing written without records"
    );
}

#[test]
fn bad_command_line_exits_2_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_dynamod-logd"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("dynamod-logd: unknown option `--bogus`"),
        "{err}"
    );
    assert!(err.contains("usage:"), "{err}");
}

#[test]
fn many_services_interleaved_keep_their_own_order() {
    let env = Env::new();
    let listener = env.listen();
    let mut logd = env.logd(&[]);
    let mut conn = Conn::handshake(&listener);
    let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let recs: Vec<LogRecord> = (1..=500)
        .map(|s| {
            let svc = format!("svc{}", s % 13);
            want.entry(svc.clone()).or_default().push(s);
            record(s, &svc, b"x")
        })
        .collect();
    conn.send(&LogMsg::Records(recs));
    conn.wait_ack(500);
    for (svc, seqs) in want {
        let got: Vec<u64> = env.lines(&svc).into_iter().map(|l| l.0).collect();
        assert_eq!(got, seqs, "{svc}");
    }
    assert_eq!(logd.terminate().code(), Some(0));
}
