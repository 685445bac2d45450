//! The query socket (`logd.sock`): answers `dynamodctl logs`.
//!
//! One thread accepts; each client gets a thread of its own (at most [`MAX_CLIENTS`]), so a
//! slow reader or a long `-f` never delays storing. A query reads the service's files, oldest
//! rotation first, then takes from the in-memory [`Rings`] what is newer than the last record
//! read, so nothing is shown twice; a record written after the read is either in that ring
//! snapshot or newer than the query (and then sent by a follow). Files are opened before any is
//! read, so a rotation during the read changes nothing: renamed files stay open. The store puts
//! a record in the ring only after writing it, so one evicted from the ring is in a file.
//!
//! Without `-n`, services are merged by time as they are read, so the history is streamed and
//! never held whole; with `-n N`, each service's last N records are collected reading the
//! newest file first, then merged. Follow mode then waits on the rings and sends every newer
//! record, per service in order; a follower that fell behind by more than a ring reads the gap
//! back from the files.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamod_proto::{
    ErrorKind, FrameDecoder, Hello, LogQuery, LogRecord, LogReply, LogRequest, PROTOCOL_VERSION,
    ProtoError,
};
use dynamod_sys::nix;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::format;
use crate::ring::Rings;
use crate::store::{files_of, service_of_stem};

/// Query clients served at once; more are refused with an error.
pub const MAX_CLIENTS: usize = 64;
/// How long a client may take to send its hello and query.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a follower checks that its client is still there while nothing new comes.
const FOLLOW_CHECK: Duration = Duration::from_secs(1);
/// Records per `Records` frame.
const BATCH_RECORDS: usize = 2048;
/// Text bytes per `Records` frame (frames stay far below `MAX_FRAME`).
const BATCH_BYTES: usize = 1 << 20;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Binding the socket failed.
    #[error("cannot listen on {path}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Talking to the client failed (it went away, usually).
    #[error("query client i/o failed")]
    Io(#[source] io::Error),
    /// The client sent garbage.
    #[error("bad frame from query client")]
    Proto(#[source] ProtoError),
}

/// What the query threads share with the daemon.
#[derive(Debug)]
pub struct Shared {
    /// The log directory.
    pub dir: PathBuf,
    /// Recent records of every service.
    pub rings: Arc<Rings>,
    /// Service names from the configuration (so an existing service with no output yet is not
    /// "unknown").
    pub configured: Mutex<BTreeSet<String>>,
    clients: AtomicUsize,
}

impl Shared {
    /// State for the query threads.
    pub fn new(dir: PathBuf, rings: Arc<Rings>) -> Self {
        Self {
            dir,
            rings,
            configured: Mutex::new(BTreeSet::new()),
            clients: AtomicUsize::new(0),
        }
    }

    /// Replaces the configured service names.
    pub fn set_configured(&self, names: BTreeSet<String>) {
        *self.configured.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }

    fn is_configured(&self, name: &str) -> bool {
        self.configured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }
}

/// Binds the query socket (replacing a stale one), readable and writable by everyone: like
/// `dynamodctl status`, which shows recent output to every user.
pub fn bind(path: &Path) -> Result<UnixListener, QueryError> {
    let bind_err = |source| QueryError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(bind_err(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(bind_err)?;
    Ok(listener)
}

/// Accepts clients forever on a thread of its own.
pub fn spawn(listener: UnixListener, shared: Arc<Shared>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("query-accept".into())
        .spawn(move || accept_loop(&listener, &shared))?;
    Ok(())
}

/// Decrements the client count when a client thread ends, however it ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    loop {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            shared.clients.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
            let _ = send(
                &mut stream,
                &LogReply::Error {
                    kind: ErrorKind::Failed,
                    message: format!("too many log queries at once (limit {MAX_CLIENTS})"),
                },
            );
            continue;
        }
        let slot = Slot(Arc::clone(shared));
        let spawned = std::thread::Builder::new()
            .name("query".into())
            .spawn(move || {
                let slot = slot;
                let _ = serve(stream, &slot.0);
            });
        // The closure (and its slot) is dropped if the thread could not start.
        drop(spawned);
    }
}

fn send(stream: &mut UnixStream, reply: &LogReply) -> Result<(), QueryError> {
    let frame = dynamod_proto::encode(reply).map_err(QueryError::Proto)?;
    stream.write_all(&frame).map_err(QueryError::Io)
}

fn refuse(stream: &mut UnixStream, kind: ErrorKind, message: String) -> Result<(), QueryError> {
    send(stream, &LogReply::Error { kind, message })
}

/// Reads the next request frame, within the stream's read timeout.
fn next_request(
    stream: &mut UnixStream,
    decoder: &mut FrameDecoder,
) -> Result<Option<LogRequest>, QueryError> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = decoder.next::<LogRequest>().map_err(QueryError::Proto)? {
            return Ok(Some(r));
        }
        decoder.check_header().map_err(QueryError::Proto)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(QueryError::Io(e)),
        }
    }
}

fn serve(mut stream: UnixStream, shared: &Shared) -> Result<(), QueryError> {
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(QueryError::Io)?;
    let mut decoder = FrameDecoder::new();
    match next_request(&mut stream, &mut decoder) {
        Ok(Some(LogRequest::Hello(h))) if h.version == PROTOCOL_VERSION => {
            send(&mut stream, &LogReply::Hello(Hello::new("dynamod-logd")))?;
        }
        Ok(Some(LogRequest::Hello(h))) => {
            let message = format!(
                "protocol version {} not supported (dynamod-logd speaks {PROTOCOL_VERSION})",
                h.version
            );
            return refuse(&mut stream, ErrorKind::Protocol, message);
        }
        Ok(Some(LogRequest::Query(_))) => {
            let message = "the first message must be Hello".to_owned();
            return refuse(&mut stream, ErrorKind::Protocol, message);
        }
        Ok(None) => return Ok(()),
        Err(QueryError::Proto(e)) => {
            return refuse(&mut stream, ErrorKind::Protocol, e.to_string());
        }
        Err(e) => return Err(e),
    }
    let query = match next_request(&mut stream, &mut decoder) {
        Ok(Some(LogRequest::Query(q))) => q,
        Ok(Some(LogRequest::Hello(_))) => {
            let message = "a second hello".to_owned();
            return refuse(&mut stream, ErrorKind::Protocol, message);
        }
        Ok(None) => return Ok(()),
        Err(QueryError::Proto(e)) => {
            return refuse(&mut stream, ErrorKind::Protocol, e.to_string());
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(None).map_err(QueryError::Io)?;
    answer(&mut stream, &query, shared)
}

/// Services with a file in `dir` (current or rotated).
pub fn stored_services(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = match name.rsplit_once(".log") {
            Some((stem, "")) => stem,
            Some((stem, n)) if n.len() > 1 && n[1..].bytes().all(|b| b.is_ascii_digit()) => {
                if n.starts_with('.') {
                    stem
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        if !stem.is_empty() {
            out.insert(service_of_stem(stem));
        }
    }
    out
}

/// A service's stored records, file by file, oldest first; the files are opened up front.
struct FileCursor {
    service: String,
    readers: VecDeque<BufReader<File>>,
    line: Vec<u8>,
}

impl FileCursor {
    fn open(dir: &Path, service: &str) -> Self {
        let readers = files_of(dir, service)
            .iter()
            .filter_map(|p| File::open(p).ok())
            .map(BufReader::new)
            .collect();
        Self {
            service: service.to_owned(),
            readers,
            line: Vec::new(),
        }
    }

    fn from_files(service: &str, files: Vec<File>) -> Self {
        Self {
            service: service.to_owned(),
            readers: files.into_iter().map(BufReader::new).collect(),
            line: Vec::new(),
        }
    }
}

impl Iterator for FileCursor {
    type Item = LogRecord;

    fn next(&mut self) -> Option<LogRecord> {
        loop {
            let reader = self.readers.front_mut()?;
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) | Err(_) => {
                    self.readers.pop_front();
                }
                // A line without its newline is being written right now: its record is in
                // the ring, and this file has nothing after it.
                Ok(_) if self.line.last() != Some(&b'\n') => {
                    self.readers.pop_front();
                }
                Ok(_) => {
                    if let Ok(l) = format::parse_line(&self.line) {
                        return Some(LogRecord {
                            seq: l.seq,
                            service: self.service.clone(),
                            pid: l.pid,
                            stream: l.stream,
                            time_us: l.time_us,
                            line: l.text,
                            partial: l.partial,
                        });
                    }
                }
            }
        }
    }
}

/// One service's history: its files, then the ring's newer records; also tracks the highest
/// sequence number seen, filtered or not (where a follow starts).
struct History<'a> {
    files: FileCursor,
    rings: &'a Rings,
    ring: Option<std::vec::IntoIter<LogRecord>>,
    since: Option<u64>,
    last: u64,
}

impl<'a> History<'a> {
    fn new(files: FileCursor, rings: &'a Rings, since: Option<u64>) -> Self {
        Self {
            files,
            rings,
            ring: None,
            since,
            last: 0,
        }
    }
}

impl Iterator for History<'_> {
    type Item = LogRecord;

    fn next(&mut self) -> Option<LogRecord> {
        loop {
            let rec = if self.ring.is_none() {
                match self.files.next() {
                    Some(r) => r,
                    None => {
                        let snap = self.rings.newer(&self.files.service, self.last);
                        self.ring = Some(snap.records.into_iter());
                        continue;
                    }
                }
            } else {
                self.ring.as_mut()?.next()?
            };
            if rec.seq <= self.last {
                continue;
            }
            self.last = rec.seq;
            if self.since.is_some_and(|s| rec.time_us < s) {
                continue;
            }
            return Some(rec);
        }
    }
}

/// The last `n` records of one service at or after `since`: files read newest first, stopping
/// once enough are found. Returns them and the highest sequence number stored.
fn tail(
    dir: &Path,
    rings: &Rings,
    service: &str,
    since: Option<u64>,
    n: usize,
) -> (Vec<LogRecord>, u64) {
    let files: Vec<File> = files_of(dir, service)
        .iter()
        .filter_map(|p| File::open(p).ok())
        .collect();
    let mut chunks: Vec<Vec<LogRecord>> = Vec::new();
    let mut found = 0;
    let mut last = 0;
    for (i, file) in files.into_iter().rev().enumerate() {
        let recs: Vec<LogRecord> = FileCursor::from_files(service, vec![file]).collect();
        if i == 0 {
            last = recs.last().map_or(0, |r| r.seq);
        }
        let older_than_since = recs
            .first()
            .is_some_and(|r| since.is_some_and(|s| r.time_us < s));
        let kept: Vec<LogRecord> = recs
            .into_iter()
            .filter(|r| since.is_none_or(|s| r.time_us >= s))
            .collect();
        found += kept.len();
        chunks.push(kept);
        if found >= n || older_than_since {
            break;
        }
    }
    let mut all: Vec<LogRecord> = chunks.into_iter().rev().flatten().collect();
    if let Some(l) = all.last() {
        last = last.max(l.seq);
    }
    for r in rings.newer(service, last).records {
        last = last.max(r.seq);
        if since.is_none_or(|s| r.time_us >= s) {
            all.push(r);
        }
    }
    let skip = all.len().saturating_sub(n);
    all.drain(..skip);
    (all, last)
}

/// Merges per-service lists (each in its own order) by time, then sequence number.
fn merge(lists: Vec<Vec<LogRecord>>) -> Vec<LogRecord> {
    let mut iters: Vec<std::vec::IntoIter<LogRecord>> =
        lists.into_iter().map(Vec::into_iter).collect();
    let mut heads: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut pending: Vec<Option<LogRecord>> = Vec::with_capacity(iters.len());
    for (i, it) in iters.iter_mut().enumerate() {
        let head = it.next();
        if let Some(r) = &head {
            heads.push(Reverse((r.time_us, r.seq, i)));
        }
        pending.push(head);
    }
    let mut out = Vec::new();
    while let Some(Reverse((_, _, i))) = heads.pop() {
        if let Some(r) = pending[i].take() {
            out.push(r);
        }
        if let Some(next) = iters[i].next() {
            heads.push(Reverse((next.time_us, next.seq, i)));
            pending[i] = Some(next);
        }
    }
    out
}

/// Sends `records` in frames of bounded size.
fn send_records(stream: &mut UnixStream, records: Vec<LogRecord>) -> Result<(), QueryError> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for r in records {
        bytes += r.line.len() + 64;
        batch.push(r);
        if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
            send(stream, &LogReply::Records(std::mem::take(&mut batch)))?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        send(stream, &LogReply::Records(batch))?;
    }
    Ok(())
}

fn answer(stream: &mut UnixStream, q: &LogQuery, shared: &Shared) -> Result<(), QueryError> {
    let rings = &shared.rings;
    // Taken before the history, so a push during the history still wakes the follow.
    let generation = rings.generation();
    let services: Vec<String> = if q.services.is_empty() {
        let mut all = stored_services(&shared.dir);
        all.extend(rings.services());
        all.into_iter().collect()
    } else {
        for name in &q.services {
            let known = shared.is_configured(name)
                || !files_of(&shared.dir, name).is_empty()
                || !rings.newer(name, 0).records.is_empty();
            if !known {
                let message = format!("no service or log named '{name}'");
                return refuse(stream, ErrorKind::UnknownService, message);
            }
        }
        let mut seen = BTreeSet::new();
        q.services
            .iter()
            .filter(|s| seen.insert(s.as_str()))
            .cloned()
            .collect()
    };
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    match q.lines {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut lists = Vec::new();
            for s in &services {
                let (recs, l) = tail(&shared.dir, rings, s, q.since_us, n);
                last.insert(s.clone(), l);
                lists.push(recs);
            }
            let mut all = merge(lists);
            let skip = all.len().saturating_sub(n);
            all.drain(..skip);
            send_records(stream, all)?;
        }
        None => stream_history(stream, &services, q.since_us, shared, &mut last)?,
    }
    send(stream, &LogReply::End)?;
    if q.follow {
        follow(stream, q, shared, generation, last)?;
    }
    Ok(())
}

/// The whole history, merged across services as it is read.
fn stream_history(
    stream: &mut UnixStream,
    services: &[String],
    since: Option<u64>,
    shared: &Shared,
    last: &mut BTreeMap<String, u64>,
) -> Result<(), QueryError> {
    let mut cursors: Vec<History<'_>> = services
        .iter()
        .map(|s| History::new(FileCursor::open(&shared.dir, s), &shared.rings, since))
        .collect();
    let mut heads: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let mut pending: Vec<Option<LogRecord>> = Vec::with_capacity(cursors.len());
    for (i, c) in cursors.iter_mut().enumerate() {
        let head = c.next();
        if let Some(r) = &head {
            heads.push(Reverse((r.time_us, r.seq, i)));
        }
        pending.push(head);
    }
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(Reverse((_, _, i))) = heads.pop() {
        if let Some(r) = pending[i].take() {
            bytes += r.line.len() + 64;
            batch.push(r);
        }
        if let Some(next) = cursors[i].next() {
            heads.push(Reverse((next.time_us, next.seq, i)));
            pending[i] = Some(next);
        }
        if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
            send(stream, &LogReply::Records(std::mem::take(&mut batch)))?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        send(stream, &LogReply::Records(batch))?;
    }
    for (s, c) in services.iter().zip(&cursors) {
        last.insert(s.clone(), c.last);
    }
    Ok(())
}

/// Whether the client hung up (it sends nothing after its query, so readable means EOF).
fn client_gone(stream: &mut UnixStream) -> bool {
    let readable = {
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_some_and(|r| !r.is_empty()),
            Err(_) => false,
        }
    };
    if !readable {
        return false;
    }
    let mut buf = [0u8; 256];
    !matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

fn follow(
    stream: &mut UnixStream,
    q: &LogQuery,
    shared: &Shared,
    mut generation: u64,
    mut last: BTreeMap<String, u64>,
) -> Result<(), QueryError> {
    let rings = &shared.rings;
    loop {
        let services = if q.services.is_empty() {
            rings.services()
        } else {
            q.services.clone()
        };
        let mut lists = Vec::new();
        for s in services {
            let after = last.get(&s).copied().unwrap_or(0);
            let snap = rings.newer(&s, after);
            let mut list = Vec::new();
            if snap.evicted_up_to > after {
                // Fell behind by more than the ring: the gap is in the files.
                let first = snap.records.first().map_or(u64::MAX, |r| r.seq);
                list.extend(
                    FileCursor::open(&shared.dir, &s).filter(|r| r.seq > after && r.seq < first),
                );
            }
            list.extend(snap.records);
            if let Some(r) = list.last() {
                last.insert(s.clone(), r.seq.max(after));
            }
            if let Some(since) = q.since_us {
                list.retain(|r| r.time_us >= since);
            }
            lists.push(list);
        }
        let batch = merge(lists);
        if batch.is_empty() {
            if client_gone(stream) {
                return Ok(());
            }
        } else {
            send_records(stream, batch)?;
        }
        generation = rings.wait(generation, FOLLOW_CHECK);
    }
}

#[cfg(test)]
mod tests {
    use dynamod_proto::Stream;

    use super::*;
    use crate::store::{Store, StoreConfig};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("dynamod-logd-query-{}-{n}", std::process::id()));
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

    fn rec(svc: &str, seq: u64, time_us: u64, text: &str) -> LogRecord {
        LogRecord {
            seq,
            service: svc.into(),
            pid: 7,
            stream: Stream::Out,
            time_us,
            line: text.as_bytes().to_vec(),
            partial: false,
        }
    }

    /// A store with a small ring and small files, and the shared state for queries.
    fn setup(tmp: &TempDir, ring_bytes: usize, max_size: u64) -> (Store, Arc<Shared>) {
        let rings = Arc::new(Rings::new(ring_bytes));
        let mut store = Store::new(StoreConfig {
            dir: tmp.0.join("logs"),
            max_size,
            max_files: 100,
            queue_bytes: 1 << 20,
        });
        store.attach_ring(Arc::clone(&rings));
        let shared = Arc::new(Shared::new(tmp.0.join("logs"), rings));
        (store, shared)
    }

    /// Runs a query against a socketpair and collects the answer up to `End` (and, when
    /// following, `extra` more records).
    fn ask(shared: &Arc<Shared>, q: LogQuery) -> Vec<LogRecord> {
        let (mut client, server) = UnixStream::pair().unwrap();
        let s2 = Arc::clone(shared);
        let t = std::thread::spawn(move || serve(server, &s2));
        let mut out = dynamod_proto::encode(&LogRequest::Hello(Hello::new("t"))).unwrap();
        dynamod_proto::encode_into(&LogRequest::Query(q), &mut out).unwrap();
        client.write_all(&out).unwrap();
        let mut dec = FrameDecoder::new();
        let mut buf = [0u8; 65536];
        let mut got = Vec::new();
        loop {
            while let Some(r) = dec.next::<LogReply>().unwrap() {
                match r {
                    LogReply::Hello(_) => {}
                    LogReply::Records(rs) => got.extend(rs),
                    LogReply::End => {
                        drop(client);
                        let _ = t.join();
                        return got;
                    }
                    LogReply::Error { message, .. } => panic!("{message}"),
                }
            }
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0, "closed before End");
            dec.push(&buf[..n]);
        }
    }

    fn texts(recs: &[LogRecord]) -> Vec<String> {
        recs.iter()
            .map(|r| String::from_utf8_lossy(&r.line).into_owned())
            .collect()
    }

    #[test]
    fn history_spans_rotated_files_and_the_ring_without_duplicates() {
        let tmp = TempDir::new();
        let (mut store, shared) = setup(&tmp, 1 << 20, 120);
        for seq in 1..=20 {
            store.accept(vec![rec("a", seq, seq * 10, &format!("line-{seq:02}"))]);
        }
        assert!(tmp.0.join("logs/a.log.3").exists(), "rotated several times");
        let all = ask(
            &shared,
            LogQuery {
                services: vec!["a".into()],
                ..LogQuery::default()
            },
        );
        let want: Vec<String> = (1..=20).map(|s| format!("line-{s:02}")).collect();
        assert_eq!(texts(&all), want);
        let last3 = ask(
            &shared,
            LogQuery {
                services: vec!["a".into()],
                lines: Some(3),
                ..LogQuery::default()
            },
        );
        assert_eq!(texts(&last3), ["line-18", "line-19", "line-20"]);
        let since = ask(
            &shared,
            LogQuery {
                services: vec!["a".into()],
                since_us: Some(175),
                ..LogQuery::default()
            },
        );
        assert_eq!(texts(&since), ["line-18", "line-19", "line-20"]);
    }

    #[test]
    fn all_services_are_interleaved_by_time() {
        let tmp = TempDir::new();
        let (mut store, shared) = setup(&tmp, 1 << 20, 1 << 20);
        store.accept(vec![
            rec("b", 1, 10, "b1"),
            rec("a", 2, 20, "a2"),
            rec("b", 3, 30, "b3"),
            rec("a%x", 4, 40, "odd name"),
        ]);
        let all = ask(&shared, LogQuery::default());
        assert_eq!(texts(&all), ["b1", "a2", "b3", "odd name"]);
        assert_eq!(all[3].service, "a%x");
        let two = ask(
            &shared,
            LogQuery {
                lines: Some(2),
                ..LogQuery::default()
            },
        );
        assert_eq!(texts(&two), ["b3", "odd name"]);
    }

    #[test]
    fn records_only_in_memory_are_found_while_the_disk_fails() {
        let tmp = TempDir::new();
        let (mut store, shared) = setup(&tmp, 1 << 20, 1 << 20);
        store.accept(vec![rec("a", 1, 1, "on disk")]);
        std::fs::remove_file(tmp.0.join("logs/a.log")).unwrap();
        std::fs::create_dir(tmp.0.join("logs/a.log")).unwrap();
        store.reopen();
        store.accept(vec![rec("a", 2, 2, "held")]);
        assert!(store.holds_records());
        let got = ask(
            &shared,
            LogQuery {
                services: vec!["a".into()],
                ..LogQuery::default()
            },
        );
        assert_eq!(texts(&got), ["on disk", "held"]);
    }

    #[test]
    fn an_unknown_name_is_refused_but_a_configured_one_is_empty() {
        let tmp = TempDir::new();
        let (_store, shared) = setup(&tmp, 1 << 20, 1 << 20);
        shared.set_configured(["quiet".to_owned()].into());
        let got = ask(
            &shared,
            LogQuery {
                services: vec!["quiet".into()],
                ..LogQuery::default()
            },
        );
        assert!(got.is_empty());
        let (mut client, server) = UnixStream::pair().unwrap();
        let s2 = Arc::clone(&shared);
        let t = std::thread::spawn(move || serve(server, &s2));
        let mut out = dynamod_proto::encode(&LogRequest::Hello(Hello::new("t"))).unwrap();
        let q = LogQuery {
            services: vec!["nope".into()],
            ..LogQuery::default()
        };
        dynamod_proto::encode_into(&LogRequest::Query(q), &mut out).unwrap();
        client.write_all(&out).unwrap();
        t.join().unwrap().unwrap();
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).unwrap();
        let mut dec = FrameDecoder::new();
        dec.push(&bytes);
        assert!(matches!(
            dec.next::<LogReply>().unwrap(),
            Some(LogReply::Hello(_))
        ));
        match dec.next::<LogReply>().unwrap() {
            Some(LogReply::Error { kind, message }) => {
                assert_eq!(kind, ErrorKind::UnknownService);
                assert!(message.contains("'nope'"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follow_sends_new_records_across_rotations_and_fills_a_ring_gap_from_files() {
        let tmp = TempDir::new();
        // A ring of about two records: a burst of ten overruns it.
        let (mut store, shared) = setup(&tmp, 2 * (8 + 1 + 64), 100);
        store.accept(vec![rec("a", 1, 1, "first")]);
        let (mut client, server) = UnixStream::pair().unwrap();
        let s2 = Arc::clone(&shared);
        let t = std::thread::spawn(move || serve(server, &s2));
        let mut out = dynamod_proto::encode(&LogRequest::Hello(Hello::new("t"))).unwrap();
        let q = LogQuery {
            services: vec!["a".into()],
            follow: true,
            ..LogQuery::default()
        };
        dynamod_proto::encode_into(&LogRequest::Query(q), &mut out).unwrap();
        client.write_all(&out).unwrap();
        let mut dec = FrameDecoder::new();
        let mut buf = [0u8; 65536];
        let mut got = Vec::new();
        let mut ended = false;
        let mut pushed = false;
        while got.len() < 11 {
            while let Some(r) = dec.next::<LogReply>().unwrap() {
                match r {
                    LogReply::Records(rs) => got.extend(rs),
                    LogReply::End => ended = true,
                    _ => {}
                }
            }
            if ended && !pushed {
                pushed = true;
                for seq in 2..=11 {
                    store.accept(vec![rec("a", seq, seq, &format!("burst-{seq:02}"))]);
                }
            }
            if got.len() >= 11 {
                break;
            }
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0);
            dec.push(&buf[..n]);
        }
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
        assert!(
            tmp.0.join("logs/a.log.1").exists(),
            "rotated during the follow"
        );
        drop(client);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn stored_services_decode_file_names() {
        let tmp = TempDir::new();
        for f in [
            "a.log",
            "a.log.1",
            "b%2Fc.log.3",
            "notes.txt",
            "x.log.old",
            ".log",
        ] {
            std::fs::write(tmp.0.join(f), b"").unwrap();
        }
        let got: Vec<String> = stored_services(&tmp.0).into_iter().collect();
        assert_eq!(got, ["a", "b/c"]);
    }
}
