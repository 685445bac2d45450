//! Applying a new configuration to a running system: new services start, removed ones stop,
//! changed ones restart, untouched ones are not disturbed.

use std::collections::HashSet;

use dynamod_config::{Config, SupervisorConfig};

use crate::{Action, Core, Level, Phase, SupId, Supervisor, SvcId, Then, Time};

/// What a reload changed, by service name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// New services (started).
    pub added: Vec<String>,
    /// Services no longer configured (stopped).
    pub removed: Vec<String>,
    /// Services whose definition changed (restarted if running).
    pub changed: Vec<String>,
    /// Services left as they were.
    pub unchanged: usize,
}

impl Core {
    /// Applies `config`. During a shutdown nothing changes.
    pub fn reload(&mut self, now: Time, config: &Config) -> (ReloadSummary, Vec<Action>) {
        let mut summary = ReloadSummary::default();
        if self.shutting_down() {
            return (summary, Vec::new());
        }
        self.reload_supervisors(&config.supervisors);

        // Removed: every live service whose name is in neither list.
        let names: HashSet<&str> = config
            .services
            .iter()
            .map(|c| c.name.as_str())
            .chain(config.invalid.iter().map(|i| i.name.as_str()))
            .collect();
        let known = |n: &str| names.contains(n);
        let live: Vec<(SvcId, String)> = self
            .services()
            .map(|(id, s)| (id, s.name.clone()))
            .collect();
        for (id, name) in live {
            if !known(&name) {
                self.operator_stop(now, id);
                self.services.get_mut(id.0).removed = true;
                self.by_name.remove(&name);
                summary.removed.push(name);
            }
        }

        for cfg in &config.services {
            let sup = self.sup_for(&cfg.supervisor);
            match self.lookup(&cfg.name) {
                None => {
                    let id = self.insert_service(cfg.name.clone(), sup, Some(cfg.clone()), None);
                    let s = self.services.get_mut(id.0);
                    s.wanted = true;
                    s.phase = Phase::Waiting;
                    s.since = now;
                    summary.added.push(cfg.name.clone());
                }
                Some(id) => {
                    let s = &self.services[id.0];
                    if s.cfg.as_ref() == Some(cfg) && s.supervisor == sup {
                        summary.unchanged += 1;
                        continue;
                    }
                    summary.changed.push(cfg.name.clone());
                    let s = self.services.get_mut(id.0);
                    s.cfg = Some(cfg.clone());
                    s.supervisor = sup;
                    s.restart_times.clear();
                    s.backoff = None;
                    match s.phase.clone() {
                        Phase::Starting { .. } | Phase::Running => {
                            s.wanted = true;
                            self.actions.push(Action::CancelReadiness(id));
                            self.begin_stop(now, id, Then::Start);
                        }
                        Phase::Invalid | Phase::Failed | Phase::Blocked if s.boot_wanted => {
                            s.wanted = true;
                            s.phase = Phase::Waiting;
                            s.reason = None;
                            s.since = now;
                        }
                        Phase::Done if s.boot_wanted => {
                            // A changed oneshot runs again with its new definition.
                            s.wanted = true;
                            s.phase = Phase::Waiting;
                            s.since = now;
                        }
                        _ => {}
                    }
                }
            }
        }

        for inv in &config.invalid {
            let sup = self.sup_for(inv.supervisor.as_deref().unwrap_or(""));
            match self.lookup(&inv.name) {
                None => {
                    self.insert_service(inv.name.clone(), sup, None, Some(inv.reason.clone()));
                    summary.added.push(inv.name.clone());
                }
                Some(id) => {
                    let was_invalid = self.services[id.0].cfg.is_none();
                    if was_invalid && self.services[id.0].reason.as_deref() == Some(&inv.reason) {
                        summary.unchanged += 1;
                        continue;
                    }
                    summary.changed.push(inv.name.clone());
                    if !was_invalid {
                        self.operator_stop(now, id);
                    }
                    let s = self.services.get_mut(id.0);
                    s.boot_wanted = true;
                    s.cfg = None;
                    s.reason = Some(inv.reason.clone());
                    if !s.has_process() {
                        s.phase = Phase::Invalid;
                    }
                }
            }
        }

        self.link();
        self.log(
            Level::Info,
            format!(
                "reload complete: {} added, {} removed, {} changed, {} unchanged",
                summary.added.len(),
                summary.removed.len(),
                summary.changed.len(),
                summary.unchanged
            ),
        );
        self.settle(now);
        (summary, std::mem::take(&mut self.actions))
    }

    fn reload_supervisors(&mut self, configs: &[SupervisorConfig]) {
        for cfg in configs {
            match self.sup_by_name.get(&cfg.name).copied() {
                Some(id) => self.supervisors[id.0].cfg = cfg.clone(),
                None => {
                    let id = SupId(self.supervisors.len());
                    self.supervisors
                        .push(Supervisor::new(cfg.clone(), Some(SupId(0))));
                    self.sup_by_name.insert(cfg.name.clone(), id);
                }
            }
        }
        // Parents are re-resolved for every supervisor but root.
        for sup in &mut self.supervisors {
            sup.child_sups.clear();
        }
        for i in 1..self.supervisors.len() {
            let parent = self.supervisors[i]
                .cfg
                .parent
                .as_deref()
                .and_then(|p| self.sup_by_name.get(p).copied())
                .filter(|p| p.0 != i)
                .unwrap_or(SupId(0));
            self.supervisors[i].parent = Some(parent);
            self.supervisors[parent.0].child_sups.push(SupId(i));
        }
    }
}
