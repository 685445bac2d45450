//! The in-memory ring of each service's most recent records, shared between the storing thread
//! and the query threads.
//!
//! The store pushes every record it accepts (written or held for a failing disk), in order per
//! service. Queries read the files first and take from the ring only what is newer than the
//! files, so a record is never shown twice; `logs -f` waits on the ring's condition variable
//! and so follows a service across rotations without touching the files. Each ring is bounded
//! in bytes; a follower that falls behind by more than a ring notices it through
//! [`Snapshot::evicted_up_to`] and reads the gap from the files.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use dynamod_proto::LogRecord;

/// Bytes counted per record on top of its text, for the bound.
const RECORD_OVERHEAD: usize = 64;

#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<LogRecord>,
    bytes: usize,
    /// Highest sequence number evicted so far.
    evicted_up_to: u64,
}

#[derive(Debug, Default)]
struct State {
    rings: BTreeMap<String, Ring>,
    /// Bumped on every push, so followers can wait for "something new".
    generation: u64,
}

/// Every service's ring.
#[derive(Debug)]
pub struct Rings {
    max_bytes: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// What a ring holds newer than a given point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Records with a higher sequence number, oldest first.
    pub records: Vec<LogRecord>,
    /// Highest sequence number no longer in the ring (0 when nothing was evicted).
    pub evicted_up_to: u64,
}

fn cost(r: &LogRecord) -> usize {
    r.line.len() + r.service.len() + RECORD_OVERHEAD
}

impl Rings {
    /// Rings of at most `max_bytes` each.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking query thread must not take logging down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends records (in order per service) and wakes the followers.
    pub fn push(&self, records: &[LogRecord]) {
        if records.is_empty() {
            return;
        }
        let mut st = self.lock();
        for r in records {
            let ring = st.rings.entry(r.service.clone()).or_default();
            ring.bytes += cost(r);
            ring.records.push_back(r.clone());
            // Keep at least the newest record, however long.
            while ring.bytes > self.max_bytes && ring.records.len() > 1 {
                if let Some(old) = ring.records.pop_front() {
                    ring.bytes -= cost(&old);
                    ring.evicted_up_to = ring.evicted_up_to.max(old.seq);
                }
            }
        }
        st.generation += 1;
        drop(st);
        self.changed.notify_all();
    }

    /// The records of `service` with a sequence number above `after`.
    pub fn newer(&self, service: &str, after: u64) -> Snapshot {
        let st = self.lock();
        match st.rings.get(service) {
            Some(ring) => Snapshot {
                records: ring
                    .records
                    .iter()
                    .filter(|r| r.seq > after)
                    .cloned()
                    .collect(),
                evicted_up_to: ring.evicted_up_to,
            },
            None => Snapshot::default(),
        }
    }

    /// Services that have a ring.
    pub fn services(&self) -> Vec<String> {
        self.lock().rings.keys().cloned().collect()
    }

    /// The current generation (see [`Rings::wait`]).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Waits until the generation differs from `seen`, at most `timeout`; returns the new one.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.generation == seen)
            .unwrap_or_else(|p| p.into_inner());
        st.generation
    }

    /// Bytes held, all rings together (for the memory benchmark and tests).
    pub fn bytes(&self) -> usize {
        self.lock().rings.values().map(|r| r.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use dynamod_proto::Stream;

    use super::*;

    fn rec(svc: &str, seq: u64, len: usize) -> LogRecord {
        LogRecord {
            seq,
            service: svc.into(),
            pid: 1,
            stream: Stream::Out,
            time_us: seq,
            line: vec![b'x'; len],
            partial: false,
        }
    }

    #[test]
    fn rings_keep_the_newest_records_within_their_bound() {
        let rings = Rings::new(3 * (10 + 1 + RECORD_OVERHEAD));
        rings.push(&(1..=5).map(|s| rec("a", s, 10)).collect::<Vec<_>>());
        rings.push(&[rec("b", 6, 10)]);
        let a = rings.newer("a", 0);
        assert_eq!(
            a.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(a.evicted_up_to, 2);
        assert_eq!(rings.newer("a", 4).records.len(), 1);
        assert_eq!(rings.newer("b", 0).evicted_up_to, 0);
        assert_eq!(rings.services(), ["a", "b"]);
        assert!(rings.newer("c", 0).records.is_empty());
    }

    #[test]
    fn an_oversized_record_still_stays_alone() {
        let rings = Rings::new(10);
        rings.push(&[rec("a", 1, 100), rec("a", 2, 100)]);
        let a = rings.newer("a", 0);
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].seq, 2);
    }

    #[test]
    fn waiters_wake_on_a_push() {
        let rings = std::sync::Arc::new(Rings::new(1 << 20));
        let seen = rings.generation();
        let r2 = std::sync::Arc::clone(&rings);
        let t = std::thread::spawn(move || r2.wait(seen, Duration::from_secs(60)));
        rings.push(&[rec("a", 1, 1)]);
        assert_ne!(t.join().unwrap(), seen);
        assert_eq!(
            rings.wait(rings.generation(), Duration::ZERO),
            rings.generation()
        );
    }
}
