//! Faults with the whole system running as PID 1 in a sandbox: svmgr killed and frozen, floods
//! of orphans and children, full file systems. The invariants: never two copies of a service,
//! running services keep their PIDs, init never dies, shutdown still completes.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::time::Duration;

use dynamod_tests::sandbox::{BOOT_TIMEOUT, Sandbox, TIMEOUT, list, live, pid_of, state_of};
use dynamod_tests::wait_for;

/// `list` when svmgr answers, `None` while it is down.
fn try_list(sb: &Sandbox) -> Option<std::collections::BTreeMap<String, serde_json::Value>> {
    sb.exec(&["dynamodctl", "list", "--json"])
        .status
        .success()
        .then(|| list(sb))
}

/// PIDs of the live svmgr processes inside.
fn svmgrs(sb: &Sandbox) -> Vec<i32> {
    live(sb, "dynamod-svmgr")
}

/// Kills the current svmgr and waits until a new one answers `list`; checks that `syslog` kept
/// its PID and is the only syslogd.
fn kill_svmgr_and_check(sb: &Sandbox, syslog: i64) {
    let old = wait_for("one svmgr", TIMEOUT, || {
        let v = svmgrs(sb);
        (v.len() == 1).then(|| v[0])
    });
    sb.exec_ok(&["kill", "-9", &old.to_string()]);
    let l = wait_for("a new svmgr answering list", TIMEOUT, || {
        let v = svmgrs(sb);
        if v.len() != 1 || v[0] == old {
            return None;
        }
        try_list(sb)
    });
    assert_eq!(
        pid_of(&l, "syslog"),
        Some(syslog),
        "syslog was restarted or duplicated: {l:?}"
    );
    assert_eq!(
        live(sb, "syslogd"),
        vec![i32::try_from(syslog).unwrap()],
        "{:?}",
        sb.ps()
    );
}

#[test]
fn svmgr_killed_during_boot_a_restart_storm_and_shutdown_never_duplicates() {
    dynamod_tests::sandbox::require_privileges();
    // The storm runs under a supervisor of its own with room for it: under root it would
    // (rightly) exhaust root's intensity and give the whole tree up.
    let sb = Sandbox::builder()
        .file(
            "/etc/dynamod/supervisors/storm.toml",
            "[supervisor]\nname = \"storm\"\n[restart]\nmax-restarts = 100000\nmax-restart-window = \"60s\"\n",
            true,
        )
        .service(
            "flapper",
            "[service]\nname = \"flapper\"\nsupervisor = \"storm\"\nexec = [\"/bin/sh\", \"-c\", \"sleep 0.3; exit 1\"]\n\
             [restart]\ndelay = \"100ms\"\nmax-delay = \"200ms\"\nmax-restarts = 100000\n",
        )
        .start();
    // 1: during boot, as soon as svmgr exists.
    sb.wait_log("dynamod-init: started svmgr", BOOT_TIMEOUT);
    let first = wait_for("svmgr to appear", BOOT_TIMEOUT, || {
        svmgrs(&sb).first().copied()
    });
    sb.exec_ok(&["kill", "-9", &first.to_string()]);
    sb.wait_log("startup complete: 9 ready, 0 blocked", BOOT_TIMEOUT);
    let syslog = wait_for("syslog running", TIMEOUT, || {
        let l = try_list(&sb)?;
        (state_of(&l, "syslog") == "running")
            .then(|| pid_of(&l, "syslog"))
            .flatten()
    });
    // 2-5: during the restart storm of `flapper`. init treats more than five svmgr crashes
    // within 60 s as a crash loop (emergency shell), so the ten kills come in two rounds with a
    // healthy minute between them (which also resets init's backoff).
    for _ in 0..4 {
        kill_svmgr_and_check(&sb, syslog);
    }
    std::thread::sleep(Duration::from_secs(62));
    // 6-9: a second round in the storm.
    for _ in 0..4 {
        kill_svmgr_and_check(&sb, syslog);
    }
    assert_eq!(live(&sb, "dynamod-init").len(), 1, "init never dies");
    assert!(
        !sb.log().contains("crash loop"),
        "the kills stayed under the crash-loop limit"
    );
    // 10: during shutdown.
    sb.sigterm_xtask();
    sb.wait_log("beginning graceful shutdown", TIMEOUT);
    // The sandbox may already be gone (a quick shutdown): then there is nothing to kill.
    let out = sb.exec(&["/bin/sh", "-c", "pidof dynamod-svmgr"]);
    if let Some(pid) = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
    {
        let _ = sb.exec(&["kill", "-9", pid]);
    }
    let mut sb = sb;
    let status = sb.wait_exit(TIMEOUT);
    assert!(
        status.success(),
        "shutdown completes: {status:?}\n{}",
        sb.log()
    );
    assert!(sb.processes_left().is_empty(), "{:?}", sb.processes_left());
}

#[test]
fn frozen_svmgr_is_detected_within_three_heartbeats_and_replaced_and_services_adopted() {
    dynamod_tests::sandbox::require_privileges();
    let sb = Sandbox::builder().start();
    sb.wait_log("startup complete: 8 ready, 0 blocked", BOOT_TIMEOUT);
    let l = list(&sb);
    let syslog = pid_of(&l, "syslog").unwrap();
    let old = svmgrs(&sb)[0];
    sb.exec_ok(&["kill", "-STOP", &old.to_string()]);
    // Heartbeats every 5 s; three missed beats, plus slack for a loaded machine.
    sb.wait_log("hung", Duration::from_secs(60));
    let l = wait_for("a new svmgr answering list", TIMEOUT, || {
        let v = svmgrs(&sb);
        if v.len() != 1 || v[0] == old {
            return None;
        }
        try_list(&sb)
    });
    assert_eq!(pid_of(&l, "syslog"), Some(syslog));
    assert_eq!(live(&sb, "syslogd"), vec![i32::try_from(syslog).unwrap()]);
}

#[test]
fn ten_thousand_orphaned_zombies_are_reaped() {
    dynamod_tests::sandbox::require_privileges();
    let sb = Sandbox::builder().start();
    sb.wait_log("startup complete: 8 ready, 0 blocked", BOOT_TIMEOUT);
    // Each `( sleep 0 & )` leaves an orphan that exits at once and is reparented to PID 1.
    let out = sb.exec(&[
        "/bin/sh",
        "-c",
        "i=0; while [ $i -lt 10000 ]; do (true &); i=$((i+1)); done; echo forked",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("forked"));
    wait_for("no zombie left", TIMEOUT, || {
        let z = sb
            .ps()
            .into_iter()
            .filter(|(_, st, _)| st.starts_with('Z'))
            .count();
        (z == 0).then_some(())
    });
    assert!(sb.exec(&["dynamodctl", "list"]).status.success());
}

#[test]
fn service_forking_a_thousand_children_is_stopped_completely() {
    dynamod_tests::sandbox::require_privileges();
    let sb = Sandbox::builder()
        .service(
            "forker",
            "[service]\nname = \"forker\"\nexec = [\"/bin/sh\", \"-c\", \
             \"i=0; while [ $i -lt 1000 ]; do sleep 3999 & i=$((i+1)); done; echo forked-all; wait\"]\n\
             [shutdown]\nstop-timeout = \"2s\"\n",
        )
        .start();
    // Once logd runs, service output goes to its files, not the console.
    wait_for("the forker to have forked", BOOT_TIMEOUT, || {
        let out = sb.exec(&["grep", "-q", "forked-all", "/var/log/dynamod/forker.log"]);
        out.status.success().then_some(())
    });
    // A forked child shows as `sh` until it has exec'd `sleep`.
    wait_for("the thousand children", TIMEOUT, || {
        (live(&sb, "sleep").len() >= 1000).then_some(())
    });
    sb.ctl(&["stop", "forker"]);
    wait_for("every child gone", TIMEOUT, || {
        live(&sb, "sleep").is_empty().then_some(())
    });
    assert_eq!(state_of(&list(&sb), "forker"), "stopped");
}

#[test]
fn full_var_log_and_full_run_do_not_stop_supervision() {
    dynamod_tests::sandbox::require_privileges();
    let sb = Sandbox::builder()
        .service(
            "chatty",
            "[service]\nname = \"chatty\"\nexec = [\"/bin/sh\", \"-c\", \
             \"while :; do echo some output that fills the log; done\"]\n",
        )
        .start();
    sb.wait_log("startup complete: 9 ready, 0 blocked", BOOT_TIMEOUT);
    // /var/log/dynamod on a tiny file system that fills at once.
    sb.sh("mount -t tmpfs -o size=64k tmpfs /var/log/dynamod");
    // /run full as well.
    sb.sh("used=$(du -sk /run | cut -f1); mount -o remount,size=$((used + 256))k /run");
    let _ = sb.exec(&[
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/run/fill bs=4k 2>/dev/null; true",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    // Supervision and the control socket still work: a killed service comes back.
    let l = list(&sb);
    let syslog = pid_of(&l, "syslog").unwrap();
    sb.exec_ok(&["kill", "-9", &syslog.to_string()]);
    wait_for("syslog restarted", TIMEOUT, || {
        let l = list(&sb);
        (state_of(&l, "syslog") == "running" && pid_of(&l, "syslog") != Some(syslog)).then_some(())
    });
    assert_eq!(state_of(&list(&sb), "chatty"), "running");
    assert_eq!(state_of(&list(&sb), "dynamod-logd"), "running");
    sb.sh("rm -f /run/fill");
}

#[test]
fn dynamodctl_reexec_keeps_every_pid_and_supervision_goes_on() {
    dynamod_tests::sandbox::require_privileges();
    let sb = Sandbox::builder().start();
    sb.wait_log("startup complete: 8 ready, 0 blocked", BOOT_TIMEOUT);
    let before = list(&sb);
    let svmgr = svmgrs(&sb);
    sb.ctl(&["reexec"]);
    sb.wait_log("adopted 3 running service(s)", TIMEOUT);
    let after = wait_for("svmgr answering after the re-exec", TIMEOUT, || {
        try_list(&sb)
    });
    assert_eq!(svmgrs(&sb), svmgr, "same svmgr process");
    for name in ["syslog", "agetty-tty1", "dynamod-logd"] {
        assert_eq!(pid_of(&after, name), pid_of(&before, name), "{name}");
    }
    assert_eq!(
        state_of(&after, "bootmisc"),
        "done",
        "completed oneshots are not re-run"
    );
    let syslog = pid_of(&after, "syslog").unwrap();
    sb.exec_ok(&["kill", "-9", &syslog.to_string()]);
    wait_for("syslog restarted", TIMEOUT, || {
        let l = try_list(&sb)?;
        (state_of(&l, "syslog") == "running" && pid_of(&l, "syslog") != Some(syslog)).then_some(())
    });
    // The new syslog shows as `sh` until it has exec'd syslogd.
    wait_for("exactly one syslogd", TIMEOUT, || {
        (live(&sb, "syslogd").len() == 1).then_some(())
    });
}
