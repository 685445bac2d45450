//! The system hostname: reading `/etc/hostname` (hostname(5)) and sethostname(2).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Longest hostname the kernel accepts (`HOST_NAME_MAX`).
pub const HOST_NAME_MAX: usize = 64;

/// Setting the hostname failed.
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// The file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable name.
    #[error("{path} holds no valid hostname")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
    /// sethostname(2) refused.
    #[error("sethostname {name}")]
    Set {
        /// The name.
        name: String,
        /// errno.
        #[source]
        source: Errno,
    },
}

/// The name in the text of `/etc/hostname`: the first line that is neither empty nor a
/// `#` comment, trimmed; `None` if there is none or it is not a valid hostname.
pub fn parse_hostname_file(text: &str) -> Option<&str> {
    let name = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    is_valid_hostname(name).then_some(name)
}

/// A valid hostname: 1–64 bytes of ASCII letters, digits, `-` and `.`, not starting with
/// `-` or `.` (the rules of hostname(7), RFC 1123 labels).
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= HOST_NAME_MAX
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether a hostname counts as "not set": empty, the kernel's `(none)`, or `localhost`.
pub fn is_unset(current: &str) -> bool {
    matches!(current, "" | "(none)" | "localhost")
}

/// The current hostname (gethostname(2)).
pub fn current() -> Result<OsString, Errno> {
    nix::unistd::gethostname()
}

/// Sets the hostname (sethostname(2)).
pub fn set(name: &str) -> Result<(), HostnameError> {
    nix::unistd::sethostname(name).map_err(|source| HostnameError::Set {
        name: name.to_owned(),
        source,
    })
}

/// Reads the hostname from `path`; `Ok(None)` when the file does not exist.
pub fn read_file(path: &Path) -> Result<Option<String>, HostnameError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HostnameError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&text);
    parse_hostname_file(&text)
        .map(|n| Some(n.to_owned()))
        .ok_or_else(|| HostnameError::Invalid {
            path: path.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_non_comment_line_trimmed() {
        assert_eq!(
            parse_hostname_file("# set by installer\n\n  box-1.lan \r\n"),
            Some("box-1.lan")
        );
    }

    #[test]
    fn rejects_invalid_names() {
        assert_eq!(parse_hostname_file("bad name\n"), None);
        assert_eq!(parse_hostname_file("-lead\n"), None);
        assert_eq!(parse_hostname_file(&"a".repeat(65)), None);
        assert_eq!(parse_hostname_file("\n# only comments\n"), None);
    }

    #[test]
    fn treats_none_localhost_and_empty_as_unset() {
        assert!(is_unset(""));
        assert!(is_unset("(none)"));
        assert!(is_unset("localhost"));
        assert!(!is_unset("web-1"));
    }

    #[test]
    fn missing_file_is_not_an_error() {
        assert!(
            read_file(Path::new("/nonexistent/dynamod/hostname"))
                .unwrap()
                .is_none()
        );
    }
}
