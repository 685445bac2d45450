//! A `libsystemd.so.0` for dynamod machines: the parts of sd-daemon(3), sd-journal(3) and
//! sd-id128(3) that services use, with the symbol versions (`LIBSYSTEMD_209`, …) binaries
//! linked against the real library ask for.
//!
//! * Notifications (`sd_notify`, `sd_pid_notify_with_fds`, `sd_notifyf`, `sd_notify_barrier`)
//!   speak the sd_notify datagram protocol to `$NOTIFY_SOCKET`, which dynamod-svmgr gives
//!   every `type = "notify"` service.
//! * `sd_listen_fds`, `sd_listen_fds_with_names`, `sd_watchdog_enabled` read the environment
//!   exactly as libsystemd does (and mark passed fds close-on-exec, like libsystemd).
//! * `sd_booted` is true when `/run/systemd/system/` or `/run/dynamod/` exists.
//! * Journal calls write `<priority>message` lines to standard error, which svmgr captures
//!   and hands to dynamod-logd (there is no journald socket on a dynamod machine).
//! * `sd_id128_*`: machine id, boot id, invocation id, random ids, parsing and formatting.
//!
//! The exported `sd_*` symbols are defined in `src/shim.c` (C variadic functions cannot be
//! written in stable Rust, and the versioned names must come from an object rustc does not
//! version itself; see `build.rs`). They call the `dynamod_shim_*` functions below.
//!
//! This crate is a C ABI boundary: its functions receive raw pointers from C callers, so it is
//! the one crate besides `dynamod-sys` that contains `unsafe`; every block states its
//! invariant.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint};
use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, UnixCredentials,
    sendmsg, socket,
};

/// The first passed fd (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

fn neg(e: Errno) -> c_int {
    -(e as c_int)
}

fn unset_env(keys: &[&str]) {
    for k in keys {
        // SAFETY: libsystemd's contract: callers that ask to unset the environment accept that
        // it is modified in place, with the same thread-safety caveats as unsetenv(3), which
        // is what the C library does here.
        unsafe { std::env::remove_var(k) };
    }
}

/// The notify socket address from `$NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
pub fn notify_address(value: &str) -> Result<UnixAddr, Errno> {
    if let Some(name) = value.strip_prefix('@') {
        UnixAddr::new_abstract(name.as_bytes())
    } else if value.starts_with('/') {
        UnixAddr::new(value)
    } else {
        Err(Errno::EINVAL)
    }
}

/// Sends `state` (and `fds`) to `$NOTIFY_SOCKET`; 0 when the variable is unset, 1 when sent.
/// A non-zero `pid` other than ours is sent as the sender's credentials (what
/// `sd_pid_notify` does for a main process that forked).
pub fn pid_notify(pid: i32, state: &[u8], fds: &[RawFd]) -> Result<bool, Errno> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy();
    if target.is_empty() {
        return Ok(false);
    }
    send_notify(&target, pid, state, fds)?;
    Ok(true)
}

/// Sends one notification datagram to the socket `target` (see [`notify_address`]).
pub fn send_notify(target: &str, pid: i32, state: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    let addr = notify_address(target)?;
    let sock: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let iov = [IoSlice::new(state)];
    let creds;
    let mut cmsgs = Vec::new();
    if !fds.is_empty() {
        cmsgs.push(ControlMessage::ScmRights(fds));
    }
    if pid != 0 && pid != std::process::id() as i32 {
        let mut raw: nix::libc::ucred = UnixCredentials::new().into();
        raw.pid = pid;
        creds = UnixCredentials::from(raw);
        cmsgs.push(ControlMessage::ScmCredentials(&creds));
    }
    match sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        Some(&addr),
    ) {
        Ok(_) => Ok(()),
        // Impersonating another PID needs privileges; send as ourselves then, as libsystemd
        // does.
        Err(Errno::EPERM) if cmsgs.len() > usize::from(!fds.is_empty()) => {
            let plain: Vec<ControlMessage<'_>> = if fds.is_empty() {
                Vec::new()
            } else {
                vec![ControlMessage::ScmRights(fds)]
            };
            sendmsg(
                sock.as_raw_fd(),
                &iov,
                &plain,
                MsgFlags::MSG_NOSIGNAL,
                Some(&addr),
            )?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `sd_pid_notify_with_fds(3)`.
///
/// # Safety
/// `state` is NULL or a NUL-terminated string; `fds` is NULL or points to `n_fds` ints.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_pid_notify_with_fds(
    pid: nix::libc::pid_t,
    unset_environment: c_int,
    state: *const c_char,
    fds: *const c_int,
    n_fds: c_uint,
) -> c_int {
    let result = (|| {
        if state.is_null() || (n_fds > 0 && fds.is_null()) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
        let state = unsafe { CStr::from_ptr(state) }.to_bytes();
        let fds: &[RawFd] = if n_fds == 0 {
            &[]
        } else {
            // SAFETY: checked non-NULL; the caller passes n_fds valid ints.
            unsafe { std::slice::from_raw_parts(fds, n_fds as usize) }
        };
        pid_notify(pid, state, fds)
    })();
    if unset_environment != 0 {
        unset_env(&["NOTIFY_SOCKET"]);
    }
    match result {
        Ok(sent) => c_int::from(sent),
        Err(e) => neg(e),
    }
}

/// `sd_notify_barrier(3)`: sends `BARRIER=1` with the write end of a pipe and waits until the
/// service manager has closed it (it received everything sent before).
#[unsafe(no_mangle)]
pub extern "C" fn dynamod_shim_notify_barrier(
    unset_environment: c_int,
    timeout_usec: u64,
) -> c_int {
    let result = (|| {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let sent = pid_notify(0, b"BARRIER=1", &[write.as_raw_fd()])?;
        drop(write);
        if !sent {
            return Ok(0);
        }
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&read),
            nix::poll::PollFlags::empty(),
        )];
        let timeout = if timeout_usec == u64::MAX {
            nix::poll::PollTimeout::NONE
        } else {
            let ms = Duration::from_micros(timeout_usec).as_millis();
            nix::poll::PollTimeout::try_from(ms.min(i32::MAX as u128) as i32)
                .unwrap_or(nix::poll::PollTimeout::MAX)
        };
        loop {
            match nix::poll::poll(&mut pfd, timeout) {
                Ok(0) => return Err(Errno::ETIMEDOUT),
                Ok(_) => return Ok(1),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    })();
    if unset_environment != 0 {
        unset_env(&["NOTIFY_SOCKET"]);
    }
    result.unwrap_or_else(neg)
}

/// The number of fds passed by socket activation, from `LISTEN_PID` and `LISTEN_FDS`.
pub fn listen_fd_count() -> Result<c_int, Errno> {
    let Some(pid) = std::env::var_os("LISTEN_PID") else {
        return Ok(0);
    };
    let pid: u32 = pid.to_string_lossy().parse().map_err(|_| Errno::EINVAL)?;
    if pid != std::process::id() {
        return Ok(0);
    }
    let Some(n) = std::env::var_os("LISTEN_FDS") else {
        return Ok(0);
    };
    let n: c_int = n.to_string_lossy().parse().map_err(|_| Errno::EINVAL)?;
    if !(0..=c_int::MAX - LISTEN_FDS_START).contains(&n) {
        return Err(Errno::EINVAL);
    }
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + n {
        // SAFETY: the service manager passed these fds to this process (LISTEN_PID matched);
        // the borrow lasts only for the fcntl calls below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let flags = nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFD)?;
        let flags = nix::fcntl::FdFlag::from_bits_retain(flags) | nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_SETFD(flags))?;
    }
    Ok(n)
}

/// `sd_listen_fds(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn dynamod_shim_listen_fds(unset_environment: c_int) -> c_int {
    let r = listen_fd_count();
    if unset_environment != 0 {
        unset_env(&["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]);
    }
    r.unwrap_or_else(neg)
}

/// The names of `n` passed fds: `LISTEN_FDNAMES` split at `:`, or `unknown` for each.
pub fn listen_fd_names(n: usize) -> Result<Vec<String>, Errno> {
    match std::env::var("LISTEN_FDNAMES") {
        Ok(v) => {
            let names: Vec<String> = if v.is_empty() {
                Vec::new()
            } else {
                v.split(':').map(str::to_owned).collect()
            };
            if names.len() == n {
                Ok(names)
            } else {
                Err(Errno::EINVAL)
            }
        }
        Err(_) => Ok(vec!["unknown".to_owned(); n]),
    }
}

/// `sd_listen_fds_with_names(3)`; `names` receives a malloc'ed, NULL-terminated array of
/// malloc'ed strings, as the caller frees it with free(3).
///
/// # Safety
/// `names` is NULL or a valid place to store a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_listen_fds_with_names(
    unset_environment: c_int,
    names: *mut *mut *mut c_char,
) -> c_int {
    let result = (|| {
        let n = listen_fd_count()?;
        if names.is_null() {
            return Ok(n);
        }
        let list = listen_fd_names(usize::try_from(n).unwrap_or(0))?;
        let size = std::mem::size_of::<*mut c_char>();
        // SAFETY: calloc with a count and element size; checked for NULL below.
        let array = unsafe { nix::libc::calloc(list.len() + 1, size) }.cast::<*mut c_char>();
        if array.is_null() {
            return Err(Errno::ENOMEM);
        }
        for (i, name) in list.iter().enumerate() {
            let c = std::ffi::CString::new(name.as_str()).map_err(|_| Errno::EINVAL);
            // SAFETY: strdup copies a valid NUL-terminated string (or we skip on error).
            let dup = c.map(|c| unsafe { nix::libc::strdup(c.as_ptr()) });
            match dup {
                Ok(p) if !p.is_null() => {
                    // SAFETY: i < list.len(), inside the array of list.len() + 1 pointers.
                    unsafe { *array.add(i) = p };
                }
                other => {
                    for j in 0..i {
                        // SAFETY: entries 0..i were filled by strdup above.
                        unsafe { nix::libc::free((*array.add(j)).cast()) };
                    }
                    // SAFETY: the array came from calloc above.
                    unsafe { nix::libc::free(array.cast()) };
                    return Err(other.err().unwrap_or(Errno::ENOMEM));
                }
            }
        }
        // SAFETY: the caller gave a valid place for the pointer (checked non-NULL).
        unsafe { *names = array };
        Ok(n)
    })();
    if unset_environment != 0 {
        unset_env(&["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]);
    }
    result.unwrap_or_else(neg)
}

/// Whether the system runs a systemd-compatible service manager: `/run/systemd/system/` (what
/// systemd's own clients check; dynamod-sd1bridge creates it) or `/run/dynamod/` exists.
pub fn booted(run: &Path) -> bool {
    run.join("systemd/system").is_dir() || run.join("dynamod").is_dir()
}

/// `sd_booted(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn dynamod_shim_booted() -> c_int {
    c_int::from(booted(Path::new("/run")))
}

/// The watchdog interval from `WATCHDOG_USEC` when `WATCHDOG_PID` (if set) is ours.
pub fn watchdog_usec() -> Result<Option<u64>, Errno> {
    let Some(usec) = std::env::var_os("WATCHDOG_USEC") else {
        return Ok(None);
    };
    let usec: u64 = usec.to_string_lossy().parse().map_err(|_| Errno::EINVAL)?;
    if usec == 0 || usec == u64::MAX {
        return Err(Errno::EINVAL);
    }
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        let pid: u32 = pid.to_string_lossy().parse().map_err(|_| Errno::EINVAL)?;
        if pid != std::process::id() {
            return Ok(None);
        }
    }
    Ok(Some(usec))
}

/// `sd_watchdog_enabled(3)`.
///
/// # Safety
/// `usec` is NULL or a valid place to store a `u64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_watchdog_enabled(
    unset_environment: c_int,
    usec: *mut u64,
) -> c_int {
    let r = watchdog_usec();
    if unset_environment != 0 {
        unset_env(&["WATCHDOG_USEC", "WATCHDOG_PID"]);
    }
    match r {
        Ok(Some(v)) => {
            if !usec.is_null() {
                // SAFETY: checked non-NULL; the caller passes a valid u64 location.
                unsafe { *usec = v };
            }
            1
        }
        Ok(None) => 0,
        Err(e) => neg(e),
    }
}

/// The text written for one journal message: each line prefixed with `<priority>` (the
/// kernel/syslog level-prefix convention, sd-daemon(3)).
pub fn journal_lines(priority: c_int, message: &[u8]) -> Vec<u8> {
    let level = priority & 7;
    let mut out = Vec::with_capacity(message.len() + 8);
    let text = message.strip_suffix(b"\n").unwrap_or(message);
    for line in text.split(|b| *b == b'\n') {
        out.extend_from_slice(format!("<{level}>").as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

fn write_stderr(bytes: &[u8]) -> c_int {
    let mut err = std::io::stderr().lock();
    match err.write_all(bytes).and_then(|()| err.flush()) {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(nix::libc::EIO),
    }
}

/// `sd_journal_print(3)` after formatting.
///
/// # Safety
/// `message` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_journal_print(
    priority: c_int,
    message: *const c_char,
) -> c_int {
    if message.is_null() {
        return neg(Errno::EINVAL);
    }
    // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(message) }.to_bytes();
    write_stderr(&journal_lines(priority, message))
}

/// The line written for a structured entry: `MESSAGE=` at priority `PRIORITY=` (default 6,
/// info); an entry without a message shows all its fields.
pub fn journal_entry(fields: &[&[u8]]) -> Vec<u8> {
    let value = |key: &[u8]| {
        fields
            .iter()
            .rev()
            .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix(b"=")))
    };
    let priority = value(b"PRIORITY")
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.trim().parse::<c_int>().ok())
        .unwrap_or(6);
    match value(b"MESSAGE") {
        Some(m) => journal_lines(priority, m),
        None => journal_lines(priority, &fields.join(&b' ')),
    }
}

/// `sd_journal_sendv(3)`: `FIELD=value` entries.
///
/// # Safety
/// `fields` is NULL only when `n` is 0, else it points to `n` iovecs whose buffers are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_journal_fields(
    fields: *const nix::libc::iovec,
    n: usize,
) -> c_int {
    if n > 0 && fields.is_null() {
        return neg(Errno::EINVAL);
    }
    let iovs: &[nix::libc::iovec] = if n == 0 {
        &[]
    } else {
        // SAFETY: checked non-NULL; the caller passes n iovecs.
        unsafe { std::slice::from_raw_parts(fields, n) }
    };
    let mut parts: Vec<&[u8]> = Vec::with_capacity(n);
    for iov in iovs {
        if iov.iov_base.is_null() {
            if iov.iov_len == 0 {
                continue;
            }
            return neg(Errno::EINVAL);
        }
        // SAFETY: the caller's iovec describes iov_len readable bytes at iov_base.
        parts.push(unsafe { std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len) });
    }
    write_stderr(&journal_entry(&parts))
}

/// `sd_journal_stream_fd(3)`: a duplicate of standard error, which svmgr logs.
#[unsafe(no_mangle)]
pub extern "C" fn dynamod_shim_journal_stream_fd() -> c_int {
    let stderr = std::io::stderr();
    match std::os::fd::AsFd::as_fd(&stderr).try_clone_to_owned() {
        Ok(fd) => std::os::fd::IntoRawFd::into_raw_fd(fd),
        Err(e) => -e.raw_os_error().unwrap_or(nix::libc::EBADF),
    }
}

/// Parses 32 hex digits, or a UUID (8-4-4-4-12), into 16 bytes.
pub fn parse_id128(s: &[u8]) -> Result<[u8; 16], Errno> {
    let hex: Vec<u8> = match s.len() {
        32 => s.to_vec(),
        36 => {
            if [8, 13, 18, 23].iter().any(|&i| s[i] != b'-') {
                return Err(Errno::EINVAL);
            }
            s.iter().copied().filter(|b| *b != b'-').collect()
        }
        _ => return Err(Errno::EINVAL),
    };
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(Errno::EINVAL),
    };
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (digit(hex[2 * i])? << 4) | digit(hex[2 * i + 1])?;
    }
    Ok(out)
}

/// `id` as 32 lowercase hex digits, or as a UUID.
pub fn format_id128(id: &[u8; 16], uuid: bool) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in id.iter().enumerate() {
        if uuid && matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn id_from_file(path: &Path) -> Result<[u8; 16], Errno> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)))?;
    let text = text.trim();
    if text.is_empty() || text == "uninitialized" {
        return Err(Errno::ENOMEDIUM);
    }
    parse_id128(text.as_bytes())
}

/// Stores `r` into `ret` and maps it to a return code.
///
/// # Safety
/// `ret` is a valid place for 16 bytes.
unsafe fn store(r: Result<[u8; 16], Errno>, ret: *mut u8) -> c_int {
    match r {
        Ok(id) => {
            // SAFETY: the caller guarantees 16 writable bytes at ret (an sd_id128_t).
            unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), ret, 16) };
            0
        }
        Err(e) => neg(e),
    }
}

/// `sd_id128_get_machine(3)`: `/etc/machine-id`.
///
/// # Safety
/// `ret` points to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_get_machine(ret: *mut u8) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    unsafe { store(id_from_file(Path::new("/etc/machine-id")), ret) }
}

/// `sd_id128_get_boot(3)`: the kernel's boot id.
///
/// # Safety
/// `ret` points to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_get_boot(ret: *mut u8) -> c_int {
    let r = id_from_file(Path::new("/proc/sys/kernel/random/boot_id"));
    // SAFETY: forwarded from the caller's contract.
    unsafe { store(r, ret) }
}

/// `sd_id128_get_invocation(3)`: `$INVOCATION_ID`, `-ENXIO` when unset.
///
/// # Safety
/// `ret` points to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_get_invocation(ret: *mut u8) -> c_int {
    let r = match std::env::var("INVOCATION_ID") {
        Ok(v) => parse_id128(v.as_bytes()),
        Err(_) => Err(Errno::ENXIO),
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe { store(r, ret) }
}

/// A random id, marked as a version 4 UUID like libsystemd's.
pub fn random_id128() -> Result<[u8; 16], Errno> {
    let mut id = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut id))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)))?;
    id[6] = (id[6] & 0x0F) | 0x40;
    id[8] = (id[8] & 0x3F) | 0x80;
    Ok(id)
}

/// `sd_id128_randomize(3)`.
///
/// # Safety
/// `ret` points to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_randomize(ret: *mut u8) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    unsafe { store(random_id128(), ret) }
}

/// `sd_id128_from_string(3)`.
///
/// # Safety
/// `s` is a NUL-terminated string; `ret` points to 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_from_string(s: *const c_char, ret: *mut u8) -> c_int {
    if s.is_null() {
        return neg(Errno::EINVAL);
    }
    // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(s) }.to_bytes();
    // SAFETY: forwarded from the caller's contract.
    unsafe { store(parse_id128(bytes), ret) }
}

/// `sd_id128_to_string(3)` (33 bytes) or `sd_id128_to_uuid_string(3)` (37 bytes).
///
/// # Safety
/// `id` points to 16 readable bytes; `out` to 33 writable bytes (37 when `uuid` is set).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dynamod_shim_id128_format(id: *const u8, out: *mut c_char, uuid: c_int) {
    let mut bytes = [0u8; 16];
    // SAFETY: the caller guarantees 16 readable bytes at id.
    unsafe { std::ptr::copy_nonoverlapping(id, bytes.as_mut_ptr(), 16) };
    let text = format_id128(&bytes, uuid != 0);
    // SAFETY: text is 32 or 36 ASCII bytes and the caller's buffer holds that plus the NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), out, text.len());
        *out.add(text.len()) = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_format_both_ways() {
        let id = parse_id128(b"0123456789abcdef0123456789ABCDEF").unwrap();
        assert_eq!(format_id128(&id, false), "0123456789abcdef0123456789abcdef");
        assert_eq!(
            format_id128(&id, true),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(
            parse_id128(b"01234567-89ab-cdef-0123-456789abcdef").unwrap(),
            id
        );
        assert_eq!(parse_id128(b"xyz"), Err(Errno::EINVAL));
        assert_eq!(
            parse_id128(b"0123456789abcdef0123456789abcdeg"),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn random_ids_are_version_4_uuids() {
        let id = random_id128().unwrap();
        assert_eq!(id[6] >> 4, 4);
        assert_eq!(id[8] >> 6, 2);
        assert_ne!(id, random_id128().unwrap());
    }

    #[test]
    fn journal_messages_get_a_level_prefix_per_line() {
        assert_eq!(journal_lines(3, b"boom"), b"<3>boom\n");
        assert_eq!(journal_lines(14, b"a\nb\n"), b"<6>a\n<6>b\n");
        let entry = journal_entry(&[b"MESSAGE=hello", b"PRIORITY=4", b"CODE_LINE=3"]);
        assert_eq!(entry, b"<4>hello\n");
        assert_eq!(journal_entry(&[b"FOO=bar"]), b"<6>FOO=bar\n");
    }

    #[test]
    fn notify_addresses_are_paths_or_abstract_names() {
        assert!(notify_address("/run/x.sock").is_ok());
        assert!(notify_address("@abstract").is_ok());
        assert_eq!(notify_address("relative").err(), Some(Errno::EINVAL));
    }

    #[test]
    fn booted_means_a_compatible_manager_runs() {
        let dir = std::env::temp_dir().join(format!("dynamod-shim-booted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!booted(&dir));
        std::fs::create_dir_all(dir.join("dynamod")).unwrap();
        assert!(booted(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn notifications_and_passed_fds_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("dynamod-shim-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let target = path.to_str().unwrap();
        send_notify(target, 0, b"READY=1\nSTATUS=up", &[]).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        send_notify(target, 0, b"FDSTORE=1", &[w.as_raw_fd()]).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"FDSTORE=1");
        drop((r, w));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
