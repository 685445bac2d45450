//! The service table and the settling worklist.
//!
//! Settling used to rescan every service after every event, which made one event O(N) and a
//! start-up O(N²). The table makes it proportional to what changed instead:
//!
//! - Services can only be changed through [`Table::get_mut`] or [`Table::iter_mut`] (there is no
//!   `IndexMut`), and both record what they hand out as *touched*. The compiler thus guarantees
//!   that no change goes unnoticed.
//! - [`Table::sync`] refreshes what is derived from each touched service — whether it is
//!   settled, whether it may have a process, its deadline — keeping counts and a sorted deadline
//!   set exact. It puts the touched service on the worklist and, when what other services read
//!   of it changed (its state, whether it is wanted, its reason), every service whose frontier
//!   decision reads it: normally its dependents (a waiting service reads its `requires` and soft
//!   dependencies), during shutdown its own dependencies (a running service reads whether its
//!   dependents still have a process).
//! - Changes that every decision reads (boot, shutdown, a new graph, a supervisor given up or
//!   revived) mark the whole table, with [`Table::iter_mut`] or [`Table::touch_all`].
//!
//! The worklist is drained in the order the full rescan visited services: ascending index from
//! a cursor, wrapping around to the lowest pending index as a new pass would. A service that is
//! not on the worklist would be left unchanged by the rescan, so both move the same services in
//! the same order and emit the same actions; `tests_worklist.rs` checks that against the old
//! rescan, kept as an oracle. For the worklist to drain, a decision that changes nothing must
//! not take any service with `get_mut`.

use std::collections::BTreeSet;
use std::ops::Index;

use dynamod_proto::ServiceState;

use crate::{Service, Time};

/// What the completion checks, the timer and other services' decisions read of one service,
/// as of the last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Derived {
    settled: bool,
    has_process: bool,
    deadline: Option<Time>,
    /// The phase without its data, whether it is wanted and why it is down: all that a
    /// dependent's or a dependency's decision reads of it (besides its name).
    state: Option<ServiceState>,
    wanted: bool,
    reason: Option<String>,
}

impl Derived {
    /// What a slot contributes before its first sync: nothing to any count.
    const NEUTRAL: Derived = Derived {
        settled: true,
        has_process: false,
        deadline: None,
        state: None,
        wanted: false,
        reason: None,
    };

    fn of(s: &Service) -> Derived {
        Derived {
            settled: s.settled(),
            has_process: s.has_process(),
            deadline: s.phase.deadline(),
            state: Some(s.state()),
            wanted: s.wanted,
            reason: s.reason.clone(),
        }
    }

    /// Whether a neighbour's decision may differ between `self` and `other`.
    fn seen_alike(&self, other: &Derived) -> bool {
        self.state == other.state && self.wanted == other.wanted && self.reason == other.reason
    }
}

/// Every service slot, with change tracking, derived counts and the settling worklist.
#[derive(Debug, Default)]
pub(crate) struct Table {
    items: Vec<Service>,
    /// Slots changed since the last sync, each once.
    touched: Vec<usize>,
    /// Whether a slot is in `touched`.
    marked: Vec<bool>,
    /// Everything changed: the next sync refreshes and enqueues every slot.
    all: bool,
    derived: Vec<Derived>,
    /// Slots that are not settled.
    unsettled: usize,
    /// Slots that may have a process.
    with_process: usize,
    /// `(deadline, slot)` of every slot that has one.
    deadlines: BTreeSet<(Time, usize)>,
    /// Slots whose frontier decision may have changed.
    pending: BTreeSet<usize>,
}

impl Table {
    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Every slot, in order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Service> {
        self.items.iter()
    }

    /// Adds a slot (its index is the previous [`Table::len`]).
    pub(crate) fn push(&mut self, s: Service) {
        let i = self.items.len();
        self.items.push(s);
        self.derived.push(Derived::NEUTRAL);
        self.marked.push(false);
        self.touch(i);
    }

    /// One slot, to change it.
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Service {
        self.touch(i);
        &mut self.items[i]
    }

    /// Every slot, to change them all.
    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Service> {
        self.all = true;
        self.items.iter_mut()
    }

    /// Records that something every decision may read has changed.
    pub(crate) fn touch_all(&mut self) {
        self.all = true;
    }

    fn touch(&mut self, i: usize) {
        if !self.marked[i] {
            self.marked[i] = true;
            self.touched.push(i);
        }
    }

    /// Brings the derived counts up to date with every change since the last sync, and puts
    /// every slot whose decision may read a changed one on the worklist. `shutting_down` says
    /// which way decisions read their neighbours (see [`Table::enqueue_around`]).
    pub(crate) fn sync(&mut self, shutting_down: bool) {
        if self.all {
            self.all = false;
            for i in self.touched.drain(..) {
                self.marked[i] = false;
            }
            for i in 0..self.items.len() {
                self.refresh(i);
                self.pending.insert(i);
            }
            return;
        }
        while let Some(i) = self.touched.pop() {
            self.marked[i] = false;
            // A service's own decision may read more of it than its neighbours do.
            self.pending.insert(i);
            if self.refresh(i) {
                self.enqueue_around(i, shutting_down);
            }
        }
    }

    /// Recomputes what is derived from slot `i`; returns whether its neighbours may see it
    /// differently.
    fn refresh(&mut self, i: usize) -> bool {
        let new = Derived::of(&self.items[i]);
        let seen_alike = new.seen_alike(&self.derived[i]);
        let old = std::mem::replace(&mut self.derived[i], new);
        let new = &self.derived[i];
        if old.settled != new.settled {
            if new.settled {
                self.unsettled -= 1;
            } else {
                self.unsettled += 1;
            }
        }
        if old.has_process != new.has_process {
            if new.has_process {
                self.with_process += 1;
            } else {
                self.with_process -= 1;
            }
        }
        if old.deadline != new.deadline {
            if let Some(t) = old.deadline {
                self.deadlines.remove(&(t, i));
            }
            if let Some(t) = new.deadline {
                self.deadlines.insert((t, i));
            }
        }
        !seen_alike
    }

    /// Queues every slot whose decision reads slot `i`. Normally a waiting service reads its
    /// `requires` and soft dependencies, so `i`'s dependents; during shutdown a service reads
    /// whether its dependents still have a process, so `i`'s own dependencies. (Starting the
    /// shutdown marks every slot.)
    fn enqueue_around(&mut self, i: usize, shutting_down: bool) {
        let s = &self.items[i];
        if shutting_down {
            for d in s.requires.iter().chain(&s.soft) {
                self.pending.insert(d.0);
            }
        } else {
            for d in &s.dependents {
                self.pending.insert(d.0);
            }
        }
    }

    /// Takes the next slot to settle: the lowest pending one at or after `cursor`, else (a new
    /// pass) the lowest pending one. Moves `cursor` past it.
    pub(crate) fn next_pending(&mut self, cursor: &mut usize) -> Option<usize> {
        let next = self
            .pending
            .range(*cursor..)
            .next()
            .or_else(|| self.pending.first())
            .copied()?;
        self.pending.remove(&next);
        *cursor = next + 1;
        Some(next)
    }

    /// Empties the worklist (the full rescan does not use it).
    #[cfg(test)]
    pub(crate) fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Whether every slot is settled, as of the last sync.
    pub(crate) fn all_settled(&self) -> bool {
        self.unsettled == 0
    }

    /// Whether no slot may have a process, as of the last sync.
    pub(crate) fn none_with_process(&self) -> bool {
        self.with_process == 0
    }

    /// The earliest deadline, as of the last sync.
    pub(crate) fn first_deadline(&self) -> Option<Time> {
        self.deadlines.first().map(|&(t, _)| t)
    }

    /// Slots whose deadline is at or before `now`, in slot order, as of the last sync.
    pub(crate) fn due(&self, now: Time) -> Vec<usize> {
        let mut due: Vec<usize> = self
            .deadlines
            .range(..=(now, usize::MAX))
            .map(|&(_, i)| i)
            .collect();
        due.sort_unstable();
        due
    }
}

impl Index<usize> for Table {
    type Output = Service;

    fn index(&self, i: usize) -> &Service {
        &self.items[i]
    }
}
