//! `dynamodctl check`: validates a configuration directory offline with svmgr's own loader
//! ([`dynamod_config::load`]), so the messages are exactly those svmgr would log.

use std::path::Path;

use dynamod_config::{Config, Diagnostic, Severity};
use serde::Serialize;

use crate::human;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Loads `services_dir` and `supervisors_dir` exactly as svmgr does.
pub fn load(services_dir: &Path, supervisors_dir: &Path) -> Config {
    dynamod_config::load(services_dir, supervisors_dir)
}

/// Counts of what was checked and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Service files (valid and invalid).
    pub services: usize,
    /// Service files that were refused.
    pub invalid: usize,
    /// Supervisors, including the built-in root when no file defines it.
    pub supervisors: usize,
    /// Diagnostics of severity error.
    pub errors: usize,
    /// Diagnostics of severity warning.
    pub warnings: usize,
}

impl Tally {
    /// Counts `config`.
    pub fn of(config: &Config) -> Self {
        let errors = config.diagnostics.iter().filter(|d| d.is_error()).count();
        Self {
            services: config.services.len() + config.invalid.len(),
            invalid: config.invalid.len(),
            supervisors: config.supervisors.len(),
            errors,
            warnings: config.diagnostics.len() - errors,
        }
    }

    /// No errors (warnings are fine).
    pub fn ok(&self) -> bool {
        self.errors == 0
    }
}

fn diagnostic_line(d: &Diagnostic, colour: bool) -> String {
    let text = human::sanitize(&d.to_string());
    if !colour {
        return text;
    }
    // Paint only the severity word, which follows the location.
    let word = d.severity.to_string();
    let code = match d.severity {
        Severity::Error => RED,
        Severity::Warning => YELLOW,
    };
    text.replacen(
        &format!(": {word}: "),
        &format!(": {code}{word}{RESET}: "),
        1,
    )
}

/// Every diagnostic as `file:line:col: severity: message`, then a summary line.
pub fn render(config: &Config, colour: bool) -> String {
    let mut out = String::new();
    for d in &config.diagnostics {
        out.push_str(&diagnostic_line(d, colour));
        out.push('\n');
    }
    let t = Tally::of(config);
    let problems = if t.errors + t.warnings == 0 {
        "no problems".to_owned()
    } else {
        let mut parts = Vec::new();
        if t.errors > 0 {
            parts.push(human::plural(t.errors as u64, "error"));
        }
        if t.warnings > 0 {
            parts.push(human::plural(t.warnings as u64, "warning"));
        }
        parts.join(", ")
    };
    let invalid = if t.invalid > 0 {
        format!(" ({} invalid)", t.invalid)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "checked {}{invalid} and {}: {problems}\n",
        human::plural(t.services as u64, "service"),
        human::plural(t.supervisors as u64, "supervisor"),
    ));
    out
}

/// `check --json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// No errors: the directory can be deployed.
    pub ok: bool,
    /// Service files read (valid and invalid).
    pub services: usize,
    /// Service files refused.
    pub invalid_services: usize,
    /// Supervisors, including the built-in root.
    pub supervisors: usize,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Every diagnostic, in svmgr's order.
    pub diagnostics: Vec<JsonDiagnostic<'a>>,
}

/// One diagnostic in `check --json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    /// The file (or directory) concerned.
    pub file: String,
    /// 1-based line, `null` for the whole file.
    pub line: Option<usize>,
    /// 1-based column, `null` when unknown.
    pub col: Option<usize>,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The message, as svmgr logs it.
    pub message: &'a str,
}

/// Builds `check --json`.
pub fn report(config: &Config) -> Report<'_> {
    let t = Tally::of(config);
    Report {
        ok: t.ok(),
        services: t.services,
        invalid_services: t.invalid,
        supervisors: t.supervisors,
        errors: t.errors,
        warnings: t.warnings,
        diagnostics: config
            .diagnostics
            .iter()
            .map(|d| JsonDiagnostic {
                file: d.file.display().to_string(),
                line: (d.line > 0).then_some(d.line),
                col: (d.line > 0 && d.col > 0).then_some(d.col),
                severity: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                message: &d.message,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
    fn a_clean_directory_says_no_problems() {
        let c = config(&[(
            "services/a.toml",
            "[service]\nname = \"a\"\nexec = [\"/bin/a\"]\n",
        )]);
        assert_eq!(
            render(&c, false),
            "checked 1 service and 1 supervisor: no problems\n"
        );
        assert!(Tally::of(&c).ok());
    }

    #[test]
    fn errors_are_listed_with_their_location_and_counted() {
        let c = config(&[(
            "services/a.toml",
            "[service]\nname = \"a\"\nexce = [\"/bin/a\"]\n",
        )]);
        let text = render(&c, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("services/a.toml:"), "{text}");
        assert!(text.contains(": error: "), "{text}");
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("checked 1 service (1 invalid) and 1 supervisor: "),
            "{text}"
        );
        assert!(!Tally::of(&c).ok());
        let coloured = render(&c, true);
        assert!(coloured.contains(": \x1b[31merror\x1b[0m: "), "{coloured}");
    }

    #[test]
    fn json_report_has_null_positions_for_whole_file_messages() {
        let c = config(&[("services/a.toml", "\u{0}")]);
        let v = serde_json::to_value(report(&c)).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["errors"], c.diagnostics.len());
        assert_eq!(v["diagnostics"][0]["file"], "services/a.toml");
        assert_eq!(v["diagnostics"][0]["severity"], "error");
    }
}
