//! Reading what the engine reports: container logs (as `docker compose logs` prints them),
//! `docker events`, `docker history` and dynamodctl's JSON. Pure functions, unit-tested.

use anyhow::{Context, Result};

/// The log text without ANSI colour sequences, Compose's `service-1  | ` prefixes and carriage
/// returns (a `tty: true` container writes CRLF), one entry per line.
pub fn clean_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let line = strip_ansi(line);
            let line = match line.split_once(" | ") {
                Some((prefix, rest)) if is_compose_prefix(prefix) => rest.to_owned(),
                _ => line,
            };
            line.trim_end_matches('\r').trim_end().to_owned()
        })
        .collect()
}

/// `dynamod-1  ` (Compose v2) or `docker_dynamod_1  ` (v1): a name without spaces, then padding.
fn is_compose_prefix(prefix: &str) -> bool {
    let name = prefix.trim_end();
    !name.is_empty() && !name.contains(char::is_whitespace)
}

/// Removes `ESC [ … letter` sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Index of the first line containing `needle`.
pub fn find(lines: &[String], needle: &str) -> Option<usize> {
    lines.iter().position(|l| l.contains(needle))
}

/// Checks that the boot log has the seed's shape and ends in `summary`: the definitions were
/// loaded, the summary line is there, and no service start-up line follows it.
pub fn check_boot_log(lines: &[String], services: usize, summary: &str) -> Result<(), String> {
    let loaded = format!("loaded {services} service definition(s)");
    let Some(at_loaded) = find(lines, &loaded) else {
        return Err(format!("no `{loaded}` line"));
    };
    let Some(at_summary) = find(lines, summary) else {
        return Err(format!("no `{summary}` line"));
    };
    if at_summary < at_loaded {
        return Err(format!("`{summary}` comes before `{loaded}`"));
    }
    if let Some(late) = lines[at_summary + 1..]
        .iter()
        .find(|l| l.contains("oneshot '") && l.contains("completed"))
    {
        return Err(format!("a start-up line follows the summary: {late}"));
    }
    Ok(())
}

/// The services named by `stopping 'NAME'` lines, in log order.
pub fn stop_order(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("stopping '")? + "stopping '".len()..];
            Some(rest[..rest.find('\'')?].to_owned())
        })
        .collect()
}

/// Dependency pairs `(later, earlier)`: `later` starts after `earlier`, so it must stop first.
/// Returns every pair the stop order breaks (both stopped, `earlier` first).
pub fn reverse_order_violations(stops: &[String], deps: &[(String, String)]) -> Vec<String> {
    let at = |name: &str| stops.iter().position(|s| s == name);
    deps.iter()
        .filter_map(|(later, earlier)| match (at(later), at(earlier)) {
            (Some(l), Some(e)) if e < l => Some(format!(
                "'{earlier}' stopped before '{later}', which starts after it"
            )),
            _ => None,
        })
        .collect()
}

/// The names of the direct children of the node whose line starts with `header` in
/// `dynamodctl tree` output (`├─ `/`└─ ` branches, `│  ` continuation).
pub fn tree_children(tree: &str, header: &str) -> Vec<String> {
    let depth_and_text = |line: &str| {
        let text = line.trim_start_matches(['│', '├', '└', '─', ' ']);
        (line.chars().count() - text.chars().count(), text.to_owned())
    };
    let nodes: Vec<(usize, String)> = tree.lines().map(depth_and_text).collect();
    let Some(at) = nodes.iter().position(|(_, t)| t.starts_with(header)) else {
        return Vec::new();
    };
    let parent_depth = nodes[at].0;
    let mut child_depth = None;
    let mut children = Vec::new();
    for (depth, text) in &nodes[at + 1..] {
        if *depth <= parent_depth || text.is_empty() {
            break;
        }
        if *child_depth.get_or_insert(*depth) == *depth {
            children.extend(text.split_whitespace().next().map(str::to_owned));
        }
    }
    children
}

/// One service from `dynamodctl status --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    /// Its name.
    pub name: String,
    /// `running`, `done`, `failed`, …
    pub state: String,
    /// Its supervisor.
    pub supervisor: String,
    /// Names it starts after (`requires`, `wants` and `after` together).
    pub starts_after: Vec<String>,
}

/// Parses `dynamodctl list --json` or `status --json` output.
pub fn parse_services(json: &str) -> Result<Vec<ServiceStatus>> {
    let v: serde_json::Value = serde_json::from_str(json).context("parse dynamodctl's JSON")?;
    let list = v["services"]
        .as_array()
        .context("dynamodctl's JSON has no `services` array")?;
    let text = |s: &serde_json::Value| s.as_str().unwrap_or_default().to_owned();
    Ok(list
        .iter()
        .map(|s| {
            let deps = &s["dependencies"];
            let starts_after = ["requires", "wants", "after"]
                .iter()
                .flat_map(|k| deps[*k].as_array().cloned().unwrap_or_default())
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            ServiceStatus {
                name: text(&s["name"]),
                state: text(&s["state"]),
                supervisor: text(&s["supervisor"]),
                starts_after,
            }
        })
        .collect())
}

/// The container events the scenario looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `kill`, `die`, `stop`, …
    pub action: String,
    /// When, in ns since the epoch.
    pub time_nano: u128,
    /// `exitCode` of a `die` event.
    pub exit_code: Option<i32>,
}

/// Parses `docker events --format '{{json .}}'` lines.
pub fn parse_events(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| Event {
            action: v["Action"]
                .as_str()
                .or_else(|| v["status"].as_str())
                .unwrap_or_default()
                .to_owned(),
            time_nano: v["timeNano"].as_u64().map(u128::from).unwrap_or_default(),
            exit_code: v["Actor"]["Attributes"]["exitCode"]
                .as_str()
                .and_then(|c| c.parse().ok()),
        })
        .collect()
}

/// From a container's events: the exit code and how long it took from the engine's stop signal
/// (`kill`) to the container's end (`die`), in ms.
pub fn stop_outcome(events: &[Event]) -> Option<(i32, u128)> {
    let kill = events.iter().find(|e| e.action == "kill")?;
    let die = events
        .iter()
        .find(|e| e.action == "die" && e.time_nano >= kill.time_nano)?;
    Some((die.exit_code?, (die.time_nano - kill.time_nano) / 1_000_000))
}

/// One layer of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Bytes it adds.
    pub size: u64,
    /// The instruction that made it (empty for an imported base).
    pub created_by: String,
}

/// Parses `docker history --human=false --no-trunc --format '{{json .}}'`, base layer first.
pub fn parse_history(text: &str) -> Vec<Layer> {
    let mut layers: Vec<Layer> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| Layer {
            size: v["Size"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v["Size"].as_u64())
                .unwrap_or_default(),
            created_by: v["CreatedBy"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    layers.reverse();
    layers
}

/// Bytes as MB (10^6, as `docker images` counts).
pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        clean_lines(s)
    }

    #[test]
    fn compose_prefixes_colours_and_crlf_are_removed() {
        let text = "dynamod-1  | \u{1b}[32m INFO\u{1b}[0m startup complete: 8 ready, 0 blocked\r\n\
                    dynamod-1  | dynamod-init: version 0.1.0 starting (pid 1)\r\n\
                    plain | line";
        assert_eq!(
            lines(text),
            [
                " INFO startup complete: 8 ready, 0 blocked",
                "dynamod-init: version 0.1.0 starting (pid 1)",
                "line",
            ]
        );
    }

    #[test]
    fn boot_log_must_end_in_the_summary() {
        let good = lines(
            "INFO loaded 8 service definition(s)\n\
             INFO oneshot 'bootmisc' completed (code 0)\n\
             INFO startup complete: 8 ready, 0 blocked\n\
             INFO dynamod-logd connected\n",
        );
        let summary = "startup complete: 8 ready, 0 blocked";
        assert_eq!(check_boot_log(&good, 8, summary), Ok(()));
        assert!(check_boot_log(&good, 9, summary).is_err());
        let late = lines(
            "INFO loaded 8 service definition(s)\n\
             INFO startup complete: 8 ready, 0 blocked\n\
             INFO oneshot 'sysctl' completed (code 0)\n",
        );
        assert!(check_boot_log(&late, 8, summary).is_err());
        let missing = lines("INFO loaded 8 service definition(s)\n");
        assert!(check_boot_log(&missing, 8, summary).is_err());
    }

    #[test]
    fn stop_order_follows_the_log_and_checks_dependencies() {
        let log = lines(
            "INFO stopping 3 service(s) in reverse dependency order\n\
             INFO stopping 'myapp'\n\
             INFO stopping 'agetty-tty1'\n\
             INFO stopping 'syslog'\n",
        );
        let stops = stop_order(&log);
        assert_eq!(stops, ["myapp", "agetty-tty1", "syslog"]);
        let deps = vec![
            ("myapp".to_owned(), "syslog".to_owned()),
            ("myapp".to_owned(), "network".to_owned()),
        ];
        assert!(reverse_order_violations(&stops, &deps).is_empty());
        let wrong = vec!["syslog".to_owned(), "myapp".to_owned()];
        assert_eq!(reverse_order_violations(&wrong, &deps).len(), 1);
    }

    #[test]
    fn tree_children_are_the_direct_branches_of_a_node() {
        let tree = "root [one-for-one]\n\
                    ├─ desktop [one-for-one]\n\
                    ├─ early-boot [one-for-all]\n\
                    │  ├─ bootmisc      done\n\
                    │  └─ sysctl        done\n\
                    ├─ agetty-tty1      running  pid 13\n\
                    └─ syslog           running  pid 19\n";
        assert_eq!(
            tree_children(tree, "root ["),
            ["desktop", "early-boot", "agetty-tty1", "syslog"]
        );
        assert_eq!(tree_children(tree, "early-boot ["), ["bootmisc", "sysctl"]);
        assert!(tree_children(tree, "desktop [").is_empty());
        assert!(tree_children(tree, "nothing [").is_empty());
    }

    #[test]
    fn dynamodctl_json_gives_states_and_dependencies() {
        let json = r#"{"services":[{"name":"myapp","state":"running","supervisor":"root",
            "since_unix_ms":1700000000123,
            "dependencies":{"requires":[],"wants":["x"],"after":["network","syslog"]}},
            {"name":"network","state":"done","supervisor":"early-boot","since_unix_ms":null}]}"#;
        let s = parse_services(json).unwrap();
        assert_eq!(s[0].starts_after, ["x", "network", "syslog"]);
        assert_eq!(s[1].state, "done");
        assert!(s[1].starts_after.is_empty());
        assert!(parse_services("{}").is_err());
    }

    #[test]
    fn stop_outcome_measures_kill_to_die() {
        let text = r#"{"status":"exec_die","Action":"exec_die","timeNano":100}
{"status":"kill","Action":"kill","Actor":{"Attributes":{"signal":"15"}},"timeNano":1000000000}
{"status":"die","Action":"die","Actor":{"Attributes":{"exitCode":"0"}},"timeNano":1085000000}
{"status":"stop","Action":"stop","timeNano":1200000000}"#;
        let events = parse_events(text);
        assert_eq!(events.len(), 4);
        assert_eq!(stop_outcome(&events), Some((0, 85)));
        assert_eq!(stop_outcome(&events[..1]), None);
    }

    #[test]
    fn history_lists_layers_base_first() {
        let text = r#"{"CreatedBy":"ENTRYPOINT [\"/sbin/dynamod-init\"]","Size":"0"}
{"CreatedBy":"COPY /out/ / # buildkit","Size":"3910000"}
{"CreatedBy":"","Size":"1990000"}"#;
        let layers = parse_history(text);
        assert_eq!(layers[0].size, 1_990_000);
        assert_eq!(layers[1].created_by, "COPY /out/ / # buildkit");
        assert_eq!(layers.iter().map(|l| l.size).sum::<u64>(), 5_900_000);
        assert_eq!(mb(5_900_000), "5.90 MB");
    }
}
