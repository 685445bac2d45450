//! Building the static (musl) release binaries that every installation uses, and checking that
//! a binary really is static before it goes into a root file system without a libc.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// The Rust target of every installed binary: static, no libc needed at run time.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Binaries every installation has.
pub const REQUIRED: [&str; 4] = [
    "dynamod-init",
    "dynamod-svmgr",
    "dynamodctl",
    "dynamod-logd",
];

/// Daemons installed when the workspace has them (they arrive in later issues).
pub const OPTIONAL: [&str; 3] = ["dynamod-logind", "dynamod-sd1bridge", "dynamod-hostnamed"];

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory (`$CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Where `cargo build --release --target x86_64-unknown-linux-musl` puts the binaries.
pub fn static_bin_dir() -> PathBuf {
    target_dir().join(TARGET).join("release")
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Adds the musl target with rustup when it is missing.
pub fn ensure_musl_target() -> Result<()> {
    if let Ok(sysroot) = cmd::output(Command::new("rustc").args(["--print", "sysroot"]))
        && Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(TARGET)
            .is_dir()
    {
        return Ok(());
    }
    if cmd::which("rustup").is_none() {
        bail!("the Rust target {TARGET} is missing and rustup is not available to add it");
    }
    eprintln!("xtask: adding the Rust target {TARGET}");
    cmd::run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// The product packages this workspace has: the required ones and whichever optional daemons
/// exist (read from `cargo metadata`).
pub fn packages() -> Result<Vec<String>> {
    let json = cmd::output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: serde_json::Value = serde_json::from_str(&json).context("parse cargo metadata")?;
    let names: Vec<&str> = meta["packages"]
        .as_array()
        .map(|pkgs| pkgs.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    let mut out: Vec<String> = REQUIRED.iter().map(|s| (*s).to_owned()).collect();
    out.extend(
        OPTIONAL
            .iter()
            .filter(|p| names.contains(p))
            .map(|s| (*s).to_owned()),
    );
    Ok(out)
}

/// Builds the product binaries statically in release mode and returns their directory.
pub fn build_static() -> Result<PathBuf> {
    ensure_musl_target()?;
    let mut build = cargo();
    build.args(["build", "--release", "--target", TARGET]);
    for pkg in packages()? {
        build.args(["-p", &pkg]);
    }
    eprintln!("xtask: {}", cmd::display(&build));
    cmd::run(&mut build)?;
    Ok(static_bin_dir())
}

/// Checks that `dir` holds every required binary and that each is statically linked.
pub fn check_bin_dir(dir: &Path) -> Result<()> {
    for name in REQUIRED {
        let path = dir.join(name);
        if !path.is_file() {
            bail!(
                "{} is missing: build the static binaries with `cargo xtask build` (or drop \
                 --no-build)",
                path.display()
            );
        }
        check_static(&path)?;
    }
    Ok(())
}

/// Fails unless `path` is an x86_64 ELF executable without a program interpreter (a static
/// binary can run in a root file system that has no dynamic loader).
pub fn check_static(path: &Path) -> Result<()> {
    let mut header = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut header))
        .with_context(|| format!("read {}", path.display()))?;
    match elf_interpreter(&header) {
        Ok(false) => Ok(()),
        Ok(true) => bail!(
            "{} is dynamically linked; the sandbox and the images need static binaries (build \
             them with `cargo xtask build`, target {TARGET})",
            path.display()
        ),
        Err(why) => bail!("{}: {why}", path.display()),
    }
}

/// Whether a 64-bit little-endian ELF image has a `PT_INTERP` program header.
fn elf_interpreter(image: &[u8]) -> std::result::Result<bool, &'static str> {
    const PT_INTERP: u32 = 3;
    if image.len() < 64 || image[..4] != *b"\x7fELF" {
        return Err("not an ELF file");
    }
    if image[4] != 2 || image[5] != 1 {
        return Err("not a 64-bit little-endian ELF file");
    }
    let u16_at = |off: usize| {
        image
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |off: usize| {
        image
            .get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err("truncated ELF header");
    };
    let phoff = usize::try_from(phoff).map_err(|_| "bad program header offset")?;
    for i in 0..usize::from(phnum) {
        let off = phoff + i * usize::from(phentsize);
        let Some(kind) = image.get(off..off + 4) else {
            return Err("program headers beyond the first 64 KiB");
        };
        if u32::from_le_bytes([kind[0], kind[1], kind[2], kind[3]]) == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image with the given program header types.
    fn elf_with(types: &[u32]) -> Vec<u8> {
        let mut image = vec![0u8; 64 + 56 * types.len()];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2;
        image[5] = 1;
        image[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        image[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        image[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let off = 64 + 56 * i;
            image[off..off + 4].copy_from_slice(&t.to_le_bytes());
        }
        image
    }

    #[test]
    fn elf_without_interpreter_is_static() {
        assert_eq!(elf_interpreter(&elf_with(&[6, 1, 1, 2])), Ok(false));
    }

    #[test]
    fn elf_with_interpreter_is_dynamic() {
        assert_eq!(elf_interpreter(&elf_with(&[6, 3, 1])), Ok(true));
    }

    #[test]
    fn non_elf_is_refused() {
        assert!(elf_interpreter(b"#!/bin/sh\necho hi\n").is_err());
        assert!(elf_interpreter(&[0u8; 128]).is_err());
    }

    #[test]
    fn this_test_binary_is_recognised_as_elf() {
        let exe = std::env::current_exe().unwrap();
        let image = std::fs::read(exe).unwrap();
        assert!(elf_interpreter(&image).is_ok());
    }
}
