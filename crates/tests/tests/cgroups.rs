//! Per-service cgroups on the host's cgroup2 hierarchy (no controllers needed): placement before
//! exec, complete stop of double-forked and setsid'ed processes, and the fallback when cgroup2 is
//! read-only. Limits and OOM kills need a kernel with controllers: see the VM scenarios.
//!
//! Each test uses its own base cgroup (`<cgroup2 mount>/dynamod-test-<pid>-<n>`) and removes
//! it afterwards, so nothing is shared with the host's own cgroups.

#![allow(
    clippy::disallowed_methods,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use dynamod_proto::{Request, Response, ServiceState};
use dynamod_tests::svmgr::{Svmgr, pids_matching};
use dynamod_tests::wait_for;

const T: Duration = Duration::from_secs(30);

fn cgroup2_mount() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(pre.split_whitespace().nth(4)?))
    })
}

/// A base cgroup for one test, removed (bottom-up) on drop.
struct Base(PathBuf);

impl Base {
    fn new(tag: &str) -> Option<Base> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let mount = cgroup2_mount()?;
        let p = mount.join(format!("dynamod-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).ok()?;
        Some(Base(p))
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        fn rm(p: &Path) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        rm(&e.path());
                    }
                }
            }
            let _ = std::fs::write(p.join("cgroup.kill"), "1");
            let _ = std::fs::remove_dir(p);
        }
        rm(&self.0);
    }
}

fn service(name: &str, body: &str) -> (String, String) {
    (
        format!("services/{name}.toml"),
        format!("[service]\nname = \"{name}\"\n{body}\n"),
    )
}

fn start(tag: &str, base: &Base, files: &[(String, String)]) -> Svmgr {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Svmgr::start_args(tag, &refs, &["--cgroup-root", base.0.to_str().unwrap()])
}

#[test]
fn service_is_in_its_cgroup_before_its_first_instruction() {
    let Some(base) = Base::new("placement") else {
        return;
    };
    let s = start(
        "cg-placement",
        &base,
        &[service(
            "who",
            "exec = [\"/bin/sh\", \"-c\", \"cat /proc/self/cgroup; exec sleep 3800\"]",
        )],
    );
    let line = s.wait_log("[who] 0::", T);
    let rel = base.0.strip_prefix(cgroup2_mount().unwrap()).unwrap();
    let expected = format!("0::/{}/root/who", rel.display());
    assert!(line.ends_with(&expected), "{line} vs {expected}");
    let procs = std::fs::read_to_string(base.0.join("root/who/cgroup.procs")).unwrap();
    assert_eq!(procs.lines().count(), 1, "only the service: {procs}");
}

#[test]
fn stop_kills_double_forked_setsid_grandchildren_and_empties_the_cgroup() {
    let Some(base) = Base::new("dfork") else {
        return;
    };
    let s = start(
        "cg-dfork",
        &base,
        &[service(
            "escaper",
            "exec = [\"/bin/sh\", \"-c\", \"setsid sh -c 'trap \\\"\\\" TERM HUP; exec sleep 3801' & (setsid sleep 3802 &); exec sleep 3803\"]\n[shutdown]\nstop-timeout = \"1s\"",
        )],
    );
    wait_for("the escaped processes", T, || {
        (pids_matching("sleep 3801").len() == 1 && pids_matching("sleep 3802").len() == 1)
            .then_some(())
    });
    let r = s.request(&Request::Stop {
        names: vec!["escaper".into()],
        no_block: false,
    });
    assert!(matches!(r, Response::Done { .. }), "{r:?}");
    for n in ["sleep 3801", "sleep 3802", "sleep 3803"] {
        assert!(pids_matching(n).is_empty(), "{n} survived the stop");
    }
    assert!(
        !base.0.join("root/escaper").exists(),
        "the cgroup is removed once empty"
    );
}

#[test]
fn main_exit_takes_its_leftovers_with_it() {
    let Some(base) = Base::new("leftovers") else {
        return;
    };
    let s = start(
        "cg-leftover",
        &base,
        &[service(
            "parent",
            "exec = [\"/bin/sh\", \"-c\", \"(setsid sleep 3804 &); sleep 0.5; exit 3\"]\n[restart]\npolicy = \"temporary\"",
        )],
    );
    wait_for("the service to fail", T, || {
        match s.request(&Request::Status {
            names: vec!["parent".into()],
        }) {
            Response::Status(v) if v[0].summary.state == ServiceState::Failed => Some(()),
            _ => None,
        }
    });
    assert!(pids_matching("sleep 3804").is_empty());
}

#[test]
fn read_only_cgroup_fs_falls_back_to_process_groups_and_says_so_once() {
    if !nix::unistd::geteuid().is_root() || cgroup2_mount().is_none() {
        return;
    }
    // A private mount namespace in which the cgroup2 mount is read-only; svmgr runs inside it.
    let dir = dynamod_tests::TempDir::new("cg-ro");
    for sub in ["services", "supervisors", "run"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for (n, body) in [
        ("a", "exec = [\"sleep\", \"3805\"]"),
        ("b", "exec = [\"sleep\", \"3806\"]"),
    ] {
        std::fs::write(
            dir.path().join(format!("services/{n}.toml")),
            format!("[service]\nname = \"{n}\"\n{body}\n"),
        )
        .unwrap();
    }
    let mount = cgroup2_mount().unwrap();
    let script = format!(
        "mount --make-rprivate / && mount -o remount,bind,ro {m} && exec {svmgr} --services {d}/services --supervisors {d}/supervisors --runtime-dir {d}/run",
        m = mount.display(),
        svmgr = dynamod_tests::bin("dynamod-svmgr").display(),
        d = dir.path().display()
    );
    let mut child = std::process::Command::new("unshare")
        .args(["--mount", "--", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            l2.lock().unwrap().push(l);
        }
    });
    let ok = wait_for("startup", T, || {
        let l = lines.lock().unwrap();
        l.iter()
            .any(|x| x.contains("startup complete"))
            .then_some(true)
    });
    assert!(ok);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let st = child.wait().unwrap();
    reader.join().unwrap();
    let log = lines.lock().unwrap().clone();
    assert!(st.success(), "{log:#?}");
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("falling back to process groups"))
            .count(),
        1,
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("startup complete: 2 ready, 0 blocked"))
    );
}
