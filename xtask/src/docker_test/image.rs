//! The images of the scenario: a local base standing in for Alpine (no registry is reachable),
//! and the project's image built from it with the project's Dockerfile and compose file.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::engine::Engine;
use super::logs::{self, Layer};
use crate::layout::{self, InstallOptions, ServiceSet};
use crate::{build, busybox};

/// The local base image's name (given to the Dockerfile as `RUNTIME_IMAGE`).
pub const BASE_IMAGE: &str = "dynamod-test/busybox:local";

/// The image the compose file names.
pub const PROJECT_IMAGE: &str = "dynamod:dev";

/// Assembles a busybox root file system with Alpine's paths (`/bin/sh`, `/sbin/ip`,
/// `/sbin/getty`, `/sbin/syslogd`, `/sbin/sysctl`, `/bin/hostname`, `/var/run -> /run`) and the
/// few `/etc` files an Alpine image has.
pub fn assemble_base(root: &Path, busybox_bin: &Path) -> Result<()> {
    if fs::symlink_metadata(root).is_ok() {
        fs::remove_dir_all(root).with_context(|| format!("remove {}", root.display()))?;
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
        ("tmp", 0o1777),
        ("root", 0o700),
        ("var/log", 0o755),
        ("var/tmp", 0o1777),
    ] {
        layout::make_dir(root, dir, mode)?;
    }
    std::os::unix::fs::symlink("/run", root.join("var/run")).context("symlink /var/run")?;
    busybox::install(busybox_bin, root)?;
    for (rel, text, mode) in [
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("etc/shadow", SHADOW, 0o600),
        ("etc/os-release", OS_RELEASE, 0o644),
    ] {
        layout::write_file(root, rel, text, mode)?;
    }
    Ok(())
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n";
const GROUP: &str = "root:x:0:root\ntty:x:5:\nnogroup:x:65533:\nnobody:x:65534:\n";
/// Locked root, as in Alpine's image.
const SHADOW: &str = "root:*::0:::::\nnobody:!::0:::::\n";
const OS_RELEASE: &str = "NAME=\"busybox (stand-in for Alpine)\"\nID=busybox\n\
                          PRETTY_NAME=\"busybox stand-in for Alpine, dynamod docker-test\"\n";

/// Imports `root` as [`BASE_IMAGE`] (`tar -C root -c . | docker import - NAME`).
pub fn import_base(engine: &Engine, root: &Path) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("run tar")?;
    let stdout = tar.stdout.take().context("tar's stdout")?;
    let import = engine
        .docker()
        .args(["import", "-", BASE_IMAGE])
        .stdin(stdout)
        .stdout(Stdio::null())
        .status()
        .context("run docker import")?;
    let tar_status = tar.wait().context("wait for tar")?;
    if !tar_status.success() || !import.success() {
        bail!("importing the base image failed (tar {tar_status}, docker import {import})");
    }
    Ok(())
}

/// Fills `docker/prebuilt/` (the Dockerfile's `prebuilt` stage) from the static binaries in
/// `bin_dir` through the one install step, replacing what was there.
pub fn install_prebuilt(bin_dir: &Path) -> Result<()> {
    let dest = prebuilt_dir();
    if fs::symlink_metadata(&dest).is_ok() {
        fs::remove_dir_all(&dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    build::check_bin_dir(bin_dir)?;
    layout::install(
        &dest,
        &InstallOptions {
            bin_dir,
            services: ServiceSet::Docker,
        },
    )?;
    Ok(())
}

/// `docker/prebuilt/` in the workspace.
pub fn prebuilt_dir() -> std::path::PathBuf {
    build::workspace_root().join("docker/prebuilt")
}

/// The environment the compose file reads its build arguments from, for an offline build.
pub fn build_env() -> [(&'static str, &'static str); 2] {
    [("RUNTIME_IMAGE", BASE_IMAGE), ("BINARIES", "prebuilt")]
}

/// What the image is made of.
#[derive(Debug)]
pub struct SizeReport {
    /// The whole image, in bytes.
    pub total: u64,
    /// Its layers, base first.
    pub layers: Vec<Layer>,
}

impl SizeReport {
    /// Bytes above the base layer: what the Dockerfile adds.
    pub fn added(&self) -> u64 {
        self.layers.iter().skip(1).map(|l| l.size).sum()
    }

    /// The report's lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("image {PROJECT_IMAGE}: {}", logs::mb(self.total))];
        for (i, layer) in self.layers.iter().enumerate() {
            let what = if i == 0 && layer.created_by.is_empty() {
                format!("base {BASE_IMAGE} (busybox-static standing in for Alpine)")
            } else {
                layer.created_by.clone()
            };
            out.push(format!("  {:>10}  {what}", logs::mb(layer.size)));
        }
        out
    }
}

/// Size and layers of [`PROJECT_IMAGE`].
pub fn size_report(engine: &Engine) -> Result<SizeReport> {
    let total: u64 = engine
        .out(&["image", "inspect", "--format", "{{.Size}}", PROJECT_IMAGE])?
        .trim()
        .parse()
        .context("parse the image size")?;
    let history = engine.out(&[
        "history",
        "--human=false",
        "--no-trunc",
        "--format",
        "{{json .}}",
        PROJECT_IMAGE,
    ])?;
    Ok(SizeReport {
        total,
        layers: logs::parse_history(&history),
    })
}
