//! Service output between the pipes and logd.
//!
//! svmgr reads every service's stdout and stderr pipe itself, so a service never blocks on a
//! full pipe because logd is slow or down. Lines become [`LogRecord`]s with an increasing
//! sequence number and wait in a bounded queue until logd acknowledges that it stored them;
//! after a logd restart everything unacknowledged is sent again (logd drops what it already
//! has by sequence number), so a logd crash loses nothing.
//!
//! **Overflow policy**: the queue holds at most [`MAX_QUEUE_BYTES`] of line data. When a new
//! record would exceed it, the *oldest* records are dropped (the most recent output is the most
//! useful) and counted per service; the count is shown by `dynamodctl status` and logged.

use std::collections::VecDeque;

use dynamod_proto::{LogRecord, Stream};

/// Bound on queued, unacknowledged line bytes.
pub const MAX_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Longest line kept as one record; longer ones are split into partial records.
pub const MAX_LINE: usize = 64 * 1024;
/// Lines per service kept for `dynamodctl status`.
pub const RECENT_LINES: usize = 10;

/// Splits a byte stream into lines, carrying partial lines across reads.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(line, partial)` for every complete line (without `\n`) and for
    /// every [`MAX_LINE`] chunk of an over-long line.
    pub fn feed(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.emit_chunks(&bytes[..pos], emit);
            } else {
                self.partial.extend_from_slice(&bytes[..pos]);
                let line = std::mem::take(&mut self.partial);
                self.emit_chunks(&line, emit);
            }
            bytes = &bytes[pos + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.partial, rest);
            emit(&chunk, true);
        }
    }

    fn emit_chunks(&self, line: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        let mut chunks = line.chunks(MAX_LINE).peekable();
        if line.is_empty() {
            emit(line, false);
        }
        while let Some(c) = chunks.next() {
            emit(c, chunks.peek().is_some());
        }
    }

    /// At EOF: the unterminated rest, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// The queue of records not yet acknowledged by logd.
#[derive(Debug)]
pub struct LogQueue {
    records: VecDeque<LogRecord>,
    bytes: usize,
    max_bytes: usize,
    next_seq: u64,
    /// How many records at the front have been sent on the current logd connection.
    sent: usize,
}

impl LogQueue {
    /// An empty queue whose sequence numbers start at `first_seq`.
    ///
    /// svmgr starts at the current Unix time in microseconds, so numbers keep increasing across
    /// svmgr restarts without any state on disk.
    pub fn new(first_seq: u64, max_bytes: usize) -> Self {
        LogQueue {
            records: VecDeque::new(),
            bytes: 0,
            max_bytes,
            next_seq: first_seq,
            sent: 0,
        }
    }

    /// Appends a record (its `seq` is assigned here). Returns the records dropped to make room,
    /// as (service, count) pairs.
    pub fn push(
        &mut self,
        service: &str,
        pid: i32,
        stream: Stream,
        time_us: u64,
        line: Vec<u8>,
        partial: bool,
    ) -> Vec<(String, u64)> {
        let mut dropped: Vec<(String, u64)> = Vec::new();
        let size = line.len() + service.len() + 32;
        while self.bytes + size > self.max_bytes {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old.line.len() + old.service.len() + 32;
            self.sent = self.sent.saturating_sub(1);
            match dropped.iter_mut().find(|(s, _)| *s == old.service) {
                Some((_, n)) => *n += 1,
                None => dropped.push((old.service, 1)),
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        self.records.push_back(LogRecord {
            seq,
            service: service.to_owned(),
            pid,
            stream,
            time_us,
            line,
            partial,
        });
        dropped
    }

    /// Drops every record with `seq <= upto`.
    pub fn ack(&mut self, upto: u64) {
        while self.records.front().is_some_and(|r| r.seq <= upto) {
            if let Some(r) = self.records.pop_front() {
                self.bytes -= r.line.len() + r.service.len() + 32;
                self.sent = self.sent.saturating_sub(1);
            }
        }
    }

    /// A new logd connection: everything still queued is sent again.
    pub fn rewind(&mut self) {
        self.sent = 0;
    }

    /// Takes up to `max` records not yet sent on this connection.
    pub fn unsent(&mut self, max: usize) -> Vec<LogRecord> {
        let out: Vec<LogRecord> = self
            .records
            .iter()
            .skip(self.sent)
            .take(max)
            .cloned()
            .collect();
        self.sent += out.len();
        out
    }

    /// Records waiting for an acknowledgement.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l, p| out.push((l.to_vec(), p)));
        }
        if let Some(rest) = s.finish() {
            out.push((rest, true));
        }
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let out = split(&[b"hel", b"lo\nwor", b"ld\n"]);
        assert_eq!(
            out,
            vec![(b"hello".to_vec(), false), (b"world".to_vec(), false)]
        );
    }

    #[test]
    fn unterminated_tail_is_flushed_as_partial_at_eof() {
        let out = split(&[b"a\nb"]);
        assert_eq!(out, vec![(b"a".to_vec(), false), (b"b".to_vec(), true)]);
    }

    #[test]
    fn over_long_lines_become_partial_chunks_and_keep_every_byte() {
        let mut big = vec![b'x'; MAX_LINE * 2 + 10];
        big.push(b'\n');
        let out = split(&[&big[..1000], &big[1000..]]);
        let total: usize = out.iter().map(|(l, _)| l.len()).sum();
        assert_eq!(total, MAX_LINE * 2 + 10);
        assert_eq!(out.iter().filter(|(_, p)| *p).count(), 2);
        assert!(!out.last().unwrap().1);
    }

    #[test]
    fn binary_bytes_and_carriage_returns_pass_through() {
        let out = split(&[b"\x00\xff\r\n"]);
        assert_eq!(out, vec![(b"\x00\xff\r".to_vec(), false)]);
    }

    #[test]
    fn empty_lines_are_records_too() {
        let out = split(&[b"\n\n"]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn queue_acks_and_rewinds() {
        let mut q = LogQueue::new(100, 1 << 20);
        for i in 0..5 {
            q.push("s", 1, Stream::Out, 0, vec![b'0' + i], false);
        }
        let first = q.unsent(2);
        assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), [100, 101]);
        q.ack(100);
        assert_eq!(q.len(), 4);
        let next = q.unsent(10);
        assert_eq!(
            next.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [102, 103, 104]
        );
        q.rewind();
        assert_eq!(q.unsent(10).len(), 4);
    }

    #[test]
    fn overflow_drops_oldest_and_counts_per_service() {
        let mut q = LogQueue::new(1, 3 * (10 + 1 + 32));
        for _ in 0..3 {
            q.push("a", 1, Stream::Out, 0, vec![b'x'; 10], false);
        }
        let dropped = q.push("b", 1, Stream::Err, 0, vec![b'y'; 10], false);
        assert_eq!(dropped, vec![("a".to_owned(), 1)]);
        assert_eq!(q.len(), 3);
    }
}
