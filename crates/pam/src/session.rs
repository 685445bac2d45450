//! What a PAM session becomes in logind, decided the way pam_systemd decides it, and the two
//! calls: `CreateSession` on open, `ReleaseSession` on close.

use std::os::fd::OwnedFd;

use crate::bus::{Bus, BusError, Target};
use crate::wire::{Reader, Writer};

/// What PAM tells about the login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Items {
    /// `PAM_SERVICE`.
    pub service: String,
    /// `PAM_TTY`.
    pub tty: String,
    /// `PAM_RHOST`.
    pub rhost: String,
    /// `PAM_RUSER`.
    pub ruser: String,
}

/// Module arguments (`class=`, `type=`, `desktop=`, `debug`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Default class.
    pub class: String,
    /// Default type.
    pub kind: String,
    /// Default desktop.
    pub desktop: String,
    /// Log what is done.
    pub debug: bool,
}

impl Args {
    /// Parses the module arguments; unknown ones are returned for a warning.
    pub fn parse<'a>(argv: impl IntoIterator<Item = &'a str>) -> (Self, Vec<String>) {
        let mut a = Args::default();
        let mut unknown = Vec::new();
        for arg in argv {
            if let Some(v) = arg.strip_prefix("class=") {
                a.class = v.to_owned();
            } else if let Some(v) = arg.strip_prefix("type=") {
                a.kind = v.to_owned();
            } else if let Some(v) = arg.strip_prefix("desktop=") {
                a.desktop = v.to_owned();
            } else if arg == "debug" {
                a.debug = true;
            } else {
                unknown.push(arg.to_owned());
            }
        }
        (a, unknown)
    }
}

/// The arguments of `CreateSession`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The user.
    pub uid: u32,
    /// The leader (this process).
    pub pid: u32,
    /// PAM service.
    pub service: String,
    /// Session type.
    pub kind: String,
    /// Session class.
    pub class: String,
    /// Desktop.
    pub desktop: String,
    /// Seat.
    pub seat: String,
    /// VT number.
    pub vtnr: u32,
    /// Terminal.
    pub tty: String,
    /// X11 display.
    pub display: String,
    /// Whether the login came over the network.
    pub remote: bool,
    /// Remote user.
    pub remote_user: String,
    /// Remote host.
    pub remote_host: String,
}

fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(
        h.as_str(),
        "localhost" | "localhost.localdomain" | "127.0.0.1" | "::1"
    ) || h.ends_with(".localhost")
}

/// The VT number of a terminal name (`tty3` → 3).
fn vt_of(tty: &str) -> Option<u32> {
    let n: u32 = tty.strip_prefix("tty")?.parse().ok()?;
    (n > 0).then_some(n)
}

/// Builds the request. `env` looks a variable up in the PAM environment, then the process's
/// (display managers pass `XDG_SEAT`, `XDG_VTNR`, `XDG_SESSION_TYPE`, … either way).
pub fn request(
    uid: u32,
    pid: u32,
    items: &Items,
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
) -> Request {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let mut r = Request {
        uid,
        pid,
        service: items.service.clone(),
        remote: !items.rhost.is_empty() && !is_localhost(&items.rhost),
        remote_user: items.ruser.clone(),
        remote_host: items.rhost.clone(),
        ..Request::default()
    };
    let mut tty = items
        .tty
        .strip_prefix("/dev/")
        .unwrap_or(&items.tty)
        .to_owned();
    let mut kind = get("XDG_SESSION_TYPE").unwrap_or_else(|| args.kind.clone());
    let mut class = get("XDG_SESSION_CLASS").unwrap_or_else(|| args.class.clone());
    if tty.contains(':') {
        // An X11 display given as the terminal (display managers do this).
        r.display = std::mem::take(&mut tty);
    } else if tty == "cron" {
        tty.clear();
        if kind.is_empty() {
            kind = "unspecified".into();
        }
        if class.is_empty() {
            class = "background".into();
        }
    } else if tty == "ssh" {
        // sshd's placeholder when it allocated no terminal.
        tty.clear();
    }
    r.seat = get("XDG_SEAT").unwrap_or_default();
    r.vtnr = get("XDG_VTNR").and_then(|v| v.parse().ok()).unwrap_or(0);
    if let Some(n) = vt_of(&tty) {
        if r.seat.is_empty() {
            r.seat = "seat0".into();
        }
        r.vtnr = n;
    }
    if r.remote {
        r.seat.clear();
        r.vtnr = 0;
    }
    if kind.is_empty() {
        kind = if !r.display.is_empty() {
            "x11".into()
        } else if !tty.is_empty() {
            "tty".into()
        } else {
            "unspecified".into()
        };
    }
    if class.is_empty() {
        class = "user".into();
    }
    r.kind = kind;
    r.class = class;
    r.desktop = get("XDG_SESSION_DESKTOP").unwrap_or_else(|| args.desktop.clone());
    r.tty = tty;
    r
}

/// The body of `CreateSession` (signature `uusssssussbssa(sv)`).
pub fn create_body(r: &Request) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(r.uid);
    w.u32(r.pid);
    for s in [&r.service, &r.kind, &r.class, &r.desktop, &r.seat] {
        w.string(s);
    }
    w.u32(r.vtnr);
    w.string(&r.tty);
    w.string(&r.display);
    w.bool(r.remote);
    w.string(&r.remote_user);
    w.string(&r.remote_host);
    w.empty_struct_array();
    w.buf
}

/// What logind answered.
#[derive(Debug)]
pub struct Created {
    /// Session id.
    pub id: String,
    /// `$XDG_RUNTIME_DIR`.
    pub runtime_path: String,
    /// The session fifo: the session ends when every copy is closed.
    pub fifo: Option<OwnedFd>,
    /// Seat.
    pub seat: String,
    /// VT number.
    pub vtnr: u32,
}

/// Parses the reply of `CreateSession` (`soshusub`).
pub fn parse_created(body: &[u8], mut fds: Vec<OwnedFd>) -> Result<Created, BusError> {
    let mut r = Reader::new(body);
    let id = r.string()?;
    let _path = r.string()?;
    let runtime_path = r.string()?;
    let fd_index = r.u32()? as usize;
    let _uid = r.u32()?;
    let seat = r.string()?;
    let vtnr = r.u32()?;
    let _existing = r.bool()?;
    let fifo = (fd_index < fds.len()).then(|| fds.swap_remove(fd_index));
    Ok(Created {
        id,
        runtime_path,
        fifo,
        seat,
        vtnr,
    })
}

/// `CreateSession`.
pub fn create(bus: &mut Bus, r: &Request) -> Result<Created, BusError> {
    let reply = bus.call(
        &Target::login1("CreateSession"),
        "uusssssussbssa(sv)",
        &create_body(r),
    )?;
    if reply.header.signature != "soshusub" {
        return Err(BusError::Wire(crate::wire::WireError(
            "unexpected CreateSession reply signature",
        )));
    }
    parse_created(&reply.body, reply.fds)
}

/// `ReleaseSession(id)`.
pub fn release(bus: &mut Bus, id: &str) -> Result<(), BusError> {
    let mut w = Writer::default();
    w.string(id);
    bus.call(&Target::login1("ReleaseSession"), "s", &w.buf)
        .map(drop)
}

/// The variables a successful open puts in the PAM environment, in order.
pub fn environment(r: &Request, c: &Created) -> Vec<(&'static str, String)> {
    let mut v = vec![("XDG_SESSION_ID", c.id.clone())];
    if !c.runtime_path.is_empty() {
        v.push(("XDG_RUNTIME_DIR", c.runtime_path.clone()));
    }
    if !c.seat.is_empty() {
        v.push(("XDG_SEAT", c.seat.clone()));
    }
    if c.vtnr > 0 {
        v.push(("XDG_VTNR", c.vtnr.to_string()));
    }
    v.push(("XDG_SESSION_TYPE", r.kind.clone()));
    v.push(("XDG_SESSION_CLASS", r.class.clone()));
    if !r.desktop.is_empty() {
        v.push(("XDG_SESSION_DESKTOP", r.desktop.clone()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(tty: &str, rhost: &str) -> Items {
        Items {
            service: "login".into(),
            tty: tty.into(),
            rhost: rhost.into(),
            ruser: String::new(),
        }
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_vt_login_is_a_tty_session_on_seat0() {
        let r = request(1000, 42, &items("/dev/tty3", ""), &Args::default(), &none);
        assert_eq!(
            (r.seat.as_str(), r.vtnr, r.tty.as_str()),
            ("seat0", 3, "tty3")
        );
        assert_eq!((r.kind.as_str(), r.class.as_str()), ("tty", "user"));
        assert!(!r.remote);
    }

    #[test]
    fn a_remote_login_never_gets_a_seat() {
        let env = |k: &str| (k == "XDG_SEAT").then(|| "seat0".to_owned());
        let r = request(
            1000,
            42,
            &items("pts/2", "example.org"),
            &Args::default(),
            &env,
        );
        assert!(r.remote);
        assert_eq!((r.seat.as_str(), r.vtnr), ("", 0));
        assert_eq!(r.remote_host, "example.org");
        let local = request(
            1000,
            42,
            &items("pts/2", "localhost"),
            &Args::default(),
            &none,
        );
        assert!(!local.remote);
    }

    #[test]
    fn displays_cron_and_ssh_placeholders_are_recognised() {
        let x = request(1000, 1, &items(":0", ""), &Args::default(), &none);
        assert_eq!(
            (x.display.as_str(), x.tty.as_str(), x.kind.as_str()),
            (":0", "", "x11")
        );
        let cron = request(0, 1, &items("cron", ""), &Args::default(), &none);
        assert_eq!(
            (cron.kind.as_str(), cron.class.as_str()),
            ("unspecified", "background")
        );
        let ssh = request(0, 1, &items("ssh", "10.0.0.1"), &Args::default(), &none);
        assert_eq!((ssh.tty.as_str(), ssh.kind.as_str()), ("", "unspecified"));
    }

    #[test]
    fn environment_and_arguments_set_type_class_desktop_and_seat() {
        let (args, unknown) = Args::parse([
            "class=greeter",
            "type=wayland",
            "desktop=sway",
            "debug",
            "x=1",
        ]);
        assert_eq!(unknown, ["x=1"]);
        assert!(args.debug);
        let r = request(1000, 1, &items("", ""), &args, &none);
        assert_eq!(
            (r.kind.as_str(), r.class.as_str(), r.desktop.as_str()),
            ("wayland", "greeter", "sway")
        );
        let env = |k: &str| match k {
            "XDG_SESSION_TYPE" => Some("x11".to_owned()),
            "XDG_SEAT" => Some("seat0".to_owned()),
            "XDG_VTNR" => Some("7".to_owned()),
            _ => None,
        };
        let r = request(1000, 1, &items("", ""), &args, &env);
        assert_eq!(
            (r.kind.as_str(), r.seat.as_str(), r.vtnr),
            ("x11", "seat0", 7)
        );
    }

    #[test]
    fn the_create_body_and_reply_round_trip() {
        let r = request(1000, 42, &items("tty1", ""), &Args::default(), &none);
        let body = create_body(&r);
        let mut rd = Reader::new(&body);
        assert_eq!(rd.u32().unwrap(), 1000);
        assert_eq!(rd.u32().unwrap(), 42);
        assert_eq!(rd.string().unwrap(), "login");
        let mut w = Writer::default();
        w.string("c7");
        w.string("/org/freedesktop/login1/session/c7");
        w.string("/run/user/1000");
        w.u32(0);
        w.u32(1000);
        w.string("seat0");
        w.u32(1);
        w.bool(false);
        let c = parse_created(&w.buf, Vec::new()).unwrap();
        assert_eq!((c.id.as_str(), c.seat.as_str(), c.vtnr), ("c7", "seat0", 1));
        assert!(c.fifo.is_none());
        let env = environment(&r, &c);
        assert_eq!(env[0], ("XDG_SESSION_ID", "c7".to_owned()));
        assert!(env.contains(&("XDG_RUNTIME_DIR", "/run/user/1000".to_owned())));
        assert!(env.contains(&("XDG_VTNR", "1".to_owned())));
    }
}
