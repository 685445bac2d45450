//! `/etc/machine-id` (machine-id(5)): 32 lowercase hexadecimal characters and a newline.
//!
//! A file that is missing, empty, holds `uninitialized` (systemd's first-boot marker), all
//! zeros, or anything else that is not such an ID is replaced by a random one (a version-4
//! UUID without dashes, as systemd generates). The write is atomic and the file mode is 0444.

use std::io;
use std::path::{Path, PathBuf};

use crate::entropy::{self, EntropyError};

/// Writing the machine ID failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineIdError {
    /// The existing file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No random bytes, or the write failed.
    #[error("generate {path}")]
    Generate {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: EntropyError,
    },
}

impl MachineIdError {
    /// Whether the failure is because the filesystem is read-only (`EROFS`) or not writable
    /// by us (`EACCES`/`EPERM`), i.e. "not writable" rather than broken.
    pub fn is_not_writable(&self) -> bool {
        let io = match self {
            Self::Read { source, .. } => Some(source),
            Self::Generate {
                source: EntropyError::Write { source, .. },
                ..
            } => Some(source),
            Self::Generate { .. } => None,
        };
        matches!(
            io.and_then(io::Error::raw_os_error),
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
        )
    }
}

/// What [`ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineIdOutcome {
    /// A valid ID was already there.
    Present(String),
    /// A new ID was written.
    Written(String),
}

/// Whether `content` is a valid machine ID (32 lowercase hex digits, optionally followed by a
/// newline) and not the all-zero ID.
pub fn is_valid(content: &[u8]) -> bool {
    let id = content.strip_suffix(b"\n").unwrap_or(content);
    id.len() == 32
        && id
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && id.iter().any(|b| *b != b'0')
}

/// Formats 16 random bytes as an ID: version-4 and variant bits set like a random UUID.
pub fn format_id(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(32);
    for b in bytes {
        // Both indexes are nibbles (0..=15), always inside the 16-byte table.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Makes sure `path` holds a valid machine ID, writing a new one when it does not.
pub fn ensure(path: &Path) -> Result<MachineIdOutcome, MachineIdError> {
    match std::fs::read(path) {
        Ok(content) if is_valid(&content) => {
            let id = String::from_utf8_lossy(content.strip_suffix(b"\n").unwrap_or(&content));
            return Ok(MachineIdOutcome::Present(id.into_owned()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(MachineIdError::Read {
                path: path.to_owned(),
                source,
            });
        }
    }
    let gen_err = |source| MachineIdError::Generate {
        path: path.to_owned(),
        source,
    };
    let mut raw = [0u8; 16];
    entropy::fill_random(&mut raw).map_err(gen_err)?;
    let id = format_id(raw);
    let mut line = id.clone().into_bytes();
    line.push(b'\n');
    entropy::write_atomic(path, &line, 0o444).map_err(gen_err)?;
    Ok(MachineIdOutcome::Written(id))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dynamod-sys-mid-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn accepts_lowercase_hex_with_or_without_newline() {
        assert!(is_valid(b"3d1219c7c4c5404aaa1f6d2a48adfda4\n"));
        assert!(is_valid(b"3d1219c7c4c5404aaa1f6d2a48adfda4"));
    }

    #[test]
    fn rejects_uppercase_short_zero_and_uninitialized() {
        assert!(!is_valid(b"3D1219C7C4C5404AAA1F6D2A48ADFDA4\n"));
        assert!(!is_valid(b"3d1219c7\n"));
        assert!(!is_valid(b"00000000000000000000000000000000\n"));
        assert!(!is_valid(b"uninitialized\n"));
        assert!(!is_valid(b""));
    }

    #[test]
    fn formatted_id_is_valid_and_marked_version_4() {
        let id = format_id([0xff; 16]);
        assert!(is_valid(id.as_bytes()));
        assert_eq!(id.as_bytes()[12], b'4');
        let zero = format_id([0; 16]);
        assert!(is_valid(zero.as_bytes()));
    }

    #[test]
    fn writes_a_missing_id_read_only_and_keeps_a_valid_one() {
        let d = temp("write");
        let p = d.join("machine-id");
        let MachineIdOutcome::Written(id) = ensure(&p).unwrap() else {
            panic!("not written")
        };
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{id}\n"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o444
        );
        assert_eq!(ensure(&p).unwrap(), MachineIdOutcome::Present(id));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replaces_an_empty_file() {
        let d = temp("empty");
        let p = d.join("machine-id");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(ensure(&p).unwrap(), MachineIdOutcome::Written(_)));
        assert!(is_valid(&std::fs::read(&p).unwrap()));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
