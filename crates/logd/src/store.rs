//! Per-service log files: appending, rotation, recovery of the last stored sequence number, and
//! the in-memory hold queue used while the disk refuses writes.
//!
//! Every record passes through its service's queue (the "ring"): [`Store::accept`] appends, and a
//! flush writes the queue to the file and pops what was written. On a healthy disk the queue is
//! empty again before `accept` returns; when the disk fails (read-only, `ENOSPC`, …) records stay
//! queued, are not acknowledged, and [`Store::retry`] tries again later. The queue is bounded:
//! once it is full the service's newer records are *refused* (not stored, not acknowledged); svmgr
//! still holds them, and [`Store::needs_resend`] tells the daemon to reconnect so svmgr sends them
//! again once the queue has drained. Refusing the newest rather than dropping the oldest keeps each
//! file in sequence order, which the duplicate check relies on.
//!
//! Acknowledgements are cumulative over all services (svmgr numbers records globally), so the ack
//! point is just below the lowest record still queued or refused anywhere.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dynamod_proto::LogRecord;

use crate::format;
use crate::ring::Rings;

/// Bytes counted per queued record on top of its text, for the queue bound.
const RECORD_OVERHEAD: usize = 64;
/// Size of a write to the file: big enough to make few syscalls, small enough to bound memory.
const WRITE_CHUNK: usize = 256 * 1024;
/// First window read from the end of a file when looking for its last line.
const TAIL_WINDOW: u64 = 64 * 1024;
/// Longest file name produced for a service (the kernel allows 255 bytes; leave room for `.log.N`).
const MAX_STEM: usize = 200;

/// A failed file operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log directory could not be created.
    #[error("cannot create {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A log file could not be opened or inspected.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing to a log file failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Renaming a file during rotation failed.
    #[error("cannot rotate {from} to {to}")]
    Rotate {
        /// The file being moved.
        from: PathBuf,
        /// Its new name.
        to: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// The error and its cause on one line.
    fn one_line(&self) -> String {
        match std::error::Error::source(self) {
            Some(cause) => format!("{self}: {cause}"),
            None => self.to_string(),
        }
    }
}

/// Where and how much to store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding `<service>.log` and its rotations.
    pub dir: PathBuf,
    /// A file is rotated before a line would make it larger than this (a single longer line is
    /// still written, alone, to a fresh file).
    pub max_size: u64,
    /// Rotated files kept: `<service>.log.1` (newest) to `<service>.log.<max_files>`; 0 keeps none.
    pub max_files: u32,
    /// Bound of each service's in-memory queue, in bytes of text (plus a small per-record cost).
    pub queue_bytes: usize,
}

/// A service's own rotation settings (its `[log]` section); `None` keeps the global default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `max-size`.
    pub max_size: Option<u64>,
    /// `max-files`.
    pub max_files: Option<u32>,
}

/// The service name a file stem stands for: the inverse of [`file_stem`] (`%XX` decoded).
pub fn service_of_stem(stem: &str) -> String {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'%', None) if stem == "%" => i += 1,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `<dir>/<stem>.log` and its rotations that exist, oldest first (`.N` … `.1`, then the
/// current file).
pub fn files_of(dir: &Path, service: &str) -> Vec<PathBuf> {
    let current = dir.join(format!("{}.log", file_stem(service)));
    let mut rotated = Vec::new();
    // Rotation keeps the numbers contiguous, except for a moment while it shifts them (one
    // number is free between two renames): so only two missing in a row end the list. The
    // bound only guards against a hand-made mess.
    let mut missing = 0;
    for n in 1..=1000 {
        let p = numbered(&current, n);
        if p.exists() {
            missing = 0;
            rotated.push(p);
        } else {
            missing += 1;
            if missing == 2 {
                break;
            }
        }
    }
    rotated.reverse();
    if current.exists() {
        rotated.push(current);
    }
    rotated
}

/// The file name (without `.log`) used for a service name.
///
/// svmgr only accepts names made of `[a-z0-9._@-]`, but logd does not trust the wire: any other
/// byte, and a leading dot, is written as `%XX`, so no name can leave the directory or collide
/// with another. Names longer than 200 bytes after escaping are cut (they cannot come from a valid
/// configuration).
pub fn file_stem(service: &str) -> String {
    if service.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(service.len());
    for (i, b) in service.bytes().enumerate() {
        let plain =
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'-') || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_STEM {
        let mut cut = MAX_STEM;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// One service's file and queue.
// FIXME: every service keeps its file open for the life of the process, so more services than
// RLIMIT_NOFILE allows would fail to open (and hold their records); close the least recently used.
#[derive(Debug)]
struct ServiceLog {
    name: String,
    path: PathBuf,
    /// Rotate before the file grows past this.
    max_size: u64,
    /// Rotated files kept.
    max_files: u32,
    file: Option<File>,
    /// Bytes in the current file (valid while `file` is open).
    size: u64,
    /// Highest sequence number known to be in the files; `None` until recovered from them.
    last_seq: Option<u64>,
    queue: VecDeque<LogRecord>,
    queue_bytes: usize,
    /// The first refused record; every later one of this service is refused too, to keep order.
    refused_from: Option<u64>,
    /// The last write failed; only [`Store::retry`] flushes until one succeeds.
    failing: bool,
    full_reported: bool,
}

fn cost(rec: &LogRecord) -> usize {
    rec.line.len() + RECORD_OVERHEAD
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl ServiceLog {
    fn new(name: &str, cfg: &StoreConfig, limits: Limits) -> Self {
        Self {
            name: name.to_owned(),
            path: cfg.dir.join(format!("{}.log", file_stem(name))),
            max_size: limits.max_size.unwrap_or(cfg.max_size).max(1),
            max_files: limits.max_files.unwrap_or(cfg.max_files),
            file: None,
            size: 0,
            last_seq: None,
            queue: VecDeque::new(),
            queue_bytes: 0,
            refused_from: None,
            failing: false,
            full_reported: false,
        }
    }

    /// Highest sequence number already stored or queued, if known.
    fn newest_known(&self) -> Option<u64> {
        self.queue.back().map(|r| r.seq).max(self.last_seq)
    }

    fn pop(&mut self, n: usize) {
        for rec in self.queue.drain(..n) {
            self.queue_bytes -= cost(&rec);
        }
    }

    /// Opens the current file if needed: removes a torn last line left by a crash or a failed
    /// write (its record was never acknowledged, so it will come again), and recovers the last
    /// stored sequence number from the file or, when it is empty, from `.1`.
    fn ensure_open(&mut self, cfg: &StoreConfig) -> Result<(), StoreError> {
        if self.file.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&cfg.dir).map_err(|source| StoreError::CreateDir {
            path: cfg.dir.clone(),
            source,
        })?;
        let open_err = |source| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(open_err)?;
        let mut size = file.metadata().map_err(open_err)?.len();
        let tail = read_tail(&mut file, size).map_err(open_err)?;
        if let Some(keep) = tail.complete_len.filter(|&keep| keep != size) {
            file.set_len(keep).map_err(open_err)?;
            size = keep;
        }
        if self.last_seq.is_none() {
            self.last_seq = match tail.last_seq {
                Some(seq) => Some(seq),
                None => previous_file_seq(&numbered(&self.path, 1)).map_err(open_err)?,
            };
        }
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            let source = io::Error::other("log file is not open");
            return Err(StoreError::Write {
                path: self.path.clone(),
                source,
            });
        };
        if let Err(source) = file.write_all(buf) {
            // Cut off whatever part of the chunk did land, so the file never holds half a line;
            // if even that fails, reopening trims the torn tail.
            let _ = file.set_len(self.size);
            self.file = None;
            return Err(StoreError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Shifts `<svc>.log.(n-1)` to `.n` down to `<svc>.log` to `.1` (each `rename(2)` atomic and
    /// into a free or expendable name), then opens a fresh file.
    fn rotate(&mut self, cfg: &StoreConfig) -> Result<(), StoreError> {
        self.file = None;
        if self.max_files == 0 {
            match std::fs::remove_file(&self.path) {
                Err(source) if source.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::Write {
                        path: self.path.clone(),
                        source,
                    });
                }
                _ => {}
            }
        } else {
            for n in (1..self.max_files).rev() {
                rename_if_present(&numbered(&self.path, n), &numbered(&self.path, n + 1))?;
            }
            rename_if_present(&self.path, &numbered(&self.path, 1))?;
        }
        self.ensure_open(cfg)
    }

    /// Writes the queue to the file, rotating as needed; pops what was written. Records whose
    /// sequence number is already in the file (a re-send after a reconnect) are dropped.
    fn flush(&mut self, cfg: &StoreConfig) -> Result<usize, StoreError> {
        if self.queue.is_empty() {
            return Ok(0);
        }
        self.ensure_open(cfg)?;
        let mut written = 0;
        let mut buf = Vec::new();
        let mut in_buf = 0;
        let mut buf_last = self.last_seq;
        while let Some(rec) = self.queue.get(in_buf) {
            if buf_last.is_some_and(|last| rec.seq <= last) {
                in_buf += 1;
                continue;
            }
            let start = buf.len();
            format::format_line(rec, &mut buf);
            let seq = rec.seq;
            let before = self.size + start as u64;
            if before + (buf.len() - start) as u64 > self.max_size && before > 0 {
                let line = buf.split_off(start);
                self.write(&buf)?;
                self.commit(in_buf, buf_last, &mut written);
                in_buf = 0;
                buf = line;
                self.rotate(cfg)?;
            }
            in_buf += 1;
            buf_last = Some(seq);
            if buf.len() >= WRITE_CHUNK {
                self.write(&buf)?;
                self.commit(in_buf, buf_last, &mut written);
                in_buf = 0;
                buf.clear();
            }
        }
        self.write(&buf)?;
        self.commit(in_buf, buf_last, &mut written);
        Ok(written)
    }

    fn commit(&mut self, n: usize, last: Option<u64>, written: &mut usize) {
        self.pop(n);
        self.last_seq = last;
        *written += n;
    }
}

fn rename_if_present(from: &Path, to: &Path) -> Result<(), StoreError> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Rotate {
            from: from.to_owned(),
            to: to.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// What the end of a file looks like.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tail {
    /// Length up to and including the last newline, if the file does not end with one (`Some(0)`
    /// when it has none at all); equal to the size otherwise.
    complete_len: Option<u64>,
    /// Sequence number of the last complete line that has one.
    last_seq: Option<u64>,
}

/// Reads backwards from `len` in growing windows until the last complete line with a sequence
/// number is found or the whole file has been read.
fn read_tail(file: &mut File, len: u64) -> io::Result<Tail> {
    let mut window = TAIL_WINDOW.min(len);
    loop {
        let start = len - window;
        let mut buf = vec![0; window as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        let whole = start == 0;
        let end = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => Some(i + 1),
            None if whole => Some(0),
            None => None,
        };
        if let Some(end) = end {
            // Lines inside the window; the first is cut unless the window starts the file.
            let mut lines: Vec<&[u8]> = buf[..end].split(|&b| b == b'\n').collect();
            lines.pop(); // the empty piece after the final newline
            let skip_first = usize::from(!whole);
            let last_seq = lines
                .iter()
                .skip(skip_first)
                .rev()
                .find_map(|l| format::line_seq(l));
            if last_seq.is_some() || whole {
                return Ok(Tail {
                    complete_len: Some(start + end as u64),
                    last_seq,
                });
            }
        }
        window = (window * 2).min(len);
    }
}

/// The last sequence number stored in a rotated file, if it exists and has one.
fn previous_file_seq(path: &Path) -> io::Result<Option<u64>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    Ok(read_tail(&mut file, len)?.last_seq)
}

/// Every service's file and queue, and the acknowledgement bookkeeping.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    services: BTreeMap<String, ServiceLog>,
    /// Per-service rotation settings from the configuration.
    limits: BTreeMap<String, Limits>,
    /// Where accepted records are also kept for queries.
    ring: Option<Arc<Rings>>,
    /// Highest sequence number received on this connection (or the last ack after a reconnect).
    highest_seen: u64,
    /// The last acknowledgement handed out.
    acked: u64,
    /// Some service is failing; a notice has been emitted and a recovery notice is owed.
    degraded: bool,
    notices: Vec<String>,
}

impl Store {
    /// A store writing under `cfg.dir` (created on first write).
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            services: BTreeMap::new(),
            limits: BTreeMap::new(),
            ring: None,
            highest_seen: 0,
            acked: 0,
            degraded: false,
            notices: Vec::new(),
        }
    }

    /// Also keeps every accepted record in `ring`, for queries.
    pub fn attach_ring(&mut self, ring: Arc<Rings>) {
        self.ring = Some(ring);
    }

    /// Sets each service's own rotation settings (from its `[log]` section); services not in
    /// `limits` use the global ones. Applies from the next rotation on.
    pub fn set_limits(&mut self, limits: BTreeMap<String, Limits>) {
        for (name, svc) in &mut self.services {
            let l = limits.get(name).copied().unwrap_or_default();
            svc.max_size = l.max_size.unwrap_or(self.cfg.max_size).max(1);
            svc.max_files = l.max_files.unwrap_or(self.cfg.max_files);
        }
        self.limits = limits;
    }

    /// Takes records in svmgr's order and writes them, unless the disk is failing.
    pub fn accept(&mut self, records: Vec<LogRecord>) {
        let mut touched = Vec::new();
        let mut kept = Vec::new();
        for rec in records {
            self.highest_seen = self.highest_seen.max(rec.seq);
            if !self.services.contains_key(&rec.service) {
                let l = self.limits.get(&rec.service).copied().unwrap_or_default();
                let log = ServiceLog::new(&rec.service, &self.cfg, l);
                self.services.insert(rec.service.clone(), log);
            }
            let Some(svc) = self.services.get_mut(&rec.service) else {
                continue;
            };
            // Batches come mostly in runs of one service: compare with the last one first.
            if touched.last() != Some(&rec.service) && !touched.contains(&rec.service) {
                touched.push(rec.service.clone());
            }
            if svc.refused_from.is_some() || svc.newest_known().is_some_and(|n| rec.seq <= n) {
                // Refusing goes on until the next connection so the file stays in order; a record
                // already stored or queued is a re-send.
                continue;
            }
            if svc.queue_bytes + cost(&rec) > self.cfg.queue_bytes && !svc.failing {
                let result = svc.flush(&self.cfg);
                note_flush(&mut self.notices, &mut self.degraded, svc, result);
            }
            if svc.queue_bytes + cost(&rec) > self.cfg.queue_bytes && !svc.queue.is_empty() {
                if !svc.full_reported {
                    svc.full_reported = true;
                    self.notices.push(format!(
                        "memory queue for '{}' is full ({} records); svmgr keeps the newer ones",
                        svc.name,
                        svc.queue.len()
                    ));
                }
                svc.refused_from = Some(rec.seq);
                continue;
            }
            svc.queue_bytes += cost(&rec);
            if self.ring.is_some() {
                kept.push(rec.clone());
            }
            svc.queue.push_back(rec);
        }
        for name in touched {
            if let Some(svc) = self.services.get_mut(&name).filter(|s| !s.failing) {
                let result = svc.flush(&self.cfg);
                note_flush(&mut self.notices, &mut self.degraded, svc, result);
            }
        }
        // Into the ring only once written (or held): a record a follower finds evicted from the
        // ring is then surely in the file (see `query`).
        if let Some(ring) = &self.ring {
            ring.push(&kept);
        }
        self.note_recovery();
    }

    /// Tries again to write what the failing services hold.
    pub fn retry(&mut self) {
        for svc in self.services.values_mut() {
            if !svc.queue.is_empty() {
                let result = svc.flush(&self.cfg);
                note_flush(&mut self.notices, &mut self.degraded, svc, result);
            }
        }
        self.note_recovery();
    }

    fn note_recovery(&mut self) {
        if self.degraded && self.services.values().all(|s| !s.failing) {
            self.degraded = false;
            self.notices
                .push("log files are writable again; held records written".to_owned());
        }
    }

    /// The new acknowledgement to send, if it moved: every record up to it is in a file.
    pub fn take_ack(&mut self) -> Option<u64> {
        let pending = self
            .services
            .values()
            .filter_map(|s| match (s.queue.front().map(|r| r.seq), s.refused_from) {
                (Some(queued), Some(refused)) => Some(queued.min(refused)),
                (queued, refused) => queued.or(refused),
            })
            .min();
        let point = match pending {
            Some(p) => p.saturating_sub(1).min(self.highest_seen),
            None => self.highest_seen,
        };
        if point > self.acked {
            self.acked = point;
            Some(point)
        } else {
            None
        }
    }

    /// Records are held in memory waiting for the disk.
    pub fn holds_records(&self) -> bool {
        self.services.values().any(|s| !s.queue.is_empty())
    }

    /// Refused records must be fetched again: the queue that refused them has drained, so the
    /// daemon should reconnect (svmgr re-sends everything unacknowledged).
    pub fn needs_resend(&self) -> bool {
        self.services
            .values()
            .any(|s| s.refused_from.is_some() && s.queue.is_empty())
    }

    /// A new connection to svmgr: it will send again everything after the last acknowledgement.
    pub fn new_connection(&mut self) {
        self.highest_seen = self.acked;
        for svc in self.services.values_mut() {
            svc.refused_from = None;
            svc.full_reported = false;
        }
    }

    /// Closes every file so the next write reopens it (after an outside tool moved it).
    pub fn reopen(&mut self) {
        for svc in self.services.values_mut() {
            svc.file = None;
        }
    }

    /// Messages for the operator, each emitted once per episode.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

fn note_flush(
    notices: &mut Vec<String>,
    degraded: &mut bool,
    svc: &mut ServiceLog,
    result: Result<usize, StoreError>,
) {
    match result {
        Ok(_) => {
            svc.failing = false;
            if svc.queue.is_empty() {
                svc.full_reported = false;
            }
        }
        Err(e) => {
            svc.failing = true;
            if !*degraded {
                *degraded = true;
                notices.push(format!(
                    "{}; holding log records in memory (unacknowledged) and retrying",
                    e.one_line()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use dynamod_proto::Stream;

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("dynamod-logd-store-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cfg(dir: &Path) -> StoreConfig {
        StoreConfig {
            dir: dir.join("logs"),
            max_size: 1 << 20,
            max_files: 3,
            queue_bytes: 1 << 20,
        }
    }

    fn rec(svc: &str, seq: u64, text: &str) -> LogRecord {
        LogRecord {
            seq,
            service: svc.into(),
            pid: 7,
            stream: Stream::Out,
            time_us: 1_000_000 * seq,
            line: text.as_bytes().to_vec(),
            partial: false,
        }
    }

    fn texts(path: &Path) -> Vec<String> {
        let data = std::fs::read(path).unwrap_or_default();
        data.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8(format::parse_line(l).unwrap().text).unwrap())
            .collect()
    }

    #[test]
    fn records_go_to_one_file_per_service_and_are_acked() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![
            rec("a", 1, "one"),
            rec("b", 2, "two"),
            rec("a", 3, "three"),
        ]);
        assert_eq!(texts(&tmp.0.join("logs/a.log")), ["one", "three"]);
        assert_eq!(texts(&tmp.0.join("logs/b.log")), ["two"]);
        assert_eq!(store.take_ack(), Some(3));
        assert_eq!(store.take_ack(), None);
        assert!(store.take_notices().is_empty());
    }

    #[test]
    fn service_names_cannot_escape_the_directory() {
        assert_eq!(file_stem("getty@tty1"), "getty@tty1");
        assert_eq!(file_stem("a.b-c_d"), "a.b-c_d");
        assert_eq!(file_stem("../etc/passwd"), "%2E.%2Fetc%2Fpasswd");
        assert_eq!(file_stem("a%b"), "a%25b");
        assert_eq!(file_stem(""), "%");
        assert_eq!(file_stem(&"x".repeat(300)).len(), 200);
    }

    #[test]
    fn rotation_shifts_numbered_files_and_keeps_max_files() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        // Each line is 27 + " out 7 N " + 10 bytes of text: about 48 bytes; two fit in 100.
        c.max_size = 100;
        let mut store = Store::new(c);
        for seq in 1..=10 {
            store.accept(vec![rec("s", seq, &format!("line-{seq:05}"))]);
        }
        let log = tmp.0.join("logs/s.log");
        assert_eq!(texts(&log), ["line-00009", "line-00010"]);
        assert_eq!(texts(&numbered(&log, 1)), ["line-00007", "line-00008"]);
        assert_eq!(texts(&numbered(&log, 2)), ["line-00005", "line-00006"]);
        assert_eq!(texts(&numbered(&log, 3)), ["line-00003", "line-00004"]);
        assert!(!numbered(&log, 4).exists());
        for p in [
            log.clone(),
            numbered(&log, 1),
            numbered(&log, 2),
            numbered(&log, 3),
        ] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        }
        assert_eq!(store.take_ack(), Some(10));
    }

    #[test]
    fn rotation_within_one_batch_keeps_order_across_files() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.max_size = 100;
        c.max_files = 10;
        let mut store = Store::new(c);
        store.accept(
            (1..=7)
                .map(|s| rec("s", s, &format!("line-{s:05}")))
                .collect(),
        );
        let log = tmp.0.join("logs/s.log");
        let mut all = Vec::new();
        for n in (1..=3).rev() {
            all.extend(texts(&numbered(&log, n)));
        }
        all.extend(texts(&log));
        let want: Vec<String> = (1..=7).map(|s| format!("line-{s:05}")).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn a_line_longer_than_max_size_gets_a_file_of_its_own() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.max_size = 60;
        let mut store = Store::new(c);
        store.accept(vec![
            rec("s", 1, "short"),
            rec("s", 2, &"x".repeat(100)),
            rec("s", 3, "end"),
        ]);
        let log = tmp.0.join("logs/s.log");
        assert_eq!(texts(&numbered(&log, 2)), ["short"]);
        assert_eq!(texts(&numbered(&log, 1)), ["x".repeat(100)]);
        assert_eq!(texts(&log), ["end"]);
    }

    #[test]
    fn a_services_own_limits_override_the_global_ones() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.max_size = 1 << 20;
        let mut store = Store::new(c);
        store.accept(vec![rec("s", 1, "before-limits")]);
        let mut limits = BTreeMap::new();
        limits.insert(
            "s".to_owned(),
            Limits {
                max_size: Some(60),
                max_files: Some(1),
            },
        );
        store.set_limits(limits);
        for seq in 2..=5 {
            store.accept(vec![rec("s", seq, &format!("line-{seq:05}"))]);
            store.accept(vec![rec("other", seq + 100, &format!("o-{seq:05}"))]);
        }
        let log = tmp.0.join("logs/s.log");
        assert_eq!(texts(&log), ["line-00005"]);
        assert_eq!(texts(&numbered(&log, 1)), ["line-00004"]);
        assert!(!numbered(&log, 2).exists(), "max-files 1");
        assert_eq!(
            texts(&tmp.0.join("logs/other.log")).len(),
            4,
            "global limits"
        );
    }

    #[test]
    fn file_stems_decode_back_to_service_names() {
        for name in ["getty@tty1", "../etc/passwd", "a%b", ".hidden", "x y", ""] {
            assert_eq!(service_of_stem(&file_stem(name)), name, "{name}");
        }
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 1, "x")]);
        let dir = tmp.0.join("logs");
        assert_eq!(files_of(&dir, "a"), [dir.join("a.log")]);
        std::fs::write(dir.join("a.log.1"), b"").unwrap();
        std::fs::write(dir.join("a.log.3"), b"").unwrap();
        std::fs::write(dir.join("a.log.6"), b"").unwrap();
        assert_eq!(
            files_of(&dir, "a"),
            [dir.join("a.log.3"), dir.join("a.log.1"), dir.join("a.log")],
            "one free number is a rotation in progress; two end the list"
        );
        assert!(files_of(&dir, "none").is_empty());
    }

    #[test]
    fn zero_max_files_discards_the_full_file() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.max_size = 60;
        c.max_files = 0;
        let mut store = Store::new(c);
        store.accept(vec![rec("s", 1, "first"), rec("s", 2, "second")]);
        let log = tmp.0.join("logs/s.log");
        assert_eq!(texts(&log), ["second"]);
        assert!(!numbered(&log, 1).exists());
    }

    #[test]
    fn a_restarted_store_skips_records_it_already_wrote() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![
            rec("a", 1, "one"),
            rec("b", 2, "two"),
            rec("a", 3, "three"),
        ]);
        drop(store);
        let mut store = Store::new(cfg(&tmp.0));
        // svmgr re-sends from its last ack, which logd may never have sent.
        store.accept(
            (1..=5)
                .map(|s| rec(if s % 2 == 1 { "a" } else { "b" }, s, &s.to_string()))
                .collect(),
        );
        assert_eq!(texts(&tmp.0.join("logs/a.log")), ["one", "three", "5"]);
        assert_eq!(texts(&tmp.0.join("logs/b.log")), ["two", "4"]);
        assert_eq!(store.take_ack(), Some(5));
    }

    #[test]
    fn seq_is_recovered_from_the_rotated_file_when_the_current_one_is_empty() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 4, "four")]);
        drop(store);
        let log = tmp.0.join("logs/a.log");
        std::fs::rename(&log, numbered(&log, 1)).unwrap();
        std::fs::write(&log, b"").unwrap();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 4, "four"), rec("a", 5, "five")]);
        assert_eq!(texts(&log), ["five"]);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_its_record_written_again() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 1, "one")]);
        drop(store);
        let log = tmp.0.join("logs/a.log");
        let mut torn = std::fs::read(&log).unwrap();
        let mut second = Vec::new();
        format::format_line(&rec("a", 2, "two"), &mut second);
        torn.extend_from_slice(&second[..second.len() - 3]);
        std::fs::write(&log, &torn).unwrap();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 2, "two")]);
        assert_eq!(texts(&log), ["one", "two"]);
    }

    #[test]
    fn seq_recovery_reads_past_a_window_of_long_lines() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        let long = "y".repeat(200_000);
        store.accept(vec![rec("a", 1, "one"), rec("a", 2, &long)]);
        drop(store);
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 2, &long), rec("a", 3, "three")]);
        let got = texts(&tmp.0.join("logs/a.log"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], "three");
    }

    #[test]
    fn failing_disk_holds_records_unacked_says_so_once_and_recovers() {
        let tmp = TempDir::new();
        let mut store = Store::new(cfg(&tmp.0));
        store.accept(vec![rec("a", 1, "one")]);
        assert_eq!(store.take_ack(), Some(1));
        // A directory where the file should be makes every open fail, like a read-only disk.
        let log = tmp.0.join("logs/b.log");
        std::fs::create_dir(&log).unwrap();
        store.accept(vec![rec("b", 2, "two"), rec("a", 3, "three")]);
        store.accept(vec![rec("b", 4, "four")]);
        store.retry();
        assert_eq!(store.take_ack(), None, "nothing after seq 1 is safe for b");
        assert!(store.holds_records());
        let notices = store.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("b.log"), "{notices:?}");
        std::fs::remove_dir(&log).unwrap();
        store.retry();
        assert_eq!(texts(&log), ["two", "four"]);
        assert_eq!(texts(&tmp.0.join("logs/a.log")), ["one", "three"]);
        assert_eq!(store.take_ack(), Some(4));
        assert!(!store.holds_records());
        assert_eq!(store.take_notices().len(), 1);
    }

    #[test]
    fn a_full_queue_refuses_newer_records_and_asks_for_a_resend() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.queue_bytes = 2 * (RECORD_OVERHEAD + 3);
        let mut store = Store::new(c);
        let log = tmp.0.join("logs/a.log");
        std::fs::create_dir_all(&log).unwrap();
        store.accept((1..=4).map(|s| rec("a", s, &format!("r{s:02}"))).collect());
        store.accept(vec![rec("b", 5, "b05")]);
        assert_eq!(store.take_ack(), None);
        assert!(!store.needs_resend(), "queue still holds records");
        std::fs::remove_dir(&log).unwrap();
        store.retry();
        assert_eq!(texts(&log), ["r01", "r02"]);
        assert_eq!(store.take_ack(), Some(2));
        assert!(store.needs_resend());
        // Reconnect: svmgr re-sends everything after the ack.
        store.new_connection();
        store.accept(
            (3..=5)
                .map(|s| rec(if s == 5 { "b" } else { "a" }, s, &format!("r{s:02}")))
                .collect(),
        );
        assert_eq!(texts(&log), ["r01", "r02", "r03", "r04"]);
        assert_eq!(texts(&tmp.0.join("logs/b.log")), ["b05"]);
        assert_eq!(store.take_ack(), Some(5));
        assert!(!store.needs_resend());
        let notices = store.take_notices();
        assert!(notices.iter().any(|n| n.contains("full")), "{notices:?}");
    }

    #[test]
    fn a_big_batch_for_one_service_is_flushed_in_pieces_not_refused() {
        let tmp = TempDir::new();
        let mut c = cfg(&tmp.0);
        c.queue_bytes = 4 * (RECORD_OVERHEAD + 4);
        let mut store = Store::new(c);
        store.accept((1..=50).map(|s| rec("a", s, &format!("{s:04}"))).collect());
        assert_eq!(texts(&tmp.0.join("logs/a.log")).len(), 50);
        assert_eq!(store.take_ack(), Some(50));
        assert!(!store.needs_resend());
    }
}
