//! A reduced kernel module tree for the VM images, the way initramfs generators make one: the
//! modules asked for plus their dependency closure, copied from the unpacked kernel package,
//! with depmod's index files written for exactly that set.
//!
//! Debian ships modules without their index (`depmod` runs in the package's post-install
//! script, which is never run here), so the index is built from each module's `.modinfo` ELF
//! section (`depends=`, `alias=`, `softdep=`) in depmod's text formats: `modules.dep`,
//! `modules.alias`, `modules.softdep`; `modules.builtin` is copied from the package.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// What the initramfs loads for the VM's hardware and filesystems: virtio and IDE/ATAPI disks
/// and CD-ROMs, ext4 (with its checksum drivers), and what a live boot needs.
pub const INITRAMFS_MODULES: [&str; 14] = [
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ata_piix",
    "sr_mod",
    "sd_mod",
    "ext4",
    "crc32c_generic",
    "crc32c_intel",
    "isofs",
    "squashfs",
    "overlay",
    "loop",
    "vfat",
];

/// The `.modinfo` of one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `depends=` names.
    pub depends: Vec<String>,
    /// `alias=` patterns.
    pub aliases: Vec<String>,
    /// `softdep=` values (`pre: a b post: c`).
    pub softdeps: Vec<String>,
}

/// Parses the NUL-separated `key=value` strings of a `.modinfo` section.
pub fn parse_modinfo(section: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for entry in section.split(|&b| b == 0) {
        let text = String::from_utf8_lossy(entry);
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        match key {
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(normalize),
            ),
            "alias" => info.aliases.push(value.to_owned()),
            "softdep" => info.softdeps.push(value.to_owned()),
            _ => {}
        }
    }
    info
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The contents of the section called `name` in a 64-bit little-endian ELF image.
pub fn elf_section<'a>(image: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        image
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if image.get(..4)? != b"\x7fELF" || image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3A)?);
    let shnum = usize::from(u16_at(0x3C)?);
    let shstrndx = usize::from(u16_at(0x3E)?);
    let header = |i: usize| -> Option<(u32, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let off = usize::try_from(u64_at(h + 24)?).ok()?;
        let size = usize::try_from(u64_at(h + 32)?).ok()?;
        Some((u32_at(h)?, off, size))
    };
    let (_, str_off, str_size) = header(shstrndx)?;
    let strtab = image.get(str_off..str_off.checked_add(str_size)?)?;
    for i in 0..shnum {
        let (name_off, off, size) = header(i)?;
        let rest = strtab.get(usize::try_from(name_off).ok()?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        if &rest[..end] == name.as_bytes() {
            return image.get(off..off.checked_add(size)?);
        }
    }
    None
}

/// Every `.ko` under `modules_dir/kernel`, by module name, as paths relative to `modules_dir`.
fn module_paths(modules_dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![modules_dir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && let Some(stem) = name.strip_suffix(".ko")
            {
                let rel = path
                    .strip_prefix(modules_dir)
                    .unwrap_or(&path)
                    .to_path_buf();
                out.insert(normalize(stem), rel);
            }
        }
    }
    Ok(out)
}

/// The modules of the closure, with their info.
pub struct Selection {
    /// By name: relative path and info.
    pub modules: BTreeMap<String, (PathBuf, ModInfo)>,
}

/// Resolves `wanted` and everything they depend on.
pub fn select(modules_dir: &Path, wanted: &[&str]) -> Result<Selection> {
    let paths = module_paths(modules_dir)?;
    let builtin = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| normalize(f.trim_end_matches(".ko")))
        .collect();
    let mut modules = BTreeMap::new();
    // A wanted module another kernel lacks (renamed, merged) is skipped with a note; a missing
    // dependency is an error.
    let mut queue: Vec<String> = Vec::new();
    for w in wanted.iter().map(|w| normalize(w)) {
        if paths.contains_key(&w) || builtin.contains(&w) {
            queue.push(w);
        } else {
            eprintln!("xtask: vm: module {w} is not in this kernel; left out of the images");
        }
    }
    while let Some(name) = queue.pop() {
        if modules.contains_key(&name) || builtin.contains(&name) {
            continue;
        }
        let Some(rel) = paths.get(&name) else {
            bail!(
                "module {name} (a dependency) is neither in {} nor built in",
                modules_dir.display()
            );
        };
        let image =
            fs::read(modules_dir.join(rel)).with_context(|| format!("read {}", rel.display()))?;
        let info = parse_modinfo(elf_section(&image, ".modinfo").unwrap_or(&[]));
        queue.extend(info.depends.iter().cloned());
        modules.insert(name, (rel.clone(), info));
    }
    Ok(Selection { modules })
}

impl Selection {
    /// The transitive dependencies of `name`, without itself.
    fn closure(&self, name: &str) -> Vec<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut order = Vec::new();
        let mut stack: Vec<String> = self
            .modules
            .get(name)
            .map(|(_, i)| i.depends.clone())
            .unwrap_or_default();
        while let Some(d) = stack.pop() {
            if d == name || !seen.insert(d.clone()) {
                continue;
            }
            if let Some((_, info)) = self.modules.get(&d) {
                stack.extend(info.depends.iter().cloned());
            }
            order.push(d);
        }
        order
    }

    /// `modules.dep`: each module with its whole dependency closure.
    pub fn dep_text(&self) -> String {
        let mut s = String::new();
        for (name, (rel, _)) in &self.modules {
            s.push_str(&rel.display().to_string());
            s.push(':');
            for d in self.closure(name) {
                if let Some((drel, _)) = self.modules.get(&d) {
                    s.push(' ');
                    s.push_str(&drel.display().to_string());
                }
            }
            s.push('\n');
        }
        s
    }

    /// `modules.alias`.
    pub fn alias_text(&self) -> String {
        let mut s = String::from("# Aliases extracted from modules themselves.\n");
        for (name, (_, info)) in &self.modules {
            for a in &info.aliases {
                s.push_str(&format!("alias {a} {name}\n"));
            }
        }
        s
    }

    /// `modules.softdep`.
    pub fn softdep_text(&self) -> String {
        let mut s = String::from("# Soft dependencies extracted from modules themselves.\n");
        for (name, (_, info)) in &self.modules {
            for d in &info.softdeps {
                s.push_str(&format!("softdep {name} {d}\n"));
            }
        }
        s
    }

    /// Copies the modules and writes the index into `dest` (a `lib/modules/<release>`).
    pub fn install(&self, modules_dir: &Path, dest: &Path) -> Result<()> {
        fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
        for (rel, _) in self.modules.values() {
            let to = dest.join(rel);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(modules_dir.join(rel), &to)
                .with_context(|| format!("copy {}", rel.display()))?;
        }
        fs::write(dest.join("modules.dep"), self.dep_text())?;
        fs::write(dest.join("modules.alias"), self.alias_text())?;
        fs::write(dest.join("modules.softdep"), self.softdep_text())?;
        for f in ["modules.builtin", "modules.order"] {
            let src = modules_dir.join(f);
            if src.is_file() {
                fs::copy(&src, dest.join(f))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_keys_are_collected() {
        let sec = b"license=GPL\0depends=jbd2,crc16,mbcache\0alias=fs-ext4\0alias=ext3\0\
                    softdep=pre: crc32c\0name=ext4\0depends=\0";
        let i = parse_modinfo(sec);
        assert_eq!(i.depends, ["jbd2", "crc16", "mbcache"]);
        assert_eq!(i.aliases, ["fs-ext4", "ext3"]);
        assert_eq!(i.softdeps, ["pre: crc32c"]);
    }

    /// A tiny ELF64 image with a `.modinfo` section and the section-name table.
    fn elf(modinfo: &[u8]) -> Vec<u8> {
        let strtab = b"\0.shstrtab\0.modinfo\0";
        let mut img = vec![0u8; 64];
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[5] = 1;
        let strtab_off = img.len();
        img.extend_from_slice(strtab);
        let modinfo_off = img.len();
        img.extend_from_slice(modinfo);
        let shoff = img.len();
        img.resize(shoff + 3 * 64, 0);
        let mut sh = |i: usize, name: u32, off: usize, size: usize| {
            let h = shoff + i * 64;
            img[h..h + 4].copy_from_slice(&name.to_le_bytes());
            img[h + 24..h + 32].copy_from_slice(&(off as u64).to_le_bytes());
            img[h + 32..h + 40].copy_from_slice(&(size as u64).to_le_bytes());
        };
        sh(1, 1, strtab_off, strtab.len());
        sh(2, 11, modinfo_off, modinfo.len());
        img[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        img[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        img[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        img[0x3E..0x40].copy_from_slice(&1u16.to_le_bytes());
        img
    }

    #[test]
    fn modinfo_section_is_found_by_name() {
        let img = elf(b"alias=x\0");
        assert_eq!(elf_section(&img, ".modinfo"), Some(&b"alias=x\0"[..]));
        assert_eq!(elf_section(&img, ".missing"), None);
        assert_eq!(elf_section(b"not an elf", ".modinfo"), None);
    }

    #[test]
    fn dep_lines_carry_the_whole_closure() {
        let info = |deps: &[&str]| ModInfo {
            depends: deps.iter().map(|d| d.to_string()).collect(),
            ..ModInfo::default()
        };
        let mut modules = BTreeMap::new();
        modules.insert("a".to_owned(), (PathBuf::from("kernel/a.ko"), info(&["b"])));
        modules.insert("b".to_owned(), (PathBuf::from("kernel/b.ko"), info(&["c"])));
        modules.insert("c".to_owned(), (PathBuf::from("kernel/c.ko"), info(&[])));
        let s = Selection { modules };
        let dep = s.dep_text();
        assert!(
            dep.contains("kernel/a.ko: kernel/b.ko kernel/c.ko\n"),
            "{dep}"
        );
        assert!(dep.contains("kernel/c.ko:\n"));
    }
}
