//! The sd-login state files: `sessions/<id>`, `users/<uid>` and `seats/<seat>` under
//! `/run/systemd`, in systemd-logind's `KEY=value` format. libsystemd's sd-login functions
//! (`sd_session_get_seat()`, `sd_uid_get_display()`, `sd_get_sessions()`, …) read these
//! files instead of asking over the bus, and compositors and session managers call them
//! (libseat's logind backend finds its session with `sd_uid_get_display()`).
//!
//! Every change rewrites the files of the objects that exist and removes the others; each file
//! is replaced atomically (written beside, then renamed).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::state::State;

/// The state files under one directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

impl StateFiles {
    /// Files under `dir` (`/run/systemd`).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Rewrites every file from `st`; failures are logged (readers then see older data).
    pub fn write_all(&self, st: &State) {
        let mut wanted: Vec<(PathBuf, String)> = Vec::new();
        for s in st.sessions.values() {
            wanted.push((
                self.dir.join("sessions").join(&s.id),
                session_file(st, &s.id),
            ));
        }
        for uid in st.users.keys() {
            wanted.push((
                self.dir.join("users").join(uid.to_string()),
                user_file(st, *uid),
            ));
        }
        for seat in st.seats.keys() {
            wanted.push((self.dir.join("seats").join(seat), seat_file(st, seat)));
        }
        for sub in ["sessions", "users", "seats"] {
            let dir = self.dir.join(sub);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!("cannot create {}: {e}", dir.display());
                return;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    let stale = !wanted.iter().any(|(w, _)| *w == p);
                    if stale && !p.to_string_lossy().ends_with(".tmp") {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
        }
        for (path, text) in wanted {
            if let Err(e) = replace(&path, &text) {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
    }
}

fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, path)
}

const HEADER: &str = "# This is private data. Do not parse.\n";

/// The file of session `id`.
pub fn session_file(st: &State, id: &str) -> String {
    let Some(s) = st.sessions.get(id) else {
        return String::new();
    };
    let mut out = String::from(HEADER);
    let display = st.user_display(s.uid);
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{k}={v}");
    };
    kv("UID", &s.uid);
    kv("USER", &s.user_name);
    kv("ACTIVE", &flag(st.is_active(id)));
    kv("IS_DISPLAY", &flag(display.as_deref() == Some(id)));
    kv("STATE", &st.session_state(id));
    kv("REMOTE", &flag(s.remote));
    kv("TYPE", &s.kind.as_str());
    kv("ORIGINAL_TYPE", &s.original_kind.as_str());
    kv("CLASS", &s.class.as_str());
    kv("SCOPE", &s.scope());
    if let Some(seat) = &s.seat {
        kv("SEAT", seat);
    }
    if !s.tty.is_empty() {
        kv("TTY", &s.tty);
    }
    if !s.display.is_empty() {
        kv("DISPLAY", &s.display);
    }
    if !s.remote_host.is_empty() {
        kv("REMOTE_HOST", &s.remote_host);
    }
    if !s.remote_user.is_empty() {
        kv("REMOTE_USER", &s.remote_user);
    }
    if !s.service.is_empty() {
        kv("SERVICE", &s.service);
    }
    if !s.desktop.is_empty() {
        kv("DESKTOP", &s.desktop);
    }
    if s.vtnr > 0 {
        kv("VTNR", &s.vtnr);
    }
    kv("LEADER", &s.leader);
    if s.audit > 0 {
        kv("AUDIT", &s.audit);
    }
    kv("REALTIME", &s.created.realtime);
    kv("MONOTONIC", &s.created.monotonic);
    if let Some(c) = &s.controller {
        kv("CONTROLLER", c);
        let devices: Vec<String> = s.devices.keys().map(|(a, b)| format!("{a}:{b}")).collect();
        if !devices.is_empty() {
            kv("DEVICES", &devices.join(" "));
        }
    }
    out
}

/// The file of user `uid`.
pub fn user_file(st: &State, uid: u32) -> String {
    let Some(u) = st.users.get(&uid) else {
        return String::new();
    };
    let sessions = st.user_sessions(uid);
    let ids = |pred: &dyn Fn(&crate::state::Session) -> bool| {
        sessions
            .iter()
            .filter(|s| pred(s))
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let seats = |pred: &dyn Fn(&crate::state::Session) -> bool| {
        let mut v: Vec<String> = sessions
            .iter()
            .filter(|s| pred(s))
            .filter_map(|s| s.seat.clone())
            .collect();
        v.dedup();
        v.join(" ")
    };
    let active = |s: &crate::state::Session| st.is_active(&s.id);
    let online = |s: &crate::state::Session| !s.closing;
    let mut out = String::from(HEADER);
    let _ = writeln!(out, "NAME={}", u.name);
    let _ = writeln!(out, "STATE={}", st.user_state(uid));
    let _ = writeln!(
        out,
        "STOPPING={}",
        if sessions.is_empty() { "yes" } else { "no" }
    );
    let _ = writeln!(out, "RUNTIME={}", u.runtime_path);
    let _ = writeln!(out, "REALTIME={}", u.created.realtime);
    let _ = writeln!(out, "MONOTONIC={}", u.created.monotonic);
    if let Some(d) = st.user_display(uid) {
        let _ = writeln!(out, "DISPLAY={d}");
    }
    let _ = writeln!(out, "SESSIONS={}", ids(&|_| true));
    let _ = writeln!(out, "SEATS={}", seats(&|_| true));
    let _ = writeln!(out, "ACTIVE_SESSIONS={}", ids(&active));
    let _ = writeln!(out, "ONLINE_SESSIONS={}", ids(&online));
    let _ = writeln!(out, "ACTIVE_SEATS={}", seats(&active));
    let _ = writeln!(out, "ONLINE_SEATS={}", seats(&online));
    out
}

/// The file of seat `id`.
pub fn seat_file(st: &State, id: &str) -> String {
    let Some(seat) = st.seats.get(id) else {
        return String::new();
    };
    let sessions = st.seat_sessions(id);
    let mut out = String::from(HEADER);
    let _ = writeln!(out, "IS_SEAT0={}", flag(id == "seat0"));
    let _ = writeln!(out, "CAN_MULTI_SESSION=1");
    let _ = writeln!(out, "CAN_TTY={}", flag(seat.can_tty));
    let _ = writeln!(out, "CAN_GRAPHICAL={}", flag(seat.can_graphical));
    if let Some(a) = &seat.active
        && let Some(s) = st.sessions.get(a)
    {
        let _ = writeln!(out, "ACTIVE={a}");
        let _ = writeln!(out, "ACTIVE_UID={}", s.uid);
    }
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let uids: Vec<String> = sessions.iter().map(|s| s.uid.to_string()).collect();
    let _ = writeln!(out, "SESSIONS={}", ids.join(" "));
    let _ = writeln!(out, "UIDS={}", uids.join(" "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stamp;
    use crate::state::User;
    use crate::state::tests::{session, with_seat0};

    fn sample() -> State {
        let mut st = with_seat0();
        let mut s = session("c1", 1, 1000, Some("seat0"));
        s.vtnr = 2;
        s.tty = "tty2".into();
        st.sessions.insert("c1".into(), s);
        st.activate("c1");
        st.users.insert(
            1000,
            User {
                uid: 1000,
                gid: 1000,
                name: "ada".into(),
                created: Stamp::default(),
                runtime_path: "/run/user/1000".into(),
                generation: 1,
            },
        );
        st
    }

    #[test]
    fn session_files_carry_what_sd_session_functions_read() {
        let text = session_file(&sample(), "c1");
        for line in [
            "UID=1000",
            "ACTIVE=1",
            "IS_DISPLAY=1",
            "STATE=active",
            "TYPE=tty",
            "CLASS=user",
            "SEAT=seat0",
            "VTNR=2",
            "TTY=tty2",
            "SCOPE=session-c1.scope",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn user_and_seat_files_list_sessions() {
        let st = sample();
        let user = user_file(&st, 1000);
        for line in [
            "NAME=ada",
            "STATE=active",
            "DISPLAY=c1",
            "SESSIONS=c1",
            "ACTIVE_SEATS=seat0",
        ] {
            assert!(user.lines().any(|l| l == line), "{line} missing:\n{user}");
        }
        let seat = seat_file(&st, "seat0");
        for line in [
            "IS_SEAT0=1",
            "ACTIVE=c1",
            "ACTIVE_UID=1000",
            "SESSIONS=c1",
            "UIDS=1000",
        ] {
            assert!(seat.lines().any(|l| l == line), "{line} missing:\n{seat}");
        }
    }

    #[test]
    fn files_of_objects_that_are_gone_are_removed() {
        let dir = std::env::temp_dir().join(format!("dynamod-logind-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = StateFiles::new(dir.clone());
        let mut st = sample();
        files.write_all(&st);
        assert!(dir.join("sessions/c1").is_file());
        assert!(dir.join("users/1000").is_file());
        assert!(dir.join("seats/seat0").is_file());
        st.sessions.clear();
        st.users.clear();
        files.write_all(&st);
        assert!(!dir.join("sessions/c1").exists());
        assert!(!dir.join("users/1000").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
