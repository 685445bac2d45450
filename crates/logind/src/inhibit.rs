//! Inhibitor locks (`Inhibit`, `ListInhibitors`): the caller gets the write end of a pipe and
//! holds the lock until every copy of it is closed.

use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::{Call, MethodError, validate, zbus};

use crate::daemon::Context;
use crate::model::{Mode, What};
use crate::policy;
use crate::state::Inhibitor;

/// `Inhibit(what, who, why, mode)`.
pub async fn take(ctx: &Arc<Context>, call: &Call) -> Result<Reply, MethodError> {
    let (what, who, why, mode): (String, String, String, String) = call.args()?;
    let what = What::parse(&what)?;
    let mode = Mode::parse(&mode)?;
    validate::single_line("inhibitor name", &who, 256)?;
    validate::single_line("inhibitor reason", &why, 1024)?;
    if mode == Mode::Delay && !what.only_delayable() {
        return Err(MethodError::invalid_args(
            "Delay inhibitors only supported for shutdown and sleep",
        ));
    }
    let caller = ctx.caller(call).await?;
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| MethodError::failed(format!("Cannot create the inhibitor pipe: {e}")))?;
    let id = {
        let mut st = ctx.state();
        policy::may_inhibit(&st, &caller, mode)?;
        if st.inhibitors.len() as u64 >= ctx.opts.inhibitors_max {
            return Err(MethodError::new(
                "org.freedesktop.DBus.Error.LimitsExceeded",
                format!(
                    "Maximum number of inhibitors ({}) reached, try again later.",
                    ctx.opts.inhibitors_max
                ),
            ));
        }
        let id = st.new_inhibitor_id();
        st.inhibitors.insert(
            id,
            Inhibitor {
                id,
                what,
                who: who.clone(),
                why,
                mode,
                uid: caller.uid,
                pid: caller.pid.unwrap_or(0),
            },
        );
        id
    };
    tracing::info!(%what, who, mode = mode.as_str(), uid = caller.uid, "inhibitor taken");
    {
        let ctx = Arc::clone(ctx);
        tokio::spawn(async move {
            crate::watch::hangup(read).await;
            let removed = ctx.state().inhibitors.remove(&id);
            if let Some(i) = removed {
                tracing::info!(what = %i.what, who = i.who, "inhibitor released");
            }
            ctx.inhibitors_changed.notify_waiters();
            ctx.manager_changed(&["BlockInhibited", "DelayInhibited"])
                .await;
        });
    }
    ctx.manager_changed(&["BlockInhibited", "DelayInhibited"])
        .await;
    Ok(Reply::new(zbus::OwnedFd::from(write)))
}

/// `ListInhibitors()`: `(what, who, why, mode, uid, pid)` each.
pub fn list(ctx: &Context) -> Reply {
    let v: Vec<(String, String, String, String, u32, u32)> = ctx
        .state()
        .inhibitors
        .values()
        .map(|i| {
            (
                i.what.to_string(),
                i.who.clone(),
                i.why.clone(),
                i.mode.as_str().to_owned(),
                i.uid,
                i.pid,
            )
        })
        .collect();
    Reply::new(v)
}
