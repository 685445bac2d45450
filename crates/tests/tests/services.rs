//! Service types, readiness, restart rules and supervisor strategies with real processes.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::time::Duration;

use dynamod_proto::{Request, Response, ServiceState};
use dynamod_tests::svmgr::{Svmgr, pids_matching, service, start, status, unsafe_kill, wait_state};
use dynamod_tests::wait_for;

const T: Duration = Duration::from_secs(30);
const FIXTURE: &str = env!("CARGO_BIN_EXE_fixture");

fn fixture(args: &[&str]) -> String {
    let mut v = vec![format!("\"{FIXTURE}\"")];
    v.extend(args.iter().map(|a| format!("\"{a}\"")));
    format!("exec = [{}]", v.join(", "))
}

fn line_pos(s: &Svmgr, needle: &str) -> usize {
    s.log()
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or(usize::MAX)
}

/// A dependent that requires `dep` and records when it started.
fn dependent(dep: &str) -> (String, String) {
    service(
        "dependent",
        &format!("exec = [\"sleep\", \"3700\"]\n[dependencies]\nrequires = [\"{dep}\"]"),
    )
}

fn assert_held_until_ready(s: &Svmgr, name: &str) {
    s.wait_log(&format!("service '{name}' is ready"), T);
    wait_state(s, "dependent", ServiceState::Running);
    // The dependent was spawned only after readiness.
    assert_eq!(status(s, "dependent").restarts, 0);
    assert!(line_pos(s, &format!("service '{name}' is ready")) < line_pos(s, "startup complete"));
}

#[test]
fn notify_ready_holds_requirers_until_ready_1() {
    let s = start(
        "notify",
        &[
            service(
                "n",
                &format!(
                    "{}\ntype = \"notify\"",
                    fixture(&["notify", "READY=1\\nSTATUS=up", "1500"])
                ),
            ),
            dependent("n"),
        ],
    );
    wait_state(&s, "n", ServiceState::Starting);
    assert_eq!(status(&s, "dependent").summary.state, ServiceState::Waiting);
    assert_held_until_ready(&s, "n");
    assert_eq!(status(&s, "n").summary.reason.as_deref(), Some("up"));
}

#[test]
fn notify_that_never_comes_fails_at_timeout_and_blocks_requirers() {
    let s = start(
        "notify-timeout",
        &[
            service(
                "n",
                &format!(
                    "{}\ntype = \"notify\"\n[readiness]\ntype = \"notify\"\ntimeout = \"1s\"",
                    fixture(&["sleep"])
                ),
            ),
            dependent("n"),
        ],
    );
    s.wait_log("startup complete: 0 ready, 1 blocked, 1 failed", T);
    let n = status(&s, "n");
    assert_eq!(n.summary.state, ServiceState::Failed);
    assert!(
        n.summary
            .reason
            .unwrap()
            .contains("did not become ready within 1s")
    );
    assert!(n.summary.pid.is_none(), "its process was stopped");
    let d = status(&s, "dependent");
    assert_eq!(d.summary.state, ServiceState::Blocked);
    assert!(
        d.summary
            .reason
            .unwrap()
            .contains("requires 'n', which is failed")
    );
}

#[test]
fn tcp_port_readiness_on_ipv4_and_ipv6() {
    for (tag, addr, host) in [
        ("tcp4", "127.0.0.1:47311", "127.0.0.1"),
        ("tcp6", "[::1]:47312", "::1"),
    ] {
        let port = addr.rsplit(':').next().unwrap();
        let s = start(
            tag,
            &[
                service(
                    "t",
                    &format!(
                        "{}\n[readiness]\ntype = \"tcp-port\"\nport = {port}\nhost = \"{host}\"",
                        fixture(&["listen", addr, "1000"])
                    ),
                ),
                dependent("t"),
            ],
        );
        assert_held_until_ready(&s, "t");
    }
}

#[test]
fn exec_readiness_repeats_its_probe_until_it_succeeds() {
    let dir = dynamod_tests::TempDir::new("execprobe");
    let flag = dir.path().join("flag");
    let s = start(
        "exec",
        &[
            service(
                "e",
                &format!(
                    "exec = [\"/bin/sh\", \"-c\", \"sleep 1; touch {}; exec sleep 3701\"]\n[readiness]\ntype = \"exec\"\ncheck-exec = [\"test\", \"-f\", \"{}\"]\ninterval = \"200ms\"",
                    flag.display(),
                    flag.display()
                ),
            ),
            dependent("e"),
        ],
    );
    assert_held_until_ready(&s, "e");
}

#[test]
fn fd_readiness_and_its_timeout() {
    let s = start(
        "fd",
        &[
            service(
                "f",
                &format!(
                    "{}\n[readiness]\ntype = \"fd\"",
                    fixture(&["ready-fd", "800"])
                ),
            ),
            dependent("f"),
        ],
    );
    assert_held_until_ready(&s, "f");

    let s = start(
        "fd-never",
        &[
            service(
                "f",
                &format!(
                    "{}\n[readiness]\ntype = \"fd\"\ntimeout = \"700ms\"",
                    fixture(&["sleep"])
                ),
            ),
            dependent("f"),
        ],
    );
    s.wait_log("startup complete: 0 ready, 1 blocked, 1 failed", T);
}

#[test]
fn readiness_applies_again_after_a_restart() {
    let s = start(
        "notify-restart",
        &[service(
            "n",
            &format!(
                "{}\ntype = \"notify\"\n[restart]\ndelay = \"100ms\"",
                fixture(&["notify", "READY=1", "500"])
            ),
        )],
    );
    let pid = wait_state(&s, "n", ServiceState::Running)
        .summary
        .pid
        .unwrap();
    unsafe_kill(pid, libc::SIGKILL);
    wait_state(&s, "n", ServiceState::Starting);
    wait_state(&s, "n", ServiceState::Running);
    assert_eq!(s.count_log("service 'n' is ready"), 2);
}

#[test]
fn permanent_crash_loop_backs_off_then_fails() {
    let s = start(
        "backoff",
        &[service(
            "c",
            "exec = [\"/bin/sh\", \"-c\", \"exit 1\"]\n[restart]\ndelay = \"100ms\"\nmax-delay = \"400ms\"\nmax-restarts = 4\nmax-restart-window = \"60s\"",
        )],
    );
    s.wait_log("service 'c' failed", T);
    let log = s.log();
    let delays: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split("restarting 'c' in ").nth(1))
        .collect();
    assert_eq!(delays, ["100ms", "200ms", "400ms", "400ms"], "{log:#?}");
    assert_eq!(status(&s, "c").summary.state, ServiceState::Failed);
}

#[test]
fn stop_during_the_restart_delay_cancels_the_restart() {
    let s = start(
        "stopdelay",
        &[service(
            "c",
            "exec = [\"/bin/sh\", \"-c\", \"sleep 0.3; exit 1\"]\n[restart]\ndelay = \"2s\"",
        )],
    );
    s.wait_log("restarting 'c' in 2s", T);
    let r = s.request(&Request::Stop {
        names: vec!["c".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&s, "c").summary.state, ServiceState::Stopped);
    assert_eq!(s.count_log("restarting 'c'"), 1);
}

#[test]
fn oneshot_that_never_exits_fails_at_its_timeout_and_boot_completes() {
    let s = start(
        "oneshot-hang",
        &[
            service(
                "hang",
                "exec = [\"sleep\", \"3702\"]\ntype = \"oneshot\"\n[readiness]\ntimeout = \"700ms\"\n[restart]\npolicy = \"temporary\"",
            ),
            service(
                "other",
                "exec = [\"sleep\", \"3703\"]\n[dependencies]\nafter = [\"hang\"]",
            ),
        ],
    );
    s.wait_log("startup complete: 1 ready, 0 blocked, 1 failed", T);
    assert!(pids_matching("sleep 3702").is_empty());
}

fn strategy_files(strategy: &str) -> Vec<(String, String)> {
    vec![
        (
            "supervisors/grp.toml".into(),
            format!(
                "[supervisor]\nname = \"grp\"\nstrategy = \"{strategy}\"\n[restart]\nmax-restarts = 10\n"
            ),
        ),
        service(
            "a",
            "exec = [\"sleep\", \"3710\"]\nsupervisor = \"grp\"\n[restart]\ndelay = \"100ms\"",
        ),
        service(
            "b",
            "exec = [\"sleep\", \"3711\"]\nsupervisor = \"grp\"\n[restart]\ndelay = \"100ms\"\n[dependencies]\nafter = [\"a\"]",
        ),
        service(
            "c",
            "exec = [\"sleep\", \"3712\"]\nsupervisor = \"grp\"\n[restart]\ndelay = \"100ms\"\n[dependencies]\nafter = [\"b\"]",
        ),
    ]
}

fn pids(s: &Svmgr) -> Vec<Option<i32>> {
    ["a", "b", "c"]
        .iter()
        .map(|n| status(s, n).summary.pid)
        .collect()
}

#[test]
fn one_for_all_restarts_every_child_stopping_in_reverse_order() {
    let s = start("ofa", &strategy_files("one-for-all"));
    s.wait_log("startup complete: 3 ready", T);
    let before = pids(&s);
    unsafe_kill(before[0].unwrap(), libc::SIGKILL);
    wait_for("all three restarted", T, || {
        let now = pids(&s);
        (now.iter().zip(&before).all(|(n, b)| n.is_some() && n != b)).then_some(())
    });
    assert!(
        line_pos(&s, "stopping 'c'") < line_pos(&s, "stopping 'b'"),
        "{:#?}",
        s.log()
    );
}

#[test]
fn rest_for_one_restarts_the_child_and_later_ones_only() {
    let s = start("rfo", &strategy_files("rest-for-one"));
    s.wait_log("startup complete: 3 ready", T);
    let before = pids(&s);
    unsafe_kill(before[1].unwrap(), libc::SIGKILL);
    wait_for("b and c restarted", T, || {
        let now = pids(&s);
        (now[1].is_some() && now[1] != before[1] && now[2].is_some() && now[2] != before[2])
            .then_some(())
    });
    assert_eq!(pids(&s)[0], before[0], "a keeps running");
    assert_eq!(s.count_log("stopping 'a'"), 0);
}

#[test]
fn one_for_all_past_its_intensity_escalates_to_root() {
    let files = vec![
        (
            "supervisors/grp.toml".into(),
            "[supervisor]\nname = \"grp\"\nstrategy = \"one-for-all\"\n[restart]\nmax-restarts = 2\nmax-restart-window = \"60s\"\n".into(),
        ),
        service("flaky", "exec = [\"/bin/sh\", \"-c\", \"sleep 0.2; exit 1\"]\nsupervisor = \"grp\"\n[restart]\ndelay = \"100ms\"\nmax-delay = \"100ms\""),
        service("peer", "exec = [\"sleep\", \"3713\"]\nsupervisor = \"grp\""),
    ];
    let s = start("escalate", &files);
    s.wait_log("supervisor 'grp' exceeded 2 restart(s)", T);
    s.wait_log("escalating failure of 'grp' to supervisor 'root'", T);
}

#[test]
fn forking_daemon_is_tracked_by_its_real_pid_and_stops_completely() {
    let dir = dynamod_tests::TempDir::new("forking");
    let pidfile = dir.path().join("d.pid");
    let s = start(
        "forking",
        &[service(
            "d",
            &format!(
                "{}\ntype = \"forking\"\npidfile = \"{}\"",
                fixture(&["daemonize", &pidfile.display().to_string()]),
                pidfile.display()
            ),
        )],
    );
    let d = wait_state(&s, "d", ServiceState::Running);
    let written: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(d.summary.pid, Some(written));
    let r = s.request(&Request::Stop {
        names: vec!["d".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert!(!std::path::Path::new(&format!("/proc/{written}")).exists() || is_zombie(written));
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rfind(')')
                .is_some_and(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn user_nobody_runs_with_its_ids_and_an_unknown_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let s = start(
        "users",
        &[
            service(
                "asnobody",
                &format!("{}\n[service.user]\nuser = \"nobody\"", fixture(&["ids"])),
            ),
            service(
                "ghost",
                "exec = [\"sleep\", \"3714\"]\n[service.user]\nuser = \"no-such-user-xyz\"\n[restart]\npolicy = \"temporary\"",
            ),
        ],
    );
    let line = s.wait_log("[asnobody] ids", T);
    let ids: Vec<&str> = line.split("ids ").nth(1).unwrap().split(' ').collect();
    let pw = std::fs::read_to_string("/etc/passwd").unwrap();
    let nobody = pw.lines().find(|l| l.starts_with("nobody:")).unwrap();
    let f: Vec<&str> = nobody.split(':').collect();
    assert_eq!(ids[0], f[2]);
    assert_eq!(ids[1], f[3]);
    assert!(ids[2].split(',').all(|g| g == f[3] || !g.is_empty()));
    s.wait_log(
        "failed to start 'ghost': unknown user 'no-such-user-xyz'",
        T,
    );
    assert!(pids_matching("sleep 3714").is_empty());
}

#[test]
fn environment_file_and_table_reach_the_service() {
    let dir = dynamod_tests::TempDir::new("envfile");
    let env = dir.path().join("env");
    std::fs::write(
        &env,
        "# comment\nexport A=from-file\nB=\"quoted value\"\r\nC=overridden\n",
    )
    .unwrap();
    let s = start(
        "envfile",
        &[service(
            "e",
            &format!(
                "exec = [\"/bin/sh\", \"-c\", \"echo A=$A B=$B C=$C; exec sleep 3715\"]\nenvironment-file = \"{}\"\n[service.environment]\nC = \"from-table\"",
                env.display()
            ),
        )],
    );
    s.wait_log("[e] A=from-file B=quoted value C=from-table", T);
}

#[test]
fn stop_exec_replaces_the_stop_signal_and_shares_the_stop_timeout() {
    let dir = dynamod_tests::TempDir::new("stopexec");
    let marker = dir.path().join("stopped-by");
    let s = start(
        "stopexec",
        &[
            service(
                "graceful",
                &format!(
                    "exec = [\"/bin/sh\", \"-c\", \"trap 'exit 0' USR1; trap '' TERM; echo up; while :; do sleep 0.1; done\"]\n[shutdown]\nstop-exec = [\"/bin/sh\", \"-c\", \"echo stop-exec > {m}; kill -USR1 $(cat {p})\"]\nstop-timeout = \"5s\"",
                    m = marker.display(),
                    p = dir.path().join("pid").display()
                ),
            ),
            service(
                "hangs",
                "exec = [\"/bin/sh\", \"-c\", \"trap '' TERM; echo up; while :; do sleep 0.1; done\"]\n[shutdown]\nstop-exec = [\"sleep\", \"3720\"]\nstop-timeout = \"500ms\"",
            ),
        ],
    );
    s.wait_log("[graceful] up", T);
    s.wait_log("[hangs] up", T);
    let pid = status(&s, "graceful").summary.pid.unwrap();
    std::fs::write(dir.path().join("pid"), pid.to_string()).unwrap();
    let r = s.request(&Request::Stop {
        names: vec!["graceful".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "stop-exec"
    );
    assert_eq!(
        status(&s, "graceful").last_exit.map(|e| e.status),
        Some(dynamod_proto::ExitStatus::Exited(0))
    );
    // A stop-exec that hangs does not outlive the stop timeout.
    let r = s.request(&Request::Stop {
        names: vec!["hangs".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    wait_for("the hanging stop-exec to be gone", T, || {
        pids_matching("sleep 3720").is_empty().then_some(())
    });
}

#[test]
fn workdir_is_applied_and_a_missing_one_refuses_the_start() {
    let dir = dynamod_tests::TempDir::new("workdir");
    let s = start(
        "workdir",
        &[
            service(
                "here",
                &format!(
                    "exec = [\"/bin/sh\", \"-c\", \"pwd; exec sleep 3721\"]\nworkdir = \"{}\"",
                    dir.path().display()
                ),
            ),
            service(
                "nowhere",
                "exec = [\"sleep\", \"3722\"]\nworkdir = \"/no/such/dir\"\n[restart]\npolicy = \"temporary\"",
            ),
        ],
    );
    s.wait_log(&format!("[here] {}", dir.path().display()), T);
    s.wait_log("failed to start 'nowhere'", T);
    let line = s.wait_log("failed to start 'nowhere'", T);
    assert!(line.contains("change directory"), "{line}");
}
