//! Service and supervisor configuration: TOML parsing with file:line:col diagnostics, the
//! validated model, and the cross-file checks (duplicates, references, cycles).
//!
//! `dynamod-svmgr` and `dynamodctl check` both call [`load`], so an operator sees exactly the
//! messages the service manager would log. `docs/configuration.md` is the user's reference.
//!
//! The pipeline, one module per step:
//! - `source`: bytes to text (size cap, byte-order mark, UTF-8) and offsets to line:column;
//! - `walk`: typed reading of a TOML document, each mistake recorded as a [`Diagnostic`] at the
//!   value's position, unknown keys with a suggestion;
//! - `service`, `supervisor`: one file into the [`model`], reporting every problem in one pass;
//! - `validate`: the checks across files (duplicates, references, the supervisor tree, the main
//!   service, dependency cycles);
//! - [`value`]: the grammars of durations, sizes, signals, names (public, for the CLI too);
//! - [`envfile`]: the `environment-file` format, read by the service manager at each start.

pub mod envfile;
pub mod model;
pub mod value;

mod service;
mod source;
mod supervisor;
mod validate;
mod walk;

pub use model::*;
pub use source::MAX_FILE_SIZE;

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeTable;

use crate::service::ServiceOutcome;
use crate::source::{Source, file_error};
use crate::supervisor::SupervisorOutcome;
use crate::validate::{ServiceEntry, SupervisorEntry};
use crate::walk::{Ctx, quote};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth telling, nothing refused.
    Warning,
    /// The file (or the service) is refused; the one exception is `requires` naming an unknown
    /// service, where the service stays valid and the supervision core blocks it.
    Error,
}

/// A message about one place in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when the message is about the whole file.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
    /// Warning or error.
    pub severity: Severity,
    /// Lowercase, no final period.
    pub message: String,
}

/// A service file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidService {
    /// Its `name` if readable, else the file stem.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// The supervisor named in the file, if readable.
    pub supervisor: Option<String>,
    /// The first error, formatted `file:line:col: message`.
    pub reason: String,
}

/// Everything loaded from the two configuration directories.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Valid services, in file-name order.
    pub services: Vec<ServiceConfig>,
    /// Service files that were refused.
    pub invalid: Vec<InvalidService>,
    /// Supervisors, root first, every parent before its children.
    pub supervisors: Vec<SupervisorConfig>,
    /// Every warning and error, in file order: directory problems first, then supervisor
    /// files, then service files, each file's messages by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Diagnostic {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col: message` (`file:line: message` without a column, `file: message` for
    /// the whole file): the form used in [`InvalidService::reason`].
    pub fn located_message(&self) -> String {
        format!("{}: {}", self.location(), self.message)
    }

    /// `file:line:col`, `file:line` or `file`.
    fn location(&self) -> String {
        let file = self.file.display();
        match (self.line, self.col) {
            (0, _) => format!("{file}"),
            (line, 0) => format!("{file}:{line}"),
            (line, col) => format!("{file}:{line}:{col}"),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// `path:line:col: error: message`, as compilers print it.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.location(),
            self.severity,
            self.message
        )
    }
}

/// `service `name` is invalid: file:line:col: message`.
impl fmt::Display for InvalidService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service `{}` is invalid: {}", self.name, self.reason)
    }
}

impl Config {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The valid service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The supervisor called `name` (root always exists).
    pub fn supervisor(&self, name: &str) -> Option<&SupervisorConfig> {
        self.supervisors.iter().find(|s| s.name == name)
    }
}

/// A file to parse: its contents, or why they could not be read.
type FileBytes = (PathBuf, Result<Vec<u8>, Diagnostic>);

/// Loads and validates `services_dir/*.toml` and `supervisors_dir/*.toml`.
///
/// Files are read in sorted file-name order; names starting with `.` are skipped, and only
/// regular files (or symlinks to them) are read. A missing supervisor directory is normal; a
/// missing service directory is reported as an error diagnostic. Never panics.
pub fn load(services_dir: &Path, supervisors_dir: &Path) -> Config {
    let mut early = Vec::new();
    let services = read_dir(services_dir, true, &mut early);
    let supervisors = read_dir(supervisors_dir, false, &mut early);
    assemble(services, supervisors, early)
}

/// [`load`] with `config_dir/services` and `config_dir/supervisors` (for example
/// `/etc/dynamod`).
pub fn load_root(config_dir: &Path) -> Config {
    load(
        &config_dir.join("services"),
        &config_dir.join("supervisors"),
    )
}

/// [`load`] on files already in memory, in the order given (callers sort them). Used by tests
/// and fuzzing; the checks and messages are exactly those of [`load`].
pub fn load_sources(
    services: Vec<(PathBuf, Vec<u8>)>,
    supervisors: Vec<(PathBuf, Vec<u8>)>,
) -> Config {
    let wrap =
        |files: Vec<(PathBuf, Vec<u8>)>| files.into_iter().map(|(p, b)| (p, Ok(b))).collect();
    assemble(wrap(services), wrap(supervisors), Vec::new())
}

/// Parses one service file on its own (no cross-file checks). `Ok` carries the warnings,
/// `Err` every diagnostic when there is at least one error.
pub fn parse_service(
    path: &Path,
    bytes: &[u8],
) -> Result<(ServiceConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let outcome = service::parse(path, bytes);
    match outcome.config {
        Some(config) => Ok((config, outcome.diags)),
        None => Err(outcome.diags),
    }
}

/// Parses one supervisor file on its own (no cross-file checks). `Ok` carries the warnings,
/// `Err` every diagnostic when there is at least one error.
pub fn parse_supervisor(
    path: &Path,
    bytes: &[u8],
) -> Result<(SupervisorConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let outcome = supervisor::parse(path, bytes);
    match outcome.config {
        Some(config) => Ok((config, outcome.diags)),
        None => Err(outcome.diags),
    }
}

/// Parses every file, then runs the cross-file checks.
fn assemble(
    services: Vec<FileBytes>,
    supervisors: Vec<FileBytes>,
    early: Vec<Diagnostic>,
) -> Config {
    let services = services
        .into_iter()
        .map(|(file, bytes)| {
            let outcome = match &bytes {
                Ok(bytes) => service::parse(&file, bytes),
                Err(diag) => ServiceOutcome::unreadable(diag.clone()),
            };
            ServiceEntry { file, outcome }
        })
        .collect();
    let supervisors = supervisors
        .into_iter()
        .map(|(file, bytes)| {
            let outcome = match &bytes {
                Ok(bytes) => supervisor::parse(&file, bytes),
                Err(diag) => SupervisorOutcome::unreadable(diag.clone()),
            };
            SupervisorEntry { file, outcome }
        })
        .collect();
    validate::assemble(services, supervisors, early)
}

/// Lists and reads `dir/*.toml` in file-name order. Problems with the directory itself go to
/// `early`; problems with one file travel with that file.
fn read_dir(dir: &Path, required: bool, early: &mut Vec<Diagnostic>) -> Vec<FileBytes> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound && !required => return Vec::new(),
        Err(err) => {
            early.push(file_error(dir, format!("cannot read directory: {err}")));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                let bytes = name.as_encoded_bytes();
                if bytes.ends_with(b".toml") && !bytes.starts_with(b".") {
                    names.push(name);
                }
            }
            Err(err) => early.push(file_error(dir, format!("cannot read directory: {err}"))),
        }
    }
    names.sort();
    let mut files = Vec::new();
    for name in names {
        let path = dir.join(name);
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                let mut d = file_error(&path, "skipped: not a regular file".to_owned());
                d.severity = Severity::Warning;
                early.push(d);
            }
            Ok(meta) if meta.len() > MAX_FILE_SIZE as u64 => {
                let msg = format!(
                    "file is too large ({} bytes; the limit is {MAX_FILE_SIZE} bytes)",
                    meta.len()
                );
                let d = file_error(&path, msg);
                files.push((path, Err(d)));
            }
            Ok(_) => {
                let bytes = read_capped(&path)
                    .map_err(|err| file_error(&path, format!("cannot read file: {err}")));
                files.push((path, bytes));
            }
            Err(err) => {
                let d = file_error(&path, format!("cannot read file: {err}"));
                files.push((path, Err(d)));
            }
        }
    }
    files
}

/// Reads at most one byte more than [`MAX_FILE_SIZE`], so a file that grows while it is read
/// is still refused by size rather than read whole.
fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(MAX_FILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Decodes and parses a TOML document; a syntax error becomes one diagnostic at its position.
pub(crate) fn parse_document<'a>(
    path: &'a Path,
    bytes: &'a [u8],
) -> Result<(Ctx<'a>, Spanned<DeTable<'a>>), Diagnostic> {
    let text = source::decode(path, bytes)?;
    let src = Source::new(path, text);
    match DeTable::parse(text) {
        Ok(doc) => Ok((Ctx::new(src), doc)),
        Err(err) => {
            let span = err.span();
            let mut message = err.message().to_owned();
            if message == "duplicate key" {
                if let Some(key) = span.as_ref().and_then(|s| src.slice(s)) {
                    message = format!("duplicate key `{}`", quote(key));
                }
            } else if message.contains("recursion") {
                message = "the document is nested too deeply".to_owned();
            }
            let pos = match span {
                Some(s) => src.span_pos(&s),
                // toml reports a dotted key over its depth limit without a position.
                None if message.contains("nested") => {
                    source::deep_key(text).unwrap_or(source::Pos::FILE)
                }
                None => source::Pos::FILE,
            };
            Err(Diagnostic {
                file: path.to_path_buf(),
                line: pos.line,
                col: pos.col,
                severity: Severity::Error,
                message: format!("invalid TOML: {message}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A temporary directory removed on drop, even when a test fails.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("dynamod-config-{}-{n}", std::process::id()));
            fs::create_dir_all(dir.join("services")).unwrap();
            fs::create_dir_all(dir.join("supervisors")).unwrap();
            Self(dir)
        }

        fn write(&self, rel: &str, text: &[u8]) {
            fs::write(self.0.join(rel), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn service(name: &str) -> String {
        format!("[service]\nname = \"{name}\"\nexec = [\"/bin/{name}\"]\n")
    }

    #[test]
    fn load_reads_toml_files_in_sorted_name_order() {
        let tmp = TempDir::new();
        for name in ["zeta", "alpha", "mid", "b10", "b9"] {
            tmp.write(&format!("services/{name}.toml"), service(name).as_bytes());
        }
        tmp.write("services/notes.txt", b"not toml");
        tmp.write("services/.hidden.toml", b"garbage");
        tmp.write("services/alpha.toml~", b"backup");
        fs::create_dir(tmp.0.join("services/dir.toml")).unwrap();
        tmp.write("supervisors/desk.toml", b"[supervisor]\nname = \"desk\"\n");
        let c = load_root(&tmp.0);
        let names: Vec<_> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alpha", "b10", "b9", "mid", "zeta"]);
        assert_eq!(c.services[0].file, tmp.0.join("services/alpha.toml"));
        assert!(c.invalid.is_empty());
        assert_eq!(c.supervisors.len(), 2);
        let diags: Vec<_> = c
            .diagnostics
            .iter()
            .map(|d| (d.severity, d.message.as_str()))
            .collect();
        assert_eq!(diags, [(Severity::Warning, "skipped: not a regular file")]);
        assert_eq!(c.diagnostics[0].file, tmp.0.join("services/dir.toml"));
    }

    #[test]
    fn a_missing_service_directory_is_an_error_without_panic() {
        let tmp = TempDir::new();
        let c = load(&tmp.0.join("nope"), &tmp.0.join("supervisors"));
        assert!(c.services.is_empty());
        assert_eq!(c.supervisors, vec![SupervisorConfig::builtin_root()]);
        assert_eq!(c.diagnostics.len(), 1);
        let d = &c.diagnostics[0];
        assert_eq!((d.line, d.col, d.severity), (0, 0, Severity::Error));
        assert!(
            d.message.starts_with("cannot read directory: "),
            "{}",
            d.message
        );
        assert_eq!(d.file, tmp.0.join("nope"));
    }

    #[test]
    fn a_missing_supervisor_directory_is_fine() {
        let tmp = TempDir::new();
        tmp.write("services/a.toml", service("a").as_bytes());
        let c = load(&tmp.0.join("services"), &tmp.0.join("nope"));
        assert_eq!(c.services.len(), 1);
        assert!(c.diagnostics.is_empty());
    }

    #[test]
    fn a_file_given_as_a_directory_is_reported() {
        let tmp = TempDir::new();
        tmp.write("plain", b"");
        let c = load(&tmp.0.join("plain"), &tmp.0.join("plain"));
        assert_eq!(c.diagnostics.len(), 2);
        assert!(
            c.diagnostics
                .iter()
                .all(|d| d.message.starts_with("cannot read directory: "))
        );
    }

    #[test]
    fn oversized_files_on_disk_are_refused_unread() {
        let tmp = TempDir::new();
        let mut big = service("big").into_bytes();
        big.resize(MAX_FILE_SIZE + 10, b'\n');
        tmp.write("services/big.toml", &big);
        tmp.write("services/ok.toml", service("ok").as_bytes());
        let c = load_root(&tmp.0);
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.invalid.len(), 1);
        let reason = &c.invalid[0].reason;
        let file = tmp.0.join("services/big.toml");
        assert_eq!(
            *reason,
            format!(
                "{}: file is too large (1048586 bytes; the limit is 1048576 bytes)",
                file.display()
            )
        );
    }

    #[test]
    fn load_sources_matches_load() {
        let tmp = TempDir::new();
        let a = service("a") + "[dependencies]\nrequires = [\"zz\"]\n";
        tmp.write("services/a.toml", a.as_bytes());
        tmp.write("services/b.toml", b"[service]\nname = 1\n");
        let from_disk = load_root(&tmp.0);
        let from_memory = load_sources(
            vec![
                (tmp.0.join("services/a.toml"), a.into_bytes()),
                (
                    tmp.0.join("services/b.toml"),
                    b"[service]\nname = 1\n".to_vec(),
                ),
            ],
            vec![],
        );
        assert_eq!(from_disk.services, from_memory.services);
        assert_eq!(from_disk.invalid, from_memory.invalid);
        assert_eq!(from_disk.diagnostics, from_memory.diagnostics);
    }

    #[test]
    fn diagnostics_display_like_compiler_messages() {
        let d = |line, col, severity| Diagnostic {
            file: PathBuf::from("/etc/dynamod/services/web.toml"),
            line,
            col,
            severity,
            message: "something is off".into(),
        };
        assert_eq!(
            d(3, 7, Severity::Error).to_string(),
            "/etc/dynamod/services/web.toml:3:7: error: something is off"
        );
        assert_eq!(
            d(3, 0, Severity::Warning).to_string(),
            "/etc/dynamod/services/web.toml:3: warning: something is off"
        );
        assert_eq!(
            d(0, 0, Severity::Error).to_string(),
            "/etc/dynamod/services/web.toml: error: something is off"
        );
        assert_eq!(
            d(3, 7, Severity::Error).located_message(),
            "/etc/dynamod/services/web.toml:3:7: something is off"
        );
        assert!(d(1, 1, Severity::Error).is_error());
        assert!(!d(1, 1, Severity::Warning).is_error());
    }

    #[test]
    fn parse_service_returns_warnings_or_every_diagnostic() {
        let (config, warnings) =
            parse_service(Path::new("x.toml"), service("web").as_bytes()).unwrap();
        assert_eq!(config.name, "web");
        assert_eq!(warnings.len(), 1, "name differs from the stem");
        let errors = parse_service(
            Path::new("web.toml"),
            b"[service]\nname = \"web\"\nfoo = 1\n",
        )
        .unwrap_err();
        let shown: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "web.toml:1:1: error: missing required key `exec` in [service]",
                "web.toml:3:1: error: unknown key `foo` in [service]",
            ]
        );
    }

    #[test]
    fn parse_supervisor_returns_warnings_or_every_diagnostic() {
        let (config, warnings) =
            parse_supervisor(Path::new("s.toml"), b"[supervisor]\nname = \"s\"\n").unwrap();
        assert_eq!((config.name.as_str(), warnings.len()), ("s", 0));
        let errors = parse_supervisor(Path::new("s.toml"), b"[supervisor]\n").unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "s.toml:1:1: error: missing required key `name` in [supervisor]"
        );
    }

    #[test]
    fn config_lookups_find_services_and_supervisors() {
        let c = load_sources(
            vec![(PathBuf::from("a.toml"), service("a").into_bytes())],
            vec![],
        );
        assert_eq!(
            c.service("a").map(|s| s.exec.clone()),
            Some(vec!["/bin/a".to_owned()])
        );
        assert!(c.service("b").is_none());
        assert!(c.supervisor(ROOT_SUPERVISOR).is_some());
        assert!(!c.has_errors());
    }
}
