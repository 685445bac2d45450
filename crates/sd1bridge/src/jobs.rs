//! The jobs the bridge has handed out: one per start, stop or restart request, alive until
//! svmgr answers, announced with `JobNew` and `JobRemoved` like systemd's jobs.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// Its id (never reused while the bridge runs).
    pub id: u32,
    /// The unit it acts on.
    pub unit: String,
    /// systemd's job type: `start`, `stop`, `restart`, `try-restart`.
    pub kind: &'static str,
}

#[derive(Debug, Default)]
struct Inner {
    last: u32,
    active: BTreeMap<u32, JobInfo>,
    installed: u32,
    failed: u32,
}

/// The job table.
#[derive(Debug, Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
}

impl Jobs {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update of plain counters.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Registers a new job.
    pub fn begin(&self, unit: &str, kind: &'static str) -> JobInfo {
        self.with(|i| {
            i.last = i.last.wrapping_add(1).max(1);
            i.installed = i.installed.saturating_add(1);
            let job = JobInfo {
                id: i.last,
                unit: unit.to_owned(),
                kind,
            };
            i.active.insert(job.id, job.clone());
            job
        })
    }

    /// Removes a finished job.
    pub fn finish(&self, id: u32, failed: bool) {
        self.with(|i| {
            i.active.remove(&id);
            if failed {
                i.failed = i.failed.saturating_add(1);
            }
        });
    }

    /// The active job `id`.
    pub fn get(&self, id: u32) -> Option<JobInfo> {
        self.with(|i| i.active.get(&id).cloned())
    }

    /// The most recent active job on `unit`.
    pub fn for_unit(&self, unit: &str) -> Option<JobInfo> {
        self.with(|i| i.active.values().rev().find(|j| j.unit == unit).cloned())
    }

    /// Every active job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        self.with(|i| i.active.values().cloned().collect())
    }

    /// Active jobs, jobs ever installed, jobs that failed.
    pub fn counts(&self) -> (u32, u32, u32) {
        self.with(|i| (i.active.len() as u32, i.installed, i.failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_get_increasing_ids_and_leave_when_finished() {
        let jobs = Jobs::new();
        let a = jobs.begin("a.service", "start");
        let b = jobs.begin("a.service", "stop");
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(jobs.for_unit("a.service").unwrap().id, 2);
        jobs.finish(2, true);
        assert_eq!(jobs.for_unit("a.service").unwrap().id, 1);
        jobs.finish(1, false);
        assert!(jobs.get(1).is_none());
        assert_eq!(jobs.counts(), (0, 2, 1));
    }
}
