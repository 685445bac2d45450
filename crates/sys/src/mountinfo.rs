//! Reading `/proc/self/mountinfo` (proc(5), "/proc/pid/mountinfo").
//!
//! Each line describes one mount:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//!
//! The kernel escapes space, tab, newline and backslash in paths as three-digit octal
//! (`\040`, `\011`, `\012`, `\134`); [`decode_octal_escapes`] undoes that, so a mount point with a
//! space in its name is found and unmounted by its real path.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Why the mount table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MountinfoError {
    /// The file could not be read (typically: `/proc` is not mounted yet).
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line does not have the documented shape.
    #[error("malformed mountinfo line {line}")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
}

/// One line of mountinfo, with escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of the mount (field 1).
    pub mount_id: u32,
    /// Id of the parent mount (field 2).
    pub parent_id: u32,
    /// Root of the mount within its filesystem (field 4), e.g. `/` or a bind-mounted subdirectory.
    pub root: PathBuf,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// Per-mount options (field 6).
    pub options: String,
    /// Filesystem type (field 9), e.g. `tmpfs` or `cgroup2`.
    pub fs_type: String,
    /// Mount source (field 10), e.g. `/dev/vda` or `none`.
    pub source: String,
}

/// Decodes the kernel's `\ooo` octal escapes; anything else is kept as is.
pub fn decode_octal_escapes(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        if b == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn path_field(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(decode_octal_escapes(field)))
}

fn text_field(field: &[u8]) -> String {
    String::from_utf8_lossy(&decode_octal_escapes(field)).into_owned()
}

/// Parses one line.
fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let mut fields = line.split(|b| *b == b' ').filter(|f| !f.is_empty());
    let mount_id = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let parent_id = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let _dev = fields.next()?;
    let root = path_field(fields.next()?);
    let mount_point = path_field(fields.next()?);
    let options = text_field(fields.next()?);
    // Optional fields (7) run up to the lone "-" separator (8).
    for f in fields.by_ref() {
        if f == b"-" {
            break;
        }
    }
    let fs_type = text_field(fields.next()?);
    let source = text_field(fields.next()?);
    Some(MountEntry {
        mount_id,
        parent_id,
        root,
        mount_point,
        options,
        fs_type,
        source,
    })
}

/// Parses the whole table, in the kernel's order (parents before the mounts on top of them).
pub fn parse(text: &[u8]) -> Result<Vec<MountEntry>, MountinfoError> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| parse_line(l).ok_or(MountinfoError::Malformed { line: i + 1 }))
        .collect()
}

/// Reads and parses a mountinfo file (normally `/proc/self/mountinfo`).
pub fn read(path: &Path) -> Result<Vec<MountEntry>, MountinfoError> {
    let text = std::fs::read(path).map_err(|source| MountinfoError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
}

/// The mount visible at `mount_point`: the last entry for it, since a later mount hides the
/// earlier ones at the same place.
pub fn find<'a>(entries: &'a [MountEntry], mount_point: &Path) -> Option<&'a MountEntry> {
    entries
        .iter()
        .rev()
        .find(|e| e.mount_point.as_os_str().as_bytes() == mount_point.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:3 - tmpfs tmpfs ro,mode=755
26 22 0:40 / /mnt/my\\040disk rw,relatime - tmpfs odd\\134name rw
27 22 0:41 /sub /srv/tab\\011here rw master:4 propagate_from:2 - ext4 /dev/vdb rw
";

    #[test]
    fn parses_every_field_of_a_plain_line() {
        let e = parse(SAMPLE).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!(e[1].mount_id, 23);
        assert_eq!(e[1].parent_id, 22);
        assert_eq!(e[1].mount_point, Path::new("/proc"));
        assert_eq!(e[1].fs_type, "proc");
        assert_eq!(e[1].options, "rw,nosuid,nodev,noexec,relatime");
        assert_eq!(e[0].source, "/dev/vda1");
    }

    #[test]
    fn decodes_octal_escapes_in_mount_points_and_sources() {
        let e = parse(SAMPLE).unwrap();
        assert_eq!(e[4].mount_point, Path::new("/mnt/my disk"));
        assert_eq!(e[4].source, "odd\\name");
        assert_eq!(e[5].mount_point, Path::new("/srv/tab\there"));
    }

    #[test]
    fn skips_any_number_of_optional_fields() {
        let e = parse(SAMPLE).unwrap();
        assert_eq!(e[5].root, Path::new("/sub"));
        assert_eq!(e[5].fs_type, "ext4");
        assert_eq!(e[5].source, "/dev/vdb");
    }

    #[test]
    fn backslash_without_three_octal_digits_is_kept() {
        assert_eq!(
            decode_octal_escapes(b"a\\b\\09\\1"),
            b"a\\b\\09\\1".to_vec()
        );
        assert_eq!(decode_octal_escapes(b"\\012x"), b"\nx".to_vec());
    }

    #[test]
    fn out_of_range_escape_is_kept_verbatim() {
        assert_eq!(decode_octal_escapes(b"\\777"), b"\\777".to_vec());
    }

    #[test]
    fn line_without_separator_is_reported_with_its_number() {
        let bad = b"22 1 253:1 / / rw shared:1\n";
        assert!(matches!(
            parse(bad),
            Err(MountinfoError::Malformed { line: 1 })
        ));
    }

    #[test]
    fn find_returns_the_topmost_mount() {
        let text = b"\
1 0 0:1 / / rw - ext4 /dev/a rw
2 1 0:2 / /run rw - tmpfs first rw
3 2 0:3 / /run rw - tmpfs second rw
";
        let e = parse(text).unwrap();
        assert_eq!(find(&e, Path::new("/run")).unwrap().source, "second");
        assert!(find(&e, Path::new("/dev")).is_none());
    }

    #[test]
    fn reads_this_process_mount_table() {
        let e = read(Path::new("/proc/self/mountinfo")).unwrap();
        assert!(find(&e, Path::new("/")).is_some());
    }
}
