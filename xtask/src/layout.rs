//! The installed layout (SPEC §1), written by one function that `cargo xtask install`, the
//! sandbox's root file system, the Docker image (through `install`) and the VM image share.
//!
//! | path | what |
//! |---|---|
//! | `/sbin/dynamod-init` | PID 1 |
//! | `/usr/lib/dynamod/dynamod-{svmgr,logd,…}` | daemons (optional ones when built) |
//! | `/usr/bin/dynamodctl` | CLI |
//! | `/etc/dynamod/services/*.toml` | `docker/services/` or `config/services/` |
//! | `/etc/dynamod/supervisors/*.toml` | `config/supervisors/` |
//! | `/run/dynamod/`, `/var/log/dynamod/` | runtime and logs (0755) |
//! | `/var/lib/dynamod/` | state such as the random seed (0700) |
//!
//! Paths are resolved inside the destination the way a chroot would see them: an absolute
//! symlink in DESTDIR (say `sbin -> /usr/sbin` on a merged-/usr root) is followed relative to
//! DESTDIR, never into the host.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build;

/// Which set of service files to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceSet {
    /// The eight container services of `docker/services/`.
    Docker,
    /// The real-machine set of `config/services/`.
    Machine,
}

impl ServiceSet {
    /// The source directory in the workspace.
    pub fn dir(self) -> PathBuf {
        match self {
            Self::Docker => build::workspace_root().join("docker/services"),
            Self::Machine => build::workspace_root().join("config/services"),
        }
    }
}

/// Files in a service directory that document the format and are never installed (installing
/// the sample would start it on every machine, a defect of the first implementation).
const NOT_INSTALLED: [&str; 1] = ["example.toml"];

/// What to install.
pub struct InstallOptions<'a> {
    /// Directory holding the static binaries.
    pub bin_dir: &'a Path,
    /// Which service files.
    pub services: ServiceSet,
}

/// What [`install`] wrote, as paths relative to the destination root (`/sbin/dynamod-init`, …).
#[derive(Debug, Default)]
pub struct Installed {
    /// Files and directories, in the order written.
    pub paths: Vec<PathBuf>,
}

/// Lays out an installation under `destdir` (created if missing). Existing files that the
/// layout does not name are left alone.
pub fn install(destdir: &Path, opts: &InstallOptions<'_>) -> Result<Installed> {
    fs::create_dir_all(destdir).with_context(|| format!("create {}", destdir.display()))?;
    let root = destdir
        .canonicalize()
        .with_context(|| format!("resolve {}", destdir.display()))?;
    let mut done = Installed::default();

    // Binaries: the required ones must exist, the optional daemons are skipped when absent.
    install_file(
        &root,
        "sbin/dynamod-init",
        &opts.bin_dir.join("dynamod-init"),
        0o755,
    )?;
    done.paths.push("/sbin/dynamod-init".into());
    for name in ["dynamod-svmgr", "dynamod-logd"] {
        let rel = format!("usr/lib/dynamod/{name}");
        install_file(&root, &rel, &opts.bin_dir.join(name), 0o755)?;
        done.paths.push(format!("/{rel}").into());
    }
    for name in build::OPTIONAL {
        let src = opts.bin_dir.join(name);
        if src.is_file() {
            let rel = format!("usr/lib/dynamod/{name}");
            install_file(&root, &rel, &src, 0o755)?;
            done.paths.push(format!("/{rel}").into());
        }
    }
    install_file(
        &root,
        "usr/bin/dynamodctl",
        &opts.bin_dir.join("dynamodctl"),
        0o755,
    )?;
    done.paths.push("/usr/bin/dynamodctl".into());
    // Man pages and shell completions, generated from dynamodctl's own clap definitions.
    let status = std::process::Command::new(root.join("usr/bin/dynamodctl"))
        .arg("generate")
        .arg(root.join("usr"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("run dynamodctl generate")?;
    if !status.success() {
        anyhow::bail!("dynamodctl generate failed ({status})");
    }
    done.paths.push("/usr/share/man/man1/dynamodctl.1".into());

    // Configuration.
    let config = build::workspace_root().join("config");
    for (src_dir, rel_dir) in [
        (opts.services.dir(), "etc/dynamod/services"),
        (config.join("supervisors"), "etc/dynamod/supervisors"),
    ] {
        make_dir(&root, rel_dir, 0o755)?;
        for src in toml_files(&src_dir)? {
            let Some(name) = src.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if NOT_INSTALLED.contains(&name) {
                continue;
            }
            let rel = format!("{rel_dir}/{name}");
            install_file(&root, &rel, &src, 0o644)?;
            done.paths.push(format!("/{rel}").into());
        }
    }

    // D-Bus policies of the systemd-compatible daemons (read only when dbus-daemon runs).
    let policies = config.join("dbus-1/system.d");
    if policies.is_dir() {
        let rel_dir = "usr/share/dbus-1/system.d";
        make_dir(&root, rel_dir, 0o755)?;
        let mut files: Vec<PathBuf> = fs::read_dir(&policies)
            .with_context(|| format!("read {}", policies.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        for src in files {
            let Some(name) = src.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let rel = format!("{rel_dir}/{name}");
            install_file(&root, &rel, &src, 0o644)?;
            done.paths.push(format!("/{rel}").into());
        }
    }

    // Runtime, log and state directories.
    for (rel, mode) in [
        ("run/dynamod", 0o755),
        ("var/log/dynamod", 0o755),
        ("var/lib/dynamod", 0o700),
    ] {
        make_dir(&root, rel, mode)?;
        done.paths.push(format!("/{rel}/").into());
    }
    Ok(done)
}

/// The `*.toml` files of `dir`, sorted by name.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Copies `src` to `root/rel` with `mode`, atomically (a temporary file renamed into place, so
/// replacing a running binary works).
pub fn install_file(root: &Path, rel: &str, src: &Path, mode: u32) -> Result<()> {
    if !src.is_file() {
        bail!("{} is missing", src.display());
    }
    let dst = resolve_in(root, Path::new(rel))?;
    let parent = dst.parent().unwrap_or(root);
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.xtask-tmp"));
    fs::copy(src, &tmp).with_context(|| format!("copy {} to {}", src.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", tmp.display()))?;
    fs::rename(&tmp, &dst).with_context(|| format!("rename {} to {}", tmp.display(), dst.display()))
}

/// Writes `contents` to `root/rel` with `mode`.
pub fn write_file(root: &Path, rel: &str, contents: &str, mode: u32) -> Result<()> {
    let dst = resolve_in(root, Path::new(rel))?;
    let parent = dst.parent().unwrap_or(root);
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    fs::write(&dst, contents).with_context(|| format!("write {}", dst.display()))?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dst.display()))
}

/// Creates the directory `root/rel` (and its parents) and gives it `mode`.
pub fn make_dir(root: &Path, rel: &str, mode: u32) -> Result<PathBuf> {
    let dir = resolve_in(root, Path::new(rel))?;
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dir.display()))?;
    Ok(dir)
}

/// Resolves `rel` under `root` as a process chrooted at `root` would: symlinks are followed,
/// absolute ones relative to `root`, and `..` never climbs above `root`. Components that do not
/// exist yet are kept as they are.
pub fn resolve_in(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut pending: Vec<OsString> = components(rel).into_iter().rev().collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    bail!(
                        "too many symlinks resolving {} under {}",
                        rel.display(),
                        root.display()
                    );
                }
                let target = fs::read_link(&candidate)
                    .with_context(|| format!("read link {}", candidate.display()))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(components(&target).into_iter().rev());
            }
            _ => resolved.push(part),
        }
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}

/// The normal and `..` components of `path` (root and `.` dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-layout-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fake_bins(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for name in names {
            // A script stands in for the binary (install runs `dynamodctl generate`).
            fs::write(
                dir.join(name),
                format!("#!/bin/sh\n# binary {name}\nexit 0\n"),
            )
            .unwrap();
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn install_lays_out_binaries_configs_and_directories() {
        let base = temp("full");
        let bins = base.join("bins");
        fake_bins(&bins, &build::REQUIRED);
        let dest = base.join("root");
        let opts = InstallOptions {
            bin_dir: &bins,
            services: ServiceSet::Docker,
        };
        let done = install(&dest, &opts).unwrap();

        assert!(
            fs::read_to_string(dest.join("sbin/dynamod-init"))
                .unwrap()
                .contains("binary dynamod-init")
        );
        assert_eq!(mode(&dest.join("sbin/dynamod-init")), 0o755);
        assert!(dest.join("usr/lib/dynamod/dynamod-svmgr").is_file());
        assert!(dest.join("usr/lib/dynamod/dynamod-logd").is_file());
        assert!(!dest.join("usr/lib/dynamod/dynamod-logind").exists());
        assert!(dest.join("usr/bin/dynamodctl").is_file());
        let services = fs::read_dir(dest.join("etc/dynamod/services"))
            .unwrap()
            .count();
        assert_eq!(services, 8);
        let supervisors = fs::read_dir(dest.join("etc/dynamod/supervisors"))
            .unwrap()
            .count();
        assert_eq!(supervisors, 3);
        assert_eq!(mode(&dest.join("etc/dynamod/services/syslog.toml")), 0o644);
        assert_eq!(mode(&dest.join("run/dynamod")), 0o755);
        assert_eq!(mode(&dest.join("var/log/dynamod")), 0o755);
        assert_eq!(mode(&dest.join("var/lib/dynamod")), 0o700);
        assert!(done.paths.contains(&PathBuf::from("/sbin/dynamod-init")));
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn install_includes_optional_daemons_when_built() {
        let base = temp("optional");
        let bins = base.join("bins");
        fake_bins(&bins, &build::REQUIRED);
        fake_bins(&bins, &["dynamod-hostnamed"]);
        let dest = base.join("root");
        install(
            &dest,
            &InstallOptions {
                bin_dir: &bins,
                services: ServiceSet::Docker,
            },
        )
        .unwrap();
        assert!(dest.join("usr/lib/dynamod/dynamod-hostnamed").is_file());
        assert!(!dest.join("usr/lib/dynamod/dynamod-sd1bridge").exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn machine_set_never_installs_the_example() {
        let base = temp("machine");
        let bins = base.join("bins");
        fake_bins(&bins, &build::REQUIRED);
        let dest = base.join("root");
        install(
            &dest,
            &InstallOptions {
                bin_dir: &bins,
                services: ServiceSet::Machine,
            },
        )
        .unwrap();
        assert!(!dest.join("etc/dynamod/services/example.toml").exists());
        assert!(dest.join("etc/dynamod/services/bootmisc.toml").is_file());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_required_binary_is_an_error() {
        let base = temp("missing");
        let bins = base.join("bins");
        fake_bins(&bins, &["dynamod-init"]);
        let err = install(
            &base.join("root"),
            &InstallOptions {
                bin_dir: &bins,
                services: ServiceSet::Docker,
            },
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("dynamod-svmgr is missing"),
            "{err:#}"
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn absolute_symlink_in_destdir_stays_inside_destdir() {
        let base = temp("merged-usr");
        let bins = base.join("bins");
        fake_bins(&bins, &build::REQUIRED);
        let dest = base.join("root");
        fs::create_dir_all(dest.join("usr/sbin")).unwrap();
        symlink("/usr/sbin", dest.join("sbin")).unwrap();
        install(
            &dest,
            &InstallOptions {
                bin_dir: &bins,
                services: ServiceSet::Docker,
            },
        )
        .unwrap();
        assert!(dest.join("usr/sbin/dynamod-init").is_file());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn resolve_in_never_climbs_above_root() {
        let base = temp("dotdot");
        fs::create_dir_all(base.join("a")).unwrap();
        symlink("../../../../etc", base.join("a/up")).unwrap();
        assert_eq!(
            resolve_in(&base, Path::new("a/up/passwd")).unwrap(),
            base.join("etc/passwd")
        );
        assert_eq!(
            resolve_in(&base, Path::new("/../x")).unwrap(),
            base.join("x")
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn resolve_in_refuses_symlink_loops() {
        let base = temp("loop");
        symlink("b", base.join("a")).unwrap();
        symlink("a", base.join("b")).unwrap();
        assert!(resolve_in(&base, Path::new("a/x")).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
