//! The sandbox's root file system: the install layout (exactly as in the Docker image), a
//! static busybox with its applets, and the handful of `/etc` files a container image has.
//! It is rebuilt from scratch on every run so it never drifts from the sources.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};

use crate::{busybox, layout};

/// The sandbox's host name (`/etc/hostname` and the UTS namespace).
pub const HOSTNAME: &str = "dynamod-sandbox";

/// Removes `root` and assembles a fresh root file system there.
pub fn assemble(root: &Path, install: &layout::InstallOptions<'_>, busybox: &Path) -> Result<()> {
    if fs::symlink_metadata(root).is_ok() {
        fs::remove_dir_all(root).with_context(|| format!("remove the old {}", root.display()))?;
    }
    fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;

    // Mount points and standard directories first, so busybox's applets land in real dirs.
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
        ("tmp", 0o1777),
        ("root", 0o700),
        ("var/log", 0o755),
    ] {
        layout::make_dir(root, dir, mode)?;
    }
    // As on Alpine: /var/run is /run (relative, so it also resolves from the host side).
    symlink("../run", root.join("var/run")).context("symlink /var/run")?;

    layout::install(root, install)?;
    busybox::install(busybox, root)?;

    for (rel, contents, mode) in [
        ("etc/hostname", format!("{HOSTNAME}\n"), 0o644),
        ("etc/passwd", PASSWD.to_owned(), 0o644),
        ("etc/shadow", SHADOW.to_owned(), 0o600),
        ("etc/group", GROUP.to_owned(), 0o644),
        ("etc/sysctl.conf", SYSCTL.to_owned(), 0o644),
        ("etc/os-release", os_release(), 0o644),
        ("etc/issue", ISSUE.to_owned(), 0o644),
    ] {
        layout::write_file(root, rel, &contents, mode)?;
    }
    Ok(())
}

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
";

/// root may log in on the console without a password (an empty shadow field; busybox ignores
/// passwd lines whose password field is empty): the sandbox has no network and is reached only
/// through the terminal that started it. The others are locked.
const SHADOW: &str = "\
root::19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
";

const GROUP: &str = "\
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
";

/// Only keys scoped to the network namespace, so `sysctl -p` never touches the host, and
/// values a rootless sandbox may set too (`ping_group_range` is refused there: its group IDs
/// are not mapped in the user namespace).
const SYSCTL: &str = "\
# dynamod sandbox: keys scoped to the sandbox's own network namespace only.
net.ipv4.ip_local_port_range = 32768 60999
net.ipv4.ip_unprivileged_port_start = 1024
";

/// Shown by getty above the login prompt (`\n` is the host name, `\l` the terminal).
const ISSUE: &str = "\nWelcome to the dynamod sandbox (\\l). Log in as root, no password.\n\n";

fn os_release() -> String {
    format!(
        "NAME=\"dynamod sandbox\"\nID=dynamod-sandbox\nVERSION_ID={}\n\
         PRETTY_NAME=\"dynamod sandbox {} (busybox)\"\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
    )
}
