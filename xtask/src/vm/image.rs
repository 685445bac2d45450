//! The guest's file systems, all laid out by the one install step ([`layout::install`],
//! through the sandbox's [`rootfs::assemble`]) plus busybox:
//!
//! - a *system root*: dynamod with a service set, busybox, `/etc` for the VM, the kernel
//!   modules, and the scenario's test driver and services; booted as an initramfs (phase B on
//!   the initramfs) or written to an ext4 disk, a squashfs, an ISO;
//! - the *boot initramfs* for disk and live boots: `/init` is dynamod-init (phase A), with
//!   busybox for the emergency shell and the module tree the root device needs.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::guest;
use super::host::Kernel;
use super::kmods;
use crate::layout::{self, ServiceSet};
use crate::rootfs;

/// The binaries and trees every image is made from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The static product binaries.
    pub bin_dir: PathBuf,
    /// The static test fixture.
    pub fixture: PathBuf,
    /// The static busybox.
    pub busybox: PathBuf,
    /// The kernel.
    pub kernel: Kernel,
    /// The reduced module tree (`…/lib/modules/<release>`).
    pub modules: PathBuf,
}

/// Services of `config/services` the VM images leave out: the D-Bus layer needs a
/// dbus-daemon, which the busybox images do not have.
pub const LEFT_OUT: [&str; 4] = [
    "dbus",
    "dynamod-hostnamed",
    "dynamod-sd1bridge",
    "dynamod-logind",
];

/// What goes into a system root besides dynamod and busybox.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `/etc/hostname`.
    pub hostname: String,
    /// `/etc/fstab`, when the root is a disk.
    pub fstab: Option<String>,
    /// `/etc/modules`.
    pub modules_list: Option<String>,
    /// Copy the module tree into `/lib/modules`.
    pub with_modules: bool,
    /// The scenario's checks (`/vmtest/checks.sh`); `None`: no test driver.
    pub checks: Option<String>,
    /// Additional service files (name, contents).
    pub services: Vec<(String, String)>,
    /// Directories to create (relative), e.g. bind-mount sources.
    pub dirs: Vec<String>,
    /// Whether `/etc/machine-id` is made now (read-only roots cannot make it at boot).
    pub machine_id: bool,
    /// Keep dynamod-init only in `/usr/sbin` (a layout without `/sbin/dynamod-init`).
    pub init_in_usr_sbin: bool,
    /// Host programs copied in with their shared libraries (path, extra names as symlinks in
    /// the same directory), e.g. e2fsck as `fsck.ext4` so the fsck service really checks.
    pub host_programs: Vec<(String, Vec<String>)>,
}

/// Builds the reduced module tree once per kernel, under its cache directory.
pub fn module_tree(kernel: &Kernel) -> Result<PathBuf> {
    let cache = kernel
        .modules
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .and_then(Path::parent)
        .unwrap_or(&kernel.modules)
        .join("vm-modules");
    let dest = cache.join("lib/modules").join(&kernel.release);
    // The list the tree was made from: a different list makes a new tree.
    let wanted = kmods::INITRAMFS_MODULES.join("\n");
    let stamp = cache.join("wanted");
    if dest.join("modules.dep").is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(dest);
    }
    let staging = cache.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let sel = kmods::select(&kernel.modules, &kmods::INITRAMFS_MODULES)?;
    let tree = staging.join("lib/modules").join(&kernel.release);
    sel.install(&kernel.modules, &tree)?;
    fs::write(staging.join("wanted"), &wanted)?;
    let _ = fs::remove_dir_all(&cache);
    fs::rename(&staging, &cache).context("move the module tree into the cache")?;
    Ok(dest)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            fs::copy(e.path(), &dst).with_context(|| format!("copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Lays out a system root in `root` with `set` and `extras`.
pub fn system_root(inp: &Inputs, root: &Path, set: ServiceSet, extras: &Extras) -> Result<()> {
    let opts = layout::InstallOptions {
        bin_dir: &inp.bin_dir,
        services: set,
    };
    rootfs::assemble(root, &opts, &inp.busybox)?;
    for name in LEFT_OUT {
        let _ = fs::remove_file(root.join(format!("etc/dynamod/services/{name}.toml")));
    }
    for (rel, mode) in [("var/tmp", 0o1777), ("var/lib", 0o755), ("mnt", 0o755)] {
        layout::make_dir(root, rel, mode)?;
    }
    layout::write_file(
        root,
        "etc/hostname",
        &format!("{}\n", extras.hostname),
        0o644,
    )?;
    layout::write_file(root, "etc/os-release", OS_RELEASE, 0o644)?;
    if let Some(fstab) = &extras.fstab {
        layout::write_file(root, "etc/fstab", fstab, 0o644)?;
    }
    if let Some(list) = &extras.modules_list {
        layout::write_file(root, "etc/modules", list, 0o644)?;
    }
    if extras.with_modules {
        copy_tree(
            &inp.modules,
            &root.join("lib/modules").join(&inp.kernel.release),
        )?;
    }
    if extras.machine_id {
        let id = super::disk::random_uuid()?.replace('-', "");
        layout::write_file(root, "etc/machine-id", &format!("{id}\n"), 0o444)?;
    }
    for d in &extras.dirs {
        layout::make_dir(root, d, 0o755)?;
    }
    // What util-linux and e2fsprogs read for the mount table.
    let mtab = root.join("etc/mtab");
    if fs::symlink_metadata(&mtab).is_err() {
        symlink("../proc/self/mounts", &mtab).context("symlink /etc/mtab")?;
    }
    for (program, names) in &extras.host_programs {
        install_host_program(root, Path::new(program), names)?;
    }
    if extras.init_in_usr_sbin {
        fs::create_dir_all(root.join("usr/sbin"))?;
        fs::rename(
            root.join("sbin/dynamod-init"),
            root.join("usr/sbin/dynamod-init"),
        )
        .context("move dynamod-init to /usr/sbin")?;
    }
    layout::install_file(
        root,
        &format!("{}/fixture", guest::TEST_BIN),
        &inp.fixture,
        0o755,
    )?;
    layout::write_file(
        root,
        &format!("{}/crashing-svmgr", guest::TEST_BIN),
        guest::CRASHING_SVMGR,
        0o755,
    )?;
    layout::write_file(
        root,
        &format!("{}/ro-cgroup-svmgr", guest::TEST_BIN),
        guest::RO_CGROUP_SVMGR,
        0o755,
    )?;
    if let Some(checks) = &extras.checks {
        layout::write_file(root, &format!("{}/lib.sh", guest::DIR), guest::LIB, 0o644)?;
        layout::write_file(
            root,
            &format!("{}/driver.sh", guest::DIR),
            guest::DRIVER,
            0o755,
        )?;
        layout::write_file(root, &format!("{}/checks.sh", guest::DIR), checks, 0o644)?;
        layout::write_file(
            root,
            "etc/dynamod/services/vm-driver.toml",
            guest::DRIVER_SERVICE,
            0o644,
        )?;
    }
    for (name, text) in &extras.services {
        layout::write_file(
            root,
            &format!("etc/dynamod/services/{name}.toml"),
            text,
            0o644,
        )?;
    }
    Ok(())
}

/// Copies a dynamically linked host program and the libraries `ldd` names (the glibc loader
/// included) to the same paths under `root`, plus `names` as symlinks beside it.
fn install_host_program(root: &Path, program: &Path, names: &[String]) -> Result<()> {
    let listing = crate::cmd::output(std::process::Command::new("ldd").arg(program))?;
    for lib in listing
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(Path::new)
    {
        let rel = lib
            .strip_prefix("/")
            .unwrap_or(lib)
            .to_string_lossy()
            .into_owned();
        layout::install_file(root, &rel, lib, 0o755)?;
    }
    let rel = program.strip_prefix("/").unwrap_or(program);
    layout::install_file(root, &rel.to_string_lossy(), program, 0o755)?;
    let dir = layout::resolve_in(root, rel.parent().unwrap_or(Path::new("")))?;
    let file = rel.file_name().context("program name")?;
    for n in names {
        let link = dir.join(n);
        let _ = fs::remove_file(&link);
        symlink(file, &link).with_context(|| format!("symlink {}", link.display()))?;
    }
    Ok(())
}

/// Makes `root` bootable as an initramfs (`/init` is dynamod-init) and writes the archive.
pub fn initramfs_from(root: &Path, out: &Path) -> Result<()> {
    let init = root.join("init");
    let _ = fs::remove_file(&init);
    symlink("sbin/dynamod-init", &init).context("symlink /init")?;
    super::cpio::write_initramfs(root, out)
}

/// The phase A initramfs: dynamod-init as `/init`, busybox, the accounts the emergency shell's
/// sulogin reads, and the module tree.
pub fn boot_initramfs(inp: &Inputs, work: &Path, out: &Path) -> Result<()> {
    let root = work.join("boot-initramfs");
    if fs::symlink_metadata(&root).is_ok() {
        fs::remove_dir_all(&root)?;
    }
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("root", 0o700),
        ("newroot", 0o755),
    ] {
        layout::make_dir(&root, dir, mode)?;
    }
    layout::install_file(
        &root,
        "sbin/dynamod-init",
        &inp.bin_dir.join("dynamod-init"),
        0o755,
    )?;
    crate::busybox::install(&inp.busybox, &root)?;
    for (rel, text, mode) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", "root:x:0:\ntty:x:5:\n", 0o644),
        // The test image's root has no password, so sulogin opens the shell at once.
        ("etc/shadow", "root::19000:0:99999:7:::\n", 0o600),
    ] {
        layout::write_file(&root, rel, text, mode)?;
    }
    copy_tree(
        &inp.modules,
        &root.join("lib/modules").join(&inp.kernel.release),
    )?;
    let init = root.join("init");
    symlink("sbin/dynamod-init", &init).context("symlink /init")?;
    fs::set_permissions(
        root.join("sbin/dynamod-init"),
        fs::Permissions::from_mode(0o755),
    )?;
    super::cpio::write_initramfs(&root, out)
}

const OS_RELEASE: &str = "NAME=\"dynamod VM test image\"\nID=dynamod-vm\n\
PRETTY_NAME=\"dynamod VM test image (busybox)\"\n";
