//! `org.freedesktop.login1.Seat` methods.

use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::{Call, MethodError};

use crate::daemon::Context;
use crate::lifecycle::{self, login1_error, no_such_session};
use crate::manager::{require_owner, terminate_seat};
use crate::policy::{self, Caller};

/// Switching sessions on a seat: root, or a user with a session on that seat (systemd's
/// `chvt` polkit action allows the seat's local sessions).
fn require_seat_user(ctx: &Context, caller: &Caller, seat: &str) -> Result<(), MethodError> {
    let on_seat = ctx
        .state()
        .seat_sessions(seat)
        .iter()
        .any(|s| s.uid == caller.uid && !s.closing);
    if caller.is_root() || on_seat {
        Ok(())
    } else {
        Err(MethodError::access_denied(format!(
            "Access denied: only root or a user with a session on {seat} may switch sessions there."
        )))
    }
}

/// Runs Seat method `name` on seat `seat`.
pub async fn call(
    ctx: &Arc<Context>,
    call: &Call,
    seat: &str,
    name: &str,
) -> Result<Reply, MethodError> {
    let caller = ctx.caller(call).await?;
    let target = match name {
        "Terminate" => {
            policy::require_root(&caller, "terminate seats")?;
            terminate_seat(ctx, seat).await?;
            return Ok(Reply::empty());
        }
        "ActivateSession" => {
            let id: String = call.args()?;
            let on = ctx.state().sessions.get(&id).map(|s| s.seat.clone());
            match on {
                None => return Err(no_such_session(&id)),
                Some(s) if s.as_deref() != Some(seat) => {
                    return Err(login1_error(
                        "SessionNotOnSeat",
                        format!("Session {id} not on seat {seat}"),
                    ));
                }
                Some(_) => {}
            }
            require_owner(ctx, &caller, &id, "activate")?;
            Some(id)
        }
        "SwitchTo" => {
            let vtnr: u32 = call.args()?;
            require_seat_user(ctx, &caller, seat)?;
            let Some(vt) = ctx.vt.as_ref().filter(|_| seat == "seat0") else {
                return Err(MethodError::not_supported(format!(
                    "Seat {seat} has no virtual terminals."
                )));
            };
            if vtnr == 0 || vtnr > 63 {
                return Err(MethodError::invalid_args(format!(
                    "Invalid virtual terminal {vtnr}"
                )));
            }
            vt.switch_to(vtnr)
                .map_err(|e| MethodError::failed(format!("Cannot switch to VT {vtnr}: {e}")))?;
            lifecycle::vt_changed(ctx, vtnr).await;
            return Ok(Reply::empty());
        }
        "SwitchToNext" | "SwitchToPrevious" => {
            require_seat_user(ctx, &caller, seat)?;
            ctx.state().neighbour(seat, name == "SwitchToNext")
        }
        other => {
            return Err(MethodError::not_supported(format!(
                "{other} is not supported by dynamod-logind."
            )));
        }
    };
    if let Some(id) = target {
        lifecycle::activate(ctx, &id).await?;
    }
    Ok(Reply::empty())
}
