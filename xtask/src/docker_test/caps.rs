//! The OCI-runtime wrapper for machines whose capability bounding set lacks capabilities that
//! Docker grants a `--privileged` container (TESTING.md §7: here CAP_SYS_RESOURCE, so runc fails
//! with "unable to apply caps: operation not permitted").
//!
//! The wrapper is a shell script registered as the daemon's default runtime. Before it execs the
//! real runc it deletes the missing capabilities from the bundle's `config.json` (`create`/`run`
//! take `--bundle DIR`) and from the process spec of `exec` (`--process FILE`). Nothing else of
//! the spec changes, and it is only installed after a `--privileged` probe has failed.

use std::path::Path;

use anyhow::{Context, Result};

/// Capability names by number (include/uapi/linux/capability.h), as OCI specs spell them.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities up to `last_cap` that the bounding set `bounding` (the `CapBnd:` mask)
/// lacks, by name.
pub fn missing_from_bounding_set(bounding: u64, last_cap: u32) -> Vec<&'static str> {
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| *bit as u32 <= last_cap && bounding & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The `CapBnd:` mask of a `/proc/PID/status` text.
pub fn parse_bounding_set(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The capabilities this process's bounding set lacks (those the kernel knows of).
pub fn missing_here() -> Result<Vec<&'static str>> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let bounding = parse_bounding_set(&status).context("no CapBnd line in /proc/self/status")?;
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    Ok(missing_from_bounding_set(bounding, last_cap))
}

/// The wrapper script: strips `caps` from the specs runc is given, then execs `runc`.
pub fn wrapper_script(runc: &Path, caps: &[&str]) -> String {
    // Specs are compact JSON written by containerd: a name sits in an array as `"NAME",`,
    // `,"NAME"` or (alone) `"NAME"`; the three expressions keep the array valid in each case.
    let mut sed = String::new();
    for cap in caps {
        sed.push_str(&format!(
            " -e 's/\"{cap}\",//g' -e 's/,\"{cap}\"//g' -e 's/\"{cap}\"//g'"
        ));
    }
    format!(
        "#!/bin/sh\n\
         # OCI runtime wrapper written by `cargo xtask docker-test`: removes capabilities this\n\
         # machine's bounding set lacks ({names}) from the specs, then runs runc.\n\
         strip() {{ [ -f \"$1\" ] && sed -i{sed} \"$1\"; }}\n\
         prev=\n\
         for arg in \"$@\"; do\n\
         \x20   case \"$prev\" in\n\
         \x20       --bundle|-b) strip \"$arg/config.json\" ;;\n\
         \x20       --process|-p) strip \"$arg\" ;;\n\
         \x20   esac\n\
         \x20   case \"$arg\" in\n\
         \x20       --bundle=*) strip \"${{arg#--bundle=}}/config.json\" ;;\n\
         \x20       --process=*) strip \"${{arg#--process=}}\" ;;\n\
         \x20   esac\n\
         \x20   prev=$arg\n\
         done\n\
         exec {runc} \"$@\"\n",
        names = caps.join(", "),
        runc = runc.display(),
    )
}

/// The daemon configuration: empty, or registering `wrapper` as the default runtime.
pub fn daemon_json(wrapper: Option<&Path>) -> String {
    match wrapper {
        None => "{}\n".to_owned(),
        Some(path) => serde_json::json!({
            "runtimes": { RUNTIME_NAME: { "path": path } },
            "default-runtime": RUNTIME_NAME,
        })
        .to_string(),
    }
}

/// The name the wrapper is registered under.
pub const RUNTIME_NAME: &str = "runc-capfix";

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn bounding_set_without_sys_resource_lacks_exactly_that() {
        assert_eq!(
            missing_from_bounding_set(0x0000_01ff_feff_ffff, 40),
            ["CAP_SYS_RESOURCE"]
        );
        assert!(missing_from_bounding_set(0x0000_01ff_ffff_ffff, 40).is_empty());
    }

    #[test]
    fn capabilities_beyond_the_kernels_last_are_not_missing() {
        // An older kernel (last cap 37) does not know PERFMON, BPF, CHECKPOINT_RESTORE.
        assert!(missing_from_bounding_set(0x0000_003f_ffff_ffff, 37).is_empty());
    }

    #[test]
    fn bounding_set_is_read_from_proc_status() {
        let status = "Name:\tx\nCapPrm:\t0000000000000000\nCapBnd:\t000001fffeffffff\n";
        assert_eq!(parse_bounding_set(status), Some(0x0000_01ff_feff_ffff));
        assert_eq!(parse_bounding_set("Name:\tx\n"), None);
    }

    #[test]
    fn daemon_json_registers_the_wrapper_as_default_runtime() {
        let v: serde_json::Value =
            serde_json::from_str(&daemon_json(Some(Path::new("/w/runtime.sh")))).unwrap();
        assert_eq!(v["default-runtime"], RUNTIME_NAME);
        assert_eq!(v["runtimes"][RUNTIME_NAME]["path"], "/w/runtime.sh");
        assert_eq!(daemon_json(None).trim(), "{}");
    }

    /// Runs the generated script with a fake runc that prints the spec it finds.
    #[test]
    fn wrapper_strips_missing_caps_from_bundle_and_process_specs_and_keeps_json_valid() {
        let dir = std::env::temp_dir().join(format!("xtask-caps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        let spec = r#"{"process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_KILL"],"effective":["CAP_SYS_RESOURCE"],"permitted":["CAP_CHOWN","CAP_SYS_RESOURCE"]}}}"#;
        std::fs::write(dir.join("bundle/config.json"), spec).unwrap();
        std::fs::write(dir.join("process.json"), spec).unwrap();
        let fake_runc = dir.join("runc");
        std::fs::write(&fake_runc, "#!/bin/sh\necho \"runc $*\"\n").unwrap();
        let script = dir.join("wrapper.sh");
        std::fs::write(&script, wrapper_script(&fake_runc, &["CAP_SYS_RESOURCE"])).unwrap();
        for f in [&fake_runc, &script] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        let bundle = dir.join("bundle");
        let out = Command::new(&script)
            .args(["--root", "/r", "create", "--bundle"])
            .arg(&bundle)
            .arg("id1")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("runc --root /r create"));
        let process = dir.join("process.json");
        let out = Command::new(&script)
            .arg("exec")
            .arg(format!("--process={}", process.display()))
            .arg("id1")
            .output()
            .unwrap();
        assert!(out.status.success());

        for file in [bundle.join("config.json"), process] {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("CAP_SYS_RESOURCE"), "{text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let caps = &v["process"]["capabilities"];
            assert_eq!(
                caps["bounding"],
                serde_json::json!(["CAP_CHOWN", "CAP_KILL"])
            );
            assert_eq!(caps["effective"], serde_json::json!([]));
            assert_eq!(caps["permitted"], serde_json::json!(["CAP_CHOWN"]));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
