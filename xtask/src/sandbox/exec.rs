//! `cargo xtask sandbox exec CMD…`: runs a command inside the running sandbox, like
//! `docker exec`: every namespace of PID 1 that differs from the caller's, its root and its
//! working directory (through util-linux's `nsenter`), a clean environment, and the command's
//! exit status.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{SANDBOX_PATH, running_pid};
use crate::cmd;

/// Runs `command` in the sandbox started from `state_dir`; returns its exit code (128 + N when a
/// signal N killed it).
pub fn run(state_dir: &Path, command: &[String]) -> Result<u8> {
    let Some(pid) = running_pid(state_dir)? else {
        bail!(
            "no sandbox is running from {} (start one with `cargo xtask sandbox`, or give the \
             --state-dir it was started with)",
            state_dir.display()
        );
    };
    let nsenter = cmd::which("nsenter")
        .context("nsenter not found: install util-linux (apt-get install util-linux)")?;
    let mut nsenter = Command::new(nsenter);
    nsenter.arg("--target").arg(pid.to_string());
    let flags = namespace_flags(pid);
    if flags.contains(&"--user") {
        // Rootless: our UID is root inside the sandbox's user namespace already; nsenter's
        // setgroups() would fail there (setgroups is denied in it).
        nsenter.arg("--preserve-credentials");
    }
    nsenter
        .args(flags)
        .args(["--root", "--wd", "--"])
        .args(command);
    nsenter
        .env_clear()
        .env("PATH", SANDBOX_PATH)
        .env("HOME", "/root");
    if let Some(term) = std::env::var_os("TERM") {
        nsenter.env("TERM", term);
    }
    let status = cmd::status(&mut nsenter)?;
    Ok(cmd::exit_byte(cmd::shell_code(status)))
}

/// nsenter's options for every namespace of `pid` that differs from ours. (`--all` would also
/// try to re-enter namespaces the sandbox shares with the host, such as the time namespace,
/// which a rootless caller may not.)
fn namespace_flags(pid: i32) -> Vec<&'static str> {
    const NAMESPACES: [(&str, &str); 8] = [
        ("user", "--user"),
        ("mnt", "--mount"),
        ("uts", "--uts"),
        ("ipc", "--ipc"),
        ("net", "--net"),
        ("pid", "--pid"),
        ("cgroup", "--cgroup"),
        ("time", "--time"),
    ];
    NAMESPACES
        .into_iter()
        .filter(|(ns, _)| {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"));
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"));
            match (theirs, ours) {
                (Ok(theirs), Ok(ours)) => theirs != ours,
                // Unknown to this kernel, or unreadable: enter it unless it is optional.
                _ => !matches!(*ns, "time" | "cgroup"),
            }
        })
        .map(|(_, flag)| flag)
        .collect()
}
