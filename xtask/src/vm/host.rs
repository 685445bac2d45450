//! What the VM scenarios need on the host: Debian packages (installed with apt-get when
//! missing) and the Debian kernel, downloaded with `apt-get download` and unpacked with
//! `dpkg-deb -x` into a cache under `target/vm/kernel` — never installed, so no package
//! scripts run on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, busybox, cmd};

/// Packages every scenario needs: QEMU, and `mkfs.ext4`/`fsck.ext4`/`debugfs` for the disks.
pub const BASE_PACKAGES: [&str; 2] = ["qemu-system-x86", "e2fsprogs"];
/// Packages the live scenarios need: `mksquashfs` and `xorriso`.
pub const LIVE_PACKAGES: [&str; 2] = ["squashfs-tools", "xorriso"];

/// Installs the missing ones of `packages` (as root; otherwise says what to install).
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    busybox::ensure_packages(packages, "the VM scenarios")
}

/// The unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The package name (`linux-image-6.1.0-57-amd64`).
    pub package: String,
    /// `boot/vmlinuz-*`.
    pub vmlinuz: PathBuf,
    /// The kernel release (`6.1.0-57-amd64`), naming its module directory.
    pub release: String,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules: PathBuf,
}

/// The versioned image package `linux-image-amd64` depends on, from `apt-cache depends`.
fn kernel_package() -> Result<String> {
    let deps = cmd::output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| {
            p.starts_with("linux-image-") && p.as_bytes().get(12).is_some_and(u8::is_ascii_digit)
        })
        .map(str::to_owned)
        .context("apt-cache names no versioned kernel behind linux-image-amd64")
}

/// Finds the kernel in the cache, fetching and unpacking it the first time.
pub fn kernel() -> Result<Kernel> {
    busybox::ensure_apt_lists()?;
    let package = kernel_package()?;
    let cache = build::target_dir().join("vm/kernel").join(&package);
    let root = cache.join("root");
    if !root.join("boot").is_dir() {
        fetch(&package, &cache)?;
    }
    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz in {}", root.join("boot").display()))?;
    let release = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_owned()
        })
        .unwrap_or_default();
    let modules = root.join("lib/modules").join(&release);
    if !modules.is_dir() {
        bail!("{} is missing from the kernel package", modules.display());
    }
    Ok(Kernel {
        package,
        vmlinuz,
        release,
        modules,
    })
}

fn fetch(package: &str, cache: &Path) -> Result<()> {
    let parent = cache.parent().unwrap_or(cache);
    let work = parent.join(format!("{package}.download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    eprintln!(
        "xtask: apt-get download {package} (into {})",
        cache.display()
    );
    let mut download = Command::new("apt-get");
    if cmd::is_root() {
        // apt's unprivileged `_apt` user cannot write into target/.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd::run(download.args(["download", package]).current_dir(&work))?;
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb file")?;
    let unpacked = work.join("root");
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    fs::create_dir_all(cache)?;
    match fs::rename(&unpacked, cache.join("root")) {
        Ok(()) => {}
        Err(_) if cache.join("root/boot").is_dir() => {}
        Err(e) => return Err(e).context("move the unpacked kernel into the cache"),
    }
    let _ = fs::remove_dir_all(&work);
    Ok(())
}
