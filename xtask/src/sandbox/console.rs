//! The sandbox's console: a pty created by xtask, never a host terminal. The slave is PID 1's
//! stdin/stdout/stderr and is bind-mounted on the sandbox's `/dev/console`; xtask copies the
//! master to its stdout, and its stdin to the master when stdin is a terminal (put in raw mode,
//! except that Ctrl-C still reaches xtask as SIGINT; restored on exit).

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

/// Set while the host terminal is in raw mode (notes then need an explicit carriage return).
static RAW: AtomicBool = AtomicBool::new(false);

/// How long to wait, after PID 1 is gone, for the last console output to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// Prints one of xtask's own lines on stderr, readable whether or not the terminal is raw.
pub fn note(msg: &str) {
    let end = if RAW.load(Ordering::Relaxed) {
        "\r\n"
    } else {
        "\n"
    };
    let _ = write!(std::io::stderr().lock(), "xtask sandbox: {msg}{end}");
}

/// An open pty pair.
pub struct Console {
    master: OwnedFd,
    slave: OwnedFd,
    slave_path: PathBuf,
}

impl Console {
    /// Opens a pty sized like the host terminal (80x24 when there is none).
    pub fn open() -> Result<Self> {
        let (rows, cols) = terminal_size().unwrap_or((24, 80));
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).context("open a pty for the sandbox's console")?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("set FD_CLOEXEC")?;
        }
        let slave_path = nix::unistd::ttyname(&pty.slave).context("name the pty slave")?;
        Ok(Self {
            master: pty.master,
            slave: pty.slave,
            slave_path,
        })
    }

    /// Starts copying the console to stdout (and a terminal stdin to the console) and hands
    /// back the slave for PID 1.
    ///
    /// The threads must exist before xtask unshares its PID namespace: afterwards the kernel
    /// refuses to create threads in it (clone(2), EINVAL with CLONE_THREAD). The master reads
    /// EOF once every copy of the slave is closed, so the caller drops [`Slave`] as soon as PID 1
    /// holds its own.
    pub fn start(self) -> Result<(Relay, Slave)> {
        let Self {
            master,
            slave,
            slave_path,
        } = self;
        let raw = if std::io::stdin().is_terminal() {
            RawMode::enter().ok()
        } else {
            None
        };
        if raw.is_some() {
            let input = File::from(master.try_clone().context("duplicate the pty master")?);
            std::thread::spawn(move || copy_stdin(input));
        }
        let (done_tx, done) = mpsc::channel();
        let output = File::from(master);
        std::thread::spawn(move || {
            copy_output(output);
            let _ = done_tx.send(());
        });
        Ok((
            Relay { done, raw },
            Slave {
                fd: slave,
                path: slave_path,
            },
        ))
    }
}

/// xtask's copy of the pty slave.
pub struct Slave {
    fd: OwnedFd,
    path: PathBuf,
}

impl Slave {
    /// The slave's path on the host (`/dev/pts/N`), bind-mounted on the sandbox's console.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Three handles on the slave, for PID 1's stdin, stdout and stderr.
    pub fn stdio(&self) -> Result<(Stdio, Stdio, Stdio)> {
        let dup = || self.fd.try_clone().context("duplicate the pty slave");
        Ok((
            Stdio::from(dup()?),
            Stdio::from(dup()?),
            Stdio::from(dup()?),
        ))
    }
}

/// The running copy threads.
pub struct Relay {
    done: mpsc::Receiver<()>,
    raw: Option<RawMode>,
}

impl Relay {
    /// Waits (bounded) until the console output is drained, then restores the terminal.
    pub fn finish(self) {
        let _ = self.done.recv_timeout(DRAIN);
        drop(self.raw);
    }
}

/// Copies the pty master to stdout until every slave is closed (EIO). It keeps reading when
/// stdout fails, so the sandbox's console writes never block on a vanished reader.
fn copy_output(mut master: File) {
    let mut buf = [0u8; 8192];
    let mut stdout = Some(std::io::stdout());
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(out) = stdout.as_mut() {
                    let mut out = out.lock();
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        drop(out);
                        stdout = None;
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Copies a terminal stdin to the pty master until either side fails.
fn copy_stdin(mut master: File) {
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// The host terminal in raw mode, restored when dropped. ISIG stays on with only VINTR
/// enabled, so Ctrl-C still stops the sandbox while every other key goes to the console.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("read the terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        raw.local_flags.insert(LocalFlags::ISIG);
        for idx in [
            SpecialCharacterIndices::VQUIT,
            SpecialCharacterIndices::VSUSP,
        ] {
            raw.control_chars[idx as usize] = 0;
        }
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("set raw mode")?;
        RAW.store(true, Ordering::Relaxed);
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
        RAW.store(false, Ordering::Relaxed);
    }
}

/// Rows and columns of the terminal on stdin, asked of `stty` (no ioctl outside crates/sys).
fn terminal_size() -> Option<(u16, u16)> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let out = Command::new("stty")
        .arg("size")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(rows), Some(cols)) if rows > 0 && cols > 0 => Some((rows, cols)),
        _ => None,
    }
}
