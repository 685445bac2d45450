//! `dynamodctl analyze`: the boot timeline (when each service was spawned and became ready,
//! on svmgr's monotonic clock) and the critical chain, as text, JSON or an SVG plot.
//!
//! The critical chain ends at the service that became ready last (or the one named). From
//! there it walks back: of the services a link depends on that were ready before it was
//! spawned, the one ready last is what held it back. Times are those of each service's current
//! process, so a service restarted after boot shows its latest start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use dynamod_proto::{ServiceDetail, ServiceState};
use serde::Serialize;

use crate::human;

/// One service on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Service name.
    pub name: String,
    /// Its state now.
    pub state: &'static str,
    /// `simple`, `oneshot`, …; `null` for an invalid file.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Spawned, milliseconds after svmgr started.
    pub spawned_ms: Option<u64>,
    /// Ready (or done), milliseconds after svmgr started.
    pub ready_ms: Option<u64>,
}

impl Entry {
    /// From spawn to ready.
    pub fn took_ms(&self) -> Option<u64> {
        Some(self.ready_ms?.saturating_sub(self.spawned_ms?))
    }
}

/// The whole analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// When svmgr started, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long svmgr has been up.
    pub uptime_ms: u64,
    /// Every service has settled since boot.
    pub startup_complete: bool,
    /// When the last service became ready, milliseconds after svmgr started.
    pub last_ready_ms: Option<u64>,
    /// Every service, by spawn time (never spawned last, by name).
    pub services: Vec<Entry>,
    /// From the end of the chain back to its start.
    pub critical_chain: Vec<Entry>,
}

/// Why no analysis could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyzeError {
    /// The service named as the chain's end does not exist.
    #[error("no service named '{0}'")]
    Unknown(String),
    /// The service named as the chain's end is not ready.
    #[error("'{0}' is not ready, so it ends no chain")]
    NotReady(String),
}

/// Builds the analysis from `Status` of every service and svmgr's uptime.
pub fn analyze(
    details: &[ServiceDetail],
    uptime_ms: u64,
    startup_complete: bool,
    now_unix_ms: u64,
    end: Option<&str>,
) -> Result<Analysis, AnalyzeError> {
    let mut services: Vec<Entry> = details
        .iter()
        .map(|d| Entry {
            name: d.summary.name.clone(),
            state: d.summary.state.as_str(),
            kind: (!d.summary.kind.is_empty()).then(|| d.summary.kind.clone()),
            spawned_ms: d.spawned_ms,
            ready_ms: d
                .ready_ms
                .filter(|_| matches!(d.summary.state, ServiceState::Running | ServiceState::Done)),
        })
        .collect();
    services.sort_by(|a, b| {
        (a.spawned_ms.is_none(), a.spawned_ms, &a.name).cmp(&(
            b.spawned_ms.is_none(),
            b.spawned_ms,
            &b.name,
        ))
    });
    let deps: BTreeMap<&str, BTreeSet<&str>> = details
        .iter()
        .map(|d| {
            let all = d.requires.iter().chain(&d.wants).chain(&d.after);
            (d.summary.name.as_str(), all.map(String::as_str).collect())
        })
        .collect();
    let by_name: BTreeMap<&str, &Entry> = services.iter().map(|e| (e.name.as_str(), e)).collect();
    // Ready last; on a tie the one spawned last (a dependent released at the same instant).
    let last = services
        .iter()
        .filter(|e| e.ready_ms.is_some())
        .max_by(|a, b| {
            (a.ready_ms, a.spawned_ms, &b.name).cmp(&(b.ready_ms, b.spawned_ms, &a.name))
        });
    let start = match end {
        Some(name) => {
            let e = by_name
                .get(name)
                .copied()
                .ok_or_else(|| AnalyzeError::Unknown(name.to_owned()))?;
            if e.ready_ms.is_none() {
                return Err(AnalyzeError::NotReady(name.to_owned()));
            }
            Some(e)
        }
        None => last,
    };
    let mut chain = Vec::new();
    let mut seen = BTreeSet::new();
    let mut cur = start;
    while let Some(e) = cur {
        if !seen.insert(e.name.as_str()) {
            break;
        }
        chain.push(e.clone());
        let limit = e.spawned_ms.unwrap_or(u64::MAX);
        cur = deps
            .get(e.name.as_str())
            .into_iter()
            .flatten()
            .filter_map(|d| by_name.get(d).copied())
            .filter(|d| d.ready_ms.is_some_and(|r| r <= limit))
            .max_by(|a, b| (a.ready_ms, &b.name).cmp(&(b.ready_ms, &a.name)));
    }
    Ok(Analysis {
        started_unix_ms: now_unix_ms.saturating_sub(uptime_ms),
        uptime_ms,
        startup_complete,
        last_ready_ms: last.and_then(|e| e.ready_ms),
        services,
        critical_chain: chain,
    })
}

fn opt_offset(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), human::offset)
}

/// The text report: a header, the timeline table and the critical chain.
pub fn render(a: &Analysis) -> String {
    let mut out = format!(
        "svmgr started {}, up {}; ",
        human::utc(a.started_unix_ms),
        human::duration(a.uptime_ms)
    );
    if a.startup_complete {
        out.push_str("start-up complete");
    } else {
        out.push_str("start-up still in progress");
    }
    if let Some(last) = a.last_ready_ms {
        let _ = write!(out, "; last service ready at {}", human::offset(last));
    }
    out.push_str("\n\n");
    let mut rows = vec![[
        "SPAWNED".to_owned(),
        "READY".to_owned(),
        "TOOK".to_owned(),
        "SERVICE".to_owned(),
        "STATE".to_owned(),
    ]];
    for e in &a.services {
        rows.push([
            opt_offset(e.spawned_ms),
            opt_offset(e.ready_ms),
            e.took_ms().map_or_else(|| "-".to_owned(), human::duration),
            human::sanitize(&e.name),
            e.state.to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    let Some(end) = a.critical_chain.first() else {
        out.push_str("critical chain: no service is ready yet\n");
        return out;
    };
    let _ = writeln!(
        out,
        "critical chain (ends at {}, ready at {}):",
        human::sanitize(&end.name),
        opt_offset(end.ready_ms)
    );
    let labels: Vec<String> = a
        .critical_chain
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let branch = if i == 0 {
                String::new()
            } else {
                format!("{}└─ ", "   ".repeat(i - 1))
            };
            format!("{branch}{}", human::sanitize(&e.name))
        })
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (label, e) in labels.iter().zip(&a.critical_chain) {
        let pad = " ".repeat(width - label.chars().count() + 2);
        let took = e
            .took_ms()
            .map_or_else(String::new, |t| format!(" ({})", human::duration(t)));
        let _ = writeln!(
            out,
            "  {label}{pad}{} → {}{took}",
            opt_offset(e.spawned_ms),
            opt_offset(e.ready_ms)
        );
    }
    out
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A tick spacing of 1, 2 or 5 times a power of ten giving at most about ten ticks.
fn tick_step(span_ms: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if span_ms / (step * m) <= 10 {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// The timeline as an SVG image: one row per spawned service, a bar from spawn to ready
/// (to now while still starting), critical-chain services outlined in red.
pub fn svg(a: &Analysis) -> String {
    const LEFT: u64 = 190;
    const WIDTH: u64 = 760;
    const ROW: u64 = 22;
    const TOP: u64 = 46;
    let rows: Vec<&Entry> = a
        .services
        .iter()
        .filter(|e| e.spawned_ms.is_some())
        .collect();
    let end = rows
        .iter()
        .filter_map(|e| e.ready_ms.or(e.spawned_ms))
        .chain(a.last_ready_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let span = end + end / 20 + 1;
    let x = |ms: u64| LEFT + ms.min(span) * WIDTH / span;
    let height = TOP + ROW * rows.len() as u64 + 30;
    let total = LEFT + WIDTH + 120;
    let critical: BTreeSet<&str> = a.critical_chain.iter().map(|e| e.name.as_str()).collect();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n"
    );
    let _ = writeln!(
        out,
        "  <rect width=\"{total}\" height=\"{height}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "  <text x=\"10\" y=\"20\" font-size=\"14\">dynamod boot timeline: svmgr started {}; \
         last service ready at {}</text>",
        xml(&human::utc(a.started_unix_ms)),
        xml(&opt_offset(a.last_ready_ms))
    );
    let step = tick_step(span);
    let mut t = 0;
    while t <= span {
        let _ = writeln!(
            out,
            "  <line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#dddddd\"/>\n  \
             <text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\" fill=\"#666666\">{4}</text>",
            x(t),
            TOP - 8,
            height - 24,
            TOP - 12,
            xml(&human::offset(t))
        );
        t += step;
    }
    for (i, e) in rows.iter().enumerate() {
        let y = TOP + ROW * i as u64;
        let spawned = e.spawned_ms.unwrap_or(0);
        let until = e.ready_ms.unwrap_or(a.uptime_ms.max(spawned));
        let w = (x(until) - x(spawned)).max(2);
        let fill = match e.state {
            "running" | "done" => "#8fc98f",
            "failed" | "blocked" | "invalid" => "#e08a8a",
            _ => "#f0c060",
        };
        let outline = if critical.contains(e.name.as_str()) {
            " stroke=\"#c00000\" stroke-width=\"2\""
        } else {
            ""
        };
        let took = e
            .took_ms()
            .map_or_else(|| e.state.to_owned(), human::duration);
        let _ = writeln!(
            out,
            "  <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n  \
             <rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"{fill}\"{outline}/>\n  \
             <text x=\"{}\" y=\"{}\" fill=\"#333333\">{}</text>",
            LEFT - 8,
            y + 15,
            xml(&e.name),
            x(spawned),
            y + 3,
            ROW - 6,
            x(spawned) + w + 4,
            y + 15,
            xml(&took)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        name: &str,
        state: ServiceState,
        spawned: Option<u64>,
        ready: Option<u64>,
        deps: &[&str],
    ) -> ServiceDetail {
        let mut detail = crate::graph::tests::detail(name, state, deps);
        detail.spawned_ms = spawned;
        detail.ready_ms = ready;
        detail
    }

    fn boot() -> Vec<ServiceDetail> {
        use ServiceState::*;
        vec![
            d("web", Running, Some(740), Some(1_240), &["db", "net"]),
            d("db", Running, Some(130), Some(730), &["prep"]),
            d("net", Done, Some(2), Some(400), &[]),
            d("prep", Done, Some(1), Some(120), &[]),
            d("logger", Running, Some(3), Some(3), &[]),
            d("late", Running, Some(1_240), Some(1_240), &["web"]),
            d("broken", Failed, Some(5), None, &[]),
            d("bad", Invalid, None, None, &[]),
        ]
    }

    #[test]
    fn the_chain_follows_the_dependency_ready_last() {
        let a = analyze(&boot(), 5_000, true, 1_000_000, None).unwrap();
        let chain: Vec<&str> = a.critical_chain.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(chain, ["late", "web", "db", "prep"]);
        assert_eq!(a.last_ready_ms, Some(1_240));
        assert_eq!(a.started_unix_ms, 995_000);
        let order: Vec<&str> = a.services.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "prep", "net", "logger", "broken", "db", "web", "late", "bad"
            ]
        );
    }

    #[test]
    fn a_named_end_must_exist_and_be_ready() {
        let a = analyze(&boot(), 5_000, true, 1_000_000, Some("net")).unwrap();
        assert_eq!(a.critical_chain.len(), 1);
        assert_eq!(
            analyze(&boot(), 5_000, true, 0, Some("nope")),
            Err(AnalyzeError::Unknown("nope".into()))
        );
        assert_eq!(
            analyze(&boot(), 5_000, true, 0, Some("broken")),
            Err(AnalyzeError::NotReady("broken".into()))
        );
    }

    #[test]
    fn text_report_shows_the_table_and_the_chain() {
        let a = analyze(&boot(), 5_000, true, 1_796_401_293_000, None).unwrap();
        let want = "\
svmgr started 2026-12-04 16:21:28 UTC, up 5s; start-up complete; last service ready at +1.240s

SPAWNED  READY    TOOK   SERVICE  STATE
+0.001s  +0.120s  119ms  prep     done
+0.002s  +0.400s  398ms  net      done
+0.003s  +0.003s  0ms    logger   running
+0.005s  -        -      broken   failed
+0.130s  +0.730s  600ms  db       running
+0.740s  +1.240s  500ms  web      running
+1.240s  +1.240s  0ms    late     running
-        -        -      bad      invalid

critical chain (ends at late, ready at +1.240s):
  late           +1.240s → +1.240s (0ms)
  └─ web         +0.740s → +1.240s (500ms)
     └─ db       +0.130s → +0.730s (600ms)
        └─ prep  +0.001s → +0.120s (119ms)
";
        assert_eq!(render(&a), want);
    }

    #[test]
    fn svg_is_well_formed_and_marks_the_chain() {
        let a = analyze(&boot(), 5_000, true, 1_000_000, None).unwrap();
        let s = svg(&a);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.ends_with("</svg>\n"));
        assert_eq!(s.matches("stroke=\"#c00000\"").count(), 4);
        assert!(s.contains(">web</text>"));
        assert!(!s.contains(">bad</text>"), "never spawned: no row");
        assert_eq!(tick_step(1_300), 200);
        assert_eq!(tick_step(9), 1);
        assert_eq!(tick_step(45_000), 5_000);
    }
}
