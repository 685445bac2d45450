//! The vocabulary of login1: session types and classes, inhibitor kinds and modes, power
//! actions, and timestamps — each with the exact strings systemd uses on the bus.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use dynamod_dbus::MethodError;

/// A value that is not one of a vocabulary's words.
fn unknown(what: &str, value: &str) -> MethodError {
    MethodError::invalid_args(format!("Invalid {what} '{value}'."))
}

/// `Type` of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// Cron jobs and other sessions without a terminal.
    Unspecified,
    /// A text login.
    Tty,
    /// An X11 session.
    X11,
    /// A Wayland session.
    Wayland,
    /// A Mir session.
    Mir,
    /// A web session (e.g. Cockpit).
    Web,
}

impl SessionType {
    /// The word on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Tty => "tty",
            Self::X11 => "x11",
            Self::Wayland => "wayland",
            Self::Mir => "mir",
            Self::Web => "web",
        }
    }

    /// Parses a type; the empty string is `unspecified` (what pam_systemd sends when it does
    /// not know).
    pub fn parse(s: &str) -> Result<Self, MethodError> {
        Ok(match s {
            "" | "unspecified" => Self::Unspecified,
            "tty" => Self::Tty,
            "x11" => Self::X11,
            "wayland" => Self::Wayland,
            "mir" => Self::Mir,
            "web" => Self::Web,
            other => return Err(unknown("session type", other)),
        })
    }

    /// Whether this is a graphical session.
    pub fn is_graphical(self) -> bool {
        matches!(self, Self::X11 | Self::Wayland | Self::Mir)
    }
}

/// `Class` of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionClass {
    /// A normal user session.
    User,
    /// A display manager's login screen.
    Greeter,
    /// A screen locker.
    LockScreen,
    /// A session without a user in front of it (cron, …).
    Background,
}

impl SessionClass {
    /// The word on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Greeter => "greeter",
            Self::LockScreen => "lock-screen",
            Self::Background => "background",
        }
    }

    /// Parses a class; the empty string is `user`.
    pub fn parse(s: &str) -> Result<Self, MethodError> {
        Ok(match s {
            "" | "user" => Self::User,
            "greeter" => Self::Greeter,
            "lock-screen" => Self::LockScreen,
            "background" => Self::Background,
            other => return Err(unknown("session class", other)),
        })
    }
}

/// What an inhibitor inhibits: a set of the words below (a colon-separated list on the bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct What(u32);

impl What {
    /// Power-off, reboot, halt.
    pub const SHUTDOWN: What = What(1);
    /// Suspend, hibernate, hybrid sleep.
    pub const SLEEP: What = What(1 << 1);
    /// The automatic idle logic.
    pub const IDLE: What = What(1 << 2);
    /// The power key.
    pub const POWER_KEY: What = What(1 << 3);
    /// The suspend key.
    pub const SUSPEND_KEY: What = What(1 << 4);
    /// The hibernate key.
    pub const HIBERNATE_KEY: What = What(1 << 5);
    /// The lid switch.
    pub const LID_SWITCH: What = What(1 << 6);
    /// The reboot key.
    pub const REBOOT_KEY: What = What(1 << 7);

    const WORDS: [(What, &'static str); 8] = [
        (What::SHUTDOWN, "shutdown"),
        (What::SLEEP, "sleep"),
        (What::IDLE, "idle"),
        (What::POWER_KEY, "handle-power-key"),
        (What::SUSPEND_KEY, "handle-suspend-key"),
        (What::HIBERNATE_KEY, "handle-hibernate-key"),
        (What::LID_SWITCH, "handle-lid-switch"),
        (What::REBOOT_KEY, "handle-reboot-key"),
    ];

    /// Parses a non-empty colon-separated list of the words systemd knows.
    pub fn parse(s: &str) -> Result<Self, MethodError> {
        let mut out = What::default();
        for word in s.split(':') {
            let (w, _) = Self::WORDS
                .iter()
                .find(|(_, name)| *name == word)
                .ok_or_else(|| unknown("inhibitor type", s))?;
            out = out.union(*w);
        }
        if out.is_empty() {
            return Err(unknown("inhibitor type", s));
        }
        Ok(out)
    }

    /// Both sets together.
    pub fn union(self, other: What) -> What {
        What(self.0 | other.0)
    }

    /// Whether the sets share a word.
    pub fn intersects(self, other: What) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every word of the set is `shutdown` or `sleep` (the only kinds a delay
    /// inhibitor can hold up).
    pub fn only_delayable(self) -> bool {
        self.0 & !(What::SHUTDOWN.0 | What::SLEEP.0) == 0
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = Self::WORDS
            .iter()
            .filter(|(w, _)| self.intersects(*w))
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&words.join(":"))
    }
}

/// How an inhibitor inhibits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The operation is refused while the inhibitor exists.
    Block,
    /// The operation waits (at most `InhibitDelayMaxUSec`) until the inhibitor is released.
    Delay,
}

impl Mode {
    /// The word on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Delay => "delay",
        }
    }

    /// Parses `block` or `delay`.
    pub fn parse(s: &str) -> Result<Self, MethodError> {
        match s {
            "block" => Ok(Self::Block),
            "delay" => Ok(Self::Delay),
            other => Err(unknown("inhibitor mode", other)),
        }
    }
}

/// A power action of the Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Power off.
    PowerOff,
    /// Reboot.
    Reboot,
    /// Halt.
    Halt,
    /// Suspend to RAM.
    Suspend,
    /// Suspend to disk.
    Hibernate,
    /// Both: the image is written, then the machine suspends.
    HybridSleep,
    /// Suspend, then hibernate after a while.
    SuspendThenHibernate,
}

impl PowerAction {
    /// The action behind a method name (`PowerOff`, `RebootWithFlags`, `CanSuspend`, …).
    pub fn from_method(name: &str) -> Option<Self> {
        let base = name.strip_prefix("Can").unwrap_or(name);
        let base = base.strip_suffix("WithFlags").unwrap_or(base);
        Some(match base {
            "PowerOff" => Self::PowerOff,
            "Reboot" => Self::Reboot,
            "Halt" => Self::Halt,
            "Suspend" => Self::Suspend,
            "Hibernate" => Self::Hibernate,
            "HybridSleep" => Self::HybridSleep,
            "SuspendThenHibernate" => Self::SuspendThenHibernate,
            _ => return None,
        })
    }

    /// The inhibitor kind that holds this action up.
    pub fn what(self) -> What {
        if self.is_sleep() {
            What::SLEEP
        } else {
            What::SHUTDOWN
        }
    }

    /// Whether this is a sleep action (as opposed to shutting down).
    pub fn is_sleep(self) -> bool {
        !matches!(self, Self::PowerOff | Self::Reboot | Self::Halt)
    }

    /// A verb for messages ("power off").
    pub fn verb(self) -> &'static str {
        match self {
            Self::PowerOff => "power off",
            Self::Reboot => "reboot",
            Self::Halt => "halt",
            Self::Suspend => "suspend",
            Self::Hibernate => "hibernate",
            Self::HybridSleep => "hybrid-sleep",
            Self::SuspendThenHibernate => "suspend-then-hibernate",
        }
    }
}

/// A point in time on both clocks logind reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// `CLOCK_REALTIME`, since the epoch.
    pub realtime: u64,
    /// `CLOCK_MONOTONIC`.
    pub monotonic: u64,
}

impl Stamp {
    /// Now.
    pub fn now() -> Self {
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| {
                let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
                let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
                secs.saturating_mul(1_000_000).saturating_add(nanos / 1000)
            })
            .unwrap_or(0);
        Stamp {
            realtime,
            monotonic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_types_and_classes_use_systemd_words() {
        for t in ["unspecified", "tty", "x11", "wayland", "mir", "web"] {
            assert_eq!(SessionType::parse(t).unwrap().as_str(), t);
        }
        assert_eq!(SessionType::parse("").unwrap(), SessionType::Unspecified);
        assert!(SessionType::parse("vnc").is_err());
        for c in ["user", "greeter", "lock-screen", "background"] {
            assert_eq!(SessionClass::parse(c).unwrap().as_str(), c);
        }
        assert!(SessionClass::parse("admin").is_err());
        assert!(SessionType::Wayland.is_graphical());
        assert!(!SessionType::Tty.is_graphical());
    }

    #[test]
    fn inhibitor_kinds_are_colon_separated_known_words() {
        let w = What::parse("shutdown:sleep").unwrap();
        assert!(w.intersects(What::SHUTDOWN) && w.intersects(What::SLEEP));
        assert!(!w.intersects(What::IDLE));
        assert_eq!(w.to_string(), "shutdown:sleep");
        assert!(w.only_delayable());
        assert!(!What::parse("idle").unwrap().only_delayable());
        assert_eq!(
            What::parse("handle-lid-switch").unwrap().to_string(),
            "handle-lid-switch"
        );
        for bad in ["", "shutdown:", "reboot", "shutdown::sleep", "Shutdown"] {
            assert!(What::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn power_actions_come_from_method_names() {
        assert_eq!(
            PowerAction::from_method("PowerOffWithFlags"),
            Some(PowerAction::PowerOff)
        );
        assert_eq!(
            PowerAction::from_method("CanHybridSleep"),
            Some(PowerAction::HybridSleep)
        );
        assert_eq!(PowerAction::from_method("Inhibit"), None);
        assert_eq!(PowerAction::Reboot.what(), What::SHUTDOWN);
        assert_eq!(PowerAction::Suspend.what(), What::SLEEP);
    }

    #[test]
    fn modes_are_block_or_delay() {
        assert_eq!(Mode::parse("block").unwrap(), Mode::Block);
        assert_eq!(Mode::parse("delay").unwrap().as_str(), "delay");
        assert!(Mode::parse("maybe").is_err());
    }

    #[test]
    fn stamps_move_forward() {
        let a = Stamp::now();
        let b = Stamp::now();
        assert!(b.monotonic >= a.monotonic && a.monotonic > 0);
        assert!(a.realtime > 1_600_000_000_000_000);
    }
}
