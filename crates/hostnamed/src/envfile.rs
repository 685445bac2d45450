//! Shell-style `KEY=value` files (machine-info(5), locale.conf(5), vconsole.conf(5),
//! os-release(5)): reading values, changing some keys while keeping every other line, and
//! replacing the file atomically.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Reading or writing a configuration file failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed (other than the file not existing).
    #[error("read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing, renaming or removing failed.
    #[error("write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Line {
    Assign { key: String, value: String },
    Other(String),
}

/// The lines of a `KEY=value` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvFile {
    lines: Vec<Line>,
}

impl EnvFile {
    /// Parses `text`; lines that are not assignments (comments, blanks) are kept as they are.
    pub fn parse(text: &str) -> Self {
        let lines = text
            .lines()
            .map(|raw| {
                let l = raw.trim();
                let assignment = (!l.starts_with('#'))
                    .then(|| l.split_once('='))
                    .flatten()
                    .filter(|(k, _)| is_key(k.trim_end()));
                match assignment {
                    Some((k, v)) => Line::Assign {
                        key: k.trim_end().to_owned(),
                        value: unquote(v.trim_start()),
                    },
                    None => Line::Other(raw.to_owned()),
                }
            })
            .collect();
        Self { lines }
    }

    /// Reads `path`; a missing file is an empty one.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(FileError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The value of `key` (the last assignment wins, as in a shell).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Assign { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// Every assignment in order.
    pub fn assignments(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Assign { key, value } => Some((key.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    /// Sets `key` to `value`, in place of its first assignment (later ones are dropped), or at
    /// the end; an empty `value` removes the key.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut placed = value.is_empty();
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        for line in self.lines.drain(..) {
            match line {
                Line::Assign { key: k, .. } if k == key => {
                    if !placed {
                        out.push(Line::Assign {
                            key: k,
                            value: value.to_owned(),
                        });
                        placed = true;
                    }
                }
                other => out.push(other),
            }
        }
        if !placed {
            out.push(Line::Assign {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        self.lines = out;
    }

    /// Whether there is nothing but blank lines.
    pub fn is_blank(&self) -> bool {
        self.lines
            .iter()
            .all(|l| matches!(l, Line::Other(t) if t.trim().is_empty()))
    }

    /// The file's text, values quoted where a shell would need it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Assign { key, value } => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(&quote(value));
                }
                Line::Other(t) => out.push_str(t),
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically, or removes it when it would be blank.
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        if self.is_blank() {
            return remove(path);
        }
        write_atomic(path, self.render().as_bytes())
    }
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The value of a right-hand side: double quotes with backslash escapes, single quotes
/// literally, otherwise the text up to an unquoted `#` comment.
fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                if !"\"\\$`".contains(n) {
                                    out.push('\\');
                                }
                                out.push(n);
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => {
                // An unquoted blank ends the value; a comment may follow.
                break;
            }
            c => out.push(c),
        }
    }
    out
}

/// `value` as a shell word: bare when it is plain, else in double quotes with `" \ $ \``
/// escaped.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@+%".contains(c));
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if "\"\\$`".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".#{name}.dynamod.{}", std::process::id()))
}

/// Replaces `path` with `data` (mode 0644): write a temporary file next to it, sync, rename.
/// Missing parent directories are created (mode 0755).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let write_err = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// Points the symlink `path` at `target`, replacing whatever was there atomically.
pub fn symlink_atomic(target: &Path, path: &Path) -> Result<(), FileError> {
    let write_err = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

/// Removes `path`; a file that is already gone is fine.
pub fn remove(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FileError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unquoted_like_a_shell() {
        let f = EnvFile::parse(
            "# machine-info\nPRETTY_HOSTNAME=\"Lennart's \\\"PC\\\"\"\nCHASSIS=laptop # comment\n\
             LOCATION='Room 1'\nNAME=a\\ b\n",
        );
        assert_eq!(f.get("PRETTY_HOSTNAME"), Some("Lennart's \"PC\""));
        assert_eq!(f.get("CHASSIS"), Some("laptop"));
        assert_eq!(f.get("LOCATION"), Some("Room 1"));
        assert_eq!(f.get("NAME"), Some("a b"));
        assert_eq!(f.get("MISSING"), None);
    }

    #[test]
    fn setting_keeps_other_lines_and_replaces_in_place() {
        let mut f = EnvFile::parse("# keep me\nA=1\nB=2\nA=3\n");
        f.set("A", "new value");
        f.set("C", "x");
        assert_eq!(f.render(), "# keep me\nA=\"new value\"\nB=2\nC=x\n");
        f.set("B", "");
        assert_eq!(f.render(), "# keep me\nA=\"new value\"\nC=x\n");
    }

    #[test]
    fn quoting_round_trips_special_characters() {
        for v in [
            "plain",
            "with space",
            "quo\"te",
            "dollar $HOME",
            "back\\slash",
            "tick`",
        ] {
            let mut f = EnvFile::default();
            f.set("K", v);
            let again = EnvFile::parse(&f.render());
            assert_eq!(again.get("K"), Some(v), "{}", f.render());
        }
        assert_eq!(quote("de_DE.UTF-8"), "de_DE.UTF-8");
        assert_eq!(quote("a b"), "\"a b\"");
    }

    #[test]
    fn a_file_left_blank_is_removed() {
        let dir = std::env::temp_dir().join(format!("dynamod-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("machine-info");
        let mut f = EnvFile::default();
        f.set("CHASSIS", "vm");
        f.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "CHASSIS=vm\n");
        f.set("CHASSIS", "");
        f.save(&path).unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_are_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("dynamod-symlink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("localtime");
        symlink_atomic(Path::new("../usr/share/zoneinfo/UTC"), &link).unwrap();
        symlink_atomic(Path::new("../usr/share/zoneinfo/Europe/Paris"), &link).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../usr/share/zoneinfo/Europe/Paris")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
