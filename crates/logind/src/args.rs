//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::cgroup::CgroupRoot;

/// How dynamod-logind runs.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "dynamod-logind",
    version,
    about = "Serves org.freedesktop.login1: sessions, seats, users, devices, inhibitors and power actions"
)]
pub struct Options {
    /// D-Bus address of the system bus [default: $DBUS_SYSTEM_BUS_ADDRESS, else
    /// unix:path=/run/dbus/system_bus_socket].
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,

    /// dynamod-svmgr's control socket, where power-off, reboot and halt are sent.
    #[arg(
        long,
        value_name = "PATH",
        env = "DYNAMOD_SOCKET",
        default_value = "/run/dynamod/control.sock"
    )]
    pub control_socket: PathBuf,

    /// Parent of the per-user runtime directories ($XDG_RUNTIME_DIR).
    #[arg(long, value_name = "DIR", default_value = "/run/user")]
    pub runtime_dir_root: PathBuf,

    /// Size of each runtime directory's tmpfs: a percentage of physical memory or a size with
    /// K, M or G.
    #[arg(long, value_name = "SIZE", default_value = "10%")]
    pub runtime_dir_size: String,

    /// Where session cgroups go: `auto` (`<cgroup2 mount>/dynamod-sessions`), `none`, or a
    /// directory inside a cgroup2 mount.
    #[arg(long, value_name = "auto|none|DIR", default_value = "auto")]
    pub cgroup_root: CgroupRoot,

    /// Where the sd-login state files go (`sessions/`, `users/`, `seats/`), which
    /// libsystemd's sd_session_*() and sd_uid_*() functions read.
    #[arg(long, value_name = "DIR", default_value = "/run/systemd")]
    pub state_dir: PathBuf,

    /// sysfs: devices (`dev/char`), graphics (`class/drm`), virtual terminals
    /// (`class/tty/tty0`), power (`power/state`) and backlights.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// The device directory (`char/MAJOR:MINOR`, `tty0`, `ttyN`).
    #[arg(long, value_name = "DIR", default_value = "/dev")]
    pub dev: PathBuf,

    /// udev's database, for the seat a device belongs to (`ID_SEAT`).
    #[arg(long, value_name = "DIR", default_value = "/run/udev/data")]
    pub udev_data: PathBuf,

    /// Also let session controllers take this character device (MAJOR:MINOR; repeatable).
    /// Such devices are handed out as they are and cannot be muted when their session goes
    /// to the background.
    #[arg(long = "allow-device", value_name = "MAJOR:MINOR", value_parser = parse_devnum)]
    pub allowed_devices: Vec<(u32, u32)>,

    /// How long a delay inhibitor may hold up a shutdown or sleep (InhibitDelayMaxSec).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub inhibit_delay_max: Duration,

    /// How long a user's runtime directory survives its last session (UserStopDelaySec).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub user_stop_delay: Duration,

    /// Kill a session's processes when it ends (KillUserProcesses); by default they may
    /// outlive it.
    #[arg(long)]
    pub kill_user_processes: bool,

    /// How long the processes of a terminated session get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// The most sessions at once (SessionsMax).
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub sessions_max: u64,

    /// The most inhibitors at once (InhibitorsMax).
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub inhibitors_max: u64,
}

/// `MAJOR:MINOR`.
pub fn parse_devnum(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not MAJOR:MINOR"))?;
    let num = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("{s:?} is not MAJOR:MINOR"))
    };
    Ok((num(a)?, num(b)?))
}

/// A duration: a number of seconds, or a number with `ms`, `s`, `min`, `m` or `h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    let d = match unit.trim() {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" | "msec" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?} is not a duration")),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "5 weeks", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_numbers_are_major_colon_minor() {
        assert_eq!(parse_devnum("1:3"), Ok((1, 3)));
        assert!(parse_devnum("1").is_err());
        assert!(parse_devnum("a:3").is_err());
    }
}
