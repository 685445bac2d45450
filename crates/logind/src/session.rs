//! `org.freedesktop.login1.Session` methods: control and devices for the session's
//! compositor or display server, and the session's own state.

use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::{Call, MethodError, validate, zbus};

use crate::daemon::Context;
use crate::devices::{Device, DeviceError};
use crate::lifecycle::{self, login1_error, no_such_session};
use crate::manager::{check_signal, lock_signal, require_owner};
use crate::model::{SessionType, Stamp};

fn not_in_control() -> MethodError {
    login1_error("NotInControl", "You are not in control of this session")
}

/// The caller's unique name, which a controller is identified by.
fn sender(call: &Call) -> Result<String, MethodError> {
    call.sender().ok_or_else(|| {
        MethodError::not_supported("Session control needs a bus connection with a unique name.")
    })
}

/// Succeeds when the caller is the controller of session `id`.
fn require_controller(ctx: &Context, call: &Call, id: &str) -> Result<(), MethodError> {
    let me = sender(call)?;
    let st = ctx.state();
    let s = st.sessions.get(id).ok_or_else(|| no_such_session(id))?;
    if s.controller.as_deref() == Some(me.as_str()) {
        Ok(())
    } else {
        Err(not_in_control())
    }
}

fn device_error(e: DeviceError) -> MethodError {
    match e {
        DeviceError::NotAllowed { .. } | DeviceError::OtherSeat { .. } => {
            MethodError::access_denied(format!("Access denied: {e}."))
        }
        DeviceError::NoNode { .. } => {
            MethodError::new("org.freedesktop.DBus.Error.FileNotFound", format!("{e}."))
        }
        other => {
            let cause = std::error::Error::source(&other)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            MethodError::failed(format!("{other}{cause}"))
        }
    }
}

async fn take_control(ctx: &Arc<Context>, call: &Call, id: &str) -> Result<Reply, MethodError> {
    let force: bool = call.args()?;
    let caller = ctx.caller(call).await?;
    let me = sender(call)?;
    require_owner(ctx, &caller, id, "take control of")?;
    if force && !caller.is_root() {
        return Err(MethodError::access_denied(
            "Access denied: only root may force taking control of a session.",
        ));
    }
    let displaced = {
        let st = ctx.state();
        let s = st.sessions.get(id).ok_or_else(|| no_such_session(id))?;
        if s.closing {
            return Err(no_such_session(id));
        }
        match &s.controller {
            Some(c) if *c == me => return Ok(Reply::empty()),
            Some(_) if !force => {
                return Err(MethodError::new(
                    "System.Error.EBUSY",
                    format!("Session {id} already has a controller."),
                ));
            }
            Some(_) => true,
            None => false,
        }
    };
    if displaced {
        lifecycle::release_control(ctx, id, true).await;
    }
    let vt = {
        let mut st = ctx.state();
        let s = st.sessions.get_mut(id).ok_or_else(|| no_such_session(id))?;
        s.controller = Some(me.clone());
        (s.vtnr > 0 && s.seat.as_deref() == Some("seat0")).then_some(s.vtnr)
    };
    if let (Some(n), Some(console)) = (vt, &ctx.vt)
        && let Err(e) = console.prepare(n)
    {
        tracing::warn!(session = id, "cannot put VT {n} in graphics mode: {e}");
    }
    tracing::info!(session = id, controller = me, "session controller set");
    ctx.save();
    Ok(Reply::empty())
}

async fn take_device(ctx: &Arc<Context>, call: &Call, id: &str) -> Result<Reply, MethodError> {
    let (major, minor): (u32, u32) = call.args()?;
    require_controller(ctx, call, id)?;
    let seat = {
        let st = ctx.state();
        let s = st.sessions.get(id).ok_or_else(|| no_such_session(id))?;
        if s.devices.contains_key(&(major, minor)) {
            return Err(login1_error("DeviceIsTaken", "Device already taken"));
        }
        s.seat.clone().ok_or_else(|| {
            MethodError::access_denied(format!(
                "Access denied: session {id} has no seat, so it has no devices."
            ))
        })?
    };
    let kind = ctx
        .devices
        .check(major, minor, &seat)
        .map_err(device_error)?;
    let fd = ctx.devices.open(major, minor).map_err(device_error)?;
    let (dup, active) = {
        let mut st = ctx.state();
        let active = st.is_active(id);
        let s = st.sessions.get_mut(id).ok_or_else(|| no_such_session(id))?;
        if s.devices.contains_key(&(major, minor)) {
            return Err(login1_error("DeviceIsTaken", "Device already taken"));
        }
        let mut device = Device {
            major,
            minor,
            kind,
            fd,
            paused: false,
        };
        device.start(active);
        let dup = device
            .duplicate()
            .map_err(|e| MethodError::failed(format!("Cannot duplicate the device: {e}")))?;
        s.devices.insert((major, minor), device);
        (dup, active)
    };
    tracing::info!(session = id, major, minor, ?kind, active, "device taken");
    ctx.save();
    Ok(Reply::new((zbus::OwnedFd::from(dup), !active)))
}

async fn release_device(ctx: &Arc<Context>, call: &Call, id: &str) -> Result<Reply, MethodError> {
    let (major, minor): (u32, u32) = call.args()?;
    require_controller(ctx, call, id)?;
    let removed = {
        let mut st = ctx.state();
        let s = st.sessions.get_mut(id).ok_or_else(|| no_such_session(id))?;
        s.devices.remove(&(major, minor))
    };
    let mut device = removed.ok_or_else(|| login1_error("DeviceNotTaken", "Device not taken"))?;
    device.pause();
    drop(device);
    ctx.save();
    Ok(Reply::empty())
}

async fn set_brightness(ctx: &Arc<Context>, call: &Call, id: &str) -> Result<Reply, MethodError> {
    let (subsystem, name, value): (String, String, u32) = call.args()?;
    let caller = ctx.caller(call).await?;
    require_owner(ctx, &caller, id, "change the brightness for")?;
    if !matches!(subsystem.as_str(), "backlight" | "leds") {
        return Err(MethodError::invalid_args(format!(
            "Subsystem type {subsystem} not supported, must be one of 'backlight' or 'leds'."
        )));
    }
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if !name_ok {
        return Err(MethodError::invalid_args(format!(
            "Invalid device name {name:?}."
        )));
    }
    if !ctx.state().is_active(id) {
        return Err(login1_error(
            "NotInControl",
            "Session is not in foreground, refusing.",
        ));
    }
    let path = ctx
        .opts
        .sysfs
        .join("class")
        .join(&subsystem)
        .join(&name)
        .join("brightness");
    std::fs::write(&path, value.to_string())
        .map_err(|e| MethodError::failed(format!("Cannot set {}: {e}", path.display())))?;
    Ok(Reply::empty())
}

/// Runs Session method `name` on session `id`.
pub async fn call(
    ctx: &Arc<Context>,
    call: &Call,
    id: &str,
    name: &str,
) -> Result<Reply, MethodError> {
    match name {
        "TakeControl" => take_control(ctx, call, id).await,
        "ReleaseControl" => {
            require_controller(ctx, call, id)?;
            lifecycle::release_control(ctx, id, false).await;
            Ok(Reply::empty())
        }
        "TakeDevice" => take_device(ctx, call, id).await,
        "ReleaseDevice" => release_device(ctx, call, id).await,
        "PauseDeviceComplete" => {
            let (major, minor): (u32, u32) = call.args()?;
            require_controller(ctx, call, id)?;
            // Every pause is forced (the device is muted before the signal goes out), so
            // there is nothing to wait for; the call only has to name a taken device.
            let known = ctx
                .state()
                .sessions
                .get(id)
                .is_some_and(|s| s.devices.contains_key(&(major, minor)));
            if known {
                Ok(Reply::empty())
            } else {
                Err(login1_error("DeviceNotTaken", "Device not taken"))
            }
        }
        "SetType" => {
            let kind: String = call.args()?;
            let kind = SessionType::parse(&kind)?;
            require_controller(ctx, call, id)?;
            if let Some(s) = ctx.state().sessions.get_mut(id) {
                s.kind = kind;
            }
            ctx.session_changed(id, &["Type"]).await;
            ctx.save();
            Ok(Reply::empty())
        }
        "SetDisplay" => {
            let display: String = call.args()?;
            validate::single_line("display", &display, 255)?;
            require_controller(ctx, call, id)?;
            if let Some(s) = ctx.state().sessions.get_mut(id) {
                s.display = display;
            }
            ctx.session_changed(id, &["Display"]).await;
            ctx.save();
            Ok(Reply::empty())
        }
        "SetBrightness" => set_brightness(ctx, call, id).await,
        "SetIdleHint" | "SetLockedHint" => {
            let value: bool = call.args()?;
            let caller = ctx.caller(call).await?;
            require_owner(ctx, &caller, id, "change hints of")?;
            let changed = {
                let mut st = ctx.state();
                let s = st.sessions.get_mut(id).ok_or_else(|| no_such_session(id))?;
                if name == "SetIdleHint" {
                    let changed = s.idle != value;
                    if changed {
                        s.idle = value;
                        s.idle_since = Stamp::now();
                    }
                    changed
                } else {
                    let changed = s.locked != value;
                    s.locked = value;
                    changed
                }
            };
            if changed {
                if name == "SetIdleHint" {
                    let names = ["IdleHint", "IdleSinceHint", "IdleSinceHintMonotonic"];
                    ctx.session_changed(id, &names).await;
                    ctx.manager_changed(&names).await;
                    let (uid, seat) = ctx
                        .state()
                        .sessions
                        .get(id)
                        .map(|s| (s.uid, s.seat.clone()))
                        .unzip();
                    if let Some(uid) = uid {
                        ctx.user_changed(uid, &names).await;
                    }
                    if let Some(Some(seat)) = seat {
                        ctx.seat_changed(&seat, &names).await;
                    }
                } else {
                    ctx.session_changed(id, &["LockedHint"]).await;
                }
            }
            Ok(Reply::empty())
        }
        "Terminate" => {
            let caller = ctx.caller(call).await?;
            require_owner(ctx, &caller, id, "terminate")?;
            lifecycle::terminate(ctx, id).await?;
            Ok(Reply::empty())
        }
        "Activate" => {
            let caller = ctx.caller(call).await?;
            require_owner(ctx, &caller, id, "activate")?;
            lifecycle::activate(ctx, id).await?;
            Ok(Reply::empty())
        }
        "Lock" | "Unlock" => {
            let caller = ctx.caller(call).await?;
            require_owner(ctx, &caller, id, "lock or unlock")?;
            lock_signal(ctx, id, name == "Lock").await;
            Ok(Reply::empty())
        }
        "Kill" => {
            let (who, sig): (String, i32) = call.args()?;
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
            let caller = ctx.caller(call).await?;
            require_owner(ctx, &caller, id, "send signals to")?;
            lifecycle::kill(ctx, id, all, sig)?;
            Ok(Reply::empty())
        }
        other => Err(MethodError::not_supported(format!(
            "{other} is not supported by dynamod-logind."
        ))),
    }
}
