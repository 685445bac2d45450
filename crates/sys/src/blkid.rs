//! Identifying block devices by their contents, as `blkid` does: the filesystem type, UUID and
//! label from the superblock, and the partition's own UUID (`PARTUUID`) from the disk's
//! partition table. PID 1 needs this in an initramfs without udev, where no
//! `/dev/disk/by-uuid` links exist.
//!
//! The decoding is pure ([`probe`], [`partition_uuid`]) and tested on synthetic images; only
//! [`scan`] touches the system (`/sys/class/block` and the device nodes).
//!
//! Formats read (offsets from the kernel's and the filesystems' own headers):
//! - ext2/3/4: superblock at 1024, magic `0xEF53` at +0x38, UUID at +0x68, label at +0x78;
//! - btrfs: superblock at 64 KiB, magic `_BHRfS_M` at +0x40, fsid at +0x20, label at +0x12B;
//! - xfs: `XFSB` at 0, UUID at 32, label at 108;
//! - vfat: boot sector signature `55 AA`, `FAT1x`/`FAT32` type strings, serial and label;
//! - iso9660: primary volume descriptor at 32 KiB (`CD001`), volume id as label, creation time
//!   as UUID (`YYYY-MM-DD-HH-MM-SS-cc`, blkid's convention);
//! - squashfs (`hsqs`), swap (`SWAPSPACE2`), LUKS (`LUKS\xba\xbe`);
//! - partition tables: GPT (`EFI PART` at LBA 1) and MBR with extended partitions.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes read from the start of a device: enough for every superblock above (btrfs ends
/// highest, at 64 KiB + 4 KiB).
pub const PROBE_LEN: usize = 0x11000;

/// What the start of a device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Filesystem (or container) type, in the kernel's and blkid's naming: `ext4`, `vfat`,
    /// `iso9660`, `squashfs`, `btrfs`, `xfs`, `swap`, `crypto_LUKS`, …
    pub fs_type: &'static str,
    /// The filesystem's UUID as blkid prints it.
    pub uuid: Option<String>,
    /// The filesystem's label.
    pub label: Option<String>,
}

impl Probe {
    /// Whether the kernel can mount this type directly (swap and LUKS cannot be).
    pub fn mountable(&self) -> bool {
        !matches!(self.fs_type, "swap" | "crypto_LUKS" | "jbd")
    }
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

fn bytes_at(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off + len)
}

/// A label field: up to the first NUL, trailing spaces removed; `None` when empty.
fn label_field(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(raw.get(..end).unwrap_or(&[]));
    let text = text.trim_end_matches(' ');
    (!text.is_empty()).then(|| text.to_owned())
}

/// A 16-byte UUID in the byte order it is stored (big-endian fields, as ext4, btrfs and xfs
/// keep it), `None` when all zero.
fn uuid_be(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 || raw.iter().all(|&c| c == 0) {
        return None;
    }
    let h = |r: std::ops::Range<usize>| -> String {
        raw.get(r)
            .unwrap_or(&[])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    Some(format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    ))
}

/// A GUID as GPT stores it: the first three fields little-endian (RFC 4122 "mixed endian").
pub fn guid_mixed_endian(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 || raw.iter().all(|&c| c == 0) {
        return None;
    }
    let mut be = [0u8; 16];
    be.copy_from_slice(raw);
    be[0..4].reverse();
    be[4..6].reverse();
    be[6..8].reverse();
    uuid_be(&be)
}

fn probe_ext(b: &[u8]) -> Option<Probe> {
    const SB: usize = 1024;
    if le16(b, SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = le32(b, SB + 0x5C)?;
    let incompat = le32(b, SB + 0x60)?;
    let ro_compat = le32(b, SB + 0x64)?;
    // INCOMPAT_JOURNAL_DEV: an external journal, not a filesystem.
    let fs_type = if incompat & 0x8 != 0 {
        "jbd"
    } else if incompat & !0x6 != 0 || ro_compat & !0x7 != 0 {
        // Anything beyond ext3's feature set (filetype, recover; sparse_super, large_file,
        // btree_dir) needs the ext4 driver.
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(Probe {
        fs_type,
        uuid: uuid_be(bytes_at(b, SB + 0x68, 16)?),
        label: label_field(bytes_at(b, SB + 0x78, 16)?),
    })
}

fn probe_btrfs(b: &[u8]) -> Option<Probe> {
    const SB: usize = 0x10000;
    if bytes_at(b, SB + 0x40, 8)? != b"_BHRfS_M" {
        return None;
    }
    Some(Probe {
        fs_type: "btrfs",
        uuid: uuid_be(bytes_at(b, SB + 0x20, 16)?),
        label: label_field(bytes_at(b, SB + 0x12B, 256)?),
    })
}

fn probe_xfs(b: &[u8]) -> Option<Probe> {
    if bytes_at(b, 0, 4)? != b"XFSB" {
        return None;
    }
    Some(Probe {
        fs_type: "xfs",
        uuid: uuid_be(bytes_at(b, 32, 16)?),
        label: label_field(bytes_at(b, 108, 12)?),
    })
}

fn probe_vfat(b: &[u8]) -> Option<Probe> {
    if bytes_at(b, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    // FAT32 keeps its extended boot record further in than FAT12/16.
    let (serial_off, label_off) = if bytes_at(b, 0x52, 5)? == b"FAT32" {
        (0x43, 0x47)
    } else if bytes_at(b, 0x36, 5).is_some_and(|t| t == b"FAT12" || t == b"FAT16") {
        (0x27, 0x2B)
    } else {
        return None;
    };
    let serial = le32(b, serial_off)?;
    let label = label_field(bytes_at(b, label_off, 11)?).filter(|l| l != "NO NAME");
    Some(Probe {
        fs_type: "vfat",
        uuid: (serial != 0).then(|| format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF)),
        label,
    })
}

fn probe_iso9660(b: &[u8]) -> Option<Probe> {
    const PVD: usize = 0x8000;
    if b.get(PVD)? != &1 || bytes_at(b, PVD + 1, 5)? != b"CD001" {
        return None;
    }
    let date = bytes_at(b, PVD + 813, 16)?;
    let uuid =
        (date.iter().all(u8::is_ascii_digit) && date.iter().any(|&d| d != b'0')).then(|| {
            let s = |r: std::ops::Range<usize>| String::from_utf8_lossy(&date[r]).into_owned();
            format!(
                "{}-{}-{}-{}-{}-{}-{}",
                s(0..4),
                s(4..6),
                s(6..8),
                s(8..10),
                s(10..12),
                s(12..14),
                s(14..16)
            )
        });
    Some(Probe {
        fs_type: "iso9660",
        uuid,
        label: label_field(bytes_at(b, PVD + 40, 32)?),
    })
}

fn probe_squashfs(b: &[u8]) -> Option<Probe> {
    (bytes_at(b, 0, 4)? == b"hsqs").then_some(Probe {
        fs_type: "squashfs",
        uuid: None,
        label: None,
    })
}

fn probe_swap(b: &[u8]) -> Option<Probe> {
    // The signature ends the first page; 4 KiB pages on x86-64.
    if bytes_at(b, 4096 - 10, 10)? != b"SWAPSPACE2" {
        return None;
    }
    Some(Probe {
        fs_type: "swap",
        uuid: uuid_be(bytes_at(b, 1024 + 12, 16)?),
        label: label_field(bytes_at(b, 1024 + 28, 16)?),
    })
}

fn probe_luks(b: &[u8]) -> Option<Probe> {
    if bytes_at(b, 0, 6)? != b"LUKS\xba\xbe" {
        return None;
    }
    Some(Probe {
        fs_type: "crypto_LUKS",
        uuid: label_field(bytes_at(b, 168, 40)?),
        label: None,
    })
}

/// Identifies what the first bytes of a device hold (at least [`PROBE_LEN`] bytes for every
/// format to be recognised; shorter buffers recognise what fits). `None` when nothing known.
pub fn probe(start: &[u8]) -> Option<Probe> {
    // Signatures at the very start first: they are the most specific. vfat comes last, since
    // a boot-sector signature also ends many other first sectors.
    probe_luks(start)
        .or_else(|| probe_squashfs(start))
        .or_else(|| probe_xfs(start))
        .or_else(|| probe_ext(start))
        .or_else(|| probe_btrfs(start))
        .or_else(|| probe_iso9660(start))
        .or_else(|| probe_swap(start))
        .or_else(|| probe_vfat(start))
}

/// Reads `buf.len()` bytes at byte offset `off` of a disk.
pub trait ReadAt {
    /// Fills `buf` from `off`.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn gpt_partition_uuid(disk: &(impl ReadAt + ?Sized), number: u32) -> Option<String> {
    for sector in [512u64, 4096] {
        let mut header = [0u8; 92];
        if disk.read_at(sector, &mut header).is_err() || &header[0..8] != b"EFI PART" {
            continue;
        }
        let entries_lba = le64(&header, 72)?;
        let count = le32(&header, 80)?;
        let size = u64::from(le32(&header, 84)?);
        if number == 0 || number > count || size < 128 {
            return None;
        }
        let mut entry = [0u8; 128];
        let off = entries_lba
            .checked_mul(sector)?
            .checked_add(u64::from(number - 1).checked_mul(size)?)?;
        disk.read_at(off, &mut entry).ok()?;
        // An all-zero type GUID marks an unused entry.
        guid_mixed_endian(&entry[0..16])?;
        return guid_mixed_endian(&entry[16..32]);
    }
    None
}

/// The four 16-byte entries of an MBR or EBR: (type, first sector relative to the table).
fn mbr_entries(sector: &[u8]) -> Option<[(u8, u32); 4]> {
    if bytes_at(sector, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    let mut out = [(0u8, 0u32); 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let e = 446 + 16 * i;
        *slot = (*sector.get(e + 4)?, le32(sector, e + 8)?);
    }
    Some(out)
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

fn mbr_partition_uuid(disk: &(impl ReadAt + ?Sized), number: u32) -> Option<String> {
    let mut mbr = [0u8; 512];
    disk.read_at(0, &mut mbr).ok()?;
    let entries = mbr_entries(&mbr)?;
    // A protective MBR (type 0xEE) means the disk is GPT.
    if entries.iter().any(|e| e.0 == 0xEE) {
        return None;
    }
    let signature = le32(&mbr, 440)?;
    let id = |n: u32| format!("{signature:08x}-{n:02x}");
    match number {
        1..=4 => {
            let idx = usize::try_from(number - 1).ok()?;
            (entries[idx].0 != 0).then(|| id(number))
        }
        0 => None,
        _ => {
            // Logical partitions: follow the chain of extended boot records, numbered from 5.
            let ext_start = u64::from(entries.iter().find(|e| is_extended(e.0))?.1);
            let mut ebr_lba = ext_start;
            // Bounded: a corrupt chain must not loop forever.
            for current in 5..5 + 256 {
                let mut ebr = [0u8; 512];
                disk.read_at(ebr_lba.checked_mul(512)?, &mut ebr).ok()?;
                let e = mbr_entries(&ebr)?;
                if current == number {
                    return (e[0].0 != 0).then(|| id(number));
                }
                if !is_extended(e[1].0) || e[1].1 == 0 {
                    return None;
                }
                ebr_lba = ext_start + u64::from(e[1].1);
            }
            None
        }
    }
}

/// The `PARTUUID` of partition `number` (1-based, as in `/sys/class/block/*/partition`) of
/// `disk`: the GPT entry's unique GUID, or `SSSSSSSS-NN` (disk signature, partition number in
/// hex) on an MBR disk.
pub fn partition_uuid(disk: &(impl ReadAt + ?Sized), number: u32) -> Option<String> {
    gpt_partition_uuid(disk, number).or_else(|| mbr_partition_uuid(disk, number))
}

/// One block device as seen in `/sys/class/block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`vda1`, `sr0`).
    pub name: String,
    /// Its node under the device directory (`/dev/vda1`).
    pub node: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// For a partition: the disk's name and the partition number.
    pub partition: Option<(String, u32)>,
    /// What it holds, when it could be read and recognised.
    pub probe: Option<Probe>,
    /// The partition's own UUID.
    pub partuuid: Option<String>,
    /// Why it could not be read (no medium, permission, …).
    pub unreadable: Option<String>,
}

impl BlockDevice {
    /// A one-line description for logs: `vda1 (ext4, UUID=…, LABEL=…, PARTUUID=…)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        match (&self.probe, &self.unreadable) {
            (Some(p), _) => {
                parts.push(p.fs_type.to_owned());
                if let Some(u) = &p.uuid {
                    parts.push(format!("UUID={u}"));
                }
                if let Some(l) = &p.label {
                    parts.push(format!("LABEL={l}"));
                }
            }
            (None, Some(why)) => parts.push(format!("unreadable: {why}")),
            (None, None) => parts.push("unknown contents".to_owned()),
        }
        if let Some(p) = &self.partuuid {
            parts.push(format!("PARTUUID={p}"));
        }
        format!("{} ({})", self.name, parts.join(", "))
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Lists the block devices of `sys_class_block` (normally `/sys/class/block`) and probes each
/// through its node in `dev_dir` (normally `/dev`). Devices of size zero (unused loop and ram
/// devices, empty drives) are left out. Sorted by name.
pub fn scan(sys_class_block: &Path, dev_dir: &Path) -> Vec<BlockDevice> {
    let Ok(entries) = std::fs::read_dir(sys_class_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let sys = sys_class_block.join(&name);
        // Sizes are in 512-byte sectors whatever the device's block size.
        let size = read_trimmed(&sys.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(512);
        if size == 0 {
            continue;
        }
        let partition = read_trimmed(&sys.join("partition"))
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| {
                let real = std::fs::canonicalize(&sys).ok()?;
                let disk = real.parent()?.file_name()?.to_string_lossy().into_owned();
                Some((disk, n))
            });
        let node = dev_dir.join(&name);
        let (probe, unreadable) = match read_start(&node, size) {
            Ok(buf) => (probe(&buf), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let partuuid = partition.as_ref().and_then(|(disk, n)| {
            let f = File::open(dev_dir.join(disk)).ok()?;
            partition_uuid(&f, *n)
        });
        out.push(BlockDevice {
            name,
            node,
            size,
            partition,
            probe,
            partuuid,
            unreadable,
        });
    }
    out
}

/// Reads the first [`PROBE_LEN`] bytes (fewer for a smaller device).
fn read_start(node: &Path, size: u64) -> io::Result<Vec<u8>> {
    let f = File::open(node)?;
    let len = usize::try_from(size.min(PROBE_LEN as u64)).unwrap_or(PROBE_LEN);
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Probes one device or image file directly (for `dynamod.media=` naming a file, and tests).
pub fn probe_path(path: &Path) -> io::Result<Option<Probe>> {
    let f = File::open(path)?;
    let mut buf = vec![0u8; PROBE_LEN];
    let mut n = 0;
    while n < buf.len() {
        match FileExt::read_at(&f, &mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(probe(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        vec![0u8; PROBE_LEN]
    }

    fn put(b: &mut [u8], off: usize, data: &[u8]) {
        b[off..off + data.len()].copy_from_slice(data);
    }

    const UUID: [u8; 16] = [
        0x3e, 0x6b, 0xe9, 0xde, 0x81, 0x39, 0x41, 0x22, 0xaf, 0x6a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f,
        0x60,
    ];

    fn ext(compat: u32, incompat: u32, ro: u32) -> Vec<u8> {
        let mut b = image();
        put(&mut b, 1024 + 0x38, &0xEF53u16.to_le_bytes());
        put(&mut b, 1024 + 0x5C, &compat.to_le_bytes());
        put(&mut b, 1024 + 0x60, &incompat.to_le_bytes());
        put(&mut b, 1024 + 0x64, &ro.to_le_bytes());
        put(&mut b, 1024 + 0x68, &UUID);
        put(&mut b, 1024 + 0x78, b"dynamod-root");
        b
    }

    #[test]
    fn ext4_superblock_gives_type_uuid_and_label() {
        // extents + 64bit + flex_bg, metadata_csum: what mkfs.ext4 makes today.
        let p = probe(&ext(0x3c, 0x2c2, 0x46b)).unwrap();
        assert_eq!(p.fs_type, "ext4");
        assert_eq!(
            p.uuid.as_deref(),
            Some("3e6be9de-8139-4122-af6a-1b2c3d4e5f60")
        );
        assert_eq!(p.label.as_deref(), Some("dynamod-root"));
        assert!(p.mountable());
    }

    #[test]
    fn ext_generation_follows_the_feature_flags() {
        assert_eq!(probe(&ext(0, 0x2, 0x1)).unwrap().fs_type, "ext2");
        assert_eq!(probe(&ext(0x4, 0x2, 0x3)).unwrap().fs_type, "ext3");
        assert_eq!(probe(&ext(0x4, 0x42, 0x3)).unwrap().fs_type, "ext4");
        assert_eq!(probe(&ext(0, 0x8, 0)).unwrap().fs_type, "jbd");
    }

    #[test]
    fn empty_label_is_none() {
        let mut b = ext(0, 0x2, 0);
        put(&mut b, 1024 + 0x78, &[0u8; 16]);
        assert_eq!(probe(&b).unwrap().label, None);
    }

    #[test]
    fn btrfs_and_xfs_are_recognised() {
        let mut b = image();
        put(&mut b, 0x10040, b"_BHRfS_M");
        put(&mut b, 0x10020, &UUID);
        put(&mut b, 0x1012B, b"data");
        let p = probe(&b).unwrap();
        assert_eq!((p.fs_type, p.label.as_deref()), ("btrfs", Some("data")));
        let mut x = image();
        put(&mut x, 0, b"XFSB");
        put(&mut x, 32, &UUID);
        put(&mut x, 108, b"home");
        let p = probe(&x).unwrap();
        assert_eq!(p.fs_type, "xfs");
        assert_eq!(
            p.uuid.as_deref(),
            Some("3e6be9de-8139-4122-af6a-1b2c3d4e5f60")
        );
    }

    #[test]
    fn vfat_serial_is_formatted_like_blkid() {
        let mut b = image();
        put(&mut b, 510, &[0x55, 0xAA]);
        put(&mut b, 0x52, b"FAT32   ");
        put(&mut b, 0x43, &0x1234_ABCDu32.to_le_bytes());
        put(&mut b, 0x47, b"EFI        ");
        let p = probe(&b).unwrap();
        assert_eq!(p.fs_type, "vfat");
        assert_eq!(p.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(p.label.as_deref(), Some("EFI"));
    }

    #[test]
    fn iso9660_label_and_date_uuid() {
        let mut b = image();
        b[0x8000] = 1;
        put(&mut b, 0x8001, b"CD001");
        put(&mut b, 0x8000 + 40, b"DYNAMOD_LIVE                    ");
        put(&mut b, 0x8000 + 813, b"2026120416212800");
        let p = probe(&b).unwrap();
        assert_eq!(p.fs_type, "iso9660");
        assert_eq!(p.label.as_deref(), Some("DYNAMOD_LIVE"));
        assert_eq!(p.uuid.as_deref(), Some("2026-12-04-16-21-28-00"));
    }

    #[test]
    fn squashfs_swap_and_luks_are_recognised_and_not_all_mountable() {
        let mut s = image();
        put(&mut s, 0, b"hsqs");
        assert_eq!(probe(&s).unwrap().fs_type, "squashfs");
        let mut w = image();
        put(&mut w, 4086, b"SWAPSPACE2");
        assert!(!probe(&w).unwrap().mountable());
        let mut l = image();
        put(&mut l, 0, b"LUKS\xba\xbe");
        put(&mut l, 168, b"0d8b3b0a-0000-4000-8000-000000000001");
        let p = probe(&l).unwrap();
        assert_eq!(p.fs_type, "crypto_LUKS");
        assert!(!p.mountable());
    }

    #[test]
    fn zeroes_and_short_buffers_are_unknown() {
        assert_eq!(probe(&image()), None);
        assert_eq!(probe(&[0u8; 10]), None);
    }

    #[test]
    fn gpt_entry_guid_is_mixed_endian() {
        let mut d = vec![0u8; 64 * 512];
        put(&mut d, 512, b"EFI PART");
        put(&mut d, 512 + 72, &2u64.to_le_bytes());
        put(&mut d, 512 + 80, &128u32.to_le_bytes());
        put(&mut d, 512 + 84, &128u32.to_le_bytes());
        // Entry 2: Linux filesystem type, then the unique GUID.
        let e = 2 * 512 + 128;
        put(&mut d, e, &[0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47]);
        put(
            &mut d,
            e + 8,
            &[0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4],
        );
        put(
            &mut d,
            e + 16,
            &[
                0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef,
            ],
        );
        assert_eq!(
            partition_uuid(d.as_slice(), 2).as_deref(),
            Some("12345678-9abc-def0-0123-456789abcdef")
        );
        assert_eq!(partition_uuid(d.as_slice(), 1), None, "unused entry");
        assert_eq!(partition_uuid(d.as_slice(), 129), None, "beyond the table");
    }

    fn mbr_entry(b: &mut [u8], base: usize, i: usize, kind: u8, start: u32) {
        let e = base + 446 + 16 * i;
        b[e + 4] = kind;
        put(b, e + 8, &start.to_le_bytes());
    }

    #[test]
    fn mbr_partuuid_is_signature_and_number() {
        let mut d = vec![0u8; 512 * 200];
        put(&mut d, 440, &0x0badcafeu32.to_le_bytes());
        put(&mut d, 510, &[0x55, 0xAA]);
        mbr_entry(&mut d, 0, 0, 0x83, 2048);
        mbr_entry(&mut d, 0, 1, 0x05, 100);
        // First EBR at sector 100: logical 5, then a link to the next EBR at 100 + 50.
        put(&mut d, 100 * 512 + 510, &[0x55, 0xAA]);
        mbr_entry(&mut d, 100 * 512, 0, 0x83, 1);
        mbr_entry(&mut d, 100 * 512, 1, 0x05, 50);
        put(&mut d, 150 * 512 + 510, &[0x55, 0xAA]);
        mbr_entry(&mut d, 150 * 512, 0, 0x83, 1);
        assert_eq!(
            partition_uuid(d.as_slice(), 1).as_deref(),
            Some("0badcafe-01")
        );
        assert_eq!(partition_uuid(d.as_slice(), 3), None, "empty slot");
        assert_eq!(
            partition_uuid(d.as_slice(), 5).as_deref(),
            Some("0badcafe-05")
        );
        assert_eq!(
            partition_uuid(d.as_slice(), 6).as_deref(),
            Some("0badcafe-06")
        );
        assert_eq!(partition_uuid(d.as_slice(), 7), None);
    }

    #[test]
    fn protective_mbr_without_gpt_header_has_no_partuuid() {
        let mut d = vec![0u8; 4096];
        put(&mut d, 510, &[0x55, 0xAA]);
        mbr_entry(&mut d, 0, 0, 0xEE, 1);
        assert_eq!(partition_uuid(d.as_slice(), 1), None);
    }

    #[test]
    fn describe_lists_the_identifiers() {
        let d = BlockDevice {
            name: "vda1".into(),
            node: "/dev/vda1".into(),
            size: 1 << 20,
            partition: Some(("vda".into(), 1)),
            probe: Some(Probe {
                fs_type: "ext4",
                uuid: Some("u".into()),
                label: None,
            }),
            partuuid: Some("p".into()),
            unreadable: None,
        };
        assert_eq!(d.describe(), "vda1 (ext4, UUID=u, PARTUUID=p)");
    }

    #[test]
    fn scan_of_a_missing_directory_is_empty() {
        assert!(scan(Path::new("/nonexistent/sys"), Path::new("/dev")).is_empty());
    }
}
