//! Power actions: `PowerOff`, `Reboot`, `Halt` (through svmgr's ordered shutdown) and
//! `Suspend`, `Hibernate`, `HybridSleep` (through `/sys/power/state`), with inhibitors.
//!
//! 1. Authorize (see [`crate::policy::may_power`]; block inhibitors refuse).
//! 2. Announce: `PrepareForShutdown(true)` / `PrepareForSleep(true)`.
//! 3. If delay inhibitors of the action's kind exist, answer the caller at once and wait until
//!    they are released or `InhibitDelayMaxSec` has passed; otherwise act before answering, so
//!    a failure reaches the caller.
//! 4. Act. A shutdown that svmgr refuses, and every sleep once the machine wakes up, is
//!    followed by `PrepareFor…(false)`.

use std::path::Path;
use std::sync::Arc;

use dynamod_dbus::object::Reply;
use dynamod_dbus::svmgr;
use dynamod_dbus::{Call, MethodError};
use dynamod_proto::{Request, ShutdownKind};

use crate::daemon::Context;
use crate::lifecycle::login1_error;
use crate::model::{Mode, PowerAction};
use crate::policy;

/// `SD_LOGIND_ROOT_CHECK_INHIBITORS`.
pub const ROOT_CHECK_INHIBITORS: u64 = 1;
/// `SD_LOGIND_KEXEC_REBOOT`.
pub const KEXEC_REBOOT: u64 = 1 << 1;

/// What the kernel supports, from `<sysfs>/power/state` (`freeze mem disk`).
fn kernel_sleep_states(sysfs: &Path) -> Vec<String> {
    std::fs::read_to_string(sysfs.join("power/state"))
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether this machine can do `action` at all.
pub fn supported(ctx: &Context, action: PowerAction) -> bool {
    let states = kernel_sleep_states(&ctx.opts.sysfs);
    let has = |s: &str| states.iter().any(|x| x == s);
    match action {
        PowerAction::PowerOff | PowerAction::Reboot | PowerAction::Halt => true,
        PowerAction::Suspend => has("mem") || has("freeze"),
        PowerAction::Hibernate | PowerAction::HybridSleep => has("disk"),
        // FIXME: needs an RTC wake alarm between the two steps; not implemented.
        PowerAction::SuspendThenHibernate => false,
    }
}

/// `Can…()`: `na` when the machine cannot, else `yes` or `no` for this caller.
pub async fn can(
    ctx: &Arc<Context>,
    call: &Call,
    action: PowerAction,
) -> Result<Reply, MethodError> {
    if !supported(ctx, action) {
        return Ok(Reply::new("na"));
    }
    let caller = ctx.caller(call).await?;
    let answer = policy::can_power(&ctx.state(), &caller, action);
    Ok(Reply::new(answer))
}

/// `PowerOff(b)`, `PowerOffWithFlags(t)` and friends.
pub async fn request(
    ctx: &Arc<Context>,
    call: &Call,
    action: PowerAction,
    flags: u64,
) -> Result<Reply, MethodError> {
    let allowed = if action == PowerAction::Reboot {
        ROOT_CHECK_INHIBITORS | KEXEC_REBOOT
    } else {
        ROOT_CHECK_INHIBITORS
    };
    if flags & !allowed != 0 {
        return Err(MethodError::invalid_args("Invalid flags parameter"));
    }
    if !supported(ctx, action) {
        return Err(login1_error(
            "SleepVerbNotSupported",
            format!("Sleep verb \"{}\" not supported", action.verb()),
        ));
    }
    let caller = ctx.caller(call).await?;
    {
        let mut st = ctx.state();
        policy::may_power(&st, &caller, action, flags & ROOT_CHECK_INHIBITORS != 0)?;
        if st.preparing.is_some() {
            return Err(login1_error(
                "OperationInProgress",
                "There's already a shutdown or sleep operation in progress",
            ));
        }
        st.preparing = Some(action);
    }
    tracing::info!(uid = caller.uid, "{} requested", action.verb());
    announce(ctx, action, true).await;
    let delayed = !ctx.opts.inhibit_delay_max.is_zero()
        && !ctx
            .state()
            .inhibitors_of(action.what(), Mode::Delay, None)
            .is_empty();
    if delayed {
        let ctx = Arc::clone(ctx);
        return Ok(Reply::empty().then(async move {
            wait_for_delay_inhibitors(&ctx, action).await;
            if let Err(e) = execute(&ctx, action).await {
                tracing::error!("{} failed: {}", action.verb(), e.message);
            }
        }));
    }
    execute(ctx, action).await?;
    Ok(Reply::empty())
}

async fn announce(ctx: &Context, action: PowerAction, start: bool) {
    let (signal, property) = if action.is_sleep() {
        ("PrepareForSleep", "PreparingForSleep")
    } else {
        ("PrepareForShutdown", "PreparingForShutdown")
    };
    ctx.manager_signal(signal, &start).await;
    ctx.manager_changed(&[property]).await;
}

async fn wait_for_delay_inhibitors(ctx: &Context, action: PowerAction) {
    let deadline = tokio::time::Instant::now() + ctx.opts.inhibit_delay_max;
    loop {
        let changed = ctx.inhibitors_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let left = ctx
            .state()
            .inhibitors_of(action.what(), Mode::Delay, None)
            .len();
        if left == 0 {
            return;
        }
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(left, "delay inhibitors still held after {:?}; going ahead with {}",
                    ctx.opts.inhibit_delay_max, action.verb());
                return;
            }
        }
    }
}

async fn finish(ctx: &Context, action: PowerAction) {
    ctx.state().preparing = None;
    announce(ctx, action, false).await;
}

async fn execute(ctx: &Context, action: PowerAction) -> Result<(), MethodError> {
    let kind = match action {
        PowerAction::PowerOff => Some(ShutdownKind::Poweroff),
        PowerAction::Reboot => Some(ShutdownKind::Reboot),
        PowerAction::Halt => Some(ShutdownKind::Halt),
        _ => None,
    };
    if let Some(kind) = kind {
        let req = Request::Shutdown { kind };
        let result =
            svmgr::request(&ctx.opts.control_socket, req, Some(svmgr::QUICK_TIMEOUT)).await;
        return match result {
            Ok(_) => {
                tracing::info!("svmgr is shutting down ({})", kind.as_str());
                Ok(())
            }
            Err(e) => {
                finish(ctx, action).await;
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                Err(MethodError::failed(format!("dynamod-svmgr: {e}{cause}")))
            }
        };
    }
    let result = sleep(ctx, action).await;
    finish(ctx, action).await;
    result
}

/// Writes the sleep state to `<sysfs>/power/state` (for hybrid sleep, `suspend` to
/// `power/disk` first); the write returns once the machine has woken up.
async fn sleep(ctx: &Context, action: PowerAction) -> Result<(), MethodError> {
    let sysfs = ctx.opts.sysfs.clone();
    let states = kernel_sleep_states(&sysfs);
    let state = match action {
        PowerAction::Suspend if states.iter().any(|s| s == "mem") => "mem",
        PowerAction::Suspend => "freeze",
        _ => "disk",
    };
    let hybrid = action == PowerAction::HybridSleep;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if hybrid {
            std::fs::write(sysfs.join("power/disk"), "suspend")?;
        }
        std::fs::write(sysfs.join("power/state"), state)
    })
    .await
    .map_err(|e| MethodError::failed(format!("The sleep task failed: {e}")))?
    .map_err(|e| MethodError::failed(format!("Cannot {}: {e}", action.verb())))
}
