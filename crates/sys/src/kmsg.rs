//! One-line log records for programs that carry no logging framework (PID 1).
//!
//! A record is `<P>program: message\n` on `/dev/kmsg` (the kernel reads the `<P>` prefix as the
//! syslog priority, see Documentation/ABI/testing/dev-kmsg) and `program: message\n` on the
//! console (stderr). Records are formatted into a fixed buffer on the stack, so logging never
//! allocates; a message longer than the buffer is cut and marked with `...`. Newlines and other
//! control characters inside a message become spaces, so one call is always one line.
//!
//! The sink is chosen once with [`use_kmsg`]; until then, or when a write to kmsg fails, records
//! go to stderr. Nothing here takes a lock or allocates after [`use_kmsg`].

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;

/// Largest record written, newline included. `/dev/kmsg` refuses writes above 1024 bytes
/// (`PRINTKRB_RECORD_MAX` in kernel/printk/printk.c); this stays safely below.
pub const LINE_MAX: usize = 1000;

const ELLIPSIS: &[u8] = b"...";

/// Syslog priorities, as `/dev/kmsg` understands them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The system is unusable.
    Emerg = 0,
    /// Action must be taken immediately.
    Alert = 1,
    /// Critical condition.
    Crit = 2,
    /// Error.
    Err = 3,
    /// Warning.
    Warning = 4,
    /// Normal but significant.
    Notice = 5,
    /// Informational.
    Info = 6,
    /// Debugging.
    Debug = 7,
}

/// A record being formatted: a fixed buffer that refuses to grow.
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Line")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
            truncated: false,
        }
    }

    /// The bytes formatted so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Whether text was cut because the buffer was full.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        // Keep room for the ellipsis and the final newline.
        let room = LINE_MAX
            .saturating_sub(ELLIPSIS.len() + 1)
            .saturating_sub(self.len);
        let mut take = bytes.len().min(room);
        if take < bytes.len() {
            self.truncated = true;
            // Do not cut a UTF-8 sequence in half: back off to the start of a character.
            while take > 0 && bytes.get(take).is_some_and(|b| b & 0xC0 == 0x80) {
                take -= 1;
            }
        }
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + take),
            bytes.get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
    }

    fn finish(&mut self) {
        if self.truncated {
            let end = self.len;
            if let Some(dst) = self.buf.get_mut(end..end + ELLIPSIS.len()) {
                dst.copy_from_slice(ELLIPSIS);
                self.len += ELLIPSIS.len();
            }
        }
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = b'\n';
            self.len += 1;
        }
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Control characters (newlines above all) become spaces so one call stays one record.
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if c.is_control() {
                self.push_raw(s.as_bytes().get(start..i).unwrap_or(&[]));
                self.push_raw(b" ");
                start = i + c.len_utf8();
            }
        }
        self.push_raw(s.as_bytes().get(start..).unwrap_or(&[]));
        Ok(())
    }
}

/// Formats one record into `line`: `<P>` (only for kmsg), `program: `, the message, `\n`.
pub fn format_record(
    line: &mut Line,
    kmsg: bool,
    level: Level,
    program: &str,
    args: fmt::Arguments<'_>,
) {
    *line = Line::new();
    if kmsg {
        // Writing to a fixed buffer cannot fail; a full buffer only truncates.
        let _ = write!(line, "<{}>", level as u8);
    }
    let _ = write!(line, "{program}: ");
    let _ = line.write_fmt(args);
    line.finish();
}

struct Sink {
    kmsg: File,
    path: PathBuf,
    /// Records written through the current open file description.
    written: AtomicU32,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static PROGRAM: OnceLock<&'static str> = OnceLock::new();

/// The kernel rate-limits writes to `/dev/kmsg` per open file (10 records per 5 s, see
/// `devkmsg_write` in kernel/printk/printk.c, unless booted with `printk.devkmsg=on`) and drops
/// the excess silently. Boot and shutdown easily write more, so the file is re-opened before the
/// budget runs out.
const KMSG_BUDGET: u32 = 8;

/// Sets the name written in front of every record (default `dynamod`). Only the first call counts.
pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

fn open_kmsg(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        // Write-only; O_APPEND changes nothing for the device and keeps a test file intact.
        .append(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
}

/// Sends later records to the kernel log at `path` (normally `/dev/kmsg`). The file is opened
/// write-only, close-on-exec and without becoming a controlling terminal, so no child inherits it.
pub fn use_kmsg(path: &Path) -> io::Result<()> {
    let kmsg = open_kmsg(path)?;
    SINK.set(Sink {
        kmsg,
        path: path.to_owned(),
        written: AtomicU32::new(0),
    })
    .map_err(|_| io::Error::new(io::ErrorKind::AlreadyExists, "log sink already chosen"))
}

/// Whether records currently go to the kernel log.
pub fn using_kmsg() -> bool {
    SINK.get().is_some()
}

/// Gives the kmsg sink a fresh rate-limit budget now, while the device can still be opened
/// (call it before unmounting `/dev`). Does nothing without a kmsg sink.
pub fn renew() {
    if let Some(sink) = SINK.get() {
        renew_sink(sink);
    }
}

fn renew_sink(sink: &Sink) {
    let Ok(fresh) = open_kmsg(&sink.path) else {
        return;
    };
    // SAFETY: both descriptors are open and owned by this module (`fresh` here, the sink's fd
    // for the life of the process). dup3 atomically makes the sink's fd number refer to the
    // fresh open file, so a concurrent writer sees either the old or the new file, never a
    // closed or reused number; `fresh` is closed when it drops.
    let rc = unsafe { libc::dup3(fresh.as_raw_fd(), sink.kmsg.as_raw_fd(), libc::O_CLOEXEC) };
    if rc >= 0 {
        sink.written.store(0, Ordering::Relaxed);
    }
}

/// Writes one record to the chosen sink, falling back to stderr when kmsg refuses it.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let program = PROGRAM.get().copied().unwrap_or("dynamod");
    let mut line = Line::new();
    if let Some(sink) = SINK.get() {
        if sink.written.fetch_add(1, Ordering::Relaxed) >= KMSG_BUDGET {
            renew_sink(sink);
            sink.written.store(1, Ordering::Relaxed);
        }
        format_record(&mut line, true, level, program, args);
        if write_all(sink.kmsg.as_fd(), line.as_bytes()).is_ok() {
            return;
        }
    }
    format_record(&mut line, false, level, program, args);
    // Nothing sensible is left to do when stderr is gone too.
    let _ = write_all(io::stderr().as_fd(), line.as_bytes());
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kmsg: bool, level: Level, args: fmt::Arguments<'_>) -> String {
        let mut line = Line::new();
        format_record(&mut line, kmsg, level, "dynamod-init", args);
        String::from_utf8(line.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn kmsg_record_carries_the_priority_prefix() {
        let r = record(
            true,
            Level::Warning,
            format_args!("mount {} refused", "/sys"),
        );
        assert_eq!(r, "<4>dynamod-init: mount /sys refused\n");
    }

    #[test]
    fn console_record_has_no_prefix() {
        let r = record(false, Level::Err, format_args!("x={}", 5));
        assert_eq!(r, "dynamod-init: x=5\n");
    }

    #[test]
    fn newlines_inside_a_message_become_spaces() {
        let r = record(false, Level::Info, format_args!("a\nb\tc{}", "\n"));
        assert_eq!(r, "dynamod-init: a b c \n");
    }

    #[test]
    fn message_without_control_characters_is_kept_verbatim() {
        let r = record(false, Level::Info, format_args!("{}{}", "ab", "cd"));
        assert_eq!(r, "dynamod-init: abcd\n");
    }

    #[test]
    fn long_message_is_cut_with_an_ellipsis_and_still_ends_the_line() {
        let long = "x".repeat(5000);
        let r = record(true, Level::Info, format_args!("{long}"));
        assert_eq!(r.len(), LINE_MAX);
        assert!(r.ends_with("...\n"));
        assert!(r.starts_with("<6>dynamod-init: xxx"));
    }

    #[test]
    fn kmsg_sink_gets_every_record_across_renewals() {
        let path = std::env::temp_dir().join(format!("dynamod-kmsg-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        set_program("dynamod-test");
        use_kmsg(&path).unwrap();
        assert!(using_kmsg());
        for i in 0..25 {
            log(Level::Notice, format_args!("record {i}"));
        }
        renew();
        log(Level::Notice, format_args!("last"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 26, "{text}");
        assert_eq!(lines[0], "<5>dynamod-test: record 0");
        assert_eq!(lines[24], "<5>dynamod-test: record 24");
        assert_eq!(lines[25], "<5>dynamod-test: last");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn empty_message_is_one_line() {
        let r = record(false, Level::Info, format_args!(""));
        assert_eq!(r, "dynamod-init: \n");
    }
}
