//! Disk images for the VM: an ext4 filesystem made from a directory (`mkfs.ext4 -d`, no loop
//! mounts), the same inside a GPT-partitioned disk (written here, so `root=PARTUUID=` has a
//! real partition table to read), a squashfs image and a live ISO.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// A random (version 4) UUID in its text form.
pub fn random_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("read /dev/urandom")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(uuid_text(&b))
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h =
        |r: std::ops::Range<usize>| -> String { b[r].iter().map(|x| format!("{x:02x}")).collect() };
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// The 16 bytes of a UUID text, in text order.
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A GUID as GPT stores it: the first three fields little-endian.
pub fn guid_on_disk(text: &str) -> Option<[u8; 16]> {
    let mut b = uuid_bytes(text)?;
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

/// `mkfs.ext4 -d`: an ext4 filesystem of `size_mib` holding `dir`, owned by root.
pub fn make_ext4(dir: &Path, image: &Path, size_mib: u64, label: &str, uuid: &str) -> Result<()> {
    let _ = fs::remove_file(image);
    cmd::run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                label,
                "-U",
                uuid,
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(dir)
            .arg(image)
            .arg(format!("{size_mib}M")),
    )
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

const SECTOR: u64 = 512;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// The "Linux filesystem data" partition type.
const LINUX_FS_TYPE: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

fn gpt_header(
    disk_guid: &[u8; 16],
    my_lba: u64,
    alt_lba: u64,
    last_usable: u64,
    entries_lba: u64,
    entries_crc: u32,
) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(disk_guid);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32(&h[0..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes a GPT disk at `disk` with one partition (starting at 1 MiB) holding the filesystem
/// image `part`, whose partition GUID is `part_uuid`.
pub fn make_gpt_disk(part: &Path, disk: &Path, part_uuid: &str) -> Result<()> {
    let part_len = fs::metadata(part)
        .with_context(|| format!("stat {}", part.display()))?
        .len();
    let part_sectors = part_len.div_ceil(SECTOR);
    let first = 2048u64;
    let total = first + part_sectors + 2048;
    let last = total - 1;
    let entries_sectors = ENTRIES * ENTRY_SIZE / SECTOR;

    let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    let type_guid = guid_on_disk(LINUX_FS_TYPE).context("partition type GUID")?;
    let uniq = guid_on_disk(part_uuid).context("partition UUID")?;
    entries[0..16].copy_from_slice(&type_guid);
    entries[16..32].copy_from_slice(&uniq);
    entries[32..40].copy_from_slice(&first.to_le_bytes());
    entries[40..48].copy_from_slice(&(first + part_sectors - 1).to_le_bytes());
    for (i, c) in "root".encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    let entries_crc = crc32(&entries);
    let disk_guid = guid_on_disk(&random_uuid()?).context("disk GUID")?;
    let last_usable = last - entries_sectors - 1;
    let primary = gpt_header(&disk_guid, 1, last, last_usable, 2, entries_crc);
    let backup = gpt_header(
        &disk_guid,
        last,
        1,
        last_usable,
        last - entries_sectors,
        entries_crc,
    );

    // The protective MBR: one partition of type 0xEE covering the disk.
    let mut mbr = [0u8; 512];
    mbr[446 + 4] = 0xEE;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    let covered = u32::try_from(total - 1).unwrap_or(u32::MAX);
    mbr[446 + 12..446 + 16].copy_from_slice(&covered.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;

    let mut f = File::create(disk).with_context(|| format!("create {}", disk.display()))?;
    f.set_len(total * SECTOR)?;
    f.write_all(&mbr)?;
    f.write_all(&primary)?;
    f.write_all(&entries)?;
    f.seek(SeekFrom::Start(first * SECTOR))?;
    let mut src = File::open(part)?;
    std::io::copy(&mut src, &mut f).context("copy the partition image")?;
    f.seek(SeekFrom::Start((last - entries_sectors) * SECTOR))?;
    f.write_all(&entries)?;
    f.write_all(&backup)?;
    Ok(())
}

/// `mksquashfs DIR IMAGE`.
pub fn make_squashfs(dir: &Path, image: &Path) -> Result<()> {
    let _ = fs::remove_file(image);
    cmd::run(Command::new("mksquashfs").arg(dir).arg(image).args([
        "-noappend",
        "-no-progress",
        "-quiet",
        "-all-root",
    ]))
}

/// An ISO 9660 image (Rock Ridge and Joliet names) of `dir`, with volume id `label`.
pub fn make_iso(dir: &Path, image: &Path, label: &str) -> Result<()> {
    let _ = fs::remove_file(image);
    cmd::run(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-R", "-J", "-V", label, "-o"])
            .arg(image)
            .arg(dir),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn gpt_guids_store_the_first_fields_little_endian() {
        let b = guid_on_disk("12345678-9abc-def0-0123-456789abcdef").unwrap();
        assert_eq!(
            b,
            [
                0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ]
        );
        assert!(guid_on_disk("nope").is_none());
    }

    #[test]
    fn random_uuids_are_version_4() {
        let u = random_uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(uuid_bytes(&u).is_some());
    }

    #[test]
    fn gpt_disk_has_valid_headers_and_the_partition_in_place() {
        let dir = std::env::temp_dir().join(format!("xtask-gpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let part = dir.join("part.img");
        fs::write(&part, vec![0xAB; 4096]).unwrap();
        let disk = dir.join("disk.img");
        make_gpt_disk(&part, &disk, "12345678-9abc-def0-0123-456789abcdef").unwrap();
        let img = fs::read(&disk).unwrap();
        assert_eq!(&img[512..520], b"EFI PART");
        let mut h = img[512..604].to_vec();
        let stored = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        h[16..20].fill(0);
        assert_eq!(crc32(&h), stored, "header CRC");
        let entries_crc = u32::from_le_bytes([img[600], img[601], img[602], img[603]]);
        assert_eq!(crc32(&img[1024..1024 + 16384]), entries_crc);
        assert_eq!(img[2048 * 512], 0xAB);
        let last = img.len() - 512;
        assert_eq!(&img[last..last + 8], b"EFI PART", "backup header");
        assert_eq!(&img[510..512], &[0x55, 0xAA]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
