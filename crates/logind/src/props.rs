//! Property values of the four kinds of objects, computed from the state on every read.

use std::path::Path;

use dynamod_dbus::object::Props;
use dynamod_dbus::zbus::wire::ObjectPath;

use crate::daemon::{Context, object_path, seat_path, session_path, user_path};
use crate::model::{Mode, Stamp};
use crate::state::{Seat, Session, State, User};

fn usec(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn root_path() -> ObjectPath<'static> {
    object_path("/".to_owned())
}

fn idle(p: &mut Props, idle: bool, since: Stamp) {
    p.add("IdleHint", idle)
        .add("IdleSinceHint", since.realtime)
        .add("IdleSinceHintMonotonic", since.monotonic);
}

/// `LidClosed`: a lid switch in `/proc/acpi/button/lid/*/state` reports "closed".
fn lid_closed() -> bool {
    std::fs::read_dir("/proc/acpi/button/lid")
        .map(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("state")).is_ok_and(|s| s.contains("closed"))
            })
        })
        .unwrap_or(false)
}

/// `OnExternalPower`: a mains supply is online, or there is no mains supply to ask (desktops,
/// virtual machines).
pub fn on_external_power(sysfs: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(sysfs.join("class/power_supply")) else {
        return true;
    };
    let mut found_mains = false;
    for e in rd.flatten() {
        let p = e.path();
        let kind = std::fs::read_to_string(p.join("type")).unwrap_or_default();
        if kind.trim() != "Mains" {
            continue;
        }
        found_mains = true;
        if std::fs::read_to_string(p.join("online")).is_ok_and(|s| s.trim() == "1") {
            return true;
        }
    }
    !found_mains
}

/// The Manager's properties. Key and lid handling and idle actions are not implemented, so
/// those settings read `ignore`.
pub fn manager(ctx: &Context, st: &State) -> Props {
    let o = &ctx.opts;
    let (is_idle, since) = st.manager_idle();
    let preparing = st.preparing;
    let mut p = Props::new();
    p.add("EnableWallMessages", false)
        .add("WallMessage", "")
        .add("NAutoVTs", 0u32)
        .add("KillOnlyUsers", Vec::<String>::new())
        .add("KillExcludeUsers", vec!["root".to_owned()])
        .add("KillUserProcesses", o.kill_user_processes)
        .add("RebootParameter", "")
        .add("RebootToFirmwareSetup", false)
        .add("RebootToBootLoaderMenu", u64::MAX)
        .add("RebootToBootLoaderEntry", "")
        .add("BootLoaderEntries", Vec::<String>::new());
    idle(&mut p, is_idle, since);
    p.add("BlockInhibited", st.inhibited(Mode::Block).to_string())
        .add("DelayInhibited", st.inhibited(Mode::Delay).to_string())
        .add("InhibitDelayMaxUSec", usec(o.inhibit_delay_max))
        .add("UserStopDelayUSec", usec(o.user_stop_delay));
    for key in [
        "HandlePowerKey",
        "HandlePowerKeyLongPress",
        "HandleRebootKey",
        "HandleRebootKeyLongPress",
        "HandleSuspendKey",
        "HandleSuspendKeyLongPress",
        "HandleHibernateKey",
        "HandleHibernateKeyLongPress",
        "HandleLidSwitch",
        "HandleLidSwitchExternalPower",
        "HandleLidSwitchDocked",
    ] {
        p.add(key, "ignore");
    }
    p.add("HoldoffTimeoutUSec", 30_000_000u64)
        .add("IdleAction", "ignore")
        .add("IdleActionUSec", 30 * 60 * 1_000_000u64)
        .add(
            "PreparingForShutdown",
            preparing.is_some_and(|a| !a.is_sleep()),
        )
        .add("PreparingForSleep", preparing.is_some_and(|a| a.is_sleep()))
        .add("ScheduledShutdown", (String::new(), 0u64))
        .add("Docked", false)
        .add("LidClosed", lid_closed())
        .add("OnExternalPower", on_external_power(&o.sysfs))
        .add("RemoveIPC", false)
        .add("RuntimeDirectorySize", ctx.rundirs.size)
        .add("RuntimeDirectoryInodesMax", ctx.rundirs.inodes)
        .add("InhibitorsMax", o.inhibitors_max)
        .add("NCurrentInhibitors", st.inhibitors.len() as u64)
        .add("SessionsMax", o.sessions_max)
        .add("NCurrentSessions", st.sessions.len() as u64)
        .add("StopIdleSessionUSec", u64::MAX);
    p
}

/// A session's properties.
pub fn session(_ctx: &Context, st: &State, s: &Session) -> Props {
    let seat = match &s.seat {
        Some(id) => (id.clone(), seat_path(id)),
        None => (String::new(), root_path()),
    };
    let mut p = Props::new();
    p.add("Id", s.id.clone())
        .add("User", (s.uid, user_path(s.uid)))
        .add("Name", s.user_name.clone())
        .add("Timestamp", s.created.realtime)
        .add("TimestampMonotonic", s.created.monotonic)
        .add("VTNr", s.vtnr)
        .add("Seat", seat)
        .add("TTY", s.tty.clone())
        .add("Display", s.display.clone())
        .add("Remote", s.remote)
        .add("RemoteHost", s.remote_host.clone())
        .add("RemoteUser", s.remote_user.clone())
        .add("Service", s.service.clone())
        .add("Desktop", s.desktop.clone())
        .add("Scope", s.scope())
        .add("Leader", s.leader)
        .add("Audit", s.audit)
        .add("Type", s.kind.as_str())
        .add("Class", s.class.as_str())
        .add("Active", st.is_active(&s.id))
        .add("State", st.session_state(&s.id));
    idle(&mut p, s.idle, s.idle_since);
    p.add("LockedHint", s.locked);
    p
}

/// A seat's properties.
pub fn seat(st: &State, seat: &Seat) -> Props {
    let active = match &seat.active {
        Some(id) => (id.clone(), session_path(id)),
        None => (String::new(), root_path()),
    };
    let sessions: Vec<(String, ObjectPath<'static>)> = st
        .seat_sessions(&seat.id)
        .iter()
        .map(|s| (s.id.clone(), session_path(&s.id)))
        .collect();
    let (is_idle, since) = State::idle_of(st.seat_sessions(&seat.id).into_iter());
    let mut p = Props::new();
    p.add("Id", seat.id.clone())
        .add("ActiveSession", active)
        .add("CanTTY", seat.can_tty)
        .add("CanGraphical", seat.can_graphical)
        .add("Sessions", sessions);
    idle(&mut p, is_idle, since);
    p
}

/// A user's properties.
pub fn user(st: &State, u: &User) -> Props {
    let display = match st.user_display(u.uid) {
        Some(id) => (id.clone(), session_path(&id)),
        None => (String::new(), root_path()),
    };
    let sessions: Vec<(String, ObjectPath<'static>)> = st
        .user_sessions(u.uid)
        .iter()
        .map(|s| (s.id.clone(), session_path(&s.id)))
        .collect();
    let (is_idle, since) = State::idle_of(st.user_sessions(u.uid).into_iter());
    let mut p = Props::new();
    p.add("UID", u.uid)
        .add("GID", u.gid)
        .add("Name", u.name.clone())
        .add("Timestamp", u.created.realtime)
        .add("TimestampMonotonic", u.created.monotonic)
        .add("RuntimePath", u.runtime_path.clone())
        .add("Service", "")
        .add("Slice", format!("user-{}.slice", u.uid))
        .add("Display", display)
        .add("State", st.user_state(u.uid))
        .add("Sessions", sessions);
    idle(&mut p, is_idle, since);
    p.add("Linger", false);
    p
}
