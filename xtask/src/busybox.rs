//! A static busybox for the sandbox's root file system: taken from the `busybox-static` Debian
//! package when it is installed, else downloaded with `apt-get download` and unpacked into a
//! cache under `target/` (no root needed, apt lists permitting).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, cmd, layout};

/// Where the installed package puts the binary.
const SYSTEM_BUSYBOX: &str = "/bin/busybox";

/// Finds a static busybox, fetching the Debian package into `target/busybox` when needed.
pub fn locate() -> Result<PathBuf> {
    if package_installed("busybox-static") && Path::new(SYSTEM_BUSYBOX).is_file() {
        build::check_static(Path::new(SYSTEM_BUSYBOX))?;
        return Ok(SYSTEM_BUSYBOX.into());
    }
    let cache = build::target_dir().join("busybox");
    let cached = cache.join("root/bin/busybox");
    if !cached.is_file() {
        fetch(&cache)?;
    }
    build::check_static(&cached)?;
    Ok(cached)
}

/// Whether dpkg reports `pkg` as installed.
pub fn package_installed(pkg: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|status| status.trim() == "install ok installed")
}

/// Installs those of `packages` that dpkg does not report as installed (root only; `needed_by`
/// says who needs them in the error a non-root caller gets).
pub fn ensure_packages(packages: &[&str], needed_by: &str) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cmd::is_root() {
        bail!(
            "{needed_by} need {}: install them as root (apt-get install -y …)",
            missing.join(" ")
        );
    }
    ensure_apt_lists()?;
    eprintln!("xtask: apt-get install -y {}", missing.join(" "));
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Makes sure apt has package lists, running `apt-get update` once when there are none.
pub fn ensure_apt_lists() -> Result<()> {
    let has_lists = fs::read_dir("/var/lib/apt/lists").is_ok_and(|dir| {
        dir.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    });
    if has_lists {
        return Ok(());
    }
    if !cmd::is_root() {
        bail!("apt has no package lists; run `apt-get update` as root first");
    }
    eprintln!("xtask: apt-get update");
    cmd::run(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Downloads `busybox-static` and unpacks it into `cache/root` (through a temporary directory
/// renamed into place, so concurrent runs never see half a tree).
fn fetch(cache: &Path) -> Result<()> {
    ensure_apt_lists()?;
    let work = cache.join(format!("download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    eprintln!(
        "xtask: apt-get download busybox-static (into {})",
        cache.display()
    );
    let mut download = Command::new("apt-get");
    if cmd::is_root() {
        // apt's unprivileged `_apt` user cannot write into target/; download as ourselves.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd::run(
        download
            .args(["download", "busybox-static"])
            .current_dir(&work),
    )?;
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb file")?;
    let unpacked = work.join("root");
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    // With a merged /usr the package may ship usr/bin/busybox instead.
    let bin = layout::resolve_in(&unpacked, Path::new("bin/busybox"))?;
    if !bin.is_file() {
        let alt = unpacked.join("usr/bin/busybox");
        fs::create_dir_all(unpacked.join("bin"))?;
        fs::rename(&alt, unpacked.join("bin/busybox")).context("busybox-static has no busybox")?;
    }
    match fs::rename(&unpacked, cache.join("root")) {
        Ok(()) => {}
        // Another run finished first; its copy is as good as ours.
        Err(_) if cache.join("root/bin/busybox").is_file() => {}
        Err(err) => return Err(err).context("move the unpacked busybox into the cache"),
    }
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// Copies `busybox` to `root/bin/busybox` and creates its applet symlinks, as
/// `busybox --install -s` would inside the root. Returns the number of applets linked.
pub fn install(busybox: &Path, root: &Path) -> Result<usize> {
    layout::install_file(root, "bin/busybox", busybox, 0o755)?;
    let list = cmd::output(Command::new(busybox).arg("--list-full"))?;
    let mut linked = 0;
    for rel in applet_paths(&list) {
        let dst = layout::resolve_in(root, Path::new(rel))?;
        if fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        symlink(SYSTEM_BUSYBOX, &dst).with_context(|| format!("symlink {}", dst.display()))?;
        linked += 1;
    }
    Ok(linked)
}

/// The applet paths of `busybox --list-full` worth linking (`linuxrc` is an initrd relic).
fn applet_paths(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "linuxrc" && *l != "bin/busybox")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_list_skips_linuxrc_and_blank_lines() {
        let list = "bin/sh\nlinuxrc\n\nsbin/getty\nusr/bin/env\n";
        assert_eq!(
            applet_paths(list).collect::<Vec<_>>(),
            ["bin/sh", "sbin/getty", "usr/bin/env"]
        );
    }
}
