//! Facts about the machine that several interfaces report: the architecture in systemd's
//! vocabulary and the virtualization technology (systemd-detect-virt(1) identifiers).

use std::path::Path;

/// The architecture as systemd names it (`ConditionArchitecture=`), e.g. `x86-64`, `arm64`.
pub fn architecture() -> &'static str {
    architecture_name(std::env::consts::ARCH, cfg!(target_endian = "little"))
}

fn architecture_name(rust_arch: &'static str, little_endian: bool) -> &'static str {
    match rust_arch {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" if little_endian => "arm64",
        "aarch64" => "arm64-be",
        "arm" if little_endian => "arm",
        "arm" => "arm-be",
        "powerpc64" if little_endian => "ppc64-le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "s390x" => "s390x",
        "loongarch64" => "loongarch64",
        "mips64" if little_endian => "mips64-le",
        "mips64" => "mips64",
        "mips" if little_endian => "mips-le",
        "mips" => "mips",
        "sparc64" => "sparc64",
        other => other,
    }
}

/// Where to look: `/` normally, a fake tree in tests.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    /// Root of the file system (for `/.dockerenv`, `/run/.containerenv`).
    pub root: &'a Path,
    /// sysfs (for `class/dmi/id`).
    pub sys: &'a Path,
    /// procfs (for `1/environ`, `cpuinfo`).
    pub proc: &'a Path,
}

impl Default for Probe<'static> {
    fn default() -> Self {
        Probe {
            root: Path::new("/"),
            sys: Path::new("/sys"),
            proc: Path::new("/proc"),
        }
    }
}

/// DMI vendor strings and the identifiers systemd-detect-virt reports for them.
const DMI_VENDORS: [(&str, &str); 17] = [
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "amazon"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "oracle"),
    ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "microsoft"),
    ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
];

/// A container technology, if this process runs in one.
pub fn container(p: &Probe<'_>) -> Option<String> {
    if p.root.join("run/.containerenv").exists() {
        return Some("podman".to_owned());
    }
    if p.root.join(".dockerenv").exists() {
        return Some("docker".to_owned());
    }
    let from_environ = |bytes: Vec<u8>| {
        bytes
            .split(|b| *b == 0)
            .find_map(|e| e.strip_prefix(b"container="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| !v.is_empty())
    };
    if let Ok(v) = std::env::var("container")
        && !v.is_empty()
    {
        return Some(v);
    }
    std::fs::read(p.proc.join("1/environ"))
        .ok()
        .and_then(from_environ)
}

/// The innermost virtualization: a container id, a hypervisor id, or `""` on bare metal.
pub fn virtualization(p: &Probe<'_>) -> String {
    if let Some(c) = container(p) {
        return c;
    }
    let dmi = p.sys.join("class/dmi/id");
    for file in ["sys_vendor", "product_name", "board_vendor", "bios_vendor"] {
        let Ok(text) = std::fs::read_to_string(dmi.join(file)) else {
            continue;
        };
        let text = text.trim();
        if let Some((_, id)) = DMI_VENDORS.iter().find(|(v, _)| text.starts_with(v)) {
            return (*id).to_owned();
        }
    }
    let cpuinfo = std::fs::read_to_string(p.proc.join("cpuinfo")).unwrap_or_default();
    let hypervisor = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if hypervisor {
        "vm-other".to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "dynamod-dbus-platform-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sys/class/dmi/id")).unwrap();
        std::fs::create_dir_all(d.join("proc/1")).unwrap();
        std::fs::create_dir_all(d.join("root/run")).unwrap();
        d
    }

    #[test]
    fn architectures_use_systemd_names() {
        assert_eq!(architecture_name("x86_64", true), "x86-64");
        assert_eq!(architecture_name("aarch64", true), "arm64");
        assert_eq!(architecture_name("powerpc64", true), "ppc64-le");
        assert_eq!(architecture_name("riscv64", true), "riscv64");
    }

    #[test]
    fn dmi_vendor_names_the_hypervisor() {
        let d = tree("dmi");
        std::fs::write(d.join("sys/class/dmi/id/sys_vendor"), "QEMU\n").unwrap();
        let p = Probe {
            root: &d.join("root"),
            sys: &d.join("sys"),
            proc: &d.join("proc"),
        };
        if std::env::var_os("container").is_none() {
            assert_eq!(virtualization(&p), "qemu");
        }
        std::fs::write(d.join("root/run/.containerenv"), "").unwrap();
        assert_eq!(virtualization(&p), "podman");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bare_metal_is_empty() {
        let d = tree("bare");
        std::fs::write(d.join("proc/cpuinfo"), "flags\t: fpu vme sse\n").unwrap();
        let p = Probe {
            root: &d.join("root"),
            sys: &d.join("sys"),
            proc: &d.join("proc"),
        };
        if std::env::var_os("container").is_none() {
            assert_eq!(virtualization(&p), "");
            std::fs::write(d.join("proc/cpuinfo"), "flags\t: fpu hypervisor\n").unwrap();
            assert_eq!(virtualization(&p), "vm-other");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
