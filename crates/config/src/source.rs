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
