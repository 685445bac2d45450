//! Initramfs archives: the `newc` cpio format the kernel unpacks (Documentation/driver-api/
//! early-userspace/buffer-format.rst), compressed with gzip.
//!
//! Written here rather than with cpio(1) so device nodes (`/dev/console`, which the kernel opens
//! before running `/init`) go in without root or mknod, and so the archive is reproducible:
//! sorted entries, zero timestamps, fixed owners.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with its permission bits.
    Dir(u32),
    /// A regular file: permission bits and contents.
    File(u32, Vec<u8>),
    /// A symbolic link to the target.
    Symlink(String),
    /// A character device: permission bits, major, minor.
    CharDev(u32, u32, u32),
}

/// Builds an archive in memory.
#[derive(Debug, Default)]
pub struct Archive {
    out: Vec<u8>,
    ino: u32,
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

impl Archive {
    /// Appends `name` (relative, no leading `/`).
    pub fn add(&mut self, name: &str, entry: &Entry) {
        self.ino += 1;
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Dir(perm) => (S_IFDIR | perm, &[], (0, 0)),
            Entry::File(perm, data) => (S_IFREG | perm, data, (0, 0)),
            Entry::Symlink(target) => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
            Entry::CharDev(perm, major, minor) => (S_IFCHR | perm, &[], (*major, *minor)),
        };
        let nlink = if matches!(entry, Entry::Dir(_)) { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        pad4(&mut self.out);
        self.out.extend_from_slice(data);
        pad4(&mut self.out);
    }

    /// Appends every entry below `dir` (sorted, parents first) under `prefix`.
    pub fn add_tree(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            let path = dir.join(&n);
            let name = format!("{prefix}{}", n.to_string_lossy());
            let meta = fs::symlink_metadata(&path)?;
            let perm = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&path)?;
                self.add(
                    &name,
                    &Entry::Symlink(target.to_string_lossy().into_owned()),
                );
            } else if ft.is_dir() {
                self.add(&name, &Entry::Dir(perm));
                self.add_tree(&path, &format!("{name}/"))?;
            } else if ft.is_file() {
                let data = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                self.add(&name, &Entry::File(perm, data));
            } else {
                bail!(
                    "{}: only directories, files and symlinks go into the archive (rdev {:x})",
                    path.display(),
                    meta.rdev()
                );
            }
        }
        Ok(())
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        let mut trailer = Archive::default();
        trailer.add("TRAILER!!!", &Entry::File(0, Vec::new()));
        self.out.extend_from_slice(&trailer.out);
        // The kernel reads initramfs images in 512-byte blocks, as cpio(1) pads them.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

/// Writes `root` (plus `/dev/console` and `/dev/null`) as a gzip-compressed newc archive.
pub fn write_initramfs(root: &Path, out: &Path) -> Result<()> {
    let mut a = Archive::default();
    a.add_tree(root, "")?;
    if !root.join("dev").is_dir() {
        a.add("dev", &Entry::Dir(0o755));
    }
    a.add("dev/console", &Entry::CharDev(0o600, 5, 1));
    a.add("dev/null", &Entry::CharDev(0o666, 1, 3));
    let bytes = a.finish();
    let file = fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut gzip = Command::new("gzip")
        .args(["-n", "-6", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("run gzip")?;
    if let Some(mut stdin) = gzip.stdin.take() {
        stdin.write_all(&bytes).context("write to gzip")?;
    }
    let status = gzip.wait().context("wait for gzip")?;
    if !status.success() {
        bail!("gzip failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_follow_the_newc_layout() {
        let mut a = Archive::default();
        a.add("init", &Entry::File(0o755, b"#!".to_vec()));
        let b = a.finish();
        assert_eq!(&b[..6], b"070701");
        // mode is the second field: 0100755.
        assert_eq!(&b[14..22], b"000081ED");
        // filesize (7th) and namesize (12th, with the NUL).
        assert_eq!(&b[54..62], b"00000002");
        assert_eq!(&b[94..102], b"00000005");
        assert_eq!(&b[110..115], b"init\0");
        // 110 + 5 = 115, padded to 116, then the data.
        assert_eq!(&b[116..118], b"#!");
        assert_eq!(b.len() % 512, 0);
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn device_nodes_carry_their_numbers() {
        let mut a = Archive::default();
        a.add("dev/console", &Entry::CharDev(0o600, 5, 1));
        let b = a.finish();
        assert_eq!(&b[14..22], b"00002180");
        // rdevmajor and rdevminor are fields 10 and 11.
        assert_eq!(&b[78..86], b"00000005");
        assert_eq!(&b[86..94], b"00000001");
    }
}
