//! Parsing one supervisor file into a [`SupervisorConfig`].

use std::path::Path;

use crate::model::{ROOT_SUPERVISOR, Strategy, SupervisorConfig};
use crate::service::warn_if_not_stem;
use crate::source::Pos;
use crate::walk::{Ctx, Schema, Tbl};
use crate::{Diagnostic, Severity, parse_document};

const TOP: &[&str] = &["supervisor", "restart"];
const SUPERVISOR: &[&str] = &["name", "parent", "strategy"];
const RESTART: &[&str] = &["max-restarts", "max-restart-window"];

/// Every table of a supervisor file, for "it belongs in [restart]" hints.
const SCHEMA: Schema = &[("[supervisor]", SUPERVISOR), ("[restart]", RESTART)];

/// What parsing one supervisor file produced, valid or not.
#[derive(Debug)]
pub(crate) struct SupervisorOutcome {
    /// The supervisor, when the file has no error.
    pub config: Option<SupervisorConfig>,
    /// The name and its position, when the name is valid.
    pub name: Option<(String, Pos)>,
    /// The position of `parent`, when given.
    pub parent_pos: Option<Pos>,
    /// Warnings and errors, in position order.
    pub diags: Vec<Diagnostic>,
}

/// Parses a supervisor file; never panics.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> SupervisorOutcome {
    let mut outcome = SupervisorOutcome {
        config: None,
        name: None,
        parent_pos: None,
        diags: Vec::new(),
    };
    let (mut cx, doc) = match parse_document(path, bytes) {
        Ok(parsed) => parsed,
        Err(diag) => {
            outcome.diags.push(diag);
            return outcome;
        }
    };
    let root = Tbl::root(&doc);
    let config = read(&mut cx, &root, &mut outcome);
    if !cx.has_errors() {
        outcome.config = config;
    }
    cx.diags.sort_by_key(|d| (d.line, d.col));
    outcome.diags = cx.diags;
    outcome
}

/// Reads the whole document.
fn read(
    cx: &mut Ctx<'_>,
    root: &Tbl<'_, '_>,
    out: &mut SupervisorOutcome,
) -> Option<SupervisorConfig> {
    cx.check_keys(root, TOP, SCHEMA);
    let mut config = SupervisorConfig::builtin_root();
    if let Some(t) = root
        .get("restart")
        .and_then(|item| cx.table("restart".to_owned(), item))
    {
        cx.check_keys(&t, RESTART, SCHEMA);
        let max = i64::from(u32::MAX);
        let restarts = cx.field(&t, "max-restarts", |cx, p, i| cx.integer(p, i, 0..=max));
        if let Some(n) = restarts.and_then(|n| u32::try_from(n).ok()) {
            config.max_restarts = n;
        }
        if let Some(d) = cx.field(&t, "max-restart-window", Ctx::nonzero_duration) {
            config.max_restart_window = d;
        }
    }
    let Some(item) = root.get("supervisor") else {
        cx.report_at(
            Pos::START,
            Severity::Error,
            "missing table [supervisor]".to_owned(),
        );
        return None;
    };
    let t = cx.table("supervisor".to_owned(), item)?;
    cx.check_keys(&t, SUPERVISOR, SCHEMA);
    let name = match t.get("name") {
        Some(item) => {
            let name = cx.name("supervisor.name", item);
            if let Some(n) = &name {
                out.name = Some((n.clone(), cx.pos(&item.span())));
                warn_if_not_stem(cx, n, item);
            }
            name
        }
        None => {
            cx.error(
                &t.span,
                "missing required key `name` in [supervisor]".to_owned(),
            );
            None
        }
    };
    let parent = t.get("parent").and_then(|item| {
        out.parent_pos = Some(cx.pos(&item.span()));
        let parent = cx.name("supervisor.parent", item)?;
        if name.as_deref() == Some(ROOT_SUPERVISOR) {
            let msg = "the root supervisor cannot have a parent: remove `supervisor.parent`";
            cx.error(&item.span(), msg.to_owned());
        }
        Some(parent)
    });
    let strategies = [
        ("one-for-one", Strategy::OneForOne),
        ("one-for-all", Strategy::OneForAll),
        ("rest-for-one", Strategy::RestForOne),
    ];
    if let Some(s) = cx.field(&t, "strategy", |cx, p, i| cx.choice(p, i, &strategies)) {
        config.strategy = s;
    }
    config.name = name?;
    config.file = Some(cx.src.path.to_path_buf());
    config.parent = if config.name == ROOT_SUPERVISOR {
        None
    } else {
        Some(parent.unwrap_or_else(|| ROOT_SUPERVISOR.to_owned()))
    };
    Some(config)
}

impl SupervisorOutcome {
    /// The outcome of a file that could not be read.
    pub(crate) fn unreadable(diag: Diagnostic) -> Self {
        Self {
            config: None,
            name: None,
            parent_pos: None,
            diags: vec![diag],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn render(path: &str, text: &str) -> String {
        parse(Path::new(path), text.as_bytes())
            .diags
            .iter()
            .map(|d| format!("{}:{}: {}: {}\n", d.line, d.col, d.severity, d.message))
            .collect()
    }

    #[test]
    fn minimal_supervisor_gets_the_defaults() {
        let o = parse(Path::new("desk.toml"), b"[supervisor]\nname = \"desk\"\n");
        assert!(o.diags.is_empty());
        assert_eq!(
            o.config,
            Some(SupervisorConfig {
                name: "desk".into(),
                file: Some(PathBuf::from("desk.toml")),
                parent: Some("root".into()),
                strategy: Strategy::OneForOne,
                max_restarts: 10,
                max_restart_window: Duration::from_secs(300),
            })
        );
    }

    #[test]
    fn every_field_is_read() {
        let text = "[supervisor]\nname = \"desk\"\nparent = \"early\"\nstrategy = \"rest-for-one\"\n\
                    [restart]\nmax-restarts = 0\nmax-restart-window = \"1h\"\n";
        let o = parse(Path::new("desk.toml"), text.as_bytes());
        assert!(o.diags.is_empty(), "{:?}", o.diags);
        let c = o.config.unwrap();
        assert_eq!(c.parent.as_deref(), Some("early"));
        assert_eq!(c.strategy, Strategy::RestForOne);
        assert_eq!(c.max_restarts, 0);
        assert_eq!(c.max_restart_window, Duration::from_secs(3600));
        assert_eq!(o.parent_pos, Some(Pos { line: 3, col: 10 }));
    }

    #[test]
    fn each_strategy_is_read() {
        for (word, strategy) in [
            ("one-for-one", Strategy::OneForOne),
            ("one-for-all", Strategy::OneForAll),
            ("rest-for-one", Strategy::RestForOne),
        ] {
            let text = format!("[supervisor]\nname = \"s\"\nstrategy = \"{word}\"\n");
            let c = parse(Path::new("s.toml"), text.as_bytes()).config.unwrap();
            assert_eq!(c.strategy, strategy);
            assert_eq!(strategy.as_str(), word);
        }
    }

    #[test]
    fn root_file_has_no_parent() {
        let o = parse(
            Path::new("root.toml"),
            b"[supervisor]\nname = \"root\"\nstrategy = \"one-for-all\"\n",
        );
        let c = o.config.unwrap();
        assert_eq!(c.parent, None);
        assert_eq!(c.strategy, Strategy::OneForAll);
        assert_eq!(
            render(
                "root.toml",
                "[supervisor]\nname = \"root\"\nparent = \"root\"\n"
            ),
            "3:10: error: the root supervisor cannot have a parent: remove `supervisor.parent`\n"
        );
    }

    #[test]
    fn invalid_files_report_every_problem_at_its_position() {
        let cases: &[(&str, &str)] = &[
            ("", "1:1: error: missing table [supervisor]\n"),
            (
                "[supervisor]\nstrategy = \"one_for_all\"\nparent = \"Bad\"\n[restart]\nmax-restarts = -1\n\
                 max-restart-window = 0\npolicy = \"x\"\n[service]\n",
                "1:1: error: missing required key `name` in [supervisor]\n\
                 2:12: error: invalid value `one_for_all` for `supervisor.strategy`: expected one of `one-for-one`, `one-for-all`, `rest-for-one`; did you mean `one-for-all`?\n\
                 3:10: error: invalid name `Bad` for `supervisor.parent`: a name must start with a lowercase letter or a digit, not `B`\n\
                 5:16: error: `restart.max-restarts` must be between 0 and 4294967295, found -1\n\
                 6:22: error: `restart.max-restart-window` must be longer than zero\n\
                 7:1: error: unknown key `policy` in [restart]\n\
                 8:2: error: unknown table [service]\n",
            ),
            (
                "[supervisor]\nname = \"s\"\nmax-restarts = 3\n",
                "3:1: error: unknown key `max-restarts` in [supervisor]; it belongs in [restart]\n",
            ),
            (
                "[supervisor\n",
                "1:12: error: invalid TOML: unclosed table, expected `]`\n",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(render("s.toml", text), *want, "for file:\n{text}");
            assert!(parse(Path::new("s.toml"), text.as_bytes()).config.is_none());
        }
    }

    #[test]
    fn name_differing_from_the_file_is_a_warning() {
        let text = "[supervisor]\nname = \"desk\"\n";
        assert_eq!(
            render("desktop.toml", text),
            "2:8: warning: name `desk` does not match the file name `desktop.toml`\n"
        );
        assert!(
            parse(Path::new("desktop.toml"), text.as_bytes())
                .config
                .is_some()
        );
    }
}
