//! From file bytes to checked text: the size cap, the UTF-8 byte-order mark, UTF-8 validation,
//! and the conversion of byte offsets into 1-based line and column numbers.
//!
//! Columns count Unicode scalar values (a tab is one column), so a position points at the same
//! character an editor shows. A `\r` that ends a line (CRLF) is never part of a reported column.

use std::ops::Range;
use std::path::Path;

use crate::{Diagnostic, Severity};

/// Configuration files larger than this many bytes are refused before they are parsed.
pub const MAX_FILE_SIZE: usize = 1 << 20;

/// The UTF-8 encoding of U+FEFF, which some editors write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The position used for messages about the whole file.
    pub const FILE: Pos = Pos { line: 0, col: 0 };
    /// The first character of the file.
    pub const START: Pos = Pos { line: 1, col: 1 };
}

/// Checks the size and encoding of a file and returns its text without a byte-order mark.
///
/// The error is a ready-made diagnostic: a whole-file message for an oversized file, or the
/// position of the first byte that is not UTF-8.
pub(crate) fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    if bytes.len() > MAX_FILE_SIZE {
        return Err(file_error(
            path,
            format!(
                "file is too large ({} bytes; the limit is {MAX_FILE_SIZE} bytes)",
                bytes.len()
            ),
        ));
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|err| {
        let good = bytes.get(..err.valid_up_to()).unwrap_or_default();
        // The prefix up to `valid_up_to` is valid UTF-8 by definition.
        let prefix = std::str::from_utf8(good).unwrap_or_default();
        let pos = LineIndex::new(prefix).pos(prefix, prefix.len());
        let byte = bytes.get(err.valid_up_to()).copied().unwrap_or_default();
        Diagnostic {
            file: path.to_path_buf(),
            line: pos.line,
            col: pos.col,
            severity: Severity::Error,
            message: format!("file is not valid UTF-8 (byte 0x{byte:02X})"),
        }
    })
}

/// Dotted keys with this many dots (81 parts) exceed the TOML parser's depth limit.
const DEEP_KEY_DOTS: usize = 80;

/// The start of the first dotted key with at least [`DEEP_KEY_DOTS`] dots, in a header, a
/// key/value line or an inline table: where the TOML parser gave up when it reports its key
/// depth limit without a position.
///
/// A line-by-line scan: quoted key parts are skipped, a comment ends the line, and any
/// character other than a key character, a dot or a blank ends a key. (A line inside a
/// multi-line string is scanned like any other; the parser would have failed there first.)
pub(crate) fn deep_key(text: &str) -> Option<Pos> {
    for (i, line) in text.split('\n').enumerate() {
        let mut dots = 0;
        let mut start = 0;
        let mut chars = line.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '.' => dots += 1,
                ' ' | '\t' => {}
                '"' | '\'' => {
                    if dots == 0 {
                        start = at;
                    }
                    let mut escaped = false;
                    for (_, q) in chars.by_ref() {
                        if q == c && !escaped {
                            break;
                        }
                        escaped = c == '"' && q == '\\' && !escaped;
                    }
                }
                c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                    if dots == 0 {
                        start = at;
                    }
                }
                '#' => break,
                _ => dots = 0,
            }
            if dots >= DEEP_KEY_DOTS {
                let col = line.get(..start).map_or(0, |p| p.chars().count());
                return Some(Pos {
                    line: i + 1,
                    col: col + 1,
                });
            }
        }
    }
    None
}

/// An error about a whole file (line and column 0).
pub(crate) fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        severity: Severity::Error,
        message,
    }
}

/// The byte offsets at which lines start.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    /// The position of byte `offset` of `text` (clamped to the text, and moved back to the
    /// start of the character it falls in; never panics).
    pub fn pos(&self, text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The `\n` of a CRLF: point at the `\r`, so the `\r` is never counted as a column.
        if text
            .get(offset..)
            .is_some_and(|rest| rest.starts_with('\n'))
            && text.get(..offset).is_some_and(|head| head.ends_with('\r'))
        {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = text
            .get(start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        Pos { line, col: col + 1 }
    }
}

/// One decoded file: its path, text and line index.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    index: LineIndex,
}

impl<'a> Source<'a> {
    /// Wraps decoded text.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self {
            path,
            text,
            index: LineIndex::new(text),
        }
    }

    /// The position of a byte offset.
    pub fn pos(&self, offset: usize) -> Pos {
        self.index.pos(self.text, offset)
    }

    /// The position of the start of a span.
    pub fn span_pos(&self, span: &Range<usize>) -> Pos {
        self.pos(span.start)
    }

    /// The text of a span, if it is one.
    pub fn slice(&self, span: &Range<usize>) -> Option<&'a str> {
        self.text.get(span.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str, offset: usize) -> (usize, usize) {
        let p = LineIndex::new(text).pos(text, offset);
        (p.line, p.col)
    }

    #[test]
    fn offsets_map_to_one_based_lines_and_columns() {
        let text = "ab\ncd\n\nxyz";
        assert_eq!(pos(text, 0), (1, 1));
        assert_eq!(pos(text, 1), (1, 2));
        assert_eq!(pos(text, 2), (1, 3));
        assert_eq!(pos(text, 3), (2, 1));
        assert_eq!(pos(text, 6), (3, 1));
        assert_eq!(pos(text, 7), (4, 1));
        assert_eq!(pos(text, 9), (4, 3));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "é = \"ü\"";
        assert_eq!(pos(text, "é = ".len()), (1, 5));
    }

    #[test]
    fn offsets_inside_a_character_or_past_the_end_do_not_panic() {
        let text = "aé";
        assert_eq!(pos(text, 2), (1, 2));
        assert_eq!(pos(text, 100), (1, 3));
        assert_eq!(pos("", 5), (1, 1));
    }

    #[test]
    fn crlf_lines_count_once() {
        let text = "a\r\nb\r\n";
        assert_eq!(pos(text, 3), (2, 1));
    }

    /// Found by the `config_service` fuzz target: an error reported at the `\n` of a CRLF
    /// line had a column one past the end of the line.
    #[test]
    fn the_newline_of_a_crlf_is_at_the_end_of_the_line() {
        let text = "ab\r\ncd";
        assert_eq!(pos(text, 2), (1, 3));
        assert_eq!(pos(text, 3), (1, 3));
        assert_eq!(pos(text, 4), (2, 1));
        assert_eq!(pos("\r\n", 1), (1, 1));
    }

    #[test]
    fn deep_keys_are_found_in_headers_keys_and_inline_tables() {
        let deep = vec!["a"; 81].join(".");
        let spaced = vec!["\"q.q\""; 81].join(" . ");
        let cases = [
            (format!("x = 1\n[{deep}]\n"), Some((2, 2))),
            (format!("[t]\n  {deep} = 1\n"), Some((2, 3))),
            (format!("x = {{ y = 1, {deep} = 2 }}\n"), Some((1, 14))),
            (format!("{spaced} = 1\n"), Some((1, 1))),
            (format!("# {deep}\nx = \"{deep}\"\n"), None),
            (format!("{} = 1\n", vec!["a"; 80].join(".")), None),
            ("x = [1.5, 2.5]\ny = 1.0\n".to_owned(), None),
        ];
        for (text, want) in cases {
            let got = deep_key(&text).map(|p| (p.line, p.col));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let text = decode(Path::new("x.toml"), b"\xEF\xBB\xBFa = 1").unwrap();
        assert_eq!(text, "a = 1");
    }

    #[test]
    fn invalid_utf8_reports_the_first_bad_byte() {
        let d = decode(Path::new("x.toml"), b"a = 1\nbc = \"\xFFx\"").unwrap_err();
        assert_eq!((d.line, d.col), (2, 7));
        assert_eq!(d.message, "file is not valid UTF-8 (byte 0xFF)");
    }

    #[test]
    fn invalid_utf8_after_a_bom_is_positioned_without_it() {
        let d = decode(Path::new("x.toml"), b"\xEF\xBB\xBF\xC3").unwrap_err();
        assert_eq!((d.line, d.col), (1, 1));
        assert_eq!(d.message, "file is not valid UTF-8 (byte 0xC3)");
    }

    #[test]
    fn files_over_the_cap_are_refused_whole() {
        let big = vec![b'#'; MAX_FILE_SIZE + 1];
        let d = decode(Path::new("x.toml"), &big).unwrap_err();
        assert_eq!((d.line, d.col), (0, 0));
        assert_eq!(
            d.message,
            "file is too large (1048577 bytes; the limit is 1048576 bytes)"
        );
        assert!(decode(Path::new("x.toml"), &big[..MAX_FILE_SIZE]).is_ok());
    }
}
