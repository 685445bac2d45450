//! The `environment-file` format: `KEY=VALUE` lines, close to what a POSIX shell and
//! systemd's `EnvironmentFile=` accept, without any expansion.
//!
//! Rules, in the order they apply:
//!
//! 1. The text is UTF-8 ([`parse_bytes`] checks it); a leading byte-order mark is skipped and
//!    CRLF line endings are read as LF.
//! 2. Blank lines, and lines whose first non-blank character is `#`, are ignored.
//! 3. An assignment is `KEY=VALUE`. Whitespace around `KEY` is ignored, and an optional
//!    `export ` before it too (so a file can also be sourced by a shell).
//! 4. `KEY` is a shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
//! 5. An unquoted value runs to the end of the line, with whitespace trimmed at both ends. A `#`
//!    that follows a space or tab starts a comment (`A=b #c` is `b`; `A=b#c` is `b#c`).
//!    Quote characters inside an unquoted value are kept as they are.
//! 6. A value in single quotes is taken literally up to the next `'`; there are no escapes.
//! 7. A value in double quotes understands `\"`, `\\`, `\n` (newline), `\t` (tab) and `\$`; a
//!    backslash at the end of a line joins the next line; any other backslash is kept as is.
//! 8. A quoted value may span several lines. After the closing quote only whitespace and a
//!    `#` comment may follow.
//! 9. No `$VARIABLE` or `$(command)` expansion happens, in any form of value.
//! 10. A NUL character anywhere is an error (it cannot be passed to a program).
//!
//! The result keeps every assignment in file order; applied in order, a later one wins.

/// Why an environment file was refused; every variant names the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// A line that is neither blank, a comment, nor an assignment.
    #[error("line {line}: expected KEY=VALUE")]
    MissingEquals {
        /// The line.
        line: usize,
    },
    /// A key that is not a shell variable name.
    #[error(
        "line {line}: invalid variable name `{name}` (use letters, digits and `_`, not starting \
         with a digit)"
    )]
    InvalidName {
        /// The line.
        line: usize,
        /// The key as written (possibly shortened).
        name: String,
    },
    /// A quote that is never closed.
    #[error("line {line}: the {quote} quote opened here is never closed")]
    UnterminatedQuote {
        /// The line of the opening quote.
        line: usize,
        /// `'` or `"`.
        quote: char,
    },
    /// Text after a closing quote.
    #[error("line {line}: unexpected text after the closing quote")]
    TrailingText {
        /// The line.
        line: usize,
    },
    /// A NUL character.
    #[error("line {line}: NUL characters are not allowed")]
    Nul {
        /// The line.
        line: usize,
    },
    /// Bytes that are not UTF-8.
    #[error("line {line}: the file is not valid UTF-8")]
    InvalidUtf8 {
        /// The line of the first bad byte.
        line: usize,
    },
}

impl EnvFileError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            Self::MissingEquals { line }
            | Self::InvalidName { line, .. }
            | Self::UnterminatedQuote { line, .. }
            | Self::TrailingText { line }
            | Self::Nul { line }
            | Self::InvalidUtf8 { line } => *line,
        }
    }
}

/// Parses the bytes of an environment file: checks UTF-8 (reporting the line of the first bad
/// byte), then [`parse`].
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>, EnvFileError> {
    // The byte-order mark is left to `parse`: skipping it here too would skip two.
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(err) => {
            let good = bytes.get(..err.valid_up_to()).unwrap_or_default();
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            Err(EnvFileError::InvalidUtf8 { line })
        }
    }
}

/// Parses the text of an environment file into `(KEY, VALUE)` pairs, in file order. The rules
/// are in the [module documentation](self).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let text = text
        .strip_prefix('\u{FEFF}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let mut scanner = Scanner {
        text: &text,
        at: 0,
        line: 1,
    };
    let mut out = Vec::new();
    while let Some(pair) = scanner.next_assignment()? {
        out.push(pair);
    }
    Ok(out)
}

/// A cursor over the normalised text.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl Scanner<'_> {
    /// The unread text.
    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    /// The next character, if any.
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Consumes one character, counting lines.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces and tabs.
    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.bump();
        }
    }

    /// Consumes the rest of the line (not the newline) and returns it.
    fn take_line(&mut self) -> &str {
        let start = self.at;
        let len = self.rest().find('\n').unwrap_or(self.rest().len());
        self.at += len;
        self.text.get(start..self.at).unwrap_or_default()
    }

    /// Reads up to and including the next assignment; `None` at the end of the text.
    fn next_assignment(&mut self) -> Result<Option<(String, String)>, EnvFileError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(None),
                Some('\n') => {
                    self.bump();
                }
                Some('#') => {
                    self.take_line();
                }
                Some(_) => break,
            }
        }
        let line = self.line;
        let head = self.rest();
        let Some(eq) = head
            .find(['=', '\n'])
            .filter(|&i| head[i..].starts_with('='))
        else {
            return Err(EnvFileError::MissingEquals { line });
        };
        let mut key = head[..eq].trim_start();
        if let Some(after) = key.strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            key = after;
        }
        let key = key.trim_matches([' ', '\t']);
        if key.contains('\0') {
            return Err(EnvFileError::Nul { line });
        }
        if !is_shell_name(key) {
            return Err(EnvFileError::InvalidName {
                line,
                name: crate::walk::quote(key),
            });
        }
        let key = key.to_owned();
        self.at += eq + 1;

        let value_start = self.at;
        self.skip_blanks();
        let value = match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.bump();
                let value = if quote == '\'' {
                    self.single_quoted(line)?
                } else {
                    self.double_quoted(line)?
                };
                self.skip_blanks();
                match self.peek() {
                    None | Some('\n') => {}
                    Some('#') => {
                        self.take_line();
                    }
                    Some(_) => return Err(EnvFileError::TrailingText { line: self.line }),
                }
                value
            }
            _ => {
                self.at = value_start;
                let raw = self.take_line();
                let comment = raw
                    .char_indices()
                    .find(|&(i, c)| c == '#' && raw[..i].ends_with([' ', '\t']))
                    .map_or(raw.len(), |(i, _)| i);
                raw[..comment].trim_matches([' ', '\t']).to_owned()
            }
        };
        if value.contains('\0') {
            return Err(EnvFileError::Nul { line });
        }
        Ok(Some((key, value)))
    }

    /// The body of a `'…'` value, after the opening quote.
    fn single_quoted(&mut self, line: usize) -> Result<String, EnvFileError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(EnvFileError::UnterminatedQuote { line, quote: '\'' }),
                Some('\'') => return Ok(value),
                Some(c) => value.push(c),
            }
        }
    }

    /// The body of a `"…"` value, after the opening quote, with escapes applied.
    fn double_quoted(&mut self, line: usize) -> Result<String, EnvFileError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(EnvFileError::UnterminatedQuote { line, quote: '"' }),
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    None => return Err(EnvFileError::UnterminatedQuote { line, quote: '"' }),
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\' | '$')) => value.push(c),
                    Some('\n') => {}
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                },
                Some(c) => value.push(c),
            }
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_documented_rule_applies() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("\n\n  \n", &[]),
            ("# comment\n   # indented comment\n", &[]),
            ("A=1", &[("A", "1")]),
            ("A=1\nB=2\n", &[("A", "1"), ("B", "2")]),
            ("  A  =  spaced value  ", &[("A", "spaced value")]),
            ("export A=1", &[("A", "1")]),
            ("export\tA=1", &[("A", "1")]),
            ("exportA=1", &[("exportA", "1")]),
            ("export=1", &[("export", "1")]),
            ("A=", &[("A", "")]),
            ("A=b #comment", &[("A", "b")]),
            ("A=b\t#comment", &[("A", "b")]),
            ("A=b#c", &[("A", "b#c")]),
            ("A= #only comment", &[("A", "")]),
            ("A=#x", &[("A", "#x")]),
            ("A=a=b", &[("A", "a=b")]),
            ("A=it's", &[("A", "it's")]),
            ("A=foo \"bar\"", &[("A", "foo \"bar\"")]),
            ("A='lit $X \\n \"q\"'", &[("A", "lit $X \\n \"q\"")]),
            ("A='a # b' # c", &[("A", "a # b")]),
            ("A=\"x\\\"y\\\\z\\n\\t\\$\"", &[("A", "x\"y\\z\n\t$")]),
            ("A=\"keep \\a\"", &[("A", "keep \\a")]),
            ("A=\"$HOME\"", &[("A", "$HOME")]),
            ("A=\"two\nlines\"\nB=3", &[("A", "two\nlines"), ("B", "3")]),
            ("A='two\nlines'", &[("A", "two\nlines")]),
            ("A=\"joined \\\nline\"", &[("A", "joined line")]),
            ("A=\"\"", &[("A", "")]),
            ("A=1\r\nB=\"x\r\ny\"\r\n", &[("A", "1"), ("B", "x\ny")]),
            ("\u{FEFF}A=1", &[("A", "1")]),
            ("A=1\nA=2", &[("A", "1"), ("A", "2")]),
            ("_x9=ü", &[("_x9", "ü")]),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(pairs(want)), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, EnvFileError)] = &[
            ("A=1\njunk\n", EnvFileError::MissingEquals { line: 2 }),
            (
                "A=1\n\nB C=1",
                EnvFileError::InvalidName {
                    line: 3,
                    name: "B C".into(),
                },
            ),
            (
                "=1",
                EnvFileError::InvalidName {
                    line: 1,
                    name: String::new(),
                },
            ),
            (
                "1A=1",
                EnvFileError::InvalidName {
                    line: 1,
                    name: "1A".into(),
                },
            ),
            (
                "A-B=1",
                EnvFileError::InvalidName {
                    line: 1,
                    name: "A-B".into(),
                },
            ),
            (
                "export =1",
                EnvFileError::InvalidName {
                    line: 1,
                    name: String::new(),
                },
            ),
            (
                "\n\nA='open\n\n",
                EnvFileError::UnterminatedQuote {
                    line: 3,
                    quote: '\'',
                },
            ),
            (
                "A=\"open\\\"",
                EnvFileError::UnterminatedQuote {
                    line: 1,
                    quote: '"',
                },
            ),
            (
                "A=\"x\\",
                EnvFileError::UnterminatedQuote {
                    line: 1,
                    quote: '"',
                },
            ),
            ("A=\"x\ny\" z", EnvFileError::TrailingText { line: 2 }),
            ("A='x'y", EnvFileError::TrailingText { line: 1 }),
            ("A=a\0b", EnvFileError::Nul { line: 1 }),
            ("A\0=1", EnvFileError::Nul { line: 1 }),
            ("A=1\r\njunk", EnvFileError::MissingEquals { line: 2 }),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want), "{text:?}");
            assert_eq!(parse(text).unwrap_err().line(), want.line());
        }
    }

    #[test]
    fn error_messages_read_well() {
        let e = EnvFileError::InvalidName {
            line: 4,
            name: "1A".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 4: invalid variable name `1A` (use letters, digits and `_`, not starting with a digit)"
        );
        let e = EnvFileError::UnterminatedQuote {
            line: 2,
            quote: '"',
        };
        assert_eq!(
            e.to_string(),
            "line 2: the \" quote opened here is never closed"
        );
    }

    #[test]
    fn bytes_must_be_utf8() {
        assert_eq!(
            parse_bytes(b"A=1\nB=\xFF\n"),
            Err(EnvFileError::InvalidUtf8 { line: 2 })
        );
        assert_eq!(parse_bytes(b"\xEF\xBB\xBFA=1"), Ok(pairs(&[("A", "1")])));
    }
}
