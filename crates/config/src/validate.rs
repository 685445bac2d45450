//! Cross-file validation: duplicate names, references to supervisors and services, the
//! supervisor tree, the single main service, and dependency cycles.
//!
//! Every check refuses as little as possible: a duplicate refuses the second file, a cycle
//! refuses the services on it, and a service that `requires` an unknown name stays valid (the
//! supervision core marks it blocked). Diagnostics point into the file that has to change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::model::{ROOT_SUPERVISOR, ServiceConfig, SupervisorConfig};
use crate::service::{DepKind, ServiceOutcome};
use crate::source::Pos;
use crate::supervisor::SupervisorOutcome;
use crate::walk::suggest;
use crate::{Config, Diagnostic, InvalidService, Severity};

/// One service file and what parsing it produced.
#[derive(Debug)]
pub(crate) struct ServiceEntry {
    pub file: PathBuf,
    pub outcome: ServiceOutcome,
}

/// One supervisor file and what parsing it produced.
#[derive(Debug)]
pub(crate) struct SupervisorEntry {
    pub file: PathBuf,
    pub outcome: SupervisorOutcome,
}

/// Per-file bookkeeping while the cross-file checks run.
#[derive(Debug)]
struct FileState<T> {
    file: PathBuf,
    config: Option<T>,
    diags: Vec<Diagnostic>,
    /// The error that refused the file, once one did.
    reason: Option<Diagnostic>,
}

impl<T> FileState<T> {
    fn new(file: PathBuf, config: Option<T>, diags: Vec<Diagnostic>) -> Self {
        let reason = if config.is_none() {
            first_error(&diags)
        } else {
            None
        };
        Self {
            file,
            config,
            diags,
            reason,
        }
    }

    /// Records a diagnostic in this file.
    fn report(&mut self, pos: Pos, severity: Severity, message: String) -> Diagnostic {
        // Names quoted in cross-file messages come from other files and may hold control
        // characters (a suggestion, an unknown dependency): a message stays one printable line.
        let message = if message.contains(char::is_control) {
            message
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        } else {
            message
        };
        let d = Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            severity,
            message,
        };
        self.diags.push(d.clone());
        d
    }

    /// Records an error and refuses the file.
    fn refuse(&mut self, pos: Pos, message: String) {
        let d = self.report(pos, Severity::Error, message);
        self.config = None;
        self.reason.get_or_insert(d);
    }
}

/// The first error of a list, in position order.
fn first_error(diags: &[Diagnostic]) -> Option<Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .min_by_key(|d| (d.line, d.col))
        .cloned()
}

/// The file stem, for naming files whose `name` is unreadable.
fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs the cross-file checks and builds the [`Config`]. `early` holds diagnostics about the
/// directories themselves; they come first.
pub(crate) fn assemble(
    services: Vec<ServiceEntry>,
    supervisors: Vec<SupervisorEntry>,
    early: Vec<Diagnostic>,
) -> Config {
    let (sups, sup_extra) = check_supervisors(supervisors);
    let mut svcs = check_services(services, &sups, &sup_extra);

    let mut diagnostics = early;
    let mut supervisor_configs = Vec::new();
    for mut s in sups.files {
        s.diags.sort_by_key(|d| (d.line, d.col));
        diagnostics.append(&mut s.diags);
    }
    supervisor_configs.extend(sups.ordered);
    let mut services_out = Vec::new();
    let mut invalid = Vec::new();
    for (i, s) in svcs.files.iter_mut().enumerate() {
        s.diags.sort_by_key(|d| (d.line, d.col));
        diagnostics.append(&mut s.diags);
        match s.config.take() {
            Some(config) => services_out.push(config),
            None => invalid.push(InvalidService {
                name: svcs
                    .names
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| stem(&s.file)),
                file: s.file.clone(),
                supervisor: svcs.supervisors.get(i).cloned().flatten(),
                reason: s
                    .reason
                    .as_ref()
                    .map_or_else(|| "invalid".to_owned(), Diagnostic::located_message),
            }),
        }
    }
    Config {
        services: services_out,
        invalid,
        supervisors: supervisor_configs,
        diagnostics,
    }
}

/// The result of the supervisor checks.
#[derive(Debug)]
struct Supervisors {
    files: Vec<FileState<SupervisorConfig>>,
    /// Valid supervisors, root first, parents before children, siblings in file order.
    ordered: Vec<SupervisorConfig>,
}

/// Names of supervisors that exist but are invalid, and the file of every named supervisor.
#[derive(Debug, Default)]
struct SupervisorNames {
    invalid: BTreeSet<String>,
    files: BTreeMap<String, PathBuf>,
}

/// Duplicates, unknown or invalid parents, parent cycles; then the tree order.
fn check_supervisors(entries: Vec<SupervisorEntry>) -> (Supervisors, SupervisorNames) {
    let mut names = Vec::new();
    let mut parent_pos = Vec::new();
    let mut files: Vec<FileState<SupervisorConfig>> = Vec::new();
    for e in entries {
        names.push(e.outcome.name.clone());
        parent_pos.push(e.outcome.parent_pos);
        files.push(FileState::new(e.file, e.outcome.config, e.outcome.diags));
    }

    // Duplicates: the first file keeps the name.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let Some((name, pos)) = name else { continue };
        match first.get(name) {
            Some(&j) => {
                let other = files[j].file.display().to_string();
                files[i].refuse(
                    *pos,
                    format!("duplicate supervisor name `{name}`: already defined in {other}"),
                );
            }
            None => {
                first.insert(name.clone(), i);
            }
        }
    }

    // Parents must exist and be valid; repeat until nothing changes, so a supervisor whose
    // parent was just refused is refused too.
    let name_pos = |i: usize| names[i].as_ref().map_or(Pos::START, |(_, p)| *p);
    loop {
        let valid: BTreeSet<String> = valid_names(&files);
        let mut changed = false;
        for i in 0..files.len() {
            let Some(parent) = files[i].config.as_ref().and_then(|c| c.parent.clone()) else {
                continue;
            };
            if parent == ROOT_SUPERVISOR || valid.contains(&parent) {
                continue;
            }
            let pos = parent_pos[i].unwrap_or_else(|| name_pos(i));
            let msg = if first.contains_key(&parent) {
                format!("parent supervisor `{parent}` is invalid")
            } else {
                let mut known: Vec<&str> = valid.iter().map(String::as_str).collect();
                known.push(ROOT_SUPERVISOR);
                with_suggestion(
                    format!("unknown parent supervisor `{parent}`"),
                    &parent,
                    &known,
                )
            };
            files[i].refuse(pos, msg);
            changed = true;
        }
        if changed {
            continue;
        }
        // Every remaining chain ends at root or loops: refuse the supervisors on loops.
        let by_name: HashMap<String, usize> = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.config.as_ref().map(|c| (c.name.clone(), i)))
            .collect();
        let mut on_cycle: Vec<(usize, String)> = Vec::new();
        for start in 0..files.len() {
            let mut path = vec![start];
            let mut at = start;
            while let Some(parent) = files[at].config.as_ref().and_then(|c| c.parent.as_ref()) {
                let Some(&next) = by_name.get(parent) else {
                    break;
                };
                if next == start {
                    let mut cycle: Vec<&str> =
                        path.iter().filter_map(|&k| sup_name(&files[k])).collect();
                    cycle.push(sup_name(&files[start]).unwrap_or_default());
                    on_cycle.push((
                        start,
                        format!("supervisor parent cycle: {}", cycle.join(" -> ")),
                    ));
                    break;
                }
                if path.contains(&next) {
                    break;
                }
                path.push(next);
                at = next;
            }
        }
        if on_cycle.is_empty() {
            break;
        }
        for (i, msg) in on_cycle {
            let pos = parent_pos[i].unwrap_or_else(|| name_pos(i));
            files[i].refuse(pos, msg);
        }
    }

    let valid = valid_names(&files);
    let invalid: BTreeSet<String> = names
        .iter()
        .zip(&files)
        .filter(|(_, f)| f.config.is_none())
        .filter_map(|(n, _)| n.as_ref().map(|(n, _)| n.clone()))
        .filter(|n| !valid.contains(n))
        .collect();
    let sup_files: BTreeMap<String, PathBuf> = names
        .iter()
        .zip(&files)
        .filter_map(|(n, f)| n.as_ref().map(|(n, _)| (n.clone(), f.file.clone())))
        .rev()
        .collect();

    // Tree order: root (from a file or built in), then depth-first, children in file order.
    let root = files
        .iter()
        .filter_map(|f| f.config.clone())
        .find(|c| c.name == ROOT_SUPERVISOR)
        .unwrap_or_else(SupervisorConfig::builtin_root);
    let mut children: BTreeMap<&str, Vec<&SupervisorConfig>> = BTreeMap::new();
    for c in files.iter().filter_map(|f| f.config.as_ref()) {
        if let Some(parent) = &c.parent {
            children.entry(parent.as_str()).or_default().push(c);
        }
    }
    let mut ordered = Vec::new();
    let mut stack = vec![&root];
    while let Some(c) = stack.pop() {
        ordered.push(c.clone());
        if let Some(kids) = children.get(c.name.as_str()) {
            stack.extend(kids.iter().rev());
        }
    }
    (
        Supervisors { files, ordered },
        SupervisorNames {
            invalid,
            files: sup_files,
        },
    )
}

/// The name of a valid supervisor file.
fn sup_name(f: &FileState<SupervisorConfig>) -> Option<&str> {
    f.config.as_ref().map(|c| c.name.as_str())
}

/// Names of the valid supervisors.
fn valid_names(files: &[FileState<SupervisorConfig>]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| f.config.as_ref().map(|c| c.name.clone()))
        .collect()
}

/// Appends "; did you mean `x`?" when a candidate is close.
fn with_suggestion(message: String, word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates) {
        Some(s) => format!("{message}; did you mean `{s}`?"),
        None => message,
    }
}

/// The result of the service checks.
#[derive(Debug)]
struct Services {
    files: Vec<FileState<ServiceConfig>>,
    /// The readable name of each file.
    names: Vec<Option<String>>,
    /// The supervisor each file names (default root), when readable.
    supervisors: Vec<Option<String>>,
}

/// Duplicates, name clashes with supervisors, supervisor references, the main service,
/// dependency references and cycles.
fn check_services(
    entries: Vec<ServiceEntry>,
    sups: &Supervisors,
    sup_names: &SupervisorNames,
) -> Services {
    let mut files: Vec<FileState<ServiceConfig>> = Vec::new();
    let mut outcomes = Vec::new();
    for e in entries {
        let ServiceOutcome {
            config,
            name,
            supervisor,
            main,
            deps,
            diags,
        } = e.outcome;
        files.push(FileState::new(e.file, config, diags));
        outcomes.push((name, supervisor, main, deps));
    }
    let valid_sups: BTreeSet<&str> = sups.ordered.iter().map(|s| s.name.as_str()).collect();

    // Duplicates, over every file whose name is readable: the first file keeps the name.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, (name, ..)) in outcomes.iter().enumerate() {
        let Some((name, pos)) = name else { continue };
        match first.get(name.as_str()) {
            Some(&j) => {
                let other = files[j].file.display().to_string();
                files[i].refuse(
                    *pos,
                    format!("duplicate service name `{name}`: already defined in {other}"),
                );
            }
            None => {
                first.insert(name, i);
            }
        }
    }

    for (i, (name, supervisor, ..)) in outcomes.iter().enumerate() {
        if files[i].config.is_none() {
            continue;
        }
        let name_pos = name.as_ref().map_or(Pos::START, |(_, p)| *p);
        // Services and supervisors share the cgroup tree, so they cannot share names.
        if let Some((name, _)) = name
            && (valid_sups.contains(name.as_str()) || sup_names.files.contains_key(name))
        {
            let msg = match sup_names.files.get(name) {
                Some(f) => format!(
                    "name `{name}` is already used by a supervisor (defined in {})",
                    f.display()
                ),
                None => {
                    format!("name `{name}` is already used by the built-in root supervisor")
                }
            };
            files[i].refuse(name_pos, msg);
            continue;
        }
        // The supervisor must exist and be valid.
        if let Some((sup, pos)) = supervisor
            && !valid_sups.contains(sup.as_str())
        {
            let pos = pos.unwrap_or(name_pos);
            let msg = if sup_names.invalid.contains(sup) {
                format!("supervisor `{sup}` is invalid")
            } else {
                let known: Vec<&str> = valid_sups.iter().copied().collect();
                with_suggestion(format!("unknown supervisor `{sup}`"), sup, &known)
            };
            files[i].refuse(pos, msg);
        }
    }

    // At most one main service: the first one in file order keeps the role.
    let mut main_owner: Option<usize> = None;
    for (i, (_, _, main, _)) in outcomes.iter().enumerate() {
        let Some(pos) = main.filter(|_| files[i].config.is_some()) else {
            continue;
        };
        match main_owner {
            Some(j) => {
                let owner = files[j]
                    .config
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                let other = files[j].file.display().to_string();
                let msg = format!(
                    "only one service can be the main service: `{owner}` ({other}) already is"
                );
                files[i].refuse(pos, msg);
            }
            None => main_owner = Some(i),
        }
    }

    // References by name: every file with a readable name (or its stem) is known.
    let names: Vec<Option<String>> = outcomes
        .iter()
        .map(|(n, ..)| n.as_ref().map(|(n, _)| n.clone()))
        .collect();
    let known: BTreeSet<String> = names
        .iter()
        .zip(&files)
        .map(|(n, f)| n.clone().unwrap_or_else(|| stem(&f.file)))
        .collect();
    let known_list: Vec<&str> = known.iter().map(String::as_str).collect();
    for (i, (.., deps)) in outcomes.iter().enumerate() {
        if files[i].config.is_none() {
            continue;
        }
        for dep in deps {
            if known.contains(&dep.name) {
                continue;
            }
            let dep_name = &dep.name;
            let (severity, base) = match dep.kind {
                DepKind::Requires => (
                    Severity::Error,
                    format!("requires unknown service `{dep_name}`"),
                ),
                DepKind::Wants => (
                    Severity::Warning,
                    format!("wants unknown service `{dep_name}`"),
                ),
                DepKind::After => (
                    Severity::Warning,
                    format!("ordered after unknown service `{dep_name}`"),
                ),
                DepKind::Before => (
                    Severity::Warning,
                    format!("ordered before unknown service `{dep_name}`"),
                ),
            };
            let msg = if sup_names.files.contains_key(dep_name) || dep_name == ROOT_SUPERVISOR {
                format!("{base} (`{dep_name}` is a supervisor)")
            } else {
                with_suggestion(base, dep_name, &known_list)
            };
            files[i].report(dep.pos, severity, msg);
        }
    }

    // Dependency cycles over the services still valid.
    let index: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.config.as_ref().map(|c| (c.name.as_str(), i)))
        .collect();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
    for (i, (.., deps)) in outcomes.iter().enumerate() {
        if files[i].config.is_none() {
            continue;
        }
        for dep in deps {
            let Some(&j) = index.get(dep.name.as_str()) else {
                continue;
            };
            match dep.kind {
                DepKind::Before => adj[j].push(i),
                _ => adj[i].push(j),
            }
        }
    }
    for list in &mut adj {
        list.sort_unstable();
        list.dedup();
    }
    let mut refusals = Vec::new();
    for component in strongly_connected(&adj) {
        let looped = component.len() > 1 || component.iter().any(|&v| adj[v].contains(&v));
        if !looped {
            continue;
        }
        let members: BTreeSet<usize> = component.iter().copied().collect();
        for &v in &members {
            let Some(cycle) = shortest_cycle(&adj, &members, v) else {
                continue;
            };
            let names_on: Vec<&str> = cycle
                .iter()
                .filter_map(|&k| files[k].config.as_ref().map(|c| c.name.as_str()))
                .collect();
            let message = format!("dependency cycle: {}", names_on.join(" -> "));
            // Point at this service's own reference to the next one on the cycle, if it has one.
            let next_name = names_on.get(1).copied().unwrap_or_default();
            let deps = &outcomes[v].3;
            let pos = deps
                .iter()
                .find(|d| d.kind != DepKind::Before && d.name == next_name)
                .map(|d| d.pos)
                .or_else(|| outcomes[v].0.as_ref().map(|(_, p)| *p))
                .unwrap_or(Pos::START);
            refusals.push((v, pos, message));
        }
    }
    for (v, pos, message) in refusals {
        files[v].refuse(pos, message);
    }

    let supervisors = outcomes
        .iter()
        .map(|(_, s, ..)| s.as_ref().map(|(s, _)| s.clone()))
        .collect();
    Services {
        files,
        names,
        supervisors,
    }
}

/// Tarjan's strongly connected components, without recursion (a long chain of services must
/// not exhaust the stack).
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(start, 0)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = adj[v].get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out.sort();
    out
}

/// The shortest cycle through `start` inside `members`, as `start, …, start` (breadth-first,
/// neighbours in file order, so the answer is deterministic).
fn shortest_cycle(
    adj: &[Vec<usize>],
    members: &BTreeSet<usize>,
    start: usize,
) -> Option<Vec<usize>> {
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for &w in &adj[u] {
            if !members.contains(&w) {
                continue;
            }
            if w == start {
                let mut middle = Vec::new();
                let mut at = u;
                while at != start {
                    middle.push(at);
                    at = *came_from.get(&at)?;
                }
                middle.reverse();
                let mut path = vec![start];
                path.extend(middle);
                path.push(start);
                return Some(path);
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = came_from.entry(w) {
                slot.insert(u);
                queue.push_back(w);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_sources;

    /// A service file body.
    fn svc(name: &str, extra: &str) -> String {
        format!("[service]\nname = \"{name}\"\nexec = [\"/bin/{name}\"]\n{extra}")
    }

    /// A supervisor file body.
    fn sup(name: &str, extra: &str) -> String {
        format!("[supervisor]\nname = \"{name}\"\n{extra}")
    }

    /// Loads `services/NAME.toml` and `supervisors/NAME.toml` files from memory.
    fn load(services: &[(&str, String)], supervisors: &[(&str, String)]) -> Config {
        let files = |dir: &str, list: &[(&str, String)]| {
            list.iter()
                .map(|(n, t)| {
                    (
                        PathBuf::from(format!("{dir}/{n}.toml")),
                        t.clone().into_bytes(),
                    )
                })
                .collect()
        };
        load_sources(
            files("services", services),
            files("supervisors", supervisors),
        )
    }

    fn rendered(c: &Config) -> String {
        c.diagnostics.iter().map(|d| format!("{d}\n")).collect()
    }

    fn valid(c: &Config) -> Vec<&str> {
        c.services.iter().map(|s| s.name.as_str()).collect()
    }

    fn invalid(c: &Config) -> Vec<String> {
        c.invalid
            .iter()
            .map(|i| format!("{} ({}): {}", i.name, i.file.display(), i.reason))
            .collect()
    }

    fn tree(c: &Config) -> Vec<String> {
        c.supervisors
            .iter()
            .map(|s| format!("{}<{}", s.name, s.parent.as_deref().unwrap_or("-")))
            .collect()
    }

    #[test]
    fn no_files_give_only_the_builtin_root() {
        let c = load(&[], &[]);
        assert!(c.services.is_empty() && c.invalid.is_empty() && c.diagnostics.is_empty());
        assert_eq!(c.supervisors, vec![SupervisorConfig::builtin_root()]);
    }

    #[test]
    fn duplicate_service_names_refuse_the_second_file_and_name_the_first() {
        let c = load(
            &[
                ("a", svc("a", "")),
                ("b", svc("a", "")),
                ("c", svc("c", "")),
            ],
            &[],
        );
        assert_eq!(valid(&c), ["a", "c"]);
        assert_eq!(
            rendered(&c),
            "services/b.toml:2:8: warning: name `a` does not match the file name `b.toml`\n\
             services/b.toml:2:8: error: duplicate service name `a`: already defined in services/a.toml\n"
        );
        assert_eq!(
            invalid(&c),
            [
                "a (services/b.toml): services/b.toml:2:8: duplicate service name `a`: already defined in services/a.toml"
            ]
        );
    }

    #[test]
    fn a_duplicate_of_an_invalid_file_is_still_a_duplicate() {
        let c = load(&[("a", svc("a", "bad = 1\n")), ("b", svc("a", ""))], &[]);
        assert!(c.services.is_empty());
        assert_eq!(c.invalid.len(), 2);
        assert!(c.invalid[0].reason.contains("unknown key `bad`"));
        assert!(c.invalid[1].reason.contains("duplicate service name `a`"));
    }

    #[test]
    fn duplicate_supervisors_refuse_the_second_file() {
        let c = load(
            &[],
            &[
                ("desk", sup("desk", "")),
                ("desk2", sup("desk", "strategy = \"one-for-all\"\n")),
            ],
        );
        assert_eq!(tree(&c), ["root<-", "desk<root"]);
        assert_eq!(
            c.supervisor("desk").map(|s| s.strategy),
            Some(crate::Strategy::OneForOne)
        );
        assert!(rendered(&c).contains(
            "supervisors/desk2.toml:2:8: error: duplicate supervisor name `desk`: already defined in supervisors/desk.toml"
        ));
    }

    #[test]
    fn supervisors_come_root_first_then_parents_before_children_in_file_order() {
        let c = load(
            &[],
            &[
                ("a-child", sup("a-child", "parent = \"z-parent\"\n")),
                ("b", sup("b", "")),
                (
                    "c-grandchild",
                    sup("c-grandchild", "parent = \"a-child\"\n"),
                ),
                ("d-child", sup("d-child", "parent = \"z-parent\"\n")),
                ("z-parent", sup("z-parent", "")),
            ],
        );
        assert_eq!(c.diagnostics, []);
        assert_eq!(
            tree(&c),
            [
                "root<-",
                "b<root",
                "z-parent<root",
                "a-child<z-parent",
                "c-grandchild<a-child",
                "d-child<z-parent"
            ]
        );
    }

    #[test]
    fn a_root_file_overrides_the_builtin_root() {
        let root = "[supervisor]\nname = \"root\"\nstrategy = \"one-for-all\"\n[restart]\nmax-restarts = 2\n";
        let c = load(&[], &[("desk", sup("desk", "")), ("root", root.to_owned())]);
        assert_eq!(tree(&c), ["root<-", "desk<root"]);
        let r = &c.supervisors[0];
        assert_eq!(
            (r.strategy, r.max_restarts),
            (crate::Strategy::OneForAll, 2)
        );
        assert_eq!(r.file.as_deref(), Some(Path::new("supervisors/root.toml")));
    }

    #[test]
    fn a_root_file_with_a_parent_is_refused_and_the_builtin_root_stays() {
        let c = load(
            &[("a", svc("a", ""))],
            &[("root", sup("root", "parent = \"x\"\n"))],
        );
        assert_eq!(c.supervisors, vec![SupervisorConfig::builtin_root()]);
        assert_eq!(valid(&c), ["a"]);
        assert_eq!(
            rendered(&c),
            "supervisors/root.toml:3:10: error: the root supervisor cannot have a parent: remove `supervisor.parent`\n"
        );
    }

    #[test]
    fn unknown_or_invalid_parents_and_parent_cycles_refuse_supervisors() {
        let c = load(
            &[],
            &[
                ("early-boot", sup("early-boot", "")),
                ("hanger", sup("hanger", "parent = \"loop1\"\n")),
                ("loop1", sup("loop1", "parent = \"loop2\"\n")),
                ("loop2", sup("loop2", "parent = \"loop1\"\n")),
                ("orphan", sup("orphan", "parent = \"early-bot\"\n")),
                ("self", sup("self", "parent = \"self\"\n")),
                ("under-orphan", sup("under-orphan", "parent = \"orphan\"\n")),
            ],
        );
        assert_eq!(tree(&c), ["root<-", "early-boot<root"]);
        assert_eq!(
            rendered(&c),
            "supervisors/hanger.toml:3:10: error: parent supervisor `loop1` is invalid\n\
             supervisors/loop1.toml:3:10: error: supervisor parent cycle: loop1 -> loop2 -> loop1\n\
             supervisors/loop2.toml:3:10: error: supervisor parent cycle: loop2 -> loop1 -> loop2\n\
             supervisors/orphan.toml:3:10: error: unknown parent supervisor `early-bot`; did you mean `early-boot`?\n\
             supervisors/self.toml:3:10: error: supervisor parent cycle: self -> self\n\
             supervisors/under-orphan.toml:3:10: error: parent supervisor `orphan` is invalid\n"
        );
    }

    #[test]
    fn services_need_a_valid_supervisor() {
        let c = load(
            &[
                ("a", svc("a", "supervisor = \"desk\"\n")),
                ("b", svc("b", "supervisor = \"dekstop\"\n")),
                ("c", svc("c", "supervisor = \"broken\"\n")),
                ("d", svc("d", "supervisor = \"root\"\n")),
            ],
            &[
                ("broken", sup("broken", "strategy = 1\n")),
                ("desktop", sup("desktop", "")),
            ],
        );
        assert_eq!(valid(&c), ["d"]);
        assert_eq!(
            invalid(&c),
            [
                "a (services/a.toml): services/a.toml:4:14: unknown supervisor `desk`; did you mean `desktop`?",
                "b (services/b.toml): services/b.toml:4:14: unknown supervisor `dekstop`; did you mean `desktop`?",
                "c (services/c.toml): services/c.toml:4:14: supervisor `broken` is invalid",
            ]
        );
        assert_eq!(c.invalid[0].supervisor.as_deref(), Some("desk"));
    }

    #[test]
    fn a_service_cannot_share_a_name_with_a_supervisor() {
        let c = load(
            &[("desk", svc("desk", "")), ("root", svc("root", ""))],
            &[("desk", sup("desk", ""))],
        );
        assert!(c.services.is_empty());
        assert_eq!(
            invalid(&c),
            [
                "desk (services/desk.toml): services/desk.toml:2:8: name `desk` is already used by a supervisor (defined in supervisors/desk.toml)",
                "root (services/root.toml): services/root.toml:2:8: name `root` is already used by the built-in root supervisor",
            ]
        );
    }

    #[test]
    fn only_the_first_main_service_keeps_the_role() {
        let main = "main = true\n";
        let c = load(
            &[
                ("a", svc("a", "main = true\nbad = 1\n")),
                ("b", svc("b", main)),
                ("c", svc("c", main)),
                ("d", svc("d", "main = false\n")),
            ],
            &[],
        );
        assert_eq!(valid(&c), ["b", "d"]);
        assert_eq!(
            invalid(&c)[1],
            "c (services/c.toml): services/c.toml:4:8: only one service can be the main service: `b` (services/b.toml) already is"
        );
    }

    #[test]
    fn requires_of_an_unknown_service_is_an_error_but_the_service_stays_valid() {
        let deps = "[dependencies]\nrequires = [\"nginxx\", \"desk\"]\nwants = [\"nope\"]\nafter = [\"nginx\", \"x\"]\nbefore = [\"y\"]\n";
        let c = load(
            &[("a", svc("a", deps)), ("nginx", svc("nginx", ""))],
            &[("desk", sup("desk", ""))],
        );
        assert_eq!(valid(&c), ["a", "nginx"]);
        assert!(c.invalid.is_empty());
        assert_eq!(
            rendered(&c),
            "services/a.toml:5:13: error: requires unknown service `nginxx`; did you mean `nginx`?\n\
             services/a.toml:5:23: error: requires unknown service `desk` (`desk` is a supervisor)\n\
             services/a.toml:6:10: warning: wants unknown service `nope`\n\
             services/a.toml:7:19: warning: ordered after unknown service `x`\n\
             services/a.toml:8:11: warning: ordered before unknown service `y`\n"
        );
        assert!(c.has_errors());
    }

    #[test]
    fn references_to_invalid_services_are_not_unknown() {
        // `broken` cannot be parsed at all; its file stem still names it.
        let c = load(
            &[
                (
                    "a",
                    svc("a", "[dependencies]\nrequires = [\"broken\", \"bad\"]\n"),
                ),
                ("bad", svc("bad", "x = 1\n")),
                ("broken", "[service".to_owned()),
            ],
            &[],
        );
        assert_eq!(valid(&c), ["a"]);
        let names: Vec<_> = c
            .invalid
            .iter()
            .map(|i| (i.name.as_str(), i.supervisor.as_deref()))
            .collect();
        assert_eq!(names, [("bad", Some("root")), ("broken", None)]);
        assert!(
            !rendered(&c).contains("unknown service"),
            "{}",
            rendered(&c)
        );
    }

    #[test]
    fn dependency_cycles_refuse_only_the_services_on_them() {
        let c = load(
            &[
                ("a", svc("a", "[dependencies]\nrequires = [\"b\"]\n")),
                ("b", svc("b", "[dependencies]\nafter = [\"c\"]\n")),
                ("c", svc("c", "[dependencies]\nwants = [\"a\"]\n")),
                ("d", svc("d", "[dependencies]\nrequires = [\"a\"]\n")),
                ("e", svc("e", "[dependencies]\nrequires = [\"e\"]\n")),
                ("f", svc("f", "[dependencies]\nbefore = [\"g\"]\n")),
                ("g", svc("g", "[dependencies]\nbefore = [\"f\"]\n")),
                (
                    "h",
                    svc(
                        "h",
                        "[dependencies]\nrequires = [\"i\"]\nbefore = [\"i\"]\n",
                    ),
                ),
                ("i", svc("i", "")),
                ("j", svc("j", "[dependencies]\nafter = [\"d\"]\n")),
            ],
            &[],
        );
        assert_eq!(valid(&c), ["d", "j"]);
        assert_eq!(
            invalid(&c),
            [
                "a (services/a.toml): services/a.toml:5:13: dependency cycle: a -> b -> c -> a",
                "b (services/b.toml): services/b.toml:5:10: dependency cycle: b -> c -> a -> b",
                "c (services/c.toml): services/c.toml:5:10: dependency cycle: c -> a -> b -> c",
                "e (services/e.toml): services/e.toml:5:13: dependency cycle: e -> e",
                "f (services/f.toml): services/f.toml:2:8: dependency cycle: f -> g -> f",
                "g (services/g.toml): services/g.toml:2:8: dependency cycle: g -> f -> g",
                "h (services/h.toml): services/h.toml:5:13: dependency cycle: h -> i -> h",
                // On h's cycle only through h's `before`: the position is i's own name.
                "i (services/i.toml): services/i.toml:2:8: dependency cycle: i -> h -> i",
            ]
        );
    }

    #[test]
    fn a_cycle_through_two_loops_names_the_shortest_path_for_each_service() {
        // a <-> b and b <-> c share b.
        let c = load(
            &[
                ("a", svc("a", "[dependencies]\nafter = [\"b\"]\n")),
                ("b", svc("b", "[dependencies]\nafter = [\"a\", \"c\"]\n")),
                ("c", svc("c", "[dependencies]\nafter = [\"b\"]\n")),
            ],
            &[],
        );
        let reasons: Vec<_> = c
            .invalid
            .iter()
            .map(|i| i.reason.rsplit(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(reasons, ["a -> b -> a", "b -> a -> b", "c -> b -> c"]);
    }

    #[test]
    fn one_bad_file_never_affects_the_others() {
        let c = load(
            &[
                ("a", svc("a", "")),
                ("b", "\u{0}\u{1}garbage[[[".to_owned()),
                ("c", svc("c", "[restart]\ndelay = \"soon\"\n")),
                ("d", svc("d", "[dependencies]\nafter = [\"a\"]\n")),
            ],
            &[],
        );
        assert_eq!(valid(&c), ["a", "d"]);
        assert_eq!(
            c.invalid
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn diagnostics_come_supervisors_first_then_services_each_in_file_order() {
        let c = load(
            &[
                ("a", svc("a", "z = 1\ny = 2\n")),
                ("b", svc("b", "w = 1\n")),
            ],
            &[("s", sup("s", "q = 1\n"))],
        );
        let order: Vec<_> = c
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}", d.file.display(), d.line))
            .collect();
        assert_eq!(
            order,
            [
                "supervisors/s.toml:3",
                "services/a.toml:4",
                "services/a.toml:5",
                "services/b.toml:4"
            ]
        );
    }

    #[test]
    fn invalid_services_keep_their_supervisor_for_display() {
        let c = load(
            &[("a", svc("a", "supervisor = \"desk\"\nbad = 1\n"))],
            &[("desk", sup("desk", ""))],
        );
        assert_eq!(c.invalid[0].supervisor.as_deref(), Some("desk"));
        assert_eq!(
            c.invalid[0].to_string(),
            "service `a` is invalid: services/a.toml:5:1: unknown key `bad` in [service]"
        );
    }

    #[test]
    fn components_group_mutually_reachable_nodes() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let adj = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(
            strongly_connected(&adj),
            vec![vec![0, 1, 2], vec![3], vec![4]]
        );
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let n = 200_000;
        let adj: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![0] })
            .collect();
        let comps = strongly_connected(&adj);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].len(), n);
    }

    #[test]
    fn shortest_cycle_starts_and_ends_at_the_node() {
        // 0 -> 1 -> 2 -> 0 and 0 -> 2
        let adj = vec![vec![1, 2], vec![2], vec![0]];
        let members: BTreeSet<usize> = [0, 1, 2].into();
        assert_eq!(shortest_cycle(&adj, &members, 0), Some(vec![0, 2, 0]));
        assert_eq!(shortest_cycle(&adj, &members, 1), Some(vec![1, 2, 0, 1]));
        let self_loop = vec![vec![0]];
        assert_eq!(shortest_cycle(&self_loop, &[0].into(), 0), Some(vec![0, 0]));
    }
}
