//! Logs that lose nothing: a real svmgr with a real dynamod-logd as one of its services, and
//! `dynamodctl logs` reading them back.
//!
//! Each test writes its own configuration: logd's paths point into the test's temporary
//! directory (`{DIR}` in the service texts below), so svmgr is started here rather than through
//! the shared harness.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamod_proto::{Request, Response, ServiceDetail, ServiceState};
use dynamod_tests::svmgr::{request, unsafe_kill};
use dynamod_tests::{TempDir, bin, wait_for};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// svmgr with logd as a service, in a directory of its own.
struct Rig {
    dir: TempDir,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

/// logd's service file: quick restarts, files and sockets in the test directory.
fn logd_service(extra: &str) -> String {
    format!(
        "[service]\nname = \"dynamod-logd\"\nexec = [\"{}\", \"--socket\", \"{{DIR}}/run/log.sock\", \
         \"--dir\", \"{{DIR}}/logs\", \"--config-dir\", \"{{DIR}}\"]\n\
         [restart]\ndelay = \"100ms\"\nmax-delay = \"200ms\"\nmax-restarts = 1000\n{extra}\n",
        bin("dynamod-logd").display()
    )
}

impl Rig {
    fn start(tag: &str, services: &[(&str, String)]) -> Self {
        let dir = TempDir::new(tag);
        let d = dir.path().to_path_buf();
        for sub in ["services", "supervisors", "run", "logs"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for (name, text) in services {
            let text = text.replace("{DIR}", d.to_str().unwrap());
            std::fs::write(d.join(format!("services/{name}.toml")), text).unwrap();
        }
        let mut child = Command::new(bin("dynamod-svmgr"))
            .arg("--services")
            .arg(d.join("services"))
            .arg("--supervisors")
            .arg(d.join("supervisors"))
            .arg("--runtime-dir")
            .arg(d.join("run"))
            .args(["--cgroup-root", "none"])
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
                if std::env::var_os("DYNAMOD_TEST_VERBOSE").is_some() {
                    eprintln!("svmgr| {line}");
                }
                l2.lock().unwrap().push(line);
            }
        });
        let rig = Self {
            dir,
            child: Some(child),
            log,
        };
        rig.wait_log("dynamod-logd connected");
        rig
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn socket(&self) -> PathBuf {
        self.path("run/control.sock")
    }

    fn wait_log(&self, needle: &str) {
        wait_for(&format!("svmgr log line with {needle:?}"), T, || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
                .then_some(())
        });
    }

    fn console(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn status(&self, name: &str) -> ServiceDetail {
        match request(
            &self.socket(),
            &Request::Status {
                names: vec![name.into()],
            },
        )
        .unwrap()
        {
            Response::Status(mut d) => d.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn wait_state(&self, name: &str, want: ServiceState) -> ServiceDetail {
        wait_for(&format!("{name} {want:?}"), T, || {
            let d = self.status(name);
            assert_ne!(
                d.summary.state,
                ServiceState::Invalid,
                "{:?}",
                d.summary.reason
            );
            (d.summary.state == want).then_some(d)
        })
    }

    /// logd's PID once it runs with a PID other than `not`.
    fn logd_pid(&self, not: Option<i32>) -> i32 {
        wait_for("dynamod-logd running", T, || {
            let d = self.status("dynamod-logd");
            d.summary
                .pid
                .filter(|&p| d.summary.state == ServiceState::Running && Some(p) != not && alive(p))
        })
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("dynamodctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env_remove("DYNAMOD_LOGD_SOCKET")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "dynamodctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `logs --json` records, parsed.
    fn json_logs(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["logs", "--json"];
        all.extend_from_slice(args);
        self.ctl_ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill(c.id() as i32, libc::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z'))
}

/// `<dir>/<service>.log` and its rotations, oldest first.
fn log_files(dir: &Path, service: &str) -> Vec<PathBuf> {
    let current = dir.join(format!("{service}.log"));
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| dir.join(format!("{service}.log.{n}")))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if current.exists() {
        files.push(current);
    }
    files
}

/// The text field of every stored line of `service`, oldest first.
fn stored_texts(dir: &Path, service: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in log_files(dir, service) {
        let data = std::fs::read_to_string(&f).unwrap_or_default();
        for line in data.lines() {
            // <timestamp> <stream> <pid> <seq> <text>
            if let Some(text) = line.splitn(5, ' ').nth(4) {
                out.push(text.to_owned());
            }
        }
    }
    out
}

#[test]
fn sigkill_of_logd_during_full_speed_output_loses_and_duplicates_nothing() {
    const BURST: u64 = 30_000;
    const BURSTS: u64 = 5;
    // Each burst waits for its go-file, which the test creates right after killing logd.
    let writer = format!(
        "[service]\nname = \"writer\"\nexec = [\"/bin/sh\", \"-c\", \"for k in 1 2 3 4 5; do \
         while [ ! -e {{DIR}}/go-$k ]; do sleep 0.05; done; \
         seq $(( (k - 1) * {BURST} + 1 )) $(( k * {BURST} )); done\"]\n\
         [restart]\npolicy = \"temporary\"\n"
    );
    let rig = Rig::start(
        "logs-sigkill",
        &[("dynamod-logd", logd_service("")), ("writer", writer)],
    );
    let mut last = None;
    for k in 1..=BURSTS {
        let pid = rig.logd_pid(last);
        unsafe_kill(pid, libc::SIGKILL);
        last = Some(pid);
        std::fs::write(rig.path(&format!("go-{k}")), b"").unwrap();
    }
    let total = BURST * BURSTS;
    rig.wait_state("writer", ServiceState::Stopped);
    let logs = rig.path("logs");
    let texts = wait_for("every line stored", T, || {
        let t = stored_texts(&logs, "writer");
        (t.len() as u64 >= total && t.last().map(String::as_str) == Some(&total.to_string()))
            .then_some(t)
    });
    let want: Vec<String> = (1..=total).map(|n| n.to_string()).collect();
    assert!(
        texts == want,
        "{} lines stored, first difference at {:?}",
        texts.len(),
        { texts.iter().zip(&want).position(|(a, b)| a != b) }
    );
    assert_eq!(rig.status("writer").log_dropped, 0);
    assert_eq!(
        rig.ctl_ok(&["logs", "writer", "-n", "1"])
            .split(": ")
            .last()
            .unwrap(),
        format!("{total}\n")
    );
}

#[test]
fn a_service_writing_100_mb_while_logd_is_stopped_keeps_running_and_drops_are_counted() {
    let line = "x".repeat(99);
    let writer = format!(
        "[service]\nname = \"flood\"\ntype = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \
         \"while [ ! -e {{DIR}}/go ]; do sleep 0.05; done; yes {line} | head -c 104857600\"]\n\
         [restart]\npolicy = \"temporary\"\n[readiness]\ntimeout = \"10m\"\n"
    );
    let rig = Rig::start(
        "logs-flood",
        &[("dynamod-logd", logd_service("")), ("flood", writer)],
    );
    let logd = rig.logd_pid(None);
    unsafe_kill(logd, libc::SIGSTOP);
    std::fs::write(rig.path("go"), b"").unwrap();
    // A oneshot is done when it exits 0: it was never blocked for good on its output.
    let d = rig.wait_state("flood", ServiceState::Done);
    unsafe_kill(logd, libc::SIGCONT);
    assert!(d.log_dropped > 0, "{d:?}");
    let text = rig.ctl_ok(&["status", "flood"]);
    assert!(
        text.contains("lines dropped: the log buffer overflowed"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&rig.ctl_ok(&["status", "--json", "flood"])).unwrap();
    assert_eq!(v["services"][0]["log_dropped"], d.log_dropped);
    // What was kept reaches the file once logd runs again: the newest lines, in order.
    let logs = rig.path("logs");
    wait_for("the newest lines stored", T, || {
        let n = stored_texts(&logs, "flood").len();
        (n > 0).then_some(())
    });
}

#[test]
fn follow_keeps_going_across_rotations() {
    let talker = "[service]\nname = \"talker\"\nexec = [\"/bin/sh\", \"-c\", \
                  \"i=0; while :; do i=$((i+1)); echo n$i; sleep 0.01; done\"]\n\
                  [log]\nmax-size = \"4K\"\nmax-files = 3\n"
        .to_owned();
    let rig = Rig::start(
        "logs-follow",
        &[("dynamod-logd", logd_service("")), ("talker", talker)],
    );
    let mut child = Command::new(bin("dynamodctl"))
        .arg("--socket")
        .arg(rig.socket())
        .args(["logs", "-f", "talker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let s2 = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(n) = line
                .rsplit_once(": n")
                .and_then(|(_, n)| n.parse::<u64>().ok())
            {
                s2.lock().unwrap().push(n);
            }
        }
    });
    let first = wait_for("the first followed line", T, || {
        seen.lock().unwrap().first().copied()
    });
    // Three rotations after the follow began: the files turned over while it ran.
    let logs = rig.path("logs");
    let files_at_start = log_files(&logs, "talker").len();
    wait_for("rotations", T, || {
        let stored = stored_texts(&logs, "talker");
        let oldest = stored
            .first()
            .and_then(|t| t.trim_start_matches('n').parse::<u64>().ok());
        (oldest.is_some_and(|o| o > first) && log_files(&logs, "talker").len() >= 3).then_some(())
    });
    let target = first + 400;
    wait_for("the follow to reach past the rotations", T, || {
        seen.lock()
            .unwrap()
            .last()
            .is_some_and(|&n| n >= target)
            .then_some(())
    });
    unsafe_kill(child.id() as i32, libc::SIGTERM);
    let _ = child.wait();
    reader.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let want: Vec<u64> = (first..first + seen.len() as u64).collect();
    assert_eq!(
        seen, want,
        "gaps or duplicates (files at start: {files_at_start})"
    );
    assert!(
        !log_files(&logs, "talker")
            .iter()
            .any(|p| p.ends_with("talker.log.4"))
    );
}

#[test]
fn since_and_n_select_lines_and_json_round_trips() {
    let stamps = "[service]\nname = \"stamps\"\nexec = [\"/bin/sh\", \"-c\", \
                  \"echo old-1; echo old-2; sleep 1; echo new-1; printf 'bin\\\\000\\\\377\\\\r\\\\n'; \
                  echo new-2 >&2; exec sleep 3600\"]\n"
        .to_owned();
    let rig = Rig::start(
        "logs-since",
        &[("dynamod-logd", logd_service("")), ("stamps", stamps)],
    );
    let all = wait_for("five lines", T, || {
        let v = rig.json_logs(&["stamps"]);
        (v.len() == 5).then_some(v)
    });
    for r in &all {
        let mut k: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        assert_eq!(
            k,
            [
                "hex", "partial", "pid", "seq", "service", "stream", "text", "time", "time_us"
            ]
        );
        assert_eq!(r["service"], "stamps");
    }
    let texts: Vec<&str> = all.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts[..2], ["old-1", "old-2"]);
    assert_eq!(texts[2], "new-1");
    assert_eq!(texts[4], "new-2");
    assert_eq!(all[4]["stream"], "err");
    // Binary bytes and the carriage return survive: text is lossy, hex is exact.
    assert_eq!(all[3]["hex"], "62696e00ff0d");
    assert_eq!(all[3]["text"], "bin\u{0}\u{fffd}\r");
    assert_eq!(all[0]["hex"], Value::Null);
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let since = all[2]["time"].as_str().unwrap();
    let newer: Vec<String> = rig
        .json_logs(&["stamps", "--since", since])
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(newer[0], "new-1");
    assert_eq!(newer.len(), 3);
    let last2: Vec<String> = rig
        .json_logs(&["stamps", "-n", "2"])
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(last2[1], "new-2");
    assert_eq!(last2.len(), 2);
    assert_eq!(rig.json_logs(&["stamps", "--since", "1h"]).len(), 5);
    assert_eq!(rig.json_logs(&["-n", "1"]).len(), 1);
    // Human output: one line per record, control bytes made visible.
    let text = rig.ctl_ok(&["logs", "stamps", "-n", "3"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].ends_with("] out: bin\\x00\u{fffd}\\x0d"), "{text}");
    assert!(lines[2].ends_with("] err: new-2"), "{text}");
    // Unknown names exit 4; a missing logd is unreachable (5).
    assert_eq!(rig.ctl(&["logs", "nope"]).status.code(), Some(4));
    let out = rig.ctl(&["logs", "stamps", "--log-socket", "/nonexistent/logd.sock"]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn output_printed_before_logd_started_is_in_its_log_afterwards() {
    let early = "[service]\nname = \"early\"\ntype = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \
                 \"echo before-logd; echo also-before >&2\"]\n[restart]\npolicy = \"temporary\"\n"
        .to_owned();
    // logd starts only once `early` is done.
    let rig = Rig::start(
        "logs-early",
        &[
            (
                "dynamod-logd",
                logd_service("[dependencies]\nrequires = [\"early\"]"),
            ),
            ("early", early),
        ],
    );
    let console = rig.console();
    let pos = |needle: &str| console.iter().position(|l| l.contains(needle));
    assert!(
        pos("[early] before-logd") < pos("dynamod-logd connected"),
        "printed on the console first: {console:#?}"
    );
    let logs = rig.path("logs");
    let texts = wait_for("early's lines stored", T, || {
        let t = stored_texts(&logs, "early");
        (t.len() == 2).then_some(t)
    });
    assert_eq!(texts, ["before-logd", "also-before"]);
    let shown = rig.ctl_ok(&["logs", "early"]);
    assert!(shown.contains("early["), "{shown}");
    assert!(shown.contains("] out: before-logd\n"), "{shown}");
    assert!(shown.contains("] err: also-before\n"), "{shown}");
}

#[test]
fn long_and_unterminated_lines_are_stored_whole() {
    let writer = "[service]\nname = \"long\"\ntype = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \
                  \"head -c 100000 /dev/zero | tr '\\\\000' a; printf tail-without-newline\"]\n\
                  [restart]\npolicy = \"temporary\"\n"
        .to_owned();
    let rig = Rig::start(
        "logs-long",
        &[("dynamod-logd", logd_service("")), ("long", writer)],
    );
    rig.wait_state("long", ServiceState::Done);
    let records = wait_for("the long line stored", T, || {
        let v = rig.json_logs(&["long"]);
        let total: usize = v.iter().map(|r| r["text"].as_str().unwrap().len()).sum();
        (total == 100_000 + "tail-without-newline".len()).then_some(v)
    });
    let joined: String = records
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, "a".repeat(100_000) + "tail-without-newline");
    // Cut at svmgr's 64 KiB line cap, and unterminated at the end: every piece is partial.
    assert!(records.len() >= 2, "{}", records.len());
    assert!(records.iter().all(|r| r["partial"] == true));
    let human = rig.ctl_ok(&["logs", "long", "-n", "1"]);
    assert!(human.trim_end().ends_with("[partial]"), "{human}");
}
