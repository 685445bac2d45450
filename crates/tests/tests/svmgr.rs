//! dynamod-svmgr as a plain process: boot, operator commands, restarts, shutdown, bad files.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::time::Duration;

use dynamod_proto::{ErrorKind, NodeKind, Request, Response, ServiceState};
use dynamod_tests::svmgr::{
    pids_matching, service, start, status, unsafe_kill, wait_state, zombies_of,
};
use dynamod_tests::wait_for;

const T: Duration = Duration::from_secs(30);

#[test]
fn boot_prints_the_seed_log_and_runs_oneshots_before_dependents() {
    let s = start(
        "boot",
        &[
            service(
                "prep",
                "exec = [\"/bin/sh\", \"-c\", \"echo prepared\"]\ntype = \"oneshot\"\n[restart]\npolicy = \"temporary\"",
            ),
            service(
                "daemon",
                "exec = [\"sleep\", \"3600\"]\n[dependencies]\nrequires = [\"prep\"]",
            ),
        ],
    );
    s.wait_log("startup complete: 2 ready, 0 blocked", T);
    let log = s.log();
    let pos = |n: &str| log.iter().position(|l| l.contains(n)).unwrap_or(usize::MAX);
    assert!(pos("dynamod-svmgr starting") < pos("loaded 2 service definition(s)"));
    assert!(
        pos("loaded 1 supervisor definition(s)") < pos("starting services via dependency frontier")
    );
    assert!(pos("oneshot 'prep' completed (code 0)") < pos("startup complete"));
    // The oneshot's output reached the console before logd exists.
    assert!(pos("[prep] prepared") < usize::MAX, "{log:#?}");
    assert_eq!(status(&s, "daemon").summary.state, ServiceState::Running);
    assert_eq!(status(&s, "prep").summary.state, ServiceState::Done);
}

#[test]
fn stop_keeps_a_permanent_service_stopped_and_start_brings_it_back() {
    let s = start(
        "stopstart",
        &[service(
            "d",
            "exec = [\"sleep\", \"3601\"]\n[restart]\npolicy = \"permanent\"\ndelay = \"100ms\"",
        )],
    );
    let first = wait_state(&s, "d", ServiceState::Running)
        .summary
        .pid
        .unwrap();
    let r = s.request(&Request::Stop {
        names: vec!["d".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(status(&s, "d").summary.state, ServiceState::Stopped);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status(&s, "d").summary.state,
        ServiceState::Stopped,
        "a stop is not a crash"
    );
    assert!(pids_matching("sleep 3601").is_empty());
    let r = s.request(&Request::Start {
        names: vec!["d".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let second = status(&s, "d").summary.pid.unwrap();
    assert_ne!(first, second);
}

#[test]
fn restart_leaves_exactly_one_copy() {
    let s = start("restart", &[service("d", "exec = [\"sleep\", \"3602\"]")]);
    let first = wait_state(&s, "d", ServiceState::Running)
        .summary
        .pid
        .unwrap();
    let r = s.request(&Request::Restart {
        names: vec!["d".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    let d = status(&s, "d");
    assert_eq!(d.summary.state, ServiceState::Running);
    assert_ne!(d.summary.pid, Some(first));
    assert_eq!(pids_matching("sleep 3602"), vec![d.summary.pid.unwrap()]);
}

#[test]
fn starting_a_running_service_is_a_no_op() {
    let s = start("noop", &[service("d", "exec = [\"sleep\", \"3603\"]")]);
    let pid = wait_state(&s, "d", ServiceState::Running).summary.pid;
    let r = s.request(&Request::Start {
        names: vec!["d".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(status(&s, "d").summary.pid, pid);
}

#[test]
fn sigkill_is_followed_by_a_restart_after_the_delay() {
    let s = start(
        "crash",
        &[service(
            "d",
            "exec = [\"sleep\", \"3604\"]\n[restart]\ndelay = \"200ms\"",
        )],
    );
    let pid = wait_state(&s, "d", ServiceState::Running)
        .summary
        .pid
        .unwrap();
    unsafe_kill(pid, libc::SIGKILL);
    s.wait_log("service 'd' exited (signal 9)", T);
    s.wait_log("restarting 'd' in 200ms", T);
    let d = wait_for("a new pid", T, || {
        let d = status(&s, "d");
        (d.summary.state == ServiceState::Running && d.summary.pid != Some(pid)).then_some(d)
    });
    assert_eq!(d.restarts, 1);
    assert_eq!(
        d.last_exit.map(|e| e.status),
        Some(dynamod_proto::ExitStatus::Signaled(9))
    );
}

#[test]
fn double_forking_service_leaves_no_zombie() {
    let s = start(
        "dfork",
        &[service(
            "forker",
            "exec = [\"/bin/sh\", \"-c\", \"(sleep 0.2 &) ; (sh -c 'sleep 0.1' &); exec sleep 3605\"]",
        )],
    );
    wait_state(&s, "forker", ServiceState::Running);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        zombies_of(s.pid()).is_empty(),
        "zombies: {:?}",
        zombies_of(s.pid())
    );
}

#[test]
fn sigterm_stops_in_reverse_dependency_order_and_exits_zero() {
    let mut s = start(
        "shutdown",
        &[
            service("base", "exec = [\"sleep\", \"3606\"]"),
            service(
                "mid",
                "exec = [\"sleep\", \"3607\"]\n[dependencies]\nrequires = [\"base\"]",
            ),
            service(
                "top",
                "exec = [\"sleep\", \"3608\"]\n[dependencies]\nafter = [\"mid\"]",
            ),
        ],
    );
    s.wait_log("startup complete: 3 ready, 0 blocked", T);
    let st = s.terminate();
    assert!(st.success(), "{st:?}");
    let log = s.log();
    let pos = |n: &str| log.iter().position(|l| l.contains(n)).unwrap_or(usize::MAX);
    assert!(pos("stopping 'top'") < pos("stopping 'mid'"), "{log:#?}");
    assert!(pos("stopping 'mid'") < pos("stopping 'base'"), "{log:#?}");
    assert!(pos("all services stopped") < usize::MAX);
    for n in ["sleep 3606", "sleep 3607", "sleep 3608"] {
        assert!(pids_matching(n).is_empty(), "{n} still runs");
    }
}

#[test]
fn stop_timeout_escalates_to_sigkill() {
    let mut s = start(
        "stubborn",
        &[service(
            "stubborn",
            "exec = [\"/bin/sh\", \"-c\", \"trap '' TERM; echo trapped; while :; do sleep 0.1; done\"]\n[shutdown]\nstop-timeout = \"500ms\"",
        )],
    );
    s.wait_log("[stubborn] trapped", T);
    let st = s.terminate();
    assert!(st.success());
    assert!(
        s.count_log("did not stop in time; killing it") == 1,
        "{:#?}",
        s.log()
    );
}

#[test]
fn broken_files_are_reported_with_file_and_line_and_the_rest_boots() {
    let s = start(
        "broken",
        &[
            service("good", "exec = [\"sleep\", \"3609\"]"),
            service("typo", "exec = [\"sleep\", \"1\"]\nexce = 1"),
            service(
                "baddur",
                "exec = [\"sleep\", \"1\"]\n[restart]\ndelay = \"soon\"",
            ),
            (
                "services/noexec.toml".into(),
                "[service]\nname = \"noexec\"\n".into(),
            ),
        ],
    );
    s.wait_log("startup complete: 1 ready, 0 blocked, 3 invalid", T);
    let log = s.log().join("\n");
    assert!(log.contains("typo.toml:4:1: unknown key `exce`"), "{log}");
    assert!(log.contains("baddur.toml:5:9: invalid duration"), "{log}");
    assert!(log.contains("noexec.toml"), "{log}");
    let list = match s.request(&Request::List) {
        Response::List(l) => l,
        other => panic!("{other:?}"),
    };
    let state = |n: &str| list.iter().find(|e| e.name == n).map(|e| e.state);
    assert_eq!(state("good"), Some(ServiceState::Running));
    for n in ["typo", "baddur", "noexec"] {
        assert_eq!(state(n), Some(ServiceState::Invalid), "{n}: {list:?}");
    }
}

#[test]
fn unknown_service_and_protocol_errors_are_answered() {
    let s = start("errors", &[service("d", "exec = [\"sleep\", \"3610\"]")]);
    s.wait_log("startup complete", T);
    match s.request(&Request::Status {
        names: vec!["ghost".into()],
    }) {
        Response::Error {
            kind: ErrorKind::UnknownService,
            message,
        } => assert!(message.contains("ghost")),
        other => panic!("{other:?}"),
    }
    // A client that sends garbage gets an error and does not disturb others.
    use std::io::{Read, Write};
    let mut raw = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    raw.write_all(b"XXXXXXXXXXXX").unwrap();
    let mut buf = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = raw.read_to_end(&mut buf);
    // And one that connects and says nothing does not stall svmgr.
    let _silent = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    assert!(matches!(s.request(&Request::List), Response::List(_)));
}

#[test]
fn tree_shows_supervisors_and_their_services() {
    let s = start(
        "tree",
        &[
            (
                "supervisors/early.toml".into(),
                "[supervisor]\nname = \"early\"\nstrategy = \"one-for-all\"\n".into(),
            ),
            service("a", "exec = [\"sleep\", \"3611\"]\nsupervisor = \"early\""),
            service("b", "exec = [\"sleep\", \"3612\"]"),
        ],
    );
    s.wait_log("startup complete", T);
    let t = match s.request(&Request::Tree) {
        Response::Tree(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.name, "root");
    let early = t
        .children
        .iter()
        .find(|c| c.name == "early")
        .expect("early under root");
    assert!(
        matches!(&early.node, NodeKind::Supervisor { strategy, .. } if strategy == "one-for-all")
    );
    assert_eq!(early.children[0].name, "a");
    assert!(t.children.iter().any(|c| c.name == "b"));
}

#[test]
fn oneshot_failure_blocks_requirers_with_a_reason() {
    let s = start(
        "blocked",
        &[
            service(
                "fails",
                "exec = [\"/bin/sh\", \"-c\", \"exit 3\"]\ntype = \"oneshot\"\n[restart]\npolicy = \"temporary\"",
            ),
            service(
                "needs",
                "exec = [\"sleep\", \"3613\"]\n[dependencies]\nrequires = [\"fails\"]",
            ),
        ],
    );
    s.wait_log("startup complete: 0 ready, 1 blocked, 1 failed", T);
    let d = status(&s, "needs");
    assert_eq!(d.summary.state, ServiceState::Blocked);
    assert!(
        d.summary
            .reason
            .unwrap()
            .contains("requires 'fails', which is failed")
    );
}

#[test]
fn non_root_clients_may_read_but_not_change() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let s = start("perm", &[service("d", "exec = [\"sleep\", \"3614\"]")]);
    s.wait_log("startup complete", T);
    let sock = s.socket();
    // Fork a child that drops to nobody and tries both a read and a write.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(dynamod_tests::bin("dynamodctl"))
        .arg("--socket")
        .arg(&sock)
        .arg("stop")
        .arg("d")
        .output();
    let Ok(out) = out else { return };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(status(&s, "d").summary.state, ServiceState::Running);
}

#[test]
fn reload_restarts_only_the_edited_service_and_applies_additions_and_removals() {
    let s = start(
        "reload",
        &[
            service("keep", "exec = [\"sleep\", \"3615\"]"),
            service("edit", "exec = [\"sleep\", \"3616\"]"),
            service("drop", "exec = [\"sleep\", \"3617\"]"),
        ],
    );
    s.wait_log("startup complete: 3 ready", T);
    let keep = status(&s, "keep").summary.pid;
    let edit = status(&s, "edit").summary.pid;
    std::fs::write(
        s.path("services/edit.toml"),
        "[service]\nname = \"edit\"\nexec = [\"sleep\", \"3618\"]\n",
    )
    .unwrap();
    std::fs::remove_file(s.path("services/drop.toml")).unwrap();
    std::fs::write(
        s.path("services/added.toml"),
        "[service]\nname = \"added\"\nexec = [\"sleep\", \"3619\"]\n",
    )
    .unwrap();
    match s.request(&Request::Reload) {
        Response::Done { message } => {
            assert!(
                message.contains("1 added, 1 removed, 1 changed, 1 unchanged"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let d = wait_for("edit to run its new command", T, || {
        let d = status(&s, "edit");
        (d.summary.state == ServiceState::Running && d.exec.contains(&"3618".to_string()))
            .then_some(d)
    });
    assert_ne!(d.summary.pid, edit);
    assert_eq!(status(&s, "keep").summary.pid, keep);
    wait_state(&s, "added", ServiceState::Running);
    wait_for("drop to be gone", T, || {
        pids_matching("sleep 3617").is_empty().then_some(())
    });
    match s.request(&Request::Status {
        names: vec!["drop".into()],
    }) {
        Response::Error {
            kind: ErrorKind::UnknownService,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // SIGHUP reloads as well.
    unsafe_kill(s.pid(), libc::SIGHUP);
    s.wait_log(
        "reload complete: 0 added, 0 removed, 0 changed, 3 unchanged",
        T,
    );
}

#[test]
fn reexec_keeps_every_pid_and_supervision_goes_on() {
    let s = start(
        "reexec",
        &[
            service(
                "talker",
                "exec = [\"/bin/sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done\"]",
            ),
            service(
                "d",
                "exec = [\"sleep\", \"3620\"]\n[restart]\ndelay = \"100ms\"",
            ),
            service(
                "once",
                "exec = [\"/bin/sh\", \"-c\", \"echo ran-once\"]\ntype = \"oneshot\"\n[restart]\npolicy = \"temporary\"",
            ),
        ],
    );
    s.wait_log("startup complete: 3 ready", T);
    let (talker, d) = (
        status(&s, "talker").summary.pid,
        status(&s, "d").summary.pid.unwrap(),
    );
    let svmgr = s.pid();
    match s.request(&Request::Reexec) {
        Response::Done { .. } => {}
        other => panic!("{other:?}"),
    }
    s.wait_log("adopted 2 running service(s)", T);
    assert_eq!(s.pid(), svmgr, "re-exec keeps the process");
    assert_eq!(status(&s, "talker").summary.pid, talker);
    assert_eq!(status(&s, "d").summary.pid, Some(d));
    assert_eq!(status(&s, "once").summary.state, ServiceState::Done);
    assert_eq!(
        s.count_log("[once] ran-once"),
        1,
        "a completed oneshot is not re-run"
    );
    // The talker's pipe survived: its lines keep arriving after the re-exec.
    let before = s.count_log("[talker] tick");
    wait_for("more output from the talker", T, || {
        (s.count_log("[talker] tick") > before + 2).then_some(())
    });
    // Supervision goes on: a kill is followed by a restart.
    unsafe_kill(d, libc::SIGKILL);
    wait_for("d to be restarted", T, || {
        let now = status(&s, "d");
        (now.summary.state == ServiceState::Running && now.summary.pid != Some(d)).then_some(())
    });
    assert_eq!(pids_matching("sleep 3620").len(), 1);
}
