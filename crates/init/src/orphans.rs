//! Exit statuses of reaped orphans, kept until the service manager has surely read them.
//!
//! While svmgr is down (between a crash and its restart) init still reaps every orphan; the
//! statuses wait here so the next svmgr can re-adopt its services correctly (SPEC §2.4).
//!
//! A report written to the socket is not yet safe: if svmgr dies before reading it, it dies in
//! the socket buffer. svmgr answers every `Heartbeat` in stream order, so its `HeartbeatAck`
//! proves it read everything sent before that heartbeat. Reports therefore stay queued, marked
//! sent, until the ack of a later heartbeat confirms them; when svmgr is lost, the unconfirmed
//! ones are sent again to its successor (a duplicate is harmless: the PID is no longer tracked).
//!
//! Everything is fixed-size and allocated once: when the ring is full the oldest report is
//! dropped and counted. The ring's memory is reserved up front but written (and so made
//! resident) only as reports arrive: an idle init does not pay for a burst it never had.

use dynamod_proto::ExitStatus;

/// How many reports are kept.
pub const CAPACITY: usize = 4096;
/// How many unanswered heartbeats are remembered; more means svmgr is hung anyway.
const BEATS: usize = 8;

/// One reaped orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanExit {
    /// Its PID.
    pub pid: i32,
    /// How it ended.
    pub status: ExitStatus,
}

/// A bounded FIFO of [`OrphanExit`] reports: sent-but-unconfirmed ones first, then unsent ones.
#[derive(Debug)]
pub struct OrphanQueue {
    /// The ring: grows by `push` into its reserved capacity until it holds `cap` reports, then
    /// only slots are overwritten (never reallocated).
    slots: Vec<OrphanExit>,
    cap: usize,
    head: usize,
    len: usize,
    /// Sequence number of the oldest unconfirmed report (counts since the connection began).
    acked: u64,
    /// Sequence number the next report sent gets.
    sent: u64,
    /// `sent` at the time of each unanswered heartbeat, oldest first.
    beats: [u64; BEATS],
    beat_head: usize,
    beat_len: usize,
    dropped: u64,
}

impl OrphanQueue {
    /// An empty queue holding up to `capacity` (at least 1) reports.
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = capacity.max(1);
        Self {
            slots: Vec::with_capacity(cap),
            cap,
            head: 0,
            len: 0,
            acked: 0,
            sent: 0,
            beats: [0; BEATS],
            beat_head: 0,
            beat_len: 0,
            dropped: 0,
        }
    }

    fn unconfirmed(&self) -> usize {
        usize::try_from(self.sent - self.acked).unwrap_or(usize::MAX)
    }

    fn drop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.unconfirmed() > 0 {
            self.acked += 1;
        }
        self.head = (self.head + 1) % self.cap;
        self.len -= 1;
    }

    /// Appends a report, dropping the oldest one if the ring is full.
    pub fn push(&mut self, exit: OrphanExit) {
        let cap = self.cap;
        if self.len == cap {
            self.drop_front();
            self.dropped += 1;
        }
        // Until the ring first fills, head + len counts every push, so the next position is
        // the end of `slots`.
        let at = (self.head + self.len) % cap;
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = exit;
            self.len += 1;
        } else if at == self.slots.len() {
            self.slots.push(exit);
            self.len += 1;
        }
    }

    /// The oldest report not sent on the current connection.
    pub fn next_unsent(&self) -> Option<OrphanExit> {
        let i = self.unconfirmed();
        (i < self.len).then(|| self.slots.get((self.head + i) % self.cap).copied())?
    }

    /// Records that [`next_unsent`](Self::next_unsent) was written to the socket.
    pub fn mark_sent(&mut self) {
        if self.unconfirmed() < self.len {
            self.sent += 1;
        }
    }

    /// Records that a heartbeat was written after everything sent so far.
    pub fn heartbeat_sent(&mut self) {
        if self.beat_len == BEATS {
            // Forgetting the oldest marker only delays confirmations (a later ack covers more).
            self.beat_head = (self.beat_head + 1) % BEATS;
            self.beat_len -= 1;
        }
        if let Some(b) = self.beats.get_mut((self.beat_head + self.beat_len) % BEATS) {
            *b = self.sent;
            self.beat_len += 1;
        }
    }

    /// svmgr answered the oldest outstanding heartbeat: every report sent before it was read.
    pub fn heartbeat_acked(&mut self) {
        if self.beat_len == 0 {
            return;
        }
        let upto = self
            .beats
            .get(self.beat_head)
            .copied()
            .unwrap_or(self.acked);
        self.beat_head = (self.beat_head + 1) % BEATS;
        self.beat_len -= 1;
        while self.acked < upto && self.unconfirmed() > 0 {
            self.drop_front();
        }
    }

    /// The connection is gone: unconfirmed reports become unsent, for the next svmgr.
    pub fn connection_lost(&mut self) {
        self.acked = 0;
        self.sent = 0;
        self.beat_head = 0;
        self.beat_len = 0;
    }

    /// Number of queued reports, sent or not.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns and resets the number of reports dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: i32) -> OrphanExit {
        OrphanExit {
            pid,
            status: ExitStatus::Exited(127),
        }
    }

    /// Sends everything unsent; returns the PIDs in order.
    fn send_all(q: &mut OrphanQueue) -> Vec<i32> {
        let mut out = Vec::new();
        while let Some(e) = q.next_unsent() {
            out.push(e.pid);
            q.mark_sent();
        }
        out
    }

    #[test]
    fn reports_go_out_in_reaping_order() {
        let mut q = OrphanQueue::with_capacity(8);
        q.push(exit(1));
        q.push(exit(2));
        assert_eq!(send_all(&mut q), [1, 2]);
        q.push(exit(3));
        assert_eq!(send_all(&mut q), [3]);
        assert_eq!(q.next_unsent(), None);
    }

    #[test]
    fn heartbeat_ack_confirms_only_reports_sent_before_the_heartbeat() {
        let mut q = OrphanQueue::with_capacity(8);
        q.push(exit(1));
        q.push(exit(2));
        send_all(&mut q);
        q.heartbeat_sent();
        q.push(exit(3));
        send_all(&mut q);
        q.heartbeat_acked();
        assert_eq!(
            q.len(),
            1,
            "only the report sent after the heartbeat is left"
        );
        q.heartbeat_sent();
        q.heartbeat_acked();
        assert!(q.is_empty());
    }

    #[test]
    fn unconfirmed_reports_are_resent_after_the_connection_is_lost() {
        let mut q = OrphanQueue::with_capacity(8);
        q.push(exit(1));
        q.push(exit(2));
        send_all(&mut q);
        q.heartbeat_sent();
        q.heartbeat_acked();
        q.push(exit(3));
        q.push(exit(4));
        send_all(&mut q);
        q.heartbeat_sent();
        q.connection_lost();
        q.push(exit(5));
        assert_eq!(send_all(&mut q), [3, 4, 5]);
    }

    #[test]
    fn ack_without_outstanding_heartbeat_confirms_nothing() {
        let mut q = OrphanQueue::with_capacity(8);
        q.push(exit(1));
        send_all(&mut q);
        q.heartbeat_acked();
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn full_ring_drops_the_oldest_and_counts_it() {
        let mut q = OrphanQueue::with_capacity(3);
        q.push(exit(1));
        send_all(&mut q);
        for pid in 2..=5 {
            q.push(exit(pid));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
        assert_eq!(send_all(&mut q), [3, 4, 5]);
        q.heartbeat_sent();
        q.heartbeat_acked();
        assert!(q.is_empty());
    }

    #[test]
    fn the_ring_wraps_in_its_reserved_memory_after_confirmations_free_the_front() {
        let mut q = OrphanQueue::with_capacity(4);
        let reserved = q.slots.capacity();
        let mut expected = Vec::new();
        for round in 0..5 {
            for i in 0..3 {
                q.push(exit(round * 10 + i));
            }
            expected.extend((0..3).map(|i| round * 10 + i));
            assert_eq!(send_all(&mut q), expected.split_off(0));
            q.heartbeat_sent();
            q.heartbeat_acked();
            assert!(q.is_empty());
        }
        assert_eq!(q.slots.len(), 4);
        assert_eq!(q.slots.capacity(), reserved, "never reallocated");
    }

    #[test]
    fn many_unanswered_heartbeats_only_delay_confirmation() {
        let mut q = OrphanQueue::with_capacity(8);
        q.push(exit(1));
        send_all(&mut q);
        for _ in 0..(BEATS + 3) {
            q.heartbeat_sent();
        }
        q.heartbeat_acked();
        assert!(q.is_empty());
    }
}
