//! `org.freedesktop.login1.User` methods.

use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::{Call, MethodError};

use crate::daemon::Context;
use crate::manager::{check_signal, kill_user, terminate_user};
use crate::policy;

/// Runs User method `name` on user `uid`.
pub async fn call(
    ctx: &Arc<Context>,
    call: &Call,
    uid: u32,
    name: &str,
) -> Result<Reply, MethodError> {
    match name {
        "Terminate" => {
            let caller = ctx.caller(call).await?;
            policy::require_self(&caller, uid, &format!("terminate user {uid}"))?;
            terminate_user(ctx, uid).await?;
            Ok(Reply::empty())
        }
        "Kill" => {
            let sig: i32 = call.args()?;
            check_signal(sig)?;
            let caller = ctx.caller(call).await?;
            policy::require_self(&caller, uid, &format!("send signals to user {uid}"))?;
            kill_user(ctx, uid, sig)?;
            Ok(Reply::empty())
        }
        other => Err(MethodError::not_supported(format!(
            "{other} is not supported by dynamod-logind."
        ))),
    }
}
