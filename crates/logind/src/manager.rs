//! `org.freedesktop.login1.Manager` methods.

use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::zbus::wire::{ObjectPath, OwnedVariant};
use dynamod_dbus::{Call, MethodError, validate, zbus};

use crate::daemon::{Context, seat_path, session_path, user_path};
use crate::iface::SESSION;
use crate::lifecycle::{self, NewSession, login1_error, no_such_session};
use crate::model::{PowerAction, SessionClass, SessionType};
use crate::policy::{self, Caller};
use crate::{inhibit, paths, power, vt};

/// The highest signal number (`SIGRTMAX` on Linux).
const SIGNAL_MAX: i32 = 64;

/// Checks a signal number for `Kill*`.
pub fn check_signal(sig: i32) -> Result<(), MethodError> {
    if (1..=SIGNAL_MAX).contains(&sig) {
        Ok(())
    } else {
        Err(MethodError::invalid_args(format!("Invalid signal {sig}")))
    }
}

fn no_such_user(uid: u32) -> MethodError {
    login1_error("NoSuchUser", format!("User ID {uid} is not logged in"))
}

fn no_such_seat(id: &str) -> MethodError {
    login1_error("NoSuchSeat", format!("No seat '{id}' known"))
}

/// Resolves a session id as systemd does: `""` and `self` are the caller's own session,
/// `auto` falls back to the caller's user's display session.
fn resolve_session(ctx: &Context, caller: &Caller, id: &str) -> Result<String, MethodError> {
    let own = || caller.pid.and_then(|p| ctx.session_of_pid(p));
    let resolved = match id {
        "" | "self" => own(),
        "auto" => own().or_else(|| ctx.state().user_display(caller.uid)),
        other => {
            return if ctx.state().sessions.contains_key(other) {
                Ok(other.to_owned())
            } else {
                Err(no_such_session(other))
            };
        }
    };
    resolved.ok_or_else(|| {
        login1_error(
            "NoSessionForPID",
            format!(
                "Caller does not belong to any known session{}",
                caller
                    .pid
                    .map(|p| format!(" (PID {p})"))
                    .unwrap_or_default()
            ),
        )
    })
}

/// Resolves a seat id: `""`, `self` and `auto` are the caller's session's seat.
fn resolve_seat(ctx: &Context, caller: &Caller, id: &str) -> Result<String, MethodError> {
    match id {
        "" | "self" | "auto" => {
            let session = resolve_session(ctx, caller, if id == "self" { "self" } else { "auto" })?;
            ctx.state()
                .sessions
                .get(&session)
                .and_then(|s| s.seat.clone())
                .ok_or_else(|| {
                    login1_error("NoSuchSeat", format!("Session '{session}' has no seat."))
                })
        }
        other if ctx.state().seats.contains_key(other) => Ok(other.to_owned()),
        other => Err(no_such_seat(other)),
    }
}

/// The owner of session `id` or root, else AccessDenied.
pub fn require_owner(
    ctx: &Context,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<(), MethodError> {
    let uid = ctx
        .state()
        .sessions
        .get(id)
        .map(|s| s.uid)
        .ok_or_else(|| no_such_session(id))?;
    if caller.is_root() || caller.uid == uid {
        Ok(())
    } else {
        Err(MethodError::access_denied(format!(
            "Access denied: only root or the owner of session {id} may {action} it."
        )))
    }
}

/// `Lock()` / `Unlock()` on a session object.
pub async fn lock_signal(ctx: &Context, id: &str, lock: bool) {
    let member = if lock { "Lock" } else { "Unlock" };
    ctx.signals
        .emit(&paths::session(id), SESSION.name, member, &())
        .await;
}

/// `KillUser`: every process of the user's sessions (and its user cgroup).
pub fn kill_user(ctx: &Context, uid: u32, sig: i32) -> Result<(), MethodError> {
    let ids: Vec<String> = {
        let st = ctx.state();
        if !st.users.contains_key(&uid) {
            return Err(no_such_user(uid));
        }
        st.user_sessions(uid).iter().map(|s| s.id.clone()).collect()
    };
    match &ctx.cgroups {
        Some(cg) => crate::cgroup::Cgroups::signal(&cg.user(uid), sig),
        None => {
            for id in ids {
                lifecycle::kill(ctx, &id, true, sig)?;
            }
        }
    }
    Ok(())
}

/// `TerminateUser`: terminates every session of the user.
pub async fn terminate_user(ctx: &Arc<Context>, uid: u32) -> Result<(), MethodError> {
    let ids: Vec<String> = {
        let st = ctx.state();
        if !st.users.contains_key(&uid) {
            return Err(no_such_user(uid));
        }
        st.user_sessions(uid).iter().map(|s| s.id.clone()).collect()
    };
    for id in ids {
        lifecycle::terminate(ctx, &id).await?;
    }
    Ok(())
}

/// `TerminateSeat`: terminates every session on the seat.
pub async fn terminate_seat(ctx: &Arc<Context>, seat: &str) -> Result<(), MethodError> {
    let ids: Vec<String> = ctx
        .state()
        .seat_sessions(seat)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    for id in ids {
        lifecycle::terminate(ctx, &id).await?;
    }
    Ok(())
}

type CreateArgs = (
    u32,
    u32,
    String,
    String,
    String,
    String,
    String,
    u32,
    String,
    String,
    bool,
    String,
    String,
    Vec<(String, OwnedVariant)>,
);

async fn create_session(ctx: &Arc<Context>, call: &Call) -> Result<Reply, MethodError> {
    let caller = ctx.caller(call).await?;
    policy::require_root(&caller, "create sessions")?;
    let (
        uid,
        pid,
        service,
        kind,
        class,
        desktop,
        seat,
        vtnr,
        tty,
        display,
        remote,
        remote_user,
        remote_host,
        properties,
    ): CreateArgs = call.args()?;
    let leader = match pid {
        0 => caller
            .pid
            .ok_or_else(|| MethodError::invalid_args("The caller's PID is unknown; pass it."))?,
        p => p,
    };
    for (what, value) in [
        ("service", &service),
        ("desktop", &desktop),
        ("display", &display),
        ("remote user", &remote_user),
        ("remote host", &remote_host),
    ] {
        validate::single_line(what, value, 255)?;
    }
    let tty = tty.strip_prefix("/dev/").unwrap_or(&tty).to_owned();
    validate::single_line("tty", &tty, 255)?;
    if tty.split('/').any(|c| c == ".." || c == ".") {
        return Err(MethodError::invalid_args(format!("Invalid tty {tty:?}.")));
    }
    let kind = SessionType::parse(&kind)?;
    let class = SessionClass::parse(&class)?;
    let seat = match seat.as_str() {
        "" => None,
        s if remote => {
            return Err(MethodError::invalid_args(format!(
                "Remote sessions cannot be attached to seat {s}."
            )));
        }
        s => {
            let st = ctx.state();
            if !st.seats.contains_key(s) {
                return Err(no_such_seat(s));
            }
            Some(s.to_owned())
        }
    };
    let can_tty = seat
        .as_ref()
        .and_then(|s| ctx.state().seats.get(s).map(|st| st.can_tty))
        .unwrap_or(false);
    let vtnr = match (vtnr, &seat) {
        (0, Some(_)) if can_tty => vt::vt_of_tty(&tty).unwrap_or(0),
        (0, _) => 0,
        (n, Some(_)) if can_tty && n < 64 => n,
        (n, _) => {
            return Err(MethodError::invalid_args(format!(
                "VT number {n} given for a session without a seat with virtual terminals."
            )));
        }
    };
    for (name, _) in &properties {
        tracing::debug!(property = name, "CreateSession property ignored");
    }
    let created = lifecycle::create(
        ctx,
        NewSession {
            uid,
            leader,
            service,
            kind,
            class,
            desktop,
            seat,
            vtnr,
            tty,
            display,
            remote,
            remote_user,
            remote_host,
        },
    )
    .await?;
    let path = session_path(&created.id);
    Ok(Reply::new((
        created.id,
        path,
        created.runtime_path,
        zbus::OwnedFd::from(created.fifo),
        uid,
        created.seat,
        vtnr,
        false,
    )))
}

/// Runs Manager method `name`.
pub async fn call(ctx: &Arc<Context>, call: &Call, name: &str) -> Result<Reply, MethodError> {
    if let Some(action) = PowerAction::from_method(name) {
        if name.starts_with("Can") {
            return power::can(ctx, call, action).await;
        }
        let flags = if name.ends_with("WithFlags") {
            call.args::<u64>()?
        } else {
            let _interactive: bool = call.args()?;
            0
        };
        return power::request(ctx, call, action, flags).await;
    }
    match name {
        "GetSession" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            Ok(Reply::new(session_path(&id)))
        }
        "GetSessionByPID" => {
            let pid: u32 = call.args()?;
            let caller = ctx.caller(call).await?;
            let pid = if pid == 0 {
                caller.pid.unwrap_or(0)
            } else {
                pid
            };
            let id = ctx.session_of_pid(pid).ok_or_else(|| {
                login1_error(
                    "NoSessionForPID",
                    format!("PID {pid} does not belong to any known session"),
                )
            })?;
            Ok(Reply::new(session_path(&id)))
        }
        "GetUser" => {
            let uid: u32 = call.args()?;
            if !ctx.state().users.contains_key(&uid) {
                return Err(no_such_user(uid));
            }
            Ok(Reply::new(user_path(uid)))
        }
        "GetUserByPID" => {
            let pid: u32 = call.args()?;
            let caller = ctx.caller(call).await?;
            let pid = if pid == 0 {
                caller.pid.unwrap_or(0)
            } else {
                pid
            };
            let uid = ctx
                .session_of_pid(pid)
                .and_then(|id| ctx.state().sessions.get(&id).map(|s| s.uid))
                .ok_or_else(|| {
                    login1_error(
                        "NoUserForPID",
                        format!(
                            "PID {pid} does not belong to any logged in user or lingering user"
                        ),
                    )
                })?;
            Ok(Reply::new(user_path(uid)))
        }
        "GetSeat" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_seat(ctx, &caller, &id)?;
            Ok(Reply::new(seat_path(&id)))
        }
        "ListSessions" => {
            let st = ctx.state();
            let v: Vec<(String, u32, String, String, ObjectPath<'static>)> = st
                .sessions_in_order()
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.uid,
                        s.user_name.clone(),
                        s.seat.clone().unwrap_or_default(),
                        session_path(&s.id),
                    )
                })
                .collect();
            Ok(Reply::new(v))
        }
        "ListUsers" => {
            let st = ctx.state();
            let v: Vec<(u32, String, ObjectPath<'static>)> = st
                .users
                .values()
                .map(|u| (u.uid, u.name.clone(), user_path(u.uid)))
                .collect();
            Ok(Reply::new(v))
        }
        "ListSeats" => {
            let st = ctx.state();
            let v: Vec<(String, ObjectPath<'static>)> =
                st.seats.keys().map(|s| (s.clone(), seat_path(s))).collect();
            Ok(Reply::new(v))
        }
        "ListInhibitors" => Ok(inhibit::list(ctx)),
        "Inhibit" => inhibit::take(ctx, call).await,
        "CreateSession" => create_session(ctx, call).await,
        "ReleaseSession" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            require_owner(ctx, &caller, &id, "release")?;
            lifecycle::release(ctx, &id, "released").await;
            Ok(Reply::empty())
        }
        "ActivateSession" | "ActivateSessionOnSeat" => {
            let (id, seat) = if name == "ActivateSession" {
                (call.args::<String>()?, None)
            } else {
                let (id, seat): (String, String) = call.args()?;
                (id, Some(seat))
            };
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            if let Some(seat) = seat {
                let seat = resolve_seat(ctx, &caller, &seat)?;
                let on = ctx.state().sessions.get(&id).and_then(|s| s.seat.clone());
                if on.as_deref() != Some(seat.as_str()) {
                    return Err(login1_error(
                        "SessionNotOnSeat",
                        format!("Session {id} not on seat {seat}"),
                    ));
                }
            }
            require_owner(ctx, &caller, &id, "activate")?;
            lifecycle::activate(ctx, &id).await?;
            Ok(Reply::empty())
        }
        "LockSession" | "UnlockSession" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            require_owner(ctx, &caller, &id, "lock or unlock")?;
            lock_signal(ctx, &id, name == "LockSession").await;
            Ok(Reply::empty())
        }
        "LockSessions" | "UnlockSessions" => {
            let caller = ctx.caller(call).await?;
            policy::require_root(&caller, "lock or unlock all sessions")?;
            let ids: Vec<String> = ctx.state().sessions.keys().cloned().collect();
            for id in ids {
                lock_signal(ctx, &id, name == "LockSessions").await;
            }
            Ok(Reply::empty())
        }
        "KillSession" => {
            let (id, who, sig): (String, String, i32) = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            let all = match who.as_str() {
                "" | "all" => true,
                "leader" => false,
                other => {
                    return Err(MethodError::invalid_args(format!(
                        "Invalid kill parameter '{other}'"
                    )));
                }
            };
            check_signal(sig)?;
            require_owner(ctx, &caller, &id, "send signals to")?;
            lifecycle::kill(ctx, &id, all, sig)?;
            Ok(Reply::empty())
        }
        "KillUser" => {
            let (uid, sig): (u32, i32) = call.args()?;
            check_signal(sig)?;
            let caller = ctx.caller(call).await?;
            policy::require_self(&caller, uid, &format!("send signals to user {uid}"))?;
            kill_user(ctx, uid, sig)?;
            Ok(Reply::empty())
        }
        "TerminateSession" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            let id = resolve_session(ctx, &caller, &id)?;
            require_owner(ctx, &caller, &id, "terminate")?;
            lifecycle::terminate(ctx, &id).await?;
            Ok(Reply::empty())
        }
        "TerminateUser" => {
            let uid: u32 = call.args()?;
            let caller = ctx.caller(call).await?;
            policy::require_self(&caller, uid, &format!("terminate user {uid}"))?;
            terminate_user(ctx, uid).await?;
            Ok(Reply::empty())
        }
        "TerminateSeat" => {
            let id: String = call.args()?;
            let caller = ctx.caller(call).await?;
            policy::require_root(&caller, "terminate seats")?;
            let seat = resolve_seat(ctx, &caller, &id)?;
            terminate_seat(ctx, &seat).await?;
            Ok(Reply::empty())
        }
        "SetUserLinger" => {
            let (uid, enable, _interactive): (u32, bool, bool) = call.args()?;
            let caller = ctx.caller(call).await?;
            policy::require_self(&caller, uid, &format!("change lingering of user {uid}"))?;
            if enable {
                Err(MethodError::not_supported(
                    "Lingering users are not supported by dynamod-logind.",
                ))
            } else {
                Ok(Reply::empty())
            }
        }
        "AttachDevice" | "FlushDevices" => {
            let caller = ctx.caller(call).await?;
            policy::require_root(&caller, "assign devices to seats")?;
            Err(MethodError::not_supported(
                "dynamod-logind has only seat0; devices cannot be assigned to other seats.",
            ))
        }
        "ScheduleShutdown" => {
            let caller = ctx.caller(call).await?;
            policy::require_root(&caller, "schedule a shutdown")?;
            Err(MethodError::not_supported(
                "Scheduled shutdowns are not supported by dynamod-logind.",
            ))
        }
        "CancelScheduledShutdown" => Ok(Reply::new(false)),
        "CanRebootParameter"
        | "CanRebootToFirmwareSetup"
        | "CanRebootToBootLoaderMenu"
        | "CanRebootToBootLoaderEntry" => Ok(Reply::new("na")),
        "SetRebootParameter"
        | "SetRebootToFirmwareSetup"
        | "SetRebootToBootLoaderMenu"
        | "SetRebootToBootLoaderEntry"
        | "SetWallMessage" => {
            let caller = ctx.caller(call).await?;
            policy::require_root(&caller, "change reboot and wall settings")?;
            Err(MethodError::not_supported(format!(
                "{name} is not supported by dynamod-logind."
            )))
        }
        other => Err(MethodError::not_supported(format!(
            "{other} is not supported by dynamod-logind."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers_must_be_real_signals() {
        assert!(check_signal(15).is_ok());
        assert!(check_signal(64).is_ok());
        for bad in [0, -1, 65] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
