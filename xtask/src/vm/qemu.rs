//! Running one QEMU guest: `-accel tcg -cpu max -smp 2 -m 512 -nographic -no-reboot`, always
//! under `timeout(1)` (a hard cap even if xtask dies), with the serial console on QEMU's
//! stdio — captured to a file and searchable while the guest runs, and writable for the
//! scenarios that type into a shell — and a QMP socket for the shutdown reason and for keys
//! (Ctrl-Alt-Del).
//!
//! QEMU waits for the QMP client before starting the guest (`wait=on`), so no event is missed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A disk or CD-ROM for the guest.
#[derive(Debug, Clone)]
pub enum Drive {
    /// A raw image on virtio-blk (`/dev/vdX`).
    Virtio(PathBuf),
    /// An ISO on the IDE CD-ROM (`/dev/sr0`).
    Cdrom(PathBuf),
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct Config {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
    /// Disks, in order.
    pub drives: Vec<Drive>,
    /// Hard cap on the whole run.
    pub limit: Duration,
    /// Where the serial output goes.
    pub serial_log: PathBuf,
    /// The QMP socket path.
    pub qmp: PathBuf,
}

/// Serial output seen so far, shared with the reader thread.
#[derive(Default)]
struct Console {
    /// Text with ANSI escapes and carriage returns removed.
    text: String,
    /// QEMU closed its stdout.
    closed: bool,
}

/// A running guest.
pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<Console>, Condvar)>,
    reader: Option<JoinHandle<()>>,
    qmp: UnixStream,
    events: Arc<Mutex<Vec<Value>>>,
    qmp_reader: Option<JoinHandle<()>>,
    started: Instant,
    limit: Duration,
    /// Search position of [`Vm::expect`]: matches are looked for after the previous one.
    cursor: usize,
    /// Last QMP command id used.
    qmp_ids: u64,
}

/// How the guest ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// QEMU's exit status (124 when `timeout` ended it).
    pub code: Option<i32>,
    /// The `reason` of QMP's `SHUTDOWN` event (`guest-shutdown`, `guest-reset`, …).
    pub reason: Option<String>,
    /// The whole serial output.
    pub console: String,
}

/// Removes ANSI escape sequences (`ESC [ … letter`) and carriage returns.
pub fn strip_ansi(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for x in chars.by_ref() {
                        if x.is_ascii_alphabetic() || x == '~' {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

impl Vm {
    /// Starts QEMU and connects to its QMP socket.
    pub fn start(cfg: &Config) -> Result<Self> {
        let _ = std::fs::remove_file(&cfg.qmp);
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=10")
            .arg(cfg.limit.as_secs().max(1).to_string())
            .arg("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "512"])
            .args(["-nographic", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(&cfg.kernel)
            .arg("-initrd")
            .arg(&cfg.initrd)
            .arg("-append")
            .arg(&cfg.append)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=on", cfg.qmp.display()));
        for d in &cfg.drives {
            match d {
                Drive::Virtio(p) => cmd
                    .arg("-drive")
                    .arg(format!("file={},format=raw,if=virtio", p.display())),
                Drive::Cdrom(p) => cmd.arg("-drive").arg(format!(
                    "file={},format=raw,if=ide,media=cdrom,readonly=on",
                    p.display()
                )),
            };
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run qemu-system-x86_64 under timeout")?;
        let stdin = child.stdin.take();
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let log = std::fs::File::create(&cfg.serial_log)
            .with_context(|| format!("create {}", cfg.serial_log.display()))?;
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let reader = {
            let console = console.clone();
            std::thread::spawn(move || pump(stdout, stderr, log, &console))
        };
        let qmp = match connect_qmp(&cfg.qmp, &mut child) {
            Ok(s) => s,
            Err(e) => {
                stop(&mut child);
                return Err(e);
            }
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let qmp_reader = {
            let events = events.clone();
            let stream = qmp.try_clone().context("clone the QMP socket")?;
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && let Ok(mut e) = events.lock()
                    {
                        e.push(v);
                    }
                }
            })
        };
        Ok(Self {
            child,
            stdin,
            console,
            reader: Some(reader),
            qmp,
            events,
            qmp_reader: Some(qmp_reader),
            started: Instant::now(),
            limit: cfg.limit,
            cursor: 0,
            qmp_ids: 0,
        })
    }

    fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    /// Waits until `needle` appears in the serial output after the previous match (or any of
    /// `failures` appears, or QEMU ends, or `within` passes) and returns the line holding it.
    pub fn expect(&mut self, needle: &str, within: Duration, failures: &[&str]) -> Result<String> {
        let deadline = Instant::now() + within.min(self.remaining());
        let (lock, cv) = &*self.console;
        let mut c = lock
            .lock()
            .map_err(|_| anyhow::anyhow!("console lock poisoned"))?;
        loop {
            let tail = c.text.get(self.cursor..).unwrap_or("");
            if let Some(pos) = tail.find(needle) {
                let at = self.cursor + pos;
                let start = c.text[..at].rfind('\n').map_or(0, |p| p + 1);
                let end = c.text[at..].find('\n').map(|p| at + p);
                // Return whole lines: wait for the end of this one unless the output ended
                // (a shell prompt has none).
                if end.is_some() || c.closed || Instant::now() >= deadline || needle.ends_with(' ')
                {
                    let end = end.unwrap_or(c.text.len());
                    let line = c.text[start..end].to_owned();
                    self.cursor = at + needle.len();
                    return Ok(line);
                }
                let wait = (deadline - Instant::now()).min(Duration::from_secs(2));
                let (guard, timed_out) = cv
                    .wait_timeout(c, wait)
                    .map_err(|_| anyhow::anyhow!("console lock poisoned"))?;
                c = guard;
                if timed_out.timed_out() {
                    let end = c.text[at..].find('\n').map_or(c.text.len(), |p| at + p);
                    let line = c.text[start..end].to_owned();
                    self.cursor = at + needle.len();
                    return Ok(line);
                }
                continue;
            }
            for f in failures {
                if let Some(pos) = tail.find(f) {
                    let at = self.cursor + pos;
                    let end = c.text[at..].find('\n').map_or(c.text.len(), |p| at + p);
                    bail!(
                        "saw {:?} while waiting for {needle:?}",
                        c.text[at..end].trim()
                    );
                }
            }
            if c.closed {
                bail!("the guest ended before {needle:?} appeared");
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "{needle:?} did not appear within {} s",
                    within.as_secs().min(self.limit.as_secs())
                );
            }
            c = cv
                .wait_timeout(c, deadline - now)
                .map_err(|_| anyhow::anyhow!("console lock poisoned"))?
                .0;
        }
    }

    /// Types `text` on the serial console.
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("qemu stdin is closed")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Presses Ctrl-Alt-Del on the guest's keyboard.
    pub fn ctrl_alt_del(&mut self) -> Result<()> {
        let keys =
            ["ctrl", "alt", "delete"].map(|k| serde_json::json!({"type": "qcode", "data": k}));
        let cmd = serde_json::json!({"execute": "send-key", "arguments": {"keys": keys}});
        writeln!(self.qmp, "{cmd}").context("send-key over QMP")?;
        Ok(())
    }

    /// Runs a QMP command and waits for its answer.
    pub fn qmp(&mut self, execute: &str, arguments: Value) -> Result<Value> {
        self.qmp_ids += 1;
        let id = format!("xtask-{}", self.qmp_ids);
        let cmd = serde_json::json!({"execute": execute, "arguments": arguments, "id": id});
        writeln!(self.qmp, "{cmd}").with_context(|| format!("send {execute} over QMP"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(events) = self.events.lock()
                && let Some(answer) = events.iter().find(|v| v["id"] == id.as_str())
            {
                if let Some(err) = answer.get("error") {
                    bail!("QMP {execute}: {}", err["desc"].as_str().unwrap_or("error"));
                }
                return Ok(answer["return"].clone());
            }
            if Instant::now() >= deadline {
                bail!("QMP {execute}: no answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Plugs a raw disk image into the running guest (a virtio-blk PCI device).
    pub fn hotplug_disk(&mut self, image: &Path, id: &str) -> Result<()> {
        self.qmp(
            "blockdev-add",
            serde_json::json!({
                "node-name": id,
                "driver": "raw",
                "file": {"driver": "file", "filename": image.display().to_string()},
            }),
        )?;
        self.qmp(
            "device_add",
            serde_json::json!({"driver": "virtio-blk-pci", "drive": id, "id": format!("{id}-dev")}),
        )?;
        Ok(())
    }

    /// Waits (within the run's limit) for QEMU to exit by itself; kills it when the limit
    /// passes. Returns how it ended.
    pub fn wait_exit(mut self, within: Duration) -> Result<Exit> {
        let deadline = Instant::now() + within.min(self.remaining());
        let code = loop {
            if let Some(status) = self.child.try_wait()? {
                break status.code();
            }
            if Instant::now() >= deadline {
                stop(&mut self.child);
                bail!(
                    "the guest did not end within {} s; it was stopped",
                    within.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Ok(self.finish(code))
    }

    /// Stops the guest now (it halted, or the scenario has seen what it needed).
    pub fn stop_now(mut self) -> Exit {
        stop(&mut self.child);
        let code = self.child.wait().ok().and_then(|s| s.code());
        self.finish(code)
    }

    fn finish(&mut self, code: Option<i32>) -> Exit {
        drop(self.stdin.take());
        let _ = self.qmp.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(r) = self.qmp_reader.take() {
            let _ = r.join();
        }
        let reason = self.events.lock().ok().and_then(|e| {
            e.iter()
                .find(|v| v["event"] == "SHUTDOWN")
                .and_then(|v| v["data"]["reason"].as_str().map(str::to_owned))
        });
        let console = self
            .console
            .0
            .lock()
            .map(|c| c.text.clone())
            .unwrap_or_default();
        Exit {
            code,
            reason,
            console,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            stop(&mut self.child);
        }
    }
}

/// Ends `timeout` (which passes SIGTERM on to QEMU), then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn connect_qmp(path: &Path, child: &mut Child) -> Result<UnixStream> {
    let until = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        if let Ok(s) = UnixStream::connect(path) {
            break s;
        }
        if let Some(status) = child.try_wait()? {
            bail!("qemu exited ({status}) before its QMP socket was ready");
        }
        if Instant::now() >= until {
            bail!("qemu's QMP socket {} did not appear", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .context("read the QMP greeting")?;
    if !greeting.contains("QMP") {
        bail!("unexpected QMP greeting: {}", greeting.trim());
    }
    let mut w = stream.try_clone()?;
    writeln!(w, "{}", serde_json::json!({"execute": "qmp_capabilities"}))?;
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .context("read the QMP answer")?;
    if !answer.contains("return") {
        bail!("QMP refused capabilities negotiation: {}", answer.trim());
    }
    stream.set_read_timeout(None)?;
    Ok(stream)
}

/// Copies QEMU's output to the log and the shared console text.
fn pump(
    mut stdout: impl Read,
    stderr: impl Read + Send + 'static,
    mut log: std::fs::File,
    console: &(Mutex<Console>, Condvar),
) {
    // QEMU's own complaints go to the log too, marked.
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let mut buf = [0u8; 8192];
    let mut pending = Vec::new();
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = log.write_all(&buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        // Keep an incomplete UTF-8 sequence for the next read.
        let valid = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => pending.len(),
        };
        let chunk: Vec<u8> = pending.drain(..valid).collect();
        let text = strip_ansi(&String::from_utf8_lossy(&chunk));
        if let Ok(mut c) = console.0.lock() {
            c.text.push_str(&text);
        }
        console.1.notify_all();
    }
    let err = err_thread.join().unwrap_or_default();
    if !err.trim().is_empty() {
        let _ = writeln!(log, "\n[qemu stderr]\n{}", err.trim());
    }
    if let Ok(mut c) = console.0.lock() {
        if !err.trim().is_empty() {
            c.text
                .push_str(&format!("\n[qemu stderr] {}\n", err.trim()));
        }
        c.closed = true;
    }
    console.1.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colours_and_carriage_returns_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[32m INFO\u{1b}[0m startup complete\r\n"),
            " INFO startup complete\n"
        );
        assert_eq!(strip_ansi("a\u{1b}[2Kb"), "ab");
    }
}
