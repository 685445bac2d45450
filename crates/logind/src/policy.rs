//! Authorization, mirroring what systemd-logind's polkit defaults allow without asking for a
//! password (dynamod has no polkit, so where polkit would ask, dynamod refuses):
//!
//! * Reads (properties, `Get*`, `List*`, `Can*`) are open to everyone.
//! * A user manages its own sessions and itself: terminate, kill, lock, unlock, activate, the
//!   idle and locked hints, and `TakeControl` on its own sessions. Only the controller may take
//!   devices, change the session type or display.
//! * Power actions: root; or a caller in an active local session (one on a seat) while no
//!   other user is logged in. Block inhibitors of other users refuse a non-root caller; root
//!   only honours them when asked to (`SD_LOGIND_ROOT_CHECK_INHIBITORS`).
//! * Inhibitors: anyone may take a delay inhibitor; block inhibitors need root or a local
//!   session.
//! * Everything else (`CreateSession`, `ReleaseSession`, other users' sessions, seats,
//!   `TakeControl(force)`) needs root.

use dynamod_dbus::MethodError;

use crate::model::{Mode, PowerAction};
use crate::state::State;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its uid.
    pub uid: u32,
    /// Its pid, when the bus knows it.
    pub pid: Option<u32>,
    /// The session its process belongs to (or, failing that, its user's display session).
    pub session: Option<String>,
}

impl Caller {
    /// Whether the caller is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

fn denied(message: String) -> MethodError {
    MethodError::access_denied(message)
}

/// Root only; `action` completes "only root may …".
pub fn require_root(caller: &Caller, action: &str) -> Result<(), MethodError> {
    if caller.is_root() {
        Ok(())
    } else {
        Err(denied(format!("Access denied: only root may {action}.")))
    }
}

/// Root or the user `uid` itself; `action` completes "… may …".
pub fn require_self(caller: &Caller, uid: u32, action: &str) -> Result<(), MethodError> {
    if caller.is_root() || caller.uid == uid {
        Ok(())
    } else {
        Err(denied(format!(
            "Access denied: only root or user {uid} may {action}."
        )))
    }
}

/// Whether the caller may run `action` now; `Err` says why not.
pub fn may_power(
    state: &State,
    caller: &Caller,
    action: PowerAction,
    check_root_inhibitors: bool,
) -> Result<(), MethodError> {
    if caller.is_root() {
        if check_root_inhibitors {
            let blocking = state.inhibitors_of(action.what(), Mode::Block, None);
            if let Some(i) = blocking.first() {
                return Err(blocked(action, i));
            }
        }
        return Ok(());
    }
    let verb = action.verb();
    let local_active = caller
        .session
        .as_deref()
        .and_then(|id| state.sessions.get(id).map(|s| (id, s)))
        .is_some_and(|(id, s)| s.uid == caller.uid && s.is_local() && state.is_active(id));
    if !local_active {
        return Err(denied(format!(
            "Access denied: only root or a user in an active local session may {verb} the system."
        )));
    }
    if state.other_users_logged_in(caller.uid) {
        return Err(denied(format!(
            "Access denied: other users are logged in; only root may {verb} the system now."
        )));
    }
    let blocking = state.inhibitors_of(action.what(), Mode::Block, Some(caller.uid));
    if let Some(i) = blocking.first() {
        return Err(blocked(action, i));
    }
    Ok(())
}

fn blocked(action: PowerAction, i: &crate::state::Inhibitor) -> MethodError {
    denied(format!(
        "Access denied: {} is blocked by an inhibitor lock held by \"{}\" (uid {}, pid {}): {}",
        action.verb(),
        i.who,
        i.uid,
        i.pid,
        i.why
    ))
}

/// `Can*`: `yes` when [`may_power`] would allow it, `no` otherwise (there is no polkit to
/// make it a `challenge`).
pub fn can_power(state: &State, caller: &Caller, action: PowerAction) -> &'static str {
    if may_power(state, caller, action, false).is_ok() {
        "yes"
    } else {
        "no"
    }
}

/// Whether the caller may take an inhibitor of `mode`.
pub fn may_inhibit(state: &State, caller: &Caller, mode: Mode) -> Result<(), MethodError> {
    if mode == Mode::Delay || caller.is_root() {
        return Ok(());
    }
    let local = caller
        .session
        .as_deref()
        .and_then(|id| state.sessions.get(id))
        .is_some_and(|s| s.uid == caller.uid && s.is_local());
    if local {
        Ok(())
    } else {
        Err(denied(
            "Access denied: only root or a user in a local session may take a block inhibitor."
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::What;
    use crate::state::Inhibitor;
    use crate::state::tests::{session, with_seat0};

    fn caller(uid: u32, session: Option<&str>) -> Caller {
        Caller {
            uid,
            pid: Some(42),
            session: session.map(str::to_owned),
        }
    }

    fn block(st: &mut State, uid: u32) {
        st.inhibitors.insert(
            9,
            Inhibitor {
                id: 9,
                what: What::SHUTDOWN,
                who: "burner".into(),
                why: "writing a disc".into(),
                mode: Mode::Block,
                uid,
                pid: 7,
            },
        );
    }

    #[test]
    fn root_powers_off_unless_it_asks_to_honour_block_inhibitors() {
        let mut st = with_seat0();
        block(&mut st, 1000);
        let root = caller(0, None);
        assert!(may_power(&st, &root, PowerAction::PowerOff, false).is_ok());
        let e = may_power(&st, &root, PowerAction::PowerOff, true).unwrap_err();
        assert_eq!(e.name, dynamod_dbus::error::ACCESS_DENIED);
        assert!(e.message.contains("burner"), "{}", e.message);
        assert!(may_power(&st, &root, PowerAction::Suspend, true).is_ok());
    }

    #[test]
    fn a_user_alone_in_an_active_local_session_may_power_off() {
        let mut st = with_seat0();
        st.sessions
            .insert("c1".into(), session("c1", 1, 1000, Some("seat0")));
        let user = caller(1000, Some("c1"));
        assert!(
            may_power(&st, &user, PowerAction::PowerOff, false).is_err(),
            "not active yet"
        );
        st.activate("c1");
        assert!(may_power(&st, &user, PowerAction::PowerOff, false).is_ok());
        assert_eq!(can_power(&st, &user, PowerAction::Reboot), "yes");
        // Its own block inhibitor does not stop it; another user's does.
        block(&mut st, 1000);
        assert!(may_power(&st, &user, PowerAction::PowerOff, false).is_ok());
        block(&mut st, 1001);
        assert!(may_power(&st, &user, PowerAction::PowerOff, false).is_err());
    }

    #[test]
    fn remote_or_crowded_sessions_may_not_power_off() {
        let mut st = with_seat0();
        st.sessions
            .insert("c1".into(), session("c1", 1, 1000, None));
        let remote = caller(1000, Some("c1"));
        assert!(may_power(&st, &remote, PowerAction::PowerOff, false).is_err());
        st.sessions
            .insert("c2".into(), session("c2", 2, 1000, Some("seat0")));
        st.activate("c2");
        let local = caller(1000, Some("c2"));
        assert!(may_power(&st, &local, PowerAction::PowerOff, false).is_ok());
        st.sessions
            .insert("c3".into(), session("c3", 3, 1001, None));
        let e = may_power(&st, &local, PowerAction::PowerOff, false).unwrap_err();
        assert!(e.message.contains("other users"), "{}", e.message);
        assert_eq!(can_power(&st, &caller(1002, None), PowerAction::Halt), "no");
    }

    #[test]
    fn a_user_manages_only_itself() {
        assert!(require_self(&caller(1000, None), 1000, "kill user 1000").is_ok());
        assert!(require_self(&caller(0, None), 1000, "kill user 1000").is_ok());
        let e = require_self(&caller(1001, None), 1000, "kill user 1000").unwrap_err();
        assert_eq!(e.name, dynamod_dbus::error::ACCESS_DENIED);
        assert!(require_root(&caller(1000, None), "create sessions").is_err());
    }

    #[test]
    fn delay_inhibitors_are_open_and_block_ones_need_a_local_session() {
        let mut st = with_seat0();
        let nobody = caller(65534, None);
        assert!(may_inhibit(&st, &nobody, Mode::Delay).is_ok());
        assert!(may_inhibit(&st, &nobody, Mode::Block).is_err());
        st.sessions
            .insert("c1".into(), session("c1", 1, 65534, Some("seat0")));
        assert!(may_inhibit(&st, &caller(65534, Some("c1")), Mode::Block).is_ok());
        assert!(may_inhibit(&st, &caller(0, None), Mode::Block).is_ok());
    }
}
