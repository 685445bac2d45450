//! `pam_dynamod.so`: a PAM session module that registers every login with dynamod-logind
//! (`org.freedesktop.login1`), the way pam_systemd does with systemd-logind.
//!
//! ```text
//! session  optional  pam_dynamod.so [class=C] [type=T] [desktop=D] [debug]
//! ```
//!
//! * `open_session` works out the session's type, class, seat and terminal from the PAM items
//!   and the `XDG_*` variables (see [`session::request`]), calls `CreateSession` with this
//!   process as the leader, exports `XDG_SESSION_ID`, `XDG_RUNTIME_DIR`, `XDG_SEAT`,
//!   `XDG_VTNR`, `XDG_SESSION_TYPE`, `XDG_SESSION_CLASS` and `XDG_SESSION_DESKTOP` into the
//!   PAM environment, and keeps the session fifo open: logind ends the session when this
//!   process goes away, even if `close_session` never runs.
//! * `close_session` calls `ReleaseSession` and closes the fifo.
//! * A process that already belongs to a session (`su` inside a login) gets no new session
//!   (logind answers `SessionBusy`), which is not an error.
//! * Failures are logged with `pam_syslog` and answered `PAM_SESSION_ERR`; list the module as
//!   `optional` so a missing logind never blocks a login.
//!
//! The bus is reached with a small blocking client ([`bus`]) over `$DBUS_SYSTEM_BUS_ADDRESS`
//! (read with `secure_getenv`, so setuid programs ignore it) or the standard socket.
//!
//! This crate is a C ABI boundary: libpam calls it with raw pointers, so it contains `unsafe`,
//! each block with the invariant it relies on.

#![allow(unsafe_code)]

pub mod bus;
pub mod session;
pub mod wire;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

/// libpam's opaque handle.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

const PAM_SUCCESS: c_int = 0;
const PAM_SESSION_ERR: c_int = 14;
const PAM_SERVICE: c_int = 1;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_RUSER: c_int = 8;

const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
const LOG_DEBUG: c_int = 7;

/// `pam_set_data` key of the session fifo (the descriptor plus one, as a pointer).
const FIFO_KEY: &CStr = c"pam_dynamod.fifo";
/// `pam_set_data` key of the session id (a boxed `CString`).
const ID_KEY: &CStr = c"pam_dynamod.session_id";

type Cleanup = unsafe extern "C" fn(*mut PamHandle, *mut c_void, c_int);

// Linked against libpam by build.rs.
unsafe extern "C" {
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
    -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandle,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<Cleanup>,
    ) -> c_int;
    fn pam_get_data(pamh: *const PamHandle, name: *const c_char, data: *mut *const c_void)
    -> c_int;
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

unsafe extern "C" {
    /// glibc's getenv(3) that answers NULL in setuid and setgid programs.
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// Safe accessors over a handle libpam gave us for the duration of one call.
struct Pam {
    h: *mut PamHandle,
}

impl Pam {
    fn log(&self, priority: c_int, msg: &str) {
        let Ok(msg) = CString::new(msg.replace('\0', " ")) else {
            return;
        };
        // SAFETY: `h` is the live handle of this call; the format is a literal "%s" and the
        // one argument is a NUL-terminated string that outlives the call.
        unsafe { pam_syslog(self.h, priority, c"%s".as_ptr(), msg.as_ptr()) };
    }

    fn item(&self, item: c_int) -> String {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: `h` is live and `p` is a valid out-pointer; libpam stores a pointer to its own
        // NUL-terminated string (or NULL) there.
        let rc = unsafe { pam_get_item(self.h, item, &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return String::new();
        }
        // SAFETY: string items are NUL-terminated C strings owned by libpam, valid until the
        // item is changed, which cannot happen during this call.
        unsafe { CStr::from_ptr(p.cast::<c_char>()) }
            .to_string_lossy()
            .into_owned()
    }

    fn user(&self) -> Option<String> {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: live handle, valid out-pointer, NULL prompt (libpam's default).
        let rc = unsafe { pam_get_user(self.h, &mut p, std::ptr::null()) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: libpam returns its own NUL-terminated copy of the user name.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// A variable from the PAM environment, else (not for setuid programs) the process's.
    fn env(&self, name: &str) -> Option<String> {
        let cname = CString::new(name).ok()?;
        // SAFETY: live handle and a NUL-terminated name; the result is libpam's string or NULL.
        let p = unsafe { pam_getenv(self.h, cname.as_ptr()) };
        if !p.is_null() {
            // SAFETY: a NUL-terminated string owned by libpam's environment.
            return Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        }
        secure_env(name)
    }

    fn putenv(&self, name: &str, value: &str) -> bool {
        let Ok(kv) = CString::new(format!("{name}={value}")) else {
            return false;
        };
        // SAFETY: live handle and a NUL-terminated string; libpam copies it.
        unsafe { pam_putenv(self.h, kv.as_ptr()) == PAM_SUCCESS }
    }

    fn set_data(&self, key: &CStr, data: *mut c_void, cleanup: Option<Cleanup>) -> bool {
        // SAFETY: live handle, static key; `data` is owned by libpam from now on and released
        // through `cleanup`, which matches how it was made.
        unsafe { pam_set_data(self.h, key.as_ptr(), data, cleanup) == PAM_SUCCESS }
    }

    fn session_id(&self) -> Option<String> {
        let mut p: *const c_void = std::ptr::null();
        // SAFETY: live handle, static key, valid out-pointer.
        let rc = unsafe { pam_get_data(self.h, ID_KEY.as_ptr(), &mut p) };
        if rc != PAM_SUCCESS || p.is_null() {
            return None;
        }
        // SAFETY: the only data stored under ID_KEY is a `Box<CString>` made in
        // `remember_session`; it stays alive until libpam runs its cleanup.
        let id = unsafe { &*p.cast::<CString>() };
        Some(id.to_string_lossy().into_owned())
    }
}

fn secure_env(name: &str) -> Option<String> {
    let cname = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; secure_getenv returns NULL or a pointer into the
    // environment, read at once (the module does not modify the environment).
    let p = unsafe { secure_getenv(cname.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn close_fifo(_h: *mut PamHandle, data: *mut c_void, _status: c_int) {
    let fd = (data as usize).wrapping_sub(1);
    if let Ok(fd) = i32::try_from(fd) {
        // SAFETY: FIFO_KEY data is always "fd + 1" of a descriptor this module received and
        // handed to libpam; libpam calls this cleanup exactly once, so we close it once.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

unsafe extern "C" fn free_id(_h: *mut PamHandle, data: *mut c_void, _status: c_int) {
    if !data.is_null() {
        // SAFETY: ID_KEY data is always a `Box<CString>` leaked in `remember_session`, freed
        // here exactly once.
        drop(unsafe { Box::from_raw(data.cast::<CString>()) });
    }
}

fn remember_session(pam: &Pam, id: &str, fifo: Option<OwnedFd>) {
    if let Ok(id) = CString::new(id) {
        let data = Box::into_raw(Box::new(id)).cast::<c_void>();
        if !pam.set_data(ID_KEY, data, Some(free_id)) {
            // SAFETY: libpam did not take the box; we still own it.
            drop(unsafe { Box::from_raw(data.cast::<CString>()) });
        }
    }
    if let Some(fd) = fifo {
        let raw = fd.into_raw_fd();
        let data = (raw as usize + 1) as *mut c_void;
        if !pam.set_data(FIFO_KEY, data, Some(close_fifo)) {
            // SAFETY: libpam did not take the descriptor; we still own it.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        }
    }
}

fn args(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return Vec::new();
    }
    (0..n)
        .filter_map(|i| {
            // SAFETY: libpam passes `argc` valid pointers in `argv`, each NUL-terminated.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                return None;
            }
            // SAFETY: non-null and NUL-terminated, owned by libpam for the whole call.
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        })
        .collect()
}

fn bus_address() -> String {
    secure_env("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|| bus::DEFAULT_ADDRESS.to_owned())
}

fn open(pam: &Pam, argv: &[String]) -> c_int {
    let (args, unknown) = session::Args::parse(argv.iter().map(String::as_str));
    for a in unknown {
        pam.log(LOG_WARNING, &format!("unknown argument {a:?} ignored"));
    }
    let Some(user) = pam.user() else {
        pam.log(LOG_ERR, "cannot determine the user name");
        return PAM_SESSION_ERR;
    };
    let uid = match nix::unistd::User::from_name(&user) {
        Ok(Some(u)) => u.uid.as_raw(),
        _ => {
            pam.log(LOG_ERR, &format!("user {user:?} is not known"));
            return PAM_SESSION_ERR;
        }
    };
    let items = session::Items {
        service: pam.item(PAM_SERVICE),
        tty: pam.item(PAM_TTY),
        rhost: pam.item(PAM_RHOST),
        ruser: pam.item(PAM_RUSER),
    };
    let req = session::request(uid, std::process::id(), &items, &args, &|k| pam.env(k));
    if args.debug {
        pam.log(LOG_DEBUG, &format!("asking logind for a session: {req:?}"));
    }
    let created = bus::Bus::connect(&bus_address()).and_then(|mut b| session::create(&mut b, &req));
    let created = match created {
        Ok(c) => c,
        Err(bus::BusError::Method { name, .. }) if name == "org.freedesktop.login1.SessionBusy" => {
            if args.debug {
                pam.log(LOG_DEBUG, "already in a session; no new session created");
            }
            return PAM_SUCCESS;
        }
        Err(e) => {
            pam.log(LOG_ERR, &format!("cannot create a session: {e}"));
            return PAM_SESSION_ERR;
        }
    };
    for (name, value) in session::environment(&req, &created) {
        if !pam.putenv(name, &value) {
            pam.log(
                LOG_ERR,
                &format!("cannot set {name} in the PAM environment"),
            );
            return PAM_SESSION_ERR;
        }
    }
    if args.debug {
        pam.log(LOG_DEBUG, &format!("session {} created", created.id));
    }
    remember_session(pam, &created.id, created.fifo);
    PAM_SUCCESS
}

fn close(pam: &Pam, argv: &[String]) -> c_int {
    let (args, _) = session::Args::parse(argv.iter().map(String::as_str));
    let Some(id) = pam.session_id() else {
        return PAM_SUCCESS;
    };
    let result = bus::Bus::connect(&bus_address()).and_then(|mut b| session::release(&mut b, &id));
    let rc = match result {
        Ok(()) => PAM_SUCCESS,
        Err(bus::BusError::Method { name, .. })
            if name == "org.freedesktop.login1.NoSuchSession" =>
        {
            PAM_SUCCESS
        }
        Err(e) => {
            pam.log(LOG_ERR, &format!("cannot release session {id}: {e}"));
            PAM_SESSION_ERR
        }
    };
    if args.debug && rc == PAM_SUCCESS {
        pam.log(LOG_DEBUG, &format!("session {id} released"));
    }
    // Replacing the data runs the cleanups: the fifo is closed, the id freed.
    pam.set_data(FIFO_KEY, std::ptr::null_mut(), None);
    pam.set_data(ID_KEY, std::ptr::null_mut(), None);
    rc
}

/// PAM entry point: a session opens.
///
/// # Safety
/// Called by libpam with a live handle and `argc` argument strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    if pamh.is_null() {
        return PAM_SESSION_ERR;
    }
    let pam = Pam { h: pamh };
    let argv = args(argc, argv);
    std::panic::catch_unwind(|| open(&pam, &argv)).unwrap_or(PAM_SESSION_ERR)
}

/// PAM entry point: a session closes.
///
/// # Safety
/// Called by libpam with a live handle and `argc` argument strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    if pamh.is_null() {
        return PAM_SESSION_ERR;
    }
    let pam = Pam { h: pamh };
    let argv = args(argc, argv);
    std::panic::catch_unwind(|| close(&pam, &argv)).unwrap_or(PAM_SESSION_ERR)
}
