//! Reading a parsed TOML document with positions.
//!
//! [`Ctx`] holds one file's text and the diagnostics found so far. Its typed readers take a
//! value and the dotted path of its key (`restart.delay`, `exec[1]`), and either return the
//! converted value or record an error at the value's position and return `None`, so a parser
//! reads every field and reports every problem of a file in one pass.

use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::model::{IdSpec, Limit, SignalSpec};
use crate::source::{Pos, Source};
use crate::value::{self, MAX_DURATION_SECS, ValueError};
use crate::{Diagnostic, Severity};

/// A value with its span.
pub(crate) type Item<'i> = Spanned<DeValue<'i>>;

/// User text longer than this is cut in messages.
const MAX_QUOTED: usize = 60;

/// Words longer than this get no spelling suggestion (the edit distance is quadratic).
const MAX_SUGGEST_LEN: usize = 64;

/// A table of the document with its dotted path and span.
#[derive(Debug, Clone)]
pub(crate) struct Tbl<'t, 'i> {
    /// `""` for the document, else `service`, `service.user`, `namespace.bind-mounts[0]`.
    pub path: String,
    /// The header (`[service]`), the inline table, or the first dotted key that made it.
    pub span: Range<usize>,
    /// The entries.
    pub map: &'t DeTable<'i>,
}

impl<'t, 'i> Tbl<'t, 'i> {
    /// The whole document.
    pub fn root(doc: &'t Spanned<DeTable<'i>>) -> Self {
        Self {
            path: String::new(),
            span: doc.span(),
            map: doc.get_ref(),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'t Item<'i>> {
        self.map.get(key)
    }

    /// The dotted path of `key` in this table.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// How messages name this table: `[service]` or `` `namespace.bind-mounts[0]` ``.
    pub fn label(&self) -> String {
        if self.path.contains('[') {
            format!("`{}`", self.path)
        } else {
            format!("[{}]", self.path)
        }
    }
}

/// The known tables of a file kind and their keys, used for "it belongs in" hints.
pub(crate) type Schema = &'static [(&'static str, &'static [&'static str])];

/// One file being read: its source and its diagnostics.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The file.
    pub src: Source<'a>,
    /// Everything reported so far.
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    /// Starts reading `src`.
    pub fn new(src: Source<'a>) -> Self {
        Self {
            src,
            diags: Vec::new(),
        }
    }

    /// The position of the start of `span`.
    pub fn pos(&self, span: &Range<usize>) -> Pos {
        self.src.span_pos(span)
    }

    /// Records a diagnostic at a position.
    pub fn report_at(&mut self, pos: Pos, severity: Severity, message: String) {
        self.diags.push(Diagnostic {
            file: self.src.path.to_path_buf(),
            line: pos.line,
            col: pos.col,
            severity,
            message,
        });
    }

    /// Reads `key` of `t` with `read`, passing the key's dotted path; `None` when absent.
    pub fn field<'t, 'i, T>(
        &mut self,
        t: &Tbl<'t, 'i>,
        key: &str,
        read: impl FnOnce(&mut Self, &str, &'t Item<'i>) -> Option<T>,
    ) -> Option<T> {
        let item = t.get(key)?;
        read(self, &t.key_path(key), item)
    }

    /// Records an error at the start of `span`.
    pub fn error(&mut self, span: &Range<usize>, message: String) {
        self.report_at(self.pos(span), Severity::Error, message);
    }

    /// Records a warning at the start of `span`.
    pub fn warning(&mut self, span: &Range<usize>, message: String) {
        self.report_at(self.pos(span), Severity::Warning, message);
    }

    /// True when an error has been recorded.
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }

    /// Records "`path` must be EXPECTED, found a TYPE".
    pub fn wrong_type(&mut self, path: &str, item: &Item<'_>, expected: &str) {
        let found = article(item.get_ref());
        self.error(
            &item.span(),
            format!("`{path}` must be {expected}, found {found}"),
        );
    }

    /// Records "invalid WHAT `VALUE` for `path`: REASON".
    pub fn bad_value(
        &mut self,
        path: &str,
        item: &Item<'_>,
        what: &str,
        text: &str,
        err: &ValueError,
    ) {
        let text = quote(text);
        self.error(
            &item.span(),
            format!("invalid {what} `{text}` for `{path}`: {err}"),
        );
    }

    /// Reports every key of `tbl` not in `valid`, in file order, with a suggestion: a close
    /// spelling in the same table, else another table of `schema` that has this key.
    pub fn check_keys(&mut self, tbl: &Tbl<'_, '_>, valid: &[&str], schema: Schema) {
        let mut unknown: Vec<_> = tbl
            .map
            .iter()
            .filter(|(k, _)| !valid.contains(&k.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|(k, _)| k.span().start);
        for (key, item) in unknown {
            let name = key.get_ref().as_ref();
            let shown = quote(name);
            let is_table = matches!(item.get_ref(), DeValue::Table(_));
            let close = suggest(name, valid);
            let elsewhere = schema
                .iter()
                .find(|(label, keys)| *label != tbl.label() && keys.contains(&name))
                .map(|(label, _)| *label);
            let message = match (tbl.path.is_empty(), is_table, close, elsewhere) {
                (true, true, Some(s), _) => format!("unknown table [{shown}]; did you mean [{s}]?"),
                (true, true, None, _) => format!("unknown table [{shown}]"),
                (true, false, _, Some(t)) => {
                    format!("unknown key `{shown}` at the top level; it belongs in {t}")
                }
                (true, false, _, None) => format!("unknown key `{shown}` at the top level"),
                (false, _, Some(s), _) => {
                    format!(
                        "unknown key `{shown}` in {}; did you mean `{s}`?",
                        tbl.label()
                    )
                }
                (false, _, None, Some(t)) => {
                    format!(
                        "unknown key `{shown}` in {}; it belongs in {t}",
                        tbl.label()
                    )
                }
                (false, _, None, None) => format!("unknown key `{shown}` in {}", tbl.label()),
            };
            self.error(&key.span(), message);
        }
    }

    /// A table value.
    pub fn table<'t, 'i>(&mut self, path: String, item: &'t Item<'i>) -> Option<Tbl<'t, 'i>> {
        match item.get_ref() {
            DeValue::Table(map) => Some(Tbl {
                path,
                span: item.span(),
                map,
            }),
            _ => {
                self.wrong_type(&path, item, "a table");
                None
            }
        }
    }

    /// A string without NUL characters.
    pub fn string<'t>(&mut self, path: &str, item: &'t Item<'_>) -> Option<&'t str> {
        match item.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                self.error(
                    &item.span(),
                    format!("`{path}` must not contain a NUL character"),
                );
                None
            }
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(path, item, "a string");
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, path: &str, item: &Item<'_>) -> Option<bool> {
        match item.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(path, item, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer within `range`.
    pub fn integer(
        &mut self,
        path: &str,
        item: &Item<'_>,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let DeValue::Integer(int) = item.get_ref() else {
            self.wrong_type(path, item, "an integer");
            return None;
        };
        let value = i128::from_str_radix(int.as_str(), int.radix()).ok();
        match value
            .and_then(|v| i64::try_from(v).ok())
            .filter(|v| range.contains(v))
        {
            Some(v) => Some(v),
            None => {
                let (lo, hi) = (range.start(), range.end());
                let found = quote(&int.to_string());
                let msg = if *hi == i64::MAX {
                    format!("`{path}` must be at least {lo}, found {found}")
                } else {
                    format!("`{path}` must be between {lo} and {hi}, found {found}")
                };
                self.error(&item.span(), msg);
                None
            }
        }
    }

    /// An array (of anything).
    pub fn array<'t, 'i>(
        &mut self,
        path: &str,
        item: &'t Item<'i>,
        expected: &str,
    ) -> Option<&'t [Item<'i>]> {
        match item.get_ref() {
            DeValue::Array(items) => Some(items),
            _ => {
                self.wrong_type(path, item, expected);
                None
            }
        }
    }

    /// An array of strings, each with its span. `None` if any element is wrong.
    pub fn strings(&mut self, path: &str, item: &Item<'_>) -> Option<Vec<(String, Range<usize>)>> {
        let items = self.array(path, item, "an array of strings")?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, element) in items.iter().enumerate() {
            match self.string(&format!("{path}[{i}]"), element) {
                Some(s) => out.push((s.to_owned(), element.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A command line: a non-empty array of non-empty strings.
    pub fn command(&mut self, path: &str, item: &Item<'_>) -> Option<Vec<String>> {
        const EXPECTED: &str = "an array of strings such as [\"/usr/bin/foo\", \"--bar\"]";
        self.array(path, item, EXPECTED)?;
        let words = self.strings(path, item)?;
        if words.is_empty() {
            self.error(
                &item.span(),
                format!("`{path}` must name a program: the array is empty"),
            );
            return None;
        }
        let mut ok = true;
        for (i, (word, span)) in words.iter().enumerate() {
            if word.is_empty() {
                self.error(span, format!("`{path}[{i}]` must not be empty"));
                ok = false;
            }
        }
        ok.then(|| words.into_iter().map(|(w, _)| w).collect())
    }

    /// A duration: a string in the duration grammar or an integer number of seconds.
    pub fn duration(&mut self, path: &str, item: &Item<'_>) -> Option<Duration> {
        match item.get_ref() {
            DeValue::String(text) => match value::parse_duration(text) {
                Ok(d) => Some(d),
                Err(err) => {
                    self.bad_value(path, item, "duration", text, &err);
                    None
                }
            },
            DeValue::Integer(_) => {
                let max = i64::from(u32::MAX);
                let secs = self.integer(path, item, 0..=max)?;
                u64::try_from(secs)
                    .ok()
                    .filter(|&s| s <= MAX_DURATION_SECS)
                    .map(Duration::from_secs)
            }
            _ => {
                self.wrong_type(
                    path,
                    item,
                    "a duration such as \"30s\" or a number of seconds",
                );
                None
            }
        }
    }

    /// A duration that must not be zero.
    pub fn nonzero_duration(&mut self, path: &str, item: &Item<'_>) -> Option<Duration> {
        let d = self.duration(path, item)?;
        if d.is_zero() {
            self.error(&item.span(), format!("`{path}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    /// A size: a string in the size grammar (or `"max"`) or an integer number of bytes.
    pub fn size(&mut self, path: &str, item: &Item<'_>) -> Option<Limit> {
        match item.get_ref() {
            DeValue::String(text) => match value::parse_size(text) {
                Ok(limit) => Some(limit),
                Err(err) => {
                    self.bad_value(path, item, "size", text, &err);
                    None
                }
            },
            DeValue::Integer(_) => {
                let bytes = self.integer(path, item, 0..=i64::MAX)?;
                u64::try_from(bytes).ok().map(Limit::Value)
            }
            _ => {
                self.wrong_type(
                    path,
                    item,
                    "a size such as \"512M\", a number of bytes or \"max\"",
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(
        &mut self,
        path: &str,
        item: &Item<'_>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(path, item)?;
        if let Some(&(_, v)) = choices.iter().find(|(word, _)| *word == text) {
            return Some(v);
        }
        let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        let listed = words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let shown = quote(text);
        let mut msg = format!("invalid value `{shown}` for `{path}`: expected one of {listed}");
        if let Some(s) = suggest(text, &words) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        self.error(&item.span(), msg);
        None
    }

    /// A service or supervisor name.
    pub fn name(&mut self, path: &str, item: &Item<'_>) -> Option<String> {
        let text = self.string(path, item)?;
        match value::validate_name(text) {
            Ok(()) => Some(text.to_owned()),
            Err(err) => {
                self.bad_value(path, item, "name", text, &err);
                None
            }
        }
    }

    /// An absolute path without `..` components.
    pub fn abs_path(&mut self, path: &str, item: &Item<'_>) -> Option<PathBuf> {
        let text = self.string(path, item)?;
        let p = Path::new(text);
        if !p.is_absolute() {
            let shown = quote(text);
            self.error(
                &item.span(),
                format!("`{path}` must be an absolute path, found `{shown}`"),
            );
            return None;
        }
        if p.components().any(|c| c == Component::ParentDir) {
            self.error(&item.span(), format!("`{path}` must not contain `..`"));
            return None;
        }
        Some(p.to_path_buf())
    }

    /// A signal: a name or number as a string, or an integer.
    pub fn signal(&mut self, path: &str, item: &Item<'_>) -> Option<SignalSpec> {
        let (result, text) = match item.get_ref() {
            DeValue::String(text) => (value::parse_signal(text), text.to_string()),
            DeValue::Integer(int) => {
                let n = i128::from_str_radix(int.as_str(), int.radix()).unwrap_or(i128::MAX);
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                (value::signal_from_number(n), int.to_string())
            }
            _ => {
                self.wrong_type(path, item, "a signal name such as \"SIGTERM\" or a number");
                return None;
            }
        };
        result
            .map_err(|err| self.bad_value(path, item, "signal", &text, &err))
            .ok()
    }

    /// A user or group: a name, or a number as an integer or digits.
    pub fn id_spec(&mut self, path: &str, item: &Item<'_>) -> Option<IdSpec> {
        const MAX_ID: i64 = u32::MAX as i64 - 1;
        if let DeValue::Integer(_) = item.get_ref() {
            let id = self.integer(path, item, 0..=MAX_ID)?;
            return u32::try_from(id).ok().map(IdSpec::Id);
        }
        if !matches!(item.get_ref(), DeValue::String(_)) {
            self.wrong_type(path, item, "a name or a number");
            return None;
        }
        let text = self.string(path, item)?;
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text
                .parse::<u32>()
                .ok()
                .filter(|&id| i64::from(id) <= MAX_ID)
            {
                Some(id) => Some(IdSpec::Id(id)),
                None => {
                    let shown = quote(text);
                    let msg = format!("`{path}` must be between 0 and {MAX_ID}, found {shown}");
                    self.error(&item.span(), msg);
                    None
                }
            };
        }
        let bad = text.is_empty()
            || text.starts_with('-')
            || text.len() > 256
            || text
                .chars()
                .any(|c| c == ':' || c == '/' || c.is_whitespace() || c.is_control());
        if bad {
            let shown = quote(text);
            let msg = format!(
                "invalid user or group name `{shown}` for `{path}`: it must be non-empty, not \
                 start with `-`, and contain no `:`, `/`, whitespace or control characters"
            );
            self.error(&item.span(), msg);
            return None;
        }
        Some(IdSpec::Name(text.to_owned()))
    }
}

/// "a string", "an integer", … for a value's type.
fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// User text for a message: control characters escaped, cut after [`MAX_QUOTED`] characters.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The candidate closest to `word` (ignoring case, and `_` written for `-`), if it is close
/// enough to be a plausible typo: at most one edit per three characters. Failing that, a
/// candidate that is `word` with a prefix or suffix (`timeout` → `stop-timeout`, `desk` →
/// `desktop`).
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    if word.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let norm = word.to_ascii_lowercase().replace('_', "-");
    let mut best: Option<(usize, &'c str)> = None;
    for &candidate in candidates {
        let distance = strsim::damerau_levenshtein(&norm, candidate);
        let longest = norm.chars().count().max(candidate.chars().count());
        let limit = longest / 3;
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c).or_else(|| {
        let (suffix, prefix) = (format!("-{norm}"), format!("{norm}-"));
        candidates.iter().copied().find(|c| {
            c.ends_with(&suffix)
                || c.starts_with(&prefix)
                || (norm.len() >= 3 && c.starts_with(&norm))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_and_snake_case() {
        let keys = ["name", "exec", "environment", "max-restarts", "type", "tty"];
        let cases = [
            ("nmae", Some("name")),
            ("exce", Some("exec")),
            ("Name", Some("name")),
            ("enviroment", Some("environment")),
            ("max_restarts", Some("max-restarts")),
            ("max-restart", Some("max-restarts")),
            ("tpye", Some("type")),
            ("command", None),
            ("restarts", Some("max-restarts")),
            ("max", Some("max-restarts")),
            ("x", None),
            ("", None),
        ];
        for (word, want) in cases {
            assert_eq!(suggest(word, &keys), want, "{word}");
        }
        assert_eq!(suggest(&"n".repeat(100), &keys), None);
    }

    #[test]
    fn quoted_text_is_cut_and_escaped() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a\nb\tc"), "a\\nb\\tc");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("{}…", "x".repeat(60)));
    }
}
