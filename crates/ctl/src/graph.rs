//! `dynamodctl graph`: the dependency graph, from the running svmgr or from a configuration
//! directory, as Graphviz DOT or JSON.
//!
//! An edge goes from a service to what it depends on. `before = ["x"]` in a file becomes an
//! `after` edge from `x`. When a pair is linked more than once, only the strongest kind is kept
//! (`requires` over `wants` over `after`), because the weaker one adds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use dynamod_config::Config;
use dynamod_proto::{ServiceDetail, ServiceState};
use serde::Serialize;

/// How one service depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// Start after it is ready; blocked if it fails.
    Requires,
    /// Start after it is ready or has failed.
    Wants,
    /// Ordering only.
    After,
}

impl EdgeKind {
    /// The word used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requires => "requires",
            Self::Wants => "wants",
            Self::After => "after",
        }
    }
}

/// A service in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Service name.
    pub name: String,
    /// Its supervisor, `null` for a name nothing defines.
    pub supervisor: Option<String>,
    /// `simple`, `oneshot`, `forking`, `notify`; `null` when invalid or missing.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Its state when the graph comes from svmgr; from a directory only `invalid` is known.
    pub state: Option<&'static str>,
    /// Named as a dependency but defined nowhere.
    pub missing: bool,
}

/// `from` depends on `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// The dependent service.
    pub from: String,
    /// The service it depends on.
    pub to: String,
    /// How.
    pub kind: EdgeKind,
}

/// The whole graph; nodes sorted by name, edges by (from, to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// `svmgr` or `config`.
    pub source: &'static str,
    /// The directory read, when the source is `config`.
    pub config_dir: Option<String>,
    /// Services.
    pub nodes: Vec<Node>,
    /// Dependencies.
    pub edges: Vec<Edge>,
}

/// Collects edges, keeping the strongest kind per pair.
#[derive(Default)]
struct Edges(BTreeMap<(String, String), EdgeKind>);

impl Edges {
    fn add(&mut self, from: &str, to: &str, kind: EdgeKind) {
        if from == to {
            return;
        }
        self.0
            .entry((from.to_owned(), to.to_owned()))
            .and_modify(|k| *k = (*k).min(kind))
            .or_insert(kind);
    }

    fn finish(self, nodes: &mut BTreeMap<String, Node>) -> Vec<Edge> {
        for (from, to) in self.0.keys() {
            for name in [from, to] {
                nodes.entry(name.clone()).or_insert_with(|| Node {
                    name: name.clone(),
                    supervisor: None,
                    kind: None,
                    state: None,
                    missing: true,
                });
            }
        }
        self.0
            .into_iter()
            .map(|((from, to), kind)| Edge { from, to, kind })
            .collect()
    }
}

/// The graph of a loaded configuration directory.
pub fn from_config(config: &Config, dir: &str) -> Graph {
    let mut nodes = BTreeMap::new();
    let mut edges = Edges::default();
    for s in &config.services {
        nodes.insert(
            s.name.clone(),
            Node {
                name: s.name.clone(),
                supervisor: Some(s.supervisor.clone()),
                kind: Some(s.kind.as_str().to_owned()),
                state: None,
                missing: false,
            },
        );
        for d in &s.deps.requires {
            edges.add(&s.name, d, EdgeKind::Requires);
        }
        for d in &s.deps.wants {
            edges.add(&s.name, d, EdgeKind::Wants);
        }
        for d in &s.deps.after {
            edges.add(&s.name, d, EdgeKind::After);
        }
        for d in &s.deps.before {
            edges.add(d, &s.name, EdgeKind::After);
        }
    }
    for inv in &config.invalid {
        nodes.entry(inv.name.clone()).or_insert_with(|| Node {
            name: inv.name.clone(),
            supervisor: inv.supervisor.clone(),
            kind: None,
            state: Some(ServiceState::Invalid.as_str()),
            missing: false,
        });
    }
    let edges = edges.finish(&mut nodes);
    Graph {
        source: "config",
        config_dir: Some(dir.to_owned()),
        nodes: nodes.into_values().collect(),
        edges,
    }
}

/// The graph as the running svmgr sees it (from `Status` of every service).
pub fn from_details(details: &[ServiceDetail]) -> Graph {
    let mut nodes = BTreeMap::new();
    let mut edges = Edges::default();
    for d in details {
        let s = &d.summary;
        nodes.insert(
            s.name.clone(),
            Node {
                name: s.name.clone(),
                supervisor: Some(s.supervisor.clone()),
                kind: (!s.kind.is_empty()).then(|| s.kind.clone()),
                state: Some(s.state.as_str()),
                missing: false,
            },
        );
        for (names, kind) in [
            (&d.requires, EdgeKind::Requires),
            (&d.wants, EdgeKind::Wants),
            (&d.after, EdgeKind::After),
        ] {
            for n in names {
                edges.add(&s.name, n, kind);
            }
        }
    }
    let edges = edges.finish(&mut nodes);
    Graph {
        source: "svmgr",
        config_dir: None,
        nodes: nodes.into_values().collect(),
        edges,
    }
}

/// Text for inside a quoted DOT string: `"` and `\` escaped, control characters dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A DOT identifier: always quoted.
fn id(s: &str) -> String {
    format!("\"{}\"", esc(s))
}

/// A two-line label (`\n` is Graphviz's centred line break).
fn label(first: &str, second: &str) -> String {
    format!("\"{}\\n{}\"", esc(first), esc(second))
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "running" | "done" => "darkgreen",
        "failed" | "blocked" | "invalid" => "red3",
        "stopped" => "gray50",
        _ => "darkorange",
    }
}

/// Graphviz DOT: one cluster per supervisor, dependents pointing at their dependencies;
/// `requires` solid, `wants` dashed, `after` dotted; missing services drawn dashed in red.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from("digraph dynamod {\n");
    out.push_str("    rankdir=LR;\n");
    out.push_str("    node [shape=box, style=rounded, fontname=\"sans-serif\"];\n");
    out.push_str("    edge [fontname=\"sans-serif\", fontsize=10];\n");
    let mut by_sup: BTreeMap<Option<&str>, Vec<&Node>> = BTreeMap::new();
    for n in &g.nodes {
        by_sup.entry(n.supervisor.as_deref()).or_default().push(n);
    }
    for (sup, nodes) in &by_sup {
        let indent = if sup.is_some() { "        " } else { "    " };
        if let Some(sup) = sup {
            let _ = writeln!(out, "    subgraph {} {{", id(&format!("cluster_{sup}")));
            let _ = writeln!(out, "        label={};", id(sup));
            out.push_str("        style=dashed;\n        color=gray60;\n");
        }
        for n in nodes {
            let mut attrs = Vec::new();
            if n.missing {
                attrs.push(format!("label={}", label(&n.name, "(missing)")));
                attrs.push("style=\"rounded,dashed\"".to_owned());
                attrs.push("color=red3".to_owned());
            } else if let Some(state) = n.state {
                attrs.push(format!("label={}", label(&n.name, state)));
                attrs.push(format!("color={}", state_colour(state)));
            }
            if attrs.is_empty() {
                let _ = writeln!(out, "{indent}{};", id(&n.name));
            } else {
                let _ = writeln!(out, "{indent}{} [{}];", id(&n.name), attrs.join(", "));
            }
        }
        if sup.is_some() {
            out.push_str("    }\n");
        }
    }
    for e in &g.edges {
        let style = match e.kind {
            EdgeKind::Requires => "solid",
            EdgeKind::Wants => "dashed",
            EdgeKind::After => "dotted",
        };
        let _ = writeln!(
            out,
            "    {} -> {} [label={}, style={style}];",
            id(&e.from),
            id(&e.to),
            id(e.kind.as_str())
        );
    }
    out.push_str("}\n");
    out
}

/// The names each service depends on (any kind), for the critical chain.
pub fn dependencies(g: &Graph) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &g.edges {
        deps.entry(e.from.as_str())
            .or_default()
            .insert(e.to.as_str());
    }
    deps
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use dynamod_proto::ServiceSummary;

    use super::*;

    fn config(files: &[(&str, &str)]) -> Config {
        dynamod_config::load_sources(
            files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
                .collect(),
            vec![],
        )
    }

    #[test]
    fn before_becomes_an_after_edge_and_the_strongest_kind_wins() {
        let c = config(&[
            (
                "a.toml",
                "[service]\nname = \"a\"\nexec = [\"/a\"]\n[dependencies]\nbefore = [\"b\"]\n",
            ),
            (
                "b.toml",
                "[service]\nname = \"b\"\nexec = [\"/b\"]\n[dependencies]\nrequires = [\"c\"]\nafter = [\"c\"]\nwants = [\"a\"]\n",
            ),
            ("c.toml", "[service]\nname = \"c\"\nexec = [\"/c\"]\n"),
        ]);
        let g = from_config(&c, "/etc/dynamod");
        let edges: Vec<(&str, &str, EdgeKind)> = g
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
            .collect();
        assert_eq!(
            edges,
            [("b", "a", EdgeKind::Wants), ("b", "c", EdgeKind::Requires)]
        );
        assert_eq!(g.nodes.len(), 3);
        assert!(g.nodes.iter().all(|n| !n.missing));
    }

    /// A plain running-or-not service with these hard dependencies (also used by analyze).
    pub(crate) fn detail(name: &str, state: ServiceState, requires: &[&str]) -> ServiceDetail {
        ServiceDetail {
            summary: ServiceSummary {
                name: name.into(),
                state,
                pid: None,
                supervisor: "root".into(),
                kind: "simple".into(),
                reason: None,
            },
            file: None,
            exec: vec![],
            restart_policy: "permanent".into(),
            readiness: "none".into(),
            since_ms: None,
            since_unix_ms: None,
            restarts: 0,
            next_restart_ms: None,
            last_exit: None,
            cgroup: None,
            usage: None,
            recent_logs: vec![],
            log_dropped: 0,
            requires: requires.iter().map(|s| (*s).to_owned()).collect(),
            wants: vec![],
            after: vec![],
            spawned_ms: None,
            ready_ms: None,
        }
    }

    #[test]
    fn dot_has_clusters_states_and_styled_edges() {
        let g = from_details(&[
            detail("web", ServiceState::Blocked, &["db"]),
            detail("net", ServiceState::Running, &[]),
        ]);
        let want = r#"digraph dynamod {
    rankdir=LR;
    node [shape=box, style=rounded, fontname="sans-serif"];
    edge [fontname="sans-serif", fontsize=10];
    "db" [label="db\n(missing)", style="rounded,dashed", color=red3];
    subgraph "cluster_root" {
        label="root";
        style=dashed;
        color=gray60;
        "net" [label="net\nrunning", color=darkgreen];
        "web" [label="web\nblocked", color=red3];
    }
    "web" -> "db" [label="requires", style=solid];
}
"#;
        assert_eq!(to_dot(&g), want);
    }

    #[test]
    fn dot_identifiers_are_escaped() {
        assert_eq!(id("a\"b\\c\u{1b}"), r#""a\"b\\c""#);
    }

    #[test]
    fn json_lists_nodes_and_edges() {
        let g = from_details(&[detail("web", ServiceState::Running, &["db"])]);
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["source"], "svmgr");
        assert_eq!(v["nodes"][0]["name"], "db");
        assert_eq!(v["nodes"][0]["missing"], true);
        assert_eq!(v["nodes"][1]["type"], "simple");
        assert_eq!(
            v["edges"][0],
            serde_json::json!({"from": "web", "to": "db", "kind": "requires"})
        );
    }
}
