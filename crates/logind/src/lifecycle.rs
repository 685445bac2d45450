//! The life of sessions and users: creation, activation and the device handover it implies,
//! control, release (`ReleaseSession`, the PAM process closing its fifo), termination, and the
//! delayed removal of a user's runtime directory after its last session.
//!
//! A session ends in two steps. Releasing it marks it `closing`: it loses its seat, its
//! controller and its devices at once. It is removed (`SessionRemoved`) once no process is left
//! in its cgroup — immediately when sessions have no cgroups. When a user has no session left,
//! its runtime directory and user cgroup go after `UserStopDelaySec` unless a new session of the
//! same user starts first.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use dynamod_dbus::MethodError;
use dynamod_dbus::zbus;

use crate::cgroup::{Cgroups, signal_pid};
use crate::daemon::{Context, session_path, user_path};
use crate::devices::Device;
use crate::iface::SESSION;
use crate::model::{SessionClass, SessionType, Stamp};
use crate::paths;
use crate::procs::{self, ProcInfo};
use crate::state::{Session, Switch, User};

/// `org.freedesktop.login1.*` errors, as systemd names them.
pub fn login1_error(name: &str, message: impl Into<String>) -> MethodError {
    MethodError::new(&format!("org.freedesktop.login1.{name}"), message)
}

/// `NoSuchSession`.
pub fn no_such_session(id: &str) -> MethodError {
    login1_error("NoSuchSession", format!("No session '{id}' known"))
}

/// What `CreateSession` asks for, validated.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The user.
    pub uid: u32,
    /// The leader.
    pub leader: u32,
    /// The PAM service.
    pub service: String,
    /// The type.
    pub kind: SessionType,
    /// The class.
    pub class: SessionClass,
    /// The desktop.
    pub desktop: String,
    /// The seat.
    pub seat: Option<String>,
    /// The VT.
    pub vtnr: u32,
    /// The terminal.
    pub tty: String,
    /// The X11 display.
    pub display: String,
    /// Whether it is remote.
    pub remote: bool,
    /// The remote user.
    pub remote_user: String,
    /// The remote host.
    pub remote_host: String,
}

/// What `CreateSession` answers.
#[derive(Debug)]
pub struct Created {
    /// The session id.
    pub id: String,
    /// `$XDG_RUNTIME_DIR`.
    pub runtime_path: String,
    /// The write end of the session's fifo: the session is released when it is closed.
    pub fifo: OwnedFd,
    /// The seat, or empty.
    pub seat: String,
}

fn lookup_user(uid: u32) -> Result<(String, u32), MethodError> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => Ok((u.name, u.gid.as_raw())),
        Ok(None) => Err(login1_error(
            "NoSuchUser",
            format!("User ID {uid} is not known"),
        )),
        Err(e) => Err(MethodError::failed(format!(
            "Cannot look up user ID {uid}: {e}"
        ))),
    }
}

fn audit_session(ctx: &Context, pid: u32) -> u32 {
    std::fs::read_to_string(ctx.proc_root.join(pid.to_string()).join("sessionid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|id| *id != u32::MAX)
        .unwrap_or(0)
}

/// Registers a session: user object, runtime directory, cgroup, fifo; activates it if its
/// seat has no active session.
pub async fn create(ctx: &Arc<Context>, req: NewSession) -> Result<Created, MethodError> {
    let uid = req.uid;
    let (name, gid) = tokio::task::spawn_blocking(move || lookup_user(uid))
        .await
        .map_err(|e| MethodError::failed(format!("User lookup failed: {e}")))??;
    let leader = procs::info(&ctx.proc_root, req.leader).ok_or_else(|| {
        MethodError::invalid_args(format!("Process {} does not exist.", req.leader))
    })?;
    if ctx.session_of_pid(req.leader).is_some() {
        return Err(login1_error(
            "SessionBusy",
            "Already running in a session or user slice",
        ));
    }
    let audit = audit_session(ctx, req.leader);
    let runtime_path = ctx.rundirs.path(uid).to_string_lossy().into_owned();

    // Register the session (and the user) first, so a concurrent call sees it.
    let (id, new_user) = {
        let mut st = ctx.state();
        if st.sessions.len() as u64 >= ctx.opts.sessions_max {
            return Err(MethodError::new(
                "org.freedesktop.DBus.Error.LimitsExceeded",
                format!(
                    "Maximum number of sessions ({}) reached, refusing further sessions.",
                    ctx.opts.sessions_max
                ),
            ));
        }
        let (id, seq) = st.new_session_id();
        let generation = st.new_generation();
        let now = Stamp::now();
        let new_user = !st.users.contains_key(&uid);
        st.users
            .entry(uid)
            .and_modify(|u| u.generation = generation)
            .or_insert_with(|| User {
                uid,
                gid,
                name: name.clone(),
                created: now,
                runtime_path: runtime_path.clone(),
                generation,
            });
        st.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                seq,
                uid,
                user_name: name.clone(),
                leader: req.leader,
                leader_start: Some(leader.start),
                audit,
                service: req.service,
                kind: req.kind,
                original_kind: req.kind,
                class: req.class,
                desktop: req.desktop,
                seat: req.seat,
                vtnr: req.vtnr,
                tty: req.tty,
                display: req.display,
                remote: req.remote,
                remote_user: req.remote_user,
                remote_host: req.remote_host,
                created: now,
                closing: false,
                idle: false,
                idle_since: now,
                locked: false,
                controller: None,
                devices: Default::default(),
                cgroup: None,
            },
        );
        (id, new_user)
    };

    let created_dir = {
        let _serial = ctx.rundir_lock.lock().await;
        ctx.rundirs.create(uid, gid)
    };
    if let Err(e) = created_dir {
        tracing::error!(session = %id, uid, "cannot create the runtime directory: {e}");
        let mut st = ctx.state();
        st.sessions.remove(&id);
        if new_user && st.user_sessions(uid).is_empty() {
            st.users.remove(&uid);
        }
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        return Err(MethodError::failed(format!(
            "Cannot create the runtime directory: {e}{cause}"
        )));
    }

    if let Some(cg) = &ctx.cgroups {
        match cg.create_session(uid, &id, req.leader) {
            Ok(dir) => {
                if let Some(s) = ctx.state().sessions.get_mut(&id) {
                    s.cgroup = Some(dir);
                }
            }
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                tracing::warn!(session = %id, "session runs without a cgroup: {e}{cause}");
            }
        }
    }

    let (fifo_read, fifo_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| MethodError::failed(format!("Cannot create the session fifo: {e}")))?;
    {
        let ctx = Arc::clone(ctx);
        let id = id.clone();
        tokio::spawn(async move {
            crate::watch::hangup(fifo_read).await;
            release(&ctx, &id, "its session fifo was closed").await;
        });
    }

    let (switch, seat) = {
        let mut st = ctx.state();
        let seat = st.sessions.get(&id).and_then(|s| s.seat.clone());
        let free = seat
            .as_ref()
            .and_then(|s| st.seats.get(s))
            .is_some_and(|s| s.active.is_none());
        let sw = if free { st.activate(&id) } else { None };
        (sw, seat)
    };
    ctx.save();
    tracing::info!(session = %id, uid, leader = req.leader, seat = seat.as_deref().unwrap_or(""), "new session");
    if new_user {
        ctx.manager_signal("UserNew", &(uid, user_path(uid))).await;
    }
    ctx.manager_signal("SessionNew", &(id.as_str(), session_path(&id)))
        .await;
    if let Some(sw) = switch {
        apply_switch(ctx, sw).await;
    } else if let Some(seat) = &seat {
        ctx.seat_changed(seat, &["Sessions"]).await;
    }
    ctx.user_changed(uid, &["Sessions", "State", "Display"])
        .await;
    Ok(Created {
        id,
        runtime_path,
        fifo: fifo_write,
        seat: seat.unwrap_or_default(),
    })
}

/// Makes `id` the foreground session of its seat (switching the VT when it has one).
pub async fn activate(ctx: &Arc<Context>, id: &str) -> Result<(), MethodError> {
    let (seat, vtnr) = {
        let st = ctx.state();
        let s = st.sessions.get(id).ok_or_else(|| no_such_session(id))?;
        if s.closing {
            return Err(login1_error(
                "NoSuchSession",
                format!("Session '{id}' is closing"),
            ));
        }
        let seat = s.seat.clone().ok_or_else(|| {
            MethodError::not_supported(format!("Session '{id}' has no seat to be active on."))
        })?;
        (seat, s.vtnr)
    };
    if vtnr > 0
        && seat == "seat0"
        && let Some(vt) = &ctx.vt
    {
        vt.switch_to(vtnr)
            .map_err(|e| MethodError::failed(format!("Cannot switch to VT {vtnr}: {e}")))?;
    }
    let sw = ctx.state().activate(id);
    if let Some(sw) = sw {
        apply_switch(ctx, sw).await;
    }
    Ok(())
}

/// The kernel switched seat0 to VT `n`: its session (if any) becomes active.
pub async fn vt_changed(ctx: &Arc<Context>, n: u32) {
    let sw = {
        let mut st = ctx.state();
        match st.session_on_vt("seat0", n) {
            Some(id) => st.activate(&id),
            None => {
                // A VT without a session (a getty not yet logged in): nobody is active.
                let active = st.seats.get("seat0").and_then(|s| s.active.clone());
                let on_vt = active
                    .as_ref()
                    .and_then(|a| st.sessions.get(a))
                    .is_some_and(|s| s.vtnr > 0);
                match active {
                    Some(a) if on_vt => st.deactivate_seat_of(&a),
                    _ => None,
                }
            }
        }
    };
    if let Some(sw) = sw {
        apply_switch(ctx, sw).await;
    }
}

/// Carries out a change of the foreground session: the old session's devices are muted and
/// its controller told (`PauseDevice`, before `Active` changes), the new one's restored
/// (`ResumeDevice`, after), and the properties announced.
pub async fn apply_switch(ctx: &Arc<Context>, sw: Switch) {
    /// Controller, session, and the devices (with a new descriptor when resumed).
    type Paused = Option<(String, String, Vec<(u32, u32)>)>;
    type Resumed = Option<(String, String, Vec<(u32, u32, OwnedFd)>)>;
    let (paused, resumed, uids): (Paused, Resumed, Vec<u32>) = {
        let mut st = ctx.state();
        let mut uids = Vec::new();
        let mut paused = None;
        if let Some(from) = &sw.from
            && let Some(s) = st.sessions.get_mut(from)
        {
            uids.push(s.uid);
            for d in s.devices.values_mut() {
                d.pause();
            }
            paused = s
                .controller
                .clone()
                .map(|c| (c, from.clone(), s.devices.keys().copied().collect()));
        }
        let mut resumed = None;
        if let Some(to) = &sw.to
            && let Some(s) = st.sessions.get_mut(to)
        {
            uids.push(s.uid);
            let mut fds = Vec::new();
            for d in s.devices.values_mut() {
                match d.resume(&ctx.devices) {
                    Ok(()) => match d.duplicate() {
                        Ok(fd) => fds.push((d.major, d.minor, fd)),
                        Err(e) => tracing::warn!("cannot duplicate a device descriptor: {e}"),
                    },
                    Err(e) => tracing::warn!(session = %to, "cannot resume a device: {e}"),
                }
            }
            resumed = s.controller.clone().map(|c| (c, to.clone(), fds));
        }
        (paused, resumed, uids)
    };
    if let Some((controller, id, devices)) = paused {
        let path = paths::session(&id);
        for (major, minor) in devices {
            ctx.unicast(
                &controller,
                &path,
                SESSION.name,
                "PauseDevice",
                &(major, minor, "force"),
            )
            .await;
        }
    }
    for id in [&sw.from, &sw.to].into_iter().flatten() {
        ctx.session_changed(id, &["Active", "State"]).await;
    }
    if let Some((controller, id, fds)) = resumed {
        let path = paths::session(&id);
        for (major, minor, fd) in fds {
            let body = (major, minor, zbus::OwnedFd::from(fd));
            ctx.unicast(&controller, &path, SESSION.name, "ResumeDevice", &body)
                .await;
        }
    }
    ctx.seat_changed(&sw.seat, &["ActiveSession", "Sessions"])
        .await;
    for uid in uids {
        ctx.user_changed(uid, &["State", "Display"]).await;
    }
    ctx.save();
    tracing::info!(seat = %sw.seat, from = sw.from.as_deref().unwrap_or("-"), to = sw.to.as_deref().unwrap_or("-"), "active session changed");
}

/// Takes devices and control away from a session; the devices are muted first so the former
/// controller cannot keep using its copies. Returns the former controller and the devices.
fn strip_control(ctx: &Context, s: &mut Session) -> Option<(String, Vec<(u32, u32)>)> {
    let controller = s.controller.take()?;
    let mut devices: Vec<Device> = std::mem::take(&mut s.devices).into_values().collect();
    for d in &mut devices {
        d.pause();
    }
    let numbers = devices.iter().map(|d| (d.major, d.minor)).collect();
    s.kind = s.original_kind;
    if s.vtnr > 0
        && s.seat.as_deref() == Some("seat0")
        && let Some(vt) = &ctx.vt
        && let Err(e) = vt.restore(s.vtnr)
    {
        tracing::warn!(session = %s.id, "cannot give VT {} back to the console: {e}", s.vtnr);
    }
    Some((controller, numbers))
}

/// Releases the controller of `id` (`ReleaseControl`, or the controller left the bus); when
/// `notify` the former controller is told its devices are gone.
pub async fn release_control(ctx: &Arc<Context>, id: &str, notify: bool) {
    let stripped = {
        let mut st = ctx.state();
        st.sessions.get_mut(id).and_then(|s| strip_control(ctx, s))
    };
    let Some((controller, devices)) = stripped else {
        return;
    };
    if notify {
        let path = paths::session(id);
        for (major, minor) in devices {
            ctx.unicast(
                &controller,
                &path,
                SESSION.name,
                "PauseDevice",
                &(major, minor, "gone"),
            )
            .await;
        }
    }
    ctx.session_changed(id, &["Type"]).await;
    ctx.save();
}

/// A bus client went away: every session it controlled loses its controller.
pub async fn controller_gone(ctx: &Arc<Context>, name: &str) {
    let ids: Vec<String> = ctx
        .state()
        .sessions
        .values()
        .filter(|s| s.controller.as_deref() == Some(name))
        .map(|s| s.id.clone())
        .collect();
    for id in ids {
        tracing::info!(session = %id, controller = name, "the session's controller left the bus");
        release_control(ctx, &id, false).await;
    }
}

/// Ends session `id`: it becomes `closing`, gives up its seat, controller and devices, and is
/// removed once its processes are gone (with `KillUserProcesses`, they are stopped).
pub async fn release(ctx: &Arc<Context>, id: &str, why: &str) {
    let (switch, cgroup, uid, seat) = {
        let mut st = ctx.state();
        let Some(s) = st.sessions.get_mut(id) else {
            return;
        };
        if s.closing {
            return;
        }
        s.closing = true;
        let _ = strip_control(ctx, s);
        let (cgroup, uid, seat) = (s.cgroup.clone(), s.uid, s.seat.clone());
        let sw = st.deactivate_seat_of(id);
        (sw, cgroup, uid, seat)
    };
    tracing::info!(session = %id, uid, "session closing: {why}");
    if ctx.opts.kill_user_processes {
        stop_processes(ctx, id);
    }
    ctx.session_changed(id, &["Active", "State"]).await;
    if let Some(sw) = switch {
        apply_switch(ctx, sw).await;
    } else if let Some(seat) = &seat {
        ctx.seat_changed(seat, &["Sessions"]).await;
    }
    ctx.user_changed(uid, &["State", "Display"]).await;
    ctx.save();
    let gone = cgroup.as_deref().is_none_or(|d| !Cgroups::populated(d));
    if gone {
        finalize(ctx, id).await;
    }
}

/// Removes a closed session whose processes are gone.
pub async fn finalize(ctx: &Arc<Context>, id: &str) {
    let removed = {
        let mut st = ctx.state();
        let Some(s) = st.sessions.remove(id) else {
            return;
        };
        let last = st.user_sessions(s.uid).is_empty();
        let generation = st.users.get(&s.uid).map(|u| u.generation);
        (s, last, generation)
    };
    let (s, last, generation) = removed;
    if let Some(dir) = &s.cgroup
        && let Err(e) = Cgroups::remove(dir)
    {
        tracing::warn!(session = %id, "cannot remove the session cgroup: {e}");
    }
    tracing::info!(session = %id, uid = s.uid, "session removed");
    ctx.manager_signal("SessionRemoved", &(id, session_path(id)))
        .await;
    if let Some(seat) = &s.seat {
        ctx.seat_changed(seat, &["Sessions"]).await;
    }
    ctx.user_changed(s.uid, &["Sessions", "State", "Display"])
        .await;
    ctx.save();
    if last && let Some(generation) = generation {
        schedule_user_stop(ctx, s.uid, generation);
    }
}

fn schedule_user_stop(ctx: &Arc<Context>, uid: u32, generation: u64) {
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        tokio::time::sleep(ctx.opts.user_stop_delay).await;
        let _serial = ctx.rundir_lock.lock().await;
        let stop = {
            let mut st = ctx.state();
            let current = st
                .users
                .get(&uid)
                .is_some_and(|u| u.generation == generation);
            if current && st.user_sessions(uid).is_empty() {
                st.users.remove(&uid)
            } else {
                None
            }
        };
        if stop.is_none() {
            return;
        }
        if let Err(e) = ctx.rundirs.remove(uid) {
            tracing::warn!(uid, "cannot remove the runtime directory: {e}");
        }
        if let Some(cg) = &ctx.cgroups
            && let Err(e) = cg.remove_user(uid)
        {
            tracing::debug!(uid, "user cgroup stays: {e}");
        }
        tracing::info!(uid, "user logged out");
        ctx.manager_signal("UserRemoved", &(uid, user_path(uid)))
            .await;
        ctx.save();
    });
}

/// The processes of a session without a cgroup: its leader and the leader's descendants (each
/// with its start time, so a recycled PID is left alone).
fn session_tree(ctx: &Context, s: &Session) -> Vec<ProcInfo> {
    let Some(leader) = procs::info(&ctx.proc_root, s.leader) else {
        return Vec::new();
    };
    if s.leader_start.is_some_and(|t| t != leader.start) {
        return Vec::new();
    }
    let mut v = vec![leader];
    v.extend(procs::descendants(&ctx.proc_root, s.leader));
    v
}

fn signal_tree(ctx: &Context, tree: &[ProcInfo], sig: i32) {
    for p in tree {
        if procs::info(&ctx.proc_root, p.pid).is_some_and(|now| now.start == p.start) {
            signal_pid(p.pid, sig);
        }
    }
}

/// Sends `sig` to the leader of `id` (`leader`) or to all its processes (`all`).
pub fn kill(ctx: &Context, id: &str, all: bool, sig: i32) -> Result<(), MethodError> {
    let (cgroup, tree) = {
        let st = ctx.state();
        let s = st.sessions.get(id).ok_or_else(|| no_such_session(id))?;
        let tree = session_tree(ctx, s);
        (s.cgroup.clone(), tree)
    };
    match (all, cgroup) {
        (true, Some(dir)) => Cgroups::signal(&dir, sig),
        (true, None) => signal_tree(ctx, &tree, sig),
        (false, _) => signal_tree(ctx, &tree[..tree.len().min(1)], sig),
    }
    Ok(())
}

/// SIGTERM (and SIGCONT) to every process of `id`, SIGKILL to what is left after the stop
/// timeout.
fn stop_processes(ctx: &Arc<Context>, id: &str) {
    let (cgroup, tree) = {
        let st = ctx.state();
        let Some(s) = st.sessions.get(id) else {
            return;
        };
        (s.cgroup.clone(), session_tree(ctx, s))
    };
    match &cgroup {
        Some(dir) => {
            Cgroups::signal(dir, libc::SIGTERM);
            Cgroups::signal(dir, libc::SIGCONT);
        }
        None => {
            signal_tree(ctx, &tree, libc::SIGTERM);
            signal_tree(ctx, &tree, libc::SIGCONT);
        }
    }
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + ctx.opts.stop_timeout;
        if let Some(dir) = &cgroup {
            while Cgroups::populated(dir) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if Cgroups::populated(dir) {
                Cgroups::kill(dir);
            }
        } else {
            tokio::time::sleep_until(deadline).await;
            signal_tree(&ctx, &tree, libc::SIGKILL);
        }
    });
}

/// `TerminateSession`: stops every process of the session and ends it.
pub async fn terminate(ctx: &Arc<Context>, id: &str) -> Result<(), MethodError> {
    if !ctx.state().sessions.contains_key(id) {
        return Err(no_such_session(id));
    }
    stop_processes(ctx, id);
    release(ctx, id, "terminated").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_reported_with_the_login1_error() {
        let e = lookup_user(4_000_000_000).unwrap_err();
        assert_eq!(e.name, "org.freedesktop.login1.NoSuchUser");
        assert_eq!(lookup_user(0).unwrap().0, "root");
    }
}
