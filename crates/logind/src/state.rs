//! What logind knows: sessions, users, seats and inhibitors, and the rules that relate them
//! (which session is active on a seat, what state a user is in, whether an action is
//! inhibited). No I/O happens here; the daemon applies the side effects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::devices::Device;
use crate::model::{Mode, SessionClass, SessionType, Stamp, What};

/// One login session.
#[derive(Debug)]
pub struct Session {
    /// Its id (`c1`, `c2`, …).
    pub id: String,
    /// Creation order, for stable listings.
    pub seq: u64,
    /// The user's uid.
    pub uid: u32,
    /// The user's name.
    pub user_name: String,
    /// The process that registered it (the PAM caller).
    pub leader: u32,
    /// The leader's start time (clock ticks after boot), so a recycled PID is not mistaken for
    /// it.
    pub leader_start: Option<u64>,
    /// The leader's kernel audit session id (0 when auditing is off).
    pub audit: u32,
    /// The PAM service.
    pub service: String,
    /// The current type (a controller may change it).
    pub kind: SessionType,
    /// The type it was created with (restored when control is released).
    pub original_kind: SessionType,
    /// Its class.
    pub class: SessionClass,
    /// The desktop environment.
    pub desktop: String,
    /// The seat, if any (never for remote sessions).
    pub seat: Option<String>,
    /// The virtual terminal, 0 for none.
    pub vtnr: u32,
    /// The terminal, without `/dev/`.
    pub tty: String,
    /// The X11 display.
    pub display: String,
    /// Whether it came over the network.
    pub remote: bool,
    /// The remote user.
    pub remote_user: String,
    /// The remote host.
    pub remote_host: String,
    /// When it was created.
    pub created: Stamp,
    /// Whether it has ended and only waits for its processes to go.
    pub closing: bool,
    /// The idle hint.
    pub idle: bool,
    /// When the idle hint last changed.
    pub idle_since: Stamp,
    /// The locked hint.
    pub locked: bool,
    /// The unique bus name of the controller (`TakeControl`).
    pub controller: Option<String>,
    /// Devices the controller took, by (major, minor).
    pub devices: BTreeMap<(u32, u32), Device>,
    /// Its cgroup, when sessions get cgroups.
    pub cgroup: Option<PathBuf>,
}

impl Session {
    /// Whether this session is local to a seat (has one); remote and seatless sessions are not.
    pub fn is_local(&self) -> bool {
        self.seat.is_some() && !self.remote
    }

    /// The systemd scope name clients show (`session-c1.scope`).
    pub fn scope(&self) -> String {
        format!("session-{}.scope", self.id)
    }
}

/// A user with at least one session (or whose runtime directory is still being torn down).
#[derive(Debug)]
pub struct User {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its name.
    pub name: String,
    /// When its first session started.
    pub created: Stamp,
    /// `$XDG_RUNTIME_DIR`.
    pub runtime_path: String,
    /// Bumped whenever a session starts, so a delayed stop can tell that it is stale.
    pub generation: u64,
}

/// A seat.
#[derive(Debug)]
pub struct Seat {
    /// Its id (`seat0`).
    pub id: String,
    /// The session in the foreground.
    pub active: Option<String>,
    /// Whether it has virtual terminals.
    pub can_tty: bool,
    /// Whether it has a graphics card.
    pub can_graphical: bool,
}

/// An inhibitor lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inhibitor {
    /// Internal id.
    pub id: u64,
    /// What it inhibits.
    pub what: What,
    /// Who took it.
    pub who: String,
    /// Why.
    pub why: String,
    /// Block or delay.
    pub mode: Mode,
    /// The taker's uid.
    pub uid: u32,
    /// The taker's pid.
    pub pid: u32,
}

/// A change of the active session on a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// The seat.
    pub seat: String,
    /// The session that went to the background.
    pub from: Option<String>,
    /// The session that came to the foreground.
    pub to: Option<String>,
}

/// Everything logind tracks.
#[derive(Debug, Default)]
pub struct State {
    /// Sessions by id.
    pub sessions: BTreeMap<String, Session>,
    /// Users by uid.
    pub users: BTreeMap<u32, User>,
    /// Seats by id.
    pub seats: BTreeMap<String, Seat>,
    /// Inhibitors by id.
    pub inhibitors: BTreeMap<u64, Inhibitor>,
    /// A power action announced with `PrepareFor*` and not finished yet.
    pub preparing: Option<crate::model::PowerAction>,
    next_session: u64,
    next_inhibitor: u64,
    next_generation: u64,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh session id.
    pub fn new_session_id(&mut self) -> (String, u64) {
        loop {
            self.next_session += 1;
            let id = format!("c{}", self.next_session);
            if !self.sessions.contains_key(&id) {
                return (id, self.next_session);
            }
        }
    }

    /// A fresh inhibitor id.
    pub fn new_inhibitor_id(&mut self) -> u64 {
        self.next_inhibitor += 1;
        self.next_inhibitor
    }

    /// A fresh user generation.
    pub fn new_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Whether `id` is the active session of its seat. Sessions without a seat count as
    /// active, as in systemd (nothing else competes for them).
    pub fn is_active(&self, id: &str) -> bool {
        let Some(s) = self.sessions.get(id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        match &s.seat {
            None => true,
            Some(seat) => self
                .seats
                .get(seat)
                .is_some_and(|st| st.active.as_deref() == Some(id)),
        }
    }

    /// `State` of a session: `active`, `online` or `closing`.
    pub fn session_state(&self, id: &str) -> &'static str {
        match self.sessions.get(id) {
            Some(s) if s.closing => "closing",
            Some(_) if self.is_active(id) => "active",
            Some(_) => "online",
            None => "closing",
        }
    }

    /// The sessions of `uid`, in creation order.
    pub fn user_sessions(&self, uid: u32) -> Vec<&Session> {
        let mut v: Vec<&Session> = self.sessions.values().filter(|s| s.uid == uid).collect();
        v.sort_by_key(|s| s.seq);
        v
    }

    /// The sessions on `seat`, in creation order.
    pub fn seat_sessions(&self, seat: &str) -> Vec<&Session> {
        let mut v: Vec<&Session> = self
            .sessions
            .values()
            .filter(|s| s.seat.as_deref() == Some(seat))
            .collect();
        v.sort_by_key(|s| s.seq);
        v
    }

    /// All sessions in creation order.
    pub fn sessions_in_order(&self) -> Vec<&Session> {
        let mut v: Vec<&Session> = self.sessions.values().collect();
        v.sort_by_key(|s| s.seq);
        v
    }

    /// `State` of a user: `active` (a session in the foreground), `online`, `closing` (its
    /// sessions are ending, or all have ended and its runtime directory is about to go) or
    /// `offline` (unknown).
    pub fn user_state(&self, uid: u32) -> &'static str {
        let sessions = self.user_sessions(uid);
        if sessions.is_empty() {
            return if self.users.contains_key(&uid) {
                "closing"
            } else {
                "offline"
            };
        }
        if sessions.iter().all(|s| s.closing) {
            return "closing";
        }
        if sessions.iter().any(|s| self.is_active(&s.id)) {
            "active"
        } else {
            "online"
        }
    }

    /// The session a user's graphical programs belong to (`Display` of a user): a graphical
    /// session first, then a text one; local before remote; the oldest first.
    pub fn user_display(&self, uid: u32) -> Option<String> {
        let rank = |s: &Session| {
            let kind = if s.kind.is_graphical() {
                0
            } else if s.kind == SessionType::Tty {
                1
            } else {
                2
            };
            (kind, s.remote, s.seq)
        };
        self.user_sessions(uid)
            .into_iter()
            .filter(|s| !s.closing && s.class == SessionClass::User)
            .min_by_key(|s| rank(s))
            .map(|s| s.id.clone())
    }

    /// Makes `id` the active session of its seat; `None` if it has no seat or is already
    /// active.
    pub fn activate(&mut self, id: &str) -> Option<Switch> {
        let seat_id = self.sessions.get(id)?.seat.clone()?;
        let seat = self.seats.get_mut(&seat_id)?;
        if seat.active.as_deref() == Some(id) {
            return None;
        }
        let from = seat.active.replace(id.to_owned());
        Some(Switch {
            seat: seat_id,
            from,
            to: Some(id.to_owned()),
        })
    }

    /// Leaves `seat` without an active session (its active session is ending).
    pub fn deactivate_seat_of(&mut self, id: &str) -> Option<Switch> {
        let seat_id = self.sessions.get(id)?.seat.clone()?;
        let seat = self.seats.get_mut(&seat_id)?;
        if seat.active.as_deref() != Some(id) {
            return None;
        }
        seat.active = None;
        Some(Switch {
            seat: seat_id,
            from: Some(id.to_owned()),
            to: None,
        })
    }

    /// The session of `seat` on virtual terminal `vtnr`.
    pub fn session_on_vt(&self, seat: &str, vtnr: u32) -> Option<String> {
        self.seat_sessions(seat)
            .into_iter()
            .find(|s| s.vtnr == vtnr && !s.closing)
            .map(|s| s.id.clone())
    }

    /// The next (or previous) session of a seat in VT order, from the active one; the first
    /// (or last) when none is active.
    pub fn neighbour(&self, seat: &str, forward: bool) -> Option<String> {
        let mut v: Vec<&Session> = self
            .seat_sessions(seat)
            .into_iter()
            .filter(|s| !s.closing)
            .collect();
        v.sort_by_key(|s| (s.vtnr, s.seq));
        if v.is_empty() {
            return None;
        }
        let active = self.seats.get(seat).and_then(|s| s.active.clone());
        let pos = active.and_then(|a| v.iter().position(|s| s.id == a));
        let n = v.len();
        let i = match (pos, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(p), true) => (p + 1) % n,
            (Some(p), false) => (p + n - 1) % n,
        };
        Some(v[i].id.clone())
    }

    /// Whether some session belongs to a user other than `uid` (systemd's "multiple
    /// sessions": only `user` class sessions that are not closing count).
    pub fn other_users_logged_in(&self, uid: u32) -> bool {
        self.sessions
            .values()
            .any(|s| s.uid != uid && !s.closing && s.class == SessionClass::User)
    }

    /// The inhibitors of `mode` that cover any of `what`, except those held by `ignore_uid`.
    pub fn inhibitors_of(
        &self,
        what: What,
        mode: Mode,
        ignore_uid: Option<u32>,
    ) -> Vec<&Inhibitor> {
        self.inhibitors
            .values()
            .filter(|i| i.mode == mode && i.what.intersects(what))
            .filter(|i| Some(i.uid) != ignore_uid)
            .collect()
    }

    /// `BlockInhibited` / `DelayInhibited`: the union of the inhibitors of `mode`.
    pub fn inhibited(&self, mode: Mode) -> What {
        self.inhibitors
            .values()
            .filter(|i| i.mode == mode)
            .fold(What::default(), |acc, i| acc.union(i.what))
    }

    /// Idle hint and its timestamp over `sessions` (all idle, and at least one).
    pub fn idle_of<'a>(sessions: impl Iterator<Item = &'a Session>) -> (bool, Stamp) {
        let mut all = true;
        let mut any = false;
        let mut since = Stamp::default();
        for s in sessions.filter(|s| !s.closing) {
            any = true;
            all &= s.idle;
            if s.idle_since.realtime > since.realtime {
                since = s.idle_since;
            }
        }
        (any && all, since)
    }

    /// The Manager's idle hint: every session idle and no `idle` block inhibitor.
    pub fn manager_idle(&self) -> (bool, Stamp) {
        let (idle, since) = Self::idle_of(self.sessions.values());
        let blocked = !self.inhibitors_of(What::IDLE, Mode::Block, None).is_empty();
        (idle && !blocked, since)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn session(id: &str, seq: u64, uid: u32, seat: Option<&str>) -> Session {
        Session {
            id: id.to_owned(),
            seq,
            uid,
            user_name: format!("u{uid}"),
            leader: 100 + seq as u32,
            leader_start: None,
            audit: 0,
            service: "login".into(),
            kind: SessionType::Tty,
            original_kind: SessionType::Tty,
            class: SessionClass::User,
            desktop: String::new(),
            seat: seat.map(str::to_owned),
            vtnr: 0,
            tty: String::new(),
            display: String::new(),
            remote: false,
            remote_user: String::new(),
            remote_host: String::new(),
            created: Stamp::default(),
            closing: false,
            idle: false,
            idle_since: Stamp::default(),
            locked: false,
            controller: None,
            devices: BTreeMap::new(),
            cgroup: None,
        }
    }

    pub(crate) fn with_seat0() -> State {
        let mut st = State::new();
        st.seats.insert(
            "seat0".into(),
            Seat {
                id: "seat0".into(),
                active: None,
                can_tty: true,
                can_graphical: true,
            },
        );
        st
    }

    fn add(st: &mut State, s: Session) {
        st.sessions.insert(s.id.clone(), s);
    }

    #[test]
    fn session_ids_count_up_and_skip_taken_ones() {
        let mut st = State::new();
        assert_eq!(st.new_session_id().0, "c1");
        add(&mut st, session("c2", 2, 0, None));
        assert_eq!(st.new_session_id().0, "c3");
    }

    #[test]
    fn seatless_sessions_are_active_and_seat_sessions_only_in_the_foreground() {
        let mut st = with_seat0();
        add(&mut st, session("c1", 1, 1000, None));
        add(&mut st, session("c2", 2, 1000, Some("seat0")));
        add(&mut st, session("c3", 3, 1001, Some("seat0")));
        assert!(st.is_active("c1"));
        assert_eq!(st.session_state("c2"), "online");
        let sw = st.activate("c2").unwrap();
        assert_eq!(sw.from, None);
        assert_eq!(st.session_state("c2"), "active");
        let sw = st.activate("c3").unwrap();
        assert_eq!(sw.from.as_deref(), Some("c2"));
        assert_eq!(st.session_state("c2"), "online");
        assert!(st.activate("c3").is_none(), "already active");
        assert!(st.activate("c1").is_none(), "no seat");
        let sw = st.deactivate_seat_of("c3").unwrap();
        assert_eq!((sw.from.as_deref(), sw.to), (Some("c3"), None));
        assert!(!st.is_active("c3"));
    }

    #[test]
    fn user_state_follows_its_sessions() {
        let mut st = with_seat0();
        assert_eq!(st.user_state(1000), "offline");
        add(&mut st, session("c1", 1, 1000, Some("seat0")));
        assert_eq!(st.user_state(1000), "online");
        st.activate("c1");
        assert_eq!(st.user_state(1000), "active");
        st.sessions.get_mut("c1").unwrap().closing = true;
        assert_eq!(st.user_state(1000), "closing");
        assert_eq!(st.session_state("c1"), "closing");
    }

    #[test]
    fn the_display_session_prefers_graphical_then_local_then_oldest() {
        let mut st = with_seat0();
        let mut remote = session("c1", 1, 1000, None);
        remote.remote = true;
        add(&mut st, remote);
        add(&mut st, session("c2", 2, 1000, Some("seat0")));
        assert_eq!(st.user_display(1000).as_deref(), Some("c2"));
        let mut gfx = session("c3", 3, 1000, Some("seat0"));
        gfx.kind = SessionType::Wayland;
        add(&mut st, gfx);
        assert_eq!(st.user_display(1000).as_deref(), Some("c3"));
        assert_eq!(st.user_display(1001), None);
    }

    #[test]
    fn vt_neighbours_wrap_around() {
        let mut st = with_seat0();
        for (id, seq, vt) in [("c1", 1, 2), ("c2", 2, 1), ("c3", 3, 3)] {
            let mut s = session(id, seq, 1000, Some("seat0"));
            s.vtnr = vt;
            add(&mut st, s);
        }
        assert_eq!(st.neighbour("seat0", true).as_deref(), Some("c2"));
        assert_eq!(st.neighbour("seat0", false).as_deref(), Some("c3"));
        st.activate("c3");
        assert_eq!(st.neighbour("seat0", true).as_deref(), Some("c2"));
        assert_eq!(st.neighbour("seat0", false).as_deref(), Some("c1"));
        assert_eq!(st.session_on_vt("seat0", 2).as_deref(), Some("c1"));
    }

    #[test]
    fn inhibitors_are_selected_by_kind_mode_and_owner() {
        let mut st = State::new();
        for (id, what, mode, uid) in [
            (1, What::SHUTDOWN, Mode::Delay, 0),
            (2, What::SLEEP.union(What::IDLE), Mode::Block, 1000),
            (3, What::SHUTDOWN, Mode::Block, 1000),
        ] {
            st.inhibitors.insert(
                id,
                Inhibitor {
                    id,
                    what,
                    who: "t".into(),
                    why: "w".into(),
                    mode,
                    uid,
                    pid: 1,
                },
            );
        }
        assert_eq!(st.inhibitors_of(What::SHUTDOWN, Mode::Block, None).len(), 1);
        assert!(
            st.inhibitors_of(What::SHUTDOWN, Mode::Block, Some(1000))
                .is_empty()
        );
        assert_eq!(st.inhibited(Mode::Block).to_string(), "shutdown:sleep:idle");
        assert_eq!(st.inhibited(Mode::Delay).to_string(), "shutdown");
    }

    #[test]
    fn only_other_users_sessions_count_as_multiple_sessions() {
        let mut st = with_seat0();
        add(&mut st, session("c1", 1, 1000, Some("seat0")));
        assert!(!st.other_users_logged_in(1000));
        let mut greeter = session("c2", 2, 110, Some("seat0"));
        greeter.class = SessionClass::Greeter;
        add(&mut st, greeter);
        assert!(!st.other_users_logged_in(1000));
        add(&mut st, session("c3", 3, 1001, None));
        assert!(st.other_users_logged_in(1000));
    }

    #[test]
    fn the_manager_is_idle_only_when_every_session_is() {
        let mut st = with_seat0();
        assert!(!st.manager_idle().0, "no session: not idle");
        add(&mut st, session("c1", 1, 1000, None));
        add(&mut st, session("c2", 2, 1000, None));
        st.sessions.get_mut("c1").unwrap().idle = true;
        assert!(!st.manager_idle().0);
        st.sessions.get_mut("c2").unwrap().idle = true;
        assert!(st.manager_idle().0);
    }
}
