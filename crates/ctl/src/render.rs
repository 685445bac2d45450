//! Human output. Every function here is pure: data in, text out, colour only when asked.

use std::fmt::Write as _;

use dynamod_proto::{NodeKind, ServiceDetail, ServiceState, ServiceSummary, SystemState, TreeNode};

use crate::human;

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The order states are counted in footers: the common, good ones first.
const COUNT_ORDER: [ServiceState; 10] = [
    ServiceState::Running,
    ServiceState::Done,
    ServiceState::Starting,
    ServiceState::Waiting,
    ServiceState::Restarting,
    ServiceState::Stopping,
    ServiceState::Stopped,
    ServiceState::Failed,
    ServiceState::Blocked,
    ServiceState::Invalid,
];

/// The colour a state is shown in.
fn state_colour(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Running | ServiceState::Done => GREEN,
        ServiceState::Starting
        | ServiceState::Waiting
        | ServiceState::Restarting
        | ServiceState::Stopping => YELLOW,
        ServiceState::Failed | ServiceState::Blocked | ServiceState::Invalid => RED,
        ServiceState::Stopped => DIM,
    }
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour && !code.is_empty() {
        format!("{code}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// One cell of a table: its text and the colour it is painted in (empty for none).
struct Cell {
    text: String,
    colour: &'static str,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            colour: "",
        }
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded (no trailing spaces).
fn table(rows: &[Vec<Cell>], colour: bool) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| width(&cell.text))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(&paint(&cell.text, cell.colour, colour));
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - width(&cell.text) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `8 services: 5 running, 3 done`.
pub fn summary_line(states: &[ServiceState]) -> String {
    let mut parts = Vec::new();
    for state in COUNT_ORDER {
        let n = states.iter().filter(|&&s| s == state).count();
        if n > 0 {
            parts.push(format!("{n} {}", state.as_str()));
        }
    }
    let total = human::plural(states.len() as u64, "service");
    if parts.is_empty() {
        total
    } else {
        format!("{total}: {}", parts.join(", "))
    }
}

/// `dynamodctl list`: one row per service, sorted by name, and a footer with counts.
pub fn render_list(services: &[ServiceSummary], colour: bool) -> String {
    if services.is_empty() {
        return "0 services\n".to_owned();
    }
    let mut sorted: Vec<&ServiceSummary> = services.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let with_reason = sorted.iter().any(|s| s.reason.is_some());
    let mut header: Vec<Cell> = ["SERVICE", "STATE", "PID", "SUPERVISOR", "TYPE"]
        .map(Cell::plain)
        .into_iter()
        .collect();
    if with_reason {
        header.push(Cell::plain("REASON"));
    }
    let mut rows = vec![header];
    for s in &sorted {
        let mut row = vec![
            Cell::plain(human::sanitize(&s.name)),
            Cell {
                text: s.state.as_str().to_owned(),
                colour: state_colour(s.state),
            },
            Cell::plain(s.pid.map_or_else(|| "-".to_owned(), |p| p.to_string())),
            Cell::plain(human::sanitize(&s.supervisor)),
            Cell::plain(if s.kind.is_empty() {
                "-".to_owned()
            } else {
                human::sanitize(&s.kind)
            }),
        ];
        if let Some(reason) = &s.reason {
            row.push(Cell::plain(human::sanitize(reason)));
        }
        rows.push(row);
    }
    let mut out = table(&rows, colour);
    let states: Vec<ServiceState> = sorted.iter().map(|s| s.state).collect();
    out.push('\n');
    out.push_str(&summary_line(&states));
    out.push('\n');
    out
}

/// `dynamodctl tree`: supervisors with their strategy, services with state and PID, drawn with
/// box-drawing characters from the root down.
pub fn render_tree(root: &TreeNode, colour: bool) -> String {
    let mut lines: Vec<Line<'_>> = vec![Line {
        tree: String::new(),
        name: human::sanitize(&root.name),
        node: root,
    }];
    walk(&root.children, "", &mut lines);
    let services = lines
        .iter()
        .filter(|l| matches!(l.node.node, NodeKind::Service { .. }));
    let left_width = services
        .clone()
        .map(|l| width(&l.tree) + width(&l.name))
        .max()
        .unwrap_or(0);
    let state_width = services
        .filter_map(|l| match l.node.node {
            NodeKind::Service { state, .. } => Some(state.as_str().len()),
            NodeKind::Supervisor { .. } => None,
        })
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for Line { tree, name, node } in &lines {
        match &node.node {
            NodeKind::Supervisor { strategy, state } => {
                let strategy = human::sanitize(strategy);
                let _ = write!(out, "{tree}{} [{strategy}]", paint(name, BOLD, colour));
                if state != "running" {
                    let _ = write!(out, "  {}", paint(&human::sanitize(state), RED, colour));
                }
            }
            NodeKind::Service { state, pid } => {
                let pad = " ".repeat(left_width - width(tree) - width(name) + 2);
                let painted = paint(state.as_str(), state_colour(*state), colour);
                let _ = write!(out, "{tree}{name}{pad}{painted}");
                if let Some(pid) = pid {
                    let pad = " ".repeat(state_width - state.as_str().len() + 2);
                    let _ = write!(out, "{pad}pid {pid}");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// A line of the tree: the drawing before the name, the name, and the node.
struct Line<'a> {
    tree: String,
    name: String,
    node: &'a TreeNode,
}

fn walk<'a>(children: &'a [TreeNode], prefix: &str, lines: &mut Vec<Line<'a>>) {
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let branch = if last { "└─ " } else { "├─ " };
        let name = human::sanitize(&child.name);
        lines.push(Line {
            tree: format!("{prefix}{branch}"),
            name,
            node: child,
        });
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        walk(&child.children, &deeper, lines);
    }
}

/// `dynamodctl status NAME…`: a block per service. `now_unix_ms` is the caller's clock, used only
/// for "ago" of the last exit (the state's age comes from svmgr's own monotonic `since_ms`).
pub fn render_status(details: &[ServiceDetail], now_unix_ms: u64, colour: bool) -> String {
    let blocks: Vec<String> = details
        .iter()
        .map(|d| status_block(d, now_unix_ms, colour))
        .collect();
    blocks.join("\n")
}

fn status_block(d: &ServiceDetail, now_unix_ms: u64, colour: bool) -> String {
    let s = &d.summary;
    let state_text = paint(s.state.as_str(), state_colour(s.state), colour);
    let mut out = format!(
        "{} {}: {state_text}\n",
        paint("●", state_colour(s.state), colour),
        paint(&human::sanitize(&s.name), BOLD, colour)
    );
    let mut kv: Vec<(&str, String)> = Vec::new();

    let mut state_line = state_text.clone();
    match (d.since_unix_ms, d.since_ms) {
        (Some(at), Some(age)) => {
            let _ = write!(
                state_line,
                " since {}; {} ago",
                human::utc(at),
                human::duration(age)
            );
        }
        (Some(at), None) => {
            let _ = write!(state_line, " since {}", human::utc(at));
        }
        (None, Some(age)) => {
            let _ = write!(state_line, " for {}", human::duration(age));
        }
        (None, None) => {}
    }
    kv.push(("State", state_line));
    if let Some(reason) = &s.reason {
        kv.push(("Reason", human::sanitize(reason)));
    }
    if let Some(pid) = s.pid {
        kv.push(("PID", pid.to_string()));
    }
    kv.push(("Supervisor", human::sanitize(&s.supervisor)));
    kv.push((
        "Type",
        if s.kind.is_empty() {
            "-".to_owned()
        } else {
            human::sanitize(&s.kind)
        },
    ));

    let mut restart = vec![
        human::sanitize(&d.restart_policy),
        human::plural(u64::from(d.restarts), "restart"),
    ];
    if let Some(next) = d.next_restart_ms {
        restart.push(format!("next in {}", human::duration(next)));
    }
    kv.push(("Restart", restart.join(", ")));
    if let Some(exit) = d.last_exit {
        let ago = human::duration(now_unix_ms.saturating_sub(exit.at_unix_ms));
        kv.push((
            "Last exit",
            format!(
                "{} at {}; {ago} ago",
                human::exit_status(exit.status),
                human::utc(exit.at_unix_ms)
            ),
        ));
    }
    if !d.readiness.is_empty() {
        kv.push(("Readiness", human::sanitize(&d.readiness)));
    }
    if let Some(file) = &d.file {
        kv.push(("File", human::sanitize(file)));
    }
    if !d.exec.is_empty() {
        kv.push(("Exec", human::shell_join(&d.exec)));
    }
    let deps: Vec<String> = [
        ("requires", &d.requires),
        ("wants", &d.wants),
        ("after", &d.after),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(kind, names)| format!("{kind} {}", human::sanitize(&names.join(", "))))
    .collect();
    if !deps.is_empty() {
        kv.push(("Dependencies", deps.join("; ")));
    }
    if let Some(cgroup) = &d.cgroup {
        kv.push(("Cgroup", human::sanitize(cgroup)));
    }
    if let Some(u) = d.usage {
        match (u.memory_current, u.memory_peak) {
            (Some(cur), Some(peak)) => {
                kv.push((
                    "Memory",
                    format!("{} (peak {})", human::size(cur), human::size(peak)),
                ));
            }
            (Some(cur), None) => kv.push(("Memory", human::size(cur))),
            (None, Some(peak)) => kv.push(("Memory", format!("peak {}", human::size(peak)))),
            (None, None) => {}
        }
        if let Some(cpu) = u.cpu_usec {
            kv.push(("CPU", human::cpu_time(cpu)));
        }
        if let Some(tasks) = u.tasks {
            kv.push(("Tasks", tasks.to_string()));
        }
        if let Some(oom) = u.oom_kills.filter(|&n| n > 0) {
            kv.push(("OOM kills", paint(&oom.to_string(), RED, colour)));
        }
    }

    let key_width = kv.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in kv {
        let _ = writeln!(out, "  {:<key_width$} {value}", format!("{key}:"));
    }
    if !d.recent_logs.is_empty() || d.log_dropped > 0 {
        out.push_str("\n  Recent output:\n");
        for line in &d.recent_logs {
            let _ = writeln!(out, "    {}", human::sanitize(line));
        }
        if d.log_dropped > 0 {
            let dropped = human::plural(d.log_dropped, "line");
            let _ = writeln!(out, "  ({dropped} dropped: the log buffer overflowed)");
        }
    }
    out
}

/// The verdict of `dynamodctl is-healthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Start-up finished and no service failed.
    pub healthy: bool,
    /// One line for people: `healthy: …` or `unhealthy: …`.
    pub line: String,
    /// Why it is not healthy, without the prefix.
    pub reason: Option<String>,
}

/// Healthy when start-up is complete and no service is failed.
pub fn health(sys: &SystemState) -> Health {
    let failed: u32 = sys
        .counts
        .iter()
        .filter(|(s, _)| *s == ServiceState::Failed)
        .map(|(_, n)| n)
        .sum();
    let mut problems = Vec::new();
    if !sys.startup_complete {
        problems.push(format!(
            "start-up not complete (svmgr is {})",
            human::sanitize(&sys.state)
        ));
    }
    if failed > 0 {
        problems.push(format!(
            "{} failed",
            human::plural(u64::from(failed), "service")
        ));
    }
    if problems.is_empty() {
        let states: Vec<ServiceState> = sys
            .counts
            .iter()
            .flat_map(|&(s, n)| std::iter::repeat_n(s, n as usize))
            .collect();
        let line = format!(
            "healthy: {}; up {}",
            summary_line(&states),
            human::duration(sys.uptime_ms)
        );
        Health {
            healthy: true,
            line,
            reason: None,
        }
    } else {
        let reason = problems.join("; ");
        Health {
            healthy: false,
            line: format!("unhealthy: {reason}"),
            reason: Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use dynamod_proto::{CgroupUsage, ExitInfo, ExitStatus};

    use super::*;

    fn svc(
        name: &str,
        state: ServiceState,
        pid: Option<i32>,
        sup: &str,
        kind: &str,
    ) -> ServiceSummary {
        ServiceSummary {
            name: name.into(),
            state,
            pid,
            supervisor: sup.into(),
            kind: kind.into(),
            reason: None,
        }
    }

    fn sample() -> Vec<ServiceSummary> {
        vec![
            svc("syslog", ServiceState::Running, Some(57), "root", "simple"),
            svc(
                "bootmisc",
                ServiceState::Done,
                None,
                "early-boot",
                "oneshot",
            ),
            svc(
                "dynamod-logd",
                ServiceState::Running,
                Some(41),
                "early-boot",
                "simple",
            ),
        ]
    }

    #[test]
    fn list_is_sorted_aligned_and_counted() {
        let got = render_list(&sample(), false);
        let want = "\
SERVICE       STATE    PID  SUPERVISOR  TYPE
bootmisc      done     -    early-boot  oneshot
dynamod-logd  running  41   early-boot  simple
syslog        running  57   root        simple

3 services: 2 running, 1 done
";
        assert_eq!(got, want);
    }

    #[test]
    fn list_adds_a_reason_column_when_something_is_blocked() {
        let mut list = sample();
        let mut web = svc("web", ServiceState::Blocked, None, "root", "simple");
        web.reason = Some("requires 'db', which failed".into());
        let mut bad = svc("bad", ServiceState::Invalid, None, "root", "");
        bad.reason = Some("bad.toml:3:1: unknown key `exce`".into());
        list.push(web);
        list.push(bad);
        let want = "\
SERVICE       STATE    PID  SUPERVISOR  TYPE     REASON
bad           invalid  -    root        -        bad.toml:3:1: unknown key `exce`
bootmisc      done     -    early-boot  oneshot
dynamod-logd  running  41   early-boot  simple
syslog        running  57   root        simple
web           blocked  -    root        simple   requires 'db', which failed

5 services: 2 running, 1 done, 1 blocked, 1 invalid
";
        assert_eq!(render_list(&list, false), want);
    }

    #[test]
    fn list_colours_states_only_when_asked() {
        let list = vec![
            svc("a", ServiceState::Running, Some(1), "root", "simple"),
            svc("b", ServiceState::Failed, None, "root", "simple"),
            svc("c", ServiceState::Stopped, None, "root", "simple"),
            svc("d", ServiceState::Waiting, None, "root", "simple"),
        ];
        let got = render_list(&list, true);
        assert!(
            got.contains("a        \x1b[32mrunning\x1b[0m  1  "),
            "{got:?}"
        );
        assert!(got.contains("\x1b[31mfailed\x1b[0m   -"), "{got:?}");
        assert!(got.contains("\x1b[2mstopped\x1b[0m"), "{got:?}");
        assert!(got.contains("\x1b[33mwaiting\x1b[0m"), "{got:?}");
        assert!(!render_list(&list, false).contains('\x1b'));
    }

    #[test]
    fn empty_list_says_so() {
        assert_eq!(render_list(&[], false), "0 services\n");
    }

    #[test]
    fn footer_uses_singular_for_one() {
        assert_eq!(summary_line(&[ServiceState::Failed]), "1 service: 1 failed");
    }

    #[test]
    fn service_names_cannot_inject_terminal_escapes() {
        let list = vec![svc(
            "evil\x1b[2J",
            ServiceState::Running,
            None,
            "root",
            "simple",
        )];
        assert!(render_list(&list, false).starts_with("SERVICE      STATE"));
        assert!(render_list(&list, false).contains("evil\\x1b[2J"));
    }

    fn leaf(name: &str, state: ServiceState, pid: Option<i32>) -> TreeNode {
        TreeNode {
            name: name.into(),
            node: NodeKind::Service { state, pid },
            children: vec![],
        }
    }

    fn sup(name: &str, strategy: &str, state: &str, children: Vec<TreeNode>) -> TreeNode {
        TreeNode {
            name: name.into(),
            node: NodeKind::Supervisor {
                strategy: strategy.into(),
                state: state.into(),
            },
            children,
        }
    }

    #[test]
    fn tree_draws_supervisors_and_services_with_box_characters() {
        let tree = sup(
            "root",
            "one-for-one",
            "running",
            vec![
                sup(
                    "early-boot",
                    "one-for-all",
                    "running",
                    vec![
                        leaf("bootmisc", ServiceState::Done, None),
                        leaf("dynamod-logd", ServiceState::Running, Some(41)),
                    ],
                ),
                leaf("syslog", ServiceState::Restarting, None),
                leaf("agetty-tty1", ServiceState::Running, Some(60)),
                sup("desktop", "one-for-one", "failed", vec![]),
            ],
        );
        let want = "\
root [one-for-one]
├─ early-boot [one-for-all]
│  ├─ bootmisc      done
│  └─ dynamod-logd  running     pid 41
├─ syslog           restarting
├─ agetty-tty1      running     pid 60
└─ desktop [one-for-one]  failed
";
        assert_eq!(render_tree(&tree, false), want);
    }

    #[test]
    fn tree_of_an_empty_root_is_one_line() {
        assert_eq!(
            render_tree(&sup("root", "one-for-one", "running", vec![]), false),
            "root [one-for-one]\n"
        );
    }

    #[test]
    fn tree_colours_names_and_states() {
        let tree = sup(
            "root",
            "one-for-one",
            "running",
            vec![leaf("a", ServiceState::Running, Some(2))],
        );
        assert_eq!(
            render_tree(&tree, true),
            "\x1b[1mroot\x1b[0m [one-for-one]\n└─ a  \x1b[32mrunning\x1b[0m  pid 2\n"
        );
    }

    fn detail() -> ServiceDetail {
        ServiceDetail {
            summary: svc("nginx", ServiceState::Running, Some(1234), "root", "simple"),
            file: Some("/etc/dynamod/services/nginx.toml".into()),
            exec: vec!["/usr/sbin/nginx".into(), "-g".into(), "daemon off;".into()],
            restart_policy: "permanent".into(),
            readiness: "tcp-port 80 (ready)".into(),
            since_ms: Some(303_000),
            since_unix_ms: Some(1_796_400_988_000),
            restarts: 2,
            next_restart_ms: None,
            last_exit: Some(ExitInfo {
                status: ExitStatus::Signaled(9),
                at_unix_ms: 1_796_400_987_000,
            }),
            cgroup: Some("/sys/fs/cgroup/dynamod/root/nginx".into()),
            usage: Some(CgroupUsage {
                memory_current: Some(12_897_485),
                memory_peak: Some(20 << 20),
                cpu_usec: Some(1_234_567),
                tasks: Some(3),
                oom_kills: Some(0),
            }),
            recent_logs: vec!["started worker 1".into(), "started worker 2".into()],
            log_dropped: 0,
            requires: vec!["network".into()],
            wants: vec!["syslog".into()],
            after: vec!["bootmisc".into(), "network".into()],
            spawned_ms: Some(20),
            ready_ms: Some(21),
        }
    }

    #[test]
    fn status_shows_aligned_details_and_recent_output() {
        let got = render_status(&[detail()], 1_796_401_291_000, false);
        let want = "\
● nginx: running
  State:        running since 2026-12-04 16:16:28 UTC; 5min 3s ago
  PID:          1234
  Supervisor:   root
  Type:         simple
  Restart:      permanent, 2 restarts
  Last exit:    killed by SIGKILL (signal 9) at 2026-12-04 16:16:27 UTC; 5min 4s ago
  Readiness:    tcp-port 80 (ready)
  File:         /etc/dynamod/services/nginx.toml
  Exec:         /usr/sbin/nginx -g 'daemon off;'
  Dependencies: requires network; wants syslog; after bootmisc, network
  Cgroup:       /sys/fs/cgroup/dynamod/root/nginx
  Memory:       12.3 MiB (peak 20.0 MiB)
  CPU:          1.234s
  Tasks:        3

  Recent output:
    started worker 1
    started worker 2
";
        assert_eq!(got, want);
    }

    #[test]
    fn status_of_a_failed_service_shows_reason_exit_and_retry() {
        let mut d = detail();
        d.summary.state = ServiceState::Restarting;
        d.summary.pid = None;
        d.summary.reason = None;
        d.next_restart_ms = Some(4_000);
        d.last_exit = Some(ExitInfo {
            status: ExitStatus::Exited(1),
            at_unix_ms: 1_796_401_290_000,
        });
        d.since_unix_ms = None;
        d.since_ms = Some(1_000);
        d.usage = None;
        d.cgroup = None;
        d.recent_logs = vec!["bind: address in use\x1b[0m".into()];
        d.log_dropped = 3;
        d.wants.clear();
        d.after.clear();
        let mut f = detail();
        f.summary = svc("db", ServiceState::Failed, None, "root", "notify");
        f.summary.reason = Some("readiness timed out after 30s".into());
        f.exec = vec![];
        f.file = None;
        f.readiness = String::new();
        f.since_ms = None;
        f.since_unix_ms = None;
        f.last_exit = None;
        f.usage = Some(CgroupUsage {
            oom_kills: Some(1),
            ..CgroupUsage::default()
        });
        f.cgroup = None;
        f.recent_logs.clear();
        f.requires.clear();
        f.wants.clear();
        f.after.clear();
        let got = render_status(&[d, f], 1_796_401_291_000, false);
        let want = "\
● nginx: restarting
  State:        restarting for 1s
  Supervisor:   root
  Type:         simple
  Restart:      permanent, 2 restarts, next in 4s
  Last exit:    exited 1 at 2026-12-04 16:21:30 UTC; 1s ago
  Readiness:    tcp-port 80 (ready)
  File:         /etc/dynamod/services/nginx.toml
  Exec:         /usr/sbin/nginx -g 'daemon off;'
  Dependencies: requires network

  Recent output:
    bind: address in use\\x1b[0m
  (3 lines dropped: the log buffer overflowed)

● db: failed
  State:      failed
  Reason:     readiness timed out after 30s
  Supervisor: root
  Type:       notify
  Restart:    permanent, 2 restarts
  OOM kills:  1
";
        assert_eq!(got, want);
    }

    fn system(startup_complete: bool, counts: Vec<(ServiceState, u32)>) -> SystemState {
        SystemState {
            state: "running".into(),
            startup_complete,
            counts,
            uptime_ms: 125_000,
        }
    }

    #[test]
    fn healthy_means_started_and_nothing_failed() {
        let h = health(&system(
            true,
            vec![(ServiceState::Running, 5), (ServiceState::Done, 3)],
        ));
        assert!(h.healthy);
        assert_eq!(h.line, "healthy: 8 services: 5 running, 3 done; up 2min 5s");
        let h = health(&system(
            true,
            vec![(ServiceState::Running, 5), (ServiceState::Failed, 0)],
        ));
        assert!(h.healthy);
    }

    #[test]
    fn unhealthy_names_every_reason_on_one_line() {
        let h = health(&system(
            true,
            vec![(ServiceState::Running, 5), (ServiceState::Failed, 2)],
        ));
        assert_eq!(h.line, "unhealthy: 2 services failed");
        let mut s = system(false, vec![(ServiceState::Failed, 1)]);
        s.state = "starting".into();
        let h = health(&s);
        assert!(!h.healthy);
        assert_eq!(
            h.line,
            "unhealthy: start-up not complete (svmgr is starting); 1 service failed"
        );
        assert_eq!(
            h.reason.as_deref(),
            Some("start-up not complete (svmgr is starting); 1 service failed")
        );
    }
}
