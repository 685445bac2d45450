//! The bad-input sweep (issue 8): every field of both file kinds with values of every wrong TOML
//! type and with wrong values, files of 10 MB, deep nesting, bytes that are not UTF-8, byte-order
//! marks, CRLF line endings, names with `/` or `..`, and one name in two files.
//!
//! Whatever the input, loading never panics, the bad file is refused while the other files
//! still load, and every message names the file and the line (and column) of the problem; only
//! a whole-file problem such as the size has no line. The same cases written with CRLF endings
//! or behind a byte-order mark give exactly the same diagnostics.

// Helpers outside `#[test]` functions may fail loudly too: a panic is a test failure here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dynamod_config::{
    Config, Diagnostic, MAX_FILE_SIZE, Severity, load, load_sources, parse_service,
    parse_supervisor,
};

/// The TOML value types, for "wrong type" cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
    Datetime,
    Array,
    Table,
}

const EVERY_TYPE: [Ty; 7] = [
    Ty::Str,
    Ty::Int,
    Ty::Float,
    Ty::Bool,
    Ty::Datetime,
    Ty::Array,
    Ty::Table,
];

impl Ty {
    /// A value of this type.
    fn sample(self) -> &'static str {
        match self {
            Ty::Str => "\"text\"",
            Ty::Int => "7",
            Ty::Float => "1.5",
            Ty::Bool => "true",
            Ty::Datetime => "1979-05-27T07:32:00Z",
            Ty::Array => "[1]",
            Ty::Table => "{ a = 1 }",
        }
    }
}

/// One configuration key: where it lives, which value types it takes, a good value and bad
/// values of an accepted type.
struct Field {
    /// The table (`service`, `service.user`, `restart`, …).
    table: &'static str,
    key: &'static str,
    accepts: &'static [Ty],
    good: &'static str,
    bad: &'static [&'static str],
}

const S: &[Ty] = &[Ty::Str];
const I: &[Ty] = &[Ty::Int];
const B: &[Ty] = &[Ty::Bool];
const A: &[Ty] = &[Ty::Array];
const T: &[Ty] = &[Ty::Table];
const SI: &[Ty] = &[Ty::Str, Ty::Int];

/// Bad names for every key that holds a service or supervisor name.
const BAD_NAMES: &[&str] = &[
    "\"\"",
    "\"Web\"",
    "\"a/b\"",
    "\"..\"",
    "\"../etc\"",
    "\"a..b\"",
    "\"/abs\"",
    "\"-x\"",
    "\"a b\"",
    "\"tab\\there\"",
    "\"nul\\u0000\"",
    "\"ü\"",
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
];

/// Bad elements of a list of names, as whole arrays.
const BAD_NAME_LISTS: &[&str] = &[
    "[\"a/b\"]",
    "[\"..\"]",
    "[\"x\", \"../up\"]",
    "[\"B\"]",
    "[\"\"]",
    "[1]",
    "[[\"a\"]]",
];

const BAD_PATHS: &[&str] = &[
    "\"relative/path\"",
    "\"\"",
    "\"/a/../b\"",
    "\"/..\"",
    "\"/a\\u0000\"",
];

const BAD_DURATIONS: &[&str] = &[
    "\"x\"",
    "\"\"",
    "\"-1s\"",
    "\"1.5s\"",
    "\"1y\"",
    "\"10 s\"",
    "\"s\"",
    "\"1s1m\"",
    "\"99999999999999999999h\"",
    "-1",
    "4294967296",
];

const BAD_SIZES: &[&str] = &[
    "\"12Q\"",
    "\"\"",
    "\"-1\"",
    "\"1.5G\"",
    "\"M\"",
    "\"99999999999T\"",
    "-1",
];

const BAD_COMMANDS: &[&str] = &[
    "[]",
    "[\"\"]",
    "[1]",
    "[\"/bin/x\", 2]",
    "[\"/bin/x\", \"\"]",
    "[\"/bin/x\\u0000\"]",
    "[[\"/bin/x\"]]",
];

const BAD_IDS: &[&str] = &[
    "-1",
    "4294967295",
    "\"4294967295\"",
    "\"\"",
    "\"a:b\"",
    "\"a/b\"",
    "\"-x\"",
    "\"has space\"",
    "\"bell\\u0007\"",
];

/// Every key of a service file.
const SERVICE_FIELDS: &[Field] = &[
    Field {
        table: "service",
        key: "name",
        accepts: S,
        good: "\"web\"",
        bad: BAD_NAMES,
    },
    Field {
        table: "service",
        key: "supervisor",
        accepts: S,
        good: "\"desktop\"",
        bad: BAD_NAMES,
    },
    Field {
        table: "service",
        key: "exec",
        accepts: A,
        good: "[\"nginx\", \"-g\", \"daemon off;\"]",
        bad: BAD_COMMANDS,
    },
    Field {
        table: "service",
        key: "workdir",
        accepts: S,
        good: "\"/srv\"",
        bad: BAD_PATHS,
    },
    Field {
        table: "service",
        key: "type",
        accepts: S,
        good: "\"oneshot\"",
        bad: &["\"daemon\"", "\"\"", "\"Simple\"", "\"one-shot\""],
    },
    Field {
        table: "service",
        key: "environment",
        accepts: T,
        good: "{ LANG = \"C.UTF-8\", \"dotted.name\" = \"x\" }",
        bad: &[
            "{ \"A=B\" = \"x\" }",
            "{ \"\" = \"x\" }",
            "{ \"N\\u0000\" = \"x\" }",
            "{ A = 1 }",
            "{ A = [\"x\"] }",
            "{ A = { B = \"x\" } }",
            "{ A = \"nul\\u0000\" }",
        ],
    },
    Field {
        table: "service",
        key: "environment-file",
        accepts: S,
        good: "\"/etc/default/web\"",
        bad: BAD_PATHS,
    },
    Field {
        table: "service",
        key: "pidfile",
        accepts: S,
        good: "\"/run/web.pid\"",
        bad: BAD_PATHS,
    },
    Field {
        table: "service",
        key: "tty",
        accepts: S,
        good: "\"/dev/tty2\"",
        bad: BAD_PATHS,
    },
    Field {
        table: "service",
        key: "main",
        accepts: B,
        good: "true",
        bad: &[],
    },
    Field {
        table: "service",
        key: "user",
        accepts: T,
        good: "{ user = \"www-data\", group = 33 }",
        bad: &[
            "{ user = -1 }",
            "{ nope = 1 }",
            "{ user = \"a:b\" }",
            "{ supplementary-groups = \"audio\" }",
            "{ supplementary-groups = [true] }",
        ],
    },
    Field {
        table: "service.user",
        key: "user",
        accepts: SI,
        good: "\"www-data\"",
        bad: BAD_IDS,
    },
    Field {
        table: "service.user",
        key: "group",
        accepts: SI,
        good: "0",
        bad: BAD_IDS,
    },
    Field {
        table: "service.user",
        key: "supplementary-groups",
        accepts: A,
        good: "[\"audio\", 29, \"44\"]",
        bad: &["[-1]", "[\"a/b\"]", "[\"\"]", "[[1]]", "[1.5]"],
    },
    Field {
        table: "restart",
        key: "policy",
        accepts: S,
        good: "\"transient\"",
        bad: &["\"always\"", "\"\"", "\"Permanent\""],
    },
    Field {
        table: "restart",
        key: "delay",
        accepts: SI,
        good: "\"250ms\"",
        bad: BAD_DURATIONS,
    },
    Field {
        table: "restart",
        key: "max-delay",
        accepts: SI,
        good: "\"1m30s\"",
        // Shorter than the default `delay` (1s) is refused too.
        bad: &["\"x\"", "\"0s\"", "\"500ms\"", "-1", "\"1.5m\""],
    },
    Field {
        table: "restart",
        key: "max-restarts",
        accepts: I,
        good: "0",
        bad: &["-1", "4294967296", "9223372036854775807"],
    },
    Field {
        table: "restart",
        key: "max-restart-window",
        accepts: SI,
        good: "60",
        bad: &["0", "\"0s\"", "\"x\"", "-60"],
    },
    Field {
        table: "restart",
        key: "reset-after",
        accepts: SI,
        good: "\"5m\"",
        bad: BAD_DURATIONS,
    },
    Field {
        table: "restart",
        key: "success-exit-codes",
        accepts: A,
        good: "[143, 0]",
        bad: &["[256]", "[-1]", "[\"0\"]", "[1.0]", "[[0]]"],
    },
    Field {
        table: "readiness",
        key: "type",
        accepts: S,
        good: "\"notify\"",
        // "tcp-port" and "exec" without their parameters are refused too.
        bad: &["\"tcp\"", "\"\"", "\"NOTIFY\"", "\"tcp-port\"", "\"exec\""],
    },
    Field {
        table: "readiness",
        key: "port",
        accepts: I,
        good: "8080",
        bad: &["0", "65536", "-1"],
    },
    Field {
        table: "readiness",
        key: "host",
        accepts: S,
        good: "\"::1\"",
        bad: &["\"localhost\"", "\"\"", "\"1.2.3.4.5\"", "\"127.0.0.1:80\""],
    },
    Field {
        table: "readiness",
        key: "check-exec",
        accepts: A,
        good: "[\"/bin/true\"]",
        bad: BAD_COMMANDS,
    },
    Field {
        table: "readiness",
        key: "interval",
        accepts: SI,
        good: "2",
        bad: &["0", "\"0ms\"", "\"x\"", "-2"],
    },
    Field {
        table: "readiness",
        key: "timeout",
        accepts: SI,
        good: "\"10s\"",
        bad: &["0", "\"0s\"", "\"x\"", "-1"],
    },
    Field {
        table: "dependencies",
        key: "requires",
        accepts: A,
        good: "[\"network\"]",
        bad: BAD_NAME_LISTS,
    },
    Field {
        table: "dependencies",
        key: "wants",
        accepts: A,
        good: "[\"syslog\"]",
        bad: BAD_NAME_LISTS,
    },
    Field {
        table: "dependencies",
        key: "after",
        accepts: A,
        good: "[\"bootmisc\"]",
        bad: BAD_NAME_LISTS,
    },
    Field {
        table: "dependencies",
        key: "before",
        accepts: A,
        good: "[\"getty\"]",
        bad: BAD_NAME_LISTS,
    },
    Field {
        table: "cgroup",
        key: "memory-max",
        accepts: SI,
        good: "\"512M\"",
        bad: BAD_SIZES,
    },
    Field {
        table: "cgroup",
        key: "memory-high",
        accepts: SI,
        good: "1073741824",
        bad: BAD_SIZES,
    },
    Field {
        table: "cgroup",
        key: "cpu-weight",
        accepts: I,
        good: "100",
        bad: &["0", "10001", "-1"],
    },
    Field {
        table: "cgroup",
        key: "cpu-max",
        accepts: S,
        good: "\"50%\"",
        bad: &[
            "\"half\"",
            "\"\"",
            "\"0%\"",
            "\"1 0\"",
            "\"-5%\"",
            "\"50000 10\"",
        ],
    },
    Field {
        table: "cgroup",
        key: "pids-max",
        accepts: SI,
        good: "\"max\"",
        bad: &["0", "-1", "\"100\"", "\"unlimited\""],
    },
    Field {
        table: "cgroup",
        key: "io-weight",
        accepts: I,
        good: "10000",
        bad: &["0", "10001"],
    },
    Field {
        table: "namespace",
        key: "enable",
        accepts: A,
        good: "[\"pid\", \"net\"]",
        bad: &["[\"time\"]", "[3]", "[\"PID\"]", "[\"\"]", "[[\"pid\"]]"],
    },
    Field {
        table: "namespace",
        key: "bind-mounts",
        accepts: A,
        good: "[{ source = \"/srv\", target = \"/srv\", writable = true }]",
        bad: &[
            "[{ source = \"rel\", target = \"/x\" }]",
            "[{ source = \"/a\", target = \"/b/../c\" }]",
            "[{ target = \"/y\" }]",
            "[{ source = \"/y\" }]",
            "[\"s\"]",
            "[{ source = \"/a\", target = \"/b\", extra = 1 }]",
            "[{ source = \"/a\", target = \"/b\", writable = \"yes\" }]",
        ],
    },
    Field {
        table: "namespace",
        key: "private-tmp",
        accepts: B,
        good: "true",
        bad: &[],
    },
    Field {
        table: "namespace",
        key: "protect-system",
        accepts: S,
        good: "\"full\"",
        bad: &["\"ful\"", "\"yes\"", "\"\""],
    },
    Field {
        table: "shutdown",
        key: "stop-signal",
        accepts: SI,
        good: "\"SIGQUIT\"",
        bad: &[
            "\"SIGFOO\"",
            "\"\"",
            "99",
            "0",
            "-1",
            "32",
            "\"32\"",
            "9223372036854775807",
        ],
    },
    Field {
        table: "shutdown",
        key: "stop-timeout",
        accepts: SI,
        good: "\"30s\"",
        bad: BAD_DURATIONS,
    },
    Field {
        table: "shutdown",
        key: "stop-exec",
        accepts: A,
        good: "[\"/usr/sbin/nginx\", \"-s\", \"quit\"]",
        bad: BAD_COMMANDS,
    },
    Field {
        table: "log",
        key: "max-size",
        accepts: SI,
        good: "\"10M\"",
        bad: &["0", "\"max\"", "\"x\"", "-1"],
    },
    Field {
        table: "log",
        key: "max-files",
        accepts: I,
        good: "5",
        bad: &["-2", "4294967296"],
    },
];

/// Every key of a supervisor file.
const SUPERVISOR_FIELDS: &[Field] = &[
    Field {
        table: "supervisor",
        key: "name",
        accepts: S,
        good: "\"desk\"",
        bad: BAD_NAMES,
    },
    Field {
        table: "supervisor",
        key: "parent",
        accepts: S,
        good: "\"early-boot\"",
        bad: BAD_NAMES,
    },
    Field {
        table: "supervisor",
        key: "strategy",
        accepts: S,
        good: "\"rest-for-one\"",
        bad: &["\"one_for_one\"", "\"all\"", "\"\""],
    },
    Field {
        table: "restart",
        key: "max-restarts",
        accepts: I,
        good: "4",
        bad: &["-1", "4294967296"],
    },
    Field {
        table: "restart",
        key: "max-restart-window",
        accepts: SI,
        good: "\"2m\"",
        bad: &["0", "\"0s\"", "\"x\"", "-1"],
    },
];

/// Where the sweep's service files live.
const SERVICE_PATH: &str = "/etc/dynamod/services/web.toml";
/// Where the sweep's supervisor files live.
const SUPERVISOR_PATH: &str = "/etc/dynamod/supervisors/desk.toml";

/// A file with `key = value` in `table`, and the 1-based line of that key.
fn file_with(kind: Kind, table: &str, key: &str, value: &str) -> (String, usize) {
    let (head, defaults): (&str, &[(&str, &str)]) = match kind {
        Kind::Service => (
            "service",
            &[("name", "\"web\""), ("exec", "[\"/bin/web\"]")],
        ),
        Kind::Supervisor => ("supervisor", &[("name", "\"desk\"")]),
    };
    let mut lines = vec![format!("[{head}]")];
    for (k, v) in defaults {
        if !(table == head && key == *k) {
            lines.push(format!("{k} = {v}"));
        }
    }
    if table != head {
        lines.push(format!("[{table}]"));
    }
    lines.push(format!("{key} = {value}"));
    let line = lines.len();
    lines.push("# end".to_owned());
    (lines.join("\n") + "\n", line)
}

/// Service file or supervisor file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Supervisor,
}

impl Kind {
    fn path(self) -> &'static Path {
        Path::new(match self {
            Kind::Service => SERVICE_PATH,
            Kind::Supervisor => SUPERVISOR_PATH,
        })
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Kind::Service => SERVICE_FIELDS,
            Kind::Supervisor => SUPERVISOR_FIELDS,
        }
    }

    /// Parses one file alone: `Ok` with warnings, or `Err` with every diagnostic.
    fn parse(self, bytes: &[u8]) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        let path = self.path();
        match self {
            Kind::Service => parse_service(path, bytes).map(|(_, w)| w),
            Kind::Supervisor => parse_supervisor(path, bytes).map(|(_, w)| w),
        }
    }
}

/// A diagnostic names a line inside the file and a column, reads as one line, and displays as
/// `file:line:col: severity: message`.
fn assert_located(d: &Diagnostic, text: &str) {
    let lines = text.split('\n').count();
    assert!(d.line >= 1 && d.line <= lines, "line out of the file: {d}");
    assert!(d.col >= 1, "no column: {d}");
    assert!(!d.message.contains(char::is_control), "not one line: {d:?}");
    let prefix = format!(
        "{}:{}:{}: {}: ",
        d.file.display(),
        d.line,
        d.col,
        d.severity
    );
    assert!(d.to_string().starts_with(&prefix), "{d}");
}

/// The file is refused, with an error on `line` whose message names `table.key`; every other
/// diagnostic is located too.
fn assert_refused_at(kind: Kind, text: &str, line: usize, table: &str, key: &str) {
    let what = format!("{table}.{key}");
    let diags = match kind.parse(text.as_bytes()) {
        Ok(warnings) => panic!("accepted (warnings: {warnings:?}):\n{text}"),
        Err(diags) => diags,
    };
    for d in &diags {
        assert_located(d, text);
        assert_eq!(d.file, kind.path());
    }
    let named = diags
        .iter()
        .any(|d| d.severity == Severity::Error && d.line == line && d.message.contains(&what));
    assert!(
        named,
        "no error on line {line} naming `{what}`: {diags:#?}\n{text}"
    );
}

/// The same text with CRLF endings, and behind a byte-order mark, gives the same result.
fn assert_same_with_crlf_and_bom(kind: Kind, text: &str) {
    let lf = kind.parse(text.as_bytes());
    let crlf = kind.parse(text.replace('\n', "\r\n").as_bytes());
    assert_eq!(crlf, lf, "CRLF changes the diagnostics of:\n{text}");
    let bom = kind.parse(format!("\u{FEFF}{text}").as_bytes());
    assert_eq!(
        bom, lf,
        "a byte-order mark changes the diagnostics of:\n{text}"
    );
}

#[test]
fn every_field_takes_its_good_value() {
    for kind in [Kind::Service, Kind::Supervisor] {
        for f in kind.fields() {
            let (text, _) = file_with(kind, f.table, f.key, f.good);
            match kind.parse(text.as_bytes()) {
                Ok(warnings) => {
                    for w in &warnings {
                        assert_located(w, &text);
                    }
                }
                Err(diags) => panic!("{}.{} refused: {diags:#?}", f.table, f.key),
            }
            assert_same_with_crlf_and_bom(kind, &text);
        }
    }
}

#[test]
fn every_field_refuses_every_wrong_type_at_its_line() {
    let mut cases = 0;
    for kind in [Kind::Service, Kind::Supervisor] {
        for f in kind.fields() {
            for ty in EVERY_TYPE.iter().filter(|t| !f.accepts.contains(t)) {
                let (text, line) = file_with(kind, f.table, f.key, ty.sample());
                assert_refused_at(kind, &text, line, f.table, f.key);
                assert_same_with_crlf_and_bom(kind, &text);
                cases += 1;
            }
        }
    }
    assert!(cases > 250, "only {cases} cases");
}

#[test]
fn every_field_refuses_bad_values_at_its_line() {
    let mut cases = 0;
    for kind in [Kind::Service, Kind::Supervisor] {
        for f in kind.fields() {
            for bad in f.bad {
                let (text, line) = file_with(kind, f.table, f.key, bad);
                assert_refused_at(kind, &text, line, f.table, f.key);
                assert_same_with_crlf_and_bom(kind, &text);
                cases += 1;
            }
        }
    }
    assert!(cases > 250, "only {cases} cases");
}

#[test]
fn every_table_refuses_a_misspelt_key_and_suggests_the_right_one() {
    for kind in [Kind::Service, Kind::Supervisor] {
        for f in kind.fields() {
            // `stop_signal` for `stop-signal`, `Name` for `name`.
            let typo = if f.key.contains('-') {
                f.key.replace('-', "_")
            } else {
                let mut chars = f.key.chars();
                let first = chars.next().unwrap().to_ascii_uppercase();
                format!("{first}{}", chars.as_str())
            };
            let (text, line) = file_with(kind, f.table, &typo, f.good);
            let diags = kind.parse(text.as_bytes()).unwrap_err();
            let hint = format!("did you mean `{}`?", f.key);
            let found = diags
                .iter()
                .any(|d| d.line == line && d.message.contains(&hint));
            assert!(found, "{typo}: no `{hint}` on line {line}: {diags:#?}");
        }
    }
}

#[test]
fn every_table_given_as_a_plain_value_is_refused() {
    let service_tables = [
        "restart",
        "readiness",
        "dependencies",
        "cgroup",
        "namespace",
        "shutdown",
        "log",
    ];
    for table in service_tables {
        for ty in EVERY_TYPE.iter().filter(|t| **t != Ty::Table) {
            // Before [service], so that the key is at the top level.
            let text = format!(
                "{table} = {}\n[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n",
                ty.sample()
            );
            let diags = Kind::Service.parse(text.as_bytes()).unwrap_err();
            let msg = format!("`{table}` must be a table");
            assert!(
                diags
                    .iter()
                    .any(|d| d.line == 1 && d.message.contains(&msg)),
                "{text}: {diags:#?}"
            );
        }
    }
    for text in [
        "service = 5\n",
        "service = [1]\n",
        "[[service]]\nname = \"web\"\n",
    ] {
        let diags = Kind::Service.parse(text.as_bytes()).unwrap_err();
        assert!(
            diags.iter().any(|d| d.is_error() && d.line == 1),
            "{text}: {diags:#?}"
        );
    }
    for text in [
        "supervisor = \"desk\"\n",
        "[[supervisor]]\nname = \"desk\"\n",
    ] {
        let diags = Kind::Supervisor.parse(text.as_bytes()).unwrap_err();
        assert!(
            diags.iter().any(|d| d.is_error() && d.line == 1),
            "{text}: {diags:#?}"
        );
    }
}

/// A temporary `/etc/dynamod` look-alike, removed on drop even when a test fails.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dynamod-bad-input-{}-{n}", std::process::id()));
        fs::create_dir_all(dir.join("services")).unwrap();
        fs::create_dir_all(dir.join("supervisors")).unwrap();
        Self(dir)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(rel);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// A valid service `name` in `services/NAME.toml`.
    fn good_service(&self, name: &str) -> PathBuf {
        let text = format!("[service]\nname = \"{name}\"\nexec = [\"/bin/{name}\"]\n");
        self.write(&format!("services/{name}.toml"), text.as_bytes())
    }

    fn load(&self) -> Config {
        load(&self.0.join("services"), &self.0.join("supervisors"))
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The only error of `config`, which must be about `file`.
fn only_error<'c>(config: &'c Config, file: &Path) -> &'c Diagnostic {
    let errors: Vec<_> = config.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, file);
    errors[0]
}

/// `bad.toml` (written by the caller) is refused, `good.toml` next to it still loads.
fn assert_only_bad_refused(config: &Config, bad: &Path) {
    let valid: Vec<_> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(valid, ["good"]);
    assert_eq!(config.invalid.len(), 1);
    assert_eq!(config.invalid[0].file, bad);
    let reason = &config.invalid[0].reason;
    assert!(reason.starts_with(&bad.display().to_string()), "{reason}");
}

#[test]
fn a_ten_megabyte_file_is_refused_by_its_size_and_the_others_load() {
    let dir = ConfigDir::new();
    dir.good_service("good");
    let mut big = b"[service]\nname = \"bad\"\nexec = [\"/bin/bad\"]\n".to_vec();
    while big.len() < 10 << 20 {
        big.extend_from_slice(b"# padding padding padding padding padding padding padding\n");
    }
    let bad = dir.write("services/bad.toml", &big);
    let config = dir.load();
    assert_only_bad_refused(&config, &bad);
    let d = only_error(&config, &bad);
    // The one message without a line: it is about the whole file.
    assert_eq!((d.line, d.col), (0, 0));
    assert_eq!(
        d.message,
        format!(
            "file is too large ({} bytes; the limit is {MAX_FILE_SIZE} bytes)",
            big.len()
        )
    );

    // The same from memory, and for a supervisor file.
    let err = parse_service(&bad, &big).unwrap_err();
    assert_eq!(err, vec![d.clone()]);
    let err = parse_supervisor(Path::new(SUPERVISOR_PATH), &big).unwrap_err();
    assert!(err[0].message.starts_with("file is too large"));
}

#[test]
fn a_file_just_under_the_limit_is_parsed() {
    let mut text = "[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n".to_owned();
    let line = "# padding padding padding padding padding padding padding\n";
    while text.len() + line.len() <= MAX_FILE_SIZE {
        text.push_str(line);
    }
    assert!(parse_service(Path::new(SERVICE_PATH), text.as_bytes()).is_ok());
}

#[test]
fn deep_nesting_is_refused_with_a_line_and_the_others_load() {
    const DEPTH: usize = 100_000;
    let head = "[service]\nname = \"bad\"\nexec = [\"/bin/bad\"]\n";
    let cases = [
        format!("{head}x = {}{}\n", "[".repeat(DEPTH), "]".repeat(DEPTH)),
        format!("{head}x = {}1{}\n", "{a=".repeat(DEPTH), "}".repeat(DEPTH)),
        format!("{head}{} = 1\n", vec!["a"; DEPTH].join(".")),
        format!("{head}[{}]\n", vec!["a"; DEPTH].join(".")),
        format!(
            "{head}[restart]\ndelay = {}\"1s\"{}\n",
            "[".repeat(DEPTH),
            "]".repeat(DEPTH)
        ),
        format!(
            "{head}environment = {}\n",
            "{ a = ".repeat(DEPTH / 2) + "1" + &"}".repeat(DEPTH / 2)
        ),
    ];
    for text in cases {
        assert!(text.len() <= MAX_FILE_SIZE);
        let dir = ConfigDir::new();
        dir.good_service("good");
        let bad = dir.write("services/bad.toml", text.as_bytes());
        let config = dir.load();
        assert_only_bad_refused(&config, &bad);
        let d = only_error(&config, &bad);
        assert_eq!(d.line, text.lines().count(), "{d}");
        assert_located(d, &text);
    }
    // Deep but legal nesting where a table is expected is refused by type, not by depth.
    let text = format!(
        "{head}[namespace]\nbind-mounts = {}{}\n",
        "[".repeat(50),
        "]".repeat(50)
    );
    let diags = parse_service(Path::new(SERVICE_PATH), text.as_bytes()).unwrap_err();
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.iter().all(|d| d.line == 5), "{errors:#?}");
    assert!(
        errors[0].message.contains("namespace.bind-mounts[0]"),
        "{errors:#?}"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_reported_at_their_line_and_column() {
    let good = "[service]\nname = \"bad\"\nexec = [\"/bin/bad\"]\n";
    // (bytes after `good`, line, column, byte named in the message)
    let cases: &[(&[u8], usize, usize, u8)] = &[
        (b"# caf\xE9\n", 4, 6, 0xE9),
        (b"workdir = \"/srv/\xFF\"\n", 4, 17, 0xFF),
        (b"\xC0\xAF = 1\n", 4, 1, 0xC0),
        (b"x = \"\xED\xA0\x80\"\n", 4, 6, 0xED),
        (b"\n\n# truncated \xE2\x82", 6, 13, 0xE2),
        (b"\xFE\xFF", 4, 1, 0xFE),
        (b"x = 1 # \x80\r\n", 4, 9, 0x80),
    ];
    for (tail, line, col, byte) in cases {
        let mut bytes = good.as_bytes().to_vec();
        bytes.extend_from_slice(tail);
        let dir = ConfigDir::new();
        dir.good_service("good");
        let bad = dir.write("services/bad.toml", &bytes);
        let config = dir.load();
        assert_only_bad_refused(&config, &bad);
        let d = only_error(&config, &bad);
        assert_eq!((d.line, d.col), (*line, *col), "{d}");
        assert_eq!(
            d.message,
            format!("file is not valid UTF-8 (byte 0x{byte:02X})")
        );
        // Behind a byte-order mark the position is the same.
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(&bytes);
        let err = parse_service(&bad, &with_bom).unwrap_err();
        assert_eq!((err[0].line, err[0].col), (*line, *col));
    }
    let err = parse_supervisor(
        Path::new(SUPERVISOR_PATH),
        b"[supervisor]\nname = \"d\xF0\"\n",
    );
    assert_eq!(err.unwrap_err()[0].line, 2);
}

#[test]
fn byte_order_marks_at_the_start_are_skipped_and_elsewhere_refused() {
    let text = "[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n";
    let path = Path::new(SERVICE_PATH);
    let plain = parse_service(path, text.as_bytes()).unwrap();
    let bom = parse_service(path, format!("\u{FEFF}{text}").as_bytes()).unwrap();
    assert_eq!(bom, plain);
    // The TOML parser skips one more mark at the start (so two are accepted); a mark further
    // on is a misplaced character.
    let two = parse_service(path, format!("\u{FEFF}\u{FEFF}{text}").as_bytes()).unwrap();
    assert_eq!(two, plain);
    let inside = format!("{text}\u{FEFF}x = 1\n");
    let diags = parse_service(path, inside.as_bytes()).unwrap_err();
    assert_eq!((diags[0].line, diags[0].col), (4, 1));
    assert_located(&diags[0], &inside);
    // A UTF-16 mark is not UTF-8.
    let diags = parse_service(path, b"\xFF\xFE[\0s\0").unwrap_err();
    assert_eq!((diags[0].line, diags[0].col), (1, 1));
}

#[test]
fn crlf_files_load_like_lf_files() {
    let dir = ConfigDir::new();
    let text =
        "[service]\nname = \"good\"\nexec = [\"/bin/good\"]\n[dependencies]\nafter = [\"x\"]\n";
    dir.write("services/good.toml", text.replace('\n', "\r\n").as_bytes());
    let sup = "[supervisor]\r\nname = \"desk\"\r\nstrategy = \"one-for-all\"\r\n";
    dir.write("supervisors/desk.toml", sup.as_bytes());
    let config = dir.load();
    assert!(!config.has_errors(), "{:#?}", config.diagnostics);
    assert_eq!(config.services[0].deps.after, ["x"]);
    // The one warning (`x` is unknown) points at the right line and column.
    let d = &config.diagnostics[0];
    assert_eq!(
        (d.line, d.col, d.severity),
        (5, 10, Severity::Warning),
        "{d}"
    );
    assert_eq!(config.supervisors.len(), 2);

    // Mixed endings, and a CR alone (which TOML refuses outside strings), keep their lines.
    let mixed =
        "[service]\r\nname = \"web\"\nexec = [\"/bin/web\"]\r\n[restart]\ndelay = \"x\"\r\n";
    let diags = parse_service(Path::new(SERVICE_PATH), mixed.as_bytes()).unwrap_err();
    assert_eq!((diags[0].line, diags[0].col), (5, 9));
    let lone_cr = "[service]\nname = \"web\"\rexec = [\"/bin/web\"]\n";
    let diags = parse_service(Path::new(SERVICE_PATH), lone_cr.as_bytes()).unwrap_err();
    assert_eq!(diags[0].line, 2, "{diags:#?}");
    assert_located(&diags[0], lone_cr);
}

#[test]
fn names_with_a_slash_or_dot_dot_are_refused_wherever_a_name_goes() {
    let bad_names = [
        "a/b", "..", "../etc", "a/../b", "a..b", "/root", "x/", "...",
    ];
    for name in bad_names {
        let dir = ConfigDir::new();
        dir.good_service("good");
        let cases = [
            (
                "services/bad.toml",
                format!("[service]\nname = \"{name}\"\nexec = [\"/bin/x\"]\n"),
                "service.name",
            ),
            (
                "services/bad.toml",
                format!(
                    "[service]\nname = \"bad\"\nsupervisor = \"{name}\"\nexec = [\"/bin/x\"]\n"
                ),
                "service.supervisor",
            ),
            (
                "services/bad.toml",
                format!(
                    "[service]\nname = \"bad\"\nexec = [\"/bin/x\"]\n[dependencies]\nrequires = [\"{name}\"]\n"
                ),
                "dependencies.requires[0]",
            ),
        ];
        for (rel, text, key) in cases {
            let bad = dir.write(rel, text.as_bytes());
            let config = dir.load();
            assert_only_bad_refused(&config, &bad);
            let d = only_error(&config, &bad);
            assert!(d.message.contains(&format!("`{key}`")), "{d}");
            assert!(
                d.message.starts_with(&format!("invalid name `{name}`")),
                "{d}"
            );
            assert_located(d, &text);
        }
        fs::remove_file(dir.0.join("services/bad.toml")).unwrap();
        for (field, text) in [
            (
                "supervisor.name",
                format!("[supervisor]\nname = \"{name}\"\n"),
            ),
            (
                "supervisor.parent",
                format!("[supervisor]\nname = \"desk\"\nparent = \"{name}\"\n"),
            ),
        ] {
            let bad = dir.write("supervisors/desk.toml", text.as_bytes());
            let config = dir.load();
            let d = only_error(&config, &bad);
            assert!(d.message.contains(&format!("`{field}`")), "{d}");
            assert_located(d, &text);
            assert_eq!(config.supervisors.len(), 1, "only the built-in root");
            assert_eq!(config.services.len(), 1, "the good service still loads");
        }
    }
}

#[test]
fn an_unreadable_name_is_shown_by_the_file_stem_and_never_loaded() {
    let dir = ConfigDir::new();
    dir.good_service("good");
    let bad = dir.write(
        "services/a..b.toml",
        b"[service]\nname = \"a..b\"\nexec = [\"/x\"]\n",
    );
    let config = dir.load();
    assert_only_bad_refused(&config, &bad);
    // For display only: the stem of the file, since the name itself was refused.
    assert_eq!(config.invalid[0].name, "a..b");
}

#[test]
fn one_name_in_two_files_refuses_the_second_and_names_both_files() {
    let dir = ConfigDir::new();
    let first = dir.good_service("good");
    let second = dir.write(
        "services/other.toml",
        b"# copy\n[service]\nname = \"good\"\nexec = [\"/bin/other\"]\n",
    );
    let config = dir.load();
    let valid: Vec<_> = config
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.file.clone()))
        .collect();
    assert_eq!(valid, [("good", first.clone())]);
    let d = only_error(&config, &second);
    assert_eq!((d.line, d.col), (3, 8));
    assert_eq!(
        d.message,
        format!(
            "duplicate service name `good`: already defined in {}",
            first.display()
        )
    );
    assert_eq!(config.invalid[0].file, second);

    // Supervisors: the same rule.
    dir.write("supervisors/a.toml", b"[supervisor]\nname = \"desk\"\n");
    let dup = dir.write("supervisors/b.toml", b"[supervisor]\n\nname = \"desk\"\n");
    let config = dir.load();
    let d = config
        .diagnostics
        .iter()
        .find(|d| d.file == dup && d.is_error())
        .expect("an error about the second supervisor file");
    assert_eq!(d.line, 3);
    assert!(
        d.message.starts_with("duplicate supervisor name `desk`"),
        "{d}"
    );

    // A service may not take a supervisor's name either.
    let clash = dir.write(
        "services/desk.toml",
        b"[service]\nname = \"desk\"\nexec = [\"/x\"]\n",
    );
    let config = dir.load();
    let d = config
        .diagnostics
        .iter()
        .find(|d| d.file == clash)
        .expect("a message");
    assert_eq!((d.line, d.severity), (2, Severity::Error));
}

#[test]
fn arbitrary_garbage_files_never_panic_and_every_message_has_a_line() {
    // Files made of every byte value and of TOML punctuation: refused, never a panic.
    let mut all_bytes: Vec<u8> = (0..=255).collect();
    all_bytes.extend((0..=255).rev());
    let punctuation = b"[[]]{}=\"\"\"'''.,#\\\n\r\t".repeat(50);
    let cases: Vec<Vec<u8>> = vec![
        all_bytes,
        punctuation,
        b"\0\0\0".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"=".to_vec(),
        b"\"\"\"".to_vec(),
        b"[service]\nname = \"\"\"\nweb\nexec = [\"/bin/x\"]\n".to_vec(),
    ];
    let dir = ConfigDir::new();
    dir.good_service("good");
    for bytes in cases {
        let bad = dir.write("services/bad.toml", &bytes);
        dir.write("supervisors/bad.toml", &bytes);
        let config = dir.load();
        assert_eq!(config.services.len(), 1, "the good service still loads");
        assert!(config.invalid.iter().all(|i| i.file == bad));
        for d in &config.diagnostics {
            assert!(d.line >= 1, "no line: {d}");
            assert!(!d.message.contains(char::is_control), "not one line: {d:?}");
        }
    }
}

#[test]
fn refused_files_through_the_loader_name_file_and_line_in_the_reason() {
    // Every bad-value case again, next to a good file, through the whole loader.
    for f in SERVICE_FIELDS {
        for bad in f.bad {
            let (text, line) = file_with(Kind::Service, f.table, f.key, bad);
            let good = b"[service]\nname = \"good\"\nexec = [\"/bin/good\"]\n".to_vec();
            let services = vec![
                (PathBuf::from("/etc/dynamod/services/good.toml"), good),
                (PathBuf::from(SERVICE_PATH), text.clone().into_bytes()),
            ];
            let config = load_sources(services, vec![]);
            assert!(config.service("good").is_some(), "{text}");
            assert_eq!(config.invalid.len(), 1, "{text}");
            // The reason is the first error: the swept line, with its file.
            let reason = &config.invalid[0].reason;
            let at = format!("{SERVICE_PATH}:{line}:");
            assert!(reason.starts_with(&at), "{reason}\n{text}");
        }
    }
}
